"""The audit trail through the API: every request leaves exactly one log entry (counted by route), with who, what
and from where; the auditor queries (holder by ID number, cursor pages), exports that verify offline, the summary,
checkpoints and proofs — and nobody else may."""

from __future__ import annotations

import json
import re
import uuid
from collections import Counter
from typing import Any

from sqlalchemy import select

from certstore.audit.merkle import leaf_hash, verify_consistency, verify_inclusion
from certstore.audit.query import verify_export
from certstore.audit.verify import verify_log
from certstore.keystore import KeyStore
from certstore.store.models import AuditEventRow
from certstore.store.repository import Repository
from tests.api.conftest import Clients, construction_data, served, serving_headers


def _entries(app: Any, api_repo: Repository) -> list[AuditEventRow]:
    assert app.state.services.audit.flush()
    with api_repo.db.session(readonly=True) as session:
        return list(session.scalars(select(AuditEventRow).order_by(AuditEventRow.seq)))


def test_every_request_leaves_exactly_one_entry_counted_by_route(
    app: Any, clients: Clients, api_repo: Repository
) -> None:
    document = construction_data(api_repo)
    holder = document["holder"]
    holder_path = "/api/v1/holders/certificates"  # 一号查询: the ID in the body, never the URL (issue 17)
    lookup = {"holder_id_type": holder["id_type"], "holder_id": holder["id_number"]}
    sent: list[tuple[str, str]] = []  # (request id, expected resource)

    def call(client_name: str, method: str, url: str, resource: str, **kwargs: Any) -> Any:
        request_id = uuid.uuid4().hex
        headers = {**kwargs.pop("headers", {}), "X-Request-ID": request_id}
        response = getattr(clients, client_name).request(method, url, headers=headers, **kwargs)
        assert response.headers["X-Request-ID"] == request_id
        sent.append((request_id, resource))
        return response

    issued = call("agency", "POST", "/api/v1/certificates", "POST /api/v1/certificates", json=document)
    assert issued.status_code == 201
    identifier = issued.json()["identifier"]
    cert = "/api/v1/certificates/{identifier}"
    holders = "/api/v1/holders/certificates"
    calls: list[tuple[str, str, str, str, dict[str, Any]]] = [
        (
            "agency",
            "POST",
            "/api/v1/certificates",
            "POST /api/v1/certificates",
            {"json": document},
        ),  # 200 repeat
        ("agency", "POST", "/api/v1/certificates", "POST /api/v1/certificates", {"json": {"x": 1}}),  # 422
        ("agency", "GET", f"/api/v1/certificates/{identifier}", f"GET {cert}", {}),
        ("agency", "GET", "/api/v1/certificates/ZZ-NO-SUCH", f"GET {cert}", {}),  # 404
        ("window", "POST", holder_path, f"POST {holders}", {"json": {**lookup, "matter": "ZZ2026112600001"}}),
        ("window", "POST", holder_path, f"POST {holders}", {"json": lookup}),  # 403: no matter
        ("window", "GET", f"/api/v1/certificates/{identifier}", f"GET {cert}", served(document)),
        ("auditor", "GET", f"/api/v1/certificates/{identifier}", f"GET {cert}", {}),  # 403
        ("anonymous", "GET", "/api/v1/catalogue", "GET /api/v1/catalogue", {}),  # 401
        ("bureau", "GET", "/api/v1/catalogue", "GET /api/v1/catalogue", {}),
        ("bureau", "GET", "/api/v1/certificates", "GET /api/v1/certificates", {"params": {"grant": "12345"}}),
        ("agency", "GET", "/api/v1/no/such/route", "GET (unrouted)", {}),
        ("agency", "GET", "/api/v1/catalogue/%00", "GET (unrouted)", {}),  # NUL: refused before routing
        ("auditor", "GET", "/api/v1/audit/events", "GET /api/v1/audit/events", {}),
        ("auditor", "GET", "/api/v1/audit/summary", "GET /api/v1/audit/summary", {}),
        ("upstream", "GET", "/api/v1/audit/summary", "GET /api/v1/audit/summary", {}),  # 403
    ]
    for client_name, method, url, resource, kwargs in calls:
        call(client_name, method, url, resource, **kwargs)
    clients.anonymous.get("/api/v1/health")  # not an audited call

    rows = _entries(app, api_repo)
    by_request = Counter(r.request_id for r in rows)
    assert all(by_request[request_id] == 1 for request_id, _ in sent), "exactly one entry per request"
    ours = {r.request_id: r for r in rows if r.request_id in dict(sent)}
    expected_by_route = Counter(resource for _, resource in sent)
    assert Counter(r.resource for r in ours.values()) == expected_by_route
    assert not any(r.resource == "GET /api/v1/health" for r in rows)

    entries = [ours[request_id] for request_id, _ in sent]
    assert [e.status_code for e in entries] == [
        201,
        200,
        422,
        200,
        404,
        200,
        403,
        200,
        403,
        401,
        200,
        403,
        404,
        422,
        200,
        200,
        403,
    ]
    assert [e.outcome for e in entries][5:7] == ["allow", "deny"]
    looked_up = entries[5]
    assert looked_up.role == "window" and looked_up.matter == "ZZ2026112600001"
    assert looked_up.holder_digest and holder["id_number"] not in str(looked_up.__dict__)
    assert looked_up.user_agent == "testclient" and looked_up.client
    assert entries[3].certificate_identifier == identifier
    assert entries[11].grant_id == 12345
    assert entries[9].principal is None and entries[9].outcome == "deny"
    assert verify_log(api_repo.db).entries == len(rows)


def test_auditors_query_export_and_prove(
    app: Any, clients: Clients, api_repo: Repository, api_keystore: KeyStore
) -> None:
    document = construction_data(api_repo)
    holder = document["holder"]
    assert clients.agency.post("/api/v1/certificates", json=document).status_code == 201
    path = "/api/v1/holders/certificates"
    lookup = {"holder_id_type": holder["id_type"], "holder_id": holder["id_number"]}
    for _ in range(3):
        assert clients.window.post(path, json={**lookup, "matter": "ZZ2026112600001"}).status_code == 200
    clients.window.post(path, json=lookup)  # denied

    # search by the holder's ID number (in headers, never the URL): hashed the way the log hashes it
    found = clients.auditor.get("/api/v1/audit/events", headers=serving_headers(document))
    assert found.status_code == 200, found.text
    # the issue, the three look-ups and the refused one (no matter): every entry about the holder names it
    # (and the matters the unit's case system registered for the holder: tests/api/conftest.py)
    about = [e for e in found.json()["items"] if e["action"] != "matter.register"]
    assert sorted((e["action"], e["outcome"]) for e in about) == [
        ("certificate.issue", "allow"), *[("holder.lookup", "allow")] * 3, ("holder.lookup", "deny")]  # fmt: skip
    assert holder["id_number"] not in found.text
    bad = clients.auditor.get(
        "/api/v1/audit/events", headers={"X-Holder-Id-Type": "111", "X-Holder-Id": "123"}
    )
    assert bad.status_code == 422
    assert clients.auditor.get("/api/v1/audit/events", params={"cursor": "garbage"}).status_code == 422

    pages, cursor = [], None
    while True:
        page = clients.auditor.get(
            "/api/v1/audit/events", params={"limit": 2, **({"cursor": cursor} if cursor else {})}
        )
        pages += page.json()["items"]
        cursor = page.json()["next_cursor"]
        if cursor is None:
            break
    assert len({e["seq"] for e in pages}) == len(pages) >= 6

    trust = api_keystore.trust_store()
    for fmt in ("jsonl", "csv"):
        export = clients.auditor.get(
            "/api/v1/audit/export", params={"format": fmt, "actor": pages[0]["principal"]}
        )
        assert export.status_code == 200, export.text
        assert export.headers["content-type"].startswith(
            "application/x-ndjson" if fmt == "jsonl" else "text/csv"
        )
        result = verify_export(export.text.splitlines(keepends=True), trust=trust)
        assert result.intact and result.signer_checked, result.problems
        assert result.entries >= 1

    view = clients.auditor.get("/api/v1/audit/summary").json()
    assert view["denied"] >= 1 and view["calls"] >= 6

    made = clients.auditor.post("/api/v1/audit/checkpoints")
    assert made.status_code == 201
    checkpoint = made.json()
    listed = clients.auditor.get("/api/v1/audit/checkpoints").json()["items"]
    assert listed[-1]["id"] == checkpoint["id"]

    seq = pages[1]["seq"]
    proof = clients.auditor.get("/api/v1/audit/proofs/inclusion", params={"seq": seq}).json()
    root = bytes.fromhex(proof["checkpoint"]["root_hash"])
    assert verify_inclusion(
        seq,
        proof["tree_size"],
        leaf_hash(bytes.fromhex(proof["entry"]["entry_hash"])),
        [bytes.fromhex(h) for h in proof["proof"]],
        root,
    )
    later = clients.auditor.get("/api/v1/audit/proofs/consistency", params={"first": 2}).json()
    assert verify_consistency(
        2,
        later["second"],
        bytes.fromhex(later["first_root"]),
        bytes.fromhex(later["second_root"]),
        [bytes.fromhex(h) for h in later["proof"]],
    )
    assert clients.auditor.get("/api/v1/audit/proofs/inclusion", params={"seq": 10**9}).status_code == 404
    for role in ("agency", "window", "bureau", "upstream"):
        assert getattr(clients, role).get("/api/v1/audit/export").status_code == 403
        assert getattr(clients, role).post("/api/v1/audit/checkpoints").status_code == 403
    assert clients.anonymous.get("/api/v1/audit/proofs/inclusion", params={"seq": 0}).status_code == 401


def test_request_ids_are_unique_per_entry_and_a_clients_duplicate_is_kept_apart(
    app: Any, clients: Clients, api_repo: Repository
) -> None:
    """A client's X-Request-ID names its entry the first time it is sent; sent again (or in the server's own
    form) the entry gets a fresh server id — echoed in the response — and keeps the client's value as
    ``details.client_request_id``, whether the middleware or the use case wrote the entry."""
    document = construction_data(api_repo)
    identifier = clients.agency.post("/api/v1/certificates", json=document).json()["identifier"]
    chosen = f"client-{uuid.uuid4().hex}"
    answers = [
        clients.agency.get(f"/api/v1/certificates/{identifier}", headers={"X-Request-ID": chosen}),  # core
        clients.agency.get(f"/api/v1/certificates/{identifier}", headers={"X-Request-ID": chosen}),  # core
        clients.agency.get("/api/v1/certificates/ZZ-NO-SUCH", headers={"X-Request-ID": chosen}),  # middleware
        clients.agency.get("/api/v1/certificates/ZZ-NO-SUCH", headers={"X-Request-ID": "0" * 40}),
        clients.agency.get("/api/v1/certificates/ZZ-NO-SUCH"),
    ]
    ids = [answer.headers["X-Request-ID"] for answer in answers]
    assert ids[0] == chosen
    assert all(re.fullmatch("[0-9a-f]{40}", i) for i in ids[1:]), ids
    assert len(set(ids)) == len(ids)
    entries = {e.request_id: e for e in _entries(app, api_repo) if e.request_id in ids}
    assert sorted(entries) == sorted(ids)  # one entry per request, each under its own id
    kept = [json.loads(entries[i].details).get("client_request_id") for i in ids]
    assert kept == [None, chosen, chosen, "0" * 40, None]
    by_request = Counter(e.request_id for e in _entries(app, api_repo))
    assert max(by_request.values()) == 1  # no request id twice in the log
