"""Write-ahead audit of mutations (issue 7, issue 14): a mutating API call's use case writes its audit entry
inside the transaction of the action itself (with the arrival, where there is one), so the entry and the change
are stored together or not at all; the middleware then does not log the request again (exactly one entry), and
logs it when the action rolled back. A repeat that changes nothing is recorded by the use case through the
durable sink. Pending entries are chained promptly by the writer and seen by the rules that read the log. On
SQLite and PostgreSQL."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from api.security import ActionAudit
from certstore.access import Actor, Role
from certstore.audit.events import AuditEvent, entry_from_row, event_from_payload
from certstore.audit.verify import verify_log
from certstore.lifecycle import Status
from certstore.records import example_draft
from certstore.services import access, calls, certificates
from certstore.services.catalogue import get_entry
from certstore.services.deadlines import get_arrival
from certstore.store.models import (
    AccessGrantRow,
    ArrivalRow,
    AuditEventRow,
    AuditPendingRow,
    CertificateRow,
)
from certstore.store.repository import Repository
from tests.api.conftest import AGENCY_ORG, CONSTRUCTION, Clients, construction_data, serving
from tests.support import issuing

ROOT = Path(__file__).resolve().parents[2]


def _written(api_repo: Repository, request_id: str) -> list[tuple[str, AuditEvent]]:
    """Every stored event of ``request_id``: chained (``audit_events``) or waiting (``audit_pending``). Pending
    rows are read first and an event found in both (chained meanwhile) counts once, as chained."""
    found: dict[str, tuple[str, AuditEvent]] = {}
    with api_repo.db.session(readonly=True) as session:
        for row in session.scalars(select(AuditPendingRow)):
            event = event_from_payload(row.payload)
            if event.request_id == request_id:
                found[event.event_id] = ("pending", event)
        for chained in session.scalars(select(AuditEventRow).where(AuditEventRow.request_id == request_id)):
            event = _event_of(chained)
            found[event.event_id] = ("chained", event)
    return list(found.values())


def _event_of(row: AuditEventRow) -> AuditEvent:
    return entry_from_row(row).event


def _spooled(app: Any, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The request ids the middleware hands to the audit trail (the spool path), recorded as they pass."""
    trail = app.state.services.audit
    original = trail.asubmit
    seen: list[str] = []

    async def recording(event: AuditEvent) -> None:
        seen.append(event.request_id)
        await original(event)

    monkeypatch.setattr(trail, "asubmit", recording)
    return seen


def _call(client: Any, method: str, url: str, **kwargs: Any) -> tuple[str, Any]:
    request_id = uuid.uuid4().hex
    response = client.request(method, url, headers={"X-Request-ID": request_id}, **kwargs)
    return request_id, response


def test_mutations_write_their_one_entry_in_their_own_transaction(
    app: Any, clients: Clients, api_repo: Repository, monkeypatch: pytest.MonkeyPatch
) -> None:
    spooled = _spooled(app, monkeypatch)
    document = construction_data(api_repo)
    in_transaction: list[tuple[str, int]] = []  # (request id, status)
    by_core: list[tuple[str, int]] = []  # recorded by the use case through the durable sink (a repeat)
    by_middleware: list[tuple[str, int]] = []

    def expect(where: list[tuple[str, int]], status: int, call: tuple[str, Any]) -> Any:
        request_id, response = call
        assert response.status_code == status, response.text
        where.append((request_id, status))
        return response

    issued = expect(in_transaction, 201, _call(clients.agency, "POST", "/api/v1/certificates", json=document))
    identifier = issued.json()["identifier"]
    # the new version's identifier is named by the entry, though the request has none in its path
    request_id = in_transaction[0][0]
    [(_, first)] = _written(api_repo, request_id)
    assert first.certificate_identifier == identifier and first.action == "certificate.issue"
    assert first.principal == f"{AGENCY_ORG}/agency" and first.status_code == 201
    assert first.holder_digest == certificates.get(api_repo, identifier).holder_ref
    assert first.resource == "POST /api/v1/certificates" and first.details["via"] == "api"
    arrival = get_arrival(api_repo, identifier)
    assert arrival is not None and arrival.source == "api"

    expect(by_core, 200, _call(clients.agency, "POST", "/api/v1/certificates", json=document))  # repeat
    cert = f"/api/v1/certificates/{identifier}"
    suspended = expect(
        in_transaction,
        200,
        _call(clients.agency, "POST", f"{cert}/actions", json={"action": "suspend", "reason": "核查"}),
    )
    expect(
        by_middleware,
        409,
        _call(clients.agency, "POST", f"{cert}/actions", json={"action": "suspend", "reason": "x"}),
    )
    expect(
        in_transaction,
        200,
        _call(clients.agency, "POST", f"{cert}/actions", json={"action": "resume", "reason": "x"}),
    )
    assert suspended.json()["status"] == "suspended"
    changed_data = {**document, "face": {**document["face"], "project_name": "变更后的项目名称"}}
    changed = expect(
        in_transaction,
        201,
        _call(clients.agency, "POST", f"{cert}/change", json={"reason": "更正", "data": changed_data}),
    ).json()
    assert get_arrival(api_repo, changed["identifier"]) is not None  # recorded in the change's transaction
    expect(
        by_middleware,
        409,
        _call(clients.agency, "POST", f"{cert}/change", json={"reason": "x", "data": document}),
    )
    renewed = expect(
        in_transaction,
        201,
        _call(
            clients.agency,
            "POST",
            f"/api/v1/certificates/{changed['identifier']}/renew",
            json={"reason": "延续", "valid_until": "2099-12-31"},
        ),
    )
    new_identifier = renewed.json()["identifier"]
    review = expect(
        in_transaction,
        201,
        _call(
            clients.window,
            "POST",
            "/api/v1/reviews",
            json={"identifier": new_identifier, "reason": "有误", **serving(document)},
        ),
    ).json()
    expect(in_transaction, 200, _call(clients.window, "POST", f"/api/v1/reviews/{review['id']}/withdraw"))
    expect(by_middleware, 409, _call(clients.window, "POST", f"/api/v1/reviews/{review['id']}/withdraw"))
    until = (datetime.now(UTC) + timedelta(days=30)).isoformat()
    grant = expect(
        in_transaction,
        201,
        _call(
            clients.bureau,
            "POST",
            "/api/v1/grants",
            json={"organisation_code": "12410100MB0000001X", "purpose": "统计", "valid_until": until},
        ),
    ).json()
    expect(in_transaction, 200, _call(clients.bureau, "POST", f"/api/v1/grants/{grant['id']}/revoke"))
    expect(by_middleware, 200, _call(clients.bureau, "POST", f"/api/v1/grants/{grant['id']}/revoke"))  # no-op
    holiday = {"kind": "holiday", "name": "测试假日"}
    expect(in_transaction, 200, _call(clients.bureau, "PUT", "/api/v1/calendar/2026-12-30", json=holiday))
    expect(in_transaction, 204, _call(clients.bureau, "DELETE", "/api/v1/calendar/2026-12-30"))
    expect(
        by_middleware, 204, _call(clients.bureau, "DELETE", "/api/v1/calendar/2026-12-30")
    )  # nothing there
    catalogue = get_entry(api_repo, CONSTRUCTION).to_document()
    catalogue["version"] = 3  # the shipped entry is version 2
    expect(in_transaction, 201, _call(clients.agency, "POST", "/api/v1/catalogue", json=catalogue))
    expect(by_middleware, 200, _call(clients.agency, "POST", "/api/v1/catalogue", json=catalogue))  # repeat
    expect(
        in_transaction,
        200,
        _call(
            clients.bureau,
            "POST",
            f"/api/v1/catalogue/{CONSTRUCTION}/versions/3/reject",
            json={"note": "不完整"},
        ),
    )
    expect(
        in_transaction,
        202,
        _call(
            clients.agency,
            "POST",
            "/api/v1/batches",
            json=[construction_data(api_repo, number="410100202406100002")],
        ),
    )
    expect(
        by_middleware, 403, _call(clients.window, "POST", "/api/v1/grants", json={})
    )  # denied before any change

    assert app.state.services.audit.flush()
    for request_id, status in in_transaction + by_core + by_middleware:
        written = _written(api_repo, request_id)
        assert len(written) == 1, (request_id, status, written)  # exactly one entry per request
        where, event = written[0]
        assert where == "chained" and event.status_code == status
    assert not {request_id for request_id, _ in in_transaction + by_core} & set(spooled)
    assert {request_id for request_id, _ in by_middleware} <= set(spooled)
    _assert_intact(app)


def test_the_entry_and_the_change_commit_together_or_not_at_all(
    app: Any, clients: Clients, api_repo: Repository, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failure after the change and its entry were written, in the same transaction: neither is stored; the
    middleware logs the failed request once."""
    original = ActionAudit.write

    def write_then_fail(self: ActionAudit, session: Session, status_code: int | None = None) -> None:
        original(self, session, status_code)
        session.flush()  # the entry (and the change) are in the transaction
        raise RuntimeError("injected failure before the commit")

    audit_in = calls.audit_in

    def audit_in_then_fail(session: Session, call: calls.Call, event: AuditEvent) -> None:
        audit_in(session, call, event)
        session.flush()  # the entry, the certificate and its arrival are in the transaction
        raise RuntimeError("injected failure before the commit")

    monkeypatch.setattr(ActionAudit, "write", write_then_fail)  # the routes that still use it (grants)
    monkeypatch.setattr(calls, "audit_in", audit_in_then_fail)  # the certificate use cases
    document = construction_data(api_repo)
    request_id, response = _call(clients.agency, "POST", "/api/v1/certificates", json=document)
    assert response.status_code == 500
    assert certificates.stored_version(api_repo, AGENCY_ORG, document["certificate_number"]) is None
    with api_repo.db.session(readonly=True) as session:
        assert session.scalars(select(CertificateRow)).first() is None
        assert session.scalars(select(ArrivalRow)).first() is None  # written in the same transaction, before
    until = (datetime.now(UTC) + timedelta(days=30)).isoformat()
    grant_id, refused = _call(
        clients.bureau,
        "POST",
        "/api/v1/grants",
        json={"organisation_code": "12410100MB0000001X", "purpose": "统计", "valid_until": until},
    )
    assert refused.status_code == 500
    with api_repo.db.session(readonly=True) as session:
        assert session.scalars(select(AccessGrantRow)).first() is None

    assert app.state.services.audit.flush()
    for rid in (request_id, grant_id):
        [(where, event)] = _written(api_repo, rid)  # the middleware's, not the rolled-back one
        assert (where, event.status_code, event.outcome) == ("chained", 500, "error")
    _assert_intact(app)


def test_a_committed_action_whose_response_fails_keeps_exactly_its_entry(
    app: Any, clients: Clients, api_repo: Repository, monkeypatch: pytest.MonkeyPatch
) -> None:
    identifier = clients.agency.post("/api/v1/certificates", json=construction_data(api_repo)).json()[
        "identifier"
    ]

    def broken(services: Any, certificate: Any) -> Any:
        raise RuntimeError("the response could not be built")

    monkeypatch.setattr("api.routes.certificates._out", broken)
    request_id, response = _call(
        clients.agency,
        "POST",
        f"/api/v1/certificates/{identifier}/actions",
        json={"action": "suspend", "reason": "核查"},
    )
    assert response.status_code == 500
    assert certificates.get(api_repo, identifier).stored_status is Status.SUSPENDED  # the action committed
    assert app.state.services.audit.flush()
    [(_, event)] = _written(api_repo, request_id)  # its entry, and no second one for the failed response
    assert (event.status_code, event.outcome, event.action) == (200, "allow", "certificate.act")


def test_a_crash_between_commit_and_middleware_loses_nothing(
    app: Any, api_repo: Repository, database_url: str, tmp_path: Path
) -> None:
    """A process dies (SIGKILL) right after the action committed, before the middleware could log anything: the
    entry was committed with the action, and the next writer chains it."""
    agency = Actor("agency", Role.AGENCY, AGENCY_ORG)
    certificate = issuing.issue(
        api_repo, example_draft(get_entry(api_repo, CONSTRUCTION)), actor=agency
    ).certificate
    token = access.create_token(api_repo, role=Role.AGENCY, organisation_code=AGENCY_ORG, name="agency").token
    request_id = uuid.uuid4().hex
    done = subprocess.run(
        [
            sys.executable, "-m", "tests.api.crash_after_commit", database_url, str(tmp_path / "child"),
            token, certificate.identifier, request_id,
        ],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )  # fmt: skip
    assert done.returncode == -9, done.stderr
    assert "committed" in done.stdout
    assert certificates.get(api_repo, certificate.identifier).stored_status is Status.SUSPENDED
    assert [e.status_code for _, e in _written(api_repo, request_id)] == [200]  # committed with the action

    assert app.state.services.audit.flush()  # any writer chains it
    [(where, event)] = _written(api_repo, request_id)
    assert (where, event.action, event.certificate_identifier) == (
        "chained",
        "certificate.act",
        certificate.identifier,
    )
    _assert_intact(app)


def _wait_for(predicate: Callable[[], bool], seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def test_the_writer_chains_pending_entries_without_being_asked(
    clients: Clients, api_repo: Repository
) -> None:
    request_id, response = _call(
        clients.agency, "POST", "/api/v1/certificates", json=construction_data(api_repo)
    )
    assert response.status_code == 201
    assert _wait_for(lambda: [w for w, _ in _written(api_repo, request_id)] == ["chained"])  # no flush called


def test_the_matter_rule_sees_a_review_filed_in_its_own_transaction(
    app: Any, api_repo: Repository, request: pytest.FixtureRequest
) -> None:
    """A review request filed for holder A under matter M is logged only in its transaction (audit_pending); a
    look-up under M for another holder must still be refused (the matter binding, not the log, decides)."""
    app.state.services.audit.idle_interval = 3600  # the writer chains nothing unless asked
    clients: Clients = request.getfixturevalue("clients")
    document = construction_data(api_repo)
    identifier = clients.agency.post("/api/v1/certificates", json=document).json()["identifier"]
    filed = clients.window.post(
        "/api/v1/reviews", json={"identifier": identifier, "reason": "有误", **serving(document, "ZZ-M-1")}
    )
    assert filed.status_code == 201, filed.text
    with api_repo.db.session(readonly=True) as session:
        assert session.scalars(select(AuditPendingRow)).first() is not None  # not chained yet
    other = {"matter": "ZZ-M-1", "holder_id_type": "001", "holder_id": "91410105MA9K0XQ7XN"}
    looked_up = clients.window.post("/api/v1/holders/certificates", json=other)
    assert looked_up.status_code == 403
    assert "another holder" in looked_up.json()["detail"]


def _assert_intact(app: Any) -> None:
    """``certstore audit verify`` of the app's log: entries, chain, tree and checkpoints (signer included)."""
    services = app.state.services
    result = verify_log(
        services.repo.db,
        trust=services.keystore.trust_store(),
        pinned=[services.keystore.signer_entry("repository").certificate],
    )
    assert result.intact, result.findings
