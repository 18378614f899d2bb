"""The DER walker for time-stamp tokens (:mod:`certstore.tsa.der`) agrees with the full asn1crypto reader: the
same :class:`TokenInfo` for this TSA's tokens (with and without nonce and certificates, SM3 and SHA-256
imprints) and another TSA's, the same result for one the walker leaves to the full reader, and the same result or
the same refusal for hundreds of mutations of them (the walker hands every input it does not accept to the full
reader, which names the error)."""

from __future__ import annotations

import hashlib
import random

import pytest

from certstore.crypto import oids
from certstore.crypto.sm3 import sm3
from certstore.tsa import tokens
from certstore.tsa.der import walk_token
from certstore.tsa.tokens import TokenError, TokenInfo, read_token
from tests.seal.seal_builders import make_hierarchy, make_timestamp_token
from tests.support.der_mutations import mutations
from tests.tsa.conftest import NOW, Pki


def _outcome(read: object, data: bytes) -> tuple[str, TokenInfo | str]:
    try:
        return "read", read(data)  # type: ignore[operator]
    except TokenError as exc:
        return "refused", str(exc)


@pytest.fixture(scope="module")
def vectors(pki: Pki) -> dict[str, bytes]:
    authority = pki.authority()
    foreign = make_hierarchy()
    return {
        "sm3+nonce": authority.issue(oids.SM3, sm3(b"a"), nonce=2**63 + 5),
        "sm3": authority.issue(oids.SM3, sm3(b"b")),
        "sha256, no certificates": authority.issue(
            oids.SHA256, hashlib.sha256(b"c").digest(), nonce=7, cert_req=False
        ),
        "asn1crypto-built": make_timestamp_token(foreign.tsa, b"d", NOW),
        "fractional seconds": make_timestamp_token(foreign.tsa, b"e", NOW.replace(microsecond=250_000)),
    }


def test_the_walker_reads_this_tsas_tokens_as_the_full_reader_does(vectors: dict[str, bytes]) -> None:
    for name in ("sm3+nonce", "sm3", "sha256, no certificates"):
        assert walk_token(vectors[name]) is not None, name
        fast = read_token(vectors[name])
        full = tokens._read_token_full(vectors[name])
        assert fast == full, name
        assert fast.signature_verifies() == full.signature_verifies()
    assert read_token(vectors["sm3+nonce"]).nonce == 2**63 + 5
    assert read_token(vectors["sm3"]).tsa_certificate is not None
    assert read_token(vectors["sm3"]).signature_verifies()
    assert read_token(vectors["sha256, no certificates"]).certificates == ()


def test_every_vector_reads_the_same(vectors: dict[str, bytes]) -> None:
    """Another TSA's token (built by asn1crypto) takes the fast path too; one whose genTime has a fraction of a
    second is left to the full reader — and reads the same."""
    for name, data in vectors.items():
        assert _outcome(read_token, data) == _outcome(tokens._read_token_full, data), name
    assert walk_token(vectors["asn1crypto-built"]) is not None
    assert walk_token(vectors["fractional seconds"]) is None
    assert read_token(vectors["fractional seconds"]).gen_time == NOW.replace(microsecond=250_000)


def test_mutations_read_the_same_or_are_refused_the_same(vectors: dict[str, bytes]) -> None:
    """Tag, length and field bytes changed, inserted, deleted; truncation; trailing bytes: ``read_token`` gives
    what the full reader gives — the same values, the same signature verdict — or the same refusal."""
    rng = random.Random(3161)
    compared = walked = 0
    for name, data in vectors.items():
        count = 400 if name.startswith(("sm3", "sha")) else 150
        for mutated in mutations(data, rng, count, max_depth=6):
            expected = _outcome(tokens._read_token_full, mutated)
            got = _outcome(read_token, mutated)
            assert got == expected, (name, mutated.hex())
            if got[0] == "read":
                assert isinstance(got[1], TokenInfo) and isinstance(expected[1], TokenInfo)
                assert got[1].signature_problem() == expected[1].signature_problem(), (name, mutated.hex())
            compared += 1
            walked += walk_token(mutated) is not None
    assert compared >= 1500 and walked >= 100  # the walker read (and the test compared) many of them
