"""Cross-checks with the OpenSSL 3 command line: the bytes we sign are the bytes an independent SM2
implementation verifies (default identity 1234567812345678), for our structures and for third-party ones."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from certstore.seal import parse_seal, parse_seal_signature
from tests.openssl import verifies as openssl_verifies
from tests.seal.seal_builders import FIXTURES, Hierarchy

pytestmark = pytest.mark.openssl


def test_our_seal_signature_value(tmp_path: Path, seal_der: bytes) -> None:
    seal = parse_seal(seal_der)
    assert openssl_verifies(tmp_path, seal.maker_certificate, seal.signed_bytes, seal.signature_value)


def test_our_signed_tbs_sign(tmp_path: Path, pki: Hierarchy, signature_der: bytes) -> None:
    sig = parse_seal_signature(signature_der)
    assert sig.signer_certificate == pki.signer.certificate
    assert openssl_verifies(tmp_path, sig.signer_certificate, sig.signed_bytes, sig.signature_value)


def test_openssl_rejects_an_altered_tbs_sign(tmp_path: Path, signature_der: bytes) -> None:
    sig = parse_seal_signature(signature_der)
    altered = sig.signed_bytes[:-1] + bytes([sig.signed_bytes[-1] ^ 1])
    assert not openssl_verifies(tmp_path, sig.signer_certificate, altered, sig.signature_value)


@pytest.mark.parametrize("name", ["ofdrw-gm__UserV4.esl", "ofdrw-gm__UserV1.esl"])
def test_third_party_seal_slices(tmp_path: Path, name: str) -> None:
    seal = parse_seal((FIXTURES / "esl" / name).read_bytes())
    assert openssl_verifies(tmp_path, seal.maker_certificate, seal.signed_bytes, seal.signature_value)


def test_third_party_tbs_sign_slice(tmp_path: Path) -> None:
    with zipfile.ZipFile(FIXTURES / "ofd" / "ofdrw-sign__v4signed.ofd") as package:
        sig = parse_seal_signature(package.read("Doc_0/Signs/Sign_0/SignedValue.dat"))
    assert openssl_verifies(tmp_path, sig.signer_certificate, sig.signed_bytes, sig.signature_value)
