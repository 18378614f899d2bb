"""Issue 20 item 4 over HTTP: each version's change record (证照变更记录: reason, actor, time) in ``/history`` and in
the upstream feed; the holder type refused at the push; a failed 年检 suspending a certificate of a type that says
so, and an inspection year before the issue year refused with its reason."""

from __future__ import annotations

import io
import zipfile
from typing import Any
from xml.etree import ElementTree

import pytest

from certstore.catalogue import shipped_entry
from certstore.store.repository import Repository
from certstore.workdays import local_date
from tests.api.conftest import AGENCY_ORG, CONSTRUCTION, Clients, construction_data
from tests.services.conftest import Clock

#: What does not depend on the database runs on SQLite only (the file stays fast); the history, the feed and the
#: inspection's transaction run on PostgreSQL too.
SQLITE_ONLY = pytest.mark.parametrize("database_backend", ["sqlite"])


def _issue(clients: Clients, document: dict[str, Any]) -> dict[str, Any]:
    response = clients.agency.post("/api/v1/certificates", json=document)
    assert response.status_code == 201, response.text
    return dict(response.json())


def _records(certificate: dict[str, Any]) -> list[tuple[str, str, str | None, str]]:
    return [
        (c["action"], c["reason"], c["organisation_code"], c["to_status"]) for c in certificate["changes"]
    ]


def test_the_history_shows_every_versions_change_record(clients: Clients, api_repo: Repository) -> None:
    """Issued, changed with a reason, the new version suspended: ``GET …/history`` lists for each version the event
    that made it and every status change since — action, reason, actor (the agency's principal), organisation and
    time — and the upstream feed carries the same reason and actor with each event."""
    document = construction_data(api_repo)
    first = _issue(clients, document)
    path = f"/api/v1/certificates/{first['identifier']}"
    changed = {**document, "face": {**document["face"], "project_name": "变更后的项目名称"}}
    second = clients.agency.post(f"{path}/change", json={"reason": "项目名称变更", "data": changed}).json()
    second_path = f"/api/v1/certificates/{second['identifier']}"
    suspended = clients.agency.post(f"{second_path}/actions", json={"action": "suspend", "reason": "核查中"})
    assert suspended.status_code == 200, suspended.text

    history = clients.agency.get(f"{second_path}/history")
    assert history.status_code == 200, history.text
    v1, v2 = history.json()
    assert _records(v1) == [
        ("issue", "签发", AGENCY_ORG, "valid"),
        ("change", "项目名称变更", AGENCY_ORG, "superseded"),
    ]
    assert _records(v2) == [
        ("change", "项目名称变更", AGENCY_ORG, "valid"),
        ("suspend", "核查中", AGENCY_ORG, "suspended"),
    ]
    made = v2["changes"][0]
    assert made["from_status"] is None and made["action_label"] == "变更"
    assert made["actor"] == f"{AGENCY_ORG}/agency" and made["at"] == second["status_changed_at"]
    assert v2["changes"][1]["action_label"] == "挂起"

    feed = clients.upstream.get("/api/v1/upstream/changes").json()["items"]
    assert [(i["action"], i["reason"], i["actor"]) for i in feed] == [
        ("issue", "签发", f"{AGENCY_ORG}/agency"),
        ("change", "项目名称变更", f"{AGENCY_ORG}/agency"),
        ("change", "项目名称变更", f"{AGENCY_ORG}/agency"),
        ("suspend", "核查中", f"{AGENCY_ORG}/agency"),
    ]
    assert all(item["metadata"]["CZZTDM"] == document["holder"]["id_number"] for item in feed)


@SQLITE_ONLY
def test_a_legal_person_type_refuses_a_resident_id_holder(clients: Clients, api_repo: Repository) -> None:
    """建筑工程施工许可证 is a 法人 type: a push naming a citizen (公民身份号码) as its holder is a 422 whose field
    problem is ``holder.id_type`` and names the allowed type; nothing is stored."""
    person = {"name": "张三", "id_type": "111", "id_number": "11010519491231002X"}
    refused = clients.agency.post("/api/v1/certificates", json=construction_data(api_repo, holder=person))
    assert refused.status_code == 422
    [problem] = refused.json()["errors"]
    assert problem["field"] == "body.holder.id_type"
    assert "统一社会信用代码 (001)" in problem["message"] and "法人" in problem["message"]
    listed = clients.agency.get("/api/v1/certificates", params={"issuer_code": AGENCY_ORG}).json()
    assert listed["items"] == []


def test_a_failed_inspection_suspends_and_an_early_year_is_refused(
    clients: Clients, api_repo: Repository, clock: Clock
) -> None:
    """Version 2 of the construction permit declares ``inspection.on_failure: suspend``: the failed result answers
    201 with ``consequence: suspend`` and the certificate reads suspended, its change record naming the inspection;
    a result for the year before the certificate was issued is a 422 with the reason."""
    document = shipped_entry(CONSTRUCTION).to_document()
    document.update(version=3, annual_inspection=True, inspection={"on_failure": "suspend"})
    assert clients.agency.post("/api/v1/catalogue", json=document).status_code == 201
    assert clients.bureau.post(f"/api/v1/catalogue/{CONSTRUCTION}/versions/3/approve").status_code == 200
    today = local_date(clock.now)
    certificate = _issue(clients, construction_data(api_repo, issue_date=f"{today.year}-01-01"))
    path = f"/api/v1/certificates/{certificate['identifier']}"

    early = {"year": today.year - 1, "result": "passed", "inspected_on": today.isoformat()}
    refused = clients.agency.post(f"{path}/inspections", json=early)
    assert refused.status_code == 422
    assert f"year {today.year - 1} is before the certificate was issued" in refused.json()["detail"]

    failed = {
        "year": today.year,
        "result": "failed",
        "inspected_on": today.isoformat(),
        "remarks": "资料缺失",
    }
    recorded = clients.agency.post(f"{path}/inspections", json=failed)
    assert recorded.status_code == 201, recorded.text
    assert recorded.json()["consequence"] == "suspend"
    now = clients.agency.get(path).json()
    assert now["status"] == "suspended"
    assert _records(now)[-1] == ("suspend", f"{today.year}年度年检不合格：资料缺失", AGENCY_ORG, "suspended")
    again = clients.agency.post(f"{path}/inspections", json=failed)  # the same result: nothing more happens
    assert again.status_code == 201 and again.json()["consequence"] is None
    assert len(clients.agency.get(path).json()["changes"]) == 2


@SQLITE_ONLY
def test_the_holder_id_number_is_in_the_sealed_files_metadata_and_not_on_the_public_pages(
    clients: Clients, api_repo: Repository
) -> None:
    """持证主体代码 (CZZTDM, 规范§二(二)) is among the metadata the sealed OFD carries — in DocInfo's CustomDatas and
    the metadata.xml attachment, under the seal — so the file verifies VALID with it; the public status answer and
    the QR page (/v/…), which anyone can open, still show no ID number and no name."""
    document = construction_data(api_repo)
    number = document["holder"]["id_number"]
    certificate = _issue(clients, document)
    identifier = certificate["identifier"]
    assert certificate["metadata"]["CZZTDM"] == number
    stored = clients.agency.get(f"/api/v1/certificates/{identifier}/file")
    assert stored.status_code == 200
    with zipfile.ZipFile(io.BytesIO(stored.content)) as package:
        custom = ElementTree.fromstring(package.read("OFD.xml"))
        attached = package.read("Doc_0/Attachs/metadata.xml").decode()
    carried = {e.get("Name"): e.text for e in custom.iter() if e.tag.endswith("CustomData")}
    assert carried["CZZTDM"] == number and carried["CZZTDMLXDM"] == "001"
    assert number in attached
    verified = clients.anonymous.post("/api/v1/public/verify", files={"file": ("c.ofd", stored.content)})
    assert verified.json()["indication"] == "VALID", verified.text

    public = clients.anonymous.get(f"/api/v1/public/certificates/{identifier}/status")
    page = clients.anonymous.get(f"/v/{identifier}")
    assert public.status_code == 200 and page.status_code == 200
    for text in (public.text, page.text):
        assert number not in text and document["holder"]["name"] not in text
