"""Getting a time-stamp token (时间戳) for a message: the :class:`TimeStamper` protocol sealing calls.

``stamp(message)`` returns the DER TimeStampToken whose message imprint is SM3(message) — for a seal signature,
the signature value (GB/T 38540 §7.2 b) 5). Two implementations:

* :class:`LocalTimeStamper` — this repository's own TSA key, in process (one SM2 signature per token);
* :class:`HttpTimeStamper` — an external TSA (RFC 3161 §3.4): POST a DER TimeStampReq (a fresh 64-bit nonce,
  certReq true) as ``application/timestamp-query``, read ``application/timestamp-reply``.

Both hand back only a token that answers the request: status granted, the same imprint and nonce, the TSA
certificate included, its SM2 signature verifying, that certificate asserting id-kp-timeStamping
(:func:`check_reply`). Everything that goes wrong is a
:class:`TimeStampError` — :class:`TimeStampTransportError` (network, HTTP status), :class:`TimeStampRejectedError`
(the TSA said no, with its PKIFailureInfo) or :class:`TimeStampReplyError` (the reply does not answer).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from asn1crypto import tsp

from certstore.crypto import oids
from certstore.crypto.sm2 import Signer
from certstore.crypto.x509 import Certificate

from .authority import TimeStampAuthority
from .tokens import ACCEPTED_HASHES, TokenError, parse_response, read_token

if TYPE_CHECKING:  # the HTTP client is imported by the HTTP stamper when it stamps: start-up of every command
    import httpx

__all__ = [
    "QUERY_MEDIA_TYPE",
    "REPLY_MEDIA_TYPE",
    "HttpTimeStamper",
    "LocalTimeStamper",
    "TimeStampError",
    "TimeStampRejectedError",
    "TimeStampReplyError",
    "TimeStampRequest",
    "TimeStampTransportError",
    "TimeStamper",
    "build_request",
    "check_reply",
]

QUERY_MEDIA_TYPE = "application/timestamp-query"
REPLY_MEDIA_TYPE = "application/timestamp-reply"
#: A reply is a token with a certificate chain: a few KiB. Anything far larger is not a reply.
MAX_REPLY_BYTES = 1 << 20


@runtime_checkable
class TimeStamper(Protocol):
    """Whatever obtains time-stamp tokens: ``stamp(message)`` → DER TimeStampToken over SM3(message)."""

    def stamp(self, message: bytes) -> bytes: ...


class TimeStampError(RuntimeError):
    """No usable time-stamp token was obtained."""


class TimeStampTransportError(TimeStampError):
    """The TSA could not be reached, or answered with an HTTP error or something other than a reply."""


class TimeStampRejectedError(TimeStampError):
    """The TSA answered with a status other than granted; ``failure_info`` holds its PKIFailureInfo bits."""

    def __init__(self, message: str, status: str, failure_info: frozenset[str]) -> None:
        super().__init__(message)
        self.status, self.failure_info = status, failure_info


class TimeStampReplyError(TimeStampError):
    """The reply does not answer the request (unreadable, other imprint or nonce, bad signature …)."""


@dataclass(frozen=True)
class TimeStampRequest:
    """A DER TimeStampReq and what its reply must echo (``nonce`` None: a request without one)."""

    der: bytes
    hash_algorithm: str
    digest: bytes
    nonce: int | None
    cert_req: bool


def build_request(
    message: bytes, *, hash_algorithm: str = oids.SM3, nonce: int | None = None, cert_req: bool = True
) -> TimeStampRequest:
    """A TimeStampReq (version 1) for the imprint ``hash_algorithm``(message), with ``nonce`` (default: 64
    random bits) and certReq."""
    hash_fn = ACCEPTED_HASHES.get(hash_algorithm)
    if hash_fn is None:
        raise ValueError(f"hash {hash_algorithm} is not SM3 or SHA-256")
    digest = hash_fn(message)
    nonce = int.from_bytes(os.urandom(8), "big") if nonce is None else nonce
    der = tsp.TimeStampReq(
        {
            "version": "v1",
            "message_imprint": {"hash_algorithm": {"algorithm": hash_algorithm}, "hashed_message": digest},
            "nonce": nonce,
            "cert_req": cert_req,
        }
    ).dump()
    return TimeStampRequest(der, hash_algorithm, digest, nonce, cert_req)


def check_reply(reply: bytes, request: TimeStampRequest) -> bytes:
    """The token of ``reply`` (DER TimeStampResp) when it answers ``request``; else a :class:`TimeStampError`."""
    try:
        parsed = parse_response(reply)
    except TokenError as exc:
        raise TimeStampReplyError(str(exc)) from None
    if not parsed.granted:
        failures = ", ".join(sorted(parsed.failure_info)) or "no failure info"
        raise TimeStampRejectedError(
            f"the TSA refused the request: {parsed.status} ({failures}){': ' + parsed.status_text if parsed.status_text else ''}",
            parsed.status,
            parsed.failure_info,
        )
    if parsed.token is None:
        raise TimeStampReplyError("status granted but no timeStampToken in the reply")
    return check_token(parsed.token, request)


def check_token(token: bytes, request: TimeStampRequest) -> bytes:
    """``token`` when it answers ``request`` (imprint, nonce, TSA certificate, signature); else an error."""
    try:
        info = read_token(token)
    except TokenError as exc:
        raise TimeStampReplyError(str(exc)) from None
    if (info.hash_algorithm, info.hashed_message) != (request.hash_algorithm, request.digest):
        raise TimeStampReplyError("the token's message imprint is not the one requested")
    if info.nonce != request.nonce:
        raise TimeStampReplyError(f"the token's nonce {info.nonce} is not the request's {request.nonce}")
    if info.tsa_certificate is None:
        if request.cert_req:
            raise TimeStampReplyError("certReq was set but the token does not carry the TSA certificate")
        return info.der
    if not info.signature_verifies():
        raise TimeStampReplyError(
            f"the token's signature does not verify with the key of {info.tsa_certificate.subject!r}"
        )
    purposes = info.tsa_certificate.extended_key_usage
    if purposes is None or oids.TIME_STAMPING not in purposes:
        raise TimeStampReplyError(
            f"the token is signed by {info.tsa_certificate.subject!r}, whose certificate lacks the extended key "
            "usage id-kp-timeStamping: verifiers would refuse it"
        )
    return info.der


def _utc_now() -> datetime:
    return datetime.now(UTC)


class LocalTimeStamper:
    """This repository's own TSA, in process: ``stamp`` signs one token (no request/response round trip)."""

    def __init__(
        self,
        signer: Signer,
        certificate: Certificate,
        chain: Sequence[Certificate] = (),
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        self.authority = TimeStampAuthority(signer, certificate, chain, clock=clock)

    @classmethod
    def of(cls, authority: TimeStampAuthority) -> LocalTimeStamper:
        return cls(authority.signer, authority.certificate, authority.chain, authority.clock)

    def stamp(self, message: bytes) -> bytes:
        return self.authority.issue(oids.SM3, ACCEPTED_HASHES[oids.SM3](message), cert_req=True)

    def __repr__(self) -> str:
        return f"LocalTimeStamper({self.authority.certificate.subject!r})"


class HttpTimeStamper:
    """An external TSA over HTTP (RFC 3161 §3.4); ``timeout`` in seconds per request. Thread-safe: one
    connection pool per instance, made on first use (and not pickled)."""

    def __init__(
        self,
        url: str,
        timeout: float = 10.0,
        *,
        hash_algorithm: str = oids.SM3,
        headers: Mapping[str, str] | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"TSA URL {url!r} is not an http:// or https:// URL")
        if hash_algorithm not in ACCEPTED_HASHES:
            raise ValueError(f"hash {hash_algorithm} is not SM3 or SHA-256")
        self.url, self.timeout, self.hash_algorithm = url, timeout, hash_algorithm
        self.headers = dict(headers or {})
        self._transport = transport
        self._client: httpx.Client | None = None
        self._lock = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state.update(_client=None, _lock=None, _transport=None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"HttpTimeStamper({self.url!r})"

    def _http(self) -> httpx.Client:
        import httpx

        with self._lock:
            if self._client is None:
                self._client = httpx.Client(timeout=self.timeout, transport=self._transport)
            return self._client

    def stamp(self, message: bytes) -> bytes:
        import httpx

        request = build_request(message, hash_algorithm=self.hash_algorithm)
        headers = {**self.headers, "Content-Type": QUERY_MEDIA_TYPE, "Accept": REPLY_MEDIA_TYPE}
        try:
            response = self._http().post(self.url, content=request.der, headers=headers)
        except httpx.HTTPError as exc:
            raise TimeStampTransportError(f"TSA {self.url}: {type(exc).__name__}: {exc}") from exc
        if response.status_code != 200:
            raise TimeStampTransportError(
                f"TSA {self.url} answered HTTP {response.status_code}: {response.text[:200]!r}"
            )
        media_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
        if media_type != REPLY_MEDIA_TYPE:
            raise TimeStampTransportError(
                f"TSA {self.url} answered {media_type or 'no content type'}, not {REPLY_MEDIA_TYPE}"
            )
        if len(response.content) > MAX_REPLY_BYTES:
            raise TimeStampReplyError(f"TSA {self.url}: a {len(response.content)}-byte reply is not a reply")
        return check_reply(response.content, request)

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None
