"""Registered matters (办件) for the using units' case-handling systems (一窗受理/审批系统, role ``case_system``):
register a matter for a holder, read it, close or withdraw it. Window look-ups are allowed only under such a matter
of the clerk's own unit for that holder, or under the holder's authorisation (知悉范围, docs/holders.md).

The holder's ID travels in the POST body only (never a URL) and is stored as the keyed reference. Each handler
builds the request's :class:`~certstore.services.calls.Call` and calls one use case of
:mod:`certstore.services.matters`, which checks, applies and audits; the handler turns the answer into HTTP and
the errors into RFC 9457 problems (422 bad input, 404 unknown matter, 409 a conflicting registration or a matter
closed already)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from api.deps import ServicesDep
from api.problems import PROBLEM_RESPONSES, ProblemError
from api.security import calling
from certstore.access import Role
from certstore.services import matters
from certstore.services.calls import Call

router = APIRouter(tags=["matters"])

CaseSystem = Annotated[Call, Depends(calling(Role.CASE_SYSTEM))]
UnitStaff = Annotated[Call, Depends(calling(Role.CASE_SYSTEM, Role.WINDOW))]
MatterNumber = Annotated[str, Path(min_length=1, max_length=matters.MATTER_MAX, description="办件编号")]


class MatterIn(BaseModel):
    """A matter the case system accepted (受理): the holder it is for, its purpose and validity."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "matter": "ZZ2026120700123",
                    "holder_id_type": "111",
                    "holder_id": "11010519491231002X",
                    "purpose": "不动产登记",
                    "valid_until": "2026-12-31T16:00:00Z",
                }
            ]
        },
    )

    matter: str = Field(min_length=1, max_length=matters.MATTER_MAX, description="办件编号")
    holder_id_type: str = Field(
        min_length=1, max_length=8, description="GB/T 36903 ID type code of the holder"
    )
    holder_id: str = Field(
        min_length=1, max_length=64, description="The holder's ID number (stored keyed only)"
    )
    purpose: str = Field(min_length=1, max_length=matters.PURPOSE_MAX, description="事项名称 / 用途")
    valid_from: AwareDatetime | None = Field(default=None, description="Default: now")
    valid_until: AwareDatetime


class CloseIn(BaseModel):
    """Closing a matter: finished (办结), or ``withdrawn`` (撤回)."""

    model_config = ConfigDict(extra="forbid")

    withdrawn: bool = False
    reason: str | None = Field(default=None, max_length=matters.PURPOSE_MAX)


class MatterOut(BaseModel):
    """A registered matter; the holder as the keyed reference (never the ID number)."""

    matter: str
    organisation_code: str
    holder_ref: str
    purpose: str
    valid_from: datetime
    valid_until: datetime
    registered_by: str
    registered_at: datetime
    closed_at: datetime | None
    close_reason: str | None
    active: bool

    @classmethod
    def of(cls, found: matters.Matter) -> MatterOut:
        return cls(
            matter=found.matter,
            organisation_code=found.organisation_code,
            holder_ref=found.holder_ref,
            purpose=found.purpose,
            valid_from=found.valid_from,
            valid_until=found.valid_until,
            registered_by=found.registered_by,
            registered_at=found.registered_at,
            closed_at=found.closed_at,
            close_reason=found.close_reason,
            active=found.active,
        )


def _problem(exc: Exception) -> ProblemError:
    if isinstance(exc, matters.MatterNotFoundError):
        return ProblemError(404, "not-found", "Not found", str(exc))
    if isinstance(exc, matters.MatterConflictError):
        return ProblemError(409, "matter-conflict", "Matter registered differently", str(exc))
    if isinstance(exc, matters.MatterStateError):
        return ProblemError(409, "matter-closed", "Matter closed already", str(exc))
    return ProblemError(422, "invalid-matter", "Invalid matter", str(exc))


_ERRORS = (matters.MatterNotFoundError, matters.MatterConflictError, matters.MatterStateError, ValueError)


@router.post(
    "/api/v1/matters",
    status_code=201,
    response_model=MatterOut,
    responses={403: PROBLEM_RESPONSES[403], 409: PROBLEM_RESPONSES[409], 422: PROBLEM_RESPONSES[422]},
    summary="Register a matter (办件) of the caller's unit for a holder; case-handling system token",
)
def register_matter(request: Request, services: ServicesDep, call: CaseSystem, body: MatterIn) -> MatterOut:
    """The same registration again answers the stored matter (a retry); another holder, purpose or validity
    under a registered number is 409."""
    request.state.matter = body.matter.strip()[: matters.MATTER_MAX]
    try:
        found = matters.register(
            services,
            call,
            matter=body.matter,
            holder_id_type=body.holder_id_type,
            holder_id=body.holder_id,
            purpose=body.purpose,
            valid_from=body.valid_from,
            valid_until=body.valid_until,
        )
    except _ERRORS as exc:
        raise _problem(exc) from None
    request.state.holder_digest = found.holder_ref
    return MatterOut.of(found)


@router.get(
    "/api/v1/matters/{matter}",
    response_model=MatterOut,
    responses={403: PROBLEM_RESPONSES[403], 404: PROBLEM_RESPONSES[404]},
    summary="A registered matter of the caller's unit (case-handling system or window staff)",
)
def get_matter(request: Request, services: ServicesDep, call: UnitStaff, matter: MatterNumber) -> MatterOut:
    request.state.matter = matter
    try:
        found = matters.get(services, call, matter)
    except _ERRORS as exc:
        raise _problem(exc) from None
    request.state.holder_digest = found.holder_ref
    return MatterOut.of(found)


@router.post(
    "/api/v1/matters/{matter}/close",
    response_model=MatterOut,
    responses={403: PROBLEM_RESPONSES[403], 404: PROBLEM_RESPONSES[404], 409: PROBLEM_RESPONSES[409]},
    summary="Close (办结) or withdraw (撤回) a matter; look-ups under it are refused from then on",
)
def close_matter(
    request: Request, services: ServicesDep, call: CaseSystem, matter: MatterNumber, body: CloseIn
) -> MatterOut:
    request.state.matter = matter
    try:
        found = matters.close(services, call, matter, withdrawn=body.withdrawn, reason=body.reason)
    except _ERRORS as exc:
        raise _problem(exc) from None
    return MatterOut.of(found)
