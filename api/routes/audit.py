"""The access log for auditors (审计): queries, exports that verify offline, a summary, checkpoints and proofs.

Auditors only; no certificate content (holders only as keyed references — an auditor searching by ID number sends
it and the server hashes it the way the log does). Every read first waits until the events acknowledged so far are
in the database, so an auditor sees everything that happened before the query.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from api.deps import ServicesDep
from api.problems import PROBLEM_RESPONSES, ProblemError
from api.security import allow
from certstore.access import Principal, Role
from certstore.audit import AuditQuery, Checkpoint
from certstore.audit.chain import latest_checkpoint
from certstore.audit.checkpoints import checkpoint_from_row
from certstore.audit.query import export_lines, holder_reference, query_entries, summary
from certstore.audit.tree import ProofUnavailableError, prove_consistency, prove_inclusion
from certstore.store.models import AuditChainRow, AuditCheckpointRow

router = APIRouter(prefix="/api/v1/audit", tags=["audit"])

Auditor = Annotated[Principal, Depends(allow(Role.AUDITOR))]
MAX_POSITION = 2**62

_EXPORT_MEDIA = {"jsonl": "application/x-ndjson", "csv": "text/csv; charset=utf-8"}


class AuditEventsPage(BaseModel):
    items: list[dict[str, Any]] = Field(description="Log entries, oldest first (by occurred_at, then seq)")
    next_cursor: str | None = Field(default=None, description="Pass as `cursor` for the next page")


class CheckpointList(BaseModel):
    items: list[dict[str, Any]]
    next_after: int | None = Field(default=None, description="Pass as `after` for the next page")


class AuditFilters:
    """The filters every auditor query shares (AND)."""

    def __init__(
        self,
        start: Annotated[datetime | None, Query(alias="from", description="occurred_at ≥ (ISO 8601)")] = None,
        end: Annotated[datetime | None, Query(alias="to", description="occurred_at < (ISO 8601)")] = None,
        actor: Annotated[str | None, Query(max_length=200, description="Principal, ORGCODE/name")] = None,
        organisation: Annotated[str | None, Query(max_length=32, description="Organisation code")] = None,
        role: Annotated[str | None, Query(max_length=16)] = None,
        action: Annotated[
            str | None, Query(max_length=100, description="Route name, e.g. issue_certificate")
        ] = None,
        outcome: Literal["allow", "deny", "error"] | None = None,
        certificate: Annotated[
            str | None, Query(max_length=128, description="Certificate identifier")
        ] = None,
        holder: Annotated[str | None, Query(max_length=64, description="Holder reference as logged")] = None,
        holder_id_type: Annotated[
            str | None, Query(max_length=8, description="With holder_id: search by the holder's ID number")
        ] = None,
        holder_id: Annotated[
            str | None, Query(max_length=64, description="Holder ID number; hashed as the log hashes it")
        ] = None,
        matter: Annotated[str | None, Query(max_length=100, description="事项/办件编号")] = None,
        grant: Annotated[int | None, Query(ge=0, le=MAX_POSITION, description="Bulk-access grant id")] = None,
    ) -> None:
        self.values = dict(
            start=start,
            end=end,
            principal=actor,
            organisation_code=organisation,
            role=role,
            action=action,
            outcome=outcome,
            certificate_identifier=certificate,
            holder_digest=holder,
            matter=matter,
            grant_id=grant,
        )
        self.holder_id_type = holder_id_type
        self.holder_id = holder_id

    def query(self, services: Any) -> AuditQuery:
        values = dict(self.values)
        if self.holder_id_type or self.holder_id:
            if not (self.holder_id_type and self.holder_id):
                raise ProblemError(
                    422, "invalid-holder", "Invalid holder", "holder_id_type and holder_id go together"
                )
            try:
                values["holder_digest"] = holder_reference(
                    services.repo.holder_key, self.holder_id_type, self.holder_id
                )
            except ValueError as exc:
                raise ProblemError(
                    422, "invalid-holder", "Invalid holder", f"not a valid holder ID: {exc}"
                ) from None
        values["start"], values["end"] = _utc(values["start"]), _utc(values["end"])
        return AuditQuery(**values)


Filters = Annotated[AuditFilters, Depends()]


def _utc(value: datetime | None) -> datetime | None:
    """A query bound without an offset is read as UTC."""
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


def _flush(services: Any) -> None:
    trail = getattr(services, "audit", None)
    if trail is not None:
        trail.flush()


def _fresh_checkpoint(services: Any, *, covering: int | None = None) -> Checkpoint:
    """The newest checkpoint if it covers the whole log (or entry ``covering``), else one signed now."""
    with services.repo.db.session(readonly=True) as session:
        newest = latest_checkpoint(session)
        head = session.get(AuditChainRow, 1)
        size = head.size if head is not None else 0
    wanted = size if covering is None else covering + 1
    if newest is not None and newest.tree_size >= wanted:
        return newest
    return _sign_checkpoint(services)


def _sign_checkpoint(services: Any) -> Checkpoint:
    """A checkpoint signed now; 409 without a repository key to sign it."""
    try:
        return services.audit.checkpoint()
    except LookupError as exc:
        raise ProblemError(409, "no-checkpoint-key", "Cannot sign a checkpoint", str(exc)) from None


def _proof(services: Any, prove: Callable[[Session], Any]) -> dict[str, Any]:
    """``prove`` run on a read-only session of the log, as a dictionary; 404 when the log cannot give it."""
    try:
        with services.repo.db.session(readonly=True) as session:
            return prove(session).to_dict()
    except ProofUnavailableError as exc:
        raise ProblemError(404, "proof-unavailable", "No such proof", str(exc)) from None


@router.get(
    "/events", response_model=AuditEventsPage, summary="Log entries matching the filters (cursor-paged)"
)
def list_events(
    services: ServicesDep,
    principal: Auditor,
    filters: Filters,
    cursor: Annotated[str | None, Query(max_length=200, description="From the previous page")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> AuditEventsPage:
    query = filters.query(services)
    _flush(services)
    try:
        page = query_entries(services.repo.db, query, cursor=cursor, limit=limit)
    except ValueError as exc:
        raise ProblemError(422, "invalid-cursor", "Invalid cursor", str(exc)) from None
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
    },
)
async def export_events(
    services: ServicesDep,
    principal: Auditor,
    filters: Filters,
    format: Literal["jsonl", "csv"] = "jsonl",
) -> StreamingResponse:
    query = filters.query(services)
    await run_in_threadpool(_flush, services)
    checkpoint = await run_in_threadpool(_fresh_checkpoint, services)
    lines: Iterator[str] = export_lines(
        services.repo.db, query, checkpoint, fmt=format, generated_at=datetime.now(UTC)
    )
    name = f"audit-{checkpoint.tree_size}.{format}"
    return StreamingResponse(
        (line.encode("utf-8") for line in lines),
        media_type=_EXPORT_MEDIA[format],
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


@router.get("/summary", summary="Calls per organisation, denials, bulk access by grant — for spotting misuse")
def audit_summary(
    services: ServicesDep,
    principal: Auditor,
    start: Annotated[datetime | None, Query(alias="from", description="occurred_at ≥ (ISO 8601)")] = None,
    end: Annotated[datetime | None, Query(alias="to", description="occurred_at < (ISO 8601)")] = None,
    top: Annotated[int, Query(ge=1, le=200)] = 20,
) -> dict[str, Any]:
    _flush(services)
    return summary(services.repo.db, _utc(start), _utc(end), top=top)


@router.get(
    "/checkpoints", response_model=CheckpointList, summary="Signed checkpoints (tree size, root, time)"
)
def list_checkpoints(
    services: ServicesDep,
    principal: Auditor,
    after: Annotated[int, Query(ge=0, le=MAX_POSITION, description="Checkpoint id")] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> CheckpointList:
    with services.repo.db.session(readonly=True) as session:
        rows = session.scalars(
            select(AuditCheckpointRow)
            .where(AuditCheckpointRow.id > after)
            .order_by(AuditCheckpointRow.id)
            .limit(limit + 1)
        ).all()
        items = [checkpoint_from_row(r).to_dict() for r in rows[:limit]]
    return CheckpointList(items=items, next_after=items[-1]["id"] if len(rows) > limit else None)


@router.post(
    "/checkpoints",
    status_code=201,
    summary="Sign a checkpoint of the log now (on demand)",
    responses={409: PROBLEM_RESPONSES[409]},
)
def create_checkpoint(services: ServicesDep, principal: Auditor) -> dict[str, Any]:
    return _sign_checkpoint(services).to_dict()


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
    _flush(services)
    if tree_size is None:
        _fresh_checkpoint(services, covering=seq)
    return _proof(services, lambda session: prove_inclusion(session, seq, tree_size))


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
    _flush(services)
    if second is None:
        _fresh_checkpoint(services)
    return _proof(services, lambda session: prove_consistency(session, first, second))
