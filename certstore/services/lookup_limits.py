"""Per-clerk limits on window look-ups (窗口查询限流) and the alert on look-up bursts (批量查询告警).

Every window look-up (:mod:`certstore.services.sharing`: read, history, status, preview, copy, the holder's
certificates, attach) first takes a token from the clerk's bucket — one bucket per principal (``ORGCODE/name``),
``burst`` tokens refilled at ``rate`` per minute. An empty bucket refuses the look-up with
:class:`LookupRateLimitedError` (the API answers 429 with ``Retry-After``; the use case audits it as a denial),
before anything is read.

Separately, the holders a clerk looks up (allowed or refused) are counted in a sliding window: when a clerk has
named more than ``alert_holders`` distinct holders within ``alert_window`` seconds, the look-up that crossed the
line raises the alert once per window — the counter ``certstore_window_lookup_bursts_total{organisation}`` and an
audit entry ``holder.lookup_burst`` (the clerk, the number of holders, the window; written by the use case). A
clerk at a busy counter serves perhaps one holder every few minutes; twenty different holders in ten minutes is
someone walking through ID numbers.

Configuration (the process environment, or the environment the application was opened with):

=====================================  =======  ====================================================
``CERTSTORE_LOOKUP_RATE``              60       look-ups per minute per clerk after the burst (0: no limit)
``CERTSTORE_LOOKUP_BURST``             60       look-ups a clerk may make at once
``CERTSTORE_LOOKUP_ALERT_HOLDERS``     20       distinct holders per window that raise the alert (0: off)
``CERTSTORE_LOOKUP_ALERT_WINDOW``      600      the alert's sliding window, in seconds
=====================================  =======  ====================================================

The state is kept in memory, per process (like the public look-ups' limiter, :mod:`api.ratelimit`): with several
API workers a clerk gets up to ``workers × rate`` overall and each worker counts holders on its own. The limit
makes walking through holders slow; the scope rule (registered matters, :mod:`certstore.services.scope`) is what
forbids it.
"""

from __future__ import annotations

import math
import os
import threading
import time
import weakref
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, generate_latest

from certstore.access import AccessDeniedError

if TYPE_CHECKING:
    from certstore.app import Application

__all__ = [
    "REGISTRY",
    "LookupGuard",
    "LookupLimits",
    "LookupRateLimitedError",
    "guard_of",
    "install",
    "metrics_text",
]

RATE_ENV = "CERTSTORE_LOOKUP_RATE"
BURST_ENV = "CERTSTORE_LOOKUP_BURST"
ALERT_HOLDERS_ENV = "CERTSTORE_LOOKUP_ALERT_HOLDERS"
ALERT_WINDOW_ENV = "CERTSTORE_LOOKUP_ALERT_WINDOW"

#: This process's look-up metrics (served by the API's ``/metrics`` next to the exchange's).
REGISTRY = CollectorRegistry(auto_describe=True)
LOOKUPS = Counter(
    "certstore_window_lookups",
    "Window look-ups by the limiter's decision",
    ["outcome"],  # admitted | rate_limited
    registry=REGISTRY,
)
BURSTS = Counter(
    "certstore_window_lookup_bursts",
    "Look-up bursts: a clerk named more distinct holders within the alert window than allowed",
    ["organisation"],
    registry=REGISTRY,
)


class LookupRateLimitedError(AccessDeniedError):
    """The clerk's look-ups exceed the per-clerk limit; ``retry_after`` seconds until the next is allowed."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclass(frozen=True)
class LookupLimits:
    """``rate`` look-ups per minute per clerk after a burst of ``burst``; the alert at more than
    ``alert_holders`` distinct holders within ``alert_window`` seconds."""

    rate: float = 60.0
    burst: int = 60
    alert_holders: int = 20
    alert_window: float = 600.0

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> LookupLimits:
        try:
            limits = cls(
                float(env.get(RATE_ENV, "60")),
                int(env.get(BURST_ENV, "60")),
                int(env.get(ALERT_HOLDERS_ENV, "20")),
                float(env.get(ALERT_WINDOW_ENV, "600")),
            )
        except ValueError:
            raise ValueError(
                f"{RATE_ENV} and {ALERT_WINDOW_ENV} must be numbers, {BURST_ENV} and {ALERT_HOLDERS_ENV} whole numbers"
            ) from None
        if not (math.isfinite(limits.rate) and math.isfinite(limits.alert_window)):
            raise ValueError(f"{RATE_ENV} and {ALERT_WINDOW_ENV} must be finite")
        if limits.rate < 0 or limits.burst < 1 or limits.alert_holders < 0 or limits.alert_window <= 0:
            raise ValueError(
                f"{RATE_ENV} ≥ 0, {BURST_ENV} ≥ 1, {ALERT_HOLDERS_ENV} ≥ 0, {ALERT_WINDOW_ENV} > 0"
            )
        return limits


class LookupGuard:
    """The per-clerk token buckets and holder windows of one process (thread-safe). At most ``max_clerks`` clerks
    are remembered; the least recently seen are forgotten first."""

    def __init__(
        self, limits: LookupLimits, *, clock: Callable[[], float] = time.monotonic, max_clerks: int = 10_000
    ) -> None:
        self.limits = limits
        self._clock = clock
        self._max = max_clerks
        self._lock = threading.Lock()
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._seen: OrderedDict[str, deque[tuple[float, str]]] = OrderedDict()
        self._alerted_until: dict[str, float] = {}

    def admit(self, clerk: str) -> None:
        """Take one token of ``clerk``'s bucket, or :class:`LookupRateLimitedError`."""
        limits = self.limits
        if limits.rate <= 0:
            LOOKUPS.labels("admitted").inc()
            return
        per_second = limits.rate / 60.0
        with self._lock:
            now = self._clock()
            tokens, last = self._buckets.pop(clerk, (float(limits.burst), now))
            tokens = min(float(limits.burst), tokens + (now - last) * per_second)
            if tokens < 1.0:
                self._buckets[clerk] = (tokens, now)
                self._trim(self._buckets)
                wait = max(1, math.ceil((1.0 - tokens) / per_second))
                LOOKUPS.labels("rate_limited").inc()
                raise LookupRateLimitedError(
                    f"too many look-ups by {clerk}: at most {limits.burst} at once and {limits.rate:g} per minute; "
                    f"retry in {wait} s",
                    wait,
                )
            self._buckets[clerk] = (tokens - 1.0, now)
            self._trim(self._buckets)
        LOOKUPS.labels("admitted").inc()

    def note(self, clerk: str, organisation: str | None, holder: str) -> int | None:
        """Note that ``clerk`` named ``holder``; the number of distinct holders in the window when this look-up
        raises the burst alert (once per window per clerk), else None."""
        limits = self.limits
        if limits.alert_holders <= 0:
            return None
        with self._lock:
            now = self._clock()
            seen = self._seen.pop(clerk, None) or deque()
            seen.append((now, holder))
            while seen and seen[0][0] <= now - limits.alert_window:
                seen.popleft()
            self._seen[clerk] = seen
            self._trim(self._seen)
            distinct = len({h for _t, h in seen})
            if distinct <= limits.alert_holders or self._alerted_until.get(clerk, -math.inf) > now:
                return None
            self._alerted_until[clerk] = now + limits.alert_window
            if len(self._alerted_until) > self._max:
                self._alerted_until = {k: v for k, v in self._alerted_until.items() if v > now}
        BURSTS.labels(organisation or "-").inc()
        return distinct

    def _trim(self, table: OrderedDict[str, object]) -> None:  # type: ignore[type-arg]
        while len(table) > self._max:
            table.popitem(last=False)


_GUARDS: dict[int, LookupGuard] = {}
_GUARDS_LOCK = threading.Lock()


def install(app: Application, guard: LookupGuard, *, replace: bool = True) -> LookupGuard:
    """Use ``guard`` for ``app``'s look-ups (tests; a process with its own settings); with ``replace`` False keep
    a guard already installed. Returns the guard in use."""
    with _GUARDS_LOCK:
        key = id(app)
        if key not in _GUARDS:
            weakref.finalize(app, _GUARDS.pop, key, None)
        elif not replace:
            return _GUARDS[key]
        _GUARDS[key] = guard
    return guard


def guard_of(app: Application) -> LookupGuard:
    """The guard of ``app``, made on first use from its environment (else the process's)."""
    guard = _GUARDS.get(id(app))
    if guard is None:
        limits = LookupLimits.from_env(app.environment or os.environ)
        guard = install(app, LookupGuard(limits), replace=False)
    return guard


def metrics_text() -> bytes:
    """This process's look-up metrics, Prometheus text exposition."""
    return generate_latest(REGISTRY)
