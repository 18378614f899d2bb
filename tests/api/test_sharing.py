"""Sharing and knowledge scope (知悉范围) over HTTP: window staff see only the holder they serve, for a stated
matter; bulk access needs a grant; every denial is a 403 with its reason and lands in the audit log."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from certstore.store.repository import Repository
from tests.api.conftest import AGENCY_ORG, CONSTRUCTION, Clients, construction_data, serving
from tests.services.conftest import CREDIT_CODES

OTHER_HOLDER = {"name": "郑州另一置业有限公司", "id_type": "001", "id_number": CREDIT_CODES[1]}


def _issue(clients: Clients, document: dict[str, Any]) -> str:
    response = clients.agency.post("/api/v1/certificates", json=document)
    assert response.status_code == 201, response.text
    return str(response.json()["identifier"])


def _holder_path(document: dict[str, Any]) -> str:
    holder = document["holder"]
    return f"/api/v1/holders/{holder['id_type']}/{holder['id_number']}/certificates"


def test_window_lists_the_served_holders_certificates_for_a_matter(
    clients: Clients, api_repo: Repository
) -> None:
    mine = construction_data(api_repo)
    theirs = construction_data(api_repo, number="410100202406100002", holder=OTHER_HOLDER)
    identifier = _issue(clients, mine)
    _issue(clients, theirs)
    response = clients.window.get(_holder_path(mine), params={"matter": "ZZ2026112600001"})
    assert response.status_code == 200, response.text
    assert [c["identifier"] for c in response.json()] == [identifier]


def test_window_cannot_omit_the_matter(clients: Clients, api_repo: Repository) -> None:
    document = construction_data(api_repo)
    identifier = _issue(clients, document)
    response = clients.window.get(_holder_path(document))
    assert response.status_code == 403
    assert "matter" in response.json()["detail"]
    single = clients.window.get(f"/api/v1/certificates/{identifier}", params={"holder_id_type": "001"})
    assert single.status_code == 403


def test_window_cannot_read_another_holders_certificate(clients: Clients, api_repo: Repository) -> None:
    mine = construction_data(api_repo)
    theirs = construction_data(api_repo, number="410100202406100002", holder=OTHER_HOLDER)
    _issue(clients, mine)
    their_identifier = _issue(clients, theirs)
    response = clients.window.get(f"/api/v1/certificates/{their_identifier}", params=serving(mine, "ZZ-A"))
    assert response.status_code == 403
    assert "holder you are serving" in response.json()["detail"]
    for suffix in ("/history", "/preview.png", "/status", "/inspections"):
        denied = clients.window.get(
            f"/api/v1/certificates/{their_identifier}{suffix}", params=serving(mine, "ZZ-A")
        )
        assert denied.status_code == 403, suffix


def test_window_cannot_page_through_holders(clients: Clients, api_repo: Repository) -> None:
    mine = construction_data(api_repo)
    theirs = construction_data(api_repo, number="410100202406100002", holder=OTHER_HOLDER)
    _issue(clients, mine)
    _issue(clients, theirs)
    assert clients.window.get(_holder_path(mine), params={"matter": "ZZ-ONE"}).status_code == 200
    # the same matter cannot be reused for another holder …
    reused = clients.window.get(_holder_path(theirs), params={"matter": "ZZ-ONE"})
    assert reused.status_code == 403
    assert "one matter serves one holder" in reused.json()["detail"]
    # … and there is no listing across holders without a grant
    bulk = clients.window.get("/api/v1/certificates", params={"catalogue_code": CONSTRUCTION})
    assert bulk.status_code == 403
    assert "grant" in bulk.json()["detail"]
    assert clients.window.get("/api/v1/certificates", params={"after": 0, "limit": 500}).status_code == 403


def test_bulk_queries_need_an_active_grant_covering_them(clients: Clients, api_repo: Repository) -> None:
    _issue(clients, construction_data(api_repo))
    until = (datetime.now(UTC) + timedelta(days=30)).isoformat()
    grant = clients.bureau.post(
        "/api/v1/grants",
        json={
            "organisation_code": "12410100MB0000001X",
            "purpose": "施工许可统计分析",
            "valid_until": until,
            "scope": {"catalogue_codes": [CONSTRUCTION]},
        },
    ).json()
    granted = clients.window.get(
        "/api/v1/certificates", params={"catalogue_code": CONSTRUCTION, "grant": grant["id"]}
    )
    assert granted.status_code == 200, granted.text
    assert len(granted.json()["items"]) == 1
    outside = clients.window.get("/api/v1/certificates", params={"grant": grant["id"]})
    assert outside.status_code == 403 and "does not cover" in outside.json()["detail"]
    foreign = clients.other_window.get(
        "/api/v1/certificates", params={"catalogue_code": CONSTRUCTION, "grant": grant["id"]}
    )
    assert foreign.status_code == 403
    assert clients.bureau.post(f"/api/v1/grants/{grant['id']}/revoke").status_code == 200
    revoked = clients.window.get(
        "/api/v1/certificates", params={"catalogue_code": CONSTRUCTION, "grant": grant["id"]}
    )
    assert revoked.status_code == 403 and "revoked" in revoked.json()["detail"]


def test_an_agency_sees_only_its_own_certificates(clients: Clients, api_repo: Repository) -> None:
    document = construction_data(api_repo)
    identifier = _issue(clients, document)
    denied = clients.other_agency.get(f"/api/v1/certificates/{identifier}")
    assert denied.status_code == 403
    assert clients.other_agency.get(_holder_path(document)).json() == []
    assert (
        clients.other_agency.post(
            f"/api/v1/certificates/{identifier}/actions", json={"action": "revoke", "reason": "x"}
        ).status_code
        == 403
    )
    own = clients.agency.get("/api/v1/certificates", params={"issuer_code": AGENCY_ORG})
    assert own.status_code == 200 and len(own.json()["items"]) == 1


def test_status_changes_are_visible_immediately_and_publicly_without_personal_data(
    clients: Clients, api_repo: Repository
) -> None:
    document = construction_data(api_repo)
    identifier = _issue(clients, document)
    suspended = clients.agency.post(
        f"/api/v1/certificates/{identifier}/actions", json={"action": "suspend", "reason": "核查中"}
    )
    assert suspended.status_code == 200 and suspended.json()["status"] == "suspended"
    window = clients.window.get(f"/api/v1/certificates/{identifier}/status", params=serving(document))
    assert window.json()["status"] == "suspended"
    public = clients.anonymous.get(f"/api/v1/public/certificates/{identifier}/status")
    assert public.status_code == 200
    body = public.json()
    assert body["status_label"] == "挂起"
    text = public.text
    assert document["holder"]["id_number"] not in text and document["holder"]["name"] not in text
    page = clients.anonymous.get(f"/v/{identifier}")
    assert (
        page.status_code == 200 and "挂起" in page.text and document["holder"]["id_number"] not in page.text
    )


def test_denials_are_logged_with_their_reason(clients: Clients, api_repo: Repository) -> None:
    document = construction_data(api_repo)
    _issue(clients, document)
    clients.window.get(_holder_path(document))
    clients.anonymous.get("/api/v1/catalogue")
    events = clients.auditor.get("/api/v1/audit/events", params={"outcome": "deny"}).json()["items"]
    reasons = {(e["principal"], e["status_code"]): e["reason"] for e in events}
    assert any("matter" in (reason or "") for (who, code), reason in reasons.items() if code == 403)
    assert any(who is None and code == 401 for who, code in reasons)
    allowed = clients.auditor.get("/api/v1/audit/events", params={"action": "issue_certificate"}).json()[
        "items"
    ]
    assert allowed and allowed[0]["outcome"] == "allow"
    assert allowed[0]["principal"].endswith("/agency")
    # holder IDs appear only as keyed digests
    listing = clients.auditor.get("/api/v1/audit/events").text
    assert document["holder"]["id_number"] not in listing


def test_auditors_read_logs_but_no_certificate_content(clients: Clients, api_repo: Repository) -> None:
    document = construction_data(api_repo)
    identifier = _issue(clients, document)
    assert clients.auditor.get(f"/api/v1/certificates/{identifier}").status_code == 403
    assert clients.auditor.get(_holder_path(document)).status_code == 403
    assert clients.auditor.get("/api/v1/audit/events").status_code == 200


def test_window_downloads_a_sealed_watermarked_copy(clients: Clients, api_repo: Repository, app: Any) -> None:
    from certstore.verify import verify_file

    document = construction_data(api_repo)
    identifier = _issue(clients, document)
    body = {"purpose": "办理不动产登记", **serving(document, "ZZ-COPY-1")}
    response = clients.window.post(f"/api/v1/certificates/{identifier}/copies", json=body)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/ofd"
    services = app.state.services
    report = verify_file(response.content, trust=services.trust, repository=services.repository_check())
    assert report.indication.value == "VALID", report.to_dict()
    assert [s.seal.name for s in report.signatures if s.seal] == ["郑州市电子证照库副本专用章"]
    other = construction_data(api_repo, number="410100202406100002", holder=OTHER_HOLDER)
    denied = clients.window.post(
        f"/api/v1/certificates/{identifier}/copies", json={**body, **serving(other, "ZZ-COPY-2")}
    )
    assert denied.status_code == 403
