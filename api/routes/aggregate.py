"""Upward aggregation, the province's end (省级汇聚, 第六条): a city delivers catalogue entries and certificate
events in batches; each item is applied once (``certstore.services.aggregation``).

Mounted in every mode, so the authorization matrix and the OpenAPI document cover it; a repository not in
``province`` mode (``CERTSTORE_MODE``) answers 404. The sender is the caller's organisation (role ``upstream``:
a city's system account at the province), never a field of the request; the route only builds the call (the
principal, through the province's intake, from the sending city) — each applied item's audit entry is the
service's.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, Request
from pydantic import BaseModel, ConfigDict, Field

from api.deps import ServicesDep
from api.models import MAX_ID
from api.problems import PROBLEM_RESPONSES, ProblemError
from api.security import allow, call_of
from certstore.access import Principal, Role
from certstore.services.aggregation import MAX_BATCH_ITEMS, Outcome, apply_batch
from certstore.services.calls import Via

router = APIRouter(prefix="/api/v1/aggregate", tags=["upstream"])

Upstream = Annotated[Principal, Depends(allow(Role.UPSTREAM))]
SourceId = Annotated[int, Field(ge=1, le=MAX_ID, description="The item's id in the sending repository")]


class DeliveredFileIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    media_type: str = Field(max_length=64, examples=["application/ofd"])
    sm3: str = Field(
        pattern="^[0-9a-f]{64}$", description="SM3 of the file (hex): its key in the city (blob or asset)"
    )
    data: str = Field(description="The file, base64: a sealed certificate file, or an entry's base image")


class DeliveredHolderIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(max_length=200)
    id_type: str = Field(max_length=8)
    id_number: str = Field(max_length=64)


class DeliveredVersionIn(BaseModel):
    """The record of a certificate version as the city stored it (证照标识, metadata, 照面, holder)."""

    model_config = ConfigDict(extra="forbid")

    identifier: str = Field(max_length=128)
    type_code: str = Field(max_length=32)
    issuer_code: str = Field(max_length=18)
    issuer_name: str = Field(max_length=200)
    serial: str = Field(max_length=64)
    version: int = Field(ge=1, le=2**31 - 1)
    certificate_number: str = Field(max_length=128)
    name: str = Field(max_length=200)
    catalogue_code: str = Field(max_length=32)
    catalogue_version: int = Field(ge=1, le=2**31 - 1)
    holder: DeliveredHolderIn
    issue_date: date
    valid_from: date
    valid_until: date | None = None
    face: dict[str, Any]
    metadata: dict[str, Any]
    content_digest: str = Field(max_length=64)
    created_at: datetime
    file: DeliveredFileIn | None = None


class EventItem(BaseModel):
    """A certificate lifecycle event; ``version`` (with the file) when the event creates the version."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["event"]
    source_id: SourceId
    identifier: str = Field(max_length=128)
    action: str = Field(max_length=16, examples=["issue"])
    from_status: str | None = Field(default=None, max_length=16)
    to_status: str = Field(max_length=16, examples=["valid"])
    reason: str = Field(max_length=10_000)
    actor: str = Field(max_length=200)
    at: datetime
    details: dict[str, Any] = Field(default_factory=dict)
    version: DeliveredVersionIn | None = None


class CatalogueItem(BaseModel):
    """A catalogue entry version approved in the city (the catalogue-entry document of ``schemas/``)."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["catalogue"]
    source_id: SourceId
    document: dict[str, Any]
    submitted_by: str | None = Field(default=None, max_length=200)
    reviewed_by: str | None = Field(default=None, max_length=200)
    reviewed_at: datetime | None = None
    base_image: DeliveredFileIn | None = Field(
        default=None,
        description="The uploaded base image the document names (base_image asset:<SM3>): stored with the entry",
    )


class AggregateBatchIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    items: list[Annotated[EventItem | CatalogueItem, Field(discriminator="kind")]] = Field(
        max_length=MAX_BATCH_ITEMS, description="Applied in this order"
    )


class ItemResultOut(BaseModel):
    kind: str
    source_id: int
    outcome: Literal["applied", "already_applied", "refused", "failed", "not_processed"] = Field(
        description="applied now · applied by an earlier delivery · refused for good (reason) · the province "
        "failed: deliver again · not processed after a failed item: deliver again"
    )
    identifier: str | None = None
    reason: str | None = None


class AggregateBatchOut(BaseModel):
    results: list[ItemResultOut] = Field(description="One per item, in the order delivered")
    applied: int
    already_applied: int
    refused: int
    failed: int


@router.post(
    "/batches",
    response_model=AggregateBatchOut,
    responses={404: PROBLEM_RESPONSES[404], 422: PROBLEM_RESPONSES[422]},
    summary="Province: apply a city's batch of catalogue entries and certificate events, each exactly once",
)
def post_aggregate_batch(
    request: Request,
    services: ServicesDep,
    principal: Upstream,
    batch: Annotated[AggregateBatchIn, Body()],
) -> AggregateBatchOut:
    if not services.settings.province:
        raise ProblemError(
            404, "not-province", "Not a provincial repository",
            "this repository does not accept aggregated batches (it is not in province mode: CERTSTORE_MODE)",
        )  # fmt: skip
    items = [item.model_dump(mode="json") for item in batch.items]
    call = call_of(request, principal, via=Via.PROVINCE)
    call.origin = replace(
        call.origin, via=Via.PROVINCE, source=principal.organisation_code
    )  # the sending city
    results = apply_batch(
        services.repo,
        call,
        items,
        trust=services.trust,
        max_file_bytes=services.settings.max_upload_bytes,
    )
    counts = {outcome: sum(1 for r in results if r.outcome is outcome) for outcome in Outcome}
    return AggregateBatchOut(
        results=[ItemResultOut(**r.to_json()) for r in results],
        applied=counts[Outcome.APPLIED],
        already_applied=counts[Outcome.ALREADY_APPLIED],
        refused=counts[Outcome.REFUSED],
        failed=counts[Outcome.FAILED] + counts[Outcome.NOT_PROCESSED],
    )
