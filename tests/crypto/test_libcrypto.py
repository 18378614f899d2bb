"""The libcrypto verification path agrees with GmSSL's on every input, and GmSSL takes over without it."""

from __future__ import annotations

import os
import random
from collections.abc import Iterator

import gmssl_pyx
import pytest

from certstore.crypto import libcrypto
from certstore.crypto.sm2 import SM2_CURVE, SM2PrivateKey, decode_signature, encode_signature


def _gmssl(point: bytes, digest: bytes, der: bytes) -> bool:
    return bool(gmssl_pyx.sm2_verify_sm3_digest(point, digest, der))


def _cases() -> Iterator[tuple[str, bytes, bytes, bytes]]:
    rng = random.Random(20261126)
    for index in range(12):
        key = SM2PrivateKey.generate()
        point = key.public_key.point
        message = rng.randbytes(rng.randrange(0, 200))
        digest = key.public_key.digest(message)
        r, s = decode_signature(key.sign(message))
        yield f"valid-{index}", point, digest, encode_signature(r, s)
        flipped = bytearray(digest)
        flipped[rng.randrange(32)] ^= 1 << rng.randrange(8)
        yield f"digest-flip-{index}", point, bytes(flipped), encode_signature(r, s)
        yield f"r+1-{index}", point, digest, encode_signature(r % (SM2_CURVE.n - 1) + 1, s)
        yield f"s-1-{index}", point, digest, encode_signature(r, s - 1 if s > 1 else 2)
        other = SM2PrivateKey.generate().public_key.point
        yield f"other-key-{index}", other, digest, encode_signature(r, s)
        yield f"n-minus-s-{index}", point, digest, encode_signature(r, SM2_CURVE.n - s)


CASES = list(_cases())


@pytest.mark.skipif(not libcrypto.available(), reason="libcrypto with SM2 not loadable")
@pytest.mark.parametrize(("name", "point", "digest", "der"), CASES, ids=[case[0] for case in CASES])
def test_libcrypto_and_gmssl_reach_the_same_verdict(
    name: str, point: bytes, digest: bytes, der: bytes
) -> None:
    verdict = libcrypto.verify_digest(point, digest, der)
    assert verdict is not None
    assert verdict is _gmssl(point, digest, der)
    assert verdict is name.startswith("valid-")


@pytest.mark.skipif(not libcrypto.available(), reason="libcrypto with SM2 not loadable")
def test_failed_verifications_leave_no_error_on_the_openssl_queue() -> None:
    _name, point, digest, der = CASES[1]
    for _ in range(100):
        assert libcrypto.verify_digest(point, digest, der) is False
    lib = libcrypto._library()
    assert lib is not None
    lib.lib.ERR_peek_error.restype = __import__("ctypes").c_ulong
    assert lib.lib.ERR_peek_error() == 0


def test_forcing_gmssl_makes_libcrypto_step_aside(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CERTSTORE_SM2_VERIFY", "gmssl")
    libcrypto._library.cache_clear()
    libcrypto._public_key.cache_clear()
    try:
        assert not libcrypto.available()
        key = SM2PrivateKey.generate()
        message = os.urandom(64)
        signature = key.sign(message)
        assert (
            libcrypto.verify_digest(key.public_key.point, key.public_key.digest(message), signature) is None
        )
        assert key.public_key.verify(message, signature)  # GmSSL carries the verification
        assert not key.public_key.verify(message + b"x", signature)
    finally:
        monkeypatch.delenv("CERTSTORE_SM2_VERIFY")
        libcrypto._library.cache_clear()
        libcrypto._public_key.cache_clear()
