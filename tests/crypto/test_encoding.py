"""SM2 key files: PKCS#8, SEC1, SubjectPublicKeyInfo, encrypted PKCS#8 — read and written against OpenSSL 3.

What OpenSSL writes must load here with the same scalar and point (as ``openssl pkey -text`` prints them);
what we write must load in ``openssl pkey``. Anything else — other algorithms and curves, inconsistent keys,
damaged files — must fail with :class:`KeyEncodingError` (and only wrong or missing passwords with
:class:`WrongPasswordError`), never with another exception type.
"""

from __future__ import annotations

import base64
import random
import re
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import pytest

from certstore.crypto.encoding import (
    KeyEncodingError,
    WrongPasswordError,
    dump_private_key,
    dump_public_key,
    load_private_key,
    load_public_key,
)
from certstore.crypto.sm2 import SM2_CURVE, SM2PrivateKey, SM2PublicKey

if TYPE_CHECKING:
    from tests.openssl import OpenSSL

Encoding = Literal["pem", "der"]
Format = Literal["pkcs8", "sec1"]

N = SM2_CURVE.n
FAST_KDF = 1000  # PBKDF2 iterations for keys encrypted in tests (the default, 600,000, is deliberately slow)
P256_OID = "1.2.840.10045.3.1.7"
RSA_OID = "1.2.840.113549.1.1.1"
ED25519_OID = "1.3.101.112"
EC_PUBLIC_KEY_DER = bytes.fromhex("06072a8648ce3d0201")  # OID 1.2.840.10045.2.1
SM2_CURVE_DER = bytes.fromhex("06082a811ccf5501822d")  # OID 1.2.156.10197.1.301


# Minimal DER writer (X.690), independent of asn1crypto, for structures built by hand.
def der_tlv(tag: int, body: bytes) -> bytes:
    if len(body) < 0x80:
        return bytes([tag, len(body)]) + body
    size = len(body).to_bytes((len(body).bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(size)]) + size + body


def der_integer(value: int) -> bytes:
    return der_tlv(0x02, value.to_bytes(value.bit_length() // 8 + 1, "big"))


def sec1_der(private_octets: bytes, public_point: bytes | None = None) -> bytes:
    body = der_integer(1) + der_tlv(0x04, private_octets) + der_tlv(0xA0, SM2_CURVE_DER)
    if public_point is not None:
        body += der_tlv(0xA1, der_tlv(0x03, b"\x00" + public_point))
    return der_tlv(0x30, body)


def pkcs8_der(algorithm: bytes, ec_private_key: bytes) -> bytes:
    return der_tlv(0x30, der_integer(0) + der_tlv(0x30, algorithm) + der_tlv(0x04, ec_private_key))


def pem_armor(label: str, der: bytes) -> bytes:
    """RFC 7468 PEM, written here (not by the code under test)."""
    body = base64.encodebytes(der).replace(b"\n", b"")
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    return b"\n".join([f"-----BEGIN {label}-----".encode(), *lines, f"-----END {label}-----".encode(), b""])


def openssl_pkcs8_der(openssl: OpenSSL, path: Path) -> bytes:
    """PKCS#8 DER of a key file. (``openssl pkey/genpkey -outform DER`` write the SEC1 or PKCS#1 form.)"""
    der = openssl.run("pkcs8", "-topk8", "-nocrypt", "-in", path, "-outform", "DER").stdout
    header = 2 if der[1] < 0x80 else 2 + (der[1] & 0x7F)
    assert der[header : header + 3] == b"\x02\x01\x00", "not PKCS#8 (version 0)"
    return der


# --- Our keys in OpenSSL --------------------------------------------------------------------------------


@pytest.mark.openssl
@pytest.mark.parametrize("encoding", ["pem", "der"])
@pytest.mark.parametrize("key_format", ["pkcs8", "sec1"])
def test_our_private_keys_load_in_openssl(openssl: OpenSSL, key_format: Format, encoding: Encoding) -> None:
    key = SM2PrivateKey.generate()
    data = dump_private_key(key, encoding=encoding, format=key_format)
    if encoding == "pem":
        expected_label = "PRIVATE KEY" if key_format == "pkcs8" else "EC PRIVATE KEY"
        assert data.startswith(f"-----BEGIN {expected_label}-----".encode())
    path = openssl.write("key", data)
    shown = openssl.key_text(path, "-inform", encoding.upper())
    assert shown.private == int.from_bytes(key.scalar, "big")
    assert shown.public == key.public_key.uncompressed
    assert shown.curve == "SM2"
    assert load_private_key(data) == key


@pytest.mark.openssl
@pytest.mark.parametrize(
    "key_format",
    [
        "sec1",
        "pkcs8",
    ],
)
def test_private_key_octets_are_32_bytes_even_for_a_small_scalar(
    openssl: OpenSSL, key_format: Format
) -> None:
    key = SM2PrivateKey.from_scalar(0x3039)
    path = openssl.write("key.der", dump_private_key(key, encoding="der", format=key_format))
    parsed = openssl.run("asn1parse", "-inform", "DER", "-in", path).stdout.decode()
    if key_format == "pkcs8":  # descend into PrivateKeyInfo.privateKey (the OCTET STRING at depth 1)
        offset = re.search(r"^\s*(\d+):d=1\s+hl=\d+\s+l=\s*\d+\s+prim: OCTET STRING", parsed, re.M)
        assert offset, parsed
        parsed = openssl.run(
            "asn1parse", "-inform", "DER", "-in", path, "-strparse", offset.group(1)
        ).stdout.decode()
    # asn1parse prints octets as "[HEX DUMP]:…" or, when they happen to be printable, as text (0x3039 = "09").
    private = re.search(
        r"^\s*\d+:d=1\s+hl=\d+\s+l=\s*(\d+)\s+prim: OCTET STRING\s+(?:\[HEX DUMP\]:([0-9A-F]+)|:(.*))$",
        parsed,
        re.M,
    )
    assert private, parsed
    octets = bytes.fromhex(private.group(2)) if private.group(2) else private.group(3).encode("latin-1")
    assert int.from_bytes(octets, "big") == 0x3039
    assert int(private.group(1)) == len(octets) == 32, f"privateKey is {private.group(1)} bytes"


# --- OpenSSL's keys in ours -----------------------------------------------------------------------------


def _openssl_variants(openssl: OpenSSL, source: Path) -> dict[str, bytes]:
    """The same SM2 key in every unencrypted form OpenSSL 3.0 writes."""
    ecparam = openssl.run("ecparam", "-name", "SM2", "-genkey").stdout  # SM2 PARAMETERS block + PRIVATE KEY
    return {
        "genpkey-pkcs8-pem": source.read_bytes(),
        "pkcs8-der": openssl_pkcs8_der(openssl, source),
        "pkey-der": openssl.run("pkey", "-in", source, "-outform", "DER").stdout,  # SEC1 DER in OpenSSL 3.0
        "ec-sec1-pem": openssl.run("ec", "-in", source).stdout,  # -----BEGIN SM2 PRIVATE KEY-----
        "ec-sec1-der": openssl.run("ec", "-in", source, "-outform", "DER").stdout,
        "ecparam-genkey": ecparam,
    }


@pytest.mark.openssl
def test_openssl_private_keys_load(openssl: OpenSSL, openssl_keys: dict[str, Path]) -> None:
    variants = _openssl_variants(openssl, openssl_keys["sm2"])
    assert b"-----BEGIN SM2 PARAMETERS-----" in variants["ecparam-genkey"]
    assert variants["ec-sec1-pem"].startswith(b"-----BEGIN SM2 PRIVATE KEY-----")
    for name, data in variants.items():
        shown = openssl.key_text(
            openssl.write(name, data), "-inform", "DER" if name.endswith("der") else "PEM"
        )
        key = load_private_key(data)
        assert int.from_bytes(key.scalar, "big") == shown.private, name
        assert key.public_key.uncompressed == shown.public, name


@pytest.mark.openssl
@pytest.mark.parametrize(
    ("cipher", "outform"),
    [("aes-256-cbc", "PEM"), ("aes-256-cbc", "DER"), ("sm4-cbc", "PEM"), ("aes-128-cbc", "PEM")],
)
def test_openssl_encrypted_keys_load_with_the_right_password_only(
    openssl: OpenSSL, openssl_keys: dict[str, Path], cipher: str, outform: str
) -> None:
    source = openssl_keys["sm2"]
    expected = openssl.key_text(source)
    out = openssl.path("enc")
    openssl.run(
        "pkcs8",
        "-topk8",
        "-v2",
        cipher,
        "-in",
        source,
        "-passout",
        "pass:s3cret",
        "-outform",
        outform,
        "-out",
        out,
    )
    data = out.read_bytes()
    key = load_private_key(data, password=b"s3cret")
    assert int.from_bytes(key.scalar, "big") == expected.private
    assert key.public_key.uncompressed == expected.public
    with pytest.raises(WrongPasswordError):
        load_private_key(data, password=b"s3cret!")
    with pytest.raises(WrongPasswordError):
        load_private_key(data)


@pytest.mark.openssl
@pytest.mark.parametrize(
    ("options", "named"),
    [(["-v1", "PBE-SHA1-3DES"], "only PBES2"), (["-v2", "des3"], "tripledes")],
    ids=["pbes1", "pbes2-des3"],
)
def test_unsupported_encryption_schemes_are_refused_clearly(
    openssl: OpenSSL, openssl_keys: dict[str, Path], options: list[str], named: str
) -> None:
    out = openssl.path("enc.pem")
    openssl.run("pkcs8", "-topk8", *options, "-in", openssl_keys["sm2"], "-passout", "pass:pw", "-out", out)
    with pytest.raises(KeyEncodingError, match=named) as raised:
        load_private_key(out.read_bytes(), password=b"pw")
    assert not isinstance(raised.value, WrongPasswordError)


@pytest.mark.openssl
@pytest.mark.parametrize("encoding", ["pem", "der"])
def test_our_encrypted_keys_open_in_openssl(openssl: OpenSSL, encoding: Encoding) -> None:
    key = SM2PrivateKey.generate()
    data = dump_private_key(key, encoding=encoding, password=b"pass phrase", kdf_iterations=FAST_KDF)
    if encoding == "pem":
        assert data.startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    path = openssl.write("enc", data)
    shown = openssl.key_text(path, "-inform", encoding.upper(), "-passin", "pass:pass phrase")
    assert shown.private == int.from_bytes(key.scalar, "big")
    assert shown.public == key.public_key.uncompressed
    wrong = openssl.run(
        "pkey", "-in", path, "-inform", encoding.upper(), "-passin", "pass:other", "-noout", check=False
    )
    assert wrong.returncode != 0
    # The PBES2 parameters OpenSSL sees: PBKDF2 with HMAC-SHA256 and our iteration count, AES-256-CBC.
    structure = openssl.run("asn1parse", "-inform", encoding.upper(), "-in", path).stdout.decode()
    assert "PBES2" in structure and "PBKDF2" in structure and "hmacWithSHA256" in structure
    assert "aes-256-cbc" in structure
    assert re.search(rf"INTEGER\s+:{FAST_KDF:04X}\b", structure)


def test_our_encrypted_key_round_trip_and_password_errors() -> None:
    key = SM2PrivateKey.generate()
    for encoding in ("pem", "der"):
        data = dump_private_key(key, encoding=encoding, password=b"pw", kdf_iterations=FAST_KDF)
        assert load_private_key(data, password=b"pw") == key
        with pytest.raises(WrongPasswordError):
            load_private_key(data, password=b"pW")
        with pytest.raises(WrongPasswordError):
            load_private_key(data)
    with pytest.raises(ValueError):
        dump_private_key(key, format="sec1", password=b"pw")


def test_every_wrong_password_raises_wrong_password_error() -> None:
    data = dump_private_key(SM2PrivateKey.generate(), password=b"right", kdf_iterations=1)
    for attempt in range(5000):  # P(no padding-valid wrong password among 5,000) < 1e-12
        try:
            load_private_key(data, password=b"wrong-%d" % attempt)
        except WrongPasswordError:
            continue
        except KeyEncodingError as exc:
            raise AssertionError(f"wrong password #{attempt} raised {exc!r}") from exc
        raise AssertionError(f"wrong password #{attempt} was accepted")


# --- SubjectPublicKeyInfo -------------------------------------------------------------------------------


@pytest.mark.openssl
@pytest.mark.parametrize("encoding", ["pem", "der"])
def test_our_public_keys_load_in_openssl(openssl: OpenSSL, encoding: Encoding) -> None:
    key = SM2PrivateKey.generate().public_key
    data = dump_public_key(key, encoding=encoding)
    shown = openssl.key_text(openssl.write("pub", data), "-pubin", "-inform", encoding.upper())
    assert shown.public == key.uncompressed and shown.private is None and shown.curve == "SM2"
    assert load_public_key(data) == key


@pytest.mark.openssl
def test_openssl_public_keys_load(openssl: OpenSSL, openssl_keys: dict[str, Path]) -> None:
    source = openssl_keys["sm2"]
    expected = openssl.key_text(source).public
    pem = openssl.run("pkey", "-in", source, "-pubout").stdout
    der = openssl.run("pkey", "-in", source, "-pubout", "-outform", "DER").stdout
    compressed = openssl.run("ec", "-pubin", "-conv_form", "compressed", "-outform", "DER", stdin=pem).stdout
    assert len(compressed) < len(der)  # 33-byte point
    for data in (pem, der, compressed):
        assert load_public_key(data).uncompressed == expected
    assert load_private_key(source.read_bytes()).public_key == load_public_key(pem)


# --- Refusals -------------------------------------------------------------------------------------------


NON_SM2 = [
    pytest.param("p256", P256_OID, id="ec-p256"),
    pytest.param("rsa", RSA_OID, id="rsa"),
    pytest.param("ed25519", ED25519_OID, id="ed25519"),
]


@pytest.mark.openssl
@pytest.mark.parametrize(("name", "oid"), NON_SM2)
def test_non_sm2_private_keys_are_refused_naming_the_algorithm(
    openssl: OpenSSL, openssl_keys: dict[str, Path], name: str, oid: str
) -> None:
    with pytest.raises(KeyEncodingError, match=re.escape(oid)):
        load_private_key(openssl_keys[name].read_bytes())
    if name == "p256":  # SEC1 form, -----BEGIN EC PRIVATE KEY-----
        sec1 = openssl.run("ec", "-in", openssl_keys[name]).stdout
        assert sec1.startswith(b"-----BEGIN EC PRIVATE KEY-----")
        with pytest.raises(KeyEncodingError, match=re.escape(oid)):
            load_private_key(sec1)


@pytest.mark.openssl
@pytest.mark.parametrize(("name", "oid"), NON_SM2)
def test_non_sm2_private_keys_in_der_are_refused_naming_the_algorithm(
    openssl: OpenSSL, openssl_keys: dict[str, Path], name: str, oid: str
) -> None:
    der = openssl_pkcs8_der(openssl, openssl_keys[name])
    for password in (None, b"pw"):
        with pytest.raises(KeyEncodingError) as raised:
            load_private_key(der, password=password)
        assert not isinstance(raised.value, WrongPasswordError), raised.value
        assert oid in str(raised.value), raised.value


@pytest.mark.openssl
@pytest.mark.parametrize(("name", "oid"), NON_SM2)
def test_non_sm2_public_keys_are_refused_naming_the_algorithm(
    openssl: OpenSSL, openssl_keys: dict[str, Path], name: str, oid: str
) -> None:
    for outform in ("PEM", "DER"):
        data = openssl.run("pkey", "-in", openssl_keys[name], "-pubout", "-outform", outform).stdout
        with pytest.raises(KeyEncodingError, match=re.escape(oid)):
            load_public_key(data)


@pytest.mark.openssl
def test_private_and_public_labels_are_not_confused(openssl: OpenSSL, openssl_keys: dict[str, Path]) -> None:
    private_pem = openssl_keys["sm2"].read_bytes()
    public_pem = openssl.run("pkey", "-in", openssl_keys["sm2"], "-pubout").stdout
    with pytest.raises(KeyEncodingError, match="not a public key"):
        load_public_key(private_pem)
    with pytest.raises(KeyEncodingError, match="not a private key"):
        load_private_key(public_pem)


@pytest.mark.openssl
def test_a_pkcs8_whose_public_key_does_not_match_is_refused(
    openssl: OpenSSL, openssl_keys: dict[str, Path]
) -> None:
    ours, other = (openssl.key_text(openssl_keys[name]).public for name in ("sm2", "sm2_other"))
    pkcs8 = openssl_pkcs8_der(openssl, openssl_keys["sm2"])
    sec1 = openssl.run("ec", "-in", openssl_keys["sm2"], "-outform", "DER").stdout
    for label, der in (("PRIVATE KEY", pkcs8), ("SM2 PRIVATE KEY", sec1)):
        assert der.count(ours) == 1
        spliced = der.replace(ours, other)
        # OpenSSL itself refuses the spliced key (pairwise consistency check).
        path = openssl.write("spliced.der", spliced)
        assert (
            openssl.run("pkey", "-inform", "DER", "-in", path, "-check", "-noout", check=False).returncode
            != 0
        )
        with pytest.raises(KeyEncodingError, match="does not match"):
            load_private_key(pem_armor(label, spliced))
    # An off-curve embedded point is refused too.
    off_curve = ours[:-1] + bytes([ours[-1] ^ 1])
    with pytest.raises(KeyEncodingError, match="not on the curve"):
        load_private_key(pem_armor("PRIVATE KEY", pkcs8.replace(ours, off_curve)))


@pytest.mark.parametrize("scalar", [0, N - 1, N, 2**256 - 1], ids=["0", "n-1", "n", "2^256-1"])
def test_key_files_with_a_scalar_out_of_range_are_refused(scalar: int) -> None:
    with pytest.raises(KeyEncodingError):
        load_private_key(sec1_der(scalar.to_bytes(32, "big")))
    pkcs8 = pkcs8_der(
        EC_PUBLIC_KEY_DER + SM2_CURVE_DER,
        der_tlv(0x30, der_integer(1) + der_tlv(0x04, scalar.to_bytes(32, "big"))),
    )
    with pytest.raises(KeyEncodingError):
        load_private_key(pkcs8)


@pytest.mark.openssl
def test_a_private_key_longer_than_32_bytes_is_refused(openssl: OpenSSL) -> None:
    d = SM2PrivateKey.generate().scalar
    der = sec1_der(b"\x01" + d)  # the integer 2^256 + d: not a valid SM2 scalar
    check = openssl.run(
        "ec", "-inform", "DER", "-in", openssl.write("k.der", der), "-check", "-noout", check=False
    )
    assert check.returncode != 0 or b"invalid" in (check.stdout + check.stderr).lower()
    try:
        loaded = load_private_key(der)
    except KeyEncodingError:
        return
    truncated = loaded.scalar == d
    raise AssertionError(
        f"loaded a key instead of refusing it (scalar truncated to the last 32 bytes: {truncated})"
    )


def test_unknown_structures_and_labels_are_refused() -> None:
    key = SM2PrivateKey.generate()
    with pytest.raises(KeyEncodingError, match="no key"):
        load_private_key(b"-----BEGIN SM2 PARAMETERS-----\nBggqgRzPVQGCLQ==\n-----END SM2 PARAMETERS-----\n")
    certificate_label = dump_public_key(key.public_key).replace(b"PUBLIC KEY", b"CERTIFICATE")
    with pytest.raises(KeyEncodingError):
        load_public_key(certificate_label)
    with pytest.raises(KeyEncodingError):
        load_private_key(certificate_label)


@pytest.mark.parametrize("kind", ["private", "public"])
def test_an_unknown_algorithm_oid_is_a_key_encoding_error(kind: str) -> None:
    key = SM2PrivateKey.generate()
    unknown_oid = der_tlv(0x06, bytes.fromhex("2a0304"))  # 1.2.3.4
    if kind == "private":
        ec = der_tlv(0x30, der_integer(1) + der_tlv(0x04, key.scalar))
        with pytest.raises(KeyEncodingError):
            load_private_key(pkcs8_der(unknown_oid + SM2_CURVE_DER, ec))
    else:
        spki = der_tlv(
            0x30, der_tlv(0x30, unknown_oid) + der_tlv(0x03, b"\x00" + key.public_key.uncompressed)
        )
        with pytest.raises(KeyEncodingError):
            load_public_key(spki)


def test_sm2_curve_oid_as_key_algorithm_is_read() -> None:
    key = SM2PrivateKey.generate()
    ec = der_tlv(0x30, der_integer(1) + der_tlv(0x04, key.scalar))
    assert load_private_key(pkcs8_der(SM2_CURVE_DER, ec)) == key
    spki = der_tlv(0x30, der_tlv(0x30, SM2_CURVE_DER) + der_tlv(0x03, b"\x00" + key.public_key.uncompressed))
    assert load_public_key(spki) == key.public_key


# --- Damaged input --------------------------------------------------------------------------------------


def _mutations(data: bytes, rng: random.Random, count: int) -> list[bytes]:
    """Truncations, single-bit flips and random byte overwrites of ``data``."""
    out = []
    for i in range(count):
        mutated = bytearray(data)
        if i % 3 == 0:
            mutated = mutated[: rng.randrange(len(mutated))]
        elif i % 3 == 1:
            mutated[rng.randrange(len(mutated))] ^= 1 << rng.randrange(8)
        else:
            for _ in range(3):
                mutated[rng.randrange(len(mutated))] = rng.randrange(256)
        out.append(bytes(mutated))
    return out


def _fixed_key() -> SM2PrivateKey:
    return SM2PrivateKey.from_scalar(0x3945208F7B2144B13F36E38AC6D39F95889393692860B51A42FB81EF4DF7C5B8)


MUTATED_INPUTS = [
    pytest.param("private", "sec1", "der", id="sec1-der"),
    pytest.param("private", "sec1", "pem", id="sec1-pem"),
    pytest.param("private", "pkcs8", "der", id="pkcs8-der"),
    pytest.param("private", "pkcs8", "pem", id="pkcs8-pem"),
    pytest.param("private", "encrypted", "der", id="encrypted-der"),
    pytest.param("public", "spki", "der", id="spki-der"),
]


@pytest.mark.parametrize(("kind", "key_format", "encoding"), MUTATED_INPUTS)
def test_damaged_keys_raise_only_key_encoding_error(kind: str, key_format: str, encoding: Encoding) -> None:
    key = _fixed_key()
    if kind == "public":
        original = dump_public_key(key.public_key, encoding=encoding)
    elif key_format == "encrypted":
        original = dump_private_key(key, encoding=encoding, password=b"pw", kdf_iterations=1)
    else:
        original = dump_private_key(key, encoding=encoding, format=key_format)
    escaped: dict[str, int] = {}
    for damaged in _mutations(original, random.Random(f"{key_format}-{encoding}"), 300):
        try:
            if kind == "public":
                load_public_key(damaged)
            else:
                load_private_key(damaged, password=b"pw")
        except KeyEncodingError:
            continue
        except Exception as exc:  # collecting every escape is the point of the test
            name = f"{type(exc).__module__}.{type(exc).__qualname__}"
            escaped[name] = escaped.get(name, 0) + 1
    assert not escaped, f"exceptions other than KeyEncodingError: {escaped}"


@pytest.mark.parametrize(
    "data",
    [b"", b"garbage", b"\x30\x03\x02\x01\x00", bytes(range(256)), b"\x30\x82\xff\xff" + b"\x00" * 16],
    ids=["empty", "text", "empty-sequence", "bytes", "huge-length"],
)
def test_garbage_is_a_key_encoding_error(data: bytes) -> None:
    with pytest.raises(KeyEncodingError):
        load_private_key(data, password=b"pw")
    with pytest.raises(KeyEncodingError):
        load_public_key(data)


def test_garbage_without_a_password_is_not_a_password_error() -> None:
    with pytest.raises(KeyEncodingError) as raised:
        load_private_key(b"garbage")
    assert not isinstance(raised.value, WrongPasswordError), raised.value


@pytest.mark.parametrize(
    "pem",
    [
        b"-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqBHM9VAYItBG0wawIBAQQg\n",
        b"-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqBHM9VA\n-----END PRIVATE KEY-----\n",
    ],
    ids=["no-end-line", "bad-base64"],
)
def test_malformed_pem_is_a_key_encoding_error(pem: bytes) -> None:
    with pytest.raises(KeyEncodingError):
        load_private_key(pem)
    with pytest.raises(KeyEncodingError):
        load_public_key(pem.replace(b"PRIVATE", b"PUBLIC"))


def _encrypted_with(change: str) -> bytes:
    """Our encrypted PKCS#8 with one PBES2 field made invalid, re-encoded as valid DER by asn1crypto."""
    from asn1crypto import keys

    info = keys.EncryptedPrivateKeyInfo.load(
        dump_private_key(_fixed_key(), encoding="der", password=b"pw", kdf_iterations=1)
    )
    params = info["encryption_algorithm"]["parameters"]
    if change == "ciphertext-not-block-multiple":
        info["encrypted_data"] = info["encrypted_data"].native[:-3]
    elif change == "iv-8-bytes":
        params["encryption_scheme"]["parameters"] = b"\x00" * 8
    elif change == "zero-iterations":
        params["key_derivation_func"]["parameters"]["iteration_count"] = 0
    return info.dump(force=True)


@pytest.mark.parametrize("change", ["ciphertext-not-block-multiple", "iv-8-bytes", "zero-iterations"])
def test_invalid_pbes2_parameters_are_a_key_encoding_error(change: str) -> None:
    data = _encrypted_with(change)
    with pytest.raises(KeyEncodingError):
        load_private_key(data, password=b"pw")


def test_public_key_round_trip_through_spki_keeps_the_point() -> None:
    key = SM2PublicKey.from_bytes(_fixed_key().public_key.uncompressed)
    assert load_public_key(dump_public_key(key, encoding="der")) == key
