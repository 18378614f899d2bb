"""Sharing and knowledge scope (知悉范围) over HTTP: window staff see only the holder they serve, for a stated
matter; bulk access needs a grant; every denial is a 403 with its reason and lands in the audit log."""

from __future__ import annotations

import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select

from certstore.identifiers import holder_id_digest, holder_ref
from certstore.store.models import AuditEventRow
from certstore.store.repository import Repository
from tests.api.conftest import (
    AGENCY_ORG,
    CONSTRUCTION,
    Clients,
    construction_data,
    served,
    serving,
    serving_headers,
)
from tests.services.conftest import CREDIT_CODES
from tests.support.matters import register_matter

WINDOW_ORG = "12410100MB0000001X"

OTHER_HOLDER = {"name": "郑州另一置业有限公司", "id_type": "001", "id_number": CREDIT_CODES[1]}


def _issue(clients: Clients, document: dict[str, Any]) -> str:
    response = clients.agency.post("/api/v1/certificates", json=document)
    assert response.status_code == 201, response.text
    return str(response.json()["identifier"])


HOLDER_LOOKUP = "/api/v1/holders/certificates"


def _look_up(client: Any, document: dict[str, Any], matter: str | None = None, **options: Any) -> Any:
    """一号查询 for the holder of ``document``: the ID number in the POST body, never the URL."""
    return client.post(HOLDER_LOOKUP, json=_lookup_body(document, matter), **options)


def _lookup_body(document: dict[str, Any], matter: str | None = None) -> dict[str, Any]:
    holder = document["holder"]
    body: dict[str, Any] = {"holder_id_type": holder["id_type"], "holder_id": holder["id_number"]}
    if matter is not None:
        body["matter"] = matter
    return body


def test_window_lists_the_served_holders_certificates_for_a_matter(
    clients: Clients, api_repo: Repository
) -> None:
    mine = construction_data(api_repo)
    theirs = construction_data(api_repo, number="410100202406100002", holder=OTHER_HOLDER)
    identifier = _issue(clients, mine)
    _issue(clients, theirs)
    response = _look_up(clients.window, mine, "ZZ2026112600001")
    assert response.status_code == 200, response.text
    assert [c["identifier"] for c in response.json()] == [identifier]


def test_window_cannot_omit_the_matter(clients: Clients, api_repo: Repository) -> None:
    document = construction_data(api_repo)
    identifier = _issue(clients, document)
    response = _look_up(clients.window, document)
    assert response.status_code == 403
    assert "matter" in response.json()["detail"]
    single = clients.window.get(f"/api/v1/certificates/{identifier}", headers={"X-Holder-Id-Type": "001"})
    assert single.status_code == 403


def test_another_holders_certificate_answers_as_one_that_does_not_exist(
    clients: Clients, api_repo: Repository
) -> None:
    mine = construction_data(api_repo)
    theirs = construction_data(api_repo, number="410100202406100002", holder=OTHER_HOLDER)
    _issue(clients, mine)
    their_identifier = _issue(clients, theirs)
    missing = their_identifier[:-3] + "999"
    for suffix in ("", "/history", "/preview.png", "/status", "/inspections"):
        answers = []
        for identifier in (their_identifier, missing):
            response = clients.window.get(
                f"/api/v1/certificates/{identifier}{suffix}", **served(mine, "ZZ-A")
            )
            body = response.json()
            answers.append((response.status_code, body["title"], body["detail"].replace(identifier, "<id>")))
        assert answers[0] == answers[1] == (404, "Not found", "no certificate <id>"), suffix
    copy = {"purpose": "办理业务", **serving(mine, "ZZ-A")}
    copies = [
        clients.window.post(f"/api/v1/certificates/{i}/copies", json=copy)
        for i in (their_identifier, missing)
    ]
    assert [c.status_code for c in copies] == [404, 404]
    assert copies[0].json()["detail"].replace(their_identifier, "<id>") == copies[1].json()["detail"].replace(
        missing, "<id>"
    )


def test_window_cannot_page_through_holders(clients: Clients, api_repo: Repository) -> None:
    mine = construction_data(api_repo)
    theirs = construction_data(api_repo, number="410100202406100002", holder=OTHER_HOLDER)
    _issue(clients, mine)
    _issue(clients, theirs)
    assert _look_up(clients.window, mine, "ZZ-ONE").status_code == 200
    # the same matter cannot be reused for another holder …
    reused = _look_up(clients.window, theirs, "ZZ-ONE")
    assert reused.status_code == 403
    assert "registered for another holder" in reused.json()["detail"]
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
    assert _look_up(clients.other_agency, document).json() == []
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
    window = clients.window.get(f"/api/v1/certificates/{identifier}/status", **served(document))
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
    _look_up(clients.window, document)
    clients.anonymous.get("/api/v1/catalogue")
    events = clients.auditor.get("/api/v1/audit/events", params={"outcome": "deny"}).json()["items"]
    reasons = {(e["principal"], e["status_code"]): e["reason"] for e in events}
    assert any("matter" in (reason or "") for (who, code), reason in reasons.items() if code == 403)
    assert any(who is None and code == 401 for who, code in reasons)
    allowed = clients.auditor.get("/api/v1/audit/events", params={"action": "certificate.issue"}).json()[
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
    assert _look_up(clients.auditor, document).status_code == 403
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
    assert denied.status_code == 403  # ZZ-COPY-2 is not registered for the other holder: refused (知悉范围)
    register_matter(api_repo, WINDOW_ORG, "ZZ-COPY-3", OTHER_HOLDER["id_type"], OTHER_HOLDER["id_number"])
    denied = clients.window.post(
        f"/api/v1/certificates/{identifier}/copies", json={**body, **serving(other, "ZZ-COPY-3")}
    )
    assert denied.status_code == 404  # not the served holder's: as if it did not exist


def _entries(app: Any, api_repo: Repository, **where: Any) -> list[AuditEventRow]:
    assert app.state.services.audit.flush()
    query = select(AuditEventRow).order_by(AuditEventRow.seq)
    for column, value in where.items():
        query = query.where(getattr(AuditEventRow, column) == value)
    with api_repo.db.session(readonly=True) as session:
        return list(session.scalars(query))


def _ref(api_repo: Repository, document: dict[str, Any]) -> str:
    holder = document["holder"]
    return holder_ref(holder_id_digest(api_repo.holder_key, holder["id_type"], holder["id_number"]))


def test_twenty_parallel_look_ups_of_two_holders_under_one_registered_matter_serve_only_its_holder(
    clients: Clients, api_repo: Repository, app: Any
) -> None:
    """Issue 14/19: parallel look-ups of two holders under one matter, registered for the first holder: all its
    look-ups answer 200, all of the other's 403 — on SQLite and PostgreSQL."""
    documents = [construction_data(api_repo), construction_data(api_repo, number="410100202406100002",
                                                                 holder=OTHER_HOLDER)]  # fmt: skip
    for document in documents:
        _issue(clients, document)
    start = threading.Barrier(20)

    def look_up(position: int) -> tuple[int, int]:
        which = position % 2
        start.wait()
        response = _look_up(clients.window, documents[which], "ZZ-PARALLEL-1")
        return which, response.status_code

    with ThreadPoolExecutor(max_workers=20) as pool:
        results = list(pool.map(look_up, range(20)))
    served = {which for which, status in results if status == 200}
    assert served == {0}, results  # the registered holder
    assert sorted(status for _, status in results) == [200] * 10 + [403] * 10
    allowed = _entries(app, api_repo, matter="ZZ-PARALLEL-1", outcome="allow", action="holder.lookup")
    assert len(allowed) == 10 and {e.holder_digest for e in allowed} == {
        _ref(api_repo, documents[served.pop()])
    }


def test_the_history_of_a_certificate_whose_holder_changed_does_not_reveal_the_new_holder(
    clients: Clients, api_repo: Repository
) -> None:
    """Regression (issue 14): a clerk serving H1 asks for the history of v1 after the agency changed the holder
    to H2 — H2's name, ID number and face must not come back, and no copy of v2 can be made."""
    document = construction_data(api_repo)
    v1 = _issue(clients, document)
    changed = construction_data(api_repo, holder=OTHER_HOLDER)
    changed["face"]["builder"] = OTHER_HOLDER["name"]
    response = clients.agency.post(
        f"/api/v1/certificates/{v1}/change", json={"reason": "持证主体变更", "data": changed}
    )
    assert response.status_code == 201, response.text
    v2 = response.json()["identifier"]
    params = serving(document, "ZZ-LEAK-1")
    history = clients.window.get(f"/api/v1/certificates/{v1}/history", **served(document, "ZZ-LEAK-1"))
    assert history.status_code == 200, history.text
    assert [c["identifier"] for c in history.json()] == [v1]
    assert OTHER_HOLDER["name"] not in history.text and OTHER_HOLDER["id_number"] not in history.text
    for suffix in ("", "/history", "/preview.png"):
        assert (
            clients.window.get(
                f"/api/v1/certificates/{v2}{suffix}", **served(document, "ZZ-LEAK-1")
            ).status_code
            == 404
        )
    copy = clients.window.post(f"/api/v1/certificates/{v2}/copies", json={"purpose": "办理业务", **params})
    assert copy.status_code == 404
    agency_view = clients.agency.get(f"/api/v1/certificates/{v1}/history")
    assert [c["identifier"] for c in agency_view.json()] == [v1, v2]


def test_an_agencys_holder_look_up_is_audited_with_the_holder_digest(
    clients: Clients, api_repo: Repository
) -> None:
    document = construction_data(api_repo)
    _issue(clients, document)
    assert _look_up(clients.agency, document).status_code == 200
    digest = _ref(api_repo, document)
    found = clients.auditor.get("/api/v1/audit/events", params={"holder_digest": digest}).json()["items"]
    lookups = [e for e in found if e["action"] == "holder.lookup"]
    assert len(lookups) == 1 and lookups[0]["role"] == "agency" and lookups[0]["outcome"] == "allow"


def test_each_sharing_call_leaves_exactly_one_audit_entry(
    clients: Clients, api_repo: Repository, app: Any
) -> None:
    document = construction_data(api_repo)
    identifier = _issue(clients, document)
    cert = f"/api/v1/certificates/{identifier}"
    params = serving(document, "ZZ-ONCE-1")
    get = served(document, "ZZ-ONCE-1")
    lookup = _lookup_body(document, "ZZ-ONCE-1")
    calls: list[tuple[Any, str, str, dict[str, Any], str, int]] = [
        (clients.window, "GET", cert, get, "certificate.read", 200),
        (clients.window, "GET", f"{cert}/history", get, "certificate.history", 200),
        (clients.window, "GET", f"{cert}/status", get, "certificate.status", 200),
        (clients.window, "GET", f"{cert}/preview.png", {**get, "params": {"matter": "ZZ-ONCE-1", "dpi": 40}}, "certificate.preview", 200),
        (clients.window, "POST", HOLDER_LOOKUP, {"json": lookup}, "holder.lookup", 200),
        (clients.window, "POST", f"{cert}/copies", {"json": {"purpose": "办理业务", **params}}, "certificate.copy", 200),
        (clients.agency, "GET", cert, {}, "certificate.read", 200),
        (clients.window, "GET", cert, {"params": {"matter": "ZZ-ONCE-1"}}, "certificate.read", 403),
        (clients.window, "GET", f"{cert}X", get, "certificate.read", 404),
    ]  # fmt: skip
    sent = []
    for client, method, url, kwargs, action, status in calls:
        request_id = uuid.uuid4().hex
        options = {**kwargs, "headers": {**kwargs.get("headers", {}), "X-Request-ID": request_id}}
        response = client.request(method, url, **options)
        assert response.status_code == status, (url, response.text)
        sent.append((request_id, action, status))
    for request_id, action, status in sent:
        (entry,) = _entries(app, api_repo, request_id=request_id)
        assert (entry.action, entry.status_code) == (action, status)
        assert entry.holder_digest == (None if status == 403 else _ref(api_repo, document))
        assert entry.resource is not None and entry.resource.startswith(("GET /api/v1/", "POST /api/v1/"))


def test_a_holder_id_in_a_url_is_gone_and_the_answer_states_the_new_form(
    clients: Clients, api_repo: Repository
) -> None:
    """Issue 17: a holder ID never travels in a URL. The old look-up path and ``holder_id``/``holder_id_type``
    query parameters (certificate reads, the auditor's search and export) answer 410 Gone with an RFC 9457
    problem naming the new form; the new forms (POST body, ``X-Holder-Id-*`` headers) answer."""
    document = construction_data(api_repo)
    identifier = _issue(clients, document)
    holder = document["holder"]
    old = clients.window.get(
        f"/api/v1/holders/{holder['id_type']}/{holder['id_number']}/certificates",
        params={"matter": "ZZ-GONE-1"},
    )
    assert old.status_code == 410
    assert old.headers["content-type"].startswith("application/problem+json")
    problem = old.json()
    assert problem["type"].endswith("/holder-id-in-url") and problem["status"] == 410
    assert f"POST {HOLDER_LOOKUP}" in problem["detail"]
    in_query = {"matter": "ZZ-GONE-1", "holder_id_type": holder["id_type"], "holder_id": holder["id_number"]}
    for suffix in ("", "/history", "/status", "/preview.png", "/inspections"):
        gone = clients.window.get(f"/api/v1/certificates/{identifier}{suffix}", params=in_query)
        assert gone.status_code == 410, suffix
        assert "X-Holder-Id-Type" in gone.json()["detail"] and "X-Holder-Id" in gone.json()["detail"]
    for path in ("/api/v1/audit/events", "/api/v1/audit/export"):
        gone = clients.auditor.get(
            path, params={"holder_id_type": holder["id_type"], "holder_id": holder["id_number"]}
        )
        assert gone.status_code == 410 and "X-Holder-Id" in gone.json()["detail"], path
    # the new forms answer
    assert _look_up(clients.window, document, "ZZ-GONE-1").status_code == 200
    assert (
        clients.window.get(f"/api/v1/certificates/{identifier}", **served(document, "ZZ-GONE-1")).status_code
        == 200
    )
    found = clients.auditor.get("/api/v1/audit/events", headers=serving_headers(document))
    assert found.status_code == 200, found.text
    items = found.json()["items"]
    assert items and {e["holder_digest"] for e in items} == {_ref(api_repo, document)}
    bad = clients.auditor.get(
        "/api/v1/audit/events", headers={"X-Holder-Id-Type": "111", "X-Holder-Id": "123"}
    )
    assert bad.status_code == 422
