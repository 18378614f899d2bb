"""Test PKI for the PDF rendition: a root CA issuing the repository's signing certificate, and an unrelated
root (a wrong trust anchor)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from certstore.crypto.sm2 import SoftwareSigner
from certstore.crypto.x509 import Certificate, CertificateProfile
from tests.pki import Party, make_party

#: The signing time of every test PDF (in the past, so "signing time in the future" never triggers).
NOW = datetime(2026, 6, 1, 10, 0, tzinfo=UTC)


@dataclass(frozen=True)
class PdfKeys:
    root: Certificate
    root_signer: SoftwareSigner
    signer: SoftwareSigner
    certificate: Certificate
    other_root: Certificate


def _root(name: str) -> Party:
    return make_party(name, CertificateProfile.ROOT_CA, None, NOW - timedelta(days=365), NOW + timedelta(days=3650),
                      organization="郑州市测试证书中心")  # fmt: skip


def make_pdf_keys() -> PdfKeys:
    """Root CA → signer (签章者: 郑州市电子证照库), valid NOW-30d … NOW+365d; plus another root."""
    root = _root("郑州市测试根CA")
    other_root = _root("其他测试根CA")
    signer = make_party("郑州市电子证照库签章", CertificateProfile.SIGNER, root, NOW - timedelta(days=30),
                        NOW + timedelta(days=365), organization="郑州市大数据管理局")  # fmt: skip
    return PdfKeys(
        root=root.certificate,
        root_signer=root.signer,
        signer=signer.signer,
        certificate=signer.certificate,
        other_root=other_root.certificate,
    )
