"""The repository's time-stamp authority over HTTP (RFC 3161 §3.4): ``POST /api/v1/tsa``.

Open to relying parties like the other verification services (no login): the body is a DER TimeStampReq sent as
``application/timestamp-query`` (at most 4 KiB — a request is under 100 bytes), the answer a DER TimeStampResp as
``application/timestamp-reply``, granted with a token signed by the key store's ``tsa`` key, or a rejection whose
PKIFailureInfo names the fault (:mod:`certstore.tsa.authority`). Every token costs an SM2 signature, so each
client address gets a token bucket (:class:`api.ratelimit.TokenBuckets`, the public status look-ups' limiter):
``CERTSTORE_TSA_RATE`` tokens a minute after a burst of ``CERTSTORE_TSA_BURST`` (defaults 600 and 60 — a
sealing run pointed at this endpoint asks for one token per file; rate 0 turns the limit off); over the limit,
``429`` with ``Retry-After``. A key store without a ``tsa`` key answers ``503``.
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Mapping

from fastapi import APIRouter, Request, Response
from starlette.concurrency import run_in_threadpool

from api.deps import ServicesDep
from api.problems import PROBLEM_RESPONSES, ProblemError, problem_response
from api.ratelimit import PublicRateLimit, TokenBuckets
from certstore.tsa import TimeStampAuthority, local_authority
from certstore.tsa.stampers import QUERY_MEDIA_TYPE, REPLY_MEDIA_TYPE

__all__ = ["MAX_QUERY_BYTES", "router", "tsa_rate_limit"]

router = APIRouter(tags=["verification"])

#: A TimeStampReq is well under 1 KiB; anything over 4 KiB is refused unread.
MAX_QUERY_BYTES = 4096
RATE_ENV, BURST_ENV = "CERTSTORE_TSA_RATE", "CERTSTORE_TSA_BURST"

_lock = threading.Lock()


def tsa_rate_limit(env: Mapping[str, str] = os.environ) -> PublicRateLimit:
    """The per-client limit of the TSA endpoint (``CERTSTORE_TSA_RATE`` a minute, bursts of ``…_BURST``)."""
    try:
        rate, burst = float(env.get(RATE_ENV, "600")), int(env.get(BURST_ENV, "60"))
    except ValueError:
        raise ValueError(f"{RATE_ENV} must be a number and {BURST_ENV} a whole number") from None
    if rate < 0 or burst < 1 or not math.isfinite(rate):
        raise ValueError(f"{RATE_ENV} must be ≥ 0 and {BURST_ENV} ≥ 1")
    return PublicRateLimit(rate, burst)


class _Tsa:
    """What the endpoint keeps per application: the authority (loaded once) and the client buckets."""

    def __init__(self, authority: TimeStampAuthority | None, limit: PublicRateLimit) -> None:
        self.authority, self.limit = authority, limit
        self.buckets = TokenBuckets(limit.rate / 60.0, limit.burst) if limit.enabled else None


def _tsa(services: ServicesDep) -> _Tsa:
    state = services.__dict__.get("_tsa_endpoint")
    if state is None:
        with _lock:
            state = services.__dict__.get("_tsa_endpoint")
            if state is None:
                state = _Tsa(local_authority(services.keystore), tsa_rate_limit())
                services.__dict__["_tsa_endpoint"] = state
    return state


_BINARY = {"schema": {"type": "string", "format": "binary"}}


@router.post(
    "/api/v1/tsa",
    summary="Time-stamp authority (RFC 3161 over HTTP): a DER TimeStampReq in, a DER TimeStampResp out",
    response_class=Response,
    openapi_extra={"requestBody": {"required": True, "content": {QUERY_MEDIA_TYPE: _BINARY}}},
    responses={
        200: {
            "content": {REPLY_MEDIA_TYPE: _BINARY},
            "description": "TimeStampResp: granted with a token (SM2, TSA certificate included on certReq), or "
            "a rejection with its PKIFailureInfo (badAlg, badRequest, badDataFormat …)",
        },
        413: PROBLEM_RESPONSES[422] | {"description": "Request over 4 KiB"},
        415: PROBLEM_RESPONSES[422] | {"description": "Not application/timestamp-query"},
        429: PROBLEM_RESPONSES[422]
        | {
            "description": "Too many time stamps for this address; retry after `Retry-After` seconds",
            "headers": {
                "Retry-After": {"description": "Seconds to wait", "schema": {"type": "integer", "minimum": 1}}
            },
        },
        503: PROBLEM_RESPONSES[422] | {"description": "This repository has no TSA key"},
    },
)
async def time_stamp(request: Request, services: ServicesDep) -> Response:
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != QUERY_MEDIA_TYPE:
        raise ProblemError(
            415,
            "unsupported-media-type",
            "Unsupported media type",
            f"send a DER TimeStampReq as {QUERY_MEDIA_TYPE}",
        )
    tsa = _tsa(services)
    if tsa.buckets is not None:
        client = request.client
        wait = tsa.buckets.take(client.host if client else "")
        if wait > 0.0:
            retry_after = max(1, math.ceil(wait))
            return problem_response(
                request,
                429,
                "rate-limited",
                "Too many requests",
                f"at most {tsa.limit.rate:g} time stamps a minute from one address (bursts of "
                f"{tsa.limit.burst}); retry after {retry_after} s",
                headers={"Retry-After": str(retry_after)},
            )
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_QUERY_BYTES:
        raise _too_large()
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_QUERY_BYTES:
            raise _too_large()
    if tsa.authority is None:
        raise ProblemError(
            503, "tsa-unavailable", "No time-stamp authority", "this repository's key store has no 'tsa' key"
        )
    reply = await run_in_threadpool(tsa.authority.respond, bytes(body))
    return Response(reply, media_type=REPLY_MEDIA_TYPE, headers={"Cache-Control": "no-store"})


def _too_large() -> ProblemError:
    return ProblemError(
        413, "request-too-large", "Request too large", f"a TimeStampReq is at most {MAX_QUERY_BYTES} bytes"
    )
