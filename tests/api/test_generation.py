"""Generation service over HTTP: form schema → submit → online seal → result; idempotent pushes."""

from __future__ import annotations

import concurrent.futures
from typing import Any

from certstore.store.repository import Repository
from certstore.verify import verify_file
from tests.api.conftest import CONSTRUCTION, PLANNING_TYPE, Clients, construction_data
from tests.support import issuing


def test_form_schema_describes_the_submission_and_its_example_validates(clients: Clients) -> None:
    import jsonschema

    response = clients.agency.get(f"/api/v1/catalogue/{CONSTRUCTION}/form-schema")
    assert response.status_code == 200
    body = response.json()
    jsonschema.Draft202012Validator(body["schema"]).validate(body["example"])
    assert body["schema"]["properties"]["face"]["type"] == "object"


def test_submit_seals_online_and_the_result_verifies(
    clients: Clients, api_repo: Repository, app: Any
) -> None:
    data = construction_data(api_repo)
    response = clients.agency.post("/api/v1/certificates", json=data)
    assert response.status_code == 201, response.text
    body = response.json()
    assert response.headers["Location"] == f"/api/v1/certificates/{body['identifier']}"
    assert body["status"] == "valid" and body["status_label"] == "有效"
    assert body["holder"]["id_number"] == data["holder"]["id_number"]

    ofd = clients.agency.get(body["links"]["file"])
    assert ofd.status_code == 200 and ofd.headers["content-type"] == "application/ofd"
    report = verify_file(ofd.content, trust=app.state.services.trust)
    assert report.indication.value == "VALID", report.to_dict()

    pdf = clients.agency.get(body["links"]["file"], params={"format": "pdf"})
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
    assert verify_file(pdf.content, trust=app.state.services.trust).indication.value == "VALID"

    preview = clients.agency.get(body["links"]["preview"])
    assert preview.status_code == 200 and preview.content.startswith(b"\x89PNG")


def test_pushing_the_same_certificate_again_returns_the_stored_one(
    clients: Clients, api_repo: Repository
) -> None:
    data = construction_data(api_repo)
    first = clients.agency.post("/api/v1/certificates", json=data)
    again = clients.agency.post("/api/v1/certificates", json=data)
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["identifier"] == again.json()["identifier"]

    changed = construction_data(api_repo, face={**data["face"], "project_name": "另一个项目"})
    conflict = clients.agency.post("/api/v1/certificates", json=changed)
    assert conflict.status_code == 409
    assert conflict.headers["content-type"] == "application/problem+json"


def test_fifty_concurrent_pushes_of_one_certificate_make_one_record(
    clients: Clients, api_repo: Repository
) -> None:
    data = construction_data(api_repo, number="410100202406100077")
    with concurrent.futures.ThreadPoolExecutor(max_workers=16) as pool:
        responses = list(
            pool.map(lambda _: clients.agency.post("/api/v1/certificates", json=data), range(50))
        )
    statuses = sorted(r.status_code for r in responses)
    assert statuses.count(201) == 1 and statuses.count(200) == 49, statuses
    assert len({r.json()["identifier"] for r in responses}) == 1
    listed = clients.agency.get(
        "/api/v1/certificates", params={"issuer_code": data["holder"] and "11410100990000025A"}
    )
    assert [item["certificate_number"] for item in listed.json()["items"]] == ["410100202406100077"]


def test_validation_errors_name_the_field(clients: Clients, api_repo: Repository) -> None:
    data = construction_data(api_repo)
    data["holder"]["id_number"] = "123"
    response = clients.agency.post("/api/v1/certificates", json=data)
    assert response.status_code == 422
    problem = response.json()
    assert problem["type"].endswith("/invalid-certificate-data")
    assert any(error["field"].startswith("body.holder") for error in problem["errors"]), problem

    missing = clients.agency.post("/api/v1/certificates", json={"catalogue": CONSTRUCTION})
    assert missing.status_code == 422
    fields = {error["field"] for error in missing.json()["errors"]}
    assert {"body.certificate_number", "body.holder", "body.face"} <= fields


def test_an_agency_issues_only_its_own_catalogue_types(
    clients: Clients, api_repo: Repository, app: Any
) -> None:
    data = construction_data(api_repo)
    response = clients.other_agency.post("/api/v1/certificates", json=data)
    assert response.status_code == 403
    assert "agencies issue only their own catalogue types" in response.json()["detail"]
    assert app.state.services.audit.flush()
    [denied] = [
        e for e in issuing.audit_entries(api_repo) if e.request_id == response.headers["X-Request-ID"]
    ]
    assert (denied.action, denied.outcome, denied.status_code) == ("certificate.issue", "deny", 403)
    assert denied.principal == "11410100990000017F/other_agency"  # recorded once, by the use case
    assert clients.agency.get(f"/api/v1/catalogue/{PLANNING_TYPE}").status_code == 200


def test_an_agency_asks_the_identifier_before_sealing_a_file_itself(
    clients: Clients, api_repo: Repository, app: Any
) -> None:
    """Serials are keyed (issue 15): only the repository computes identifiers. The issuer asks for one, gets the
    same answer every time, and the push of that certificate is given exactly that identifier; another agency
    may not ask for a type it does not issue; every answer is audited."""
    document = construction_data(api_repo, number="410100202406109999")
    query = {"catalogue_code": CONSTRUCTION, "certificate_number": document["certificate_number"]}
    first = clients.agency.get("/api/v1/identifiers", params=query)
    assert first.status_code == 200, first.text
    assert clients.agency.get("/api/v1/identifiers", params=query).json() == first.json()
    pushed = clients.agency.post("/api/v1/certificates", json=document)
    assert pushed.status_code == 201, pushed.text
    assert pushed.json()["identifier"] == first.json()["identifier"]
    second = clients.agency.get("/api/v1/identifiers", params={**query, "version": 2}).json()["identifier"]
    assert second.split(".")[-3] == first.json()["identifier"].split(".")[-3]  # the same serial
    assert clients.other_agency.get("/api/v1/identifiers", params=query).status_code == 403
    assert clients.window.get("/api/v1/identifiers", params=query).status_code == 403
    assert app.state.services.audit.flush()  # the middleware's denial entry goes through the spool
    entries = [e for e in issuing.audit_entries(api_repo) if e.action == "certificate.identifier"]
    assert [e.outcome.value for e in entries].count("allow") == 3
    assert [e.outcome.value for e in entries].count("deny") == 1  # the other agency (window: refused by role)
