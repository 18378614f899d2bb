"""The Merkle tree against a literal reading of RFC 6962 §2.1 (with SM3): roots, stored subtrees, inclusion,
consistency and range proofs — including every proof failing for the wrong leaf, root or size."""

from __future__ import annotations

import hashlib
import random

import pytest

from certstore.audit.merkle import (
    EMPTY_ROOT,
    Frontier,
    ProofError,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    node_hash,
    range_proof,
    root_from_range_proof,
    root_of_leaves,
    split_point,
    verify_consistency,
    verify_inclusion,
)

LEAVES = [leaf_hash(hashlib.new("sm3", str(i).encode()).digest()) for i in range(300)]


def mth(leaves: list[bytes]) -> bytes:
    """MTH of RFC 6962 §2.1, recursively, as written."""
    if not leaves:
        return EMPTY_ROOT
    if len(leaves) == 1:
        return leaves[0]
    k = split_point(len(leaves))
    return node_hash(mth(leaves[:k]), mth(leaves[k:]))


def subtree(lo: int, hi: int) -> bytes:
    return mth(LEAVES[lo:hi])


def test_hashes_are_domain_separated_sm3() -> None:
    digest = bytes(range(32))
    assert leaf_hash(digest) == hashlib.new("sm3", b"\x00" + digest).digest()
    assert node_hash(digest, digest) == hashlib.new("sm3", b"\x01" + digest + digest).digest()
    assert hashlib.new("sm3", b"").digest() == EMPTY_ROOT


def test_frontier_root_and_completed_subtrees_match_the_definition() -> None:
    nodes: dict[tuple[int, int], bytes] = {}
    frontier = Frontier(on_node=lambda level, position, digest: nodes.__setitem__((level, position), digest))
    for size in range(1, len(LEAVES) + 1):
        frontier.append(LEAVES[size - 1])
        assert frontier.root() == mth(LEAVES[:size])
    assert root_of_leaves(LEAVES) == mth(LEAVES)
    assert len(nodes) == len(LEAVES) - bin(len(LEAVES)).count("1")
    for (level, position), digest in nodes.items():
        assert digest == mth(LEAVES[position << level : (position + 1) << level])
    restored = Frontier.from_hex(frontier.size, frontier.to_hex())
    assert restored.root() == frontier.root()
    with pytest.raises(ValueError, match="subtrees"):
        Frontier(5, [EMPTY_ROOT])


@pytest.mark.parametrize("size", [1, 2, 3, 7, 8, 13, 64, 255, 256, 300])
def test_inclusion_proofs(size: int) -> None:
    root = mth(LEAVES[:size])
    for index in range(size):
        proof = inclusion_proof(index, size, subtree)
        assert verify_inclusion(index, size, LEAVES[index], proof, root)
        assert not verify_inclusion(index, size, LEAVES[index], proof, LEAVES[0] if size > 1 else EMPTY_ROOT)
        if size > 1:
            assert not verify_inclusion(index, size, LEAVES[(index + 1) % size], proof, root)
            assert not verify_inclusion((index + 1) % size, size, LEAVES[index], proof, root)
    with pytest.raises(ProofError):
        inclusion_proof(size, size, subtree)


@pytest.mark.parametrize("second", [1, 2, 5, 8, 9, 100, 300])
def test_consistency_proofs(second: int) -> None:
    for first in range(1, second + 1):
        proof = consistency_proof(first, second, subtree)
        assert verify_consistency(first, second, mth(LEAVES[:first]), mth(LEAVES[:second]), proof)
        if first < second:
            assert not verify_consistency(
                first, second, mth(LEAVES[1 : first + 1]), mth(LEAVES[:second]), proof
            )
            assert not verify_consistency(
                first, second, mth(LEAVES[:first]), mth(LEAVES[1 : second + 1]), proof
            )
    assert not verify_consistency(0, second, EMPTY_ROOT, mth(LEAVES[:second]), [])


def test_range_proofs_for_sets_and_runs_of_leaves() -> None:
    rng = random.Random(7)
    for size in (1, 2, 31, 256, 300):
        for _ in range(30):
            indices = sorted(rng.sample(range(size), rng.randint(0, size)))
            proof = range_proof(indices, size, subtree)
            assert root_from_range_proof(size, {i: LEAVES[i] for i in indices}, proof) == mth(LEAVES[:size])
    run = list(range(40, 250))
    proof = range_proof(run, 300, subtree)
    assert len(proof) <= 2 * 9  # a contiguous run needs O(log n) hashes
    leaves = {i: LEAVES[i] for i in run}
    assert root_from_range_proof(300, leaves, proof) == mth(LEAVES)
    leaves[100] = LEAVES[101]
    assert root_from_range_proof(300, leaves, proof) != mth(LEAVES)
    with pytest.raises(ProofError):
        root_from_range_proof(300, {i: LEAVES[i] for i in run}, proof[:-1])
    with pytest.raises(ProofError):
        root_from_range_proof(300, {i: LEAVES[i] for i in run}, [*proof, EMPTY_ROOT])
