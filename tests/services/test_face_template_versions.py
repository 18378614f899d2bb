"""A certificate keeps the face template of the catalogue version it was issued under: after the bureau approves
a version 2 with another template, the version 1 certificate's face, preview and copy still use version 1's."""

from __future__ import annotations

import copy
from datetime import timedelta

import pytest

from certstore.catalogue import CatalogueEntry
from certstore.keystore import KeyStore
from certstore.packaging.face import lay_out_face
from certstore.packaging.layout import Box, FaceData
from certstore.services import certificates
from certstore.services.catalogue import get_entry, register_entry
from certstore.services.copies import CopyRequest, make_copy, repository_sealing_key
from certstore.services.issuance import file_maker, sealing_key_for_entry
from certstore.services.keys import init_dev_keys
from certstore.store.repository import Repository
from tests.services.conftest import Clock, DraftMaker
from tests.support import issuing

CONSTRUCTION_PERMIT = "11410100990000025A001"


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> KeyStore:
    store = KeyStore(tmp_path_factory.mktemp("keys") / "keys")
    init_dev_keys(store)
    return store


def _version_2(entry: CatalogueEntry) -> CatalogueEntry:
    """Version 2 of ``entry``: its template with the seal and the QR code moved and the title smaller."""
    document = entry.to_document()
    template = copy.deepcopy(document["face_template"])
    template["seal"]["x"] -= 20
    template["qr"]["y"] -= 4
    template["title"]["size"] = [24, 18]
    document["version"] = entry.version + 1
    document["face_template"] = template
    return CatalogueEntry.from_document(document)


@pytest.mark.parametrize(
    "database_backend", ["sqlite"], indirect=True
)  # the layout, not the database, is tested
def test_a_certificate_keeps_its_versions_template(
    repo: Repository, draft: DraftMaker, keys: KeyStore, clock: Clock
) -> None:
    """Issued under version 1, laid out again (preview, copy) after version 2 is approved: version 1's seal
    position, QR code and title; a certificate issued under version 2 gets version 2's."""
    v1 = get_entry(repo, CONSTRUCTION_PERMIT)
    assert v1.face_template is not None
    maker = file_maker(sealing_key_for_entry(keys, v1))
    first = issuing.issue(repo, draft(CONSTRUCTION_PERMIT), file_maker=maker).certificate
    _, created = register_entry(repo, _version_2(v1))
    assert created and get_entry(repo, CONSTRUCTION_PERMIT).version == v1.version + 1
    second = issuing.issue(repo, draft(CONSTRUCTION_PERMIT, number="410100202406180102"), file_maker=maker)

    def layout_of(
        identifier: str,
    ):  # as renditions.face_layout and copies lay it out: the stored version's entry
        certificate = certificates.get(repo, identifier)
        entry = get_entry(repo, certificate.catalogue_code, certificate.catalogue_version)
        return lay_out_face(FaceData.from_certificate(certificate, entry))

    old, new = layout_of(first.identifier), layout_of(second.certificate.identifier)
    seal = v1.face_template["seal"]
    assert old.seal_box == Box(seal["x"], seal["y"], seal["size"], seal["size"])
    assert new.seal_box is not None and new.seal_box.x == old.seal_box.x - 20
    assert old.items_for("title")[0].size_mm > new.items_for("title")[0].size_mm
    qr_old = next(i for i in old.images if i.role == "qr_code").box
    qr_new = next(i for i in new.images if i.role == "qr_code").box
    assert qr_new.y == qr_old.y - 4

    # the copy rebuilds the original's face and refuses one that differs: version 1's template passes
    at = (clock.now + timedelta(minutes=1)).replace(second=0, microsecond=0)
    request = CopyRequest(using_unit="郑州市不动产登记中心", matter="410100-2026-000123", purpose="办理不动产登记",
                          requested_by="窗口 王五")  # fmt: skip
    made = make_copy(
        repo, first.identifier, request, key=repository_sealing_key(keys), trust=keys.trust_store(), at=at
    )
    assert made.startswith(b"PK")
