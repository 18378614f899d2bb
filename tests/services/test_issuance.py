"""Issue → verify round trips for every shipped catalogue type, OFD and PDF, with the repository consulted."""

from __future__ import annotations

import pytest

from certstore.catalogue import shipped_entries
from certstore.keystore import KeyStore
from certstore.lifecycle import Action
from certstore.packaging.layout import FaceData
from certstore.services.catalogue import get_entry
from certstore.services.certificates import FileMaker
from certstore.services.issuance import catalogue_file_maker, make_pdf, sealing_key_for_entry
from certstore.services.keys import init_dev_keys
from certstore.services.verification import repository_check
from certstore.store.repository import Repository
from certstore.verify import verify_file
from tests.services.conftest import DraftMaker
from tests.support import issuing


@pytest.fixture(scope="module")
def dev_keys(tmp_path_factory: pytest.TempPathFactory) -> tuple[KeyStore, FileMaker]:
    """The development key store, and a file maker sealing each type with its issuer's own seal."""
    store = KeyStore(tmp_path_factory.mktemp("keys") / "keys")
    init_dev_keys(store)
    return store, catalogue_file_maker(store)


@pytest.mark.parametrize("code", [e.code for e in shipped_entries()])
def test_round_trip_ofd_and_pdf(repo: Repository, draft: DraftMaker, dev_keys, code: str) -> None:
    store, key = dev_keys
    trust = store.trust_store()
    result = issuing.issue(repo, draft(code), file_maker=key)
    cert = result.certificate
    assert cert.file_media_type == "application/ofd"
    ofd = repo.blobs.get(cert.file_key or "")
    check = repository_check(lambda: repo)

    report = verify_file(ofd, trust=trust, repository=check)
    assert report.indication.value == "VALID", report.to_dict()
    assert report.certificate is not None and report.certificate.identifier == cert.identifier
    document = report.to_dict()
    assert document["format"] == "ofd" and document["certificate"]["status"] == "valid"

    entry = get_entry(repo, code)
    pdf = make_pdf(FaceData.from_certificate(cert, entry), sealing_key_for_entry(store, entry))
    pdf_report = verify_file(pdf, trust=trust, repository=check)
    assert pdf_report.indication.value == "VALID", pdf_report.to_dict()
    assert pdf_report.to_dict()["format"] == "pdf"


def test_status_change_is_seen_by_verification(repo: Repository, draft: DraftMaker, dev_keys) -> None:
    store, key = dev_keys
    cert = issuing.issue(repo, draft(), file_maker=key).certificate
    ofd = repo.blobs.get(cert.file_key or "")
    check = repository_check(lambda: repo)
    issuing.act(repo, cert.identifier, Action.REVOKE, reason="行政处罚")
    report = verify_file(ofd, trust=store.trust_store(), repository=check)
    assert report.indication.value == "INVALID"
    certificate = report.to_dict()["certificate"]
    assert certificate["status"] == "revoked"
    status_check = next(c for c in certificate["checks"] if c["name"] == "status")
    assert status_check["result"] == "FAILED" and "吊销" in status_check["reason"]
    offline = verify_file(ofd, trust=store.trust_store())
    assert offline.indication.value == "VALID"  # the file itself is intact; only the repository knows


def test_reissue_is_idempotent_even_though_files_differ(
    repo: Repository, draft: DraftMaker, dev_keys
) -> None:
    _, key = dev_keys
    first = issuing.issue(repo, draft(), file_maker=key)
    again = issuing.issue(repo, draft(), file_maker=key)
    assert first.created and not again.created
    assert again.certificate.file_key == first.certificate.file_key  # the first file stays the record
