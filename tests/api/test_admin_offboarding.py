"""Offboarding and login hardening through the running application (issue 17, items 3 and 5).

- A real ``certstore serve`` with two workers: the bureau disables a clerk through ``POST
  /api/v1/principals/disable``; the clerk's token and page session are refused on the very next request in
  either worker (nothing is cached), and the page login with the right password gets exactly the answer of an
  unknown name; ``certstore user enable`` (another process) restores token and login. One audit entry per call.
- The page login (TestClient): every failure looks the same; an address over its limit gets 429 with
  ``Retry-After`` while the account still logs in from another address."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from api import create_app
from api.settings import Settings
from certstore.access import Role
from certstore.audit import chain_pending
from certstore.keystore import KeyStore
from certstore.services import access, logins
from certstore.store.db import Database, database_url
from certstore.store.repository import Repository
from devservers.api import ApiServer
from tests.support import issuing

CLERK_ORG = "12410100MB0000001X"
CLERK = "张三"
BUREAU_ORG = "11410100MB1700000X"
PASSWORD = "correct-horse-9"


def _csrf(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([0-9a-f]+)"', html)
    assert match, html[:500]
    return match.group(1)


def _login(client: httpx.Client | TestClient, name: str, password: str) -> httpx.Response:
    token = _csrf(client.get("/login").text)
    form = {"csrf_token": token, "organisation_code": CLERK_ORG, "name": name, "password": password}
    return client.post("/login", data=form, follow_redirects=False)


def _answer(response: httpx.Response) -> tuple[int, str]:
    """Status and body of a login answer without what differs by the request anyway: its request id, the form's
    CSRF token (bound to the browser) and the name typed (the form shows it again)."""
    text = re.sub(r"请求编号 [0-9a-f]+", "请求编号 -", response.text)
    text = re.sub(r'(name="csrf_token" value=")[0-9a-f]+"', r'\1-"', text)
    return response.status_code, re.sub(r'(autocomplete="username" value=")[^"]*"', r'\1-"', text)


def _prepare(data_dir: Path, env: dict[str, str]) -> tuple[Repository, str, str]:
    with Database(database_url(data_dir, env=env)) as database:
        database.upgrade()
    repo = Repository.open(data_dir, env=env)
    logins.set_password(repo, organisation_code=CLERK_ORG, name=CLERK, password=PASSWORD, role=Role.WINDOW)
    clerk = access.create_token(repo, role=Role.WINDOW, organisation_code=CLERK_ORG, name=CLERK).token
    bureau = access.create_token(repo, role=Role.BUREAU, organisation_code=BUREAU_ORG, name="钱七").token
    return repo, clerk, bureau


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ApiServer, Repository, str, str]]:
    """A fresh data directory (SQLite) with a window clerk (token and password) and a bureau token, served by
    ``certstore serve --workers 2``."""
    root = tmp_path_factory.mktemp("offboarding")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CERTSTORE_")}
    repo, clerk, bureau = _prepare(root / "data", env)
    server = ApiServer(root / "data", env=env, workers=2)
    try:
        server.start()
        yield server, repo, clerk, bureau
    finally:
        server.stop()
        repo.db.dispose()


def test_a_disabled_clerk_is_out_at_once_and_back_when_enabled(
    served: tuple[ApiServer, Repository, str, str],
) -> None:
    """Bureau disables the clerk: token → 401, page session → 401 (login form), login with the right password →
    the unknown-name answer, on every following request (two workers). ``certstore user enable`` → the token and
    the password work again; the old session stays ended. The disable is one audit entry, written by the use
    case (none added by the middleware), naming the bureau, the route and the target; the enable names the
    operator."""
    server, repo, clerk_token, bureau_token = served
    clerk = httpx.Client(base_url=server.base_url, headers={"Authorization": f"Bearer {clerk_token}"})
    bureau = httpx.Client(base_url=server.base_url, headers={"Authorization": f"Bearer {bureau_token}"})
    browser = httpx.Client(base_url=server.base_url)
    with clerk, bureau, browser:
        assert clerk.get("/api/v1/grants").status_code == 200
        assert _login(browser, CLERK, PASSWORD).status_code == 303
        assert browser.get("/window").status_code == 200
        unknown = _answer(_login(httpx.Client(base_url=server.base_url), "nobody", PASSWORD))
        assert unknown[0] == 401

        disabled = bureau.post(
            "/api/v1/principals/disable",
            json={"organisation_code": CLERK_ORG, "name": CLERK, "reason": "离职"},
            headers={"X-Request-ID": "offboard-1"},
        )
        assert disabled.status_code == 200, disabled.text
        body = disabled.json()
        assert body["principal"] == f"{CLERK_ORG}/{CLERK}" and body["changed"] is True
        assert body["sessions_ended"] == 1 and body["disabled_at"]
        for _ in range(4):  # both workers
            refused = clerk.get("/api/v1/grants")
            assert refused.status_code == 401 and "disabled" in refused.json()["detail"]
        page = browser.get("/window")
        assert page.status_code == 401 and 'action="/login"' in page.text
        with httpx.Client(base_url=server.base_url) as fresh:
            assert _answer(_login(fresh, CLERK, PASSWORD)) == unknown
        missing = bureau.post(
            "/api/v1/principals/disable", json={"organisation_code": CLERK_ORG, "name": "无此人"}
        )
        assert missing.status_code == 404

        env = {k: v for k, v in os.environ.items() if not k.startswith("CERTSTORE_")}
        enabled = subprocess.run(
            [sys.executable, "-c", "from certstore.cli import main; main()", "--data-dir", str(server.data_dir),
             "user", "enable", f"{CLERK_ORG}/{CLERK}", "--reason", "复职"],
            env=env, capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert enabled.returncode == 0, enabled.stderr
        assert "enabled" in enabled.stdout
        assert clerk.get("/api/v1/grants").status_code == 200
        assert browser.get("/window").status_code == 401  # the session the disable ended stays ended
        assert _login(browser, CLERK, PASSWORD).status_code == 303
        assert browser.get("/window").status_code == 200

    chain_pending(repo.db)
    events = issuing.audit_entries(repo)
    offboard = [e for e in events if e.request_id == "offboard-1"]
    assert len(offboard) == 1
    event = offboard[0]
    assert (event.action, event.principal, event.resource) == (
        "principal.disable", f"{BUREAU_ORG}/钱七", "POST /api/v1/principals/disable",
    )  # fmt: skip
    assert event.details["target"] == f"{CLERK_ORG}/{CLERK}" and event.reason == "离职"
    enable = [e for e in events if e.action == "principal.enable"]
    assert len(enable) == 1 and enable[0].role == "operator" and enable[0].reason == "复职"


@pytest.fixture
def page_app(tmp_path: Path) -> Iterator[tuple[object, Repository]]:
    """The application (pages and API) in-process on a fresh SQLite data directory with the clerk's password."""
    env: dict[str, str] = {}
    repo, _clerk, _bureau = _prepare(tmp_path / "data", env)
    settings = Settings(data_dir=tmp_path / "data", public_url="http://testserver")
    app = create_app(settings, repo=repo, keystore=KeyStore(tmp_path / "data" / "keys"))
    try:
        yield app, repo
    finally:
        repo.db.dispose()


def test_page_login_throttles_the_address_not_the_account(page_app: tuple[object, Repository]) -> None:
    """A wrong password and an unknown name get one answer (401, the same page); after CLIENT_MAX_FAILURES
    failures the address gets 429 with Retry-After — for any name, even with the right password — while the same
    account logs in at once from another address."""
    app, _repo = page_app
    with TestClient(app, client=("192.0.2.10", 40000)) as attacker:
        answers = {_answer(_login(attacker, name, "wrong-password")) for name in (CLERK, "nobody")}
        assert len(answers) == 1 and next(iter(answers))[0] == 401
        for _ in range(logins.CLIENT_MAX_FAILURES - 2):
            assert _login(attacker, CLERK, "wrong-password").status_code == 401
        throttled = _login(attacker, CLERK, PASSWORD)
        assert throttled.status_code == 429 and int(throttled.headers["Retry-After"]) > 0
        assert _login(attacker, "nobody", PASSWORD).status_code == 429
        colleague = TestClient(app, client=("198.51.100.20", 40000))  # the same application, another address
        assert _login(colleague, CLERK, PASSWORD).status_code == 303
        assert colleague.get("/window").status_code == 200
