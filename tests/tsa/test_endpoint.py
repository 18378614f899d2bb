"""``POST /api/v1/tsa`` on a real ``certstore serve`` (loopback): a query answered with a token of the key store's
``tsa`` key, refusals, and a file sealed through :class:`HttpTimeStamper` pointed at it whose timestamp verifies.
In process (TestClient): the per-client limit and a key store without a TSA key."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from api import create_app
from api.settings import Settings
from certstore.checks import CheckResult
from certstore.crypto.sm3 import sm3
from certstore.keystore import KeyStore
from certstore.packaging.layout import Box
from certstore.packaging.ofd import add_seal
from certstore.packaging.ofd.writer import read_package
from certstore.seal import parse_seal_signature
from certstore.services.copies import repository_sealing_key
from certstore.services.keys import init_dev_keys
from certstore.store.blobs import FileBlobStore
from certstore.store.db import Database
from certstore.store.repository import Repository
from certstore.tsa import HttpTimeStamper, build_request, check_reply, parse_response, read_token
from certstore.verify import verify_file
from devservers.api import ApiServer

QUERY = {"Content-Type": "application/timestamp-query"}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ApiServer, KeyStore]]:
    data_dir = tmp_path_factory.mktemp("tsa-serve") / "data"
    store = KeyStore(data_dir / "keys")
    init_dev_keys(store)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CERTSTORE_")}
    with ApiServer(data_dir, env=env) as server:
        yield server, store


def test_a_query_is_answered_with_a_token_of_the_tsa_key(served: tuple[ApiServer, KeyStore]) -> None:
    server, store = served
    request = build_request(b"signature value")
    before = datetime.now(UTC).replace(microsecond=0)
    response = httpx.post(f"{server.base_url}/api/v1/tsa", content=request.der, headers=QUERY, timeout=30)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/timestamp-reply"
    assert response.headers["cache-control"] == "no-store"
    token = read_token(check_reply(response.content, request))
    assert token.tsa_certificate == store.signer_entry("tsa").certificate
    assert token.hashed_message == sm3(b"signature value") and token.nonce == request.nonce
    assert before <= token.gen_time <= datetime.now(UTC)


def test_refusals_over_http(served: tuple[ApiServer, KeyStore]) -> None:
    server, _ = served
    url = f"{server.base_url}/api/v1/tsa"
    with httpx.Client(timeout=30) as client:
        wrong_type = client.post(
            url, content=build_request(b"x").der, headers={"Content-Type": "application/der"}
        )
        assert wrong_type.status_code == 415
        assert wrong_type.headers["content-type"] == "application/problem+json"
        too_large = client.post(url, content=bytes(5000), headers=QUERY)
        assert too_large.status_code == 413
        junk = client.post(url, content=b"not a request", headers=QUERY)
        assert junk.status_code == 200
        assert parse_response(junk.content).failure_info == {"bad_data_format"}


def test_a_file_sealed_through_the_endpoint_verifies_its_timestamp(
    served: tuple[ApiServer, KeyStore], unsigned: tuple[bytes, Box]
) -> None:
    server, store = served
    key = repository_sealing_key(store)
    package, box = unsigned
    stamper = HttpTimeStamper(f"{server.base_url}/api/v1/tsa", 30.0)
    try:
        sealed = add_seal(
            package,
            seal=key.seal,
            signer=key.signer,
            signer_certificate=key.certificate,
            stamp_box=box,
            timestamper=stamper,
        )
    finally:
        stamper.close()
    signature = parse_seal_signature(read_package(sealed)["Doc_0/Signs/Sign_0/SignedValue.dat"])
    assert signature.timestamp is not None
    token = read_token(signature.timestamp)
    assert token.hashed_message == sm3(signature.signature_value)
    assert token.gen_time >= signature.signing_time
    (report,) = verify_file(sealed, trust=store.trust_store()).signatures
    check = report.check("timestamp")
    assert check.result is CheckResult.PASSED, check.reason
    assert check.reason.startswith(f"timestamp genTime {token.gen_time.isoformat()}")


def _in_process(tmp_path: Path, store: KeyStore) -> TestClient:
    database = Database(f"sqlite:///{tmp_path / 'db.sqlite'}")
    database.upgrade()
    repo = Repository(db=database, blobs=FileBlobStore(tmp_path / "blobs"), holder_key=bytes(32))
    app = create_app(Settings(data_dir=tmp_path, batch_worker=False), repo=repo, keystore=store)
    return TestClient(app, raise_server_exceptions=False)


def test_each_client_address_is_rate_limited(
    served: tuple[ApiServer, KeyStore], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CERTSTORE_TSA_RATE", "1")
    monkeypatch.setenv("CERTSTORE_TSA_BURST", "2")
    _, store = served
    query = build_request(b"x").der
    with _in_process(tmp_path, store) as client:
        answers = [client.post("/api/v1/tsa", content=query, headers=QUERY) for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 429]
    assert int(answers[2].headers["retry-after"]) >= 1
    assert "time stamps a minute" in answers[2].json()["detail"]


def test_a_key_store_without_a_tsa_key_answers_503(
    served: tuple[ApiServer, KeyStore], tmp_path: Path
) -> None:
    store = KeyStore(tmp_path / "keys")
    shutil.copytree(served[1].root, store.root)
    shutil.rmtree(store.signers_dir / "tsa")  # a key store made before trusted time
    with _in_process(tmp_path, store) as client:
        answer = client.post("/api/v1/tsa", content=build_request(b"x").der, headers=QUERY)
    assert answer.status_code == 503
    assert answer.json()["detail"] == "this repository's key store has no 'tsa' key"
