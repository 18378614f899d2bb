"""Verification of the audit log (完整性校验): ``certstore audit verify``.

Recomputes, from the stored rows alone, every entry hash, the chain (each ``prev_hash`` is the entry hash before
it) and the Merkle tree, and checks every checkpoint (its root and head hash against the recomputation, its
signed text and SM2 signature, its signer against the repository certificate or the trust anchors). Archived
months are taken from ``audit_archives`` (their compact tree continues the recomputation). Every finding names
the position (``seq``) it concerns:

- ``changed`` — an entry's fields no longer hash to its entry hash (a field was edited);
- ``missing`` — positions absent (rows deleted), including rows cut from the end (``truncated``);
- ``reordered`` — two entries swapped places (each hashes correctly at the other's position);
- ``chain`` — an entry does not point at the entry before it (and neither of the above explains why);
- ``checkpoint`` — a checkpoint that does not match the recomputed tree, or whose signature or signer fails;
- ``head``, ``tree_node``, ``archive``, ``duplicate`` — inconsistent chain head, stored subtree, archive record, or
  two rows with one position.
"""

from __future__ import annotations

import json
from bisect import bisect_left
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select

from certstore.audit.checkpoints import Checkpoint, checkpoint_from_row, checkpoint_problems
from certstore.audit.events import ZERO_HASH, AuditEntry, compute_entry_hash, entry_from_row
from certstore.audit.merkle import Frontier, leaf_hash
from certstore.crypto.trust import TrustStore
from certstore.crypto.x509 import Certificate
from certstore.store.db import Database
from certstore.store.models import (
    AuditArchiveRow,
    AuditChainRow,
    AuditCheckpointRow,
    AuditEventRow,
    AuditPendingRow,
    AuditTreeNodeRow,
)

__all__ = ["ChainVerifier", "Finding", "VerificationResult", "verify_log"]

_REORDER_CANDIDATES = 512  # changed entries examined pairwise for swaps


@dataclass(frozen=True)
class Finding:
    """One problem: its kind, the position it concerns (``seq``; ``None`` for whole-log findings) and why."""

    kind: str
    seq: int | None
    message: str
    other_seq: int | None = None
    checkpoint_id: int | None = None

    def to_dict(self) -> dict[str, Any]:
        document: dict[str, Any] = {"kind": self.kind, "seq": self.seq, "message": self.message}
        if self.other_seq is not None:
            document["other_seq"] = self.other_seq
        if self.checkpoint_id is not None:
            document["checkpoint_id"] = self.checkpoint_id
        return document


@dataclass
class VerificationResult:
    """The outcome: ``intact`` when nothing was found."""

    entries: int = 0
    first_seq: int = 0
    size: int = 0
    checkpoints: int = 0
    archived_months: int = 0
    pending: int = 0
    findings: list[Finding] = field(default_factory=list)
    root_hash: bytes | None = None

    @property
    def intact(self) -> bool:
        return not self.findings

    def kinds(self) -> set[str]:
        return {f.kind for f in self.findings}

    def to_dict(self) -> dict[str, Any]:
        return {
            "intact": self.intact,
            "entries_checked": self.entries,
            "first_seq": self.first_seq,
            "tree_size": self.size,
            "root_hash": self.root_hash.hex() if self.root_hash else None,
            "checkpoints_checked": self.checkpoints,
            "archived_months": self.archived_months,
            "pending_events": self.pending,
            "findings": [f.to_dict() for f in self.findings],
        }


class ChainVerifier:
    """Feeds entries in ``seq`` order; checks chain, hashes, tree and the checkpoints given. Shared by the log,
    export and archive verifications."""

    def __init__(
        self,
        checkpoints: Iterable[Checkpoint],
        *,
        start: int = 0,
        prev_hash: bytes = ZERO_HASH,
        frontier: Frontier | None = None,
        trust: TrustStore | None = None,
        pinned: Iterable[Certificate] = (),
        stored_nodes: dict[tuple[int, int], bytes] | None = None,
    ) -> None:
        self.result = VerificationResult(first_seq=start)
        self._expected = start
        self._prev = prev_hash
        self._last_hash = prev_hash
        self._stored_nodes = stored_nodes
        self._frontier = frontier.copy() if frontier is not None else Frontier()
        if stored_nodes is not None:
            self._frontier = Frontier(self._frontier.size, self._frontier.hashes, on_node=self._check_node)
        self._tree_broken = False
        self._changed: list[AuditEntry] = []
        self._chain_breaks: list[int] = []
        self._after_gap: set[int] = set()
        self._node_mismatches: list[tuple[int, int]] = []
        ordered = sorted(checkpoints, key=lambda c: (c.tree_size, c.id or 0))
        self._pending_checkpoints = [c for c in ordered if c.tree_size > start]
        self._early_checkpoints = [c for c in ordered if c.tree_size <= start]
        self._trust = trust
        self._pinned = list(pinned)
        for checkpoint in ordered:
            self._check_signature(checkpoint)
        for checkpoint in self._early_checkpoints:
            if checkpoint.tree_size == start and frontier is not None:
                self._compare(checkpoint, self._frontier.root(), prev_hash)
        self._check_due()

    def _find(self, kind: str, seq: int | None, message: str, **extra: Any) -> None:
        self.result.findings.append(Finding(kind, seq, message, **extra))

    def _check_signature(self, checkpoint: Checkpoint) -> None:
        self.result.checkpoints += 1
        for problem in checkpoint_problems(checkpoint, trust=self._trust, pinned=self._pinned):
            self._find(
                "checkpoint",
                None,
                f"checkpoint {checkpoint.id} (tree size {checkpoint.tree_size}): {problem}",
                checkpoint_id=checkpoint.id,
            )

    def _compare(self, checkpoint: Checkpoint, root: bytes, last_hash: bytes) -> None:
        if root != checkpoint.root_hash:
            self._find(
                "checkpoint",
                checkpoint.tree_size - 1,
                f"checkpoint {checkpoint.id} (tree size {checkpoint.tree_size}) signs root "
                f"{checkpoint.root_hash.hex()[:16]}…, the entries give {root.hex()[:16]}…",
                checkpoint_id=checkpoint.id,
            )
        elif last_hash != checkpoint.head_hash:
            self._find(
                "checkpoint",
                checkpoint.tree_size - 1,
                f"checkpoint {checkpoint.id} (tree size {checkpoint.tree_size}) names head hash "
                f"{checkpoint.head_hash.hex()[:16]}…, entry {checkpoint.tree_size - 1} has {last_hash.hex()[:16]}…",
                checkpoint_id=checkpoint.id,
            )

    def _check_due(self) -> None:
        while self._pending_checkpoints and self._pending_checkpoints[0].tree_size == self._frontier.size:
            checkpoint = self._pending_checkpoints.pop(0)
            if self._tree_broken:
                self._find(
                    "checkpoint",
                    checkpoint.tree_size - 1,
                    f"checkpoint {checkpoint.id} (tree size {checkpoint.tree_size}) cannot be matched: "
                    "entries before it are missing",
                    checkpoint_id=checkpoint.id,
                )
            else:
                self._compare(checkpoint, self._frontier.root(), self._last_hash)

    def _check_node(self, level: int, position: int, digest: bytes) -> None:
        assert self._stored_nodes is not None
        stored = self._stored_nodes.pop((level, position), None)
        if stored is not None and stored != digest:
            self._node_mismatches.append((level, position))

    def add(self, entry: AuditEntry) -> None:
        seq = entry.seq
        if seq < self._expected:
            self._find("duplicate", seq, f"entry {seq} appears twice (or out of order)")
            return
        if seq > self._expected:
            missing = seq - self._expected
            self._find(
                "missing",
                self._expected,
                f"entries {self._expected}..{seq - 1} are missing ({missing} deleted)"
                if missing > 1
                else f"entry {self._expected} is missing (deleted)",
                other_seq=seq - 1,
            )
            self._tree_broken = True
            self._frontier = Frontier(
                seq, [b"\0" * 32] * bin(seq).count("1")
            )  # the tree is reported broken above; a frontier of the right shape only keeps the walk going
            self._expected = seq
            self._after_gap.add(seq)
        computed = entry.computed_hash()
        if computed != entry.entry_hash:
            self._changed.append(entry)
        if entry.prev_hash != self._prev:
            self._chain_breaks.append(seq)
        self._frontier.append(leaf_hash(computed))
        self._prev = entry.entry_hash
        self._last_hash = computed
        self._expected = seq + 1
        self.result.entries += 1
        self._check_due()

    def finish(self, *, size: int | None = None) -> VerificationResult:
        """Close the run; ``size`` is the log's size according to its head (entries cut from the end)."""
        end = self._expected
        claimed = max([size or 0, *(c.tree_size for c in self._pending_checkpoints)])
        if claimed > end:
            beyond = [str(c.id) for c in self._pending_checkpoints]
            self._find(
                "missing",
                end,
                f"entries {end}..{claimed - 1} are missing (cut from the end of the log"
                + (f"; checkpoint(s) {', '.join(beyond)} cover them" if beyond else "")
                + ")",
                other_seq=claimed - 1,
            )
        self._explain_changes()
        explained = sorted(
            {f.seq for f in self.result.findings if f.seq is not None and f.kind != "checkpoint"}
        )
        for level, position in self._node_mismatches:
            first, last = position << level, ((position + 1) << level) - 1
            index = bisect_left(explained, first)
            if index < len(explained) and explained[index] <= last:
                continue  # the entries below it were changed: already reported
            self._find(
                "tree_node", first, f"the stored subtree of entries {first}..{last} does not match them"
            )
        self.result.size = end
        self.result.root_hash = None if self._tree_broken else self._frontier.root()
        self.result.findings.sort(key=lambda f: (f.seq if f.seq is not None else -1, f.kind))
        return self.result

    def _explain_changes(self) -> None:
        """Turn changed entries into ``reordered`` pairs where the swap explains them, ``changed`` otherwise."""
        changed = self._changed
        explained: dict[int, int] = {}
        candidates = changed[:_REORDER_CANDIDATES]
        positions = [e.seq for e in candidates]
        for entry in candidates:
            if entry.seq in explained:
                continue
            for other_seq in positions:
                if other_seq == entry.seq or other_seq in explained:
                    continue
                rehashed = compute_entry_hash(
                    other_seq, entry.logged_at, entry.prev_hash, entry.event, entry.details_text
                )
                if rehashed != entry.entry_hash:
                    continue
                other = next(e for e in candidates if e.seq == other_seq)
                back = compute_entry_hash(
                    entry.seq, other.logged_at, other.prev_hash, other.event, other.details_text
                )
                if back == other.entry_hash:
                    explained[entry.seq] = other_seq
                    explained[other_seq] = entry.seq
                    low, high = sorted((entry.seq, other_seq))
                    self._find(
                        "reordered",
                        low,
                        f"entries at positions {low} and {high} are swapped (each belongs at the other's place)",
                        other_seq=high,
                    )
                    break
        for entry in changed:
            if entry.seq not in explained:
                self._find(
                    "changed",
                    entry.seq,
                    f"entry {entry.seq} was changed: its fields no longer hash to its entry hash",
                )
        # A chain break right after a changed or swapped entry is its consequence, not a second finding.
        consequences = set(explained) | {e.seq for e in changed}
        consequences |= {s + 1 for s in consequences} | self._after_gap
        for seq in self._chain_breaks:
            if seq not in consequences:
                self._find(
                    "chain",
                    seq,
                    f"the chain breaks between entries {seq - 1} and {seq}: entry {seq - 1} was rewritten with a "
                    f"recomputed hash, or entry {seq}'s link (prev_hash) was changed",
                    other_seq=seq - 1,
                )

    @property
    def tree_broken(self) -> bool:
        return self._tree_broken

    @property
    def last_stored_hash(self) -> bytes:
        return self._prev

    @property
    def frontier(self) -> Frontier:
        return self._frontier


def _rows(db: Database, start: int, batch: int = 10_000) -> Iterator[AuditEntry]:
    with db.session(readonly=True) as session:
        query = select(AuditEventRow).where(AuditEventRow.seq >= start).order_by(AuditEventRow.seq)
        for row in session.scalars(query.execution_options(yield_per=batch)):
            yield entry_from_row(row)
            session.expunge(row)


def verify_log(
    db: Database,
    *,
    trust: TrustStore | None = None,
    pinned: Iterable[Certificate] = (),
) -> VerificationResult:
    """Verify the whole log in ``db`` (streaming: memory does not grow with the number of entries)."""
    with db.session(readonly=True) as session:
        archives = list(session.scalars(select(AuditArchiveRow).order_by(AuditArchiveRow.first_seq)))
        checkpoints = [checkpoint_from_row(r) for r in session.scalars(select(AuditCheckpointRow))]
        chain = session.get(AuditChainRow, 1)
        pending = int(session.scalar(select(func.count()).select_from(AuditPendingRow)) or 0)
        nodes = {(r.level, r.position): bytes(r.hash) for r in session.scalars(select(AuditTreeNodeRow))}
    start, prev, frontier = 0, ZERO_HASH, Frontier()
    archive_findings: list[Finding] = []
    for archive in archives:
        if archive.first_seq != start:
            archive_findings.append(
                Finding(
                    "archive",
                    archive.first_seq,
                    f"archived month {archive.month} does not follow the one before",
                )
            )
        start, prev = archive.end_seq, bytes(archive.last_hash)
        frontier = Frontier.from_hex(archive.end_seq, json.loads(archive.frontier_end))
    for key in [k for k in nodes if ((k[1] + 1) << k[0]) <= start]:
        del nodes[key]  # subtrees of archived months: checked against the archive's objects
    verifier = ChainVerifier(
        checkpoints,
        start=start,
        prev_hash=prev,
        frontier=frontier,
        trust=trust,
        pinned=pinned,
        stored_nodes=nodes,
    )
    verifier.result.findings.extend(archive_findings)
    for entry in _rows(db, start):
        verifier.add(entry)
    size = chain.size if chain is not None else None
    result = verifier.finish(size=size)
    result.archived_months = len(archives)
    result.pending = pending
    if chain is None:
        result.findings.append(Finding("head", None, "the chain head row is missing"))
    elif result.size == chain.size and result.intact:
        if bytes(chain.head_hash) != (verifier.last_stored_hash if result.size else ZERO_HASH):
            result.findings.append(
                Finding("head", result.size - 1, "the chain head's hash is not the last entry's")
            )
        if chain.frontier != json.dumps(verifier.frontier.to_hex()):
            result.findings.append(Finding("head", None, "the chain head's tree does not match the entries"))
    elif chain.size < result.size:
        result.findings.append(
            Finding(
                "head", chain.size, f"the chain head says {chain.size} entries, the table holds {result.size}"
            )
        )
    return result
