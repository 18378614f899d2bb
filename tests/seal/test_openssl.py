"""Cross-checks with the OpenSSL 3 command line: the bytes we sign are the bytes an independent SM2
implementation verifies (default identity 1234567812345678), for our structures and for third-party ones."""

from __future__ import annotations

import subprocess
import zipfile
from pathlib import Path

import pytest

from certstore.crypto.x509 import Certificate
from certstore.seal import parse_seal, parse_seal_signature
from tests.seal.seal_builders import FIXTURES, Hierarchy

pytestmark = pytest.mark.openssl


def _openssl_verifies(tmp_path: Path, certificate: Certificate, message: bytes, signature: bytes) -> bool:
    cert_pem = tmp_path / "cert.pem"
    cert_pem.write_bytes(certificate.pem)
    pub = tmp_path / "pub.pem"
    subprocess.run(
        ["openssl", "x509", "-pubkey", "-noout", "-in", str(cert_pem), "-out", str(pub)],
        check=True,
        capture_output=True,
    )
    (tmp_path / "tbs.der").write_bytes(message)
    (tmp_path / "sig.der").write_bytes(signature)
    result = subprocess.run(
        [
            "openssl", "pkeyutl", "-verify", "-pubin", "-inkey", str(pub), "-rawin",
            "-in", str(tmp_path / "tbs.der"), "-sigfile", str(tmp_path / "sig.der"),
            "-digest", "sm3", "-pkeyopt", "distid:1234567812345678",
        ],
        capture_output=True,
        text=True,
    )  # fmt: skip
    return result.returncode == 0 and "Signature Verified Successfully" in result.stdout


def test_our_seal_signature_value(tmp_path: Path, seal_der: bytes) -> None:
    seal = parse_seal(seal_der)
    assert _openssl_verifies(tmp_path, seal.maker_certificate, seal.signed_bytes, seal.signature_value)


def test_our_signed_tbs_sign(tmp_path: Path, pki: Hierarchy, signature_der: bytes) -> None:
    sig = parse_seal_signature(signature_der)
    assert sig.signer_certificate == pki.signer.certificate
    assert _openssl_verifies(tmp_path, sig.signer_certificate, sig.signed_bytes, sig.signature_value)


def test_openssl_rejects_an_altered_tbs_sign(tmp_path: Path, signature_der: bytes) -> None:
    sig = parse_seal_signature(signature_der)
    altered = sig.signed_bytes[:-1] + bytes([sig.signed_bytes[-1] ^ 1])
    assert not _openssl_verifies(tmp_path, sig.signer_certificate, altered, sig.signature_value)


@pytest.mark.parametrize("name", ["ofdrw-gm__UserV4.esl", "ofdrw-gm__UserV1.esl"])
def test_third_party_seal_slices(tmp_path: Path, name: str) -> None:
    seal = parse_seal((FIXTURES / "esl" / name).read_bytes())
    assert _openssl_verifies(tmp_path, seal.maker_certificate, seal.signed_bytes, seal.signature_value)


def test_third_party_tbs_sign_slice(tmp_path: Path) -> None:
    with zipfile.ZipFile(FIXTURES / "ofd" / "ofdrw-sign__v4signed.ofd") as package:
        sig = parse_seal_signature(package.read("Doc_0/Signs/Sign_0/SignedValue.dat"))
    assert _openssl_verifies(tmp_path, sig.signer_certificate, sig.signed_bytes, sig.signature_value)
