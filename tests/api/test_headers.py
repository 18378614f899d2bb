"""Security headers on every kind of answer (api/headers.py; issue 17 item 5): API JSON, problems (401, 404, 413,
429, 500 — the last sent by Starlette's outermost error middleware), ``/openapi.json``, ``/docs`` and ``/redoc``
(a policy that names their inline script by hash, never ``'unsafe-inline'`` for scripts), static files, and the
pages, which keep their own stricter policy."""

from __future__ import annotations

import base64
import hashlib
import re
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.headers import API_CSP
from tests.api.conftest import Clients

COMMON = {"x-content-type-options": "nosniff", "x-frame-options": "DENY", "referrer-policy": "no-referrer"}


@pytest.fixture
def database_backend() -> str:
    """Headers do not depend on the database: SQLite only."""
    return "sqlite"


def _secured(answer: Any, csp: str | None = API_CSP) -> None:
    for name, value in COMMON.items():
        assert answer.headers.get(name) == value, (answer.request.url, name, answer.headers.get(name))
    if csp is not None:
        assert answer.headers["content-security-policy"] == csp, answer.request.url
    assert "frame-ancestors 'none'" in answer.headers["content-security-policy"]


def test_api_answers_problems_and_the_openapi_document_carry_the_headers(app: Any, clients: Clients) -> None:
    """JSON, problems of the routes and of the middleware, the OpenAPI document, a static file."""
    answers = [
        clients.anonymous.get("/api/v1/health"),  # JSON
        clients.agency.get("/api/v1/catalogue"),  # JSON of an authenticated route
        clients.anonymous.get("/api/v1/catalogue"),  # 401, answered before the route
        clients.agency.get("/api/v1/no-such-route"),  # 404
        clients.agency.post(
            "/api/v1/certificates", content=b"{", headers={"Content-Type": "application/json"}
        ),
        clients.agency.post("/api/v1/certificates", headers={"Content-Length": str(10**9)}, content=b""),
        clients.anonymous.get("/openapi.json"),
        clients.anonymous.get("/static/site.css"),
    ]
    assert [a.status_code for a in answers] == [200, 200, 401, 404, 422, 413, 200, 200]
    for answer in answers:
        _secured(answer)


def test_the_rate_limit_answer_and_a_500_carry_the_headers(app: Any, clients: Clients) -> None:
    """429 from the rate-limit middleware; a 500 from a failing route (answered outside every user middleware)."""
    statuses = [clients.anonymous.get("/api/v1/public/certificates/NO-SUCH/status") for _ in range(12)]
    assert statuses[-1].status_code == 429
    _secured(statuses[-1])

    def boom() -> None:
        raise RuntimeError("boom")

    app.add_api_route("/api/v1/test-boom", boom)
    failed = clients.agency.get("/api/v1/test-boom")
    assert failed.status_code == 500
    _secured(failed)


def test_the_documentation_pages_get_a_policy_naming_their_inline_script(app: Any, clients: Clients) -> None:
    """``/docs`` and ``/redoc`` (api/docs_pages.py): scripts only from this server and the page's own inline
    script by its SHA-256 — no ``'unsafe-inline'`` script, no other origin; framing refused."""
    for path in ("/docs", "/redoc", "/docs/oauth2-redirect"):
        page = clients.anonymous.get(path)
        assert page.status_code == 200
        _secured(page, csp=None)
        policy = page.headers["content-security-policy"]
        script_src = re.search(r"script-src ([^;]*)", policy)
        assert script_src is not None and "'unsafe-inline'" not in script_src.group(1)
        assert policy.startswith("default-src 'none'")
        assert "https:" not in policy and "http:" not in policy  # nothing from another origin (a CDN)
        inline = re.findall(r"<script(?![^>]*\bsrc=)[^>]*>(.*?)</script>", page.text, re.DOTALL)
        if path == "/docs":
            assert inline, "the Swagger UI page has its inline script"
        for script in inline:
            digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
            assert f"'sha256-{digest}'" in script_src.group(1)


def test_pages_keep_their_own_policy(app: Any, clients: Clients) -> None:
    """A page sets its stricter policy (and referrer policy) itself; the middleware adds only what is missing."""
    page = clients.anonymous.get("/verify")
    assert page.status_code == 200
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["x-frame-options"] == "DENY"
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["content-security-policy"].count("frame-ancestors") == 1
    assert len(page.headers.get_list("content-security-policy")) == 1


def test_a_response_never_carries_a_header_twice(app: Any) -> None:
    """The middleware does not add a header the answer already has (any capitalisation)."""
    with TestClient(app) as client:
        for path in ("/api/v1/health", "/openapi.json", "/docs", "/verify"):
            answer = client.get(path)
            for name in ("x-content-type-options", "x-frame-options", "content-security-policy"):
                assert len(answer.headers.get_list(name)) == 1, (path, name)
