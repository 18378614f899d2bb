"""Administration by the big-data bureau: bulk-access grants, the working-day calendar, and disabling / enabling
principals (offboarding)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from api.deps import ServicesDep
from api.models import MAX_ID, RecordOut
from api.problems import PROBLEM_RESPONSES, ProblemError
from api.security import ActionAuditDep, allow, call_of
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


class PrincipalChangeIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "organisation_code": "12410100MB0000001X",
                    "name": "张三",
                    "reason": "离职 (人事通知 2026-118)",
                }
            ]
        },
    )

    organisation_code: str = Field(
        min_length=6, max_length=32, description="The principal's organisation code"
    )
    name: str = Field(min_length=1, max_length=200, description="The principal's name (its login name)")
    reason: str | None = Field(default=None, max_length=500, description="Why; recorded in the audit log")


class PrincipalStateOut(BaseModel):
    principal: str = Field(description="ORGCODE/name")
    role: str
    disabled_at: datetime | None = Field(description="Since when the principal is disabled (null: enabled)")
    changed: bool = Field(description="Whether this call changed the state (false: it was so already)")
    sessions_ended: int = Field(description="Live page sessions this call ended")


def _set_disabled(
    services: ServicesDep, request: Request, principal: Principal, body: PrincipalChangeIn, *, disabled: bool
) -> PrincipalStateOut:
    try:
        state = access.set_disabled(
            services,
            call_of(request, principal),
            organisation_code=body.organisation_code,
            name=body.name,
            disabled=disabled,
            reason=body.reason,
        )
    except access.PrincipalNotFoundError as exc:
        raise ProblemError(404, "not-found", "Not found", str(exc)) from None
    return PrincipalStateOut(
        principal=state.principal.ref,
        role=state.principal.role.value,
        disabled_at=state.disabled_at,
        changed=state.changed,
        sessions_ended=state.sessions_ended,
    )


@router.post(
    "/principals/disable",
    response_model=PrincipalStateOut,
    responses={404: PROBLEM_RESPONSES[404], 422: PROBLEM_RESPONSES[422]},
    summary="Disable (offboard) a principal: its tokens and page sessions stop working at once (bureau)",
)
def disable_principal(
    services: ServicesDep, request: Request, principal: Bureau, body: PrincipalChangeIn
) -> PrincipalStateOut:
    return _set_disabled(services, request, principal, body, disabled=True)


@router.post(
    "/principals/enable",
    response_model=PrincipalStateOut,
    responses={404: PROBLEM_RESPONSES[404], 422: PROBLEM_RESPONSES[422]},
    summary="Enable a disabled principal again: its unrevoked tokens and its password work again (bureau)",
)
def enable_principal(
    services: ServicesDep, request: Request, principal: Bureau, body: PrincipalChangeIn
) -> PrincipalStateOut:
    return _set_disabled(services, request, principal, body, disabled=False)
