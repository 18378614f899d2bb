"""Delivery channels (通知渠道): how one outbox row leaves the repository.

A :class:`Channel` sends one :class:`Outgoing` or raises :class:`DeliveryError`; the worker (:mod:`.worker`)
records the attempt and retries with back-off. Two channels ship:

- :class:`SmtpChannel` — mail through the deployment's SMTP relay (stdlib ``smtplib``/``email``), configured by
  ``CERTSTORE_SMTP_HOST``, ``_PORT`` (25), ``_FROM``, ``_USER``/``_PASSWORD`` (optional login), ``_STARTTLS``
  (``1``: upgrade the connection before login and sending; refuses to go on if the server cannot, or if its
  certificate does not verify — against the system's trust store, or ``_CAFILE``, a PEM file of the CA an internal
  relay's certificate comes from) and ``_TIMEOUT`` (30 s). The ``Message-ID`` is derived from the idempotency key, and the key travels in
  ``X-Certstore-Idempotency-Key``: a receiver seeing a mail twice knows it is the same.
- :class:`WebhookChannel` — an HTTP POST of the JSON body ``{"id", "kind", "created_at", "data"}`` with the headers
  ``X-Certstore-Idempotency-Key``, ``X-Certstore-Event``, ``X-Certstore-Timestamp`` (Unix seconds) and
  ``X-Certstore-Signature: sm3=<hex>`` — HMAC-SM3 (:func:`certstore.crypto.sm3.hmac_sm3`) under the subscriber's
  own secret over ``<timestamp>.<body>``. Any 2xx answer is a delivery; anything else, a failed attempt.

**An SMS gateway** is a channel a deployment adds behind the same protocol: a class with ``name = "sms"`` whose
``send`` posts to its gateway and raises :class:`DeliveryError` on a refusal, registered in the worker's channel
map; outbox rows name the channel they go to.
"""

from __future__ import annotations

import hmac
import json
import smtplib
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Any, Protocol

import httpx

from certstore.crypto.sm3 import hmac_sm3, sm3_hex
from certstore.services.notifications.messages import Message

__all__ = [
    "Channel",
    "DeliveryError",
    "Outgoing",
    "SmtpChannel",
    "WebhookChannel",
    "channels_from_env",
    "message_id",
    "sign",
    "verify_signature",
]

SIGNATURE_HEADER = "X-Certstore-Signature"
TIMESTAMP_HEADER = "X-Certstore-Timestamp"
KEY_HEADER = "X-Certstore-Idempotency-Key"
EVENT_HEADER = "X-Certstore-Event"


class DeliveryError(Exception):
    """One attempt failed (the message says why: an SMTP reply, an HTTP status, a network error)."""


@dataclass(frozen=True)
class Outgoing:
    """One outbox row ready to send: its key, kind, address, the composed message and (webhooks) the secret."""

    idempotency_key: str
    kind: str
    address: str
    message: Message
    created_at: datetime
    secret: bytes | None = None


class Channel(Protocol):
    """A way out: ``name`` is the channel outbox rows name (``email``, ``webhook``, ``sms`` …)."""

    name: str

    def send(self, outgoing: Outgoing) -> None:
        """Deliver ``outgoing`` or raise :class:`DeliveryError`."""
        ...


def message_id(idempotency_key: str, domain: str) -> str:
    """The mail's ``Message-ID``: the same for every delivery of one idempotency key."""
    return f"<{sm3_hex(idempotency_key.encode())[:40]}@{domain}>"


# --- SMTP --------------------------------------------------------------------------------------------------


@dataclass
class SmtpChannel:
    """Mail through an SMTP relay (module docstring)."""

    host: str
    port: int = 25
    sender: str = "certstore@localhost"
    username: str | None = None
    password: str | None = None
    starttls: bool = False
    timeout: float = 30.0
    cafile: str | None = None
    name: str = "email"

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> SmtpChannel | None:
        """The channel ``CERTSTORE_SMTP_*`` configure; None without ``CERTSTORE_SMTP_HOST``."""
        host = env.get("CERTSTORE_SMTP_HOST", "").strip()
        if not host:
            return None
        return cls(
            host=host,
            port=int(env.get("CERTSTORE_SMTP_PORT", "25")),
            sender=env.get("CERTSTORE_SMTP_FROM", "").strip() or f"certstore@{host}",
            username=env.get("CERTSTORE_SMTP_USER") or None,
            password=env.get("CERTSTORE_SMTP_PASSWORD") or None,
            starttls=env.get("CERTSTORE_SMTP_STARTTLS", "0").lower() in ("1", "true", "yes"),
            timeout=float(env.get("CERTSTORE_SMTP_TIMEOUT", "30")),
            cafile=env.get("CERTSTORE_SMTP_CAFILE") or None,
        )

    def mail(self, outgoing: Outgoing) -> EmailMessage:
        """The mail of ``outgoing`` (UTF-8, Chinese subject and body)."""
        mail = EmailMessage()
        domain = self.sender.rpartition("@")[2] or "certstore"
        mail["From"] = self.sender
        mail["To"] = outgoing.address
        mail["Subject"] = outgoing.message.subject
        mail["Date"] = format_datetime(outgoing.created_at)
        mail["Message-ID"] = message_id(outgoing.idempotency_key, domain)
        mail[KEY_HEADER] = outgoing.idempotency_key
        mail[EVENT_HEADER] = outgoing.kind
        mail.set_content(outgoing.message.body, charset="utf-8")
        return mail

    def send(self, outgoing: Outgoing) -> None:
        mail = self.mail(outgoing)
        try:
            with smtplib.SMTP(self.host, self.port, timeout=self.timeout) as smtp:
                if self.starttls:
                    smtp.starttls(context=ssl.create_default_context(cafile=self.cafile))
                if self.username:
                    smtp.login(self.username, self.password or "")
                refused = smtp.send_message(mail)
        except smtplib.SMTPResponseException as exc:
            raise DeliveryError(f"SMTP {exc.smtp_code}: {_text(exc.smtp_error)}") from exc
        except smtplib.SMTPRecipientsRefused as exc:
            codes = ", ".join(f"{code}" for code, _ in exc.recipients.values())
            raise DeliveryError(f"SMTP recipient refused ({codes})") from exc
        except (smtplib.SMTPException, OSError) as exc:
            raise DeliveryError(f"SMTP {type(exc).__name__}: {exc}") from exc
        if refused:
            raise DeliveryError("SMTP recipient refused")


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


# --- webhooks ----------------------------------------------------------------------------------------------


def sign(secret: bytes, timestamp: int, body: bytes) -> str:
    """The signature header's value: ``sm3=`` and the hex HMAC-SM3 of ``<timestamp>.<body>`` under ``secret``."""
    return "sm3=" + hmac_sm3(secret, str(timestamp).encode() + b"." + body).hex()


def verify_signature(
    secret: bytes,
    timestamp: str,
    body: bytes,
    signature: str,
    *,
    now: float | None = None,
    tolerance: int = 300,
) -> bool:
    """What a receiver checks: the signature is right and the timestamp within ``tolerance`` seconds of now."""
    try:
        stamp = int(timestamp)
    except ValueError:
        return False
    if abs((time.time() if now is None else now) - stamp) > tolerance:
        return False
    return hmac.compare_digest(sign(secret, stamp, body), signature)


def webhook_body(outgoing: Outgoing) -> bytes:
    """The JSON body of a webhook (UTF-8, keys sorted)."""
    document: dict[str, Any] = {
        "id": outgoing.idempotency_key,
        "kind": outgoing.kind,
        "created_at": outgoing.created_at.isoformat(),
        "subject": outgoing.message.subject,
        "data": outgoing.message.data,
    }
    return json.dumps(document, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode()


@dataclass
class WebhookChannel:
    """Signed webhooks (module docstring)."""

    timeout: float = 10.0
    name: str = "webhook"

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> WebhookChannel:
        return cls(timeout=float(env.get("CERTSTORE_WEBHOOK_TIMEOUT", "10")))

    def send(self, outgoing: Outgoing) -> None:
        if outgoing.secret is None:
            raise DeliveryError("the webhook subscription has no secret")
        body = webhook_body(outgoing)
        stamp = int(time.time())
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            KEY_HEADER: outgoing.idempotency_key,
            EVENT_HEADER: outgoing.kind,
            TIMESTAMP_HEADER: str(stamp),
            SIGNATURE_HEADER: sign(outgoing.secret, stamp, body),
        }
        try:
            response = httpx.post(outgoing.address, content=body, headers=headers, timeout=self.timeout)
        except httpx.HTTPError as exc:
            raise DeliveryError(f"webhook {type(exc).__name__}: {exc}") from exc
        if not 200 <= response.status_code < 300:
            raise DeliveryError(f"webhook answered HTTP {response.status_code}")


def channels_from_env(env: Mapping[str, str]) -> dict[str, Channel]:
    """The channels this process can use: mail when ``CERTSTORE_SMTP_HOST`` is set, webhooks always."""
    found: dict[str, Channel] = {"webhook": WebhookChannel.from_env(env)}
    smtp = SmtpChannel.from_env(env)
    if smtp is not None:
        found["email"] = smtp
    return found
