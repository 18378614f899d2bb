"""The holder's API (``/api/v1/holder/...``) after a real 一号 login at the OpenID provider process: tokens from
the browser session, my certificates with all versions and status, the sealed OFD/PDF and face, the access log
naming a clerk's look-up, authorisations, review requests and their answers, the contact — each only for the
holder's own certificates."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api import create_app
from certstore.access import Actor, Principal, Role
from certstore.app import Application
from certstore.checks import Indication
from certstore.identifiers import HolderIdType
from certstore.keystore import KeyStore
from certstore.lifecycle import Action
from certstore.records import Holder, draft_from_json, draft_to_json, example_draft
from certstore.services import access, reviews
from certstore.services.catalogue import get_entry
from certstore.store.repository import Repository
from certstore.verify import verify_file
from tests.api.test_holder_login import (  # noqa: F401 — the provider fixture
    COMPANY,
    PUBLIC,
    holder_settings,
    log_in,
    provider,
)
from tests.servers.oidc import OidcProvider
from tests.support import issuing
from tests.support.matters import register_matter

#: Tests whose database work is the same on both backends run on SQLite only (the file stays fast); my
#: certificates, the access log and the tokens run on PostgreSQL too.
SQLITE_ONLY = pytest.mark.parametrize("database_backend", ["sqlite"])

CONSTRUCTION = "11410100990000025A001"
AGENCY = "11410100990000025A"
WINDOW_ORG = "12410100MB0000001X"
OTHER = Holder("郑州另一置业有限公司", HolderIdType.CREDIT_CODE, "91410105MA9K0XQ7XN")
MINE = Holder(COMPANY["org_name"], HolderIdType.CREDIT_CODE, COMPANY["uscc"])


def _issue(app: Application, number: str, holder: Holder) -> str:
    document = draft_to_json(example_draft(get_entry(app.repo, CONSTRUCTION)))
    document["certificate_number"] = number
    document["holder"] = {"name": holder.name, "id_type": str(holder.id_type), "id_number": holder.id_number}
    return issuing.issue(app, draft_from_json(document), file_maker=None).certificate.identifier


@pytest.fixture
def world(
    api_repo: Repository,
    api_keystore: KeyStore,
    tmp_path: Path,
    provider: OidcProvider,  # noqa: F811 — the fixture imported above
) -> Iterator[Any]:
    """The app (with the provider configured), certificates of the company and of another holder, and the
    company's API token after a browser login."""
    app = Application(api_repo, api_keystore, public_url=PUBLIC)
    first = _issue(app, "410100202406180101", MINE)
    suspended = _issue(app, "410100202406180102", MINE)
    issuing.act(app, suspended, Action.SUSPEND, reason="核查中")
    theirs = _issue(app, "410100202406180201", OTHER)
    clerk = access.create_token(
        api_repo,
        role=Role.WINDOW,
        organisation_code=WINDOW_ORG,
        organisation_name="郑州市政务服务中心",
        name="张三",
    ).token
    web = create_app(holder_settings(tmp_path, provider.issuer), repo=api_repo, keystore=api_keystore)
    with TestClient(web, base_url=PUBLIC, raise_server_exceptions=False) as browser:
        assert log_in(browser, provider, "company").status_code == 303
        token = browser.post("/api/v1/holder/tokens", json={"label": "测试", "days": 2}).json()["token"]
        api = TestClient(web, base_url=PUBLIC, raise_server_exceptions=False)
        api.headers["Authorization"] = f"Bearer {token}"
        yield type(
            "World",
            (),
            {"app": app, "web": web, "browser": browser, "api": api, "token": token, "clerk": clerk, "mine": [first, suspended],
             "theirs": theirs},
        )  # fmt: skip


def test_my_certificates_list_every_version_with_its_status_and_nothing_of_others(world: Any) -> None:
    """我的证照 over the API: both of my certificates with their status (one suspended), no other holder's; after
    a change the certificate shows both versions, newest first."""
    first = world.mine[0]
    changed = issuing.change(world.app, first, _changed_draft(world.app, first), reason="变更建设规模")
    found = world.api.get("/api/v1/holder/certificates").json()
    by_number = {c["certificate_number"]: c for c in found}
    assert set(by_number) == {"410100202406180101", "410100202406180102"}
    versions = by_number["410100202406180101"]["versions"]
    assert [v["identifier"] for v in versions] == [changed.identifier, first]
    assert [v["status"] for v in versions] == ["valid", "superseded"]
    assert by_number["410100202406180102"]["status"] == "suspended"
    assert world.theirs not in str(found)
    one = world.api.get(f"/api/v1/holder/certificates/{first}").json()
    assert one["identifier"] == changed.identifier and len(one["versions"]) == 2
    assert world.api.get(f"/api/v1/holder/certificates/{world.theirs}").status_code == 404


@SQLITE_ONLY
def test_each_version_shows_its_change_record_without_the_staff_members_name(world: Any) -> None:
    """Issue 20: a version's change record (证照变更记录) — 签发/变更/挂起, the reason, the time and the organisation
    (机构: the issuing agency by name) — in the holder's API and on the certificate page; the agency's staff member
    who did it is not named."""
    first = world.mine[0]
    clerk = Actor.of(Principal(7, "li.ming", Role.AGENCY, AGENCY, "郑州市城乡建设局"))
    changed = issuing.change(
        world.app, first, _changed_draft(world.app, first), reason="变更建设规模", actor=clerk
    )
    issuing.act(world.app, changed.identifier, Action.SUSPEND, reason="核查中", actor=clerk)
    one = world.api.get(f"/api/v1/holder/certificates/{first}").json()
    newest, oldest = one["versions"]
    records = [(c["action_label"], c["reason"], c["organisation_code"]) for c in newest["changes"]]
    assert records == [("变更", "变更建设规模", AGENCY), ("挂起", "核查中", AGENCY)]
    assert {c["organisation_name"] for c in newest["changes"]} == {one["issuer_name"]}
    assert newest["changes"][0]["at"] and [c["action"] for c in oldest["changes"]] == ["issue", "change"]
    assert "li.ming" not in str(one)
    page = world.browser.get(f"/holder/certificates/{first}")
    assert page.status_code == 200
    assert "变更建设规模" in page.text and "核查中" in page.text and one["issuer_name"] in page.text
    assert "li.ming" not in page.text


def _changed_draft(app: Application, identifier: str) -> Any:
    from certstore.services import certificates

    current = certificates.get(app.repo, identifier)
    document = draft_to_json(example_draft(get_entry(app.repo, CONSTRUCTION)))
    document["certificate_number"] = current.certificate_number
    document["holder"] = {"name": MINE.name, "id_type": str(MINE.id_type), "id_number": MINE.id_number}
    return draft_from_json(document)


@SQLITE_ONLY
def test_the_sealed_ofd_and_pdf_and_the_face_of_my_certificate(world: Any) -> None:
    """Downloads: the OFD exactly as sealed (verifies VALID with the repository's trust), the signed PDF, the face
    as PNG; another holder's file answers 404."""
    first = world.mine[0]
    ofd = world.api.get(f"/api/v1/holder/certificates/{first}/file")
    assert ofd.status_code == 200 and "attachment" in ofd.headers["content-disposition"]
    report = verify_file(ofd.content, trust=world.app.trust)
    assert report.indication is Indication.VALID and report.certificate.identifier == first
    pdf = world.api.get(f"/api/v1/holder/certificates/{first}/file", params={"format": "pdf"})
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
    png = world.api.get(f"/api/v1/holder/certificates/{first}/preview.png")
    assert png.status_code == 200 and png.content.startswith(b"\x89PNG")
    assert world.api.get(f"/api/v1/holder/certificates/{world.theirs}/file").status_code == 404


def test_the_access_log_shows_a_clerks_look_up_with_unit_and_matter(world: Any, api_repo: Repository) -> None:
    """A clerk of a using unit looks the company up under a registered matter: the company's access log names the
    unit, the matter and the action; the same clerk's refused look-up under an invented matter is listed too."""
    register_matter(api_repo, WINDOW_ORG, "ZZ-HOLDER-1", str(MINE.id_type), MINE.id_number)
    clerk = world.clerk
    body = {"holder_id_type": str(MINE.id_type), "holder_id": MINE.id_number, "matter": "ZZ-HOLDER-1"}
    with TestClient(world.web, raise_server_exceptions=False) as window:
        looked = window.post(
            "/api/v1/holders/certificates", json=body, headers={"Authorization": f"Bearer {clerk}"}
        )
        assert looked.status_code == 200, looked.text
    refused = {**body, "matter": "ZZ-INVENTED-1"}
    with TestClient(world.web, raise_server_exceptions=False) as window:
        denied = window.post(
            "/api/v1/holders/certificates", json=refused, headers={"Authorization": f"Bearer {clerk}"}
        )
        assert denied.status_code == 403
    log = world.api.get("/api/v1/holder/access-log").json()
    assert any(e["matter"] == "ZZ-INVENTED-1" and e["outcome"] == "deny" for e in log)
    lookup = next(e for e in log if e["action"] == "holder.lookup" and e["outcome"] == "allow")
    assert lookup["organisation_name"] == "郑州市政务服务中心" and lookup["matter"] == "ZZ-HOLDER-1"
    assert lookup["role"] == "window" and lookup["outcome"] == "allow"
    assert all(e["role"] != "holder" for e in log)


@SQLITE_ONLY
def test_authorisations_are_granted_listed_and_revoked(world: Any) -> None:
    """授权使用 over the API: grant a using unit one certificate for a matter, see it active, revoke it."""
    until = (datetime.now(UTC) + timedelta(days=7)).isoformat()
    made = world.api.post(
        "/api/v1/holder/authorisations",
        json={"using_unit": WINDOW_ORG, "certificate_identifier": world.mine[0], "matter": "ZZ-AUTH-1",
              "purpose": "办理施工许可变更", "valid_until": until},
    )  # fmt: skip
    assert made.status_code == 201, made.text
    assert made.json()["active"] and made.json()["matter"] == "ZZ-AUTH-1"
    assert [a["id"] for a in world.api.get("/api/v1/holder/authorisations").json()] == [made.json()["id"]]
    revoked = world.api.post(f"/api/v1/holder/authorisations/{made.json()['id']}/revoke").json()
    assert revoked["revoked_at"] and not revoked["active"]
    refused = world.api.post(
        "/api/v1/holder/authorisations",
        json={
            "using_unit": WINDOW_ORG,
            "certificate_identifier": world.theirs,
            "purpose": "x",
            "valid_until": until,
        },
    )
    assert refused.status_code in (403, 404)


@SQLITE_ONLY
def test_a_review_is_filed_followed_and_its_answer_seen(world: Any, api_repo: Repository) -> None:
    """复核: filed about my certificate, open with its due date; the agency answers; the holder sees the answer.
    Someone else's certificate cannot be disputed this way."""
    filed = world.api.post(
        "/api/v1/holder/reviews", json={"identifier": world.mine[0], "reason": "建设规模有误"}
    )
    assert filed.status_code == 201 and filed.json()["status"] == "open"
    agency = Principal(1, "李四", Role.AGENCY, AGENCY, "郑州市城乡建设局")
    reviews.answer_review(
        api_repo, filed.json()["id"], responder=agency, outcome="confirmed", answer="经核，无误"
    )
    [seen] = world.api.get("/api/v1/holder/reviews").json()
    assert (seen["status"], seen["outcome"], seen["answer"]) == ("answered", "confirmed", "经核，无误")
    other = world.api.post("/api/v1/holder/reviews", json={"identifier": world.theirs, "reason": "x"})
    assert other.status_code == 404


def test_tokens_need_a_browser_login_expire_and_revoke(world: Any, api_repo: Repository) -> None:
    """No token: 401 problem; the browser cookie alone does not open the API; a staff token is no holder token
    (authenticated, so 403, as every role the API refuses);
    a revoked token stops working; the token list shows no secret."""
    with TestClient(world.web, base_url=PUBLIC, raise_server_exceptions=False) as anonymous:
        assert anonymous.post("/api/v1/holder/tokens", json={}).status_code == 401
        assert anonymous.get("/api/v1/holder/certificates").status_code == 401
    assert world.browser.get("/api/v1/holder/certificates").status_code == 401
    staff = access.create_token(
        api_repo, role=Role.WINDOW, organisation_code=WINDOW_ORG, organisation_name="窗口", name="w"
    ).token
    assert world.api.get("/api/v1/holder/me", headers={"Authorization": f"Bearer {staff}"}).status_code == 403
    listed = world.api.get("/api/v1/holder/tokens").json()
    assert len(listed) == 1 and listed[0]["token"] is None and listed[0]["label"] == "测试"
    assert world.api.delete(f"/api/v1/holder/tokens/{listed[0]['id']}").status_code == 204
    assert world.api.get("/api/v1/holder/me").status_code == 401


@SQLITE_ONLY
def test_the_contact_is_set_for_notifications(world: Any) -> None:
    """联系方式: the e-mail notifications go to; a malformed address is refused."""
    made = world.api.put("/api/v1/holder/contact", json={"email": "erp@example.cn"})
    assert made.status_code == 200 and made.json()["email"] == "erp@example.cn"
    assert world.api.put("/api/v1/holder/contact", json={"email": "not an address"}).status_code == 422


@SQLITE_ONLY
def test_a_holder_request_no_use_case_records_is_audited_under_the_holder(
    world: Any, api_repo: Repository
) -> None:
    """The middleware's entry of a holder request (here: the list of authorisations) names the holder
    (``holder:<ref>``, role holder), never an anonymous caller."""
    from certstore.audit import AuditQuery, query_entries

    assert world.api.get("/api/v1/holder/authorisations").status_code == 200
    world.web.state.services.audit.flush()
    me = world.api.get("/api/v1/holder/me").json()["holder_ref"]
    page = query_entries(api_repo.db, AuditQuery(principal=f"holder:{me}"), limit=100)
    listed = [e.event for e in page.entries if e.event.action == "list_authorisations"]
    assert listed and listed[0].role == "holder" and listed[0].holder_digest == me
