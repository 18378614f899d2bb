"""Archiving a month of the audit log (归档): sealed, hash-linked, under Object Lock, then out of the hot table.

:func:`archive_month` (``certstore audit archive --month YYYY-MM``, run by the maintenance role):

1. takes the month's entries — by ``at``, which never goes backwards, they are one contiguous run of positions
   ``[first_seq, end_seq)`` right after the previous archived month (months are archived oldest first, from the
   second day of the next month on, so that no writer's clock can still place an entry in it);
2. verifies them (hashes, chain, every checkpoint inside the month) continuing from the previous month's end;
3. signs a checkpoint of exactly ``end_seq`` entries (the seal) and writes JSONL segments (the entries as stored,
   each line with ``prev_hash`` and ``entry_hash``) and a manifest — the previous month's manifest key, the compact
   Merkle tree before and after the month, the checkpoints — into the archive bucket, each object under COMPLIANCE
   retention until the month's entries are ``retention_years`` old (at least a day from now);
4. reads the objects back and verifies them offline (:func:`verify_archive`), exactly as an auditor would;
5. records the month in ``audit_archives`` and removes its entries from the hot table — PostgreSQL: detaches and
   drops the month's partition (plus any of its rows in the DEFAULT partition); SQLite: deletes the rows. The
   retention triggers allow this only for positions of a recorded archive: a month leaves the database only when
   its locked, verified copy exists.

Later entries keep verifying: ``audit_archives.frontier_end`` continues the Merkle tree, and ``last_hash`` the chain.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, select, text

from certstore.audit.checkpoints import (
    Checkpoint,
    CheckpointKey,
    checkpoint_from_row,
    checkpoint_row,
    sign_checkpoint,
    with_id,
)
from certstore.audit.events import ZERO_HASH, AuditEntry, entry_from_row, format_time
from certstore.audit.merkle import Frontier
from certstore.audit.partitions import PARTITION_SCHEMA, list_partitions, month_bounds, partition_name
from certstore.audit.verify import ChainVerifier, VerificationResult
from certstore.crypto.trust import TrustStore
from certstore.crypto.x509 import Certificate
from certstore.store.blobs import Archive
from certstore.store.db import Database
from certstore.store.models import AuditArchiveRow, AuditChainRow, AuditCheckpointRow, AuditEventRow

__all__ = [
    "MANIFEST_TYPE",
    "SEGMENT_ENTRIES",
    "ArchiveError",
    "ArchiveResult",
    "archive_month",
    "verify_archive",
]

MANIFEST_TYPE = "certstore-audit-archive"
SEGMENT_ENTRIES = 50_000
GRACE = timedelta(days=1)  # after the month's end, before it may be archived
MIN_LOCK = timedelta(days=1)
JSONL = "application/x-ndjson"
JSON = "application/json"


class ArchiveError(RuntimeError):
    """The month cannot be archived (not over, out of order, or its entries do not verify)."""


@dataclass(frozen=True)
class ArchiveResult:
    month: str
    first_seq: int
    end_seq: int
    manifest_key: str
    segments: list[str]
    retain_until: datetime
    checkpoint: Checkpoint
    removed: int

    @property
    def entries(self) -> int:
        return self.end_seq - self.first_seq

    def to_dict(self) -> dict[str, Any]:
        return {
            "month": self.month,
            "first_seq": self.first_seq,
            "end_seq": self.end_seq,
            "entries": self.entries,
            "manifest_key": self.manifest_key,
            "segments": self.segments,
            "retain_until": format_time(self.retain_until),
            "checkpoint": self.checkpoint.to_dict(),
            "removed_from_hot_table": self.removed,
        }


def _add_years(moment: datetime, years: int) -> datetime:
    try:
        return moment.replace(year=moment.year + years)
    except ValueError:  # 29 February
        return moment.replace(year=moment.year + years, day=28)


def _dumps(document: Any) -> bytes:
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def archive_month(
    db: Database,
    archive: Archive,
    key: CheckpointKey,
    month: str,
    *,
    now: datetime | None = None,
    trust: TrustStore | None = None,
    pinned: Iterable[Certificate] = (),
    segment_entries: int = SEGMENT_ENTRIES,
) -> ArchiveResult:
    """Archive ``month`` (``YYYY-MM`` of ``at``) as described in the module docstring."""
    now = now or datetime.now(UTC)
    start, end = month_bounds(month)
    if end + GRACE > now:
        raise ArchiveError(
            f"{month} can be archived from {format_time(end + GRACE)} on (the month must be over)"
        )
    pinned = [*pinned, key.certificate]
    with db.session(readonly=True) as session:
        if session.scalar(select(AuditArchiveRow.id).where(AuditArchiveRow.month == month)) is not None:
            raise ArchiveError(f"{month} is archived already")
        previous = session.scalars(select(AuditArchiveRow).order_by(AuditArchiveRow.end_seq.desc())).first()
        chain = session.get(AuditChainRow, 1)
        assert chain is not None
        retention = int(chain.retention_years)
        first = previous.end_seq if previous is not None else 0
        low, high, count = session.execute(
            select(func.min(AuditEventRow.seq), func.max(AuditEventRow.seq), func.count()).where(
                AuditEventRow.at >= start, AuditEventRow.at < end
            )
        ).one()
        if not count:
            raise ArchiveError(f"{month} has no entries in the hot table")
        earlier = session.scalar(select(func.min(AuditEventRow.at)).where(AuditEventRow.at < start))
        if earlier is not None:
            raise ArchiveError(
                f"entries of {format_time(earlier)[:7]} are still in the hot table: archive it first"
            )
        if low != first or high - low + 1 != count:
            raise ArchiveError(
                f"{month} holds {count} entries at positions {low}..{high}, not one run from {first}: "
                "run `certstore audit verify`"
            )
        end_seq = high + 1
        inside = [
            checkpoint_from_row(r)
            for r in session.scalars(
                select(AuditCheckpointRow).where(
                    AuditCheckpointRow.tree_size > first, AuditCheckpointRow.tree_size <= end_seq
                )
            )
        ]
    start_frontier = (
        Frontier.from_hex(previous.end_seq, json.loads(previous.frontier_end)) if previous else Frontier()
    )
    prev_hash = bytes(previous.last_hash) if previous else ZERO_HASH
    verifier = ChainVerifier(
        inside, start=first, prev_hash=prev_hash, frontier=start_frontier, trust=trust, pinned=pinned
    )
    retain_until = max(_add_years(end, retention), now + MIN_LOCK)
    segments: list[dict[str, Any]] = []
    chunk: list[AuditEntry] = []
    last: AuditEntry | None = None

    def put_segment() -> None:
        data = b"".join(_dumps(e.to_record()) + b"\n" for e in chunk)
        ref = archive.put(data, retain_until=retain_until, media_type=JSONL)
        segments.append({"key": ref.key, "first_seq": chunk[0].seq, "entries": len(chunk)})
        chunk.clear()

    with db.session(readonly=True) as session:
        query = (
            select(AuditEventRow)
            .where(AuditEventRow.seq >= first, AuditEventRow.seq < end_seq)
            .order_by(AuditEventRow.seq)
            .execution_options(yield_per=5_000)
        )
        for row in session.scalars(query):
            last = entry_from_row(row)
            session.expunge(row)
            verifier.add(last)
            chunk.append(last)
            if len(chunk) >= segment_entries:
                put_segment()
    if chunk:
        put_segment()
    checked = verifier.finish(size=end_seq)
    if not checked.intact or last is None:
        reason = checked.findings[0].message if checked.findings else "no entries"
        raise ArchiveError(f"{month} does not verify, nothing was removed: {reason}")
    end_frontier = verifier.frontier
    seal = sign_checkpoint(key, end_seq, end_frontier.root(), last.entry_hash, now)
    manifest = {
        "type": MANIFEST_TYPE,
        "version": 1,
        "month": month,
        "first_seq": first,
        "end_seq": end_seq,
        "prev_hash": prev_hash.hex(),
        "last_hash": last.entry_hash.hex(),
        "frontier_start": start_frontier.to_hex(),
        "frontier_end": end_frontier.to_hex(),
        "segments": segments,
        "checkpoint": seal.to_dict(),
        "checkpoints": [c.to_dict() for c in inside],
        "previous_manifest": previous.manifest_key if previous else None,
        "retention_years": retention,
        "retain_until": format_time(retain_until),
        "archived_at": format_time(now),
    }
    manifest_ref = archive.put(_dumps(manifest), retain_until=retain_until, media_type=JSON)

    readback = verify_archive(archive, manifest_ref.key, trust=trust, pinned=pinned)
    if not readback.intact:
        raise ArchiveError(f"the archived copy of {month} does not verify: {readback.findings[0].message}")

    with db.session() as session:
        stored_seal = checkpoint_row(seal)
        session.add(stored_seal)
        session.add(
            AuditArchiveRow(
                month=month,
                first_seq=first,
                end_seq=end_seq,
                last_hash=last.entry_hash,
                frontier_end=json.dumps(end_frontier.to_hex()),
                manifest_key=manifest_ref.key,
                segments=json.dumps([s["key"] for s in segments]),
                retain_until=retain_until,
                archived_at=now,
            )
        )
        session.flush()
        removed = 0
        if db.backend == "postgresql" and partition_name(month) in list_partitions(db):
            name = f"{PARTITION_SCHEMA}.{partition_name(month)}"
            removed += int(session.scalar(text(f"SELECT count(*) FROM {name}")) or 0)
            session.execute(text(f"ALTER TABLE audit_events DETACH PARTITION {name}"))
            session.execute(text(f"DROP TABLE {name}"))
        result = session.execute(
            delete(AuditEventRow).where(AuditEventRow.seq >= first, AuditEventRow.seq < end_seq)
        )
        removed += result.rowcount or 0  # type: ignore[attr-defined]
        seal_id = stored_seal.id
    return ArchiveResult(
        month=month,
        first_seq=first,
        end_seq=end_seq,
        manifest_key=manifest_ref.key,
        segments=[s["key"] for s in segments],
        retain_until=retain_until,
        checkpoint=with_id(seal, seal_id),
        removed=removed,
    )


@dataclass
class ArchiveVerification:
    month: str | None = None
    entries: int = 0
    findings: list[Any] = field(default_factory=list)
    manifest: dict[str, Any] | None = None

    @property
    def intact(self) -> bool:
        return not self.findings

    def to_dict(self) -> dict[str, Any]:
        return {
            "intact": self.intact,
            "month": self.month,
            "entries": self.entries,
            "findings": [
                f.to_dict() if hasattr(f, "to_dict") else {"message": str(f)} for f in self.findings
            ],
        }


class _Problem:
    def __init__(self, message: str) -> None:
        self.message = message

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "archive", "seq": None, "message": self.message}


def verify_archive(
    archive: Archive,
    manifest_key: str,
    *,
    trust: TrustStore | None = None,
    pinned: Iterable[Certificate] = (),
) -> ArchiveVerification:
    """Verify an archived month from its objects alone: every entry hash, the chain from ``prev_hash``, the
    Merkle tree from ``frontier_start`` to the sealing checkpoint (root and head), every checkpoint's signature and
    signer. The archive store checks each object's SM3 key as it reads it."""
    result = ArchiveVerification()
    try:
        manifest = json.loads(archive.get(manifest_key))
        if manifest.get("type") != MANIFEST_TYPE or manifest.get("version") != 1:
            raise ValueError("not an audit archive manifest")
        result.manifest = manifest
        result.month = manifest["month"]
        first, end_seq = int(manifest["first_seq"]), int(manifest["end_seq"])
        seal = Checkpoint.from_dict(manifest["checkpoint"])
        inside = [Checkpoint.from_dict(c) for c in manifest["checkpoints"]]
        frontier = Frontier.from_hex(first, manifest["frontier_start"])
        prev_hash = bytes.fromhex(manifest["prev_hash"])
    except Exception as exc:  # anything malformed is a finding, not a crash
        result.findings.append(_Problem(f"manifest {manifest_key} is unreadable: {exc}"))
        return result
    if seal.tree_size != end_seq:
        result.findings.append(
            _Problem(f"the sealing checkpoint covers {seal.tree_size} entries, not {end_seq}")
        )
    verifier = ChainVerifier(
        [seal, *inside], start=first, prev_hash=prev_hash, frontier=frontier, trust=trust, pinned=pinned
    )
    for segment in manifest["segments"]:
        try:
            data = archive.get(segment["key"])
        except Exception as exc:
            result.findings.append(_Problem(f"segment {segment['key']} is unreadable: {exc}"))
            return result
        lines = data.decode("utf-8").splitlines()
        if len(lines) != segment["entries"]:
            result.findings.append(
                _Problem(f"segment {segment['key']} holds {len(lines)} entries, not {segment['entries']}")
            )
        for line in lines:
            try:
                entry = AuditEntry.from_record(json.loads(line))
            except (ValueError, KeyError, TypeError) as exc:
                result.findings.append(_Problem(f"segment {segment['key']}: unreadable entry ({exc})"))
                continue
            verifier.add(entry)
    checked: VerificationResult = verifier.finish(size=end_seq)
    result.entries = checked.entries
    result.findings.extend(checked.findings)
    if verifier.frontier.to_hex() != manifest["frontier_end"] and checked.intact:
        result.findings.append(
            _Problem("the manifest's compact tree after the month does not match its entries")
        )
    return result
