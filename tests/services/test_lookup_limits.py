"""Per-clerk look-up limits and the burst alert (certstore.services.lookup_limits) through the sharing use cases:
a clerk over the bucket is refused (LookupRateLimitedError with Retry-After seconds, audited as a 429 denial)
while another clerk is not; the bucket refills with time; a clerk naming more distinct holders than allowed in
the window raises one alert — a counter and a ``holder.lookup_burst`` entry — per window; the configuration is
read from the environment and refused when nonsensical."""

from __future__ import annotations

from pathlib import Path

import pytest

from certstore.access import Actor, Principal, Role
from certstore.app import Application
from certstore.audit import AuditEvent, DirectSink
from certstore.keystore import KeyStore
from certstore.services import lookup_limits, sharing
from certstore.services.calls import Call, Origin, Via
from certstore.services.lookup_limits import LookupGuard, LookupLimits, LookupRateLimitedError
from certstore.services.scope import Serving, UnregisteredMatterError
from certstore.store.repository import Repository
from tests.services.conftest import RESIDENT_IDS
from tests.support.matters import register_matter

UNIT = "12410100MB0000001X"
#: Valid resident ID numbers (GB 11643 check digit), one per holder a clerk walks through.
WALK = [
    f"{body}{'10X98765432'[sum(int(d) * w for d, w in zip(body, (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2), strict=True)) % 11]}"
    for body in (f"41010519800101{n:03d}" for n in range(1, 40))
]  # fmt: skip


class RecordingSink:
    def __init__(self, inner: DirectSink) -> None:
        self.inner, self.events = inner, []

    def submit(self, event: AuditEvent) -> None:
        self.inner.submit(event)
        self.events.append(event)


class Ticks:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def app(repo: Repository, tmp_path: Path) -> Application:
    return Application(repo, KeyStore(tmp_path / "keys"), audit=RecordingSink(DirectSink(repo.db)))


def clerk(name: str = "clerk") -> Call:
    return Call(Actor.of(Principal(5, name, Role.WINDOW, UNIT, "中心")), Origin(Via.API))


def events(app: Application) -> list[AuditEvent]:
    assert isinstance(app.audit, RecordingSink)
    return app.audit.events


def test_a_clerk_over_the_limit_is_refused_with_retry_after_and_refills(app: Application) -> None:
    """Burst 3, 6 per minute: the fourth look-up at once is refused (Retry-After 10 s), audited as a 429 denial
    before anything is read; another clerk is served meanwhile; ten seconds later one more is allowed."""
    ticks = Ticks()
    lookup_limits.install(app, LookupGuard(LookupLimits(rate=6, burst=3, alert_holders=0), clock=ticks))
    register_matter(app, UNIT, "ZZ-L-1", "111", RESIDENT_IDS[0])
    serving = Serving("ZZ-L-1", "111", RESIDENT_IDS[0])
    for _ in range(3):
        assert sharing.holder_certificates(app, clerk(), "111", RESIDENT_IDS[0], serving) == []
    with pytest.raises(LookupRateLimitedError) as refused:
        sharing.holder_certificates(app, clerk(), "111", RESIDENT_IDS[0], serving)
    assert refused.value.retry_after == 10
    last = events(app)[-1]
    assert (last.action, last.outcome, last.status_code) == ("holder.lookup", "deny", 429)
    assert "too many look-ups" in (last.reason or "")
    assert sharing.holder_certificates(app, clerk("colleague"), "111", RESIDENT_IDS[0], serving) == []
    ticks.now += 10
    assert sharing.holder_certificates(app, clerk(), "111", RESIDENT_IDS[0], serving) == []
    with pytest.raises(LookupRateLimitedError):
        sharing.holder_certificates(app, clerk(), "111", RESIDENT_IDS[0], serving)


def test_walking_through_holders_raises_one_burst_alert_per_window(app: Application) -> None:
    """The attack of issue 19: one clerk tries 30 consecutive ID numbers under invented matters. Every look-up is
    refused (no registered matter); crossing 20 distinct holders in the window writes one
    ``holder.lookup_burst`` entry and counts one burst; a new window can alert again."""
    ticks = Ticks()
    lookup_limits.install(
        app, LookupGuard(LookupLimits(rate=0, alert_holders=20, alert_window=600), clock=ticks)
    )
    before = lookup_limits.BURSTS.labels(UNIT)._value.get()
    for position, number in enumerate(WALK[:30]):
        with pytest.raises(UnregisteredMatterError):
            sharing.holder_certificates(app, clerk(), "111", number, Serving(f"INVENTED-{position}"))
    bursts = [e for e in events(app) if e.action == "holder.lookup_burst"]
    assert len(bursts) == 1
    (alert,) = bursts
    assert (alert.principal, alert.role, alert.details["distinct_holders"], alert.details["threshold"]) == (
        f"{UNIT}/clerk", "window", 21, 20)  # fmt: skip
    assert lookup_limits.BURSTS.labels(UNIT)._value.get() == before + 1
    assert len([e for e in events(app) if e.action == "holder.lookup" and e.outcome == "deny"]) == 30
    ticks.now += 601
    for number in WALK[:21]:
        with pytest.raises(UnregisteredMatterError):
            sharing.holder_certificates(app, clerk(), "111", number, Serving("INVENTED"))
    assert len([e for e in events(app) if e.action == "holder.lookup_burst"]) == 2
    assert b"certstore_window_lookup_bursts_total" in lookup_limits.metrics_text()


def test_the_same_holder_again_and_again_is_no_burst(app: Application) -> None:
    lookup_limits.install(app, LookupGuard(LookupLimits(rate=0, alert_holders=2), clock=Ticks()))
    register_matter(app, UNIT, "ZZ-L-2", "111", RESIDENT_IDS[0])
    for _ in range(10):
        sharing.holder_certificates(app, clerk(), "111", RESIDENT_IDS[0], Serving("ZZ-L-2"))
    assert [e for e in events(app) if e.action == "holder.lookup_burst"] == []


def test_limits_from_the_environment() -> None:
    assert LookupLimits.from_env({}) == LookupLimits(60.0, 60, 20, 600.0)
    env = {"CERTSTORE_LOOKUP_RATE": "0", "CERTSTORE_LOOKUP_BURST": "5", "CERTSTORE_LOOKUP_ALERT_HOLDERS": "7",
           "CERTSTORE_LOOKUP_ALERT_WINDOW": "60"}  # fmt: skip
    assert LookupLimits.from_env(env) == LookupLimits(0.0, 5, 7, 60.0)
    for bad in ({"CERTSTORE_LOOKUP_RATE": "x"}, {"CERTSTORE_LOOKUP_BURST": "0"},
                {"CERTSTORE_LOOKUP_ALERT_WINDOW": "0"}, {"CERTSTORE_LOOKUP_RATE": "inf"}):  # fmt: skip
        with pytest.raises(ValueError, match="CERTSTORE_LOOKUP"):
            LookupLimits.from_env(bad)
