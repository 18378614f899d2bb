"""The authorization matrix: every endpoint × every role (and anonymous), expected allow/deny in one table.

The table is the specification; the test enumerates the application's routes, so an endpoint missing from the
table fails the suite. Each call uses the context a well-behaved caller of that role would send (window staff
state the matter and the holder; an agency acts on its own certificates), so "deny" means the role itself is
refused — the finer rules (知悉范围, other agencies' certificates, grants) have their own tests.

"allow" means neither 401 nor 403 nor a server error (the call may still fail on purpose, e.g. 409 for a repeated
action); "deny"
means 403 for an authenticated role and 401 for anonymous.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.routing import APIRoute, iter_route_contexts

from api.pages.common import PageRoute
from certstore.store.repository import Repository
from tests.api.conftest import CONSTRUCTION, Clients, construction_data, serving, serving_headers

ROLES = ("anonymous", "agency", "window", "bureau", "auditor", "upstream", "case_system")
A, W, B, AU, U, ANON = "agency", "window", "bureau", "auditor", "upstream", "anonymous"
C = "case_system"
ALL = {A, W, B, AU, U, C}

#: (method, path) → roles allowed. Everything not listed is denied.
MATRIX: dict[tuple[str, str], set[str]] = {
    ("GET", "/api/v1/health"): ALL | {ANON},
    ("GET", "/api/v1/public/certificates/{identifier}/status"): ALL | {ANON},
    ("POST", "/api/v1/public/verify"): ALL | {ANON},
    ("GET", "/api/v1/status/snapshot"): ALL | {ANON},
    ("POST", "/api/v1/tsa"): ALL | {ANON},  # the time-stamp authority (RFC 3161), rate limited per address
    ("GET", "/api/v1/catalogue"): ALL,
    ("GET", "/api/v1/catalogue/submissions"): {A, B},
    ("GET", "/api/v1/catalogue/{code}"): ALL,
    ("GET", "/api/v1/catalogue/{code}/form-schema"): ALL,
    ("POST", "/api/v1/catalogue"): {A, B},
    ("POST", "/api/v1/catalogue/{code}/versions/{version}/approve"): {B},
    ("POST", "/api/v1/catalogue/{code}/versions/{version}/reject"): {B},
    ("POST", "/api/v1/catalogue/assets"): {A, B},
    ("POST", "/api/v1/catalogue/checks"): {A, B},
    ("POST", "/api/v1/catalogue/preview"): {A, B},
    ("GET", "/api/v1/catalogue/{code}/versions/{version}/checks"): {A, B},
    ("GET", "/api/v1/catalogue/{code}/versions/{version}/preview.png"): {A, B},
    ("POST", "/api/v1/certificates"): {A},
    ("GET", "/api/v1/identifiers"): {A},
    ("GET", "/api/v1/certificates"): {A},  # others need a grant (tested with grants)
    ("GET", "/api/v1/certificates/{identifier}"): {A, W},
    ("GET", "/api/v1/certificates/{identifier}/history"): {A, W},
    ("GET", "/api/v1/certificates/{identifier}/file"): {A},
    ("GET", "/api/v1/certificates/{identifier}/preview.png"): {A, W},
    ("POST", "/api/v1/certificates/{identifier}/change"): {A},
    ("POST", "/api/v1/certificates/{identifier}/renew"): {A},
    ("POST", "/api/v1/certificates/{identifier}/actions"): {A},
    ("GET", "/api/v1/certificates/{identifier}/status"): {A, W},
    ("POST", "/api/v1/certificates/{identifier}/copies"): {W},
    ("GET", "/api/v1/holders/{id_type}/{id_number}/certificates"): {A, W},  # then 410 Gone (issue 17)
    ("POST", "/api/v1/holders/certificates"): {A, W},
    ("POST", "/api/v1/batches"): {A},
    ("GET", "/api/v1/batches/{job_id}"): {A},
    ("POST", "/api/v1/reviews"): {W},
    ("GET", "/api/v1/reviews"): {A, W, B},
    ("GET", "/api/v1/reviews/{review_id}"): {A, W, B},
    ("POST", "/api/v1/reviews/{review_id}/answer"): {A},
    ("POST", "/api/v1/reviews/{review_id}/withdraw"): {W},
    ("POST", "/api/v1/certificates/{identifier}/inspections"): {A},
    ("GET", "/api/v1/certificates/{identifier}/inspections"): {A, W},
    ("GET", "/api/v1/inspections/due"): {A},
    ("GET", "/api/v1/seals"): {A, B, AU},
    ("POST", "/api/v1/seals/{es_id}/revoke"): {A, B},  # an agency: its own seals only
    ("POST", "/api/v1/seals/{es_id}/suspend"): {A, B},
    ("POST", "/api/v1/seals/{es_id}/resume"): {B},
    ("POST", "/api/v1/grants"): {B},
    ("GET", "/api/v1/grants"): {A, W, B, U},
    ("POST", "/api/v1/grants/{grant_id}/revoke"): {B},
    ("POST", "/api/v1/principals/disable"): {B},  # offboarding (the matrix sends no body: 422 for the bureau)
    ("POST", "/api/v1/principals/enable"): {B},
    ("GET", "/api/v1/calendar"): ALL,
    ("PUT", "/api/v1/calendar/{day}"): {B},
    ("DELETE", "/api/v1/calendar/{day}"): {B},
    ("GET", "/api/v1/audit/events"): {AU},
    ("GET", "/api/v1/upstream/changes"): {U},
    ("GET", "/api/v1/exchange/late"): {A, B},
    ("GET", "/api/v1/exchange/offenders"): {B},
    ("POST", "/api/v1/aggregate/batches"): {U},
    ("GET", "/metrics"): {B},
    ("GET", "/api/v1/audit/export"): {AU},
    ("GET", "/api/v1/audit/summary"): {AU},
    ("GET", "/api/v1/audit/checkpoints"): {AU},
    ("POST", "/api/v1/audit/checkpoints"): {AU},
    ("GET", "/api/v1/audit/proofs/inclusion"): {AU},
    ("GET", "/api/v1/audit/proofs/consistency"): {AU},
    ("POST", "/api/v1/matters"): {C},  # the case-handling system registers its unit's matters (issue 19)
    ("GET", "/api/v1/matters/{matter}"): {C, W},
    ("POST", "/api/v1/matters/{matter}/close"): {C},
    # the holder API takes holder tokens only (tests/api/test_holder_api.py): every staff role is refused
    ("POST", "/api/v1/holder/tokens"): set(),
    ("GET", "/api/v1/holder/tokens"): set(),
    ("DELETE", "/api/v1/holder/tokens/{token_id}"): set(),
    ("GET", "/api/v1/holder/me"): set(),
    ("GET", "/api/v1/holder/certificates"): set(),
    ("GET", "/api/v1/holder/certificates/{identifier}"): set(),
    ("GET", "/api/v1/holder/certificates/{identifier}/file"): set(),
    ("GET", "/api/v1/holder/certificates/{identifier}/preview.png"): set(),
    ("GET", "/api/v1/holder/access-log"): set(),
    ("GET", "/api/v1/holder/authorisations"): set(),
    ("POST", "/api/v1/holder/authorisations"): set(),
    ("POST", "/api/v1/holder/authorisations/{authorisation_id}/revoke"): set(),
    ("GET", "/api/v1/holder/reviews"): set(),
    ("POST", "/api/v1/holder/reviews"): set(),
    ("PUT", "/api/v1/holder/contact"): set(),
}

#: Routes outside the API contract (documentation and the HTML page of the QR code), public by design.
UNAUDITED_PUBLIC = {"/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json", "/v/{identifier}"}


def _api_routes(app: Any) -> set[tuple[str, str]]:
    """Every (method, path) the application routes, included routers flattened (hidden routes too)."""
    found = set()
    for context in iter_route_contexts(app.routes):
        route = context.original_route
        if isinstance(route, PageRoute):
            continue  # web pages: tests/pages/test_page_access.py (PAGE_MATRIX, with session logins)
        if isinstance(route, APIRoute) and context.path not in UNAUDITED_PUBLIC:
            for method in route.methods - {"HEAD", "OPTIONS"}:
                found.add((method, str(context.path)))
    return found


def test_every_route_is_in_the_matrix(app: Any) -> None:
    routes = _api_routes(app)
    assert routes - MATRIX.keys() == set(), "routes missing from the authorization matrix"
    assert MATRIX.keys() - routes == set(), "matrix rows for routes that do not exist"


@dataclass
class World:
    """Resources the calls refer to."""

    identifier: str
    document: dict[str, Any]
    review_id: int
    grant_id: int
    job_id: str


@pytest.fixture
def world(clients: Clients, api_repo: Repository) -> World:
    document = construction_data(api_repo)
    issued = clients.agency.post("/api/v1/certificates", json=document)
    assert issued.status_code == 201, issued.text
    identifier = issued.json()["identifier"]
    review = clients.window.post(
        "/api/v1/reviews",
        json={"identifier": identifier, "reason": "核对", **serving(document, matter="ZZ-REVIEW-1")},
    )
    assert review.status_code == 201, review.text
    grant = clients.bureau.post(
        "/api/v1/grants",
        json={
            "organisation_code": "12410100MB0000001X",
            "purpose": "测试",
            "valid_until": (datetime.now(UTC) + timedelta(days=1)).isoformat(),
        },
    )
    assert grant.status_code == 201, grant.text
    job = clients.agency.post(
        "/api/v1/batches", json=[construction_data(api_repo, number="410100202406100002")]
    )
    assert job.status_code == 202, job.text
    return World(identifier, document, review.json()["id"], grant.json()["id"], job.json()["id"])


def _call(clients: Clients, role: str, method: str, path: str, world: World) -> int:
    client = getattr(clients, role)
    document = world.document
    holder = document["holder"]
    url = (
        path.replace("{identifier}", world.identifier)
        .replace("{code}", CONSTRUCTION)
        .replace("{version}", "1")
        .replace("{review_id}", str(world.review_id))
        .replace("{grant_id}", str(world.grant_id))
        .replace("{job_id}", world.job_id)
        .replace("{day}", "2026-10-01")
        .replace("{id_type}", holder["id_type"])
        .replace("{id_number}", holder["id_number"])
        .replace("{matter}", "ZZ-MATRIX-1")
    )
    params: dict[str, Any] = {}
    headers: dict[str, str] = {}
    if role == W:  # the matter in the query, the holder in headers (never in the URL)
        params["matter"] = "ZZ-MATRIX-1"
        headers.update(serving_headers(document))
    if path == "/api/v1/certificates" and role == A:
        params["issuer_code"] = "11410100990000025A"
    if path == "/api/v1/identifiers":
        params.update(catalogue_code=CONSTRUCTION, certificate_number=document["certificate_number"])
    if path == "/api/v1/inspections/due":
        params["year"] = 2026
    bodies: dict[tuple[str, str], Any] = {
        ("POST", "/api/v1/certificates"): document,
        ("POST", "/api/v1/catalogue"): {"not": "a catalogue entry"},
        ("POST", "/api/v1/catalogue/checks"): {"not": "a catalogue entry"},
        ("POST", "/api/v1/catalogue/preview"): {"not": "a catalogue entry"},
        ("POST", "/api/v1/catalogue/{code}/versions/{version}/reject"): {"note": "x"},
        ("POST", "/api/v1/certificates/{identifier}/change"): {"reason": "x", "data": document},
        ("POST", "/api/v1/certificates/{identifier}/renew"): {"reason": "x", "valid_until": None},
        ("POST", "/api/v1/certificates/{identifier}/actions"): {"action": "resume", "reason": "x"},
        ("POST", "/api/v1/certificates/{identifier}/copies"): {
            "purpose": "办理业务",
            **serving(document, matter="ZZ-MATRIX-1"),
        },
        ("POST", "/api/v1/batches"): [document],
        ("POST", "/api/v1/holders/certificates"): {
            "holder_id_type": holder["id_type"],
            "holder_id": holder["id_number"],
            **({"matter": "ZZ-MATRIX-1"} if role == W else {}),
        },
        ("POST", "/api/v1/reviews"): {
            "identifier": world.identifier,
            "reason": "x",
            **serving(document, matter="ZZ-MATRIX-1"),
        },
        ("POST", "/api/v1/reviews/{review_id}/answer"): {"outcome": "confirmed", "answer": "无误"},
        ("POST", "/api/v1/certificates/{identifier}/inspections"): {
            "year": 2026,
            "result": "passed",
            "inspected_on": "2026-11-20",
        },
        ("POST", "/api/v1/grants"): {
            "organisation_code": "12410100MB0000001X",
            "purpose": "x",
            "valid_until": (datetime.now(UTC) + timedelta(days=1)).isoformat(),
        },
        ("PUT", "/api/v1/calendar/{day}"): {"kind": "holiday", "name": "国庆节"},
        ("POST", "/api/v1/matters"): {
            "matter": "ZZ-MATRIX-2",
            "holder_id_type": holder["id_type"],
            "holder_id": holder["id_number"],
            "purpose": "x",
            "valid_until": (datetime.now(UTC) + timedelta(days=1)).isoformat(),
        },
        ("POST", "/api/v1/matters/{matter}/close"): {"withdrawn": True},
        **{
            ("POST", f"/api/v1/seals/{{es_id}}/{act}"): {"reason": "x"}
            for act in ("suspend", "resume", "revoke")
        },
    }
    if (method, path) == ("POST", "/api/v1/public/verify"):
        return client.post(url, files={"file": ("x.ofd", b"not a file")}).status_code
    if (method, path) == ("POST", "/api/v1/catalogue/assets"):
        return client.post(url, files={"file": ("x.png", b"not an image")}).status_code
    body = bodies.get((method, path))
    return client.request(method, url, params=params, headers=headers, json=body).status_code


@pytest.mark.parametrize("role", ROLES)
def test_matrix(clients: Clients, world: World, app: Any, role: str) -> None:
    wrong = []
    for method, path in sorted(_api_routes(app)):
        status = _call(clients, role, method, path, world)
        allowed = role in MATRIX[(method, path)]
        if allowed and (status in (401, 403) or status >= 500):
            wrong.append(f"{method} {path}: expected allow, got {status}")
        if not allowed and status != (401 if role == ANON else 403):
            wrong.append(f"{method} {path}: expected deny, got {status}")
    assert not wrong, "\n".join(wrong)
