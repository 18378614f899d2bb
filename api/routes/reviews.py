"""Review requests (复核, 第二十条): a using unit disputes a certificate on behalf of its holder; the issuer
answers within 5 working days (configurable calendar); overdue requests are listed."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from api.deps import ServicesDep
from api.models import EXAMPLE_IDENTIFIER, MAX_ID, RecordOut
from api.problems import PROBLEM_RESPONSES
from api.scope import Serving, authorize_certificate
from api.security import ActionAuditDep, allow
from certstore.access import AccessDeniedError, Principal, Role
from certstore.services import certificates, reviews
from certstore.services.reviews import ReviewRequest

router = APIRouter(prefix="/api/v1/reviews", tags=["review"])

Window = Annotated[Principal, Depends(allow(Role.WINDOW))]
Agency = Annotated[Principal, Depends(allow(Role.AGENCY))]
Reader = Annotated[Principal, Depends(allow(Role.AGENCY, Role.WINDOW, Role.BUREAU))]
ReviewId = Annotated[int, Path(ge=1, le=MAX_ID)]


class ReviewIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "identifier": EXAMPLE_IDENTIFIER,
                    "reason": "证照上的建设规模与批准文件不一致",
                    "matter": "ZZ2026112600123",
                    "holder_id_type": "001",
                    "holder_id": "91410100MA44A1B2XW",
                }
            ]
        },
    )

    identifier: str = Field(min_length=1, max_length=128)
    reason: str = Field(min_length=1, max_length=4000)
    matter: str = Field(min_length=1, max_length=100)
    holder_id_type: str
    holder_id: str = Field(min_length=1, max_length=64)


class AnswerIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    outcome: Literal["confirmed", "corrected", "rejected"] = Field(
        description="confirmed: the certificate is right; corrected: it was changed; rejected: the request is unfounded"
    )
    answer: str = Field(min_length=1, max_length=4000)


class ReviewOut(RecordOut):
    id: int
    certificate_identifier: str
    issuer_code: str
    requester: str
    requester_organisation_code: str
    matter: str | None
    reason: str
    status: str
    submitted_at: datetime
    due_date: date
    overdue: bool
    answered_at: datetime | None
    answered_by: str | None
    outcome: str | None
    answer: str | None


def _visible(review: ReviewRequest, principal: Principal) -> ReviewRequest:
    if principal.role is Role.BUREAU:
        return review
    if principal.role is Role.AGENCY and review.issuer_code == principal.organisation_code:
        return review
    if principal.role is Role.WINDOW and review.requester_organisation_code == principal.organisation_code:
        return review
    raise AccessDeniedError("this review request is neither yours nor addressed to you")


@router.post(
    "",
    status_code=201,
    response_model=ReviewOut,
    responses={s: PROBLEM_RESPONSES[s] for s in (404, 422)},
    summary="File a review request (复核申请) for the holder being served; due in 5 working days",
)
def submit_review(
    services: ServicesDep, principal: Window, body: ReviewIn, request: Request, audit: ActionAuditDep
) -> ReviewOut:
    certificate = certificates.get(services.repo, body.identifier)
    authorize_certificate(
        request,
        principal,
        certificate,
        Serving(body.matter, body.holder_id_type, body.holder_id),
    )
    review = reviews.submit_review(
        services.repo, body.identifier, requester=principal, reason=body.reason, matter=body.matter,
        within=audit.within(),
    )  # fmt: skip
    return ReviewOut.of(review)


@router.get(
    "",
    response_model=list[ReviewOut],
    summary="Review requests: an agency sees those addressed to it, a using unit its own, the bureau all",
)
def list_reviews(
    services: ServicesDep,
    principal: Reader,
    status: Literal["open", "answered", "withdrawn"] | None = None,
    overdue: Annotated[bool, Query(description="Only open requests past their due date")] = False,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> list[ReviewOut]:
    issuer = principal.organisation_code if principal.role is Role.AGENCY else None
    requester = principal.organisation_code if principal.role is Role.WINDOW else None
    found = reviews.list_reviews(
        services.repo,
        issuer_code=issuer,
        requester_organisation_code=requester,
        status=status,
        overdue_only=overdue,
        limit=limit,
        offset=offset,
    )
    return [ReviewOut.of(r) for r in found]


@router.get(
    "/{review_id}",
    response_model=ReviewOut,
    responses={404: PROBLEM_RESPONSES[404]},
    summary="One review request",
)
def get_review(services: ServicesDep, principal: Reader, review_id: ReviewId) -> ReviewOut:
    return ReviewOut.of(_visible(reviews.get_review(services.repo, review_id), principal))


@router.post(
    "/{review_id}/answer",
    response_model=ReviewOut,
    responses={s: PROBLEM_RESPONSES[s] for s in (404, 409)},
    summary="Answer a review request (the issuing agency)",
)
def answer_review(
    services: ServicesDep, principal: Agency, review_id: ReviewId, body: AnswerIn, audit: ActionAuditDep
) -> ReviewOut:
    review = reviews.answer_review(
        services.repo, review_id, responder=principal, outcome=body.outcome, answer=body.answer,
        within=audit.within(),
    )  # fmt: skip
    return ReviewOut.of(review)


@router.post(
    "/{review_id}/withdraw",
    response_model=ReviewOut,
    responses={s: PROBLEM_RESPONSES[s] for s in (404, 409)},
    summary="Withdraw a review request (the requesting unit)",
)
def withdraw_review(
    services: ServicesDep, principal: Window, review_id: ReviewId, audit: ActionAuditDep
) -> ReviewOut:
    return ReviewOut.of(
        reviews.withdraw_review(services.repo, review_id, requester=principal, within=audit.within())
    )
