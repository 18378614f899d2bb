"""Notifications (通知): what reaches a holder — and an issuing agency — when something happens to a certificate.

The events: issuance of a version (发放: 签发, 变更, 延续 — kind ``issued``), a status change (挂起, 恢复, 吊销, 注销,
废止 — ``status_changed``), an expiry reminder N days before ``valid_until`` (``expiry_reminder``,
:mod:`.reminders`), the answer to a review request (复核 — ``review_answered``), and an annual inspection due
(年检 — ``inspection_due``, to the issuing agency).

**A transactional outbox.** :func:`enqueue` writes one row per recipient into ``notification_outbox`` in the
caller's session, inside the transaction of the event itself: a rolled-back issuance leaves no notification, a
committed one always has its rows. The worker (:mod:`.worker`) delivers them afterwards through the channels
(:mod:`.channels`: mail over SMTP, signed webhooks; an SMS gateway is a channel a deployment adds behind the same
protocol) — at least once, retried with back-off, never lost on a crash. Each row carries its idempotency key (a
mail's ``Message-ID``, a webhook's ``X-Certstore-Idempotency-Key`` header) so a receiver de-duplicates the rare
second delivery after a crash between sending and recording it; the key is unique per (key, channel), so writing
the same event twice writes it once.

**Who receives what.** The holder — at the mail address and webhook of their contact (:func:`set_contact`, the
holder's own call, audited as a change) — for ``issued``, ``status_changed``, ``expiry_reminder`` and
``review_answered``; the issuing agency's webhook subscriptions (:func:`subscribe`, the operator's call) for
``inspection_due``. A holder with no contact receives nothing (我的证照 still shows everything). Messages carry the
certificate's name, number, the change and its public status URL — never an ID number.
"""

from __future__ import annotations

import ipaddress
import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from sqlalchemy import bindparam, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from certstore.access import AccessDeniedError, Role
from certstore.services import calls
from certstore.services.calls import Call
from certstore.store.models import HolderContactRow, NotificationOutboxRow, WebhookSubscriptionRow

if TYPE_CHECKING:
    from certstore.app import Application
    from certstore.store.repository import Repository

__all__ = [
    "AGENCY_KINDS",
    "HOLDER_KINDS",
    "KEEP",
    "KINDS",
    "Contact",
    "ContactError",
    "Subscription",
    "contact_of",
    "enqueue",
    "enqueue_at",
    "set_contact",
    "subscribe",
    "subscriptions",
    "unsubscribe",
]

ISSUED = "issued"  # 发放: a new version (签发, 变更, 延续)
STATUS_CHANGED = "status_changed"  # 状态变更: 挂起, 恢复, 吊销, 注销, 废止
EXPIRY_REMINDER = "expiry_reminder"  # 到期提醒
REVIEW_ANSWERED = "review_answered"  # 复核答复
INSPECTION_DUE = "inspection_due"  # 年检到期 (to the issuing agency)

#: Every kind of notification, and those that go to the holder.
KINDS = (ISSUED, STATUS_CHANGED, EXPIRY_REMINDER, REVIEW_ANSWERED, INSPECTION_DUE)
HOLDER_KINDS = (ISSUED, STATUS_CHANGED, EXPIRY_REMINDER, REVIEW_ANSWERED)
#: The kinds an issuing agency's webhook subscription receives.
AGENCY_KINDS = (INSPECTION_DUE,)

EMAIL = "email"
WEBHOOK = "webhook"

_EMAIL = re.compile(
    r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+"
)
_KEY_MAX = 200
_URL_MAX = 500
_SECRET_BYTES = 32


class ContactError(ValueError):
    """A contact or subscription the repository refuses: a malformed mail address or webhook URL, an unknown kind."""


@dataclass(frozen=True)
class Contact:
    """A holder's contact. ``webhook_secret``: the hex key the holder's receiver checks the SM3-HMAC signature
    with (:mod:`.channels`), shown to the holder; None without a webhook."""

    holder_ref: str
    email: str | None
    webhook_url: str | None
    webhook_secret: str | None
    updated_at: datetime


@dataclass(frozen=True)
class Subscription:
    """A webhook receiver: ``subscriber`` is ``holder:<holder_ref>`` or ``org:<credit code>``."""

    id: int
    subscriber: str
    url: str
    secret: str  # hex
    kinds: tuple[str, ...]
    created_at: datetime
    disabled_at: datetime | None


def _subscription(row: WebhookSubscriptionRow) -> Subscription:
    return Subscription(
        id=row.id,
        subscriber=row.subscriber,
        url=row.url,
        secret=row.secret.hex(),
        kinds=tuple(k for k in row.kinds.split(",") if k),
        created_at=row.created_at,
        disabled_at=row.disabled_at,
    )


# --- checking what people type ---------------------------------------------------------------------------


def check_email(email: str | None) -> str | None:
    """The mail address, trimmed, or None for none; :class:`ContactError` when it is not an address."""
    if email is None or not email.strip():
        return None
    email = email.strip()
    if len(email) > 254 or not _EMAIL.fullmatch(email):
        raise ContactError(f"not a mail address: {email[:80]!r}")
    return email


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_webhook_url(url: str | None) -> str | None:
    """The webhook URL, or None for none: ``https://`` (``http://`` only to this host's loopback, for a receiver
    on the same machine); :class:`ContactError` otherwise."""
    if url is None or not url.strip():
        return None
    url = url.strip()
    if len(url) > _URL_MAX:
        raise ContactError(f"the webhook URL is longer than {_URL_MAX} characters")
    parts = urlsplit(url)
    host = parts.hostname or ""
    if not host or parts.username or parts.password:
        raise ContactError("the webhook URL needs a host and no user name or password")
    if parts.scheme == "https" or (parts.scheme == "http" and _loopback(host)):
        return url
    raise ContactError("the webhook URL must be https:// (http:// only to the loopback address)")


def _check_kinds(kinds: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    unknown = [k for k in kinds if k not in AGENCY_KINDS]
    if unknown or not kinds:
        raise ContactError(
            f"kinds must be some of {', '.join(AGENCY_KINDS)}; got {', '.join(kinds) or 'none'}"
        )
    return tuple(dict.fromkeys(kinds))


# --- the holder's contact --------------------------------------------------------------------------------


def _holder_of(call: Call) -> str:
    actor = call.actor
    if actor.role is not Role.HOLDER or not actor.holder_ref:
        raise AccessDeniedError("only a holder logged in by one ID sets or reads their own contact")
    return actor.holder_ref


def _contact(session: Session, holder: str) -> Contact | None:
    row = session.get(HolderContactRow, holder)
    hook = _active_subscriptions(session, f"holder:{holder}")
    if row is None and not hook:
        return None
    return Contact(
        holder_ref=holder,
        email=row.email if row is not None else None,
        webhook_url=hook[0].url if hook else None,
        webhook_secret=hook[0].secret.hex() if hook else None,
        updated_at=row.updated_at if row is not None else hook[0].created_at,
    )


def _active(subscriber: object) -> tuple[Any, ...]:
    """The WHERE of a subscriber's active subscriptions (``subscriber``: a value or a bound parameter)."""
    return WebhookSubscriptionRow.subscriber == subscriber, WebhookSubscriptionRow.disabled_at.is_(None)


def _active_subscriptions(session: Session, subscriber: str) -> list[WebhookSubscriptionRow]:
    query = select(WebhookSubscriptionRow).where(*_active(subscriber)).order_by(WebhookSubscriptionRow.id)
    return list(session.scalars(query))


class _Keep:
    """The default of :func:`set_contact`'s ``webhook_url``: leave the webhook as it is."""

    def __repr__(self) -> str:
        return "KEEP"


#: ``set_contact(..., webhook_url=KEEP)`` (the default): the holder's webhook stays as it is.
KEEP = _Keep()


def set_contact(
    app: Application, call: Call, *, email: str | None, webhook_url: str | _Keep | None = KEEP
) -> Contact:
    """Set the calling holder's contact (the holder's own call: :class:`AccessDeniedError` for anyone else): the
    mail address (None: no mail) and optionally a webhook URL (None: none; omitted: the current one is kept — so a
    login that passes only the verified ``email`` claim leaves the webhook alone). A new or changed webhook URL gets
    a new secret (returned in the contact); the same URL keeps its secret. One transaction with its audit entry
    (``holder.contact``, which records what is set — never the address). :class:`ContactError` for bad input."""
    holder = _holder_of(call)
    email = check_email(email)
    keep_webhook = isinstance(webhook_url, _Keep)
    url = None if isinstance(webhook_url, _Keep) else check_webhook_url(webhook_url)
    at = app.now()
    with app.repo.db.session() as session:
        row = session.get(HolderContactRow, holder)
        if row is None:
            row = HolderContactRow(holder_ref=holder, email=email, updated_at=at)
            session.add(row)
        else:
            row.email, row.updated_at = email, at
        current = _active_subscriptions(session, f"holder:{holder}")
        if not keep_webhook:
            kept = [s for s in current if s.url == url][:1]
            for sub in current:
                if sub not in kept:
                    sub.disabled_at = at
            if url is not None and not kept:
                session.add(WebhookSubscriptionRow(
                    subscriber=f"holder:{holder}", url=url, secret=secrets.token_bytes(_SECRET_BYTES),
                    kinds=",".join(HOLDER_KINDS), created_at=at,
                ))  # fmt: skip
        session.flush()
        contact = _contact(session, holder)
        assert contact is not None
        calls.audit_in(session, call, call.event(
            "holder.contact", holder_digest=holder,
            details={"email": contact.email is not None, "webhook": contact.webhook_url is not None},
        ))  # fmt: skip
    return contact


def contact_of(app: Application, call: Call) -> Contact | None:
    """The calling holder's contact (None if never set); :class:`AccessDeniedError` for anyone but a holder."""
    holder = _holder_of(call)
    with app.repo.db.session(readonly=True) as session:
        return _contact(session, holder)


# --- agencies' webhook subscriptions ---------------------------------------------------------------------


def subscribe(
    app: Application,
    call: Call,
    *,
    organisation_code: str,
    url: str,
    kinds: tuple[str, ...] = (INSPECTION_DUE,),
) -> Subscription:
    """Subscribe an issuing agency's system to signed webhooks of ``kinds`` (default: annual inspections due) —
    the operator's call (:class:`AccessDeniedError` otherwise); returns the subscription with its new secret,
    which the agency's receiver checks signatures with. Audited (``notification.subscribe``)."""
    if call.actor.role is not Role.OPERATOR:
        raise AccessDeniedError("only the operator subscribes an agency to webhooks")
    checked = check_webhook_url(url)
    if checked is None:
        raise ContactError("a subscription needs a URL")
    code = organisation_code.strip()
    if not code or len(code) > 32:
        raise ContactError("a subscription needs the agency's credit code")
    wanted = _check_kinds(kinds)
    with app.repo.db.session() as session:
        row = WebhookSubscriptionRow(
            subscriber=f"org:{code}", url=checked, secret=secrets.token_bytes(_SECRET_BYTES),
            kinds=",".join(wanted), created_at=app.now(),
        )  # fmt: skip
        session.add(row)
        session.flush()
        calls.audit_in(session, call, call.event(
            "notification.subscribe", details={"subscriber": row.subscriber, "subscription": row.id,
                                               "kinds": list(wanted)},
        ))  # fmt: skip
        return _subscription(row)


def unsubscribe(app: Application, call: Call, subscription_id: int) -> Subscription:
    """Disable a subscription (the operator's call); rows already in the outbox for it are still delivered."""
    if call.actor.role is not Role.OPERATOR:
        raise AccessDeniedError("only the operator removes a webhook subscription")
    with app.repo.db.session() as session:
        row = session.get(WebhookSubscriptionRow, subscription_id)
        if row is None:
            raise LookupError(f"no webhook subscription {subscription_id}")
        if row.disabled_at is None:
            row.disabled_at = app.now()
            calls.audit_in(session, call, call.event(
                "notification.unsubscribe", details={"subscriber": row.subscriber, "subscription": row.id},
            ))  # fmt: skip
        return _subscription(row)


def subscriptions(app: Application) -> list[Subscription]:
    """Every webhook subscription, oldest first (the operator's listing)."""
    with app.repo.db.session(readonly=True) as session:
        return [
            _subscription(r)
            for r in session.scalars(select(WebhookSubscriptionRow).order_by(WebhookSubscriptionRow.id))
        ]


# --- the outbox: writing ---------------------------------------------------------------------------------


#: What :func:`_recipients` asks at every issuance and status change, built once with bound parameters: columns,
#: not ORM objects, and no statement construction per call.
_CONTACT_EMAIL = select(HolderContactRow.email).where(HolderContactRow.holder_ref == bindparam("holder_ref"))
_ACTIVE_HOOKS = (
    select(WebhookSubscriptionRow.id, WebhookSubscriptionRow.url, WebhookSubscriptionRow.kinds)
    .where(*_active(bindparam("subscriber")))
    .order_by(WebhookSubscriptionRow.id)
)


def _recipients(
    session: Session, kind: str, holder_ref: str, payload: dict[str, Any]
) -> list[tuple[str, str, int | None]]:
    """(channel, address, subscription id) of everyone ``kind`` goes to."""
    found: list[tuple[str, str, int | None]] = []
    if kind in HOLDER_KINDS:
        email = session.scalar(_CONTACT_EMAIL, {"holder_ref": holder_ref})
        if email:
            found.append((EMAIL, email, None))
        subscriber = f"holder:{holder_ref}"
    else:
        issuer = payload.get("issuer_code")
        if not issuer:
            return found
        subscriber = f"org:{issuer}"
    subscriptions = session.execute(_ACTIVE_HOOKS, {"subscriber": subscriber})
    found.extend(
        (f"{WEBHOOK}:{id_}", url, id_) for id_, url, kinds in subscriptions if kind in kinds.split(",")
    )
    return found


def enqueue(
    session: Session,
    app: Application | Repository,
    *,
    kind: str,
    holder_ref: str,
    subject_id: str,
    payload: dict[str, Any],
    idempotency_key: str,
) -> None:
    """Write the notification of ``kind`` into the outbox, in ``session``'s transaction — one row per recipient
    (the holder's mail and webhook; for ``inspection_due`` the webhooks of the agency ``payload["issuer_code"]``),
    each unique per (``idempotency_key``, channel): writing the same key again adds nothing. ``payload``: what the
    message shows (JSON; certificate name and number, ``identifier``, the change — never an ID number); the public
    status URL is added at delivery from the application's public URL. Nothing is written when there is no
    recipient."""
    enqueue_at(session, app.now(), kind=kind, holder_ref=holder_ref, subject_id=subject_id, payload=payload,
               idempotency_key=idempotency_key)  # fmt: skip


def enqueue_at(
    session: Session,
    now: datetime,
    *,
    kind: str,
    holder_ref: str,
    subject_id: str,
    payload: dict[str, Any],
    idempotency_key: str,
) -> None:
    """:func:`enqueue` at the time ``now`` (the event's own time, for use cases that have no application)."""
    if kind not in KINDS:
        raise ValueError(f"unknown notification kind {kind!r}")
    if not idempotency_key or len(idempotency_key) > _KEY_MAX:
        raise ValueError(f"an idempotency key of 1 to {_KEY_MAX} characters is needed")
    recipients = _recipients(session, kind, holder_ref, payload)
    if not recipients:
        return
    rows = [
        {
            "idempotency_key": idempotency_key, "kind": kind, "holder_ref": holder_ref,
            "subject_id": subject_id[:128], "channel": channel, "address": address, "subscription_id": sub,
            "payload": payload, "status": "pending", "attempts": 0, "next_attempt_at": now, "created_at": now,
        }
        for channel, address, sub in recipients
    ]  # fmt: skip
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = insert(NotificationOutboxRow).on_conflict_do_nothing(
        index_elements=["idempotency_key", "channel"]
    )
    session.execute(statement, rows)
