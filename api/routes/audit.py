"""The access log for auditors (审计): queries, exports that verify offline, a summary, checkpoints and proofs.

Auditors only; no certificate content (holders only as keyed references — an auditor searching by ID number sends
it in the headers ``X-Holder-Id-Type`` / ``X-Holder-Id``, never in the URL, and the server hashes it the way the
log does). Every read first waits until the events acknowledged so far are
in the database, so an auditor sees everything that happened before the query. The use cases are
:mod:`certstore.services.auditing` (shared with the auditor page and ``certstore audit export``); these routes
read the query, call them and translate their errors into problems.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Annotated, Any, Literal, TypeVar

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from api.deps import ServicesDep
from api.downloads import attachment_headers
from api.problems import PROBLEM_RESPONSES, ProblemError
from api.scope import GONE_RESPONSE, HOLDER_ID_HEADER, HOLDER_ID_TYPE_HEADER, refuse_holder_query
from api.security import allow
from certstore.access import Principal, Role
from certstore.services import auditing
from certstore.services.auditing import (
    AuditFilters,
    InvalidCursorError,
    InvalidHolderError,
    NoCheckpointKeyError,
    ProofUnavailableError,
)

router = APIRouter(prefix="/api/v1/audit", tags=["audit"])

Auditor = Annotated[Principal, Depends(allow(Role.AUDITOR))]
MAX_POSITION = 2**62
T = TypeVar("T")


class AuditEventsPage(BaseModel):
    items: list[dict[str, Any]] = Field(description="Log entries, oldest first (by occurred_at, then seq)")
    next_cursor: str | None = Field(default=None, description="Pass as `cursor` for the next page")


class CheckpointList(BaseModel):
    items: list[dict[str, Any]]
    next_after: int | None = Field(default=None, description="Pass as `after` for the next page")


def audit_filters(
    request: Request,
    start: Annotated[datetime | None, Query(alias="from", description="occurred_at ≥ (ISO 8601)")] = None,
    end: Annotated[datetime | None, Query(alias="to", description="occurred_at < (ISO 8601)")] = None,
    actor: Annotated[str | None, Query(max_length=200, description="Principal, ORGCODE/name")] = None,
    organisation: Annotated[str | None, Query(max_length=32, description="Organisation code")] = None,
    role: Annotated[str | None, Query(max_length=16)] = None,
    action: Annotated[
        str | None, Query(max_length=100, description="Route name, e.g. issue_certificate")
    ] = None,
    outcome: Literal["allow", "deny", "error"] | None = None,
    certificate: Annotated[str | None, Query(max_length=128, description="Certificate identifier")] = None,
    holder: Annotated[str | None, Query(max_length=64, description="Holder reference as logged")] = None,
    holder_id_type: Annotated[
        str | None,
        Header(
            alias=HOLDER_ID_TYPE_HEADER,
            max_length=8,
            description="With X-Holder-Id: search by the holder's ID number (a header: never in the URL)",
        ),
    ] = None,
    holder_id: Annotated[
        str | None,
        Header(
            alias=HOLDER_ID_HEADER, max_length=64, description="Holder ID number; hashed as the log hashes it"
        ),
    ] = None,
    matter: Annotated[str | None, Query(max_length=100, description="事项/办件编号")] = None,
    grant: Annotated[int | None, Query(ge=0, le=MAX_POSITION, description="Bulk-access grant id")] = None,
) -> AuditFilters:
    """The filters every auditor query shares (AND); a bound without an offset is UTC. A holder searched by ID
    number comes in the headers; ``holder_id``/``holder_id_type`` in the query is answered 410 Gone."""
    refuse_holder_query(request)
    return AuditFilters(
        start=start,
        end=end,
        principal=actor,
        organisation_code=organisation,
        role=role,
        action=action,
        outcome=outcome,
        certificate_identifier=certificate,
        holder_digest=holder,
        holder_id_type=holder_id_type,
        holder_id=holder_id,
        matter=matter,
        grant_id=grant,
    )


Filters = Annotated[AuditFilters, Depends(audit_filters)]


@contextmanager
def problems() -> Iterator[None]:
    """The auditing service's errors as the API's problems."""
    try:
        yield
    except InvalidHolderError as exc:
        raise ProblemError(422, "invalid-holder", "Invalid holder", str(exc)) from None
    except InvalidCursorError as exc:
        raise ProblemError(422, "invalid-cursor", "Invalid cursor", str(exc)) from None
    except NoCheckpointKeyError as exc:
        raise ProblemError(409, "no-checkpoint-key", "Cannot sign a checkpoint", str(exc)) from None
    except ProofUnavailableError as exc:
        raise ProblemError(404, "proof-unavailable", "No such proof", str(exc)) from None


def _answer(function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    with problems():
        return function(*args, **kwargs)


@router.get(
    "/events",
    response_model=AuditEventsPage,
    responses=GONE_RESPONSE,
    summary="Log entries matching the filters (cursor-paged)",
)
def list_events(
    services: ServicesDep,
    principal: Auditor,
    filters: Filters,
    cursor: Annotated[str | None, Query(max_length=200, description="From the previous page")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> AuditEventsPage:
    page = _answer(auditing.search, services, filters, cursor=cursor, limit=limit)
    return AuditEventsPage(items=[e.to_dict() for e in page.entries], next_cursor=page.next_cursor)


@router.get(
    "/export",
    summary="Stream matching entries as JSONL or CSV with the covering checkpoint and proof (verifies offline)",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "The export: entries, then the signed checkpoint and the range proof "
            "(`certstore audit verify-export FILE`)",
            "content": {"application/x-ndjson": {}, "text/csv": {}},
        },
        409: PROBLEM_RESPONSES[409],
        **GONE_RESPONSE,
    },
)
async def export_events(
    services: ServicesDep,
    principal: Auditor,
    filters: Filters,
    format: Literal["jsonl", "csv"] = "jsonl",
) -> StreamingResponse:
    made = await run_in_threadpool(_answer, auditing.export, services, filters, format)
    return StreamingResponse(
        (line.encode("utf-8") for line in made.lines),
        media_type=made.media_type,
        headers=attachment_headers(made.file_name),
    )


@router.get("/summary", summary="Calls per organisation, denials, bulk access by grant — for spotting misuse")
def audit_summary(
    services: ServicesDep,
    principal: Auditor,
    start: Annotated[datetime | None, Query(alias="from", description="occurred_at ≥ (ISO 8601)")] = None,
    end: Annotated[datetime | None, Query(alias="to", description="occurred_at < (ISO 8601)")] = None,
    top: Annotated[int, Query(ge=1, le=200)] = 20,
) -> dict[str, Any]:
    return auditing.summarise(services, start, end, top=top)


@router.get(
    "/checkpoints", response_model=CheckpointList, summary="Signed checkpoints (tree size, root, time)"
)
def list_checkpoints(
    services: ServicesDep,
    principal: Auditor,
    after: Annotated[int, Query(ge=0, le=MAX_POSITION, description="Checkpoint id")] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> CheckpointList:
    page = auditing.checkpoints(services, after=after, limit=limit)
    return CheckpointList(items=page.items, next_after=page.next_after)


@router.post(
    "/checkpoints",
    status_code=201,
    summary="Sign a checkpoint of the log now (on demand)",
    responses={409: PROBLEM_RESPONSES[409]},
)
def create_checkpoint(services: ServicesDep, principal: Auditor) -> dict[str, Any]:
    return _answer(auditing.sign_checkpoint, services).to_dict()


@router.get(
    "/proofs/inclusion",
    summary="Inclusion proof of one entry in a checkpointed tree (RFC 6962, SM3)",
    responses={s: PROBLEM_RESPONSES[s] for s in (404, 409)},
)
def inclusion(
    services: ServicesDep,
    principal: Auditor,
    seq: Annotated[int, Query(ge=0, le=MAX_POSITION, description="The entry's position")],
    tree_size: Annotated[
        int | None, Query(ge=1, le=MAX_POSITION, description="Default: a checkpoint covering the entry")
    ] = None,
) -> dict[str, Any]:
    return _answer(auditing.inclusion_proof, services, seq, tree_size)


@router.get(
    "/proofs/consistency",
    summary="Consistency proof between two tree sizes (RFC 6962, SM3)",
    responses={s: PROBLEM_RESPONSES[s] for s in (404, 409)},
)
def consistency(
    services: ServicesDep,
    principal: Auditor,
    first: Annotated[int, Query(ge=1, le=MAX_POSITION, description="The older tree size")],
    second: Annotated[
        int | None, Query(ge=1, le=MAX_POSITION, description="Default: the newest checkpoint")
    ] = None,
) -> dict[str, Any]:
    return _answer(auditing.consistency_proof, services, first, second)
