"""The API without a configured public URL (issue 15, item 7): it starts and still reads, previews and verifies
stored files, but everything that would seal a file — an issue, a batch, a PDF rendition — is an RFC 9457 problem
(503 ``public-url-not-configured``) and nothing is stored. The data directory's configuration gives the API its
URL when the environment does not, and the environment overrides it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from api import create_app
from api.settings import Settings
from certstore.access import Role
from certstore.keystore import KeyStore
from certstore.services import access
from certstore.store.config import PUBLIC_URL_ENV, ConfigError, save_public_url
from certstore.store.db import Database, database_url
from certstore.store.models import CertificateRow
from certstore.store.repository import Repository
from tests.api.conftest import AGENCY_ORG, construction_data
from tests.support.repository import make_repo

URL = "https://zz.example.gov.cn"


@pytest.fixture(autouse=True)
def no_public_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(PUBLIC_URL_ENV, raising=False)


@pytest.fixture
def repo(tmp_path: Path) -> Iterator[Repository]:
    """The public URL does not depend on the database: SQLite only, to stay quick."""
    (tmp_path / "db").mkdir()
    database = Database(database_url(tmp_path / "db", {}))
    database.upgrade()
    try:
        yield make_repo(database, tmp_path)
    finally:
        database.dispose()


def _agency(app: Any, repo: Repository) -> TestClient:
    token = access.create_token(
        repo, role=Role.AGENCY, organisation_code=AGENCY_ORG, organisation_name="郑州市城乡建设局", name="a"
    ).token
    client = TestClient(app, raise_server_exceptions=False)
    client.headers["Authorization"] = f"Bearer {token}"
    return client


def _stored(repo: Repository) -> int:
    with repo.db.session(readonly=True) as session:
        return int(session.scalar(select(func.count()).select_from(CertificateRow)) or 0)


def _assert_refused(response: Any) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    assert problem["type"].endswith("/public-url-not-configured") and problem["status"] == 503
    assert problem["title"] == "Public URL not configured"
    assert "certstore config set public-url" in problem["detail"] and PUBLIC_URL_ENV in problem["detail"]


def test_without_a_url_sealing_is_a_problem_and_reading_still_works(
    repo: Repository, api_keystore: KeyStore, tmp_path: Path
) -> None:
    configured = create_app(
        Settings(data_dir=tmp_path / "a", public_url=URL, batch_worker=False),
        repo=repo,
        keystore=api_keystore,
    )
    with _agency(configured, repo) as agency:
        issued = agency.post("/api/v1/certificates", json=construction_data(repo))
        assert issued.status_code == 201, issued.text
    identifier = issued.json()["identifier"]

    bare = create_app(Settings(data_dir=tmp_path / "b", batch_worker=False), repo=repo, keystore=api_keystore)
    assert bare.state.services.public_url is None
    with _agency(bare, repo) as agency:
        _assert_refused(
            agency.post("/api/v1/certificates", json=construction_data(repo, "410100202406100009"))
        )
        _assert_refused(agency.post("/api/v1/batches", json=[construction_data(repo, "410100202406100010")]))
        _assert_refused(agency.get(f"/api/v1/certificates/{identifier}/file", params={"format": "pdf"}))
        assert _stored(repo) == 1  # only the one sealed with a URL

        stored = agency.get(f"/api/v1/certificates/{identifier}/file")
        assert stored.status_code == 200 and stored.content[:2] == b"PK"
        assert agency.get(f"/api/v1/certificates/{identifier}").status_code == 200
        verified = agency.post("/api/v1/public/verify", files={"file": ("c.ofd", stored.content)})
        assert verified.status_code == 200, verified.text
        assert verified.json()["certificate"]["identifier"] == identifier
        assert agency.get("/api/v1/health").status_code == 200


def test_the_data_directory_configuration_gives_the_api_its_url(
    repo: Repository, api_keystore: KeyStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data_dir = tmp_path / "data"
    save_public_url(data_dir, URL + "/certstore/")
    app = create_app(Settings(data_dir=data_dir, batch_worker=False), repo=repo, keystore=api_keystore)
    assert app.state.services.public_url == URL + "/certstore"
    with _agency(app, repo) as agency:
        assert agency.post("/api/v1/certificates", json=construction_data(repo)).status_code == 201

    monkeypatch.setenv(PUBLIC_URL_ENV, "https://lb.example.gov.cn/")
    settings = Settings.from_env(data_dir=data_dir)
    assert settings.public_url == "https://lb.example.gov.cn"
    app = create_app(Settings(data_dir=data_dir, batch_worker=False), repo=repo, keystore=api_keystore)
    assert app.state.services.public_url == "https://lb.example.gov.cn"  # the environment wins

    monkeypatch.setenv(PUBLIC_URL_ENV, "lb.example.gov.cn")
    with pytest.raises(ConfigError, match=PUBLIC_URL_ENV):
        Settings.from_env(data_dir=data_dir)
