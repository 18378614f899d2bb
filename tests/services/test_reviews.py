"""复核 requests on SQLite and PostgreSQL: deadline in working days, overdue, answer, withdraw, listing."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from certstore.access import AccessDeniedError, Principal, Role
from certstore.services.calendar import import_days
from certstore.services.certificates import CertificateNotFoundError
from certstore.services.reviews import (
    REVIEW_WORKING_DAYS,
    ReviewNotFoundError,
    ReviewOutcome,
    ReviewStateError,
    ReviewStatus,
    answer_review,
    get_review,
    list_reviews,
    submit_review,
    withdraw_review,
)
from certstore.store.repository import Repository
from certstore.workdays import local_date
from tests.services.conftest import Clock, DraftMaker
from tests.support import issuing

CONSTRUCTION_PERMIT = "11410100990000025A001"  # issued by 郑州市城乡建设局 11410100990000025A
BUSINESS_LICENCE = "114101009900000410001"  # issued by 114101009900000410

CONSTRUCTION_BUREAU = Principal(1, "li.si", Role.AGENCY, "11410100990000025A", "郑州市城乡建设局")
MARKET_BUREAU = Principal(2, "wang.wu", Role.AGENCY, "114101009900000410", "郑州市市场监督管理局")
WINDOW = Principal(3, "zhao.liu", Role.WINDOW, "11410100MB1234567X", "郑州市政务服务中心")
WINDOW_COLLEAGUE = Principal(4, "qian.qi", Role.WINDOW, "11410100MB1234567X", "郑州市政务服务中心")
OTHER_UNIT = Principal(5, "sun.ba", Role.WINDOW, "11410100MB7654321Y", "郑州市公积金中心")

WEDNESDAY_MORNING = datetime(2026, 9, 30, 2, 0, tzinfo=UTC)  # 10:00 in Beijing

# TEST DATA, not an authoritative calendar (shaped like the State Council's 2026 National Day notice).
NATIONAL_DAY = {
    "holidays": {f"2026-10-0{d}": "国庆节" for d in (1, 2, 5, 6, 7)},
    "workdays": {"2026-10-10": "国庆调休"},
}


@pytest.fixture
def permit(repo: Repository, draft: DraftMaker) -> str:
    return issuing.issue(repo, draft(CONSTRUCTION_PERMIT)).certificate.identifier


@pytest.fixture
def licence(repo: Repository, draft: DraftMaker) -> str:
    return issuing.issue(repo, draft(BUSINESS_LICENCE)).certificate.identifier


def test_submit(repo: Repository, clock: Clock, permit: str) -> None:
    clock.now = WEDNESDAY_MORNING
    review = submit_review(
        repo, permit, requester=WINDOW, reason=" 照面地址与不动产登记不一致 ", matter=" BJ-001 "
    )
    assert review.certificate_identifier == permit
    assert review.issuer_code == "11410100990000025A"
    assert review.requester == "11410100MB1234567X/zhao.liu"
    assert review.requester_organisation_code == WINDOW.organisation_code
    assert (review.reason, review.matter) == ("照面地址与不动产登记不一致", "BJ-001")
    assert review.status is ReviewStatus.OPEN and not review.overdue
    assert review.submitted_at == WEDNESDAY_MORNING
    assert REVIEW_WORKING_DAYS == 5
    assert review.due_date == date(2026, 10, 7)  # no holidays stored: Wednesday + 5 working days
    assert (review.answered_at, review.answered_by, review.outcome, review.answer) == (None, None, None, None)
    assert get_review(repo, review.id) == review


def test_due_date_skips_holidays_and_counts_make_up_days(repo: Repository, clock: Clock, permit: str) -> None:
    import_days(repo, NATIONAL_DAY)
    clock.now = WEDNESDAY_MORNING
    review = submit_review(repo, permit, requester=WINDOW, reason="有误", matter=None)
    # 10-01 … 10-07 off; 10-08 Thu, 10-09 Fri, 10-10 Sat (调休), 10-12 Mon, 10-13 Tue
    assert review.due_date == date(2026, 10, 13)


def test_submission_day_is_the_day_in_beijing(repo: Repository, clock: Clock, permit: str) -> None:
    clock.now = datetime(2026, 10, 15, 16, 30, tzinfo=UTC)  # Thursday in UTC, Friday 00:30 in Beijing
    review = submit_review(repo, permit, requester=WINDOW, reason="有误", matter=None)
    assert review.due_date == date(2026, 10, 23)  # Friday + 5 → next Friday (Thursday + 5 would be 10-22)


def test_overdue_after_the_due_date(repo: Repository, clock: Clock, permit: str) -> None:
    clock.now = WEDNESDAY_MORNING
    late = submit_review(repo, permit, requester=WINDOW, reason="有误", matter=None)
    answered = submit_review(repo, permit, requester=WINDOW, reason="另一处有误", matter=None)
    answer_review(repo, answered.id, responder=CONSTRUCTION_BUREAU, outcome="confirmed", answer="经核查无误")
    assert late.due_date == date(2026, 10, 7)

    clock.now = datetime(2026, 10, 7, 15, 59, tzinfo=UTC)  # 23:59 on the due date in Beijing
    assert not get_review(repo, late.id).overdue
    assert list_reviews(repo, overdue_only=True) == []

    clock.advance(minutes=1)  # midnight in Beijing: the deadline has passed
    assert get_review(repo, late.id).overdue
    overdue = list_reviews(repo, overdue_only=True)
    assert [r.id for r in overdue] == [late.id]
    assert overdue[0].overdue and overdue[0].status is ReviewStatus.OPEN
    assert not get_review(repo, answered.id).overdue  # answered requests are never overdue

    # a late answer is accepted, and the request leaves the overdue list
    done = answer_review(repo, late.id, responder=CONSTRUCTION_BUREAU, outcome="corrected", answer="已变更")
    assert not done.overdue and done.answered_at is not None
    assert local_date(done.answered_at) > done.due_date
    assert list_reviews(repo, overdue_only=True) == []


def test_answer_by_the_issuing_agency(repo: Repository, clock: Clock, permit: str) -> None:
    clock.now = WEDNESDAY_MORNING
    review = submit_review(repo, permit, requester=WINDOW, reason="有误", matter=None)
    clock.advance(days=2)
    answered = answer_review(
        repo, review.id, responder=CONSTRUCTION_BUREAU, outcome=ReviewOutcome.REJECTED, answer=" 不予受理 "
    )
    assert answered.status is ReviewStatus.ANSWERED
    assert answered.outcome is ReviewOutcome.REJECTED
    assert answered.answer == "不予受理"
    assert answered.answered_by == "11410100990000025A/li.si"
    assert answered.answered_at == clock.now
    assert get_review(repo, review.id) == answered


def test_another_agency_may_not_answer(repo: Repository, permit: str) -> None:
    review = submit_review(repo, permit, requester=WINDOW, reason="有误", matter=None)
    with pytest.raises(AccessDeniedError, match="only that agency may answer"):
        answer_review(repo, review.id, responder=MARKET_BUREAU, outcome="confirmed", answer="无误")
    with pytest.raises(AccessDeniedError):  # nor the requester
        answer_review(repo, review.id, responder=WINDOW, outcome="confirmed", answer="无误")
    assert get_review(repo, review.id).status is ReviewStatus.OPEN


def test_answer_twice_is_refused(repo: Repository, permit: str) -> None:
    review = submit_review(repo, permit, requester=WINDOW, reason="有误", matter=None)
    first = answer_review(repo, review.id, responder=CONSTRUCTION_BUREAU, outcome="confirmed", answer="无误")
    with pytest.raises(ReviewStateError, match="answered, not open"):
        answer_review(repo, review.id, responder=CONSTRUCTION_BUREAU, outcome="corrected", answer="已更正")
    assert get_review(repo, review.id) == first


def test_withdraw(repo: Repository, permit: str) -> None:
    review = submit_review(repo, permit, requester=WINDOW, reason="有误", matter=None)
    with pytest.raises(AccessDeniedError, match="only that organisation may withdraw"):
        withdraw_review(repo, review.id, requester=OTHER_UNIT)
    withdrawn = withdraw_review(repo, review.id, requester=WINDOW_COLLEAGUE)  # same organisation
    assert withdrawn.status is ReviewStatus.WITHDRAWN and not withdrawn.overdue
    assert withdrawn.outcome is None and withdrawn.answered_by is None
    with pytest.raises(ReviewStateError, match="withdrawn"):
        withdraw_review(repo, review.id, requester=WINDOW)
    with pytest.raises(ReviewStateError):
        answer_review(repo, review.id, responder=CONSTRUCTION_BUREAU, outcome="confirmed", answer="无误")


def test_list_filters(repo: Repository, clock: Clock, permit: str, licence: str) -> None:
    clock.now = WEDNESDAY_MORNING
    a = submit_review(repo, permit, requester=WINDOW, reason="a", matter=None)
    b = submit_review(repo, licence, requester=WINDOW, reason="b", matter=None)
    c = submit_review(repo, permit, requester=OTHER_UNIT, reason="c", matter=None)
    d = submit_review(repo, licence, requester=OTHER_UNIT, reason="d", matter=None)
    answer_review(repo, b.id, responder=MARKET_BUREAU, outcome="corrected", answer="已更正")
    withdraw_review(repo, c.id, requester=OTHER_UNIT)

    def ids(**filters: object) -> list[int]:
        return [r.id for r in list_reviews(repo, **filters)]  # type: ignore[arg-type]

    assert ids() == [a.id, b.id, c.id, d.id]
    assert ids(issuer_code="11410100990000025A") == [a.id, c.id]
    assert ids(issuer_code="114101009900000410") == [b.id, d.id]
    assert ids(requester_organisation_code=OTHER_UNIT.organisation_code) == [c.id, d.id]
    assert ids(status="open") == [a.id, d.id]
    assert ids(status=ReviewStatus.ANSWERED) == [b.id]
    assert ids(status="withdrawn", requester_organisation_code=OTHER_UNIT.organisation_code) == [c.id]
    assert ids(issuer_code="114101009900000410", status="open") == [d.id]
    assert ids(limit=2) == [a.id, b.id]
    assert ids(limit=2, offset=3) == [d.id]
    clock.advance(days=30)
    assert ids(overdue_only=True) == [a.id, d.id]
    assert ids(overdue_only=True, issuer_code="114101009900000410") == [d.id]
    with pytest.raises(ValueError, match="status must be one of"):
        list_reviews(repo, status="closed")
    with pytest.raises(ValueError, match="limit"):
        list_reviews(repo, limit=0)


def test_bad_requests(repo: Repository, permit: str) -> None:
    with pytest.raises(CertificateNotFoundError):
        other = permit[:-1] + ("1" if permit.endswith("0") else "0")  # (the last character was "0" at times)
        submit_review(repo, other, requester=WINDOW, reason="有误", matter=None)
    with pytest.raises(ValueError, match="reason"):
        submit_review(repo, permit, requester=WINDOW, reason="  ", matter=None)
    with pytest.raises(ValueError, match="matter"):
        submit_review(repo, permit, requester=WINDOW, reason="有误", matter="x" * 101)
    assert list_reviews(repo) == []
    review = submit_review(repo, permit, requester=WINDOW, reason="有误", matter="")
    assert review.matter is None
    with pytest.raises(ValueError, match="outcome must be one of"):
        answer_review(repo, review.id, responder=CONSTRUCTION_BUREAU, outcome="ok", answer="无误")
    with pytest.raises(ValueError, match="answer"):
        answer_review(repo, review.id, responder=CONSTRUCTION_BUREAU, outcome="confirmed", answer="")
    with pytest.raises(ReviewNotFoundError):
        get_review(repo, review.id + 1000)
    with pytest.raises(ReviewNotFoundError):
        answer_review(
            repo, review.id + 1000, responder=CONSTRUCTION_BUREAU, outcome="confirmed", answer="无误"
        )
    assert get_review(repo, review.id).status is ReviewStatus.OPEN


def test_review_of_an_older_version(repo: Repository, draft: DraftMaker, permit: str) -> None:
    """A dispute may concern a superseded version; the issuer is still the one to answer."""
    new = issuing.renew(repo, permit, valid_until=None, reason="延续")
    assert new.identifier != permit
    review = submit_review(repo, permit, requester=WINDOW, reason="旧版本有误", matter=None)
    assert review.certificate_identifier == permit
    assert review.issuer_code == CONSTRUCTION_BUREAU.organisation_code
