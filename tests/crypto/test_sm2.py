"""SM3 digests, the SM2 Z_A / e computation, SM2 signatures and their encodings, private scalars.

Checked against published vectors (GB/T 32905, GB/T 32918.5 / GM/T 0003.5), OpenSSL 3's command line, GmSSL's
own key generation and the independent pure-Python ``gmssl`` SM3 — never against certstore's own output alone.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from certstore.crypto.encoding import dump_public_key, load_public_key
from certstore.crypto.sm2 import (
    DEFAULT_SM2_ID,
    SM2_CURVE,
    InvalidKeyError,
    InvalidSignatureEncodingError,
    Signer,
    SM2PrivateKey,
    SM2PublicKey,
    SoftwareSigner,
    compute_z,
    decode_signature,
    encode_signature,
    signature_form,
    sm3,
)

if TYPE_CHECKING:
    from tests.openssl import OpenSSL

VECTORS = Path(__file__).parent / "vectors"


def load_vectors(name: str) -> Any:
    return json.loads((VECTORS / name).read_text(encoding="utf-8"))


# Minimal DER writer (X.690 §8.3, §10.1), independent of asn1crypto, for signatures and keys built by hand.
def der_tlv(tag: int, body: bytes) -> bytes:
    if len(body) < 0x80:
        return bytes([tag, len(body)]) + body
    size = len(body).to_bytes((len(body).bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(size)]) + size + body


def der_integer(value: int) -> bytes:
    size = value.bit_length() // 8 + 1 if value >= 0 else (value + 1).bit_length() // 8 + 1
    return der_tlv(0x02, value.to_bytes(size, "big", signed=True))


def sec1_der(scalar: bytes) -> bytes:
    """RFC 5915 ECPrivateKey on the SM2 curve without the optional public key."""
    curve = der_tlv(0x06, bytes.fromhex("2a811ccf5501822d"))  # 1.2.156.10197.1.301
    return der_tlv(0x30, der_integer(1) + der_tlv(0x04, scalar) + der_tlv(0xA0, curve))


def canonical_der(r: int, s: int) -> bytes:
    return der_tlv(0x30, der_integer(r) + der_integer(s))


def raw(r: int, s: int) -> bytes:
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


N = SM2_CURVE.n
G = SM2_CURVE.gx.to_bytes(32, "big") + SM2_CURVE.gy.to_bytes(32, "big")
EXAMPLE: dict[str, Any] = load_vectors("sm2_signature_example.json")
EXAMPLE_POINT = bytes.fromhex(EXAMPLE["public_x_hex"] + EXAMPLE["public_y_hex"])
EXAMPLE_MESSAGE = EXAMPLE["message"].encode()
EXAMPLE_R, EXAMPLE_S = int(EXAMPLE["r_hex"], 16), int(EXAMPLE["s_hex"], 16)
OTHER_ID = b"ALICE123@YAHOO.COM"
LONG_BINARY_ID = bytes(range(256)) + b"\x00" * 44  # 300 bytes: ENTL = 0x0960, both ENTL bytes non-zero
SIGNER_IDS = [
    pytest.param(DEFAULT_SM2_ID, id="default-id"),
    pytest.param(OTHER_ID, id="alice-id"),
    pytest.param(LONG_BINARY_ID, id="300-byte-binary-id"),
]


# --- SM3 ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("vector", load_vectors("sm3.json")["vectors"], ids=lambda v: v["name"][:3])
def test_sm3_standard_vectors(vector: dict[str, str]) -> None:
    assert sm3(bytes.fromhex(vector["message_hex"])).hex() == vector["digest_hex"]


def test_sm3_agrees_with_independent_pure_python_sm3() -> None:
    gmssl_sm3 = pytest.importorskip("gmssl.sm3")
    rng = random.Random(32905)
    # Padding boundaries: 55/56 bytes (length field fits or not), 64 (one block), multi-block.
    for length in (0, 1, 55, 56, 63, 64, 65, 119, 120, 128, 1000):
        data = rng.randbytes(length)
        assert sm3(data).hex() == gmssl_sm3.sm3_hash(list(data)), length


# --- Z_A and e (GB/T 32918.2 §5.5, standard example) -----------------------------------------------------


def test_compute_z_matches_the_standard_example() -> None:
    assert compute_z(EXAMPLE_POINT, EXAMPLE["id"].encode()).hex() == EXAMPLE["z_hex"]
    assert compute_z(EXAMPLE_POINT).hex() == EXAMPLE["z_hex"]  # the example uses the default ID
    assert SM2PublicKey(EXAMPLE_POINT).z().hex() == EXAMPLE["z_hex"]


def test_digest_matches_the_standard_example() -> None:
    assert SM2PublicKey(EXAMPLE_POINT).digest(EXAMPLE_MESSAGE).hex() == EXAMPLE["e_hex"]


def test_z_depends_on_the_id_and_refuses_ids_too_long_for_entl() -> None:
    assert compute_z(EXAMPLE_POINT, OTHER_ID) != compute_z(EXAMPLE_POINT)
    compute_z(EXAMPLE_POINT, b"x" * 8191)  # ENTL is 16 bits of *bit* length: 8191 bytes is the maximum
    with pytest.raises(ValueError):
        compute_z(EXAMPLE_POINT, b"x" * 8192)


def test_standard_example_key_and_signature() -> None:
    key = SM2PrivateKey.from_scalar(bytes.fromhex(EXAMPLE["private_key_hex"]))
    assert key.public_key.point == EXAMPLE_POINT
    # r = (e + x1) mod n with (x1, y1) = [k]G; s = (1 + d)^-1 (k - r d) mod n (GB/T 32918.2 §6.1).
    d, k, e = int(EXAMPLE["private_key_hex"], 16), int(EXAMPLE["k_hex"], 16), int(EXAMPLE["e_hex"], 16)
    x1 = int.from_bytes(SM2PrivateKey.from_scalar(k).public_key.point[:32], "big")
    assert (e + x1) % N == EXAMPLE_R
    assert pow(1 + d, -1, N) * (k - EXAMPLE_R * d) % N == EXAMPLE_S

    public = SM2PublicKey(EXAMPLE_POINT)
    assert public.verify(EXAMPLE_MESSAGE, canonical_der(EXAMPLE_R, EXAMPLE_S))
    assert public.verify(EXAMPLE_MESSAGE, raw(EXAMPLE_R, EXAMPLE_S))
    assert public.verify_digest(bytes.fromhex(EXAMPLE["e_hex"]), canonical_der(EXAMPLE_R, EXAMPLE_S))
    assert not public.verify(EXAMPLE_MESSAGE + b".", canonical_der(EXAMPLE_R, EXAMPLE_S))
    assert not public.verify(EXAMPLE_MESSAGE, canonical_der(EXAMPLE_R, EXAMPLE_S), OTHER_ID)
    assert not public.verify(EXAMPLE_MESSAGE, canonical_der(EXAMPLE_R, (EXAMPLE_S + 1) % N))


@pytest.mark.openssl
def test_openssl_verifies_the_standard_example(openssl: OpenSSL) -> None:
    public_pem = openssl.write("pub.pem", dump_public_key(SM2PublicKey(EXAMPLE_POINT)))
    message = openssl.write("message", EXAMPLE_MESSAGE)
    signature = openssl.write("sig", canonical_der(EXAMPLE_R, EXAMPLE_S))
    assert openssl.verify(public_pem, message, signature, DEFAULT_SM2_ID)
    assert not openssl.verify(public_pem, message, signature, OTHER_ID)


# --- Signatures across implementations ------------------------------------------------------------------


@pytest.mark.openssl
@pytest.mark.parametrize("signer_id", SIGNER_IDS)
def test_our_signatures_verify_in_openssl(openssl: OpenSSL, signer_id: bytes) -> None:
    signer = SoftwareSigner(SM2PrivateKey.generate())
    assert isinstance(signer, Signer)
    message = os.urandom(1000)
    public_pem = openssl.write("pub.pem", dump_public_key(signer.public_key))
    message_path = openssl.write("message", message)
    signature = openssl.write("sig", signer.sign(message, signer_id))
    assert openssl.verify(public_pem, message_path, signature, signer_id)
    wrong_id = OTHER_ID if signer_id != OTHER_ID else DEFAULT_SM2_ID
    assert not openssl.verify(public_pem, message_path, signature, wrong_id)
    assert not openssl.verify(public_pem, openssl.write("other", message + b"!"), signature, signer_id)


@pytest.mark.openssl
@pytest.mark.parametrize("signer_id", SIGNER_IDS)
def test_openssl_signatures_verify_with_us(
    openssl: OpenSSL, openssl_keys: dict[str, Path], signer_id: bytes
) -> None:
    key_pem = openssl_keys["sm2"]
    public = load_public_key(openssl.run("pkey", "-in", key_pem, "-pubout").stdout)
    message = os.urandom(777)
    signature = openssl.sign(key_pem, openssl.write("message", message), signer_id)
    assert public.verify(message, signature, signer_id)
    r, s = decode_signature(signature)
    assert encode_signature(r, s) == signature  # OpenSSL writes DER exactly as we do
    wrong_id = OTHER_ID if signer_id != OTHER_ID else DEFAULT_SM2_ID
    assert not public.verify(message, signature, wrong_id)
    assert not public.verify(message[:-1], signature, signer_id)


def test_a_signature_made_with_one_id_fails_with_another() -> None:
    key = SM2PrivateKey.generate()
    message = b"certificate of business registration"
    for signer_id, other in [(DEFAULT_SM2_ID, OTHER_ID), (OTHER_ID, DEFAULT_SM2_ID), (b"", DEFAULT_SM2_ID)]:
        signature = key.sign(message, signer_id)
        assert key.public_key.verify(message, signature, signer_id)
        assert not key.public_key.verify(message, signature, other)


def test_signatures_use_fresh_nonces() -> None:
    key = SM2PrivateKey.generate()
    signatures = {key.sign(b"same message") for _ in range(20)}
    assert len(signatures) == 20
    assert len({decode_signature(s)[0] for s in signatures}) == 20


# --- DER and raw r ‖ s ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("r", "s"),
    [(1, 1), (0x7F, 0x80), (2**255, 2**255 - 1), (N - 1, N - 1), (EXAMPLE_R, EXAMPLE_S), (2**200, 1)],
    ids=["ones", "sign-bit-padding", "top-bit", "n-1", "standard", "short"],
)
def test_der_encoding_round_trip(r: int, s: int) -> None:
    der = encode_signature(r, s)
    assert der == canonical_der(r, s)
    assert decode_signature(der) == (r, s)
    assert decode_signature(raw(r, s)) == (r, s)


def test_raw_signature_is_accepted_by_verify() -> None:
    key = SM2PrivateKey.generate()
    message = b"raw r||s as some vendors store it"
    r, s = decode_signature(key.sign(message))
    assert key.public_key.verify(message, raw(r, s))
    assert not key.public_key.verify(message + b"x", raw(r, s))
    assert not key.public_key.verify(message, raw(r, (s + 1) % N))


def test_raw_signature_whose_r_starts_with_0x30_verifies() -> None:
    key = SM2PrivateKey.generate()
    message = b"r begins with 0x30"
    for _ in range(6000):  # P(no such r in 6000 signatures) = (255/256)^6000 < 1e-10
        r, s = decode_signature(key.sign(message))
        if raw(r, s)[0] == 0x30:
            break
    else:
        pytest.fail("no signature with r starting 0x30 found")
    assert key.public_key.verify(message, raw(r, s))
    assert signature_form(raw(r, s)) == "raw r‖s"
    assert signature_form(encode_signature(r, s)) == "DER"


OUT_OF_RANGE = [
    pytest.param(0, 1, id="r=0"),
    pytest.param(1, 0, id="s=0"),
    pytest.param(N, 1, id="r=n"),
    pytest.param(1, N, id="s=n"),
    pytest.param(1, N + 1, id="s=n+1"),
    pytest.param(2**256 - 1, 1, id="r=2^256-1"),
    pytest.param(1, 2**256 - 1, id="s=2^256-1"),
]


@pytest.mark.parametrize(("r", "s"), OUT_OF_RANGE)
def test_decode_refuses_r_s_outside_1_to_n_minus_1(r: int, s: int) -> None:
    with pytest.raises(InvalidSignatureEncodingError):
        decode_signature(canonical_der(r, s))
    if r.bit_length() <= 256 and s.bit_length() <= 256:
        with pytest.raises(InvalidSignatureEncodingError):
            decode_signature(raw(r, s))


def test_decode_refuses_negative_integers() -> None:
    with pytest.raises(InvalidSignatureEncodingError):
        decode_signature(canonical_der(-EXAMPLE_R, EXAMPLE_S))
    with pytest.raises(InvalidSignatureEncodingError):
        decode_signature(canonical_der(EXAMPLE_R, -1))


def test_high_s_is_valid_in_sm2() -> None:
    """SM2 has no low-S rule (unlike Bitcoin-style ECDSA): s in (n/2, n) is valid and must verify."""
    assert decode_signature(canonical_der(1, N - 1)) == (1, N - 1)
    key = SM2PrivateKey.generate()
    message = b"high s"
    signature = key.sign(message)
    while decode_signature(signature)[1] <= N // 2:
        signature = key.sign(message)
    assert key.public_key.verify(message, signature)


NON_CANONICAL = [
    pytest.param(lambda r, s: der_tlv(0x30, der_tlv(0x02, b"\x00" + der_integer(r)[2:]) + der_integer(s)),
                 id="r-with-extra-leading-zero"),
    pytest.param(lambda r, s: b"\x30\x81" + canonical_der(r, s)[1:], id="long-form-sequence-length"),
]  # fmt: skip


@pytest.mark.openssl
@pytest.mark.parametrize("mangle", NON_CANONICAL)
def test_non_canonical_der_is_refused_like_openssl(openssl: OpenSSL, mangle: Any) -> None:
    key = SM2PrivateKey.generate()
    message = b"malleability"
    r, s = decode_signature(key.sign(message))
    mangled = mangle(r, s)
    assert mangled != canonical_der(r, s)
    public_pem = openssl.write("pub.pem", dump_public_key(key.public_key))
    assert not openssl.verify(
        public_pem, openssl.write("m", message), openssl.write("sig", mangled), DEFAULT_SM2_ID
    )
    assert not key.public_key.verify(message, mangled)


def _garbage_signatures(valid: bytes) -> list[bytes]:
    rng = random.Random(0x5EA1)
    garbage = [b"", b"\x00", b"\x30", b"\x30\x00", b"\x30\x80\x00\x00", b"\x02\x01\x01", b"\x00" * 64]
    garbage += [b"\xff" * 64, b"\x30\x84\xff\xff\xff\xff" + valid[2:], valid + b"\x00", valid * 2]
    garbage += [
        der_tlv(0x30, der_integer(1)),
        der_tlv(0x30, der_integer(1) + der_integer(2) + der_integer(3)),
    ]
    garbage += [der_tlv(0x31, valid[2:]), rng.randbytes(10_000), b"\x30" + rng.randbytes(63)]
    garbage += [valid[:cut] for cut in range(len(valid))]
    for _ in range(100):
        flipped = bytearray(valid)
        flipped[rng.randrange(len(flipped))] ^= 1 << rng.randrange(8)
        garbage.append(bytes(flipped))
    return garbage


def test_truncated_flipped_and_garbage_signatures_return_false() -> None:
    key = SM2PrivateKey.generate()
    message = b"do not raise"
    valid = key.sign(message)
    for signature in _garbage_signatures(valid):
        assert key.public_key.verify(message, signature) is False, signature.hex()
        assert key.public_key.verify_digest(key.public_key.digest(message), signature) is False


def test_decode_signature_raises_only_its_own_error() -> None:
    for signature in _garbage_signatures(SM2PrivateKey.generate().sign(b"x")):
        with contextlib.suppress(InvalidSignatureEncodingError):  # anything else propagates and fails
            decode_signature(signature)


# --- Private scalars and public points ------------------------------------------------------------------


@pytest.mark.parametrize("scalar", [0, N - 1, N, N + 1, 2**256 - 1], ids=["0", "n-1", "n", "n+1", "2^256-1"])
def test_private_scalar_out_of_range_is_refused(scalar: int) -> None:
    with pytest.raises(InvalidKeyError):
        SM2PrivateKey.from_scalar(scalar)
    with pytest.raises(InvalidKeyError):
        SM2PrivateKey.from_scalar(scalar.to_bytes(32, "big"))


@pytest.mark.openssl
@pytest.mark.parametrize(
    "scalar", [1, 2, 3, N - 2, 0xFFFF, None], ids=["1", "2", "3", "n-2", "small", "random"]
)
def test_from_scalar_derives_the_public_key_openssl_derives(openssl: OpenSSL, scalar: int | None) -> None:
    d = scalar if scalar is not None else 1 + int.from_bytes(os.urandom(32), "big") % (N - 2)
    # A SEC1 key without its public key: OpenSSL computes [d]G itself when it reads it.
    path = openssl.write("d.der", sec1_der(d.to_bytes(32, "big")))
    expected = openssl.key_text(path, "-inform", "DER")
    assert expected.private == d
    assert SM2PrivateKey.from_scalar(d).public_key.uncompressed == expected.public
    if d == 1:
        assert expected.public == b"\x04" + G


def test_from_scalar_derives_the_public_key_gmssl_generated() -> None:
    for _ in range(8):
        generated = SM2PrivateKey.generate()  # GmSSL computes the public point
        assert 1 <= int.from_bytes(generated.scalar, "big") <= N - 2
        assert SM2PrivateKey.from_scalar(generated.scalar).public_key == generated.public_key
        assert SM2PrivateKey.from_scalar(generated.scalar, generated.public_key.uncompressed) == generated


def test_from_scalar_refuses_a_public_key_that_does_not_match() -> None:
    key, other = SM2PrivateKey.generate(), SM2PrivateKey.generate()
    with pytest.raises(InvalidKeyError, match="does not match"):
        SM2PrivateKey.from_scalar(key.scalar, other.public_key.point)


def test_public_point_validation() -> None:
    point = SM2PrivateKey.generate().public_key.point
    x, y = point[:32], int.from_bytes(point[32:], "big")
    off_curve = x + ((y + 1) % SM2_CURVE.p).to_bytes(32, "big")
    for bad in (off_curve, b"\x04" + off_curve, point[:63], b"\x05" + point, b"", b"\x00" * 64):
        with pytest.raises(InvalidKeyError):
            SM2PublicKey.from_bytes(bad)
    with pytest.raises(InvalidKeyError):
        SM2PublicKey(off_curve)
    # SEC1 compressed form: 02/03 by the parity of y.
    assert SM2PublicKey.from_bytes(bytes([2 + (y & 1)]) + x).point == point
    assert SM2PublicKey.from_bytes(b"\x04" + point).point == point
    with pytest.raises(InvalidKeyError):
        SM2PublicKey.from_bytes(bytes([3 - (y & 1)]) + x + b"\x00")


def test_private_key_repr_hides_the_scalar() -> None:
    key = SM2PrivateKey.generate()
    assert key.scalar.hex() not in repr(key)
    assert key.scalar.hex() not in repr(SoftwareSigner(key))
