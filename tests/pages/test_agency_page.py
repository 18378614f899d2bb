"""The agency pages call the same use cases as the API (no browser: FastAPI's TestClient): a form submission is
one issuance — authorised, with its arrival and exactly one audit entry (entry point ``page``) — and the issuer's
file and face preview are audited reads; a type of another agency is refused by the rule's one home."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api import create_app
from api.settings import Settings
from bench._setup import prepared_data_dir
from certstore.access import Role
from certstore.forms import form_fields
from certstore.services import certificates, logins
from certstore.services.catalogue import get_entry
from certstore.services.deadlines import get_arrival
from certstore.store.repository import Repository
from tests.support import issuing

CONSTRUCTION = "11410100990000025A001"  # issued by 11410100990000025A
PLANNING_TYPE = "11410100990000017F001"  # issued by the planning bureau
AGENCY = ("11410100990000025A", "发证乙")
PASSWORD = "correct-horse-9"


@dataclass
class Site:
    app: Any
    repo: Repository


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    data_dir = tmp_path / "data"
    prepared = prepared_data_dir(data_dir, {})  # keys, migrated database, shipped catalogue
    repo, keystore = prepared.repo, prepared.keystore
    logins.set_password(
        repo, organisation_code=AGENCY[0], name=AGENCY[1], password=PASSWORD, role=Role.AGENCY
    )
    app = create_app(
        Settings(data_dir=data_dir, public_url="http://testserver"), repo=repo, keystore=keystore
    )
    try:
        yield Site(app, repo)
    finally:
        repo.db.dispose()


def _csrf(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([0-9a-f]+)"', html)
    assert match, html[:500]
    return match.group(1)


def _logged_in(client: TestClient) -> str:
    token = _csrf(client.get("/login").text)
    response = client.post(
        "/login",
        data={"csrf_token": token, "organisation_code": AGENCY[0], "name": AGENCY[1], "password": PASSWORD},
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text
    return _csrf(client.get(f"/agency/types/{CONSTRUCTION}/issue").text)


def _entries(site: Site, identifier: str) -> list[Any]:
    assert site.app.state.services.audit.flush()
    return [e for e in issuing.audit_entries(site.repo) if e.certificate_identifier == identifier]


def test_a_form_submission_is_one_issuance_with_its_arrival_and_one_audit_entry(site: Site) -> None:
    entry = get_entry(site.repo, CONSTRUCTION)
    values = {f.name: f.example for f in form_fields(entry)}
    with TestClient(site.app, raise_server_exceptions=False) as client:
        token = _logged_in(client)
        issued = client.post(f"/agency/types/{CONSTRUCTION}/issue", data={"csrf_token": token, **values})
        assert issued.status_code == 201, issued.text
        identifier = re.search(r'id="identifier">([^<]+)<', issued.text).group(1)  # type: ignore[union-attr]
        again = client.post(f"/agency/types/{CONSTRUCTION}/issue", data={"csrf_token": token, **values})
        assert again.status_code == 200 and "已存在" in again.text
        ofd = client.get(f"/agency/certificates/{identifier}/file")
        face = client.get(f"/agency/certificates/{identifier}/face.png")
        assert ofd.status_code == 200 and ofd.headers["content-type"] == "application/ofd"
        assert face.status_code == 200 and face.content.startswith(b"\x89PNG")
    certificate = certificates.get(site.repo, identifier)
    entries = _entries(site, identifier)
    assert [(e.action, e.details.get("repeat")) for e in entries] == [
        ("certificate.issue", None),
        ("certificate.issue", True),
        ("certificate.file", None),
        ("certificate.preview", None),
    ]  # one per request: the middleware logged none of them again
    first = entries[0]
    assert (first.principal, first.role, first.details["via"]) == (
        f"{AGENCY[0]}/{AGENCY[1]}",
        "agency",
        "page",
    )
    assert first.resource == "POST /agency/types/{code}/issue" and first.status_code == 201
    assert all(e.holder_digest == certificate.holder_ref for e in entries)
    arrival = get_arrival(site.repo, identifier)
    assert arrival is not None and arrival.source == "page" and arrival.arrived_at == certificate.created_at


def test_another_agencys_type_is_refused(site: Site) -> None:
    with TestClient(site.app, raise_server_exceptions=False) as client:
        _logged_in(client)
        assert client.get(f"/agency/types/{PLANNING_TYPE}/issue").status_code == 403
