"""复核 (第二十条): a holder or a using unit disputes a certificate; the issuing agency answers within
:data:`REVIEW_WORKING_DAYS` working days (工作日).

The deadline (``due_date``, the last day to answer) is counted at submission with the stored working-day
calendar (:mod:`certstore.services.calendar`) from the submission's calendar day in China Standard Time; it
is stored and not recomputed when the calendar changes later. A request is *overdue* (逾期) while it is open
and today (China Standard Time, by the repository clock) is after its due date.

States: ``open`` → ``answered`` (by the issuing agency: confirmed 维持 / corrected 更正 / rejected 驳回) or
``withdrawn`` (by the requesting organisation). Both are final.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.orm import Session

from certstore.access import AccessDeniedError, Principal
from certstore.services import certificates
from certstore.services.calendar import load_calendar
from certstore.services.notifications import events as notification_events
from certstore.services.transaction import Within, run_within
from certstore.store.models import ReviewRequestRow
from certstore.store.repository import Repository
from certstore.workdays import local_date

if TYPE_CHECKING:
    from certstore.app import Application
    from certstore.services.calls import Call

__all__ = [
    "REVIEW_WORKING_DAYS",
    "ReviewNotFoundError",
    "ReviewOutcome",
    "ReviewRequest",
    "ReviewStateError",
    "ReviewStatus",
    "answer_review",
    "get_review",
    "list_reviews",
    "submit_holder_review",
    "submit_review",
    "withdraw_review",
]

#: 第二十条: the issuing agency answers a review request within 5 working days.
REVIEW_WORKING_DAYS = 5

MATTER_MAX = 100  # review_requests.matter
LIST_LIMIT_MAX = 1000


class ReviewStatus(StrEnum):
    OPEN = "open"  # 待复核
    ANSWERED = "answered"  # 已答复
    WITHDRAWN = "withdrawn"  # 已撤回


class ReviewOutcome(StrEnum):
    CONFIRMED = "confirmed"  # 维持: the certificate is right as it is
    CORRECTED = "corrected"  # 更正: the agency corrected it (变更 or another lifecycle action)
    REJECTED = "rejected"  # 驳回: the request is not founded or not admissible


class ReviewNotFoundError(LookupError):
    """No review request with that id."""


class ReviewStateError(ValueError):
    """The request is no longer open (already answered or withdrawn)."""


@dataclass(frozen=True)
class ReviewRequest:
    """A 复核 request as readers see it; ``overdue`` is computed against the repository clock."""

    id: int
    certificate_identifier: str
    issuer_code: str
    requester: str  # principal "ORGCODE/name"
    requester_organisation_code: str
    matter: str | None
    reason: str
    status: ReviewStatus
    submitted_at: datetime
    due_date: date  # last day (China Standard Time) to answer
    answered_at: datetime | None
    answered_by: str | None
    outcome: ReviewOutcome | None
    answer: str | None
    overdue: bool  # open and today is after due_date


def _view(row: ReviewRequestRow, today: date) -> ReviewRequest:
    status = ReviewStatus(row.status)
    return ReviewRequest(
        id=row.id,
        certificate_identifier=row.certificate_identifier,
        issuer_code=row.issuer_code,
        requester=row.requester,
        requester_organisation_code=row.requester_organisation_code,
        matter=row.matter,
        reason=row.reason,
        status=status,
        submitted_at=row.submitted_at,
        due_date=row.due_date,
        answered_at=row.answered_at,
        answered_by=row.answered_by,
        outcome=ReviewOutcome(row.outcome) if row.outcome is not None else None,
        answer=row.answer,
        overdue=status is ReviewStatus.OPEN and today > row.due_date,
    )


def _row(session: Session, review_id: int, *, lock: bool = False) -> ReviewRequestRow:
    query = select(ReviewRequestRow).where(ReviewRequestRow.id == review_id)
    if lock:
        query = query.with_for_update()
    row = session.scalars(query).first()
    if row is None:
        raise ReviewNotFoundError(f"no review request {review_id}")
    return row


def _text(value: str | None, what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{what} must not be empty")
    return value.strip()


def _require_open(row: ReviewRequestRow, doing: str) -> None:
    if row.status != ReviewStatus.OPEN:
        raise ReviewStateError(f"review request {row.id} is {row.status}, not open: it cannot be {doing}")


def submit_review(
    repo: Repository,
    identifier: str,
    *,
    requester: Principal,
    reason: str,
    matter: str | None = None,
    within: Within | None = None,
) -> ReviewRequest:
    """Open a 复核 request about the certificate ``identifier`` (any version); due in
    :data:`REVIEW_WORKING_DAYS` working days after the submission day. Raises
    :class:`certstore.services.certificates.CertificateNotFoundError` for an unknown certificate and
    ``ValueError`` for an empty reason or an over-long matter number. ``within``
    (:mod:`certstore.services.transaction`) runs in the transaction that stores the request."""
    reason = _text(reason, "the reason for a review request")
    if matter is not None:
        matter = matter.strip() or None
    if matter is not None and len(matter) > MATTER_MAX:
        raise ValueError(f"the matter number is longer than {MATTER_MAX} characters")
    certificate = certificates.get(repo, identifier)
    calendar = load_calendar(repo)
    at = repo.now()
    today = local_date(at)
    row = ReviewRequestRow(
        certificate_identifier=certificate.identifier,
        issuer_code=certificate.issuer_code,
        requester=requester.ref,
        requester_organisation_code=requester.organisation_code,
        matter=matter,
        reason=reason,
        status=ReviewStatus.OPEN.value,
        submitted_at=at,
        due_date=calendar.add_working_days(today, REVIEW_WORKING_DAYS),
    )
    with repo.db.session() as session:
        session.add(row)
        session.flush()
        run_within(session, within)
        return _view(row, today)


def answer_review(
    repo: Repository,
    review_id: int,
    *,
    responder: Principal,
    outcome: ReviewOutcome | str,
    answer: str,
    within: Within | None = None,
) -> ReviewRequest:
    """The issuing agency's answer. Only a principal of the organisation that issued the certificate may answer
    (:class:`AccessDeniedError` otherwise), and only an open request (:class:`ReviewStateError`). A late answer
    is accepted; the request then shows it was answered after ``due_date``. ``within`` runs in the transaction
    that stores the answer."""
    try:
        outcome = ReviewOutcome(outcome)
    except ValueError:
        allowed = ", ".join(o.value for o in ReviewOutcome)
        raise ValueError(f"outcome must be one of {allowed}, got {outcome!r}") from None
    answer = _text(answer, "the answer to a review request")
    with repo.db.session() as session:
        row = _row(session, review_id, lock=True)
        if responder.organisation_code != row.issuer_code:
            raise AccessDeniedError(
                f"review request {review_id} concerns a certificate issued by {row.issuer_code}; only that "
                f"agency may answer it, not {responder.organisation_code}"
            )
        _require_open(row, "answered")
        at = repo.now()
        row.status = ReviewStatus.ANSWERED.value
        row.answered_at = at
        row.answered_by = responder.ref
        row.outcome = outcome.value
        row.answer = answer
        notification_events.review_answered(session, repo, row)  # the holder is told, in this transaction
        run_within(session, within)
        return _view(row, local_date(at))


def withdraw_review(
    repo: Repository, review_id: int, *, requester: Principal, within: Within | None = None
) -> ReviewRequest:
    """The requesting organisation withdraws its open request (:class:`AccessDeniedError` for anyone else,
    :class:`ReviewStateError` when it is no longer open). ``within`` runs in the transaction that withdraws it."""
    with repo.db.session() as session:
        row = _row(session, review_id, lock=True)
        if requester.organisation_code != row.requester_organisation_code:
            raise AccessDeniedError(
                f"review request {review_id} was submitted by {row.requester_organisation_code}; only that "
                f"organisation may withdraw it, not {requester.organisation_code}"
            )
        _require_open(row, "withdrawn")
        row.status = ReviewStatus.WITHDRAWN.value
        run_within(session, within)
        return _view(row, local_date(repo.now()))


def get_review(repo: Repository, review_id: int) -> ReviewRequest:
    with repo.db.session(readonly=True) as session:
        return _view(_row(session, review_id), local_date(repo.now()))


def list_reviews(
    repo: Repository,
    *,
    issuer_code: str | None = None,
    requester_organisation_code: str | None = None,
    status: ReviewStatus | str | None = None,
    overdue_only: bool = False,
    limit: int = 100,
    offset: int = 0,
) -> list[ReviewRequest]:
    """Review requests, oldest first, filtered by issuing agency, requesting organisation, status, and
    ``overdue_only`` (open and past the due date)."""
    if not 1 <= limit <= LIST_LIMIT_MAX:
        raise ValueError(f"limit must be between 1 and {LIST_LIMIT_MAX}, got {limit}")
    if offset < 0:
        raise ValueError(f"offset must not be negative, got {offset}")
    today = local_date(repo.now())
    query = select(ReviewRequestRow)
    if issuer_code is not None:
        query = query.where(ReviewRequestRow.issuer_code == issuer_code)
    if requester_organisation_code is not None:
        query = query.where(ReviewRequestRow.requester_organisation_code == requester_organisation_code)
    if status is not None:
        try:
            status = ReviewStatus(status)
        except ValueError:
            allowed = ", ".join(s.value for s in ReviewStatus)
            raise ValueError(f"status must be one of {allowed}, got {status!r}") from None
        query = query.where(ReviewRequestRow.status == status.value)
    if overdue_only:
        query = query.where(
            ReviewRequestRow.status == ReviewStatus.OPEN.value, ReviewRequestRow.due_date < today
        )
    query = query.order_by(ReviewRequestRow.id).limit(limit).offset(offset)
    with repo.db.session(readonly=True) as session:
        return [_view(row, today) for row in session.scalars(query)]


def submit_holder_review(app: Application, call: Call, identifier: str, *, reason: str) -> ReviewRequest:
    """A holder (证照持有人, ``call.actor``) opens a 复核 request about one of their own certificates (any
    version): the requester is ``holder:<holder_ref>`` (kept as the requesting "organisation" too, so a holder
    lists and follows their own requests). A certificate of someone else answers as one that does not exist;
    the request and its audit entry (``review.submit``) are one transaction."""
    from certstore.access import Role
    from certstore.services.calls import audit_in

    actor = call.actor
    if actor.role is not Role.HOLDER or not actor.holder_ref:
        raise AccessDeniedError("only the holder files a review this way")
    certificate = certificates.get(app.repo, identifier)
    if certificate.holder_ref != actor.holder_ref:
        raise certificates.CertificateNotFoundError(f"no certificate {identifier}")
    reason = _text(reason, "the reason for a review request")
    at = app.repo.now()
    today = local_date(at)
    row = ReviewRequestRow(
        certificate_identifier=certificate.identifier,
        issuer_code=certificate.issuer_code,
        requester=actor.ref,
        requester_organisation_code=actor.ref,
        reason=reason,
        status=ReviewStatus.OPEN.value,
        submitted_at=at,
        due_date=load_calendar(app.repo).add_working_days(today, REVIEW_WORKING_DAYS),
    )
    with app.repo.db.session() as session:
        session.add(row)
        session.flush()
        event = call.event(
            "review.submit", certificate=certificate.identifier, holder_digest=actor.holder_ref,
            details={"review": row.id},
        )  # fmt: skip
        audit_in(session, call, event)
        return _view(row, today)
