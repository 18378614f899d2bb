"""Knowledge scope (知悉范围) as a service rule with its own state: the matter binding, on each database backend —
one matter serves one holder, also under 20 concurrent first look-ups; the declaration checks; the binding in the
caller's transaction; and the migration that carries the old audit-log state over."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select

from certstore.access import AccessDeniedError, Actor, Principal, Role
from certstore.app import Application
from certstore.audit import AuditEvent, Outcome, chain, record_event
from certstore.identifiers import HolderIdType, holder_id_digest, holder_ref
from certstore.keystore import KeyStore
from certstore.services import scope
from certstore.services.calls import Call, Origin, Via
from certstore.services.scope import MatterBoundError, Serving
from certstore.store.db import Database
from certstore.store.models import MatterBindingRow
from certstore.store.repository import Repository
from tests.services.conftest import CREDIT_CODES, RESIDENT_IDS

WINDOW_ORG = "12410100MB0000001X"
OTHER_WINDOW_ORG = "12410100MB0000002X"


def window_call(organisation: str = WINDOW_ORG, name: str = "clerk") -> Call:
    principal = Principal(1, name, Role.WINDOW, organisation, "郑州市政务服务中心")
    return Call(Actor.of(principal), Origin(Via.API))


def serving(matter: str, number: str = CREDIT_CODES[0], id_type: str = "001") -> Serving:
    return Serving(matter, id_type, number)


@pytest.fixture
def app(repo: Repository, tmp_path: Path) -> Application:
    return Application(repo, KeyStore(tmp_path / "keys"))


def _bindings(repo: Repository) -> list[MatterBindingRow]:
    with repo.db.session(readonly=True) as session:
        return list(session.scalars(select(MatterBindingRow).order_by(MatterBindingRow.id)))


def test_the_first_look_up_binds_the_matter_to_its_holder(app: Application, repo: Repository) -> None:
    call = window_call()
    served = scope.serve(app, call, serving(" ZZ-1 "))
    expected = holder_ref(holder_id_digest(repo.holder_key, HolderIdType.CREDIT_CODE, CREDIT_CODES[0]))
    assert served == scope.Served("ZZ-1", expected)
    assert scope.serve(app, call, serving("ZZ-1")) == served  # the same holder again: served
    with pytest.raises(MatterBoundError, match="one matter serves one holder"):
        scope.serve(app, call, serving("ZZ-1", CREDIT_CODES[1]))
    with pytest.raises(MatterBoundError):  # another clerk of the same unit: the same matter
        scope.serve(app, window_call(name="colleague"), serving("ZZ-1", CREDIT_CODES[1]))
    # another unit's matter of the same number is another matter
    assert scope.serve(app, window_call(OTHER_WINDOW_ORG), serving("ZZ-1", CREDIT_CODES[1])).matter == "ZZ-1"
    rows = _bindings(repo)
    assert [(r.organisation_code, r.matter, r.holder_digest, r.principal) for r in rows] == [
        (WINDOW_ORG, "ZZ-1", expected, f"{WINDOW_ORG}/clerk"),
        (OTHER_WINDOW_ORG, "ZZ-1", rows[1].holder_digest, f"{OTHER_WINDOW_ORG}/clerk"),
    ]
    assert rows[0].first_used_at == repo.now()
    assert CREDIT_CODES[0] not in repr([r.__dict__ for r in rows])


def test_an_id_typed_differently_is_the_same_holder(app: Application) -> None:
    call = window_call()
    scope.serve(app, call, serving("ZZ-2", RESIDENT_IDS[0], "111"))
    assert scope.serve(app, call, serving("ZZ-2", RESIDENT_IDS[0].lower(), "111")).matter == "ZZ-2"


@pytest.mark.parametrize(
    ("declared", "message"),
    [
        (Serving(None, "001", CREDIT_CODES[0]), "must state the matter"),
        (Serving("  ", "001", CREDIT_CODES[0]), "must state the matter"),
        (Serving("M" * 101, "001", CREDIT_CODES[0]), "longer than"),
        (Serving("ZZ-3", None, None), "must state the holder"),
        (Serving("ZZ-3", "001", None), "must state the holder"),
        (Serving("ZZ-3", "123", CREDIT_CODES[0]), "not a valid ID"),
        (Serving("ZZ-3", "001", "91410100MA44A1B2XX"), "not a valid ID"),
    ],
)
def test_an_incomplete_declaration_is_refused_and_binds_nothing(
    app: Application, repo: Repository, declared: Serving, message: str
) -> None:
    with pytest.raises(AccessDeniedError, match=message):
        scope.serve(app, window_call(), declared)
    assert _bindings(repo) == []


def test_only_window_staff_serve_holders(app: Application, repo: Repository) -> None:
    agency = Call(Actor.agency_system("11410100990000025A", "system"), Origin(Via.EXCHANGE))
    for call in (agency, Call.operator()):
        with pytest.raises(AccessDeniedError, match="does not serve holders"):
            scope.serve(app, call, serving("ZZ-4"))
    assert _bindings(repo) == []


def test_the_binding_is_written_in_the_callers_transaction(app: Application, repo: Repository) -> None:
    call = window_call()
    with pytest.raises(RuntimeError), repo.db.session() as session:
        scope.serve(app, call, serving("ZZ-5"), session=session)
        assert scope.bound_holder(session, WINDOW_ORG, "ZZ-5") is not None
        raise RuntimeError("the look-up fails: its transaction rolls back")
    assert _bindings(repo) == []  # gone with the look-up
    with repo.db.session() as session:
        scope.serve(app, call, serving("ZZ-5", CREDIT_CODES[1]), session=session)
        with pytest.raises(MatterBoundError):  # in the same transaction: bound already
            scope.serve(app, call, serving("ZZ-5"), session=session)
    assert len(_bindings(repo)) == 1


def test_twenty_concurrent_first_look_ups_of_two_holders_serve_exactly_one(
    app: Application, repo: Repository
) -> None:
    """The race of issue 14: parallel first look-ups under one new matter for two holders. Exactly one holder is
    served — every look-up of it succeeds, every look-up of the other is refused — and one binding is stored."""
    start = threading.Barrier(20)

    def look_up(position: int) -> str | None:
        number = CREDIT_CODES[position % 2]
        start.wait()
        try:
            scope.serve(app, window_call(name=f"clerk{position}"), serving("ZZ-RACE", number))
        except MatterBoundError:
            return None
        return number

    with ThreadPoolExecutor(max_workers=20) as pool:
        results = list(pool.map(look_up, range(20)))
    served = {number for number in results if number is not None}
    assert len(served) == 1, results
    assert results.count(None) == 10 and len([r for r in results if r]) == 10
    with repo.db.session(readonly=True) as session:
        assert session.scalar(select(func.count()).select_from(MatterBindingRow)) == 1
    (winner,) = served
    expected = holder_ref(holder_id_digest(repo.holder_key, HolderIdType.CREDIT_CODE, winner))
    assert _bindings(repo)[0].holder_digest == expected


def test_the_upgrade_binds_matters_from_the_log(
    empty_database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Revision 0007 carries the audit-log state of the old rule over: the first allowed window look-up of each
    (organisation, matter) that named a holder binds the matter (a later other holder — the old race — does not).

    The log is written at revision 0006, before PostgreSQL had the head functions of 0010_audit_append_only: the
    head is moved the way the code of that time did, by a plain UPDATE (the test connects as the owner)."""
    monkeypatch.setattr(chain, "_is_postgresql", lambda session: False)
    with Database(empty_database_url) as database:
        database.upgrade("0006_file_key_index")

        def look_up(org: str, matter: str | None, digest: str | None, *, role: str = "window",
                    outcome: Outcome = Outcome.ALLOW) -> None:  # fmt: skip
            record_event(
                database,
                AuditEvent(
                    at=datetime.now(UTC), request_id="r", action="list_holder_certificates", outcome=outcome,
                    status_code=200 if outcome is Outcome.ALLOW else 403, principal=f"{org}/clerk",
                    organisation_code=org, role=role, matter=matter, holder_digest=digest,
                ),
            )  # fmt: skip

        look_up(WINDOW_ORG, "ZZ-OLD", None)  # denied before the holder was known
        look_up(WINDOW_ORG, "ZZ-OLD", "bbbbbbbbbbbbbbbb", outcome=Outcome.DENY)
        look_up(WINDOW_ORG, "ZZ-OLD", "aaaaaaaaaaaaaaaa")
        look_up(WINDOW_ORG, "ZZ-OLD", "cccccccccccccccc")  # the old race let a second holder through
        look_up(OTHER_WINDOW_ORG, "ZZ-OLD", "cccccccccccccccc")
        look_up("11410100990000025A", "ZZ-AGENCY", "dddddddddddddddd", role="agency")
        monkeypatch.undo()
        database.upgrade()
        with database.session(readonly=True) as session:
            rows = session.execute(
                select(MatterBindingRow.organisation_code, MatterBindingRow.matter, MatterBindingRow.holder_digest)
                .order_by(MatterBindingRow.organisation_code)
            ).all()  # fmt: skip
    assert [tuple(r) for r in rows] == [
        (WINDOW_ORG, "ZZ-OLD", "aaaaaaaaaaaaaaaa"),
        (OTHER_WINDOW_ORG, "ZZ-OLD", "cccccccccccccccc"),
    ]
