"""Reading the audit log (审计) — the auditor's use cases, once for every door: the API (``/api/v1/audit``), the
auditor page (审计日志) and ``certstore audit export``.

* :class:`AuditFilters` → :func:`audit_query`: what an auditor filters by. A holder is searched by ID type and
  number, hashed here the way the log hashes it (:func:`certstore.audit.query.holder_reference`): the number is
  never stored or logged. A time bound without an offset is UTC (the page converts its China-time fields first).
* :func:`settle`: every read first waits until the events acknowledged so far — and the mutation events committed
  so far in any process (``audit_pending``) — are chained, so an auditor sees everything that happened before the
  query, whichever sink the application has (the API's batched trail, or a direct sink).
* :func:`search` (a page of entries, cursor-paged), :func:`export` (entries + the covering signed checkpoint +
  range proof, verifiable offline with ``certstore audit verify-export``), :func:`summarise`,
  :func:`checkpoints`, :func:`sign_checkpoint`, :func:`inclusion_proof`, :func:`consistency_proof`.

The auditor's own reads are recorded by the door they came through (the API middleware logs every request the
core recorded nothing for); no certificate data is revealed here, holders appear only as keyed references.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from certstore.audit import AuditQuery, Checkpoint, EventPage, chain_pending, make_checkpoint, query_entries
from certstore.audit.chain import latest_checkpoint
from certstore.audit.checkpoints import checkpoint_from_row
from certstore.audit.query import EXPORT_FORMATS, export_lines, holder_reference, summary
from certstore.audit.tree import ProofUnavailableError, prove_consistency, prove_inclusion
from certstore.keystore import KeyStoreError
from certstore.store.models import AuditChainRow, AuditCheckpointRow

if TYPE_CHECKING:
    from certstore.app import Application

__all__ = [
    "EXPORT_FORMATS",
    "EXPORT_MEDIA_TYPES",
    "AuditExport",
    "AuditFilters",
    "CheckpointPage",
    "InvalidCursorError",
    "InvalidHolderError",
    "NoCheckpointKeyError",
    "ProofUnavailableError",
    "audit_query",
    "checkpoints",
    "consistency_proof",
    "covering_checkpoint",
    "export",
    "inclusion_proof",
    "search",
    "settle",
    "sign_checkpoint",
    "summarise",
]

ExportFormat = Literal["jsonl", "csv"]
EXPORT_MEDIA_TYPES: dict[str, str] = {"jsonl": "application/x-ndjson", "csv": "text/csv; charset=utf-8"}


class InvalidHolderError(ValueError):
    """The holder filter is incomplete (type without number or the reverse) or not a valid ID."""


class InvalidCursorError(ValueError):
    """The cursor was not made by :func:`search` (or was altered)."""


class NoCheckpointKeyError(LookupError):
    """No repository key to sign a checkpoint with (``certstore keys init``)."""


@dataclass(frozen=True)
class AuditFilters(AuditQuery):
    """An auditor's filters: the log query's (:class:`~certstore.audit.AuditQuery`: all optional, combined with
    AND; ``start`` inclusive, ``end`` exclusive; ``holder_digest``: a holder reference as logged), or the holder
    found from the holder's ID instead (``holder_id_type`` + ``holder_id``: GB/T 36903 type code and number)."""

    holder_id_type: str | None = None
    holder_id: str | None = None


def _utc(value: datetime | None) -> datetime | None:
    """A bound without an offset is read as UTC."""
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


def audit_query(app: Application, filters: AuditFilters) -> AuditQuery:
    """The log query of ``filters`` (the holder's ID hashed with the repository's holder key)."""
    holder = filters.holder_digest
    if filters.holder_id_type or filters.holder_id:
        if not (filters.holder_id_type and filters.holder_id):
            raise InvalidHolderError("the holder's ID type and ID number go together")
        try:
            holder = holder_reference(app.repo.holder_key, filters.holder_id_type, filters.holder_id)
        except ValueError as exc:
            raise InvalidHolderError(f"not a valid holder ID: {exc}") from None
    query = {f.name: getattr(filters, f.name) for f in fields(AuditQuery)}
    return AuditQuery(
        **{**query, "start": _utc(filters.start), "end": _utc(filters.end), "holder_digest": holder}
    )


def settle(app: Application) -> None:
    """Wait until everything recorded so far is chained (see the module docstring)."""
    flush: Callable[[], object] | None = getattr(app.audit, "flush", None)
    if flush is not None:
        flush()
    else:
        chain_pending(app.repo.db)


def search(
    app: Application, filters: AuditFilters, *, cursor: str | None = None, limit: int = 100
) -> EventPage:
    """The entries matching ``filters``, oldest first, ``limit`` at a time (``cursor`` from the previous page)."""
    query = audit_query(app, filters)
    settle(app)
    try:
        return query_entries(app.repo.db, query, cursor=cursor, limit=limit)
    except ValueError as exc:
        raise InvalidCursorError(str(exc)) from None


def sign_checkpoint(app: Application) -> Checkpoint:
    """A checkpoint of the whole log signed now with the repository's key (:class:`NoCheckpointKeyError`
    without one)."""
    sign: Callable[[], Checkpoint] | None = getattr(app.audit, "checkpoint", None)
    try:
        if sign is not None:
            return sign()
        key = app.repository_sealing_key()
    except (LookupError, KeyStoreError) as exc:
        raise NoCheckpointKeyError(str(exc)) from None
    return make_checkpoint(app.repo.db, key)


def covering_checkpoint(app: Application, *, covering: int | None = None) -> Checkpoint:
    """The newest checkpoint when it covers the whole log (or the entry at position ``covering``), else one
    signed now."""
    with app.repo.db.session(readonly=True) as session:
        newest = latest_checkpoint(session)
        head = session.get(AuditChainRow, 1)
        size = head.size if head is not None else 0
    wanted = size if covering is None else covering + 1
    if newest is not None and newest.tree_size >= wanted:
        return newest
    return sign_checkpoint(app)


@dataclass(frozen=True)
class AuditExport:
    """An export ready to stream: its ``lines`` (header, entries, checkpoint, proof) cover ``checkpoint``."""

    checkpoint: Checkpoint
    format: ExportFormat
    lines: Iterator[str]

    @property
    def media_type(self) -> str:
        return EXPORT_MEDIA_TYPES[self.format]

    @property
    def file_name(self) -> str:
        return f"audit-{self.checkpoint.tree_size}.{self.format}"


def export(
    app: Application,
    filters: AuditFilters,
    fmt: ExportFormat = "jsonl",
    *,
    signed_now: bool = False,
    newest_without_key: bool = False,
    now: datetime | None = None,
) -> AuditExport:
    """The entries matching ``filters`` with the checkpoint that covers them and their range proof. The
    checkpoint is the newest one when it covers the whole log, else one signed now (always one signed now with
    ``signed_now``). Without a repository key: :class:`NoCheckpointKeyError`, or with ``newest_without_key`` the
    newest checkpoint there is (the export then stops at its tree size, which its header states)."""
    if fmt not in EXPORT_FORMATS:
        raise ValueError(f"unknown export format {fmt!r}: use jsonl or csv")
    query = audit_query(app, filters)
    settle(app)
    try:
        checkpoint = sign_checkpoint(app) if signed_now else covering_checkpoint(app)
    except NoCheckpointKeyError:
        if not newest_without_key:
            raise
        with app.repo.db.session(readonly=True) as session:
            newest = latest_checkpoint(session)
        if newest is None:
            raise
        checkpoint = newest
    lines = export_lines(app.repo.db, query, checkpoint, fmt=fmt, generated_at=now or datetime.now(UTC))
    return AuditExport(checkpoint, fmt, lines)


def summarise(
    app: Application, start: datetime | None = None, end: datetime | None = None, *, top: int = 20
) -> dict[str, Any]:
    """Calls per organisation, denials, bulk access by grant (for spotting misuse) in ``[start, end)``."""
    settle(app)
    return summary(app.repo.db, _utc(start), _utc(end), top=top)


@dataclass(frozen=True)
class CheckpointPage:
    items: list[dict[str, Any]]
    next_after: int | None  # pass as ``after`` for the next page


def checkpoints(app: Application, *, after: int = 0, limit: int = 100) -> CheckpointPage:
    """The signed checkpoints with an id above ``after``, oldest first."""
    with app.repo.db.session(readonly=True) as session:
        rows = session.scalars(
            select(AuditCheckpointRow)
            .where(AuditCheckpointRow.id > after)
            .order_by(AuditCheckpointRow.id)
            .limit(limit + 1)
        ).all()
        items = [checkpoint_from_row(r).to_dict() for r in rows[:limit]]
    return CheckpointPage(items, items[-1]["id"] if len(rows) > limit else None)


def _proof(app: Application, prove: Callable[[Session], Any]) -> dict[str, Any]:
    with app.repo.db.session(readonly=True) as session:
        return prove(session).to_dict()  # type: ignore[no-any-return]


def inclusion_proof(app: Application, seq: int, tree_size: int | None = None) -> dict[str, Any]:
    """RFC 6962 inclusion proof of entry ``seq`` in the tree of ``tree_size`` (default: a checkpoint covering the
    entry, signed now if needed); :class:`ProofUnavailableError` when the log cannot give it."""
    settle(app)
    if tree_size is None:
        covering_checkpoint(app, covering=seq)
    return _proof(app, lambda session: prove_inclusion(session, seq, tree_size))


def consistency_proof(app: Application, first: int, second: int | None = None) -> dict[str, Any]:
    """RFC 6962 consistency proof between tree sizes ``first`` and ``second`` (default: the newest checkpoint,
    signed now if it does not cover the whole log)."""
    settle(app)
    if second is None:
        covering_checkpoint(app)
    return _proof(app, lambda session: prove_consistency(session, first, second))
