"""Fixtures of the time-stamping tests: a small PKI under one root — a time-stamp authority (critical
id-kp-timeStamping), a seal maker, a seal user — dated around the fixed :data:`NOW`; an unsealed certificate file."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from certstore.catalogue import shipped_entry
from certstore.crypto.trust import TrustStore
from certstore.crypto.x509 import CertificateProfile
from certstore.packaging.face import lay_out_face
from certstore.packaging.layout import Box, FaceData
from certstore.packaging.ofd import build_ofd
from certstore.records import example_draft, prepare_version
from certstore.tsa import TimeStampAuthority
from tests.pki import Party, make_party

NOW = datetime(2026, 3, 2, 9, 30, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Pki:
    root: Party
    tsa: Party  # certificate of the TSA profile
    maker: Party
    signer: Party  # a seal user: its certificate has no timeStamping purpose
    trust: TrustStore

    def authority(self, at: datetime = NOW) -> TimeStampAuthority:
        """The TSA whose clock stands still at ``at``."""
        return TimeStampAuthority(
            self.tsa.signer, self.tsa.certificate, (self.root.certificate,), clock=lambda: at
        )


def _party(cn: str, profile: CertificateProfile, issuer: Party | None) -> Party:
    return make_party(
        cn, profile, issuer, NOW - timedelta(days=30), NOW + timedelta(days=3650), organization="时间戳测试"
    )


@pytest.fixture(scope="session")
def pki() -> Pki:
    root = _party("时间戳测试根 CA", CertificateProfile.ROOT_CA, None)
    return Pki(
        root=root,
        tsa=_party("测试时间戳服务", CertificateProfile.TSA, root),
        maker=_party("测试制章系统", CertificateProfile.SEAL_MAKER, root),
        signer=_party("郑州市测试局", CertificateProfile.SIGNER, root),
        trust=TrustStore([root.certificate]),
    )


@pytest.fixture(scope="session")
def unsigned() -> tuple[bytes, Box]:
    """An unsealed OFD certificate (建筑工程施工许可证) and the box its seal goes in."""
    entry = shipped_entry("11410100990000025A001")
    assert entry is not None
    key = b"tsa-test-holder-key".ljust(32, b"\0")
    prepared = prepare_version(entry, example_draft(entry), version=1, holder_key=key, serial_key=key)
    layout = lay_out_face(FaceData.from_prepared(prepared))
    assert layout.seal_box is not None
    return build_ofd(layout, metadata=prepared.metadata), layout.seal_box
