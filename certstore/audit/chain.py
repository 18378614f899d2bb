"""Appending to the audit chain (审计链): one total order, whoever writes.

Every append runs in one database transaction that first locks the chain head (``audit_chain``, one row:
on PostgreSQL through ``audit_head_lock()`` — the application role has no UPDATE on the head, and moves it only
with ``audit_head_store(…)``, whose trigger checks it moves over the rows just appended; SQLite's ``BEGIN
IMMEDIATE`` already serialises writers). Under that lock
it reads the head (next ``seq``, last entry hash, the Merkle tree in compact form), chains the batch — each entry
gets ``seq``, ``at`` (never earlier than the head's), ``prev_hash`` and ``entry_hash`` — inserts the rows
(PostgreSQL: ``COPY``), stores completed subtrees of 256+ leaves, moves head and, when due, signs a checkpoint.
Threads, API worker processes and hosts sharing the database therefore extend a single chain; a transaction that
fails leaves the head where it was.

Mutations write their event *in their own transaction* with :func:`append_in_transaction` (``audit_pending``):
the event commits or rolls back with the change it records, and the next append (any writer) chains it, then
removes it (PostgreSQL: ``audit_pending_consume``, allowed only for entries in the chain with the same fields —
revision 0010_audit_append_only).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import delete, insert, select, text, update
from sqlalchemy.orm import Session

from certstore.audit.checkpoints import (
    Checkpoint,
    CheckpointKey,
    checkpoint_from_row,
    checkpoint_row,
    sign_checkpoint,
    with_id,
)
from certstore.audit.events import (
    AuditEvent,
    canonical_tail,
    entry_prefix,
    event_from_payload,
    event_to_payload,
    format_time,
    outcome_text,
)
from certstore.audit.merkle import Frontier, leaf_hash
from certstore.crypto.sm3 import new as new_sm3
from certstore.store.db import Database
from certstore.store.models import (
    AuditChainRow,
    AuditCheckpointRow,
    AuditEventRow,
    AuditPendingRow,
    AuditTreeNodeRow,
)

__all__ = [
    "STORED_NODE_LEVEL",
    "AppendResult",
    "CheckpointPolicy",
    "Head",
    "KeyProvider",
    "PreparedEntry",
    "append_events",
    "append_in_transaction",
    "append_prepared",
    "chain_pending",
    "head",
    "latest_checkpoint",
    "make_checkpoint",
    "prepare_entries",
    "record_event",
]

#: Complete subtrees of 2^8 = 256 leaves and more are stored (``audit_tree_nodes``): about one row per 128 entries.
STORED_NODE_LEVEL = 8

#: An empty SM3 state: ``copy()`` of it is cheaper than ``hashlib.new("sm3")`` (no lookup by name).
_SM3_STATE = new_sm3()

#: Returns the checkpoint key, or None when the repository has none (checkpoints are then not signed).
KeyProvider = Callable[[], CheckpointKey | None]

_COLUMNS = (
    "seq",
    "at",
    "prev_hash",
    "entry_hash",
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
)


@dataclass(frozen=True)
class CheckpointPolicy:
    """When an append also signs a checkpoint: after ``every_entries`` new entries, or when the newest
    checkpoint is older than ``every_seconds`` and entries were added since."""

    every_entries: int = 10_000
    every_seconds: float = 300.0

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> CheckpointPolicy:
        """``CERTSTORE_AUDIT_CHECKPOINT_ENTRIES`` / ``CERTSTORE_AUDIT_CHECKPOINT_SECONDS`` (defaults 10000, 300)."""
        return cls(
            every_entries=int(env.get("CERTSTORE_AUDIT_CHECKPOINT_ENTRIES") or cls.every_entries),
            every_seconds=float(env.get("CERTSTORE_AUDIT_CHECKPOINT_SECONDS") or cls.every_seconds),
        )

    def due(self, head: AuditChainRow | Head, now: datetime) -> bool:
        if head.size <= head.checkpoint_size:
            return False
        if head.size - head.checkpoint_size >= self.every_entries:
            return True
        return head.checkpoint_at is None or now - head.checkpoint_at >= timedelta(seconds=self.every_seconds)


@dataclass(frozen=True)
class AppendResult:
    """What one append did: entries ``[first_seq, size)`` were added (``count`` of them, pending ones included)."""

    first_seq: int
    count: int
    size: int
    checkpoint: Checkpoint | None = None


@dataclass
class Head:
    """The chain head (``audit_chain``, row 1) as read under its lock; :func:`_store_head` writes it back."""

    size: int
    head_hash: bytes
    last_at: datetime | None
    frontier: str
    checkpoint_size: int
    checkpoint_at: datetime | None
    retention_years: int


def _lock_head(session: Session) -> Head:
    """Lock and read the chain head. PostgreSQL: through ``audit_head_lock()`` (SECURITY DEFINER, revision
    0010_audit_append_only) — the application role has no UPDATE on ``audit_chain``, so it cannot lock the head
    by itself (``SELECT … FOR UPDATE``) nor change it but by appending."""
    if _is_postgresql(session):
        row = session.execute(text("SELECT * FROM audit_head_lock()")).mappings().one_or_none()
    else:
        row = (
            session.execute(select(AuditChainRow.__table__).where(AuditChainRow.id == 1))
            .mappings()
            .one_or_none()
        )
    if row is None:
        raise RuntimeError("audit_chain has no head row: the database is not at schema 0005_audit or later")
    return Head(
        size=int(row["size"]),
        head_hash=bytes(row["head_hash"]),
        last_at=row["last_at"],
        frontier=row["frontier"],
        checkpoint_size=int(row["checkpoint_size"]),
        checkpoint_at=row["checkpoint_at"],
        retention_years=int(row["retention_years"]),
    )


def _store_head(session: Session, chain: Head) -> None:
    """Write the head back (PostgreSQL: ``audit_head_store``, whose trigger lets the head move only over the
    entries just appended)."""
    values = {
        "size": chain.size,
        "head_hash": chain.head_hash,
        "last_at": chain.last_at,
        "frontier": chain.frontier,
        "checkpoint_size": chain.checkpoint_size,
        "checkpoint_at": chain.checkpoint_at,
    }
    if _is_postgresql(session):
        session.execute(
            text(
                "SELECT audit_head_store(:size, :head_hash, :last_at, :frontier, :checkpoint_size, "
                ":checkpoint_at)"
            ),
            values,
        )
    else:
        session.execute(update(AuditChainRow).where(AuditChainRow.id == 1).values(**values))
    # the ORM's copy of the head row (if this session loaded one) is stale now
    for cached in list(session.identity_map.values()):
        if isinstance(cached, AuditChainRow):
            session.expire(cached)


def head(session: Session) -> Head:
    """The chain head, locked for this transaction — read it to know the current size."""
    return _lock_head(session)


def _existing_event_ids(session: Session, events: Sequence[AuditEvent]) -> set[str]:
    if not events:
        return set()
    first = min(e.at for e in events)
    last = max(e.at for e in events)
    found: set[str] = set()
    ids = [e.event_id for e in events]
    for start in range(0, len(ids), 500):
        found.update(
            session.scalars(
                select(AuditEventRow.event_id).where(
                    AuditEventRow.occurred_at >= first,
                    AuditEventRow.occurred_at <= last,
                    AuditEventRow.event_id.in_(ids[start : start + 500]),
                )
            )
        )
    return found


_NEEDS_ESCAPE = re.compile(r"[\\\t\n\r]")
_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _copy_text(value: Any) -> str:
    """One field in COPY's text format."""
    if value is None:
        return "\\N"
    if isinstance(value, str):
        return value.translate(_COPY_ESCAPES) if _NEEDS_ESCAPE.search(value) else value
    if isinstance(value, bytes):
        return "\\\\x" + value.hex()
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


#: An event ready to be chained — everything about its entry that does not depend on its position, computed
#: before the chain head is locked: ``(tail, copy, event)`` with ``tail`` its :func:`canonical_tail` (what the
#: entry hash covers besides seq, logged_at and prev_hash), on PostgreSQL ``copy`` the COPY text of its own
#: columns and ``event`` None, elsewhere ``copy`` None and ``event`` the normalised event (rows are inserted
#: from its fields). A plain tuple of bytes, which the garbage collector stops tracking (it does not do that for
#: named tuples): the writer's queue of thousands of waiting entries then costs the collector nothing.
PreparedEntry = tuple[bytes, bytes | None, AuditEvent | None]


def _event_values(event: AuditEvent) -> tuple[Any, ...]:
    """A normalised event's own columns, ``occurred_at`` to ``details`` (the storage order of ``_COLUMNS``)."""
    return (
        event.at,
        event.event_id,
        event.request_id,
        event.principal,
        event.organisation_code,
        event.role,
        event.action,
        event.resource,
        event.matter,
        event.holder_digest,
        event.certificate_identifier,
        event.grant_id,
        outcome_text(event.outcome),
        event.status_code,
        event.reason,
        event.client,
        event.user_agent,
        event.details_text,
    )


def _copy_fields(event: AuditEvent) -> bytes:
    """The COPY text (UTF-8) of a normalised event's own columns, ``occurred_at`` to ``details``,
    tab-separated."""
    values = (event.at.isoformat(), *_event_values(event)[1:])
    line = "\t".join(["\\N" if v is None else v if v.__class__ is str else _copy_text(v) for v in values])
    # One check for the whole line instead of one per field: no tab, newline, carriage return or backslash
    # but the separators and the NULL markers — else escape field by field.
    if (
        line.count("\t") != len(values) - 1
        or line.count("\\") != values.count(None)
        or "\n" in line
        or "\r" in line
    ):
        line = "\t".join(map(_copy_text, values))
    return line.encode("utf-8")


def prepare_entries(events: Iterable[AuditEvent], *, postgresql: bool) -> list[PreparedEntry]:
    """Normalise ``events`` and prepare their entries for :func:`append_prepared` (``postgresql``: the database
    is PostgreSQL, whose rows are COPYed)."""
    prepared = []
    for event in events:
        event = event.normalised()
        if postgresql:
            prepared.append((canonical_tail(event), _copy_fields(event), None))
        else:
            prepared.append((canonical_tail(event), None, event))
    return prepared


def _is_postgresql(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def _copy_lines(session: Session, data: bytes) -> None:
    """PostgreSQL: COPY ``data`` (text format, written by :func:`_chain`) in the session's transaction — an
    order of magnitude faster than INSERT, and several times faster than letting psycopg adapt each value."""
    connection = session.connection().connection.driver_connection
    with (
        connection.cursor() as cursor,  # type: ignore[union-attr]
        cursor.copy(f"COPY audit_events ({', '.join(_COLUMNS)}) FROM STDIN") as copy,
    ):
        copy.write(data)


def append_events(
    session: Session,
    events: Sequence[AuditEvent],
    *,
    now: datetime | None = None,
    key: CheckpointKey | None = None,
    policy: CheckpointPolicy | None = None,
    deduplicate: bool = False,
    pending_limit: int = 0,
    force_checkpoint: bool = False,
) -> AppendResult:
    """Chain ``events`` (and up to ``pending_limit`` events waiting in ``audit_pending``) in ``session``'s
    transaction; the caller commits. ``deduplicate`` skips events whose ``event_id`` is already in the log
    (spool replay after a crash). With ``key``, a checkpoint is signed when ``policy`` says it is due, or when
    ``force_checkpoint`` (then even with nothing new).

    Work that does not depend on the position (normalising, the canonical tail, the COPY text of the event's
    columns: :func:`prepare_entries`) is done before the chain head is locked; under the lock each entry costs
    one SM3 of its encoding, its leaf and (on average) one interior node, and one COPY line."""
    postgresql = _is_postgresql(session)
    normalised = [event.normalised() for event in events]
    prepared = prepare_entries(normalised, postgresql=postgresql)
    chain = _lock_head(session)
    if deduplicate and normalised:
        known = _existing_event_ids(session, normalised)
        prepared = [p for p, e in zip(prepared, normalised, strict=True) if e.event_id not in known]
    return _chain(session, chain, prepared, now, key, policy, pending_limit, force_checkpoint)


def append_prepared(
    session: Session,
    entries: Sequence[PreparedEntry],
    *,
    now: datetime | None = None,
    key: CheckpointKey | None = None,
    policy: CheckpointPolicy | None = None,
    pending_limit: int = 0,
) -> AppendResult:
    """:func:`append_events` for entries :func:`prepare_entries` made (the trail's writer, whose spool threads
    prepare them)."""
    chain = _lock_head(session)
    return _chain(session, chain, entries, now, key, policy, pending_limit, False)


def _chain(
    session: Session,
    chain: Head,
    entries: Sequence[PreparedEntry],
    now: datetime | None,
    key: CheckpointKey | None,
    policy: CheckpointPolicy | None,
    pending_limit: int,
    force_checkpoint: bool,
) -> AppendResult:
    """Under the head lock: chain the pending events, then ``entries``; store rows, subtrees, head, checkpoint."""
    now = now or datetime.now(UTC)
    postgresql = _is_postgresql(session)
    batch: list[PreparedEntry] = []
    pending_ids: list[int] = []
    if pending_limit > 0:
        # no row locks: the head's lock already serialises the chainers (and the application role has no
        # UPDATE on audit_pending, which FOR UPDATE would need)
        query = select(AuditPendingRow).order_by(AuditPendingRow.id).limit(pending_limit)
        pending = list(session.scalars(query))
        pending_ids = [row.id for row in pending]
        batch = prepare_entries((event_from_payload(row.payload) for row in pending), postgresql=postgresql)
    batch.extend(entries)

    first_seq = chain.size
    nodes: list[tuple[int, int, bytes]] = []

    def keep(level: int, position: int, digest: bytes) -> None:
        if level >= STORED_NODE_LEVEL:
            nodes.append((level, position, digest))

    if batch:
        frontier = Frontier(chain.size, (bytes.fromhex(h) for h in json.loads(chain.frontier)), on_node=keep)
        logged_at = max(now, chain.last_at) if chain.last_at is not None else now
        logged_text = format_time(logged_at)
        logged_copy = logged_at.isoformat().encode("ascii")
        prev = bytes(chain.head_hash)
        prev_hex = prev.hex()
        seq = chain.size
        lines: list[bytes] = []
        rows: list[dict[str, Any]] = []
        for tail, copy, event in batch:
            state = _SM3_STATE.copy()
            state.update(entry_prefix(seq, logged_text, prev_hex))
            state.update(tail)
            state.update(b"]")
            digest = state.digest()
            frontier.append(leaf_hash(digest))
            digest_hex = digest.hex()
            if copy is not None:
                lines.append(
                    b"%d\t%b\t\\\\x%b\t\\\\x%b\t%b\n"
                    % (seq, logged_copy, prev_hex.encode(), digest_hex.encode(), copy)
                )
            else:
                assert event is not None
                rows.append(_row(seq, logged_at, prev, digest, event))
            prev, prev_hex = digest, digest_hex
            seq += 1
        if lines:
            _copy_lines(session, b"".join(lines))
        if rows:
            session.execute(insert(AuditEventRow), rows)
        if nodes:
            session.execute(
                insert(AuditTreeNodeRow), [{"level": lv, "position": p, "hash": h} for lv, p, h in nodes]
            )
        chain.size = seq
        chain.head_hash = prev
        chain.last_at = logged_at
        chain.frontier = json.dumps(frontier.to_hex())

    checkpoint = None
    if key is not None and (force_checkpoint or (policy is not None and policy.due(chain, now))):
        frontier = Frontier(chain.size, (bytes.fromhex(h) for h in json.loads(chain.frontier)))
        checkpoint = sign_checkpoint(key, chain.size, frontier.root(), bytes(chain.head_hash), now)
        stored = checkpoint_row(checkpoint)
        session.add(stored)
        chain.checkpoint_size = chain.size
        chain.checkpoint_at = now
        session.flush()
        checkpoint = with_id(checkpoint, stored.id)
    if batch or checkpoint is not None:
        _store_head(session, chain)
    if pending_ids:
        # after the head: a pending entry leaves only once it is inside the chain, with the same fields
        # (PostgreSQL: audit_pending_consume, SECURITY DEFINER, and the row trigger that checks it)
        if postgresql:
            session.execute(text("SELECT audit_pending_consume(:ids)"), {"ids": pending_ids})
        else:
            session.execute(delete(AuditPendingRow).where(AuditPendingRow.id.in_(pending_ids)))
    session.flush()
    return AppendResult(first_seq, chain.size - first_seq, chain.size, checkpoint)


def _row(seq: int, logged_at: datetime, prev: bytes, digest: bytes, event: AuditEvent) -> dict[str, Any]:
    """An ``audit_events`` row for INSERT (databases without COPY)."""
    values = (seq, logged_at, prev, digest, *_event_values(event))
    return dict(zip(_COLUMNS, values, strict=True))


def append_in_transaction(session: Session, event: AuditEvent) -> None:
    """Write ``event`` in the caller's transaction (write-ahead for mutations, 变更留痕): it is durable exactly
    when the action it records commits, and is chained by the next append of any writer."""
    event = event.normalised()
    session.add(AuditPendingRow(occurred_at=event.at, payload=event_to_payload(event)))


def chain_pending(
    db: Database,
    *,
    key: CheckpointKey | None = None,
    policy: CheckpointPolicy | None = None,
    batch: int = 5_000,
) -> int:
    """Chain every event waiting in ``audit_pending``; returns how many were chained."""
    total = 0
    while True:
        with db.session() as session:
            result = append_events(session, [], key=key, policy=policy, pending_limit=batch)
        total += result.count
        if result.count < batch:
            return total


def record_event(db: Database, event: AuditEvent) -> int:
    """Append one event synchronously (its own transaction); returns its ``seq``. The API uses the batched
    :class:`certstore.audit.trail.AuditTrail` instead."""
    with db.session() as session:
        result = append_events(session, [event], pending_limit=1_000)
        return result.size - 1


class AuditSink(Protocol):
    """Where the use cases send an audit entry that is not part of a database transaction of theirs (reads,
    denials): ``submit`` returns once the entry is durable. :class:`~certstore.audit.trail.AuditTrail` (the
    API's batched spool) and :class:`DirectSink` (one append per entry: the command line, workers) are the two."""

    def submit(self, event: AuditEvent) -> None: ...


class DirectSink:
    """An :class:`AuditSink` appending each entry in its own transaction (:func:`record_event`)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def submit(self, event: AuditEvent) -> None:
        record_event(self.db, event)


def make_checkpoint(db: Database, key: CheckpointKey, *, now: datetime | None = None) -> Checkpoint:
    """Sign a checkpoint of the log as it is now (pending events chained first)."""
    with db.session() as session:
        result = append_events(session, [], key=key, now=now, pending_limit=100_000, force_checkpoint=True)
        assert result.checkpoint is not None
        return result.checkpoint


def latest_checkpoint(session: Session) -> Checkpoint | None:
    """The checkpoint of the largest tree (the newest of those)."""
    row = session.scalars(
        select(AuditCheckpointRow).order_by(AuditCheckpointRow.tree_size.desc(), AuditCheckpointRow.id.desc())
    ).first()
    return checkpoint_from_row(row) if row is not None else None
