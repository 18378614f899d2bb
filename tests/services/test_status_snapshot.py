"""The status snapshot built from the repository (``certstore.services.status_snapshot``): versions not in force
with the time their status took effect, ended suspensions from the lifecycle events, the scope, and the seal
states a registry plugs in."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

import pytest

from certstore.app import Application
from certstore.keystore import KeyStore
from certstore.lifecycle import Action, Status
from certstore.services import certificates, status_snapshot
from certstore.services.keys import init_dev_keys
from certstore.store.repository import Repository
from certstore.verify.status_list import SealState, read_status_list
from tests.services.conftest import Clock, DraftMaker
from tests.support import issuing


@pytest.fixture(scope="module")
def keystore(tmp_path_factory: pytest.TempPathFactory) -> KeyStore:
    store = KeyStore(tmp_path_factory.mktemp("keys") / "keys")
    init_dev_keys(store)
    return store


@pytest.fixture
def app(repo: Repository, keystore: KeyStore) -> Application:
    return issuing.application(repo, keystore)


def _act(app: Application, clock: Clock, identifier: str, action: Action) -> datetime:
    clock.advance(minutes=10)
    issuing.act(app, identifier, action, reason="测试")
    return certificates.get(app.repo, identifier).events[-1].at.replace(microsecond=0)


def test_the_snapshot_lists_what_is_not_in_force_and_since_when(
    app: Application, draft: DraftMaker, clock: Clock
) -> None:
    resumed, revoked, untouched = (
        issuing.issue(app, draft(number=f"选字第41010020240003{n}号")).certificate for n in "678"
    )
    suspended_a = _act(app, clock, resumed.identifier, Action.SUSPEND)
    resumed_a = _act(app, clock, resumed.identifier, Action.RESUME)
    suspended_b = _act(app, clock, revoked.identifier, Action.SUSPEND)
    revoked_b = _act(app, clock, revoked.identifier, Action.REVOKE)
    seal_revoked = revoked_b - timedelta(minutes=3)

    def seals(app: Application) -> Iterable[tuple[str, str, datetime]]:
        return [("41010010000001", "revoked", seal_revoked)]

    clock.advance(minutes=1)
    built = status_snapshot.build_snapshot(app, issuing.call(), seal_states=seals)
    assert (built.count, built.versions, built.seals) == (1, 3, 1)
    listed = read_status_list(built.data, trust=app.trust)
    header = listed.header
    assert (header.count, header.suspensions, header.versions) == (1, 2, 3)
    assert header.scope == (untouched.issuer_code,) and header.sequence == status_snapshot.sequence_of(
        app.repo
    )

    now = listed.lookup(revoked.identifier)
    assert (now.status, now.since) == (Status.REVOKED, revoked_b)
    assert listed.lookup(revoked.identifier, at=revoked_b - timedelta(minutes=1)).status is Status.SUSPENDED
    assert listed.lookup(revoked.identifier, at=suspended_b - timedelta(minutes=1)).in_force
    assert listed.lookup(resumed.identifier).in_force
    during = listed.lookup(resumed.identifier, at=suspended_a + timedelta(minutes=5))
    assert (during.status, during.since, during.until) == (Status.SUSPENDED, suspended_a, resumed_a)
    assert listed.lookup(untouched.identifier).in_force
    assert listed.seal_state("41010010000001") == SealState("revoked", seal_revoked)
    [entry, *_] = [e for e in reversed(issuing.audit_entries(app.repo)) if e.action == "status.snapshot"]
    assert (entry.details["count"], entry.details["versions"], entry.details["seals"]) == (1, 3, 1)


def test_the_cache_rebuilds_on_a_newer_event_and_passes_the_seal_source(
    app: Application, draft: DraftMaker, clock: Clock
) -> None:
    identifier = issuing.issue(app, draft()).certificate.identifier
    asked: list[Application] = []

    def seals(target: Application) -> Iterable[tuple[str, str, datetime]]:
        asked.append(target)
        return ()

    cache = status_snapshot.SnapshotCache(seal_states=seals)
    first = cache.latest(app)
    assert cache.latest(app) is first and asked == [app]
    _act(app, clock, identifier, Action.REVOKE)
    second = cache.latest(app)
    assert second.sequence > first.sequence and second.count == 1 and len(asked) == 2
    assert read_status_list(second.data, trust=app.trust).seal_state("anything") is None
