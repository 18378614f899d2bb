"""Administration by the big-data bureau: bulk-access grants and the working-day calendar."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Response
from pydantic import BaseModel, ConfigDict, Field

from api.deps import ServicesDep
from api.models import MAX_ID, RecordOut
from api.problems import PROBLEM_RESPONSES
from api.security import ActionAuditDep, allow
from certstore.access import Principal, Role
from certstore.services import access, calendar

router = APIRouter(prefix="/api/v1", tags=["administration"])

Bureau = Annotated[Principal, Depends(allow(Role.BUREAU))]
GrantReader = Annotated[Principal, Depends(allow(Role.BUREAU, Role.AGENCY, Role.WINDOW, Role.UPSTREAM))]
Anyone = Annotated[Principal, Depends(allow(*Role))]


class GrantIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "organisation_code": "12410100MB1234567X",
                    "purpose": "2026年度建筑工程施工许可数据分析",
                    "valid_until": "2027-01-31T00:00:00+08:00",
                    "scope": {"catalogue_codes": ["11410100990000025A001"]},
                }
            ]
        },
    )

    organisation_code: str = Field(min_length=6, max_length=32)
    purpose: str = Field(min_length=1, max_length=500)
    valid_until: datetime
    scope: dict[str, list[str]] = Field(
        default_factory=dict, description="catalogue_codes and/or issuer_codes"
    )


class GrantOut(RecordOut):
    id: int
    organisation_code: str
    purpose: str
    scope: dict[str, Any]
    issued_by: str
    valid_from: datetime | None
    valid_until: datetime | None
    revoked_at: datetime | None


@router.post(
    "/grants",
    status_code=201,
    response_model=GrantOut,
    responses={422: PROBLEM_RESPONSES[422]},
    summary="Grant an organisation time-limited bulk access (批量查询授权)",
)
def create_grant(services: ServicesDep, principal: Bureau, body: GrantIn, audit: ActionAuditDep) -> GrantOut:
    grant = access.issue_grant(
        services.repo,
        organisation_code=body.organisation_code,
        purpose=body.purpose,
        valid_until=body.valid_until,
        issued_by=principal,
        scope=body.scope,
        within=audit.within(),
    )
    return GrantOut.of(grant)


@router.get(
    "/grants", response_model=list[GrantOut], summary="Grants (the bureau sees all, others their own)"
)
def list_grants(services: ServicesDep, principal: GrantReader) -> list[GrantOut]:
    organisation = None if principal.role is Role.BUREAU else principal.organisation_code
    return [GrantOut.of(g) for g in access.list_grants(services.repo, organisation_code=organisation)]


@router.post(
    "/grants/{grant_id}/revoke",
    response_model=GrantOut,
    responses={404: PROBLEM_RESPONSES[404]},
    summary="Revoke a grant, effective for the next query",
)
def revoke_grant(
    services: ServicesDep,
    principal: Bureau,
    grant_id: Annotated[int, Path(ge=1, le=MAX_ID)],
    audit: ActionAuditDep,
) -> GrantOut:
    return GrantOut.of(
        access.revoke_grant(services.repo, grant_id, revoked_by=principal, within=audit.within())
    )


class CalendarDayIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"kind": "holiday", "name": "国庆节"}]}
    )

    kind: Literal["holiday", "workday"] = Field(
        description="holiday: 节假日 on a weekday; workday: 调休上班 on a weekend"
    )
    name: str = Field(min_length=1, max_length=100)


class CalendarDayOut(RecordOut):
    day: date
    kind: Literal["holiday", "workday"]
    name: str


@router.get(
    "/calendar",
    response_model=list[CalendarDayOut],
    summary="The working-day calendar's exceptions (holidays on weekdays, make-up workdays on weekends)",
)
def list_calendar(
    services: ServicesDep, principal: Anyone, year: Annotated[int | None, Query(ge=1900, le=2100)] = None
) -> list[CalendarDayOut]:
    return [CalendarDayOut.of(item) for item in calendar.list_days(services.repo, year)]


@router.put(
    "/calendar/{day}",
    response_model=CalendarDayOut,
    responses={422: PROBLEM_RESPONSES[422]},
    summary="Set a holiday or a make-up workday (bureau)",
)
def set_calendar_day(
    services: ServicesDep, principal: Bureau, day: date, body: CalendarDayIn, audit: ActionAuditDep
) -> CalendarDayOut:
    calendar.set_day(services.repo, day, body.kind, body.name, within=audit.within())
    return CalendarDayOut(day=day, kind=body.kind, name=body.name)


@router.delete(
    "/calendar/{day}",
    status_code=204,
    response_class=Response,
    summary="Remove a calendar exception (bureau)",
)
def remove_calendar_day(
    services: ServicesDep, principal: Bureau, day: date, audit: ActionAuditDep
) -> Response:
    calendar.remove_day(services.repo, day, within=audit.within())
    return Response(status_code=204)
