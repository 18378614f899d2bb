"""年检 results on SQLite and PostgreSQL: who may record them, on which types, one per year, across versions,
and which certificates are still due."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime

import pytest
from sqlalchemy import select

from certstore.access import AccessDeniedError, Actor, Principal, Role
from certstore.catalogue import CatalogueEntry, InspectionFailure
from certstore.lifecycle import Action, Status
from certstore.services import certificates, notifications
from certstore.services.calls import Via
from certstore.services.catalogue import get_entry, register_entry
from certstore.services.certificates import CertificateNotFoundError
from certstore.services.inspections import (
    Inspection,
    InspectionConflictError,
    InspectionNotRequiredError,
    InspectionResult,
    due_inspections,
    list_inspections,
    record_inspection,
)
from certstore.store.models import NotificationOutboxRow
from certstore.store.repository import Repository
from tests.services.conftest import Clock, DraftMaker
from tests.support import issuing

# No shipped type requires annual inspection, so the tests register the next version of the site selection opinion
# (3-year validity) with annual_inspection true. The land-use planning permit, from the same agency, stays
# without inspection.
SITE_OPINION = "11410100990000017F001"
LAND_USE_PERMIT = "11410100990000017F002"
BUSINESS_LICENCE = "114101009900000410001"

PLANNING_BUREAU = Principal(1, "zhou.jiu", Role.AGENCY, "11410100990000017F", "郑州市自然资源和规划局")
MARKET_BUREAU = Principal(2, "wang.wu", Role.AGENCY, "114101009900000410", "郑州市市场监督管理局")

DECEMBER = datetime(2026, 12, 15, 2, 0, tzinfo=UTC)  # drafts are issued on 2026-11-26


def _number(n: int) -> str:
    return f"选字第4101002026{n:05d}号"


def _record(repo: Repository, identifier: str, **changes: object) -> Inspection:
    """record_inspection with the usual arguments: the 2026 result "passed", inspected on 2026-12-10, recorded by
    the issuing agency; ``changes`` overrides any of them."""
    arguments: dict[str, object] = {"year": 2026, "result": "passed", "inspected_on": date(2026, 12, 10)}
    arguments.update(changes)
    inspector = arguments.pop("inspector", PLANNING_BUREAU)
    assert isinstance(inspector, Principal)
    call = issuing.call(Actor.of(inspector), via=Via.API)
    return record_inspection(issuing.application(repo), call, identifier, **arguments)  # type: ignore[arg-type]


def _require_inspection(repo: Repository, code: str) -> CatalogueEntry:
    document = get_entry(repo, code).to_document()
    document["version"] += 1
    document["annual_inspection"] = True
    entry, created = register_entry(repo, CatalogueEntry.from_document(document))
    assert created
    return entry


@pytest.fixture
def annual(repo: Repository, clock: Clock) -> CatalogueEntry:
    clock.now = DECEMBER
    return _require_inspection(repo, SITE_OPINION)


@pytest.fixture
def opinion(repo: Repository, draft: DraftMaker, annual: CatalogueEntry) -> str:
    cert = issuing.issue(repo, draft(SITE_OPINION, _number(1))).certificate
    assert cert.catalogue_version == annual.version
    return cert.identifier


def test_record_and_list(repo: Repository, clock: Clock, opinion: str) -> None:
    recorded = _record(repo, opinion, remarks=" 资料齐全 ")
    assert recorded.certificate_identifier == opinion
    assert (recorded.issuer_code, recorded.year) == ("11410100990000017F", 2026)
    assert recorded.serial == certificates.get(repo, opinion).serial
    assert recorded.result is InspectionResult.PASSED
    assert recorded.inspected_on == date(2026, 12, 10)
    assert recorded.remarks == "资料齐全"
    assert recorded.inspector == "11410100990000017F/zhou.jiu"
    assert recorded.recorded_at == clock.now
    assert list_inspections(repo, opinion) == [recorded]


FAILED_ON_THE_10TH = {"result": "failed", "remarks": "消防验收材料缺失"}


def test_same_result_again_is_idempotent(repo: Repository, clock: Clock, opinion: str) -> None:
    first = _record(repo, opinion, **FAILED_ON_THE_10TH)
    clock.advance(hours=1)
    colleague = Principal(9, "wu.shi", Role.AGENCY, "11410100990000017F", "郑州市自然资源和规划局")
    again = _record(
        repo, opinion, **{**FAILED_ON_THE_10TH, "result": InspectionResult.FAILED}, inspector=colleague
    )
    assert again == first  # the stored one, recorded_at and inspector unchanged
    assert again.recorded_at == first.recorded_at != clock.now and again.inspector.endswith("/zhou.jiu")
    assert list_inspections(repo, opinion) == [first]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"result": "passed"}, "result failed, not passed"),
        ({"inspected_on": date(2026, 12, 11)}, "inspected on 2026-12-10, not 2026-12-11"),
        ({"remarks": ""}, "other remarks"),
    ],
    ids=["result", "inspected_on", "remarks"],
)
def test_another_result_for_the_year_conflicts(
    repo: Repository, opinion: str, changes: dict[str, object], message: str
) -> None:
    first = _record(repo, opinion, **FAILED_ON_THE_10TH)
    with pytest.raises(InspectionConflictError, match=message):
        _record(repo, opinion, **{**FAILED_ON_THE_10TH, **changes})
    assert list_inspections(repo, opinion) == [first]


def test_type_without_annual_inspection_is_refused(
    repo: Repository, draft: DraftMaker, annual: CatalogueEntry
) -> None:
    permit = issuing.issue(repo, draft(LAND_USE_PERMIT)).certificate
    entry = get_entry(repo, LAND_USE_PERMIT)
    with pytest.raises(InspectionNotRequiredError, match=f"{entry.name} \\({LAND_USE_PERMIT} version 2\\)"):
        _record(repo, permit.identifier)
    assert list_inspections(repo, permit.identifier) == []


def test_the_catalogue_version_issued_under_decides(
    repo: Repository, clock: Clock, draft: DraftMaker
) -> None:
    """A certificate issued before its type required inspection (the shipped catalogue version) is not inspected."""
    clock.now = DECEMBER
    old = issuing.issue(repo, draft(SITE_OPINION, _number(7))).certificate
    _require_inspection(repo, SITE_OPINION)
    with pytest.raises(InspectionNotRequiredError):
        _record(repo, old.identifier)
    assert due_inspections(repo, year=2026) == []


def test_only_the_issuing_agency_records(repo: Repository, opinion: str) -> None:
    with pytest.raises(AccessDeniedError, match="only that agency"):
        _record(repo, opinion, inspector=MARKET_BUREAU)
    assert list_inspections(repo, opinion) == []


def test_bad_input(repo: Repository, opinion: str) -> None:
    def record(identifier: str = opinion, **changes: object) -> None:
        _record(repo, identifier, **changes)

    with pytest.raises(CertificateNotFoundError):
        record(opinion[:-1] + ("0" if opinion[-1] != "0" else "1"))
    with pytest.raises(ValueError, match="'passed' or 'failed'"):
        record(result="ok")
    with pytest.raises(ValueError, match="year must be between 1900 and 2026"):
        record(year=2027)  # the clock is in 2026
    with pytest.raises(ValueError, match="in the future"):
        record(inspected_on=date(2026, 12, 16))
    with pytest.raises(TypeError):
        record(inspected_on=datetime(2026, 12, 10, tzinfo=UTC))
    assert list_inspections(repo, opinion) == []


def test_results_follow_the_certificate_across_versions(repo: Repository, clock: Clock, opinion: str) -> None:
    r2026 = _record(repo, opinion)
    clock.now = datetime(2027, 12, 1, 2, 0, tzinfo=UTC)
    renewed = issuing.renew(repo, opinion, valid_until=date(2031, 12, 31), reason="延续")
    assert renewed.serial == r2026.serial and renewed.identifier != opinion
    # the 2026 result recorded on the first version is found through the second: the same result is idempotent
    assert _record(repo, renewed.identifier) == r2026
    r2027 = _record(repo, renewed.identifier, year=2027, result="failed", inspected_on=date(2027, 11, 30))
    assert r2027.certificate_identifier == renewed.identifier
    assert list_inspections(repo, opinion) == [r2026, r2027]
    assert list_inspections(repo, renewed.identifier) == [r2026, r2027]


def test_due_inspections(repo: Repository, clock: Clock, draft: DraftMaker, annual: CatalogueEntry) -> None:
    def issue(code: str, number: str | None = None) -> str:
        return issuing.issue(repo, draft(code, number)).certificate.identifier

    inspected = issue(SITE_OPINION, _number(1))
    pending = issue(SITE_OPINION, _number(2))
    suspended = issue(SITE_OPINION, _number(3))
    renewed_from = issue(SITE_OPINION, _number(4))
    issue(LAND_USE_PERMIT)  # no inspection for this type
    issue(BUSINESS_LICENCE)  # another agency's type without inspection
    issuing.act(repo, suspended, Action.SUSPEND, reason="挂起")
    renewed = issuing.renew(repo, renewed_from, valid_until=date(2032, 1, 1), reason="延续")
    _record(repo, inspected)

    due = due_inspections(repo, year=2026)
    assert [d.identifier for d in due] == [pending, renewed.identifier]  # current versions only, by number
    assert due[0].certificate_number == _number(2)
    assert due[0].catalogue_code == SITE_OPINION and due[0].issuer_code == "11410100990000017F"
    assert due[0].valid_until == certificates.get(repo, pending).valid_until
    assert due[0].name == annual.name and due[0].holder_name

    assert [d.identifier for d in due_inspections(repo, year=2026, issuer_code="11410100990000017F")] == [
        pending,
        renewed.identifier,
    ]
    assert due_inspections(repo, year=2026, issuer_code="114101009900000410") == []
    assert due_inspections(repo, year=2025) == []  # the certificates were first issued in November 2026

    clock.now = datetime(2027, 6, 1, tzinfo=UTC)
    assert [d.identifier for d in due_inspections(repo, year=2027)] == [
        inspected,
        pending,
        renewed.identifier,
    ]

    valid_until = certificates.get(repo, pending).valid_until
    assert valid_until is not None
    clock.now = datetime(valid_until.year, valid_until.month, valid_until.day, 15, 59, tzinfo=UTC)
    assert pending in [d.identifier for d in due_inspections(repo, year=2027)]  # last day of validity
    clock.advance(minutes=1)  # the next day in Beijing: expired
    assert pending not in [d.identifier for d in due_inspections(repo, year=2027)]
    assert renewed.identifier in [d.identifier for d in due_inspections(repo, year=2027)]


# --- what a result does (inspection.on_failure, issue 20) ---------------------------------------------------------


def _suspending(repo: Repository, clock: Clock, draft: DraftMaker) -> str:
    """A certificate of a type whose failed 年检 suspends it (the next version of the site selection opinion)."""
    clock.now = DECEMBER
    document = get_entry(repo, SITE_OPINION).to_document()
    document |= {"version": document["version"] + 1, "annual_inspection": True}
    document["inspection"] = {"on_failure": "suspend"}
    entry, _ = register_entry(repo, CatalogueEntry.from_document(document))
    assert entry.inspection_on_failure is InspectionFailure.SUSPEND
    return issuing.issue(repo, draft(SITE_OPINION, _number(1))).certificate.identifier


def _events(repo: Repository, identifier: str) -> list[tuple[str, str, str]]:
    return [(e.action, e.to_status, e.reason) for e in certificates.get(repo, identifier).events]


def test_a_failed_inspection_suspends_until_a_later_one_passes(
    repo: Repository, clock: Clock, draft: DraftMaker
) -> None:
    """With ``on_failure: suspend`` a failed 2026 result suspends (挂起) the certificate in the transaction that
    stores it — a lifecycle event with the reason and the year, one ``certificate.act`` audit entry by the
    inspector, the holder told through the notification outbox; the passed 2027 result resumes (恢复) it."""
    identifier = _suspending(repo, clock, draft)
    holder = certificates.get(repo, identifier).holder_ref
    app = issuing.application(repo)
    notifications.set_contact(
        app, issuing.call(Actor.holder(holder, "示例公司")), email="holder@example.test"
    )

    failed = _record(repo, identifier, **FAILED_ON_THE_10TH)
    assert failed.consequence is Action.SUSPEND
    current = certificates.get(repo, identifier)
    assert current.stored_status is Status.SUSPENDED
    assert _events(repo, identifier)[-1] == ("suspend", "suspended", "2026年度年检不合格：消防验收材料缺失")
    assert current.events[-1].details == {"inspection": 2026, "inspection_result": "failed"}
    assert current.events[-1].actor == PLANNING_BUREAU.ref
    [act] = [e for e in issuing.audit_entries(repo) if e.action == "certificate.act"]
    assert (act.principal, act.certificate_identifier, act.details["inspection"]) == (
        PLANNING_BUREAU.ref,
        identifier,
        2026,
    )
    with repo.db.session(readonly=True) as session:
        told = session.scalars(
            select(NotificationOutboxRow.kind).where(NotificationOutboxRow.holder_ref == holder)
        )
        assert "status_changed" in told.all()

    clock.now = datetime(2027, 12, 1, 2, 0, tzinfo=UTC)
    passed = _record(repo, identifier, year=2027, inspected_on=date(2027, 11, 30))
    assert passed.consequence is Action.RESUME
    assert certificates.get(repo, identifier).stored_status is Status.VALID
    assert _events(repo, identifier)[-1] == ("resume", "valid", "2027年度年检合格")
    assert list_inspections(repo, identifier) == [
        replace(failed, consequence=None),
        replace(passed, consequence=None),
    ]


def test_an_inspection_never_lifts_another_suspension(
    repo: Repository, clock: Clock, draft: DraftMaker
) -> None:
    """A certificate the agency suspended for another reason stays suspended after a passed inspection, and a
    failure of a suspended certificate changes nothing more; a late-recorded pass of an earlier year does not lift
    a later year's failure."""
    identifier = _suspending(repo, clock, draft)
    issuing.act(
        repo, identifier, Action.SUSPEND, reason="涉嫌违法，立案调查", actor=Actor.of(PLANNING_BUREAU)
    )
    assert _record(repo, identifier).consequence is None
    assert _record(repo, identifier, year=2026, result="passed").consequence is None  # the same result again
    assert certificates.get(repo, identifier).stored_status is Status.SUSPENDED
    assert _events(repo, identifier)[-1][2] == "涉嫌违法，立案调查"

    other = issuing.issue(repo, draft(SITE_OPINION, _number(2))).certificate.identifier
    clock.now = datetime(2027, 12, 1, 2, 0, tzinfo=UTC)
    assert _record(repo, other, year=2027, result="failed", inspected_on=date(2027, 11, 30)).consequence is (
        Action.SUSPEND
    )
    late = _record(repo, other, year=2026, result="passed", inspected_on=date(2026, 12, 10))
    assert late.consequence is None and certificates.get(repo, other).stored_status is Status.SUSPENDED


def test_without_a_declared_consequence_a_failure_is_only_recorded(repo: Repository, opinion: str) -> None:
    """A type with annual inspection but no ``inspection`` member (``on_failure`` none): the failed result is
    stored, the certificate stays valid and has no new lifecycle event."""
    assert _record(repo, opinion, **FAILED_ON_THE_10TH).consequence is None
    assert certificates.get(repo, opinion).stored_status is Status.VALID
    assert [e.action for e in certificates.get(repo, opinion).events] == ["issue"]


def test_a_year_before_the_certificate_was_issued_is_refused(
    repo: Repository, clock: Clock, draft: DraftMaker, opinion: str
) -> None:
    """The certificate was first issued on 2026-11-26: a 2025 result is refused with the reason, also when asked
    through a later version (renewed in 2027) — the first version's issue date counts."""
    with pytest.raises(ValueError, match=r"year 2025 is before the certificate was issued \(2026-11-26\)"):
        _record(repo, opinion, year=2025, inspected_on=date(2026, 12, 1))
    clock.now = datetime(2027, 12, 1, 2, 0, tzinfo=UTC)
    renewed = issuing.renew(repo, opinion, valid_until=date(2031, 12, 31), reason="延续")
    with pytest.raises(ValueError, match="before the certificate was issued"):
        _record(repo, renewed.identifier, year=2025, inspected_on=date(2026, 12, 1))
    assert _record(repo, renewed.identifier, year=2026).year == 2026
    assert [i.year for i in list_inspections(repo, opinion)] == [2026]
