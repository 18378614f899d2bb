"""File downloads name the file in RFC 6266 form (issue 17 item 6): ``attachment; filename="<ASCII fallback>";
filename*=UTF-8''<percent-encoded>``. Four of the six shipped types number their certificates in Chinese
(选字第…, 地字第…, 建字第…, 郑人防审字…), which a plain ``filename="…"`` cannot carry (the download used to fail
with 422 "'latin-1' codec can't encode"). Every shipped type, OFD and PDF, through the API and through the
agency page — one certificate per type, issued by its own agency through the API."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

import pytest
from fastapi.testclient import TestClient

from api import create_app
from api.downloads import ascii_fallback, content_disposition
from api.settings import Settings
from bench._setup import prepared_data_dir
from certstore.access import Role
from certstore.catalogue.definitions import shipped_entries
from certstore.records import draft_to_json, example_draft
from certstore.services import access, logins

PASSWORD = "correct-horse-9"
ENTRIES = shipped_entries()
#: RFC 6266 §4.1 with RFC 8187 ext-value: the ASCII fallback, then the UTF-8 name
DISPOSITION = re.compile(
    r"""^attachment; filename="([\x20-\x21\x23-\x5b\x5d-\x7e]+)"; filename\*=UTF-8''([A-Za-z0-9!#$&+.^_`|~%-]+)$"""
)
MAGIC = {"ofd": b"PK\x03\x04", "pdf": b"%PDF-"}


@dataclass
class Issued:
    code: str
    number: str
    identifier: str
    organisation: str


@dataclass
class Site:
    app: Any
    issued: list[Issued]
    tokens: dict[str, str]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """A data directory with the shipped catalogue; per issuing agency an API token and a page login; one
    certificate of every shipped type issued through the API with that type's example data."""
    data_dir = tmp_path_factory.mktemp("downloads") / "data"
    prepared = prepared_data_dir(data_dir, {})
    repo = prepared.repo
    app = create_app(
        Settings(data_dir=data_dir, public_url="http://testserver"), repo=repo, keystore=prepared.keystore
    )
    tokens: dict[str, str] = {}
    issued: list[Issued] = []
    try:
        for entry in ENTRIES:
            organisation = entry.issuer.credit_code
            if organisation not in tokens:
                tokens[organisation] = access.create_token(
                    repo, role=Role.AGENCY, organisation_code=organisation,
                    organisation_name=entry.issuer.name, name="downloads",
                ).token  # fmt: skip
                logins.set_password(
                    repo,
                    organisation_code=organisation,
                    name="downloads",
                    password=PASSWORD,
                    role=Role.AGENCY,
                )
        with TestClient(app, raise_server_exceptions=False) as client:
            for entry in ENTRIES:
                document = draft_to_json(example_draft(entry))
                organisation = entry.issuer.credit_code
                response = client.post(
                    "/api/v1/certificates",
                    json=document,
                    headers={"Authorization": f"Bearer {tokens[organisation]}"},
                )
                assert response.status_code == 201, (entry.code, response.text)
                identifier = response.json()["identifier"]
                issued.append(Issued(entry.code, document["certificate_number"], identifier, organisation))
            yield Site(app, issued, tokens)
    finally:
        repo.db.dispose()


def _file_name(response: Any) -> str:
    """The file name a current client takes from the response: the RFC 8187 ``filename*`` value, after checking
    the whole header's form and that its fallback is the ASCII form of the same name."""
    assert response.status_code == 200, response.text[:300]
    header = response.headers["content-disposition"]
    header.encode("latin-1")  # what failed before: a header must be Latin-1 at most (here: ASCII)
    match = DISPOSITION.match(header)
    assert match, header
    fallback, encoded = match.groups()
    name = unquote(encoded, encoding="utf-8", errors="strict")
    assert fallback == ascii_fallback(name)
    return name


def test_the_shipped_catalogue_numbers_four_types_in_chinese() -> None:
    """The premise: the shipped examples include non-ASCII certificate numbers (the download test covers them)."""
    numbers = [draft_to_json(example_draft(e))["certificate_number"] for e in ENTRIES]
    assert len(ENTRIES) == 6
    assert sum(not n.isascii() for n in numbers) >= 4, numbers


@pytest.mark.parametrize("format", ["ofd", "pdf"])
def test_every_shipped_type_downloads_through_the_api(site: Site, format: str) -> None:
    """``GET /api/v1/certificates/{id}/file?format=…`` by the issuing agency: 200, the file, and the name
    ``<number>-v1.<format>`` in RFC 6266 form for every shipped type."""
    with TestClient(site.app, raise_server_exceptions=False) as client:
        for issued in site.issued:
            response = client.get(
                f"/api/v1/certificates/{issued.identifier}/file",
                params={"format": format},
                headers={"Authorization": f"Bearer {site.tokens[issued.organisation]}"},
            )
            assert _file_name(response) == f"{issued.number}-v1.{format}", issued.code
            assert response.content.startswith(MAGIC[format]), issued.code


def _log_in(client: TestClient, organisation: str) -> None:
    page = client.get("/login").text
    token = re.search(r'name="csrf_token" value="([0-9a-f]+)"', page)
    assert token, page[:300]
    response = client.post(
        "/login",
        data={
            "csrf_token": token.group(1),
            "organisation_code": organisation,
            "name": "downloads",
            "password": PASSWORD,
        },
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text[:300]


@pytest.mark.parametrize("format", ["ofd", "pdf"])
def test_every_shipped_type_downloads_from_the_agency_page(site: Site, format: str) -> None:
    """``/agency/certificates/{id}/file?format=…`` logged in as the issuing agency's staff: the same name in
    the same RFC 6266 form as the API (one helper, :mod:`api.downloads`)."""
    by_organisation: dict[str, list[Issued]] = {}
    for issued in site.issued:
        by_organisation.setdefault(issued.organisation, []).append(issued)
    for organisation, issued_there in by_organisation.items():
        with TestClient(site.app, raise_server_exceptions=False) as client:
            _log_in(client, organisation)
            for issued in issued_there:
                response = client.get(
                    f"/agency/certificates/{issued.identifier}/file", params={"format": format}
                )
                assert _file_name(response) == f"{issued.number}-v1.{format}", issued.code
                assert response.content.startswith(MAGIC[format]), issued.code


def test_the_header_for_names_no_header_could_carry_before() -> None:
    """The helper itself: a Chinese name, quotes, backslashes, percent signs and a name with no ASCII at all."""
    assert content_disposition("地字第410100202400045号-v1.ofd") == (
        'attachment; filename="_410100202400045_-v1.ofd"; '
        "filename*=UTF-8''%E5%9C%B0%E5%AD%97%E7%AC%AC410100202400045%E5%8F%B7-v1.ofd"
    )
    assert content_disposition('a"b\\c%d;e.csv') == (
        "attachment; filename=\"a_b_c_d_e.csv\"; filename*=UTF-8''a%22b%5Cc%25d%3Be.csv"
    )
    assert ascii_fallback("证照.ofd") == "download.ofd" and ascii_fallback("证照") == "download"
