"""Test PKI parties: an SM2 key with its certificate, issued by another party or self-signed.

The one place tests make throwaway certificates (seal, OFD, PDF and verifier suites); each suite composes
the hierarchy it needs from :func:`make_party`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from certstore.crypto.sm2 import SM2PrivateKey, SoftwareSigner
from certstore.crypto.x509 import Certificate, CertificateProfile, issue_certificate


@dataclass(frozen=True)
class Party:
    signer: SoftwareSigner
    certificate: Certificate


def make_party(
    cn: str,
    profile: CertificateProfile,
    issuer: Party | None,
    not_before: datetime,
    not_after: datetime,
    *,
    organization: str = "certstore 测试",
) -> Party:
    """A new key and its certificate; ``issuer=None`` makes a self-signed root."""
    signer = SoftwareSigner(SM2PrivateKey.generate())
    certificate = issue_certificate(
        {"country_name": "CN", "organization_name": organization, "common_name": cn},
        signer.public_key,
        issuer=None if issuer is None else issuer.certificate,
        issuer_signer=signer if issuer is None else issuer.signer,
        profile=profile,
        not_before=not_before,
        not_after=not_after,
    )
    return Party(signer, certificate)
