"""Reading the Merkle tree back from the database, and proofs (包含证明, 一致性证明).

A node is found, cheapest first, in: this reader's memo; the compact tree of an archived month
(``audit_archives.frontier_end``); ``audit_tree_nodes`` (complete subtrees of 256+ leaves); else it is computed
from the stored ``entry_hash`` of at most 256 consecutive entries. An inclusion or consistency proof therefore
reads a few dozen small rows whatever the size of the log. Entries of archived months are no longer in the hot
table: proofs that need them raise :class:`ProofUnavailableError` (the archive's own objects prove them).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from certstore.audit.chain import STORED_NODE_LEVEL, latest_checkpoint
from certstore.audit.checkpoints import Checkpoint, checkpoint_from_row
from certstore.audit.events import AuditEntry, entry_from_row
from certstore.audit.merkle import (
    EMPTY_ROOT,
    Frontier,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    node_hash,
    range_proof,
    split_point,
)
from certstore.store.models import (
    AuditArchiveRow,
    AuditChainRow,
    AuditCheckpointRow,
    AuditEventRow,
    AuditTreeNodeRow,
)

__all__ = [
    "ConsistencyProof",
    "InclusionProof",
    "ProofUnavailableError",
    "TreeReader",
    "checkpoint_of_size",
    "prove_consistency",
    "prove_inclusion",
]

_BLOCK = 1 << STORED_NODE_LEVEL


class ProofUnavailableError(LookupError):
    """The proof needs entries that are not in the hot table (archived, or beyond the log's size)."""


class TreeReader:
    """Node hashes of the log's Merkle tree, read through ``session`` (one reader per request)."""

    def __init__(self, session: Session) -> None:
        self._session = session
        self._memo: dict[tuple[int, int], bytes] = {}
        self._blocks: dict[int, dict[int, bytes]] = {}
        self.base = 0  # first seq still in the hot table
        for archive in session.scalars(select(AuditArchiveRow).order_by(AuditArchiveRow.end_seq)):
            frontier = Frontier.from_hex(archive.end_seq, json.loads(archive.frontier_end))
            for level, position, digest in frontier.nodes():
                self._memo[(level, position)] = digest
            self.base = max(self.base, archive.end_seq)

    def remember(self, level: int, position: int, digest: bytes) -> None:
        """Seed a stored subtree (bulk loads before large range proofs)."""
        self._memo.setdefault((level, position), digest)

    def _block(self, block: int) -> dict[int, bytes]:
        leaves = self._blocks.get(block)
        if leaves is None:
            lo = block * _BLOCK
            rows = self._session.execute(
                select(AuditEventRow.seq, AuditEventRow.entry_hash).where(
                    AuditEventRow.seq >= lo, AuditEventRow.seq < lo + _BLOCK
                )
            ).all()
            leaves = self._blocks[block] = {seq: leaf_hash(bytes(digest)) for seq, digest in rows}
        return leaves

    def leaves(self, lo: int, hi: int) -> list[bytes]:
        """Leaf hashes of entries ``[lo, hi)`` (within one block of 256)."""
        leaves = self._block(lo // _BLOCK)
        try:
            return [leaves[seq] for seq in range(lo, hi)]
        except KeyError as missing:
            raise ProofUnavailableError(
                f"entry {missing.args[0]} is not in the log's hot table"
                + (f" (entries before {self.base} are archived)" if lo < self.base else "")
            ) from None

    def _perfect(self, level: int, position: int) -> bytes:
        key = (level, position)
        found = self._memo.get(key)
        if found is not None:
            return found
        if level >= STORED_NODE_LEVEL:
            row = self._session.get(AuditTreeNodeRow, (level, position))
            if row is not None:
                self._memo[key] = bytes(row.hash)
                return self._memo[key]
        lo = position << level
        if level == 0:
            digest = self.leaves(position, position + 1)[0]
        elif level <= STORED_NODE_LEVEL and lo >= self.base:
            layer = self.leaves(lo, lo + (1 << level))
            while len(layer) > 1:
                layer = [node_hash(layer[i], layer[i + 1]) for i in range(0, len(layer), 2)]
            digest = layer[0]
        else:  # larger than a block, or straddling the archived part (whose compact tree seeds the memo)
            digest = node_hash(
                self._perfect(level - 1, 2 * position), self._perfect(level - 1, 2 * position + 1)
            )
        self._memo[key] = digest
        return digest

    def subtree(self, lo: int, hi: int) -> bytes:
        """The RFC 6962 hash of leaves ``[lo, hi)``."""
        size = hi - lo
        if size <= 0:
            raise ValueError(f"empty range {lo}..{hi}")
        if size & (size - 1) == 0 and lo % size == 0:
            return self._perfect(size.bit_length() - 1, lo // size)
        k = split_point(size)
        return node_hash(self.subtree(lo, lo + k), self.subtree(lo + k, hi))

    def root(self, size: int) -> bytes:
        """The root of the tree of ``size`` entries."""
        return EMPTY_ROOT if size == 0 else self.subtree(0, size)

    def range_proof(self, indices: list[int], size: int) -> list[bytes]:
        return range_proof(indices, size, self.subtree)


@dataclass(frozen=True)
class InclusionProof:
    """Entry ``seq`` is leaf ``seq`` of the tree of ``tree_size`` whose root the checkpoint signs."""

    entry: AuditEntry
    tree_size: int
    leaf_hash: bytes
    path: list[bytes]
    root_hash: bytes
    checkpoint: Checkpoint | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "seq": self.entry.seq,
            "tree_size": self.tree_size,
            "entry": self.entry.to_record(),
            "leaf_hash": self.leaf_hash.hex(),
            "proof": [h.hex() for h in self.path],
            "root_hash": self.root_hash.hex(),
            "checkpoint": self.checkpoint.to_dict() if self.checkpoint else None,
        }


@dataclass(frozen=True)
class ConsistencyProof:
    """The tree of ``second`` entries extends the tree of ``first`` (RFC 6962 §2.1.2)."""

    first: int
    second: int
    first_root: bytes
    second_root: bytes
    path: list[bytes]
    first_checkpoint: Checkpoint | None
    second_checkpoint: Checkpoint | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "first": self.first,
            "second": self.second,
            "first_root": self.first_root.hex(),
            "second_root": self.second_root.hex(),
            "proof": [h.hex() for h in self.path],
            "first_checkpoint": self.first_checkpoint.to_dict() if self.first_checkpoint else None,
            "second_checkpoint": self.second_checkpoint.to_dict() if self.second_checkpoint else None,
        }


def checkpoint_of_size(session: Session, tree_size: int) -> Checkpoint | None:
    """The newest checkpoint of exactly ``tree_size`` entries."""
    row = session.scalars(
        select(AuditCheckpointRow)
        .where(AuditCheckpointRow.tree_size == tree_size)
        .order_by(AuditCheckpointRow.id.desc())
    ).first()
    return checkpoint_from_row(row) if row is not None else None


def _size_unlocked(session: Session) -> int:
    return int(session.scalars(select(AuditChainRow.size).where(AuditChainRow.id == 1)).one())


def prove_inclusion(session: Session, seq: int, tree_size: int | None = None) -> InclusionProof:
    """The audit path of entry ``seq`` in the tree of ``tree_size`` (default: the newest checkpoint's)."""
    checkpoint = None
    if tree_size is None:
        checkpoint = latest_checkpoint(session)
        if checkpoint is None or checkpoint.tree_size <= seq:
            raise ProofUnavailableError(f"no checkpoint covers entry {seq} yet: sign one first")
        tree_size = checkpoint.tree_size
    else:
        checkpoint = checkpoint_of_size(session, tree_size)
    size = _size_unlocked(session)
    if tree_size > size:
        raise ProofUnavailableError(f"the log has {size} entries, not {tree_size}")
    if not 0 <= seq < tree_size:
        raise ProofUnavailableError(f"entry {seq} is not in a tree of {tree_size} entries")
    row = session.scalars(select(AuditEventRow).where(AuditEventRow.seq == seq)).first()
    if row is None:
        raise ProofUnavailableError(f"entry {seq} is not in the hot table (archived)")
    reader = TreeReader(session)
    entry = entry_from_row(row)
    return InclusionProof(
        entry=entry,
        tree_size=tree_size,
        leaf_hash=leaf_hash(entry.entry_hash),
        path=inclusion_proof(seq, tree_size, reader.subtree),
        root_hash=reader.root(tree_size),
        checkpoint=checkpoint,
    )


def prove_consistency(session: Session, first: int, second: int | None = None) -> ConsistencyProof:
    """The consistency proof from the tree of ``first`` entries to ``second`` (default: newest checkpoint)."""
    second_checkpoint = None
    if second is None:
        second_checkpoint = latest_checkpoint(session)
        if second_checkpoint is None:
            raise ProofUnavailableError("no checkpoint yet: sign one first")
        second = second_checkpoint.tree_size
    else:
        second_checkpoint = checkpoint_of_size(session, second)
    size = _size_unlocked(session)
    if second > size:
        raise ProofUnavailableError(f"the log has {size} entries, not {second}")
    if not 0 < first <= second:
        raise ProofUnavailableError(
            f"no consistency proof from {first} to {second} entries (0 < first ≤ second)"
        )
    reader = TreeReader(session)
    first_checkpoint = checkpoint_of_size(session, first)
    try:
        first_root = reader.root(first)
    except ProofUnavailableError:
        if first_checkpoint is None:
            raise
        first_root = first_checkpoint.root_hash  # an archived size: its checkpoint still names the root
    return ConsistencyProof(
        first=first,
        second=second,
        first_root=first_root,
        second_root=reader.root(second),
        path=consistency_proof(first, second, reader.subtree),
        first_checkpoint=first_checkpoint,
        second_checkpoint=second_checkpoint,
    )
