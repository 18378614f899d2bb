"""Per-client rate limit of the anonymous requests that read or write the database: the status look-ups (the QR
code's page ``/v/…`` and ``GET /api/v1/public/certificates/…``) and the holder's login start
(``/holder/login/start``, which stores a pending login before the browser goes to the identity provider): a token
bucket per client address, in memory, per process, shared by both kinds.

Each address may make ``burst`` requests at once and then ``rate`` per minute (defaults 10 and 30;
``CERTSTORE_PUBLIC_BURST``, ``CERTSTORE_PUBLIC_RATE``; a rate of 0 turns the limit off). A request over the limit
is answered ``429 Too Many Requests`` as an RFC 9457 problem (type ``…/problems/rate-limited``) with
``Retry-After`` in seconds, before any database work. With several API workers each keeps its own buckets, so an
address gets up to ``workers × rate`` overall; the limit makes enumerating identifiers slow, it does not count
exactly. The client address is the connection's peer (``scope["client"]``), or behind a reverse proxy the address
that proxy forwards — only when the proxy is configured (``CERTSTORE_TRUSTED_PROXIES``, ``certstore serve
--trusted-proxy``; :mod:`api.proxies`): otherwise a client could pick a fresh address per request with
``X-Forwarded-For`` and never be limited.
"""

from __future__ import annotations

import math
import os
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from api.problems import problem_response

__all__ = [
    "HOLDER_LOGIN_START",
    "PUBLIC_STATUS_PATHS",
    "PublicRateLimit",
    "RateLimitMiddleware",
    "TokenBuckets",
    "document_rate_limit",
]

#: The anonymous status look-ups: the QR code's page (by identifier or short code) and the API's public status.
PUBLIC_STATUS_PATHS = re.compile(r"^/v/[^/]+$|^/api/v1/public/certificates/[^/]+/status$")
#: The holder's login start (一号登录): each request stores a pending login (``holders.begin_login``).
HOLDER_LOGIN_START = "/holder/login/start"

RATE_ENV = "CERTSTORE_PUBLIC_RATE"
BURST_ENV = "CERTSTORE_PUBLIC_BURST"


@dataclass(frozen=True)
class PublicRateLimit:
    """``rate`` requests per minute per client after a burst of ``burst``; ``rate`` 0: no limit."""

    rate: float = 30.0
    burst: int = 10

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> PublicRateLimit:
        try:
            rate = float(env.get(RATE_ENV, "30"))
            burst = int(env.get(BURST_ENV, "10"))
        except ValueError:
            raise ValueError(f"{RATE_ENV} must be a number and {BURST_ENV} a whole number") from None
        if rate < 0 or burst < 1 or not math.isfinite(rate):
            raise ValueError(f"{RATE_ENV} must be ≥ 0 and {BURST_ENV} ≥ 1")
        return cls(rate, burst)

    @property
    def enabled(self) -> bool:
        return self.rate > 0


class TokenBuckets:
    """One token bucket per key: ``burst`` tokens, refilled at ``rate_per_s``. At most ``max_keys`` buckets are
    kept; beyond that the least recently used are forgotten (a forgotten key starts again with a full bucket)."""

    def __init__(
        self,
        rate_per_s: float,
        burst: int,
        *,
        max_keys: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rate_per_s, self.burst, self.max_keys, self.clock = rate_per_s, burst, max_keys, clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # key → (tokens, at)
        self._lock = threading.Lock()

    def take(self, key: str) -> float:
        """Take a token for ``key``: 0.0 when granted, else the seconds until one is available."""
        now = self.clock()
        with self._lock:
            tokens, at = self._buckets.pop(key, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - at) * self.rate_per_s)
            if tokens >= 1.0:
                self._buckets[key] = (tokens - 1.0, now)
                wait = 0.0
            else:
                self._buckets[key] = (tokens, now)
                wait = (1.0 - tokens) / self.rate_per_s
            while len(self._buckets) > self.max_keys:
                self._buckets.popitem(last=False)
        return wait

    def __len__(self) -> int:
        return len(self._buckets)


class RateLimitMiddleware:
    """ASGI middleware: the :class:`TokenBuckets` of ``limit`` over GET/HEAD requests to
    :data:`PUBLIC_STATUS_PATHS` and :data:`HOLDER_LOGIN_START`, keyed by client address; everything else passes
    untouched."""

    def __init__(self, app: ASGIApp, limit: PublicRateLimit | None = None) -> None:
        self.app = app
        self.limit = limit or PublicRateLimit.from_env()
        self.buckets = TokenBuckets(self.limit.rate / 60.0, self.limit.burst) if self.limit.enabled else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            self.buckets is None
            or scope["type"] != "http"
            or scope["method"] not in ("GET", "HEAD")
            or not (scope["path"] == HOLDER_LOGIN_START or PUBLIC_STATUS_PATHS.match(scope["path"]))
        ):
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        wait = self.buckets.take(client[0] if client else "")
        if wait <= 0.0:
            await self.app(scope, receive, send)
            return
        retry_after = max(1, math.ceil(wait))
        response = problem_response(
            Request(scope),
            429,
            "rate-limited",
            "Too many requests",
            f"at most {self.limit.rate:g} status look-ups and login starts a minute from one address "
            f"(bursts of {self.limit.burst}); retry after {retry_after} s",
            headers={"Retry-After": str(retry_after)},
        )
        await response(scope, receive, send)


def document_rate_limit(document: dict[str, Any]) -> None:
    """Add the 429 answer to the GET operations of ``document`` (an OpenAPI document) that the limit covers."""
    for path, operations in document.get("paths", {}).items():
        if PUBLIC_STATUS_PATHS.match(re.sub(r"\{[^}/]+\}", "x", path)) and "get" in operations:
            operations["get"].setdefault("responses", {})["429"] = {
                "description": "Too many status look-ups from this address; retry after `Retry-After` seconds",
                "headers": {
                    "Retry-After": {
                        "description": "Seconds until the next look-up is accepted",
                        "schema": {"type": "integer", "minimum": 1},
                    }
                },
            }
