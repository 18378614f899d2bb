"""The application seals with trusted time: issuance (the file maker every entry point uses) and copies carry a
token of the key store's TSA key that verifies; ``CERTSTORE_TSA_URL`` switches to an external TSA; a key store
without a TSA key seals without tokens."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from certstore.app import Application
from certstore.catalogue import shipped_entry
from certstore.checks import CheckResult
from certstore.keystore import KeyStore
from certstore.records import example_draft
from certstore.seal import parse_seal_signature
from certstore.services import certificates
from certstore.services.calls import Call
from certstore.services.catalogue import load_shipped
from certstore.services.copies import CopyRequest, make_copy
from certstore.services.keys import init_dev_keys
from certstore.store.blobs import FileBlobStore
from certstore.store.db import Database
from certstore.store.repository import Repository
from certstore.tsa import HttpTimeStamper, LocalTimeStamper, read_token
from certstore.verify import verify_file

PUBLIC_URL = "https://certstore.tsa-test.example"
CONSTRUCTION = "11410100990000025A001"


@pytest.fixture(scope="module")
def dev_keystore(tmp_path_factory: pytest.TempPathFactory) -> KeyStore:
    store = KeyStore(tmp_path_factory.mktemp("tsa-app") / "keys")
    init_dev_keys(store)
    return store


def _application(root: Path, store: KeyStore, environment: dict[str, str] | None = None) -> Application:
    database = Database(f"sqlite:///{root / 'db.sqlite'}")
    database.upgrade()
    repo = Repository(db=database, blobs=FileBlobStore(root / "blobs"), holder_key=bytes(32))
    load_shipped(repo)
    return Application(repo, store, public_url=PUBLIC_URL, environment=environment or {})


@pytest.fixture
def app(tmp_path: Path, dev_keystore: KeyStore) -> Iterator[Application]:
    application = _application(tmp_path, dev_keystore)
    yield application
    application.close()


def _issued(app: Application) -> bytes:
    entry = shipped_entry(CONSTRUCTION)
    assert entry is not None
    issued = certificates.issue(app, Call.operator(source="tsa-test"), example_draft(entry)).certificate
    return app.repo.blobs.get(issued.file_key or "")


def _tokens(data: bytes) -> list[bytes | None]:
    from certstore.packaging.ofd.writer import read_package

    files = read_package(data)
    return [
        parse_seal_signature(value).timestamp
        for name, value in files.items()
        if name.endswith("SignedValue.dat")
    ]


def test_issued_files_carry_a_token_of_the_tsa_key(app: Application, dev_keystore: KeyStore) -> None:
    assert isinstance(app.time_stamper(), LocalTimeStamper)
    data = _issued(app)
    (token,) = _tokens(data)
    assert token is not None
    assert read_token(token).tsa_certificate == dev_keystore.signer_entry("tsa").certificate
    for signature in verify_file(data, trust=app.trust).signatures:
        check = signature.check("timestamp")
        assert check.result is CheckResult.PASSED, check.reason


def test_a_copy_is_sealed_with_a_token_too(app: Application) -> None:
    entry = shipped_entry(CONSTRUCTION)
    assert entry is not None
    issued = certificates.issue(app, Call.operator(source="tsa-test"), example_draft(entry)).certificate
    request = CopyRequest("郑州市不动产登记中心", "ZZ-TSA-1", "办理不动产登记", "clerk")
    copy = make_copy(
        app.repo,
        issued.identifier,
        request,
        key=app.repository_sealing_key(),
        trust=app.trust,
        verify_base_url=PUBLIC_URL,
    )
    (token,) = _tokens(copy)  # the repository's seal on the copy (the original is an attachment)
    assert token is not None
    report = verify_file(copy, trust=app.trust)
    assert [s.check("timestamp").result for s in report.signatures] == [CheckResult.PASSED]


def test_an_external_tsa_is_used_when_configured(tmp_path: Path, dev_keystore: KeyStore) -> None:
    url = "http://tsa.example/api/v1/tsa"
    app = _application(tmp_path, dev_keystore, {"CERTSTORE_TSA_URL": url})
    try:
        stamper = app.time_stamper()
        assert isinstance(stamper, HttpTimeStamper) and stamper.url == url
        entry = shipped_entry(CONSTRUCTION)
        assert entry is not None
        assert app.sealing_key(entry).timestamper is stamper
    finally:
        app.close()


def test_a_key_store_without_a_tsa_key_seals_without_tokens(tmp_path: Path, dev_keystore: KeyStore) -> None:
    store = KeyStore(tmp_path / "keys")
    shutil.copytree(dev_keystore.root, store.root)
    shutil.rmtree(store.signers_dir / "tsa")
    app = _application(tmp_path, store)
    try:
        assert app.time_stamper() is None
        data = _issued(app)
        assert _tokens(data) == [None]
        (signature,) = verify_file(data, trust=app.trust).signatures
        assert signature.check("timestamp").reason == "no timestamp"
    finally:
        app.close()
