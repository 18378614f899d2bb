"""The pages without a browser (FastAPI's TestClient): who may open which page (the pages' own authorization
matrix, complete over the page routes), login and lockout, CSRF, cookie flags, logout, and the audit trail."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.testclient import TestClient

from api import create_app
from api.pages.common import PageRoute
from api.settings import Settings
from certstore.access import Actor, Role
from certstore.audit import query_events
from certstore.keystore import KeyStore
from certstore.records import draft_from_json, draft_to_json, example_draft
from certstore.services import logins
from certstore.services.calls import Via
from certstore.services.catalogue import get_entry, load_shipped
from certstore.services.keys import init_dev_keys
from certstore.store.db import Database, database_url
from certstore.store.repository import Repository
from tests.support import issuing
from tests.support.matters import register_matter

CONSTRUCTION = "11410100990000025A001"
PASSWORD = "correct-horse-9"
ACCOUNTS = {
    "window": ("12410100MB0000001X", "窗口甲", Role.WINDOW),
    "agency": ("11410100990000025A", "发证甲", Role.AGENCY),
    "bureau": ("11410100MB1700000X", "管理甲", Role.BUREAU),
    "auditor": ("11410100MB1700001X", "审计甲", Role.AUDITOR),
    "upstream": ("11410000MB0000000X", "省级甲", Role.UPSTREAM),
}
ROLES = ("anonymous", *ACCOUNTS)
W, A, B, AU, U, ANON = "window", "agency", "bureau", "auditor", "upstream", "anonymous"
EVERYONE = {W, A, B, AU, U, ANON}

#: (method, path) → who may use the page. Everything else: the login form (401) for anonymous callers, 403 for
#: logged-in principals of other roles. "Allowed" means neither 401 nor 403 nor a server error.
PAGE_MATRIX: dict[tuple[str, str], set[str]] = {
    ("GET", "/"): EVERYONE,
    ("GET", "/login"): EVERYONE,
    ("POST", "/login"): EVERYONE,  # a wrong password is a 401 for anyone: checked separately
    ("POST", "/logout"): EVERYONE,
    ("GET", "/verify"): EVERYONE,
    ("POST", "/verify"): EVERYONE,
    ("GET", "/v/{identifier}"): EVERYONE,
    ("GET", "/favicon.ico"): EVERYONE,
    ("GET", "/window"): {W},
    ("POST", "/window/serve"): {W},
    ("POST", "/window/end"): {W},
    ("POST", "/window/select"): {W},
    ("GET", "/window/certificates/{identifier}/face.png"): {W},
    ("GET", "/window/certificates/{identifier}/face.webp"): {W},
    ("GET", "/window/certificates/{identifier}/verify"): {W},
    ("POST", "/window/certificates/{identifier}/copy"): {W},
    ("GET", "/agency"): {A},
    ("GET", "/agency/types/{code}/issue"): {A},
    ("POST", "/agency/types/{code}/issue"): {A},
    ("GET", "/agency/types/{code}/template.csv"): {A},
    ("GET", "/agency/types/{code}/batch"): {A},
    ("POST", "/agency/types/{code}/batch"): {A},
    ("GET", "/agency/batches/{job_id}"): {A},
    ("GET", "/agency/batches/{job_id}/rows"): {A},
    ("GET", "/agency/certificates/{identifier}/file"): {A},
    ("GET", "/agency/certificates/{identifier}/face.png"): {A},
    ("GET", "/agency/catalogue"): {A, B},
    ("POST", "/agency/catalogue"): {A, B},
    ("POST", "/agency/catalogue/assets"): {A, B},
    ("GET", "/bureau/catalogue"): {B},
    ("GET", "/bureau/catalogue/{code}/{version}"): {B},
    ("GET", "/bureau/catalogue/{code}/{version}/preview.png"): {B},
    ("POST", "/bureau/catalogue/{code}/{version}/{decision}"): {B},
    ("GET", "/audit"): {AU},
    ("GET", "/audit/export"): {AU},
    # the holder's pages (一号登录, docs/holders.md): no staff role; holders: tests/pages/test_holder_browser.py
    ("GET", "/holder/login"): EVERYONE,
    ("GET", "/holder/login/start"): EVERYONE,  # 404 here: no OpenID provider configured
    ("GET", "/holder/login/callback"): EVERYONE,
    ("POST", "/holder/logout"): set(),
    ("GET", "/holder"): set(),
    ("GET", "/holder/certificates/{identifier}"): set(),
    ("GET", "/holder/certificates/{identifier}/face.png"): set(),
    ("GET", "/holder/certificates/{identifier}/file.{format}"): set(),
    ("GET", "/holder/access"): set(),
    ("GET", "/holder/authorisations"): set(),
    ("POST", "/holder/authorisations"): set(),
    ("POST", "/holder/authorisations/{authorisation_id}/revoke"): set(),
    ("GET", "/holder/reviews"): set(),
    ("POST", "/holder/reviews"): set(),
    ("GET", "/holder/settings"): set(),
    ("POST", "/holder/settings/contact"): set(),
    ("POST", "/holder/settings/tokens"): set(),
    ("POST", "/holder/settings/tokens/{token_id}/revoke"): set(),
}


@dataclass
class World:
    app: Any
    repo: Repository
    identifier: str
    document: dict[str, Any]
    job_id: str


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    env: dict[str, str] = {}
    data_dir = tmp_path / "data"
    with Database(database_url(data_dir, env=env)) as database:
        database.upgrade()
    keystore = KeyStore(data_dir / "keys")
    init_dev_keys(keystore)
    repo = Repository.open(data_dir, env=env)
    load_shipped(repo)
    for org, name, role in ACCOUNTS.values():
        logins.set_password(repo, organisation_code=org, name=name, password=PASSWORD, role=role)
    app = create_app(
        Settings(data_dir=data_dir, public_url="http://testserver"), repo=repo, keystore=keystore
    )
    document = draft_to_json(example_draft(get_entry(repo, CONSTRUCTION)))
    services = app.state.services
    issued = issuing.issue(services, draft_from_json(document), file_maker=None)  # sealed with the app's keys
    from certstore.services import batches

    agency = logins.authenticate_password(repo, ACCOUNTS["agency"][0], ACCOUNTS["agency"][1], PASSWORD)
    job = batches.submit_batch(services, issuing.call(Actor.of(agency), via=Via.PAGE), [document])
    holder = document["holder"]  # the matters the window's case system registered (issue 19)
    for matter in ("ZZ-PAGE-MATRIX", "ZZ-AUDIT-1"):
        register_matter(services, ACCOUNTS["window"][0], matter, holder["id_type"], holder["id_number"])
    try:
        yield World(app, repo, issued.certificate.identifier, document, job.id)
    finally:
        repo.db.dispose()


def _events(world: World, **filters: Any) -> list[Any]:
    """The audit events recorded so far (the trail writes in batches: flushed first)."""
    trail = getattr(world.app.state.services, "audit", None)
    if trail is not None:
        trail.flush()
    return [entry.event for entry in query_events(world.repo.db, limit=1000, **filters)]


def _csrf(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([0-9a-f]+)"', html)
    assert match, html[:500]
    return match.group(1)


def _login(client: TestClient, who: str) -> None:
    org, name, _ = ACCOUNTS[who]
    token = _csrf(client.get("/login").text)
    response = client.post(
        "/login",
        data={"csrf_token": token, "organisation_code": org, "name": name, "password": PASSWORD},
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text


def _is_page(route: Any) -> bool:
    return isinstance(route, APIRoute) and route.endpoint.__module__.startswith("api.pages.")


def _page_routes(app: Any) -> set[tuple[str, str]]:
    found = set()
    for context in iter_route_contexts(app.routes):
        route = context.original_route
        if _is_page(route):
            found.update((method, str(context.path)) for method in route.methods - {"HEAD", "OPTIONS"})
    return found


def test_every_page_route_is_in_the_page_matrix(world: World) -> None:
    routes = _page_routes(world.app)
    assert routes - PAGE_MATRIX.keys() == set(), "page routes missing from PAGE_MATRIX"
    assert PAGE_MATRIX.keys() - routes == set(), "PAGE_MATRIX rows for pages that do not exist"
    pages = [c.original_route for c in iter_route_contexts(world.app.routes) if _is_page(c.original_route)]
    assert all(isinstance(r, PageRoute) and not r.include_in_schema for r in pages)  # not API operations
    assert not any(path.startswith("/api/") for _, path in routes)


def _call(client: TestClient, method: str, path: str, world: World, token: str) -> int:
    url = (
        path.replace("{identifier}", world.identifier)
        .replace("{code}", CONSTRUCTION)
        .replace("{job_id}", world.job_id)
        .replace("{version}", "1")
        .replace("{decision}", "reject")
    )
    if method == "GET":
        return client.get(url, follow_redirects=False).status_code
    data: dict[str, Any] = {"csrf_token": token}
    files = None
    if path == "/login":
        data.update(organisation_code="X" * 6, name="nobody", password="wrong-password")
    elif path == "/verify":
        files = {"file": ("x.ofd", b"not a file")}
    elif path == "/window/serve":
        holder = world.document["holder"]
        data.update(matter="ZZ-PAGE-MATRIX", holder_id_type=holder["id_type"], holder_id=holder["id_number"])
    elif path.endswith("/copy"):
        data["purpose"] = "办理业务"
    elif path == "/agency/catalogue":
        data["document"] = "{}"
    elif path == "/agency/catalogue/assets":
        files = {"file": ("x.png", b"not an image")}
    elif path.endswith("/batch"):
        files = {"file": ("b.csv", b"certificate_number\n")}
    return client.post(url, data=data, files=files, follow_redirects=False).status_code


@pytest.mark.parametrize("role", ROLES)
def test_page_matrix(world: World, role: str) -> None:
    wrong = []
    with TestClient(world.app, raise_server_exceptions=False) as client:
        if role != ANON:
            _login(client, role)
        for method, path in sorted(_page_routes(world.app)):
            if (method, path) == ("POST", "/logout"):
                continue  # would end the session the rest of the loop uses; tested below
            token = _csrf(client.get("/verify").text)
            if role == W and path.startswith("/window/") and path != "/window/serve":
                holder = world.document["holder"]
                client.post(
                    "/window/serve",
                    data={"csrf_token": token, "matter": "ZZ-PAGE-MATRIX", "holder_id_type": holder["id_type"],
                          "holder_id": holder["id_number"]},
                )  # fmt: skip
            status = _call(client, method, path, world, token)
            allowed = role in PAGE_MATRIX[(method, path)]
            if path == "/login" and method == "POST":
                allowed, expected = False, 401  # the wrong password of the call above
            else:
                expected = 401 if role == ANON else 403
            if allowed and (status in (401, 403) or status >= 500):
                wrong.append(f"{method} {path}: expected allow, got {status}")
            if not allowed and status != expected:
                wrong.append(f"{method} {path}: expected {expected}, got {status}")
    assert not wrong, "\n".join(wrong)


def test_forms_without_the_browsers_csrf_token_are_refused(world: World) -> None:
    with TestClient(world.app, raise_server_exceptions=False) as client:
        org, name, _ = ACCOUNTS["window"]
        form = {"organisation_code": org, "name": name, "password": PASSWORD}
        assert client.post("/login", data=form, follow_redirects=False).status_code == 403
        with TestClient(world.app) as elsewhere:  # a token of another browser (another cookie)
            foreign = _csrf(elsewhere.get("/login").text)
        refused = client.post("/login", data={**form, "csrf_token": foreign}, follow_redirects=False)
        assert refused.status_code == 403 and "CSRF" in refused.text
        _login(client, "window")
        stale = _csrf(client.get("/login").text)
        client.cookies.set(
            "certstore_session", "not-a-session"
        )  # a forged or expired session: the form is stale
        assert client.post("/window/end", data={"csrf_token": stale}).status_code == 403
        assert client.get("/window").status_code == 401


def test_failed_logins_throttle_the_address(world: World) -> None:
    """Every failure is the same 401 answer; after CLIENT_MAX_FAILURES from one address the next attempt — even
    with the right password — is a 429 with Retry-After, and every attempt is audited without the password."""
    org, name, _ = ACCOUNTS["agency"]
    with TestClient(world.app, raise_server_exceptions=False) as client:
        for _ in range(logins.CLIENT_MAX_FAILURES):
            token = _csrf(client.get("/login").text)
            wrong = {
                "csrf_token": token,
                "organisation_code": org,
                "name": name,
                "password": "wrong-password",
            }
            response = client.post("/login", data=wrong)
            assert response.status_code == 401 and "不正确" in response.text
        token = _csrf(client.get("/login").text)
        right = {"csrf_token": token, "organisation_code": org, "name": name, "password": PASSWORD}
        throttled = client.post("/login", data=right, follow_redirects=False)
        assert throttled.status_code == 429 and int(throttled.headers["Retry-After"]) > 0
    events = _events(world, action="page_login_submit")
    assert [e.status_code for e in events] == [401] * logins.CLIENT_MAX_FAILURES + [429]
    assert all(PASSWORD not in (e.reason or "") and "wrong-password" not in (e.reason or "") for e in events)


def test_session_cookie_flags_and_logout(world: World, tmp_path: Path) -> None:
    with TestClient(world.app, raise_server_exceptions=False) as client:
        org, name, _ = ACCOUNTS["window"]
        token = _csrf(client.get("/login").text)
        response = client.post(
            "/login",
            data={"csrf_token": token, "organisation_code": org, "name": name, "password": PASSWORD},
            follow_redirects=False,
        )
        cookie = response.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Path=/" in cookie
        assert "Secure" not in cookie  # plain http on loopback
        session = client.cookies.get("certstore_session")
        assert session and client.get("/window").status_code == 200
        page = client.get("/window")
        assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
        assert page.headers["cache-control"] == "no-store"
        client.post("/logout", data={"csrf_token": _csrf(page.text)}, follow_redirects=False)
        client.cookies.set("certstore_session", session)  # replaying the old cookie after logout
        assert client.get("/window").status_code == 401
    behind_tls = create_app(
        Settings(data_dir=tmp_path / "tls", public_url="https://zz.example.gov.cn"),
        repo=world.repo,
        keystore=world.app.state.services.keystore,
    )
    with TestClient(behind_tls, base_url="https://testserver") as client:
        assert "Secure" in client.get("/login").headers["set-cookie"]


def test_page_requests_are_audited_without_the_holder_id(world: World) -> None:
    holder = world.document["holder"]
    with TestClient(world.app, raise_server_exceptions=False) as client:
        _login(client, "window")
        token = _csrf(client.get("/window").text)
        client.post(
            "/window/serve",
            data={"csrf_token": token, "matter": "ZZ-AUDIT-1", "holder_id_type": holder["id_type"],
                  "holder_id": holder["id_number"]},
        )  # fmt: skip
        assert world.identifier in client.get("/window").text
        client.post("/window/select", data={"csrf_token": token, "identifier": [world.identifier]})
    events = _events(world)
    listing = [e for e in events if e.action == "holder.lookup" and e.matter == "ZZ-AUDIT-1"]
    assert listing and listing[-1].holder_digest and listing[-1].principal == "12410100MB0000001X/窗口甲"
    attached = [e for e in events if e.action == "matter.attach_certificates"]
    assert attached and attached[-1].details["identifiers"] == [world.identifier]
    assert all(holder["id_number"] not in str(e.to_dict()) for e in events)
