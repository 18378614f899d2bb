"""``GET /api/v1/seals`` and ``POST /api/v1/seals/{es_id}/revoke|suspend|resume``: the bureau manages every seal,
an agency lists and withdraws its own; problems are RFC 9457; every change is audited once; sealing with a
revoked seal is refused."""

from __future__ import annotations

from typing import Any

from certstore.store.repository import Repository
from tests.api.conftest import AGENCY_ORG, PLANNING_ORG, Clients, construction_data
from tests.support.issuing import audit_entries


def _by_owner(clients: Clients, who: str = "bureau") -> dict[str, dict[str, Any]]:
    response = clients.by_name[who].get("/api/v1/seals")
    assert response.status_code == 200, response.text
    return {seal["owner"]["credit_code"]: seal for seal in response.json()}


def test_bureau_and_agencies_manage_seals(clients: Clients, api_repo: Repository) -> None:
    seals = _by_owner(clients)
    assert {AGENCY_ORG, PLANNING_ORG} <= set(seals)
    own, other = seals[AGENCY_ORG]["es_id"], seals[PLANNING_ORG]["es_id"]
    assert set(_by_owner(clients, "agency")) == {AGENCY_ORG}  # an agency sees its own seals
    assert clients.window.get("/api/v1/seals").status_code == 403

    denied = clients.agency.post(f"/api/v1/seals/{other}/revoke", json={"reason": "不是我的章"})
    assert denied.status_code == 403 and denied.headers["content-type"] == "application/problem+json"
    suspended = clients.agency.post(f"/api/v1/seals/{own}/suspend", json={"reason": "送修"})
    assert suspended.status_code == 200, suspended.text
    assert suspended.json()["status"] == "suspended"
    assert clients.agency.post(f"/api/v1/seals/{own}/resume", json={"reason": "修复"}).status_code == 403
    resumed = clients.bureau.post(f"/api/v1/seals/{own}/resume", json={"reason": "修复"})
    assert resumed.status_code == 200 and resumed.json()["status"] == "valid"
    revoked = clients.bureau.post(f"/api/v1/seals/{own}/revoke", json={"reason": "私钥泄露"})
    assert revoked.status_code == 200 and revoked.json()["label"] == "吊销"

    again = clients.bureau.post(f"/api/v1/seals/{own}/revoke", json={"reason": "再次"})
    assert again.status_code == 409 and again.json()["type"].endswith("/invalid-seal-transition")
    unknown = clients.bureau.post("/api/v1/seals/41019999999999/suspend", json={"reason": "x"})
    assert unknown.status_code == 404 and unknown.json()["type"].endswith("/unknown-seal")
    future = clients.bureau.post(
        f"/api/v1/seals/{other}/suspend", json={"reason": "x", "effective_at": "2099-01-01T00:00:00+08:00"}
    )
    assert future.status_code == 409 and "future" in future.json()["detail"]

    # the agency cannot seal with its revoked seal
    refused = clients.agency.post(
        "/api/v1/certificates", json=construction_data(api_repo, "410100202406109901")
    )
    assert refused.status_code == 409, refused.text
    assert refused.json()["type"].endswith("/seal-withdrawn")

    entries = [(e.action, e.outcome.value, e.principal) for e in audit_entries(api_repo)
               if e.action in ("seal.suspend", "seal.resume", "seal.revoke")]  # fmt: skip
    assert entries == [  # the agency's resume is refused by the route's role check, before the use case
        ("seal.revoke", "deny", f"{AGENCY_ORG}/agency"),
        ("seal.suspend", "allow", f"{AGENCY_ORG}/agency"),
        ("seal.resume", "allow", "11410100MB1700000X/bureau"),
        ("seal.revoke", "allow", "11410100MB1700000X/bureau"),
    ]
