"""Annual inspection (年检, 第二十二条) of certificates whose catalogue type requires it."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from api.deps import ServicesDep
from api.models import RecordOut
from api.problems import PROBLEM_RESPONSES
from api.scope import ServingQuery, authorize_certificate
from api.security import ActionAuditDep, allow, calling
from certstore.access import Principal, Role
from certstore.services import certificates, inspections
from certstore.services.calls import Call

router = APIRouter(prefix="/api/v1", tags=["inspection"])

Agency = Annotated[Principal, Depends(allow(Role.AGENCY))]
AgencyCall = Annotated[Call, Depends(calling(Role.AGENCY))]
Reader = Annotated[Principal, Depends(allow(Role.AGENCY, Role.WINDOW))]


class InspectionIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"year": 2026, "result": "passed", "inspected_on": "2026-11-20", "remarks": ""}]
        },
    )

    year: int = Field(ge=2000, le=2100)
    result: Literal["passed", "failed"]
    inspected_on: date
    remarks: str = Field(default="", max_length=2000)


class InspectionOut(RecordOut):
    certificate_identifier: str
    year: int
    result: str
    inspected_on: date
    remarks: str
    inspector: str
    recorded_at: datetime
    consequence: Literal["suspend", "resume"] | None = Field(
        default=None,
        description="What this result did to the certificate, as its type declares (inspection.on_failure): "
        "suspend (年检不合格 → 挂起) or resume (a later passed inspection → 恢复); null: nothing",
    )


@router.post(
    "/certificates/{identifier}/inspections",
    status_code=201,
    response_model=InspectionOut,
    responses={s: PROBLEM_RESPONSES[s] for s in (404, 409, 422)},
    summary="Record an annual-inspection result (issuing agency)",
)
def record_inspection(
    services: ServicesDep, call: AgencyCall, identifier: str, body: InspectionIn, audit: ActionAuditDep
) -> InspectionOut:
    item = inspections.record_inspection(
        services,
        call,
        identifier,
        year=body.year,
        result=body.result,
        inspected_on=body.inspected_on,
        remarks=body.remarks,
        within=audit.within(),
    )
    return InspectionOut.of(item)


@router.get(
    "/certificates/{identifier}/inspections",
    response_model=list[InspectionOut],
    responses={404: PROBLEM_RESPONSES[404]},
    summary="Annual-inspection results of a certificate (all years)",
)
def list_certificate_inspections(
    services: ServicesDep, principal: Reader, identifier: str, serving: ServingQuery, request: Request
) -> list[InspectionOut]:
    certificate = certificates.get(services.repo, identifier)
    authorize_certificate(request, principal, certificate, serving)
    return [InspectionOut.of(i) for i in inspections.list_inspections(services.repo, identifier)]


class DueInspectionOut(RecordOut):
    identifier: str
    certificate_number: str
    name: str
    catalogue_code: str
    holder_name: str
    valid_until: date | None


@router.get(
    "/inspections/due",
    response_model=list[DueInspectionOut],
    summary="Current certificates of the agency's annual-inspection types without a result for the year",
)
def list_due_inspections(
    services: ServicesDep, principal: Agency, year: Annotated[int, Query(ge=2000, le=2100)]
) -> list[DueInspectionOut]:
    due = inspections.due_inspections(services.repo, year=year, issuer_code=principal.organisation_code)
    return [DueInspectionOut.of(c) for c in due]
