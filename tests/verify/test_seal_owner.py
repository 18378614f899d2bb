"""``seal_owner`` at the pipeline: the signer certificate of every signature belongs to the issuer the file names
(OFD and PDF rendition alike), the seal registry a repository offers is consulted for the seal's owner and state,
and a file whose metadata and identifier name different issuers is refused. (The registry itself, online and
offline: ``tests/services/test_seals.py``.)"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from certstore.catalogue.definitions import shipped_entries
from certstore.checks import CheckResult, Indication
from certstore.keystore import REPOSITORY_SEAL_NAME, KeyStore
from certstore.packaging.face import lay_out_face
from certstore.packaging.layout import FaceData
from certstore.packaging.ofd import add_seal, build_ofd_files
from certstore.packaging.pdf import build_pdf
from certstore.records import example_draft, prepare_version
from certstore.seal import parse_seal
from certstore.services.issuance import SealingKey, sealing_key_for_seal
from certstore.services.keys import init_dev_keys
from certstore.verify import VerificationReport, verify_file
from certstore.verify.pipeline import SEAL_OWNER, SealRecord

ENTRY = shipped_entries()[0]
ISSUER = ENTRY.issuer
URL = "https://certstore.test.example"


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> KeyStore:
    keys = KeyStore(Path(tmp_path_factory.mktemp("keys")) / "keys")
    init_dev_keys(keys, now=datetime.now(UTC) - timedelta(hours=1))
    return keys


@pytest.fixture(scope="module")
def face() -> FaceData:
    draft = example_draft(ENTRY)
    prepared = prepare_version(ENTRY, draft, version=1, holder_key=os.urandom(32), serial_key=os.urandom(32))
    return FaceData.from_prepared(prepared)


def _ofd(face: FaceData, key: SealingKey, metadata: dict[str, str] | None = None) -> bytes:
    layout = lay_out_face(face, verify_base_url=URL)
    values = {k: str(v) for k, v in face.metadata.items()} | (metadata or {})
    package = build_ofd_files(layout, metadata=values, doc_id=face.identifier)
    assert layout.seal_box is not None
    return add_seal(package, seal=key.seal, signer=key.signer, signer_certificate=key.certificate,
                    stamp_box=layout.seal_box)  # fmt: skip


def _pdf(face: FaceData, key: SealingKey) -> bytes:
    layout = lay_out_face(face, verify_base_url=URL)
    return build_pdf(
        layout, metadata={k: str(v) for k, v in face.metadata.items()}, seal_picture=parse_seal(key.seal).picture.data,
        signer=key.signer, signer_certificate=key.certificate, chain=key.chain,
    )  # fmt: skip


def _owner(report: VerificationReport) -> tuple[CheckResult, str]:
    assert report.certificate is not None
    check = next(c for c in report.certificate.checks if c.name == SEAL_OWNER)
    return check.result, check.reason


class Registry:
    """A repository that answers only the seal registry's questions (status and content: in force, matching)."""

    def __init__(self, records: dict[str, SealRecord]) -> None:
        self.records = records

    def status(self, identifier: str, at: datetime | None = None) -> tuple[str, str]:
        return "valid", "有效"

    def content_digest_matches(self, identifier: str, package: bytes, **_: object) -> bool:
        return True

    def seal_state(self, es_id: str, at: datetime) -> SealRecord | None:
        return self.records.get(es_id)


@pytest.mark.parametrize("render", [_ofd, _pdf], ids=["ofd", "pdf"])
def test_the_issuers_key_passes_and_another_organisations_fails(
    store: KeyStore, face: FaceData, render
) -> None:
    own = render(face, sealing_key_for_seal(store, ISSUER.credit_code))
    report = verify_file(own, trust=store.trust_store())
    assert report.indication is Indication.VALID, report.to_dict()
    assert _owner(report)[0] is CheckResult.PASSED

    foreign = render(face, sealing_key_for_seal(store, REPOSITORY_SEAL_NAME))
    report = verify_file(foreign, trust=store.trust_store())
    assert report.indication is Indication.INVALID
    result, reason = _owner(report)
    assert (
        result is CheckResult.FAILED and f"not to the issuer {ISSUER.name} ({ISSUER.credit_code})" in reason
    )
    assert all(s.indication is Indication.VALID for s in report.signatures)  # intact, but not the issuer's


def test_a_seal_registered_to_another_organisation_fails(store: KeyStore, face: FaceData) -> None:
    key = sealing_key_for_seal(store, ISSUER.credit_code)
    es_id = parse_seal(key.seal).es_id
    data = _ofd(face, key)
    elsewhere = Registry({es_id: SealRecord("valid", None, "11410100MB1700000X", "郑州市大数据管理局")})
    result, reason = _owner(verify_file(data, trust=store.trust_store(), repository=elsewhere))
    assert (
        result is CheckResult.FAILED and "is registered to 郑州市大数据管理局 (11410100MB1700000X)" in reason
    )
    own = Registry({es_id: SealRecord("valid", None, ISSUER.credit_code, ISSUER.name)})
    report = verify_file(data, trust=store.trust_store(), repository=own)
    assert report.indication is Indication.VALID and "valid in the seal registry" in _owner(report)[1]


def test_metadata_naming_another_issuer_than_the_identifier_fails(store: KeyStore, face: FaceData) -> None:
    data = _ofd(face, sealing_key_for_seal(store, ISSUER.credit_code), {"ZZBFJGDM": "11410100MB1700000X"})
    result, reason = _owner(verify_file(data, trust=store.trust_store()))
    assert result is CheckResult.FAILED and "but the identifier" in reason
