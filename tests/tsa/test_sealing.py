"""Sealing with trusted time: ``add_seal(timestamper=…)`` puts a token over the signature value into the
SES_Signature, and verification checks it — PASSED for our TSA, FAILED for a token over other bytes (the
signature then INVALID) or from a certificate without the timeStamping purpose."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest

from certstore.checks import CheckResult, Indication
from certstore.crypto.sm3 import sm3
from certstore.crypto.x509 import CertificateProfile
from certstore.packaging.layout import Box
from certstore.packaging.ofd import add_seal
from certstore.packaging.ofd.writer import read_package, write_package
from certstore.seal import asn1 as ses
from certstore.seal import attach_timestamp, make_seal, parse_seal_signature
from certstore.tsa import LocalTimeStamper, TimeStamper, read_token
from certstore.verify import verify_file
from tests.pki import make_party
from tests.seal.seal_builders import make_timestamp_token, tiny_picture
from tests.tsa.conftest import NOW, Pki

SIGNED_VALUE = "Doc_0/Signs/Sign_0/SignedValue.dat"


@pytest.fixture(scope="module")
def seal(pki: Pki) -> bytes:
    return make_seal(
        maker=pki.maker.signer,
        maker_certificate=pki.maker.certificate,
        es_id="41010000009901",
        name="郑州市测试局电子证照专用章",
        seal_type=1,
        signer_certificates=[pki.signer.certificate],
        picture=tiny_picture(),
        valid_start=NOW - timedelta(days=1),
        valid_end=NOW + timedelta(days=365),
        created=NOW - timedelta(days=1),
    )


def _sealed(pki: Pki, seal: bytes, unsigned: tuple[bytes, Box], timestamper: TimeStamper | None) -> bytes:
    package, box = unsigned
    return add_seal(
        package,
        seal=seal,
        signer=pki.signer.signer,
        signer_certificate=pki.signer.certificate,
        stamp_box=box,
        signing_time=NOW,
        timestamper=timestamper,
    )


def _timestamp(data: bytes, pki: Pki) -> tuple[Indication, CheckResult, str]:
    (signature,) = verify_file(data, trust=pki.trust).signatures
    check = signature.check("timestamp")
    return signature.indication, check.result, check.reason


def _restamped(sealed: bytes, token_for: Callable[[bytes], bytes]) -> bytes:
    """``sealed`` with the token of its SES_Signature replaced by ``token_for(signature value)``."""
    files = read_package(sealed)
    parsed = parse_seal_signature(files[SIGNED_VALUE])
    original = ses.SESSignature.load(parsed.der)
    unstamped = ses.SESSignature({f: original[f] for f in ("toSign", "cert", "signatureAlgID", "signature")})
    files[SIGNED_VALUE] = attach_timestamp(unstamped.dump(), token_for(parsed.signature_value))
    return write_package(files.items())


def test_a_seal_with_our_tsa_token_verifies_it(pki: Pki, seal: bytes, unsigned: tuple[bytes, Box]) -> None:
    stamper = LocalTimeStamper(
        pki.tsa.signer, pki.tsa.certificate, (pki.root.certificate,), lambda: NOW + timedelta(seconds=3)
    )
    sealed = _sealed(pki, seal, unsigned, stamper)
    parsed = parse_seal_signature(read_package(sealed)[SIGNED_VALUE])
    assert parsed.timestamp is not None and parsed.signing_time == NOW  # timeInfo stays the signer's clock
    token = read_token(parsed.timestamp)
    assert token.hashed_message == sm3(parsed.signature_value)
    _, result, reason = _timestamp(sealed, pki)
    assert result is CheckResult.PASSED, reason
    assert reason.startswith(f"timestamp genTime {(NOW + timedelta(seconds=3)).isoformat()}")

    unstamped = _sealed(pki, seal, unsigned, None)
    assert parse_seal_signature(read_package(unstamped)[SIGNED_VALUE]).timestamp is None
    assert _timestamp(unstamped, pki)[1:] == (CheckResult.SKIPPED, "no timestamp")


def test_a_token_over_other_bytes_makes_the_seal_invalid(
    pki: Pki, seal: bytes, unsigned: tuple[bytes, Box]
) -> None:
    stamper = LocalTimeStamper(pki.tsa.signer, pki.tsa.certificate, (pki.root.certificate,), lambda: NOW)
    sealed = _sealed(pki, seal, unsigned, stamper)
    other = _restamped(sealed, lambda value: stamper.stamp(value + b"!"))
    indication, result, reason = _timestamp(other, pki)
    assert (indication, result) == (Indication.INVALID, CheckResult.FAILED)
    assert "message imprint does not match the signature value" in reason


def test_a_token_from_a_certificate_without_time_stamping_fails(
    pki: Pki, seal: bytes, unsigned: tuple[bytes, Box]
) -> None:
    sealed = _sealed(pki, seal, unsigned, None)
    # a seal user's key (its certificate asserts the seal-signer purpose only) playing TSA
    forged = _restamped(
        sealed, lambda value: make_timestamp_token(pki.signer, value, NOW + timedelta(seconds=1))
    )
    indication, result, reason = _timestamp(forged, pki)
    assert (indication, result) == (Indication.INVALID, CheckResult.FAILED)
    assert "TSA certificate lacks the timeStamping extended key usage" in reason


def test_a_token_from_a_certificate_without_any_extended_key_usage_fails(
    pki: Pki, seal: bytes, unsigned: tuple[bytes, Box]
) -> None:
    # a CA certificate under the trusted root: no extendedKeyUsage extension at all
    no_purpose = make_party(
        "无用途证书", CertificateProfile.ROOT_CA, pki.root, NOW - timedelta(days=1), NOW + timedelta(days=30)
    )
    sealed = _sealed(pki, seal, unsigned, None)
    forged = _restamped(
        sealed, lambda value: make_timestamp_token(no_purpose, value, NOW + timedelta(seconds=1))
    )
    indication, result, reason = _timestamp(forged, pki)
    assert (indication, result) == (Indication.INVALID, CheckResult.FAILED), reason
