"""The interactive API documentation works without internet access (issue 21, item 2): Swagger UI at ``/docs`` and
ReDoc at ``/redoc`` load their scripts, stylesheet and icon from the server itself (api/docs_pages.py), so on a
government intranet machine they are not a blank page.

Chromium opens each page with every request that leaves the server refused (``page.route``), and the page shows
the operations of the OpenAPI document; no request to another host is even attempted, and the browser reports no
error (a script or style refused by the page's Content-Security-Policy would be one)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import uvicorn

from api.app import create_app
from api.settings import Settings
from certstore.store.blobs import FileBlobStore
from certstore.store.db import Database
from certstore.store.repository import Repository
from devservers.ports import free_port

#: The image ReDoc's menu always asks for (``<img src>`` hard-coded in redoc.standalone.js).
REDOCLY_LOGO = "https://cdn.redoc.ly/redoc/logo-mini.svg"


@pytest.fixture(scope="module")
def docs_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The API alone (no certificates needed) on a throwaway repository, served by uvicorn in a thread on a free
    loopback port: its base URL."""
    root = tmp_path_factory.mktemp("docs-offline")
    database = Database(f"sqlite:///{root / 'db.sqlite'}")
    database.upgrade()
    repo = Repository(db=database, blobs=FileBlobStore(root / "blobs"), holder_key=bytes(32))
    app = create_app(Settings(data_dir=root, batch_worker=False), repo=repo)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the documentation server did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        database.dispose()


@pytest.fixture
def offline(browser: Any, docs_site: str) -> Iterator[tuple[Any, list[str], list[str]]]:
    """A page at 1366×768 with every non-local request aborted: (page, the refused URLs, the browser's errors)."""
    context = browser.new_context(base_url=docs_site, viewport={"width": 1366, "height": 768}, locale="zh-CN")
    context.set_default_timeout(15_000)
    page = context.new_page()
    local = urlsplit(docs_site).netloc
    refused: list[str] = []
    errors: list[str] = []

    def only_local(route: Any) -> None:
        url = route.request.url
        if urlsplit(url).scheme in ("data", "blob") or urlsplit(url).netloc == local:
            route.continue_()
        else:
            refused.append(url)
            route.abort("internetdisconnected")

    page.route("**/*", only_local)
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    try:
        yield page, refused, errors
    finally:
        context.close()


def test_swagger_ui_shows_the_operations_offline(
    offline: tuple[Any, list[str], list[str]], shot: Any
) -> None:
    """``/docs`` with the network blocked: Swagger UI renders every operation of the document, from local
    assets only."""
    page, refused, errors = offline
    page.goto("/docs")
    operations = page.locator(".opblock")
    operations.first.wait_for(state="visible")
    assert operations.count() >= 30
    assert page.locator(".opblock-summary-path", has_text="/api/v1/certificates").first.is_visible()
    assert page.locator(".info .title").inner_text().startswith("certstore — 电子证照库 API")
    # an operation opens, with its example body (the one tests/api/test_openapi_examples.py sends)
    issue = page.locator("#operations-generation-issue_certificate_api_v1_certificates_post")
    issue.locator(".opblock-summary").click()
    assert "builder" in issue.locator(".body-param__example, .microlight").first.inner_text()
    shot(page, "docs-offline-swagger-ui", full_page=False)
    assert refused == [], f"the documentation reached outside the server: {refused}"
    assert errors == [], errors


def test_redoc_shows_the_operations_offline(offline: tuple[Any, list[str], list[str]], shot: Any) -> None:
    """``/redoc`` with the network blocked: ReDoc renders the document's operations, from local assets only."""
    page, refused, errors = offline
    page.goto("/redoc")
    page.locator("h1", has_text="certstore — 电子证照库 API").wait_for(state="visible")
    assert page.locator("[data-section-id^='operation/']").count() >= 30
    shot(page, "docs-offline-redoc", full_page=False)  # the whole document is pages long
    assert refused == [], f"the documentation reached outside the server: {refused}"
    # ReDoc's bundle always adds the Redocly logo from its CDN to the menu's foot; the page's policy refuses it
    # before any request is made (ReDoc then leaves the logo out) — the one browser error, and it is expected
    assert [e for e in errors if REDOCLY_LOGO not in e] == [], errors


def test_the_assets_come_from_the_server(docs_site: str) -> None:
    """The pages name only local URLs for their scripts, stylesheet and icon, and the server sends them."""
    for path, assets in (
        ("/docs", ("swagger-ui-bundle.js", "swagger-ui.css", "favicon.png")),
        ("/redoc", ("redoc.standalone.js", "favicon.png")),
    ):
        html = httpx.get(f"{docs_site}{path}", timeout=10).text
        assert "cdn.jsdelivr.net" not in html and "fonts.googleapis.com" not in html
        assert "fastapi.tiangolo.com" not in html
        for asset in assets:
            assert f"/docs/assets/{asset}" in html
            answer = httpx.get(f"{docs_site}/docs/assets/{asset}", timeout=10)
            assert answer.status_code == 200 and len(answer.content) > 1000, asset
