"""The ``within`` hooks of the mutating services (:mod:`certstore.services.transaction`): each runs the caller's
hook in the transaction of its change, after the change is flushed (the hook sees it) and before the commit (a
hook that raises rolls the change back); a repeat that changes nothing does not call it. On SQLite and
PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from certstore.access import Actor, Principal, Role
from certstore.catalogue import CatalogueEntry
from certstore.lifecycle import Action, Status
from certstore.services import access, calendar, catalogue, certificates, inspections, reviews
from certstore.services.transaction import Within, compose
from certstore.store.models import (
    AccessGrantRow,
    ApiTokenRow,
    CalendarDayRow,
    CatalogueEntryRow,
    CertificateRow,
    InspectionRow,
    ReviewRequestRow,
)
from certstore.store.repository import Repository
from tests.services.conftest import Clock, DraftMaker
from tests.support import issuing

SITE_OPINION = "11410100990000017F001"  # issued by the planning bureau
PLANNING = Principal(1, "zhou.jiu", Role.AGENCY, "11410100990000017F", "郑州市自然资源和规划局")
WINDOW = Principal(2, "li.si", Role.WINDOW, "12410100MB0000001X", "郑州市政务服务中心")
BUREAU = Principal(3, "zhao.liu", Role.BUREAU, "11410100MB1700000X", "郑州市大数据管理局")
DAY = date(2026, 12, 30)  # a Wednesday
ISSUER = Actor.of(PLANNING)


Call = Callable[[Within | None], object]


@dataclass(frozen=True)
class Case:
    """``prepare(repo, draft)`` sets the scene and returns the call to make with a hook; the change is stored when
    ``rows`` finds ``expected`` rows."""

    prepare: Callable[[Repository, DraftMaker], Call]
    rows: Select[Any]
    expected: int = 1

    def stored(self, session: Session) -> bool:
        return len(session.scalars(self.rows).all()) == self.expected


def _issued(repo: Repository, draft: DraftMaker) -> certificates.Certificate:
    return issuing.issue(repo, draft(SITE_OPINION), actor=ISSUER).certificate


def _catalogue_document(repo: Repository) -> dict[str, Any]:
    document = catalogue.get_entry(repo, SITE_OPINION).to_document()
    document["version"] += 1
    return document


def _open_review(repo: Repository, draft: DraftMaker) -> int:
    return reviews.submit_review(repo, _issued(repo, draft).identifier, requester=WINDOW, reason="有误").id


def _grant(repo: Repository, within: Within | None = None) -> access.Grant:
    access.ensure_organisation(repo, WINDOW.organisation_code)
    return access.issue_grant(
        repo,
        organisation_code=WINDOW.organisation_code,
        purpose="统计",
        valid_until=repo.now() + timedelta(days=30),
        issued_by=BUREAU,
        within=within,
    )


def _token(repo: Repository, within: Within | None = None) -> access.IssuedToken:
    return access.create_token(
        repo, role=Role.BUREAU, organisation_code=BUREAU.organisation_code, within=within
    )


def _issue(repo: Repository, draft: DraftMaker) -> Call:
    return lambda within: issuing.issue(repo, draft(SITE_OPINION), actor=ISSUER, within=within)


def _act(repo: Repository, draft: DraftMaker) -> Call:
    identifier = _issued(repo, draft).identifier
    return lambda within: issuing.act(
        repo, identifier, Action.SUSPEND, reason="核查", actor=ISSUER, within=within
    )


def _submit_entry(repo: Repository, draft: DraftMaker) -> Call:
    document = _catalogue_document(repo)
    return lambda within: catalogue.submit_entry(repo, document, principal=PLANNING, within=within)


def _review_entry(repo: Repository, draft: DraftMaker) -> Call:
    catalogue.submit_entry(repo, _catalogue_document(repo), principal=PLANNING)
    return lambda within: catalogue.review_entry(
        repo, SITE_OPINION, 3, approve=True, reviewer=BUREAU, within=within
    )


def _submit_review(repo: Repository, draft: DraftMaker) -> Call:
    identifier = _issued(repo, draft).identifier
    return lambda within: reviews.submit_review(
        repo, identifier, requester=WINDOW, reason="有误", matter="ZZ1", within=within
    )


def _answer_review(repo: Repository, draft: DraftMaker) -> Call:
    review_id = _open_review(repo, draft)
    return lambda within: reviews.answer_review(
        repo, review_id, responder=PLANNING, outcome="confirmed", answer="无误", within=within
    )


def _withdraw_review(repo: Repository, draft: DraftMaker) -> Call:
    review_id = _open_review(repo, draft)
    return lambda within: reviews.withdraw_review(repo, review_id, requester=WINDOW, within=within)


def _inspection(repo: Repository, draft: DraftMaker) -> Call:
    document = _catalogue_document(repo)
    document["annual_inspection"] = True
    catalogue.register_entry(repo, CatalogueEntry.from_document(document))
    identifier = _issued(repo, draft).identifier
    return lambda within: inspections.record_inspection(
        issuing.application(repo), issuing.call(ISSUER), identifier, year=2026, result="passed",
        inspected_on=date(2026, 12, 1), within=within,
    )  # fmt: skip


def _issue_grant(repo: Repository, draft: DraftMaker) -> Call:
    return lambda within: _grant(repo, within)


def _revoke_grant(repo: Repository, draft: DraftMaker) -> Call:
    grant = _grant(repo)
    return lambda within: access.revoke_grant(repo, grant.id, revoked_by=BUREAU, within=within)


def _create_token(repo: Repository, draft: DraftMaker) -> Call:
    return lambda within: _token(repo, within)


def _revoke_token(repo: Repository, draft: DraftMaker) -> Call:
    token = _token(repo)
    return lambda within: access.revoke_token(repo, token.lookup, within=within)


def _set_day(repo: Repository, draft: DraftMaker) -> Call:
    return lambda within: calendar.set_day(repo, DAY, "holiday", "测试假日", within=within)


def _remove_day(repo: Repository, draft: DraftMaker) -> Call:
    calendar.set_day(repo, DAY, "holiday", "测试假日")
    return lambda within: calendar.remove_day(repo, DAY, within=within)


def _import_days(repo: Repository, draft: DraftMaker) -> Call:
    return lambda within: calendar.import_days(
        repo, {"holidays": {DAY.isoformat(): "测试假日"}}, within=within
    )


CASES = {
    "certificate issue": Case(_issue, select(CertificateRow)),
    "certificate act": Case(
        _act, select(CertificateRow).where(CertificateRow.status == Status.SUSPENDED.value)
    ),
    "catalogue submit": Case(
        _submit_entry, select(CatalogueEntryRow).where(CatalogueEntryRow.status == "pending")
    ),
    "catalogue review": Case(
        _review_entry,
        select(CatalogueEntryRow).where(
            CatalogueEntryRow.version == 3, CatalogueEntryRow.status == "approved"
        ),
    ),
    "review submit": Case(_submit_review, select(ReviewRequestRow)),
    "review answer": Case(
        _answer_review, select(ReviewRequestRow).where(ReviewRequestRow.status == "answered")
    ),
    "review withdraw": Case(
        _withdraw_review, select(ReviewRequestRow).where(ReviewRequestRow.status == "withdrawn")
    ),
    "inspection": Case(_inspection, select(InspectionRow)),
    "grant issue": Case(_issue_grant, select(AccessGrantRow)),
    "grant revoke": Case(_revoke_grant, select(AccessGrantRow).where(AccessGrantRow.revoked_at.is_not(None))),
    "token create": Case(_create_token, select(ApiTokenRow)),
    "token revoke": Case(_revoke_token, select(ApiTokenRow).where(ApiTokenRow.revoked_at.is_not(None))),
    "calendar set": Case(_set_day, select(CalendarDayRow)),
    "calendar remove": Case(_remove_day, select(CalendarDayRow), expected=0),
    "calendar import": Case(_import_days, select(CalendarDayRow)),
}


@pytest.fixture(params=sorted(CASES), ids=lambda name: name.replace(" ", "-"))
def case(request: pytest.FixtureRequest) -> Case:
    return CASES[str(request.param)]


@pytest.fixture
def december(clock: Clock) -> None:
    clock.now = datetime(2026, 12, 15, 2, 0, tzinfo=UTC)


def test_the_hook_sees_the_change_and_commits_with_it(
    case: Case, repo: Repository, draft: DraftMaker, december: None
) -> None:
    call = case.prepare(repo, draft)
    seen: list[bool] = []
    call(lambda session: seen.append(case.stored(session)))
    assert seen == [True]  # called once, after the change was flushed
    with repo.db.session(readonly=True) as session:
        assert case.stored(session)


def test_a_failing_hook_rolls_the_change_back(
    case: Case, repo: Repository, draft: DraftMaker, december: None
) -> None:
    call = case.prepare(repo, draft)

    def fail(session: Session) -> None:
        raise RuntimeError("the caller's own write failed")

    with pytest.raises(RuntimeError, match="own write failed"):
        call(fail)
    with repo.db.session(readonly=True) as session:
        assert not case.stored(session)
    call(None)  # and the same change without a hook still works
    with repo.db.session(readonly=True) as session:
        assert case.stored(session)


def test_repeats_that_change_nothing_do_not_call_the_hook(repo: Repository, draft: DraftMaker) -> None:
    calls: list[str] = []

    def hook(name: str) -> Within:
        return lambda session: calls.append(name)

    issuing.issue(repo, draft(SITE_OPINION), actor=ISSUER)
    issuing.issue(repo, draft(SITE_OPINION), actor=ISSUER, within=hook("issue"))
    document = _catalogue_document(repo)
    catalogue.submit_entry(repo, document, principal=PLANNING)
    catalogue.submit_entry(repo, document, principal=PLANNING, within=hook("catalogue"))
    grant = _grant(repo)
    access.revoke_grant(repo, grant.id, revoked_by=BUREAU)
    access.revoke_grant(repo, grant.id, revoked_by=BUREAU, within=hook("grant"))
    assert calendar.remove_day(repo, DAY, within=hook("calendar")) is False
    assert calls == []


def test_written_version_names_what_the_change_wrote(repo: Repository, draft: DraftMaker) -> None:
    written: list[certificates.Certificate] = []
    first = issuing.issue(repo, draft(SITE_OPINION), actor=ISSUER,
        within=lambda session: written.append(certificates.written_version(session)),
    ).certificate  # fmt: skip
    renewed = issuing.renew(repo, first.identifier, valid_until=None, reason="延续", actor=ISSUER,
        within=lambda session: written.append(certificates.written_version(session)),
    )  # fmt: skip
    assert [c.identifier for c in written] == [first.identifier, renewed.identifier]
    assert written[1].version == 2 and written[1].created_at == renewed.created_at
    with repo.db.session() as session, pytest.raises(LookupError):
        certificates.written_version(session)


def test_compose_runs_hooks_in_order_and_skips_none() -> None:
    order: list[int] = []
    composed = compose(None, lambda s: order.append(1), None, lambda s: order.append(2))
    assert composed is not None
    composed(None)  # type: ignore[arg-type]
    assert order == [1, 2]
    assert compose(None, None) is None
