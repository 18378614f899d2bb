"""Registered matters (办件, certstore.services.matters) on each database backend: the case system registers a matter
of its own unit for a holder (the ID number never stored), a retry answers the stored matter and a different
registration under the number conflicts — also when 20 registrations race; bad input is refused naming the field;
only the case system registers or closes, and each change comes with its audit entry in the same transaction."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from certstore.access import AccessDeniedError, Actor, Principal, Role
from certstore.app import Application
from certstore.audit import AuditEvent, DirectSink
from certstore.identifiers import holder_id_digest, holder_ref
from certstore.keystore import KeyStore
from certstore.services import matters
from certstore.services.calls import Call, Origin, Via
from certstore.store.models import MatterRow
from certstore.store.repository import Repository
from tests.services.conftest import CREDIT_CODES, RESIDENT_IDS
from tests.support import issuing
from tests.support.clock import Clock
from tests.support.matters import case_system_call

UNIT = "12410100MB0000001X"


class RecordingSink:
    def __init__(self, inner: DirectSink) -> None:
        self.inner, self.events = inner, []

    def submit(self, event: AuditEvent) -> None:
        self.inner.submit(event)
        self.events.append(event)


@pytest.fixture
def app(repo: Repository, tmp_path: Path) -> Application:
    return Application(repo, KeyStore(tmp_path / "keys"), audit=RecordingSink(DirectSink(repo.db)))


def _register(app: Application, clock: Clock, number: str = "ZZ-M-1", **changes: object) -> matters.Matter:
    fields: dict[str, object] = {
        "matter": number,
        "holder_id_type": "111",
        "holder_id": RESIDENT_IDS[0],
        "purpose": "不动产登记",
        "valid_until": clock.now + timedelta(days=30),
    }
    fields.update(changes)
    return matters.register(app, case_system_call(UNIT), **fields)  # type: ignore[arg-type]


def _entries(repo: Repository) -> list[AuditEvent]:
    return issuing.audit_entries(repo)


def test_the_case_system_registers_a_matter_of_its_unit(
    app: Application, repo: Repository, clock: Clock
) -> None:
    found = _register(app, clock, " ZZ-M-1 ", holder_id=RESIDENT_IDS[0].lower())
    expected = holder_ref(holder_id_digest(repo.holder_key, "111", RESIDENT_IDS[0]))
    assert (found.organisation_code, found.matter, found.holder_ref, found.purpose) == (
        UNIT, "ZZ-M-1", expected, "不动产登记")  # fmt: skip
    assert found.active and found.registered_by == f"{UNIT}/case-system" and found.closed_at is None
    with repo.db.session(readonly=True) as session:
        (row,) = session.scalars(select(MatterRow))
        assert RESIDENT_IDS[0] not in repr(row.__dict__)
    (entry,) = [e for e in _entries(repo) if e.action == "matter.register"]
    assert (entry.matter, entry.holder_digest, entry.role, entry.organisation_code) == (
        "ZZ-M-1", expected, "case_system", UNIT)  # fmt: skip
    assert RESIDENT_IDS[0] not in str(entry.to_dict())
    assert matters.get(app, case_system_call(UNIT), "ZZ-M-1") == found


def test_a_retry_answers_the_stored_matter_and_a_different_registration_conflicts(
    app: Application, repo: Repository, clock: Clock
) -> None:
    first = _register(app, clock)
    clock.advance(minutes=5)  # a retry later, without valid_from: the stored matter (its start is kept)
    assert _register(app, clock, valid_until=first.valid_until) == first
    with pytest.raises(matters.MatterConflictError, match="holder_digest"):
        _register(app, clock, holder_id=RESIDENT_IDS[1])
    with pytest.raises(matters.MatterConflictError, match="purpose"):
        _register(app, clock, purpose="另一事项")
    assert [e.action for e in _entries(repo)].count("matter.register") == 1


def test_twenty_concurrent_registrations_of_one_number_store_one_matter(
    app: Application, repo: Repository, clock: Clock
) -> None:
    """Ten threads register the number for one holder, ten for another, at once: one row; every thread of the
    winning holder gets it back, every other a conflict."""
    start = threading.Barrier(20)
    until = clock.now + timedelta(days=30)

    def register(position: int) -> str:
        start.wait()
        try:
            found = _register(app, clock, "ZZ-RACE", holder_id=RESIDENT_IDS[position % 2], valid_until=until)
        except matters.MatterConflictError:
            return "conflict"
        return found.holder_ref

    with ThreadPoolExecutor(max_workers=20) as pool:
        results = list(pool.map(register, range(20)))
    winners = {r for r in results if r != "conflict"}
    assert len(winners) == 1 and results.count("conflict") == 10, results
    with repo.db.session(readonly=True) as session:
        assert len(list(session.scalars(select(MatterRow)))) == 1


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"matter": "  "}, "matter: required"),
        ({"matter": "M" * 101}, "matter: at most 100"),
        ({"matter": "ZZ\n1"}, "no control characters"),
        ({"purpose": ""}, "purpose: required"),
        ({"holder_id": "11010519491231002Y"}, "holder: not a valid ID"),
        ({"holder_id_type": "123"}, "holder: not a valid ID"),
        ({"valid_until": "past"}, "valid_until: must lie in the future"),
        ({"valid_from": "after"}, "valid_from: must lie before valid_until"),
    ],
)
def test_bad_input_is_refused_naming_the_field(
    app: Application, repo: Repository, clock: Clock, changes: dict[str, object], message: str
) -> None:
    if changes.get("valid_until") == "past":
        changes["valid_until"] = clock.now - timedelta(seconds=1)
    if changes.get("valid_from") == "after":
        changes["valid_from"] = clock.now + timedelta(days=31)
    with pytest.raises(matters.MatterInputError, match=message):
        _register(app, clock, **changes)
    with repo.db.session(readonly=True) as session:
        assert list(session.scalars(select(MatterRow))) == []


def test_only_the_case_system_registers_and_closes(app: Application, repo: Repository, clock: Clock) -> None:
    """A clerk of the same unit (role window), an agency, the operator: refused, and the refusal is audited."""
    clerk = Call(Actor.of(Principal(2, "clerk", Role.WINDOW, UNIT, "中心")), Origin(Via.API))
    for call in (clerk, Call.operator()):
        with pytest.raises(AccessDeniedError, match="does not register matters"):
            matters.register(app, call, matter="ZZ-X", holder_id_type="001", holder_id=CREDIT_CODES[0],
                             purpose="x", valid_until=clock.now + timedelta(days=1))  # fmt: skip
    _register(app, clock, "ZZ-X")
    with pytest.raises(AccessDeniedError):
        matters.close(app, clerk, "ZZ-X")
    assert matters.get(app, clerk, "ZZ-X").active  # window staff of the unit may read it
    with pytest.raises(matters.MatterNotFoundError):  # another unit's case system does not see it
        matters.get(app, case_system_call("12410100MB0000002X"), "ZZ-X")
    assert isinstance(app.audit, RecordingSink)
    assert [(e.action, e.outcome) for e in app.audit.events] == [("matter.register", "deny")] * 2 + [
        ("matter.close", "deny")]  # fmt: skip


def test_closing_and_withdrawing(app: Application, repo: Repository, clock: Clock) -> None:
    _register(app, clock, "ZZ-C")
    _register(app, clock, "ZZ-W")
    closed = matters.close(app, case_system_call(UNIT), "ZZ-C", reason="办结")
    withdrawn = matters.close(app, case_system_call(UNIT), "ZZ-W", withdrawn=True)
    assert (closed.close_reason, closed.active, withdrawn.close_reason) == ("closed", False, "withdrawn")
    with pytest.raises(matters.MatterStateError, match="was closed"):
        matters.close(app, case_system_call(UNIT), "ZZ-C")
    with pytest.raises(matters.MatterNotFoundError):
        matters.close(app, case_system_call(UNIT), "ZZ-NONE")
    actions = [
        (e.action, e.matter) for e in _entries(repo) if e.action in ("matter.close", "matter.withdraw")
    ]
    assert actions == [("matter.close", "ZZ-C"), ("matter.withdraw", "ZZ-W")]
