"""Session fixtures for the OFD tests: a small PKI (root CA → seal maker, issuing agency, repository), two
seals, the face layout of every shipped catalogue type, and packages sealed once and twice.

Everything is dated relative to the fixed :data:`NOW`, so no test depends on the wall clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import pytest

from certstore.catalogue import CatalogueEntry, shipped_entries, shipped_entry
from certstore.crypto.trust import TrustStore
from certstore.crypto.x509 import CertificateProfile
from certstore.packaging.face import lay_out_face
from certstore.packaging.layout import Box, FaceData, FaceLayout
from certstore.packaging.ofd import add_seal, build_ofd
from certstore.packaging.seal_picture import render_seal_picture
from certstore.records import PreparedVersion, example_draft, prepare_version
from certstore.seal import make_seal
from tests.pki import Party, make_party

NOW = datetime(2025, 6, 1, 8, 0, 0, tzinfo=UTC)
ISSUE_DATE = date(2025, 5, 20)
#: The catalogue type most tests seal (建筑工程施工许可证: a long face, wrapped values, letter-spaced title).
MAIN_CODE = "11410100990000025A001"
#: Where the repository's seal goes in the two-seal tests (between the QR code and the issuer's seal).
REPOSITORY_STAMP = Box(75.0, 224.0, 30.0, 30.0)


@dataclass(frozen=True)
class Pki:
    root: Party
    maker: Party  # 制章者
    agency: Party  # the issuing agency's signer (签章者)
    repository: Party  # the repository's signer
    outsider: Party  # same CA, listed in no seal
    trust: TrustStore


def _party(cn: str, profile: CertificateProfile, issuer: Party | None) -> Party:
    return make_party(
        cn,
        profile,
        issuer,
        NOW - timedelta(days=365),
        NOW + timedelta(days=3650),
        organization="certstore OFD 测试",
    )


@pytest.fixture(scope="session")
def pki() -> Pki:
    root = _party("OFD 测试根 CA", CertificateProfile.ROOT_CA, None)
    return Pki(
        root=root,
        maker=_party("测试制章系统", CertificateProfile.SEAL_MAKER, root),
        agency=_party("郑州市城乡建设局", CertificateProfile.SIGNER, root),
        repository=_party("郑州市电子证照库", CertificateProfile.SIGNER, root),
        outsider=_party("未授权单位", CertificateProfile.SIGNER, root),
        trust=TrustStore([root.certificate]),
    )


def _seal(pki: Pki, name: str, es_id: str, signer: Party, diameter_mm: int) -> bytes:
    return make_seal(
        maker=pki.maker.signer,
        maker_certificate=pki.maker.certificate,
        es_id=es_id,
        name=name,
        seal_type=1,
        signer_certificates=[signer.certificate],
        picture=render_seal_picture(name, diameter_mm=diameter_mm),
        valid_start=NOW - timedelta(days=30),
        valid_end=NOW + timedelta(days=365),
        created=NOW - timedelta(days=30),
    )


@pytest.fixture(scope="session")
def agency_seal(pki: Pki) -> bytes:
    """The issuing agency's seal (证照专用章), usable by ``pki.agency`` only."""
    return _seal(pki, "郑州市城乡建设局电子证照专用章", "41010000000001", pki.agency, 42)


@pytest.fixture(scope="session")
def repository_seal(pki: Pki) -> bytes:
    """The repository's seal, usable by ``pki.repository`` only."""
    return _seal(pki, "郑州市电子证照库专用章", "41010000000002", pki.repository, 30)


def prepared_for(entry: CatalogueEntry) -> PreparedVersion:
    draft = example_draft(entry, issue_date=ISSUE_DATE)
    return prepare_version(
        entry,
        draft,
        version=1,
        holder_key=b"ofd-test-holder-key".ljust(32, b"\0"),
        serial_key=b"ofd-test-holder-key".ljust(32, b"\0"),
    )


@pytest.fixture(scope="session")
def faces() -> dict[str, tuple[PreparedVersion, FaceLayout]]:
    """Every shipped catalogue type: its example version and laid-out face."""
    result = {}
    for entry in shipped_entries():
        prepared = prepared_for(entry)
        result[entry.code] = (prepared, lay_out_face(FaceData.from_prepared(prepared)))
    return result


@pytest.fixture(scope="session")
def main_face(faces: dict[str, tuple[PreparedVersion, FaceLayout]]) -> tuple[PreparedVersion, FaceLayout]:
    assert shipped_entry(MAIN_CODE)
    return faces[MAIN_CODE]


@pytest.fixture(scope="session")
def unsigned_ofd(main_face: tuple[PreparedVersion, FaceLayout]) -> bytes:
    prepared, layout = main_face
    return build_ofd(layout, metadata=prepared.metadata)


@pytest.fixture(scope="session")
def issuer_sealed(
    pki: Pki, agency_seal: bytes, unsigned_ofd: bytes, main_face: tuple[PreparedVersion, FaceLayout]
) -> bytes:
    """The agency's seal at the layout's seal box, leaving room for more (protect="continue")."""
    _, layout = main_face
    assert layout.seal_box is not None
    return add_seal(
        unsigned_ofd,
        seal=agency_seal,
        signer=pki.agency.signer,
        signer_certificate=pki.agency.certificate,
        stamp_box=layout.seal_box,
        signing_time=NOW,
        protect="continue",
    )


@pytest.fixture(scope="session")
def doubly_sealed(pki: Pki, repository_seal: bytes, issuer_sealed: bytes) -> bytes:
    """Then the repository's seal, closing the document (protect="all")."""
    return add_seal(
        issuer_sealed,
        seal=repository_seal,
        signer=pki.repository.signer,
        signer_certificate=pki.repository.certificate,
        stamp_box=REPOSITORY_STAMP,
        signing_time=NOW + timedelta(minutes=5),
        protect="all",
    )
