"""Batch pushes (批量推送): many certificates in one request, issued in the background; poll for progress.

The submission is the use case :func:`certstore.services.batches.submit_batch` with the request's call; each item
is later issued by the batch worker in the submitting agency's name (its own call, arrival and audit entry)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Path, Response
from pydantic import BaseModel

from api.deps import ServicesDep
from api.models import RecordOut
from api.problems import PROBLEM_RESPONSES
from api.security import allow, calling
from certstore.access import Principal, Role
from certstore.services import batches
from certstore.services.batches import MAX_BATCH_ITEMS, BatchJob
from certstore.services.calls import Call

router = APIRouter(prefix="/api/v1/batches", tags=["generation"])

Agency = Annotated[Principal, Depends(allow(Role.AGENCY))]


class BatchItemOut(RecordOut):
    position: int
    status: str
    identifier: str | None
    error: dict[str, Any] | None


class BatchOut(BaseModel):
    id: str
    status: str
    total: int
    succeeded: int
    failed: int
    pending: int
    created_at: datetime
    updated_at: datetime
    items: list[BatchItemOut] | None = None

    @classmethod
    def of(cls, job: BatchJob, with_items: bool = False) -> BatchOut:
        return cls(
            id=job.id,
            status=job.status,
            total=job.total,
            succeeded=job.succeeded,
            failed=job.failed,
            pending=job.pending,
            created_at=job.created_at,
            updated_at=job.updated_at,
            items=[BatchItemOut.of(i) for i in job.items] if with_items else None,
        )


@router.post(
    "",
    status_code=202,
    response_model=BatchOut,
    responses={422: PROBLEM_RESPONSES[422]},
    summary=f"Submit up to {MAX_BATCH_ITEMS} certificates (each as in POST /certificates); returns a job to poll",
)
def submit_batch(
    services: ServicesDep,
    call: Annotated[Call, Depends(calling(Role.AGENCY))],
    response: Response,
    documents: Annotated[
        list[dict[str, Any]], Body(description="Certificate data documents", max_length=MAX_BATCH_ITEMS)
    ],
) -> BatchOut:
    job = batches.submit_batch(services, call, documents)
    if services.batch_runner is not None:
        services.batch_runner.submit(job.id)
    response.headers["Location"] = f"/api/v1/batches/{job.id}"
    return BatchOut.of(job)


@router.get(
    "/{job_id}",
    response_model=BatchOut,
    responses={404: PROBLEM_RESPONSES[404]},
    summary="Progress of a batch and, with items=true, each item's identifier or error",
)
def get_batch(
    services: ServicesDep, principal: Agency, job_id: Annotated[str, Path(max_length=36)], items: bool = False
) -> BatchOut:
    job = batches.get_batch(
        services.repo, job_id, organisation_code=principal.organisation_code, with_items=items
    )
    return BatchOut.of(job, with_items=items)
