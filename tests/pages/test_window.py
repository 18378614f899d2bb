"""The window page (窗口办件) without a browser: it calls the sharing use cases, so the same scope rules hold —
a matter registered for one holder serves only that holder, another holder's certificate is not found — and each read leaves exactly one audit
entry (via ``page``), never with the holder's ID number."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api import create_app
from api.settings import Settings
from bench._setup import prepared_data_dir
from certstore.access import Actor, Role
from certstore.audit import AuditEvent, query_events
from certstore.identifiers import HolderIdType, holder_id_digest, holder_ref
from certstore.lifecycle import Action
from certstore.records import Holder, draft_from_json, draft_to_json, example_draft
from certstore.services import certificates, logins
from certstore.services.calls import Call, Origin, Via
from certstore.services.catalogue import get_entry
from certstore.store.repository import Repository
from certstore.timezones import CHINA_STANDARD_TIME
from tests.support.matters import register_matter

CONSTRUCTION = "11410100990000025A001"
AGENCY_ORG = "11410100990000025A"
WINDOW = ("12410100MB0000001X", "窗口甲")
PASSWORD = "correct-horse-9"
H2 = Holder("郑州另一置业有限公司", HolderIdType.CREDIT_CODE, "91410105MA9K0XQ7XN")


@dataclass
class Desk:
    app: Any
    repo: Repository
    mine: str  # a certificate of the holder served
    theirs: str  # a certificate of another holder
    holder: dict[str, str]


@pytest.fixture
def desk(tmp_path: Path) -> Iterator[Desk]:
    data_dir = tmp_path / "data"
    prepared = prepared_data_dir(data_dir, {})  # keys, migrated database, shipped catalogue
    repo, keystore = prepared.repo, prepared.keystore
    logins.set_password(
        repo, organisation_code=WINDOW[0], name=WINDOW[1], password=PASSWORD, role=Role.WINDOW
    )
    app = create_app(
        Settings(data_dir=data_dir, public_url="http://testserver"), repo=repo, keystore=keystore
    )
    services = app.state.services
    document = draft_to_json(example_draft(get_entry(repo, CONSTRUCTION)))
    issuing = Call(Actor.agency_system(AGENCY_ORG, "test"), Origin(Via.CLI))
    mine = certificates.issue(services, issuing, draft_from_json(document)).certificate.identifier
    other = replace(draft_from_json({**document, "certificate_number": "410100202406100002"}), holder=H2)
    theirs = certificates.issue(services, issuing, other).certificate.identifier
    holder = document["holder"]  # the matter the unit's case system registered (issue 19)
    register_matter(services, WINDOW[0], "ZZ-DESK-1", holder["id_type"], holder["id_number"])
    try:
        yield Desk(app, repo, mine, theirs, document["holder"])
    finally:
        repo.db.dispose()


def _csrf(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([0-9a-f]+)"', html)
    assert match, html[:500]
    return match.group(1)


@pytest.fixture
def clerk(desk: Desk) -> Iterator[tuple[TestClient, str]]:
    """A logged-in window clerk serving the holder of ``desk.mine`` under matter ZZ-DESK-1; (client, CSRF token)."""
    with TestClient(desk.app, raise_server_exceptions=False) as client:
        token = _csrf(client.get("/login").text)
        login = {"csrf_token": token, "organisation_code": WINDOW[0], "name": WINDOW[1], "password": PASSWORD}
        assert client.post("/login", data=login, follow_redirects=False).status_code == 303
        token = _csrf(client.get("/window").text)
        served = client.post(
            "/window/serve",
            data={"csrf_token": token, "matter": "ZZ-DESK-1", "holder_id_type": desk.holder["id_type"],
                  "holder_id": desk.holder["id_number"]},
            follow_redirects=False,
        )  # fmt: skip
        assert served.status_code == 303, served.text
        yield client, token


def _events(desk: Desk, **filters: Any) -> list[AuditEvent]:
    assert desk.app.state.services.audit.flush()
    return [entry.event for entry in query_events(desk.repo.db, limit=1000, **filters)]


def _ref(desk: Desk) -> str:
    return holder_ref(
        holder_id_digest(desk.repo.holder_key, desk.holder["id_type"], desk.holder["id_number"])
    )


def test_the_page_lists_the_served_holders_certificates_through_the_use_case(
    desk: Desk, clerk: tuple[TestClient, str]
) -> None:
    client, _ = clerk
    page = client.get("/window", headers={"X-Request-ID": "page-list-1"})
    assert page.status_code == 200 and desk.mine in page.text and desk.theirs not in page.text
    (entry,) = [e for e in _events(desk) if e.request_id == "page-list-1"]
    assert (entry.action, entry.matter, entry.holder_digest) == ("holder.lookup", "ZZ-DESK-1", _ref(desk))
    assert entry.details["via"] == "page" and entry.details["identifiers"] == [desk.mine]
    assert entry.resource == "GET /window"


def test_a_matter_registered_for_one_holder_does_not_serve_another(
    desk: Desk, clerk: tuple[TestClient, str]
) -> None:
    client, token = clerk
    client.post("/window/end", data={"csrf_token": token})
    refused = client.post(
        "/window/serve",
        data={"csrf_token": token, "matter": "ZZ-DESK-1", "holder_id_type": "001", "holder_id": H2.id_number},
    )
    assert refused.status_code == 403 and "registered for another holder" in refused.text
    denials = _events(desk, outcome="deny", matter="ZZ-DESK-1")
    assert denials and denials[-1].action == "page_window_serve"


def test_another_holders_certificate_is_not_found_on_every_window_page(
    desk: Desk, clerk: tuple[TestClient, str]
) -> None:
    client, token = clerk
    missing = desk.theirs[:-3] + "999"
    for identifier in (desk.theirs, missing):
        assert client.get(f"/window/certificates/{identifier}/face.png").status_code == 404
        assert client.get(f"/window/certificates/{identifier}/verify").status_code == 404
        copy = client.post(
            f"/window/certificates/{identifier}/copy", data={"csrf_token": token, "purpose": "办理"}
        )
        assert copy.status_code == 404
        chosen = client.post("/window/select", data={"csrf_token": token, "identifier": [identifier]})
        assert chosen.status_code == 404
    own = client.get(f"/window/certificates/{desk.mine}/face.png")
    assert own.status_code == 200 and own.headers["content-type"] == "image/png"


def test_each_window_read_leaves_one_entry_without_the_holder_id(
    desk: Desk, clerk: tuple[TestClient, str]
) -> None:
    client, token = clerk
    requests = {
        "certificate.preview": lambda h: client.get(f"/window/certificates/{desk.mine}/face.png", headers=h),
        "certificate.read": lambda h: client.get(f"/window/certificates/{desk.mine}/verify", headers=h),
        "matter.attach_certificates": lambda h: client.post(
            "/window/select", data={"csrf_token": token, "identifier": [desk.mine]}, headers=h,
            follow_redirects=False),
        "certificate.copy": lambda h: client.post(
            f"/window/certificates/{desk.mine}/copy", data={"csrf_token": token, "purpose": "办理业务"}, headers=h),
    }  # fmt: skip
    for action, send in requests.items():
        response = send({"X-Request-ID": f"desk-{action}"})
        assert response.status_code in (200, 303), (action, response.text[:300])
    events = _events(desk)
    for action in requests:
        (entry,) = [e for e in events if e.request_id == f"desk-{action}"]
        assert (entry.action, entry.outcome, entry.matter, entry.holder_digest) == (
            action, "allow", "ZZ-DESK-1", _ref(desk))  # fmt: skip
        assert entry.principal == f"{WINDOW[0]}/{WINDOW[1]}" and entry.details["via"] == "page"
    attached = next(e for e in events if e.action == "matter.attach_certificates")
    assert attached.details["identifiers"] == [desk.mine]
    assert all(desk.holder["id_number"] not in str(e.to_dict()) for e in events)


def test_a_card_not_in_force_warns_and_the_page_shows_the_cores_refusal(
    desk: Desk, clerk: tuple[TestClient, str]
) -> None:
    """Issue 21 item 5: a revoked certificate's card says so (state and since when, in Chinese), its 关联到本办件 is
    disabled, a forced attach is refused by the core with the reason on the page (422, one denial entry); every
    card shows the type's distinguishing field (工程名称 of a construction permit)."""
    client, token = clerk
    services = desk.app.state.services
    issuer = Call(Actor.agency_system(AGENCY_ORG, "test"), Origin(Via.CLI))
    certificates.act(services, issuer, desk.mine, Action.REVOKE, reason="以欺骗手段取得")
    today = services.now().astimezone(CHINA_STANDARD_TIME).date()
    page = client.get("/window")
    card = page.text[page.text.index(f'data-identifier="{desk.mine}"') :]
    warning = f"自{today.year}年{today.month}月{today.day}日起已吊销"
    assert "非现行有效" in card and warning in card
    assert re.search(rf'value="{desk.mine}" form="select-form" disabled', card)
    project = certificates.get(desk.repo, desk.mine).face["project_name"]
    assert f'<dt>工程名称</dt><dd class="distinguishing">{project}</dd>' in card
    assert 'alt="建筑工程施工许可证照面：证照编号 ' in card and f"工程名称 {project}" in card

    refused = client.post(
        "/window/select",
        data={"csrf_token": token, "identifier": desk.mine},
        headers={"X-Request-ID": "nif-1"},
    )
    assert refused.status_code == 422
    assert f"未关联：证照 {desk.mine} 非现行有效（{warning}），不能关联到本办件。" in refused.text
    (entry,) = [
        e for e in _events(desk) if e.request_id == "nif-1" and e.action == "matter.attach_certificates"
    ]
    assert (entry.outcome, entry.status_code, entry.certificate_identifier) == ("deny", 422, desk.mine)
    assert "已关联办件" not in refused.text  # nothing attached
