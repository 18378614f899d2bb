"""``GET /api/v1/status/snapshot`` (public, cacheable) and ``POST /api/v1/public/verify`` with ``at`` (issue 15,
items 2 and 3): the snapshot the API serves verifies against the repository's trust anchors and decides the status
offline; the public verification answers the status as it stood at ``at``."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from certstore.lifecycle import Status
from certstore.services import certificates, verification
from certstore.store.repository import Repository
from certstore.verify.status_list import read_status_list
from tests.api.conftest import Clients, construction_data
from tests.support.clock import Clock


def _issue(clients: Clients, api_repo: Repository) -> str:
    response = clients.agency.post(
        "/api/v1/certificates", json=construction_data(api_repo, "410100202406109001")
    )
    assert response.status_code == 201, response.text
    return str(response.json()["identifier"])


def test_the_public_snapshot_decides_status_offline(
    app: Any, clients: Clients, api_repo: Repository, clock: Clock
) -> None:
    identifier = _issue(clients, api_repo)
    services = app.state.services
    clock.advance(minutes=1)  # the seal's signing time is the real clock's, ahead of this test clock's start
    first = clients.anonymous.get("/api/v1/status/snapshot")
    assert first.status_code == 200, first.text
    assert first.headers["content-type"] == "application/vnd.certstore.status-list"
    assert first.headers["cache-control"].startswith("public, max-age=")
    listed = read_status_list(first.content, trust=services.trust)
    assert listed.header.count == 0 and listed.header.versions == 1  # a version in force is not listed
    assert listed.lookup(identifier).status is Status.VALID
    assert clients.anonymous.get("/api/v1/status/snapshot").content == first.content  # cached
    data = api_repo.blobs.get(certificates.get(api_repo, identifier).file_key or "")
    offline = verification.verify_presented(
        services, data, offline=True, status_snapshot=first.content
    ).report
    assert offline.indication.value == "VALID", offline.to_dict()

    clock.advance(seconds=30)
    revoked = clients.agency.post(
        f"/api/v1/certificates/{identifier}/actions", json={"action": "revoke", "reason": "行政处罚"}
    )
    assert revoked.status_code == 200, revoked.text
    second = clients.anonymous.get("/api/v1/status/snapshot")  # a newer event: rebuilt
    newer = read_status_list(second.content, trust=services.trust)
    assert newer.header.sequence > listed.header.sequence
    revoked_at = certificates.get(api_repo, identifier).events[-1].at
    answer = newer.lookup(identifier)
    assert (answer.status, answer.since) == (Status.REVOKED, revoked_at.replace(microsecond=0))
    assert newer.lookup(identifier, at=revoked_at - timedelta(seconds=1)).status is Status.VALID
    offline = verification.verify_presented(
        services, data, offline=True, status_snapshot=second.content
    ).report
    assert offline.indication.value == "INVALID"


def test_public_verify_at_answers_the_status_of_that_time(
    app: Any, clients: Clients, api_repo: Repository, clock: Clock
) -> None:
    identifier = _issue(clients, api_repo)
    clock.advance(minutes=2)
    response = clients.agency.post(
        f"/api/v1/certificates/{identifier}/actions", json={"action": "revoke", "reason": "行政处罚"}
    )
    assert response.status_code == 200, response.text
    revoked_at = certificates.get(api_repo, identifier).events[-1].at
    data = api_repo.blobs.get(certificates.get(api_repo, identifier).file_key or "")
    for at, indication, status in (
        (revoked_at - timedelta(seconds=27), "VALID", "valid"),
        (revoked_at + timedelta(seconds=1), "INVALID", "revoked"),
    ):
        report = clients.anonymous.post(
            "/api/v1/public/verify", files={"file": ("c.ofd", data)}, data={"at": at.isoformat()}
        ).json()
        assert (report["indication"], report["certificate"]["status"]) == (indication, status), report
