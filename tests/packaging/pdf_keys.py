"""Test PKI for the PDF rendition: a root CA issuing the repository's signing certificate, and an unrelated
root (a wrong trust anchor)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from certstore.crypto.sm2 import SM2PrivateKey, SoftwareSigner
from certstore.crypto.x509 import Certificate, CertificateProfile, issue_certificate

#: The signing time of every test PDF (in the past, so "signing time in the future" never triggers).
NOW = datetime(2026, 6, 1, 10, 0, tzinfo=UTC)


@dataclass(frozen=True)
class PdfKeys:
    root: Certificate
    root_signer: SoftwareSigner
    signer: SoftwareSigner
    certificate: Certificate
    other_root: Certificate


def _root(name: str) -> tuple[Certificate, SoftwareSigner]:
    key = SM2PrivateKey.generate()
    signer = SoftwareSigner(key)
    cert = issue_certificate(
        {"common_name": name, "organization_name": "郑州市测试证书中心", "country_name": "CN"},
        key.public_key,
        issuer=None,
        issuer_signer=signer,
        profile=CertificateProfile.ROOT_CA,
        not_before=NOW - timedelta(days=365),
        not_after=NOW + timedelta(days=3650),
    )
    return cert, signer


def make_pdf_keys() -> PdfKeys:
    """Root CA → signer (签章者: 郑州市电子证照库), valid NOW-30d … NOW+365d; plus another root."""
    root, root_signer = _root("郑州市测试根CA")
    other_root, _ = _root("其他测试根CA")
    key = SM2PrivateKey.generate()
    certificate = issue_certificate(
        {
            "common_name": "郑州市电子证照库签章",
            "organization_name": "郑州市大数据管理局",
            "country_name": "CN",
        },
        key.public_key,
        issuer=root,
        issuer_signer=root_signer,
        profile=CertificateProfile.SIGNER,
        not_before=NOW - timedelta(days=30),
        not_after=NOW + timedelta(days=365),
    )
    return PdfKeys(
        root=root,
        root_signer=root_signer,
        signer=SoftwareSigner(key),
        certificate=certificate,
        other_root=other_root,
    )
