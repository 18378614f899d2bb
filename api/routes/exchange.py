"""Arrival deadlines (第十一条): late arrivals and the agencies that miss them (第二十九条).

Every certificate version that reaches the repository (API push or exchange) is recorded with its business
completion time, channel and deadline (:mod:`certstore.services.deadlines`). The bureau lists late arrivals of
every agency and the offenders; an agency sees its own late arrivals.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from pydantic import AwareDatetime, BaseModel, Field

from api.deps import ServicesDep
from api.problems import PROBLEM_RESPONSES, FieldProblem, ProblemError
from api.security import allow
from certstore.access import AccessDeniedError, Principal, Role
from certstore.services import deadlines
from certstore.services.deadlines import Arrival, Channel, ChannelSummary, OffenderSummary

router = APIRouter(prefix="/api/v1/exchange", tags=["exchange"])

Bureau = Annotated[Principal, Depends(allow(Role.BUREAU))]
Reader = Annotated[Principal, Depends(allow(Role.AGENCY, Role.BUREAU))]
From = Annotated[
    AwareDatetime | None, Query(alias="from", description="Arrived at or after (ISO 8601 with offset)")
]
To = Annotated[AwareDatetime | None, Query(alias="to", description="Arrived before (ISO 8601 with offset)")]


def _period(start: datetime | None, end: datetime | None) -> None:
    if start is not None and end is not None and end <= start:
        detail = f"the period is empty: 'to' ({end.isoformat()}) must be after 'from' ({start.isoformat()})"
        raise ProblemError(
            422, "invalid-period", "Invalid period", detail, [FieldProblem(field="query.to", message=detail)]
        )


class LateArrivalOut(BaseModel):
    identifier: str = Field(description="证照标识 of the certificate version")
    issuer_code: str
    source: str = Field(description='"api" or the exchange source it came from')
    channel: Channel
    channel_label: str
    completed_at: datetime = Field(description="业务办结时间")
    deadline_at: datetime
    arrived_at: datetime
    lateness_seconds: float = Field(description="How long after the deadline it arrived")

    @classmethod
    def of(cls, arrival: Arrival) -> LateArrivalOut:
        return cls(
            identifier=arrival.identifier,
            issuer_code=arrival.issuer_code,
            source=arrival.source,
            channel=arrival.channel,
            channel_label=arrival.channel.label,
            completed_at=arrival.completed_at,
            deadline_at=arrival.deadline_at,
            arrived_at=arrival.arrived_at,
            lateness_seconds=arrival.lateness.total_seconds(),
        )


class ChannelSummaryOut(BaseModel):
    channel: Channel
    channel_label: str
    total: int
    late: int
    late_share: float = Field(ge=0, le=1)
    worst_lateness_seconds: float | None = Field(description="null when nothing was late")

    @classmethod
    def of(cls, summary: ChannelSummary) -> ChannelSummaryOut:
        worst = summary.worst_lateness
        return cls(
            channel=summary.channel,
            channel_label=summary.channel.label,
            total=summary.total,
            late=summary.late,
            late_share=summary.late_share,
            worst_lateness_seconds=worst.total_seconds() if worst is not None else None,
        )


class OffenderOut(BaseModel):
    issuer_code: str = Field(description="颁发机构代码")
    issuer_name: str | None = Field(description="The registered organisation's name, if it has an account")
    total: int = Field(description="Arrivals in the period")
    late: int = Field(description="Late arrivals in the period")
    late_share: float = Field(ge=0, le=1)
    worst_lateness_seconds: float
    by_channel: list[ChannelSummaryOut]

    @classmethod
    def of(cls, summary: OffenderSummary) -> OffenderOut:
        return cls(
            issuer_code=summary.issuer_code,
            issuer_name=summary.issuer_name,
            total=summary.total,
            late=summary.late,
            late_share=summary.late_share,
            worst_lateness_seconds=summary.worst_lateness.total_seconds(),
            by_channel=[ChannelSummaryOut.of(c) for c in summary.by_channel],
        )


@router.get(
    "/late",
    response_model=list[LateArrivalOut],
    responses={422: PROBLEM_RESPONSES[422]},
    summary="Late arrivals (第十一条), newest first: the bureau sees every agency's, an agency its own",
)
def list_late(
    services: ServicesDep,
    principal: Reader,
    start: From = None,
    end: To = None,
    issuer_code: Annotated[str | None, Query(max_length=18, description="One agency (bureau only)")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> list[LateArrivalOut]:
    _period(start, end)
    if principal.role is Role.AGENCY:
        if issuer_code not in (None, principal.organisation_code):
            raise AccessDeniedError("an agency sees only its own late arrivals")
        issuer_code = principal.organisation_code
    found = deadlines.late_arrivals(
        services.repo, issuer_code=issuer_code, start=start, end=end, limit=limit, offset=offset
    )
    return [LateArrivalOut.of(a) for a in found]


@router.get(
    "/offenders",
    response_model=list[OffenderOut],
    responses={422: PROBLEM_RESPONSES[422]},
    summary="Agencies with late arrivals in a period (第二十九条), most late first (bureau)",
)
def list_offenders(
    services: ServicesDep, principal: Bureau, start: From = None, end: To = None
) -> list[OffenderOut]:
    _period(start, end)
    return [OffenderOut.of(s) for s in deadlines.offenders(services.repo, start=start, end=end)]
