"""Prepared-key SM2 signing (``certstore.crypto.gmssl_sign``) and the hand-written DER path of ``sm2``.

The OpenSSL interoperability tests in ``test_sm2.py`` sign through :class:`SoftwareSigner`, so they exercise the
prepared path whenever it is available; these tests pin down what is specific to it: it is really used, it
yields fresh valid signatures, it falls back to the binding when it cannot be trusted, and the fast DER
encoder/decoder agree byte for byte with asn1crypto.
"""

from __future__ import annotations

import copy
import os
import pickle
import random

import pytest
from asn1crypto.algos import DSASignature

from certstore.crypto import gmssl_sign, sm2
from certstore.crypto.sm2 import (
    SM2_CURVE,
    InvalidSignatureEncodingError,
    SM2PrivateKey,
    SoftwareSigner,
    decode_signature,
    encode_signature,
)

N = SM2_CURVE.n
needs_prepared = pytest.mark.skipif(not gmssl_sign.available(), reason="gmssl-pyx ABI not known here")


@needs_prepared
def test_signing_uses_the_prepared_key_and_verifies() -> None:
    key = SM2PrivateKey.generate()
    message = os.urandom(300)
    signatures = {SoftwareSigner(key).sign(message) for _ in range(50)}
    assert key._prepared is not None
    assert len(signatures) == 50  # a fresh nonce every time
    assert all(key.public_key.verify(message, signature) for signature in signatures)
    assert not key.public_key.verify(message + b"x", next(iter(signatures)))


@needs_prepared
def test_prepared_and_binding_signatures_verify_alike() -> None:
    key = SM2PrivateKey.from_scalar(random.Random(7).randrange(1, N - 1))
    digest = key.public_key.digest(b"same digest")
    prepared = key.sign_digest(digest)
    import gmssl_pyx

    binding = gmssl_pyx.sm2_sign_sm3_digest(key.scalar, digest)
    assert key.public_key.verify_digest(digest, prepared)
    assert key.public_key.verify_digest(digest, binding)
    assert prepared != binding


def test_a_used_key_pickles_and_copies_without_its_prepared_buffer() -> None:
    key = SM2PrivateKey.generate()
    key.sign(b"prepare")
    for clone in (pickle.loads(pickle.dumps(SoftwareSigner(key))).private_key, copy.deepcopy(key)):
        assert clone == key and clone._prepared is None
        assert key.public_key.verify(b"again", clone.sign(b"again"))


@needs_prepared
def test_prepare_refuses_a_public_point_that_is_not_the_scalars() -> None:
    key, other = SM2PrivateKey.generate(), SM2PrivateKey.generate()
    assert gmssl_sign.prepare(key.scalar, other.public_key.point, lambda e, rs: True) is None


@needs_prepared
def test_prepare_refuses_when_the_self_test_signature_does_not_verify() -> None:
    key = SM2PrivateKey.generate()
    assert gmssl_sign.prepare(key.scalar, key.public_key.point, lambda e, rs: False) is None


def test_unknown_gmssl_pyx_version_falls_back_to_the_binding(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gmssl_sign, "KNOWN_VERSIONS", frozenset())
    gmssl_sign._gmssl.cache_clear()
    try:
        key = SM2PrivateKey.generate()
        signature = key.sign(b"through the binding")
        assert key._prepared is None
        assert key.public_key.verify(b"through the binding", signature)
    finally:
        monkeypatch.undo()
        gmssl_sign._gmssl.cache_clear()


def test_environment_switch_forces_the_binding(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CERTSTORE_SM2_SIGN", "binding")
    gmssl_sign._gmssl.cache_clear()
    try:
        assert not gmssl_sign.available()
        key = SM2PrivateKey.generate()
        assert key.public_key.verify(b"m", key.sign(b"m"))
        assert key._prepared is None
    finally:
        monkeypatch.delenv("CERTSTORE_SM2_SIGN")
        gmssl_sign._gmssl.cache_clear()


# --- DER -------------------------------------------------------------------------------------------------


def _asn1crypto_der(r: int, s: int) -> bytes:
    return DSASignature({"r": r, "s": s}).dump()


def test_fast_der_encoding_is_asn1cryptos_encoding() -> None:
    rng = random.Random(20261126)
    values = [1, 0x7F, 0x80, 0xFF, 0x100, N - 1, 2**255, 2**256 - 1, 2**495, 2**496 - 1]
    values += [rng.getrandbits(rng.randrange(1, 257)) or 1 for _ in range(2000)]
    for r, s in zip(values, reversed(values), strict=True):
        assert encode_signature(r, s) == _asn1crypto_der(r, s)
    assert encode_signature(2**496, 1) == _asn1crypto_der(2**496, 1)  # long form: asn1crypto path
    assert encode_signature(-5, 1) == _asn1crypto_der(-5, 1)


def test_fast_der_decoding_accepts_exactly_canonical_positive_pairs() -> None:
    rng = random.Random(5)
    for _ in range(2000):
        r, s = rng.randrange(1, N), rng.randrange(1, N)
        der = encode_signature(r, s)
        assert sm2._decode_canonical_der(der) == (r, s)
        mangled = bytearray(der)
        mangled[rng.randrange(len(der))] ^= 1 << rng.randrange(8)
        fast = sm2._decode_canonical_der(bytes(mangled))
        if fast is not None:  # still canonical DER of two positive integers: the same reading as asn1crypto
            parsed = DSASignature.load(bytes(mangled), strict=True)
            assert fast == (parsed["r"].native, parsed["s"].native)
            assert encode_signature(*fast) == bytes(mangled)


@pytest.mark.parametrize(
    "der",
    [
        bytes.fromhex("3006020100020101"),  # r = 0
        bytes.fromhex("300702020001020101"),  # r with a superfluous leading zero
        bytes.fromhex("3006020181020101"),  # r negative (sign bit set, no padding)
        bytes.fromhex("308106020101020101"),  # long-form SEQUENCE length
        bytes.fromhex("30060201010201"),  # truncated
    ],
    ids=["zero", "leading-zero", "negative", "long-form", "truncated"],
)
def test_fast_der_decoding_leaves_non_canonical_input_to_the_strict_parser(der: bytes) -> None:
    assert sm2._decode_canonical_der(der) is None
    with pytest.raises(InvalidSignatureEncodingError):
        decode_signature(der)
