"""The auditor's view (审计查询): filtered queries with cursor pagination, streaming exports that verify offline,
and a summary for spotting misuse.

Queries filter on when events happened (``occurred_at``, ``[start, end)``), principal, organisation, role, action,
outcome, certificate identifier, holder (its keyed reference — callers hash an ID number with
:func:`holder_reference`), matter and grant; results come oldest first, ordered by (``occurred_at``, ``seq``),
and a page ends with an opaque cursor for the next one.

An **export** (JSONL or CSV) carries every exported entry with its hashes, the signed checkpoint that covers it
and a range proof (:func:`certstore.audit.merkle.range_proof`): with those, :func:`verify_export` recomputes each
entry hash, the Merkle root and checks the SM2 signature — offline, from the file alone. It proves every exported
entry is in the log exactly as shown; that the filter left nothing out is as trustworthy as the server that ran it
(an unfiltered export of a period shows its entries in one contiguous run of positions, except entries logged late).
"""

from __future__ import annotations

import base64
import csv
import io
import json
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import Select, and_, case, func, or_, select
from sqlalchemy.orm import Session

from certstore.audit.chain import latest_checkpoint
from certstore.audit.checkpoints import Checkpoint, checkpoint_problems
from certstore.audit.events import AuditEntry, entry_from_row, format_time, parse_time
from certstore.audit.merkle import ProofError, leaf_hash, root_from_range_proof
from certstore.audit.tree import TreeReader
from certstore.crypto.trust import TrustStore
from certstore.crypto.x509 import Certificate
from certstore.identifiers import HolderIdType, holder_id_digest, holder_ref, validate_holder_id
from certstore.store.db import Database
from certstore.store.models import AuditEventRow, AuditTreeNodeRow

__all__ = [
    "EXPORT_FORMATS",
    "FORMULA_STARTS",
    "AuditQuery",
    "EventPage",
    "ExportVerification",
    "decode_cursor",
    "encode_cursor",
    "export_checkpoint",
    "export_lines",
    "holder_reference",
    "iter_entries",
    "neutralise_cell",
    "query_entries",
    "query_events",
    "restore_cell",
    "summary",
    "verify_export",
]

EXPORT_FORMATS = ("jsonl", "csv")
EXPORT_TYPE = "certstore-audit-export"
CSV_COLUMNS = (
    "seq",
    "logged_at",
    "occurred_at",
    "event_id",
    "request_id",
    "principal",
    "organisation_code",
    "role",
    "action",
    "resource",
    "matter",
    "holder_digest",
    "certificate_identifier",
    "grant_id",
    "outcome",
    "status_code",
    "reason",
    "client",
    "user_agent",
    "details",
    "prev_hash",
    "entry_hash",
)
_INT_COLUMNS = {"seq", "grant_id", "status_code"}


def holder_reference(holder_key: bytes, id_type: str, id_number: str) -> str:
    """The holder's reference as the log stores it (HMAC-SM3 with the repository's holder key, 16 hex digits):
    how an auditor searches by ID number without the number ever being stored."""
    kind = HolderIdType(id_type)
    return holder_ref(holder_id_digest(holder_key, kind, validate_holder_id(kind, id_number)))


@dataclass(frozen=True)
class AuditQuery:
    """Filters (all optional, combined with AND). ``start`` inclusive, ``end`` exclusive (``occurred_at``)."""

    start: datetime | None = None
    end: datetime | None = None
    principal: str | None = None
    organisation_code: str | None = None
    role: str | None = None
    action: str | None = None
    outcome: str | None = None
    certificate_identifier: str | None = None
    holder_digest: str | None = None
    matter: str | None = None
    grant_id: int | None = None
    max_seq: int | None = None  # only entries before this position (an export's checkpoint)

    def where(self, query: Select[Any]) -> Select[Any]:
        row = AuditEventRow
        conditions = []
        if self.start is not None:
            conditions.append(row.occurred_at >= self.start)
        if self.end is not None:
            conditions.append(row.occurred_at < self.end)
        for column, value in (
            (row.principal, self.principal),
            (row.organisation_code, self.organisation_code),
            (row.role, self.role),
            (row.action, self.action),
            (row.outcome, self.outcome),
            (row.certificate_identifier, self.certificate_identifier),
            (row.holder_digest, self.holder_digest),
            (row.matter, self.matter),
            (row.grant_id, self.grant_id),
        ):
            if value is not None:
                conditions.append(column == value)
        if self.max_seq is not None:
            conditions.append(row.seq < self.max_seq)
        return query.where(*conditions) if conditions else query

    def to_dict(self) -> dict[str, Any]:
        document = {k: v for k, v in asdict(self).items() if v is not None and k != "max_seq"}
        for key in ("start", "end"):
            if key in document:
                document[key] = format_time(document[key])
        return document


def encode_cursor(entry: AuditEntry) -> str:
    raw = f"{format_time(entry.event.at)}|{entry.seq}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, int]:
    """``ValueError`` for anything that is not a cursor this module made."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        when, _, seq = raw.partition("|")
        value = int(seq)
        if value < 0:
            raise ValueError
        return parse_time(when), value
    except (ValueError, UnicodeDecodeError):
        raise ValueError(f"not a cursor: {cursor[:40]!r}") from None


def _after(cursor: tuple[datetime, int]) -> Any:
    at, seq = cursor
    return or_(AuditEventRow.occurred_at > at, and_(AuditEventRow.occurred_at == at, AuditEventRow.seq > seq))


@dataclass(frozen=True)
class EventPage:
    entries: list[AuditEntry]
    next_cursor: str | None


def _select(query: AuditQuery, cursor: tuple[datetime, int] | None, limit: int) -> Select[Any]:
    statement = query.where(select(AuditEventRow))
    if cursor is not None:
        statement = statement.where(_after(cursor))
    return statement.order_by(AuditEventRow.occurred_at, AuditEventRow.seq).limit(limit)


def query_entries(
    db: Database, query: AuditQuery, *, cursor: str | None = None, limit: int = 100
) -> EventPage:
    """One page of entries matching ``query`` (at most ``limit``, oldest first) and the cursor of the next."""
    limit = max(1, min(limit, 1000))
    position = decode_cursor(cursor) if cursor else None
    with db.session(readonly=True) as session:
        rows = session.scalars(_select(query, position, limit + 1)).all()
        entries = [entry_from_row(r) for r in rows[:limit]]
    return EventPage(entries, encode_cursor(entries[-1]) if len(rows) > limit else None)


def query_events(db: Database, **filters: Any) -> list[AuditEntry]:
    """Convenience: the first page (``limit``, default 100) of entries for keyword filters of :class:`AuditQuery`."""
    limit = int(filters.pop("limit", 100))
    return query_entries(db, AuditQuery(**filters), limit=limit).entries


def iter_entries(db: Database, query: AuditQuery, *, batch: int = 5_000) -> Iterator[AuditEntry]:
    """Every matching entry, oldest first, read in keyset-paged batches (short transactions)."""
    position: tuple[datetime, int] | None = None
    while True:
        with db.session(readonly=True) as session:
            rows = session.scalars(_select(query, position, batch)).all()
            entries = [entry_from_row(r) for r in rows]
        yield from entries
        if len(entries) < batch:
            return
        position = (entries[-1].event.at, entries[-1].seq)


# -- exports -----------------------------------------------------------------------------------------------


#: Cells starting with one of these are formulas to a spreadsheet (CSV injection): a CSV export writes them
#: after an apostrophe, and an apostrophe-led cell gets one more, so that the escape can be undone exactly.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
CSV_ESCAPE = "'"


def neutralise_cell(value: Any) -> Any:
    """``value`` as a CSV export writes it: ``'`` before a text starting with ``= + - @``, a tab, a carriage
    return or ``'`` itself (:func:`restore_cell` undoes it)."""
    if value.__class__ is str and value and (value[0] in FORMULA_STARTS or value[0] == CSV_ESCAPE):
        return CSV_ESCAPE + value
    return value


def restore_cell(cell: str) -> str:
    """The stored text of a cell :func:`neutralise_cell` wrote; ``ValueError`` for a cell it could not have
    written (a formula start without its apostrophe: the file was edited, or opened and saved)."""
    if cell.startswith(CSV_ESCAPE):
        return cell[1:]
    if cell and cell[0] in FORMULA_STARTS:
        raise ValueError(f"a cell starts with {cell[0]!r} without the export's apostrophe: {cell[:20]!r}")
    return cell


def _csv_line(values: Iterable[Any]) -> str:
    buffer = io.StringIO()
    cells = ["" if v is None else neutralise_cell(v) for v in values]
    # the writer does not quote a lone carriage return (its line terminator is "\n"): quote such a row whole
    carriage = any(c.__class__ is str and "\r" in c for c in cells)
    quoting = csv.QUOTE_ALL if carriage else csv.QUOTE_MINIMAL
    csv.writer(buffer, lineterminator="\n", quoting=quoting).writerow(cells)
    return buffer.getvalue()


def export_lines(
    db: Database,
    query: AuditQuery,
    checkpoint: Checkpoint,
    *,
    fmt: Literal["jsonl", "csv"] = "jsonl",
    generated_at: datetime,
) -> Iterator[str]:
    """The export as lines of text (stream them): a header, one line per entry (positions before the
    checkpoint's tree size only), and at the end the checkpoint and the range proof of the exported entries."""
    if fmt not in EXPORT_FORMATS:
        raise ValueError(f"unknown export format {fmt!r}: use jsonl or csv")
    bounded = AuditQuery(**{**asdict(query), "max_seq": checkpoint.tree_size})
    header = {
        "type": EXPORT_TYPE,
        "version": 1,
        "generated_at": format_time(generated_at),
        "filters": query.to_dict(),
        "tree_size": checkpoint.tree_size,
    }
    if fmt == "csv":
        header["formula_escape"] = CSV_ESCAPE  # cells: neutralise_cell, undone by the verifier
    if fmt == "jsonl":
        yield json.dumps(header, ensure_ascii=False, separators=(",", ":")) + "\n"
    else:
        yield _csv_line(["#" + EXPORT_TYPE, json.dumps(header, ensure_ascii=False, separators=(",", ":"))])
        yield _csv_line(CSV_COLUMNS)
    positions: list[int] = []
    for entry in iter_entries(db, bounded):
        positions.append(entry.seq)
        record = entry.to_record()
        if fmt == "jsonl":
            yield json.dumps({"type": "entry", **record}, ensure_ascii=False, separators=(",", ":")) + "\n"
        else:
            yield _csv_line(record[column] for column in CSV_COLUMNS)
    positions.sort()
    with db.session(readonly=True) as session:
        reader = TreeReader(session)
        if len(positions) > 1_000:
            _preload_nodes(session, reader)
        proof = reader.range_proof(positions, checkpoint.tree_size) if checkpoint.tree_size else []
    trailer = [
        {"type": "checkpoint", **checkpoint.to_dict()},
        {
            "type": "proof",
            "tree_size": checkpoint.tree_size,
            "entries": len(positions),
            "nodes": [h.hex() for h in proof],
        },
    ]
    for document in trailer:
        text = json.dumps(document, ensure_ascii=False, separators=(",", ":"))
        yield text + "\n" if fmt == "jsonl" else _csv_line(["#" + document["type"], text])


def _preload_nodes(session: Session, reader: TreeReader) -> None:
    for row in session.scalars(select(AuditTreeNodeRow)):
        reader.remember(row.level, row.position, bytes(row.hash))


@dataclass
class ExportVerification:
    """The outcome of :func:`verify_export`: ``intact`` when every entry, the root and the signature check."""

    entries: int = 0
    tree_size: int = 0
    checkpoint: Checkpoint | None = None
    problems: list[str] = field(default_factory=list)
    signer_checked: bool = False

    @property
    def intact(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {
            "intact": self.intact,
            "entries": self.entries,
            "tree_size": self.tree_size,
            "checkpoint": self.checkpoint.to_dict() if self.checkpoint else None,
            "signer_checked": self.signer_checked,
            "problems": self.problems,
        }


def _parse_export(
    lines: Iterable[str],
) -> tuple[list[AuditEntry], Checkpoint | None, dict[str, Any] | None, list[str]]:
    entries: list[AuditEntry] = []
    checkpoint: Checkpoint | None = None
    proof: dict[str, Any] | None = None
    problems: list[str] = []
    iterator = iter(lines)
    first = next(iterator, "")
    if first.startswith("{"):
        for number, line in enumerate(iterator, start=2):
            if not line.strip():
                continue
            try:
                document = json.loads(line)
                kind = document.pop("type", None)
                if kind == "entry":
                    entries.append(AuditEntry.from_record(document))
                elif kind == "checkpoint":
                    checkpoint = Checkpoint.from_dict(document)
                elif kind == "proof":
                    proof = document
            except (ValueError, KeyError, TypeError) as exc:
                problems.append(f"line {number} is not a valid export line: {exc}")
        return entries, checkpoint, proof, problems
    rows = csv.reader([first, *iterator])
    columns: list[str] | None = None
    escaped = False
    for number, row in enumerate(rows, start=1):
        if not row:
            continue
        try:
            if row[0].startswith("#"):
                document = json.loads(row[1])
                kind = document.pop("type", None)
                if kind == EXPORT_TYPE:
                    escaped = document.get("formula_escape") == CSV_ESCAPE
                elif kind == "checkpoint":
                    checkpoint = Checkpoint.from_dict(document)
                elif kind == "proof":
                    proof = document
                continue
            if columns is None:
                columns = row
                continue
            if escaped:
                row = [restore_cell(cell) for cell in row]
            record: dict[str, Any] = dict(zip(columns, row, strict=True))
            for key in CSV_COLUMNS:
                if record.get(key) == "" and key != "details":
                    record[key] = None
            for key in _INT_COLUMNS:
                if record.get(key) is not None:
                    record[key] = int(record[key])
            entries.append(AuditEntry.from_record(record))
        except (ValueError, KeyError, TypeError, IndexError) as exc:
            problems.append(f"row {number} is not a valid export row: {exc}")
    return entries, checkpoint, proof, problems


def verify_export(
    lines: Iterable[str], *, trust: TrustStore | None = None, pinned: Iterable[Certificate] = ()
) -> ExportVerification:
    """Verify an export offline: entry hashes, links between consecutive entries, the Merkle root through the
    range proof, the checkpoint's signature and (with ``trust``/``pinned``) its signer."""
    entries, checkpoint, proof, problems = _parse_export(lines)
    result = ExportVerification(entries=len(entries), problems=problems, checkpoint=checkpoint)
    if checkpoint is None or proof is None:
        result.problems.append("the export has no checkpoint or no proof: it cannot be verified")
        return result
    result.tree_size = checkpoint.tree_size
    pinned = list(pinned)
    signer_problems = checkpoint_problems(checkpoint, trust=trust, pinned=pinned)
    result.signer_checked = bool(pinned) or bool(trust and len(trust))
    if not result.signer_checked:
        signer_problems = [p for p in signer_problems if not p.startswith("no trust anchors")]
    result.problems.extend(f"checkpoint: {p}" for p in signer_problems)
    leaves: dict[int, bytes] = {}
    previous: AuditEntry | None = None
    for entry in sorted(entries, key=lambda e: e.seq):
        computed = entry.computed_hash()
        if computed != entry.entry_hash:
            result.problems.append(
                f"entry {entry.seq} was changed: its fields no longer hash to its entry hash"
            )
        if entry.seq in leaves:
            result.problems.append(f"entry {entry.seq} appears twice")
        if entry.seq >= checkpoint.tree_size:
            result.problems.append(
                f"entry {entry.seq} is beyond the checkpoint's {checkpoint.tree_size} entries"
            )
            continue
        if previous is not None and previous.seq + 1 == entry.seq and entry.prev_hash != previous.entry_hash:
            result.problems.append(f"entry {entry.seq} does not point at entry {previous.seq}")
        if entry.seq == checkpoint.tree_size - 1 and entry.entry_hash != checkpoint.head_hash:
            result.problems.append(f"entry {entry.seq} is not the head the checkpoint signs")
        leaves[entry.seq] = leaf_hash(computed)
        previous = entry
    if proof.get("entries") != len(entries):
        result.problems.append(
            f"the export announces {proof.get('entries')} entries and holds {len(entries)}"
        )
    try:
        nodes = [bytes.fromhex(h) for h in proof.get("nodes", [])]
        root = root_from_range_proof(checkpoint.tree_size, leaves, nodes)
        if root != checkpoint.root_hash:
            result.problems.append("the entries and the proof do not give the root the checkpoint signs")
    except (ProofError, ValueError) as exc:
        result.problems.append(f"the proof does not fit the entries: {exc}")
    return result


def export_checkpoint(db: Database) -> Checkpoint | None:
    """The newest checkpoint (an export covers what it signs)."""
    with db.session(readonly=True) as session:
        return latest_checkpoint(session)


# -- the summary -------------------------------------------------------------------------------------------


def summary(db: Database, start: datetime | None, end: datetime | None, *, top: int = 20) -> dict[str, Any]:
    """Calls per organisation (with denials and errors), the principals denied most, and bulk access per
    grant — over ``[start, end)`` of ``occurred_at``."""
    row = AuditEventRow
    query = AuditQuery(start=start, end=end)
    denied = func.sum(case((row.outcome == "deny", 1), else_=0))
    errors = func.sum(case((row.outcome == "error", 1), else_=0))
    with db.session(readonly=True) as session:
        totals = session.execute(query.where(select(func.count(), denied, errors))).one()
        by_organisation = session.execute(
            query.where(select(row.organisation_code, func.count(), denied, errors))
            .group_by(row.organisation_code)
            .order_by(func.count().desc())
            .limit(top)
        ).all()
        denials = session.execute(
            query.where(select(row.principal, row.organisation_code, func.count()))
            .where(row.outcome == "deny")
            .group_by(row.principal, row.organisation_code)
            .order_by(func.count().desc())
            .limit(top)
        ).all()
        bulk = session.execute(
            query.where(
                select(
                    row.grant_id,
                    row.organisation_code,
                    func.count(),
                    denied,
                    func.min(row.occurred_at),
                    func.max(row.occurred_at),
                )
            )
            .where(row.grant_id.is_not(None))
            .group_by(row.grant_id, row.organisation_code)
            .order_by(func.count().desc())
            .limit(top)
        ).all()
    return {
        "from": format_time(start) if start else None,
        "to": format_time(end) if end else None,
        "calls": int(totals[0] or 0),
        "denied": int(totals[1] or 0),
        "errors": int(totals[2] or 0),
        "by_organisation": [
            {"organisation_code": org, "calls": int(n), "denied": int(d or 0), "errors": int(e or 0)}
            for org, n, d, e in by_organisation
        ],
        "denials_by_principal": [
            {"principal": who, "organisation_code": org, "denied": int(n)} for who, org, n in denials
        ],
        "bulk_access": [
            {
                "grant_id": grant,
                "organisation_code": org,
                "calls": int(n),
                "denied": int(d or 0),
                "first": format_time(first) if first else None,
                "last": format_time(last) if last else None,
            }
            for grant, org, n, d, first, last in bulk
        ],
    }
