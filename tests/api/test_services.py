"""Management, catalogue management, review requests, inspections, batches, the upstream feed and
authentication over HTTP."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

from certstore.catalogue import shipped_entry
from certstore.services import access
from certstore.store.repository import Repository
from tests.api.conftest import CONSTRUCTION, PLANNING_TYPE, Clients, construction_data, served, serving
from tests.services.conftest import Clock


def _issue(clients: Clients, document: dict[str, Any]) -> dict[str, Any]:
    response = clients.agency.post("/api/v1/certificates", json=document)
    assert response.status_code == 201, response.text
    return dict(response.json())


def test_management_change_renew_and_status_actions(clients: Clients, api_repo: Repository) -> None:
    document = construction_data(api_repo)
    first = _issue(clients, document)
    path = f"/api/v1/certificates/{first['identifier']}"
    changed_face = {**document["face"], "project_name": "变更后的项目名称"}
    change = clients.agency.post(
        f"{path}/change", json={"reason": "项目名称变更", "data": {**document, "face": changed_face}}
    )
    assert change.status_code == 201, change.text
    second = change.json()
    assert second["version"] == 2 and second["face"]["project_name"] == "变更后的项目名称"
    old = clients.agency.get(path).json()
    assert old["status"] == "superseded" and old["superseded_by"] == second["identifier"]

    again = clients.agency.post(f"{path}/change", json={"reason": "x", "data": document})
    assert again.status_code == 409

    second_path = f"/api/v1/certificates/{second['identifier']}"
    revoked = clients.agency.post(f"{second_path}/actions", json={"action": "revoke", "reason": "违规"})
    assert revoked.status_code == 200 and revoked.json()["status_label"] == "吊销"
    resume = clients.agency.post(f"{second_path}/actions", json={"action": "resume", "reason": "x"})
    assert resume.status_code == 409
    assert resume.json()["type"].endswith("/invalid-transition")
    history = clients.agency.get(f"{second_path}/history").json()
    assert [h["version"] for h in history] == [1, 2]
    bad = clients.agency.post(f"{second_path}/actions", json={"action": "explode", "reason": "x"})
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "body.action"


def test_catalogue_registration_needs_bureau_approval(clients: Clients) -> None:
    document = shipped_entry(CONSTRUCTION).to_document()
    document["version"] = 3  # the shipped entry is version 2
    document["name"] = "建筑工程施工许可证（2027版）"
    submitted = clients.agency.post("/api/v1/catalogue", json=document)
    assert submitted.status_code == 201, submitted.text
    assert submitted.json()["status"] == "pending"
    assert clients.agency.get(f"/api/v1/catalogue/{CONSTRUCTION}").json()["version"] == 2
    pending = clients.bureau.get("/api/v1/catalogue/submissions", params={"status": "pending"}).json()
    assert [(p["code"], p["version"]) for p in pending] == [(CONSTRUCTION, 3)]
    assert (
        clients.bureau.post(
            f"/api/v1/catalogue/{CONSTRUCTION}/versions/3/reject", json={"note": ""}
        ).status_code
        == 422
    )
    approved = clients.bureau.post(f"/api/v1/catalogue/{CONSTRUCTION}/versions/3/approve")
    assert approved.status_code == 200 and approved.json()["status"] == "approved"
    assert clients.agency.get(f"/api/v1/catalogue/{CONSTRUCTION}").json()["version"] == 3

    foreign = shipped_entry(PLANNING_TYPE).to_document()
    foreign["version"] = 3
    denied = clients.agency.post("/api/v1/catalogue", json=foreign)
    assert denied.status_code == 403 and "own catalogue" in denied.json()["detail"]
    invalid = clients.agency.post("/api/v1/catalogue", json={**document, "version": 3, "level": "galactic"})
    assert invalid.status_code == 422
    assert any(e["field"].startswith("body.level") for e in invalid.json()["errors"])


def test_review_request_flow_with_working_day_deadline(
    clients: Clients, api_repo: Repository, clock: Clock
) -> None:
    document = construction_data(api_repo)
    identifier = _issue(clients, document)["identifier"]
    clock.now = datetime(2026, 9, 25, 2, 0, tzinfo=UTC)  # Friday in Zhengzhou
    assert (
        clients.bureau.put(
            "/api/v1/calendar/2026-10-01", json={"kind": "holiday", "name": "国庆节"}
        ).status_code
        == 200
    )
    assert (
        clients.bureau.put(
            "/api/v1/calendar/2026-09-28", json={"kind": "holiday", "name": "测试假日"}
        ).status_code
        == 200
    )
    review = clients.window.post(
        "/api/v1/reviews", json={"identifier": identifier, "reason": "规模有误", **serving(document)}
    )
    assert review.status_code == 201, review.text
    body = review.json()
    assert body["due_date"] == "2026-10-06"  # working days after Fri 9-25: 9-29, 9-30, 10-02, 10-05, 10-06
    review_id = body["id"]
    clock.advance(days=30)
    overdue = clients.agency.get("/api/v1/reviews", params={"overdue": True}).json()
    assert [r["id"] for r in overdue] == [review_id]
    assert clients.other_agency.get(f"/api/v1/reviews/{review_id}").status_code == 403
    assert (
        clients.other_agency.post(
            f"/api/v1/reviews/{review_id}/answer", json={"outcome": "confirmed", "answer": "x"}
        ).status_code
        == 403
    )
    answered = clients.agency.post(
        f"/api/v1/reviews/{review_id}/answer", json={"outcome": "confirmed", "answer": "经核查无误"}
    )
    assert answered.status_code == 200 and answered.json()["status"] == "answered"
    assert (
        clients.agency.post(
            f"/api/v1/reviews/{review_id}/answer", json={"outcome": "confirmed", "answer": "x"}
        ).status_code
        == 409
    )
    assert clients.window.get(f"/api/v1/reviews/{review_id}").json()["outcome"] == "confirmed"


def test_batch_push_reports_progress_and_per_item_results(clients: Clients, api_repo: Repository) -> None:
    good = construction_data(api_repo, number="410100202406100011")
    bad = construction_data(api_repo, number="410100202406100012", face={})
    submitted = clients.agency.post("/api/v1/batches", json=[good, bad, good])
    assert submitted.status_code == 202, submitted.text
    job_path = submitted.headers["Location"]
    deadline = time.monotonic() + 60
    while True:
        job = clients.agency.get(job_path, params={"items": True}).json()
        if job["status"] == "done" or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert job["status"] == "done", job
    assert (job["succeeded"], job["failed"]) == (2, 1)
    statuses = [item["status"] for item in job["items"]]
    assert statuses == ["issued", "rejected", "existing"]
    assert job["items"][1]["error"]["problems"]
    assert clients.other_agency.get(job_path).status_code == 404
    too_many = clients.agency.post("/api/v1/batches", json=[])
    assert too_many.status_code == 422


def test_upstream_feed_pages_through_changes(clients: Clients, api_repo: Repository) -> None:
    for n in range(3):
        _issue(clients, construction_data(api_repo, number=f"41010020240610002{n}"))
    first = clients.upstream.get("/api/v1/upstream/changes", params={"limit": 2}).json()
    assert len(first["items"]) == 2 and first["next_after"] is not None
    rest = clients.upstream.get("/api/v1/upstream/changes", params={"after": first["next_after"]}).json()
    assert len(rest["items"]) == 1 and rest["next_after"] is None
    assert {item["action"] for item in first["items"] + rest["items"]} == {"issue"}


def test_tokens_expire_and_can_be_revoked(clients: Clients, api_repo: Repository, clock: Clock) -> None:
    issued = access.create_token(
        api_repo, role=access.Role.AGENCY, organisation_code="11410100990000025A", days=1
    )
    headers = {"Authorization": f"Bearer {issued.token}"}
    assert clients.anonymous.get("/api/v1/catalogue", headers=headers).status_code == 200
    wrong = issued.token[:-2] + ("AA" if not issued.token.endswith("AA") else "BB")
    bad = clients.anonymous.get("/api/v1/catalogue", headers={"Authorization": f"Bearer {wrong}"})
    assert bad.status_code == 401 and bad.headers["WWW-Authenticate"].startswith("Bearer")
    clock.advance(days=2)
    expired = clients.anonymous.get("/api/v1/catalogue", headers=headers)
    assert expired.status_code == 401 and "expired" in expired.json()["detail"]
    clock.now = datetime.now(UTC)
    access.revoke_token(api_repo, issued.lookup)
    revoked = clients.anonymous.get("/api/v1/catalogue", headers=headers)
    assert revoked.status_code == 401 and "revoked" in revoked.json()["detail"]


def test_errors_are_problem_details_without_stack_traces(clients: Clients) -> None:
    missing = clients.agency.get("/api/v1/certificates/nope")
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"
    problem = missing.json()
    assert {"type", "title", "status", "detail", "instance", "request_id"} <= problem.keys()
    unknown_route = clients.agency.get("/api/v1/no-such-thing")
    assert unknown_route.status_code == 404 and unknown_route.json()["status"] == 404
    malformed = clients.agency.post(
        "/api/v1/certificates", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert malformed.status_code == 422 and "Traceback" not in malformed.text


def test_grants_are_time_limited(clients: Clients) -> None:
    too_long = clients.bureau.post(
        "/api/v1/grants",
        json={
            "organisation_code": "12410100MB0000001X",
            "purpose": "x",
            "valid_until": (datetime.now(UTC) + timedelta(days=800)).isoformat(),
        },
    )
    assert too_long.status_code == 422 and "at most one year" in too_long.json()["detail"]


def test_client_certificates_vouched_for_by_the_proxy_header(
    api_repo: Repository, api_keystore: Any, tmp_path: Any
) -> None:
    from fastapi.testclient import TestClient

    from api import create_app
    from api.settings import Settings

    fingerprint = "ab" * 32
    access.bind_client_certificate(
        api_repo,
        fingerprint,
        role=access.Role.UPSTREAM,
        organisation_code="11410000MB0000000X",
        name="province",
    )
    header = {"X-Client-Cert-SHA256": fingerprint}
    with_header = create_app(
        Settings(data_dir=tmp_path, mtls_header="X-Client-Cert-SHA256", batch_worker=False),
        repo=api_repo,
        keystore=api_keystore,
    )
    without = create_app(
        Settings(data_dir=tmp_path, batch_worker=False), repo=api_repo, keystore=api_keystore
    )
    with TestClient(with_header) as client:
        assert client.get("/api/v1/upstream/changes", headers=header).status_code == 200
        assert (
            client.get("/api/v1/upstream/changes", headers={"X-Client-Cert-SHA256": "cd" * 32}).status_code
            == 401
        )
    with TestClient(without) as client:  # the header means nothing unless the operator configured the proxy
        assert client.get("/api/v1/upstream/changes", headers=header).status_code == 401


def test_annual_inspection_of_a_type_that_requires_it(clients: Clients, api_repo: Repository) -> None:
    document = shipped_entry(CONSTRUCTION).to_document()
    document.update(version=3, annual_inspection=True)
    assert clients.agency.post("/api/v1/catalogue", json=document).status_code == 201
    assert clients.bureau.post(f"/api/v1/catalogue/{CONSTRUCTION}/versions/3/approve").status_code == 200
    # issued in 2026: a 2026 result is refused for a certificate issued in a later year (issue 20)
    certificate = _issue(clients, construction_data(api_repo, issue_date="2026-11-01"))
    assert certificate["catalogue_version"] == 3
    due = clients.agency.get("/api/v1/inspections/due", params={"year": 2026}).json()
    assert [d["identifier"] for d in due] == [certificate["identifier"]]
    body = {"year": 2026, "result": "passed", "inspected_on": "2026-11-20", "remarks": "年检合格"}
    path = f"/api/v1/certificates/{certificate['identifier']}/inspections"
    recorded = clients.agency.post(path, json=body)
    assert recorded.status_code == 201, recorded.text
    assert clients.agency.post(path, json=body).status_code == 201  # idempotent repeat
    assert clients.agency.post(path, json={**body, "result": "failed"}).status_code == 409
    assert clients.other_agency.post(path, json=body).status_code == 403
    assert clients.agency.get("/api/v1/inspections/due", params={"year": 2026}).json() == []
    listed = clients.window.get(path, **served(construction_data(api_repo))).json()
    assert [(i["year"], i["result"]) for i in listed] == [(2026, "passed")]
