"""The case-handling system's API (``/api/v1/matters``) and window look-ups bound to registered matters (issue 19,
item 4), over HTTP:

- in process, on each database backend: the case system registers a matter (201; a retry answers it again; a
  different registration 409; bad input 422 — RFC 9457 problems), window staff of the unit read it, another unit
  does not see it, a clerk cannot register; a look-up under the registered matter is served, under an invented
  or a closed matter refused (403) and audited as a denial; a clerk over the per-clerk limit gets 429 with
  ``Retry-After``;
- against a real ``certstore serve`` (two workers): the case system registers a matter over HTTP, then 20
  parallel look-ups — the registered holder by the unit's clerk, another holder, a clerk of another unit, an
  invented matter — serve only the registered holder to the unit's clerk; ``/metrics`` counts the look-ups."""

from __future__ import annotations

import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from bench._setup import prepared_data_dir
from certstore.access import Role
from certstore.identifiers import HolderIdType, holder_id_digest, holder_ref
from certstore.records import Holder, draft_from_json, draft_to_json, example_draft
from certstore.services import access, lookup_limits
from certstore.services.catalogue import get_entry
from certstore.services.lookup_limits import LookupGuard, LookupLimits
from certstore.store.repository import Repository
from devservers.api import ApiServer
from tests.api.conftest import PRINCIPALS, Clients, construction_data
from tests.services.conftest import CREDIT_CODES
from tests.support import issuing
from tests.support.clock import Clock

UNIT = PRINCIPALS["window"][1]
OTHER_UNIT = PRINCIPALS["other_window"][1]
MATTERS = "/api/v1/matters"
LOOKUP = "/api/v1/holders/certificates"
CONSTRUCTION = "11410100990000025A001"


def _case_system(app: Any, api_repo: Repository) -> TestClient:
    token = access.create_token(
        api_repo, role=Role.CASE_SYSTEM, organisation_code=UNIT, organisation_name="郑州市政务服务中心",
        name="一窗受理系统",
    ).token  # fmt: skip
    client = TestClient(app, raise_server_exceptions=False)
    client.headers["Authorization"] = f"Bearer {token}"
    return client


def _body(
    document: dict[str, Any], clock: Clock, matter: str = "BJ-2026-0001", **changes: Any
) -> dict[str, Any]:
    holder = document["holder"]
    body = {
        "matter": matter,
        "holder_id_type": holder["id_type"],
        "holder_id": holder["id_number"],
        "purpose": "施工许可证变更",
        "valid_until": (clock.now + timedelta(days=10)).isoformat(),
    }
    body.update(changes)
    return body


def _look_up(client: Any, document: dict[str, Any], matter: str) -> Any:
    holder = document["holder"]
    return client.post(
        LOOKUP, json={"holder_id_type": holder["id_type"], "holder_id": holder["id_number"], "matter": matter}
    )


def test_the_case_system_registers_reads_and_closes_a_matter(
    app: Any, clients: Clients, api_repo: Repository, clock: Clock
) -> None:
    document = construction_data(api_repo)
    assert clients.agency.post("/api/v1/certificates", json=document).status_code == 201
    case = _case_system(app, api_repo)
    created = case.post(MATTERS, json=_body(document, clock))
    assert created.status_code == 201, created.text
    matter = created.json()
    holder = document["holder"]
    expected = holder_ref(holder_id_digest(api_repo.holder_key, holder["id_type"], holder["id_number"]))
    assert (matter["matter"], matter["organisation_code"], matter["holder_ref"], matter["active"]) == (
        "BJ-2026-0001", UNIT, expected, True)  # fmt: skip
    assert holder["id_number"] not in created.text
    assert case.post(MATTERS, json=_body(document, clock)).json() == matter  # a retry: the stored matter
    conflict = case.post(MATTERS, json=_body(document, clock, purpose="另一事项"))
    assert conflict.status_code == 409 and conflict.headers["content-type"] == "application/problem+json"
    assert "purpose" in conflict.json()["detail"]
    invalid = case.post(MATTERS, json=_body(document, clock, holder_id="91410100MA44A1B2XX"))
    assert invalid.status_code == 422 and "not a valid ID" in invalid.json()["detail"]
    past = case.post(MATTERS, json=_body(document, clock, valid_until=clock.now.isoformat()))
    assert past.status_code == 422 and "valid_until" in past.json()["detail"]
    naive = case.post(MATTERS, json=_body(document, clock, valid_until="2030-01-01T00:00:00"))
    assert naive.status_code == 422
    assert clients.window.post(MATTERS, json=_body(document, clock, "BJ-X")).status_code == 403
    assert clients.window.get(f"{MATTERS}/BJ-2026-0001").json()["holder_ref"] == expected
    assert clients.other_window.get(f"{MATTERS}/BJ-2026-0001").status_code == 404

    assert _look_up(clients.window, document, "BJ-2026-0001").status_code == 200
    invented = _look_up(clients.window, document, "ANYTHING-I-INVENT")
    assert invented.status_code == 403 and "not an active matter registered" in invented.json()["detail"]
    assert _look_up(clients.other_window, document, "BJ-2026-0001").status_code == 403
    closed = case.post(f"{MATTERS}/BJ-2026-0001/close", json={"withdrawn": True, "reason": "申请人撤回"})
    assert closed.status_code == 200 and closed.json()["close_reason"] == "withdrawn"
    assert _look_up(clients.window, document, "BJ-2026-0001").status_code == 403
    assert case.post(f"{MATTERS}/BJ-2026-0001/close", json={}).status_code == 409
    assert case.post(f"{MATTERS}/NONE/close", json={}).status_code == 404

    services = app.state.services
    assert services.audit.flush()
    entries = issuing.audit_entries(api_repo)
    registered = [e for e in entries if e.action == "matter.register" and e.matter == "BJ-2026-0001"]
    assert len(registered) == 1 and registered[0].holder_digest == expected
    refused = [e for e in entries if e.action == "holder.lookup" and e.outcome == "deny"]
    assert {e.matter for e in refused} == {"ANYTHING-I-INVENT", "BJ-2026-0001"}
    assert all(e.holder_digest == expected for e in refused)


def test_a_clerk_over_the_limit_gets_429_with_retry_after(
    app: Any, clients: Clients, api_repo: Repository
) -> None:
    lookup_limits.install(app.state.services, LookupGuard(LookupLimits(rate=1, burst=2, alert_holders=0)))
    document = construction_data(api_repo)
    assert [_look_up(clients.window, document, "ZZ2026112600001").status_code for _ in range(2)] == [200, 200]
    limited = _look_up(clients.window, document, "ZZ2026112600001")
    assert limited.status_code == 429, limited.text
    assert limited.headers["content-type"] == "application/problem+json"
    assert int(limited.headers["Retry-After"]) >= 1
    assert limited.json()["type"].endswith("/rate-limited")
    assert _look_up(clients.other_window, document, "ZZ2026112600001").status_code == 403  # its own bucket


# --- against a real server ----------------------------------------------------------------------------------


@dataclass
class Served:
    server: ApiServer
    tokens: dict[str, str]
    documents: list[dict[str, Any]]


H2 = Holder("郑州另一置业有限公司", HolderIdType.CREDIT_CODE, CREDIT_CODES[1])


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """A data directory with two holders' construction permits and tokens for the unit's case system, its clerk,
    another unit's clerk and the bureau, served by ``certstore serve --workers 2`` (SQLite)."""
    root = tmp_path_factory.mktemp("matters-serve")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CERTSTORE_")}
    application = prepared_data_dir(root / "data", env)
    repo = application.repo
    document = draft_to_json(example_draft(get_entry(repo, CONSTRUCTION)))
    other = replace(draft_from_json({**document, "certificate_number": "410100202406100002"}), holder=H2)
    issuing.issue(application, draft_from_json(document), file_maker=None)
    issuing.issue(application, other, file_maker=None)
    tokens = {
        name: access.create_token(repo, role=role, organisation_code=org, name=name).token
        for name, role, org in (
            ("case", Role.CASE_SYSTEM, UNIT),
            ("clerk", Role.WINDOW, UNIT),
            ("stranger", Role.WINDOW, OTHER_UNIT),
            ("bureau", Role.BUREAU, "11410100MB1700000X"),
        )
    }
    application.close()
    server = ApiServer(root / "data", env=env, workers=2)
    try:
        server.start()
        yield Served(server, tokens, [document, draft_to_json(other)])
    finally:
        server.stop()


def test_twenty_parallel_look_ups_against_a_running_server_serve_only_the_registered_holder(
    served: Served,
) -> None:
    """The case system registers BJ-PAR-1 for the first holder over HTTP; then 20 look-ups at once: five each of
    (the unit's clerk, registered holder), (the unit's clerk, the other holder), (another unit's clerk,
    registered holder), (the unit's clerk, an invented matter). Only the first five are served."""
    base = served.server.base_url
    mine, theirs = served.documents

    def client(name: str) -> httpx.Client:
        return httpx.Client(
            base_url=base, headers={"Authorization": f"Bearer {served.tokens[name]}"}, timeout=30
        )

    with client("case") as case:
        until = "2099-01-01T00:00:00+08:00"
        holder = mine["holder"]
        body = {"matter": "BJ-PAR-1", "holder_id_type": holder["id_type"], "holder_id": holder["id_number"],
                "purpose": "施工许可证变更", "valid_until": until}  # fmt: skip
        created = case.post(MATTERS, json=body)
        assert created.status_code == 201, created.text
    cases = [("clerk", mine, "BJ-PAR-1"), ("clerk", theirs, "BJ-PAR-1"), ("stranger", mine, "BJ-PAR-1"),
             ("clerk", mine, "INVENTED-1")] * 5  # fmt: skip

    def look_up(case: tuple[str, dict[str, Any], str]) -> tuple[str, int, list[str]]:
        name, document, matter = case
        with client(name) as http:
            response = _look_up(http, document, matter)
        found = [c["holder"]["id_number"] for c in response.json()] if response.status_code == 200 else []
        return f"{name}/{document['holder']['id_number']}/{matter}", response.status_code, found

    with ThreadPoolExecutor(max_workers=20) as pool:
        results = list(pool.map(look_up, cases))
    allowed = [(what, found) for what, status, found in results if status == 200]
    mine_id = mine["holder"]["id_number"]
    assert allowed == [(f"clerk/{mine_id}/BJ-PAR-1", [mine_id])] * 5, results
    assert sorted(status for _, status, _ in results) == [200] * 5 + [403] * 15
    with client("bureau") as bureau:
        metrics = bureau.get("/metrics")
    assert metrics.status_code == 200 and "certstore_window_lookups" in metrics.text
