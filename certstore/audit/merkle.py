"""The Merkle tree of the audit log (默克尔树): RFC 6962 / RFC 9162 §2.1 with SM3 as the hash.

- leaf hash ``SM3(0x00 ‖ entry_hash)`` — a leaf commits to one entry's hash (the SM3 of its canonical encoding);
- interior node ``SM3(0x01 ‖ left ‖ right)``; the tree of ``n`` leaves splits at the largest power of two below
  ``n`` (so every aligned, complete subtree of 2^k leaves is a node of every larger tree);
- the empty tree's root is ``SM3(b"")``.

Pure functions and one small class:

- :class:`Frontier` — the compact form of a tree (the roots of its complete subtrees, largest first): append
  leaves in O(1) amortised, root in O(log n); it reports each completed subtree so callers can store them;
- :func:`inclusion_proof` / :func:`verify_inclusion` (RFC 9162 §2.1.3), :func:`consistency_proof` /
  :func:`verify_consistency` (§2.1.4), computed from any ``subtree(lo, hi) -> hash`` source;
- :func:`range_proof` / :func:`root_from_range_proof` — a proof for a *set* of leaves (an export): the hashes of
  the maximal subtrees that contain none of them, in left-to-right order. For a contiguous range that is
  O(log n) hashes; with the leaves themselves it recomputes the root.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence

from certstore.crypto.sm3 import new as new_sm3
from certstore.crypto.sm3 import sm3

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "Frontier",
    "ProofError",
    "SubtreeHash",
    "consistency_proof",
    "inclusion_proof",
    "leaf_hash",
    "node_hash",
    "range_proof",
    "root_from_range_proof",
    "root_of_leaves",
    "split_point",
    "verify_consistency",
    "verify_inclusion",
]

HASH_SIZE = 32
EMPTY_ROOT = sm3(b"")

#: ``subtree(lo, hi)``: the RFC 6962 hash of leaves ``[lo, hi)`` (``hi > lo``).
SubtreeHash = Callable[[int, int], bytes]


class ProofError(ValueError):
    """A proof is malformed (wrong length, sizes out of range) — as opposed to one that simply fails."""


# SM3 states with the domain-separation byte already absorbed: copying one (a C call) is about twice as fast as
# ``hashlib.new("sm3", …)``, which looks the algorithm up by name every time.
_LEAF_STATE = new_sm3(b"\x00")
_NODE_STATE = new_sm3(b"\x01")


def leaf_hash(entry_hash: bytes) -> bytes:
    """SM3(0x00 ‖ entry hash)."""
    state = _LEAF_STATE.copy()
    state.update(entry_hash)
    return state.digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """SM3(0x01 ‖ left ‖ right)."""
    state = _NODE_STATE.copy()
    state.update(left)
    state.update(right)
    return state.digest()


def split_point(size: int) -> int:
    """The largest power of two strictly below ``size`` (``size`` ≥ 2)."""
    return 1 << ((size - 1).bit_length() - 1)


def root_of_leaves(leaves: Sequence[bytes]) -> bytes:
    """The root of a tree over ``leaves`` (leaf hashes), RFC 6962 shape."""
    if not leaves:
        return EMPTY_ROOT
    frontier = Frontier()
    for leaf in leaves:
        frontier.append(leaf)
    return frontier.root()


class Frontier:
    """A Merkle tree in compact form: ``size`` and the roots of its complete subtrees (largest first).

    The subtrees are the binary decomposition of ``size``: for 13 = 8 + 4 + 1 they cover leaves [0, 8), [8, 12)
    and [12, 13). ``on_node(level, index, hash)`` is called for every complete subtree of 2^level leaves that an
    append completes (index = its position among the subtrees of that level).
    """

    __slots__ = ("_on_node", "hashes", "size")

    def __init__(
        self,
        size: int = 0,
        hashes: Iterable[bytes] = (),
        *,
        on_node: Callable[[int, int, bytes], None] | None = None,
    ) -> None:
        self.size = size
        self.hashes = list(hashes)
        if len(self.hashes) != bin(size).count("1"):
            raise ValueError(
                f"a tree of {size} leaves has {bin(size).count('1')} subtrees, not {len(self.hashes)}"
            )
        self._on_node = on_node

    def copy(self) -> Frontier:
        return Frontier(self.size, self.hashes)

    def levels(self) -> list[int]:
        """The level (log2 of the leaf count) of each subtree, largest first."""
        return [bit for bit in range(self.size.bit_length() - 1, -1, -1) if self.size >> bit & 1]

    def nodes(self) -> Iterator[tuple[int, int, bytes]]:
        """``(level, index, hash)`` of each subtree, largest first."""
        start = 0
        for level, digest in zip(self.levels(), self.hashes, strict=True):
            yield level, start >> level, digest
            start += 1 << level

    def append(self, leaf: bytes) -> None:
        """Add one leaf hash."""
        size = self.size
        digest = leaf
        level = 0
        hashes = self.hashes
        while size >> level & 1:  # the lowest subtree has as many leaves as the new one: merge
            digest = node_hash(hashes.pop(), digest)
            level += 1
            if self._on_node is not None:
                self._on_node(level, (size + 1 >> level) - 1, digest)
        hashes.append(digest)
        self.size = size + 1

    def root(self) -> bytes:
        """The root of the whole tree."""
        if not self.hashes:
            return EMPTY_ROOT
        digest = self.hashes[-1]
        for left in reversed(self.hashes[:-1]):
            digest = node_hash(left, digest)
        return digest

    def to_hex(self) -> list[str]:
        return [h.hex() for h in self.hashes]

    @classmethod
    def from_hex(cls, size: int, hashes: Iterable[str]) -> Frontier:
        return cls(size, [bytes.fromhex(h) for h in hashes])


# -- proofs ------------------------------------------------------------------------------------------------


def inclusion_proof(index: int, size: int, subtree: SubtreeHash) -> list[bytes]:
    """PATH(index, D[size]) of RFC 6962 §2.1.1: the audit path of leaf ``index`` in the tree of ``size``."""
    if not 0 <= index < size:
        raise ProofError(f"leaf {index} is not in a tree of {size} leaves")
    path: list[bytes] = []
    lo, hi = 0, size
    while hi - lo > 1:
        k = split_point(hi - lo)
        if index < lo + k:
            path.append(subtree(lo + k, hi))
            hi = lo + k
        else:
            path.append(subtree(lo, lo + k))
            lo += k
    path.reverse()
    return path


def verify_inclusion(index: int, size: int, leaf: bytes, proof: Sequence[bytes], root: bytes) -> bool:
    """RFC 9162 §2.1.3.2: does ``proof`` show leaf hash ``leaf`` at ``index`` in the tree with ``root``?"""
    if not 0 <= index < size:
        return False
    fn, sn = index, size - 1
    digest = leaf
    for sibling in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            digest = node_hash(sibling, digest)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            digest = node_hash(digest, sibling)
        fn >>= 1
        sn >>= 1
    return sn == 0 and digest == root


def consistency_proof(first: int, second: int, subtree: SubtreeHash) -> list[bytes]:
    """PROOF(first, D[second]) of RFC 6962 §2.1.2 (``0 < first ≤ second``)."""
    if not 0 < first <= second:
        raise ProofError(f"no consistency proof from {first} to {second} leaves (need 0 < first ≤ second)")
    proof: list[bytes] = []

    def sub(m: int, lo: int, hi: int, complete: bool) -> None:
        if m == hi - lo:
            if not complete:
                proof.append(subtree(lo, hi))
            return
        k = split_point(hi - lo)
        if m <= k:
            sub(m, lo, lo + k, complete)
            proof.append(subtree(lo + k, hi))
        else:
            sub(m - k, lo + k, hi, False)
            proof.append(subtree(lo, lo + k))

    sub(first, 0, second, True)
    return proof


def verify_consistency(
    first: int, second: int, first_root: bytes, second_root: bytes, proof: Sequence[bytes]
) -> bool:
    """RFC 9162 §2.1.4.2: does ``proof`` show the tree ``second_root`` (``second`` leaves) extends
    ``first_root``?"""
    if not 0 < first <= second:
        return False
    if first == second:
        return not proof and first_root == second_root
    nodes = list(proof)
    if first & (first - 1) == 0:  # a power of two: the old root is itself a node of the new tree
        nodes.insert(0, first_root)
    if not nodes:
        return False
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = nodes[0]
    for c in nodes[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return sn == 0 and fr == first_root and sr == second_root


def range_proof(indices: Sequence[int], size: int, subtree: SubtreeHash) -> list[bytes]:
    """The hashes a verifier needs, besides the leaves at ``indices`` (sorted, distinct), to compute the root
    of the tree of ``size``: the maximal subtrees holding none of them, left to right."""
    if any(not 0 <= i < size for i in indices[:1] + indices[-1:]):
        raise ProofError(f"leaves outside a tree of {size}")
    proof: list[bytes] = []
    stack = [(0, size)]
    while stack:
        lo, hi = stack.pop()
        first = bisect_left(indices, lo)
        if first == len(indices) or indices[first] >= hi:
            proof.append(subtree(lo, hi))
            continue
        if hi - lo == 1:
            continue
        k = split_point(hi - lo)
        stack.append((lo + k, hi))  # right after left: the stack pops left first
        stack.append((lo, lo + k))
    return proof


def root_from_range_proof(size: int, leaves: Mapping[int, bytes], proof: Sequence[bytes]) -> bytes:
    """The root of the tree of ``size`` from ``leaves`` (index → leaf hash) and a :func:`range_proof` for their
    indices; :class:`ProofError` if the proof has too few or too many hashes."""
    if size == 0:
        if leaves or proof:
            raise ProofError("an empty tree has no leaves and no proof")
        return EMPTY_ROOT
    indices = sorted(leaves)
    if indices and not (indices[0] >= 0 and indices[-1] < size):
        raise ProofError(f"leaves outside a tree of {size}")
    supply = iter(proof)

    def compute(lo: int, hi: int) -> bytes:
        first = bisect_left(indices, lo)
        if first == len(indices) or indices[first] >= hi:
            try:
                return next(supply)
            except StopIteration:
                raise ProofError("range proof too short") from None
        if hi - lo == 1:
            return leaves[lo]
        k = split_point(hi - lo)
        left = compute(lo, lo + k)
        return node_hash(left, compute(lo + k, hi))

    root = _iterative(size, indices, leaves, supply) if len(indices) > 64 else compute(0, size)
    if next(supply, None) is not None:
        raise ProofError("range proof too long")
    return root


def _iterative(
    size: int, indices: Sequence[int], leaves: Mapping[int, bytes], supply: Iterator[bytes]
) -> bytes:
    """:func:`root_from_range_proof`'s walk without recursion (large exports), same order of consumption."""
    # Post-order traversal with an explicit stack; results accumulate on ``values``.
    values: list[bytes] = []
    stack: list[tuple[int, int, bool]] = [(0, size, False)]
    while stack:
        lo, hi, expanded = stack.pop()
        if expanded:
            right = values.pop()
            left = values.pop()
            values.append(node_hash(left, right))
            continue
        first = bisect_left(indices, lo)
        if first == len(indices) or indices[first] >= hi:
            try:
                values.append(next(supply))
            except StopIteration:
                raise ProofError("range proof too short") from None
            continue
        if hi - lo == 1:
            values.append(leaves[lo])
            continue
        k = split_point(hi - lo)
        stack.append((lo, hi, True))
        stack.append((lo + k, hi, False))
        stack.append((lo, lo + k, False))
    return values[0]
