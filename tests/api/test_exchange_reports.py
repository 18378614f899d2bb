"""Arrival deadlines over HTTP (第十一条, 第二十九条): a push states its completion time and channel; late arrivals
are listed for the bureau (all) and the agency (its own); offenders for the bureau only; bad input names the field."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from certstore.services.deadlines import Channel, get_arrival
from certstore.store.repository import Repository
from tests.api.conftest import AGENCY_ORG, Clients, construction_data
from tests.services.conftest import Clock


def _fields(response: Any) -> list[str]:
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    return [e["field"] for e in response.json()["errors"]]


def test_a_late_offline_push_is_reported_to_the_bureau_and_the_agency_only(
    clients: Clients, api_repo: Repository, clock: Clock
) -> None:
    completed = clock.now - timedelta(days=10)
    data = construction_data(api_repo, channel="offline", completed_at=completed.isoformat())
    pushed = clients.agency.post("/api/v1/certificates", json=data)
    assert pushed.status_code == 201, pushed.text
    identifier = pushed.json()["identifier"]
    arrival = get_arrival(api_repo, identifier)
    assert arrival is not None and arrival.late and arrival.channel is Channel.OFFLINE
    assert (arrival.source, arrival.completed_at) == ("api", completed)

    for name in ("bureau", "agency"):
        late = clients.by_name[name].get("/api/v1/exchange/late")
        assert late.status_code == 200, late.text
        [item] = late.json()
        assert (item["identifier"], item["issuer_code"], item["channel"]) == (
            identifier,
            AGENCY_ORG,
            "offline",
        )
        assert item["channel_label"] == "线下办理" and item["source"] == "api"
        assert item["lateness_seconds"] >= timedelta(days=6).total_seconds()
    assert (
        clients.bureau.get("/api/v1/exchange/late", params={"issuer_code": AGENCY_ORG}).json()[0][
            "identifier"
        ]
        == identifier
    )
    assert clients.other_agency.get("/api/v1/exchange/late").json() == []  # another agency: not its own
    other = clients.other_agency.get("/api/v1/exchange/late", params={"issuer_code": AGENCY_ORG})
    assert other.status_code == 403
    for name in ("window", "auditor", "upstream"):
        assert clients.by_name[name].get("/api/v1/exchange/late").status_code == 403
    assert clients.anonymous.get("/api/v1/exchange/late").status_code == 401

    offenders = clients.bureau.get(
        "/api/v1/exchange/offenders",
        params={
            "from": (clock.now - timedelta(hours=1)).isoformat(),
            "to": (clock.now + timedelta(hours=1)).isoformat(),
        },
    )
    assert offenders.status_code == 200, offenders.text
    [offender] = offenders.json()
    assert (offender["issuer_code"], offender["issuer_name"]) == (AGENCY_ORG, "郑州市城乡建设局")
    assert (offender["total"], offender["late"], offender["late_share"]) == (1, 1, 1.0)
    assert [c["channel"] for c in offender["by_channel"]] == ["offline"]
    earlier = clients.bureau.get(
        "/api/v1/exchange/offenders", params={"to": (clock.now - timedelta(hours=1)).isoformat()}
    )
    assert earlier.json() == []
    for name in ("agency", "other_agency", "window", "auditor", "upstream"):
        assert clients.by_name[name].get("/api/v1/exchange/offenders").status_code == 403


def test_a_push_without_completion_time_is_online_and_on_time_and_a_repeat_keeps_the_first_arrival(
    clients: Clients, api_repo: Repository, clock: Clock
) -> None:
    data = construction_data(api_repo)
    first = clients.agency.post("/api/v1/certificates", json=data)
    assert first.status_code == 201, first.text
    arrival = get_arrival(api_repo, first.json()["identifier"])
    assert arrival is not None
    assert (arrival.channel, arrival.late, arrival.completed_at) == (Channel.ONLINE, False, clock.now)

    clock.advance(days=5)
    again = clients.agency.post(
        "/api/v1/certificates", json={**data, "channel": "bulk", "completed_at": clock.now.isoformat()}
    )
    assert again.status_code == 200, again.text
    assert get_arrival(api_repo, first.json()["identifier"]) == arrival
    assert clients.bureau.get("/api/v1/exchange/late").json() == []
    assert clients.bureau.get("/api/v1/exchange/offenders").json() == []


def test_a_change_records_the_new_versions_arrival(
    clients: Clients, api_repo: Repository, clock: Clock
) -> None:
    data = construction_data(api_repo)
    identifier = clients.agency.post("/api/v1/certificates", json=data).json()["identifier"]
    completed = clock.now - timedelta(days=30)
    changed = {**data, "face": {**data["face"], "project_name": "变更后的项目"}}
    response = clients.agency.post(
        f"/api/v1/certificates/{identifier}/change",
        json={
            "reason": "项目名称变更",
            "data": {**changed, "channel": "bulk", "completed_at": completed.isoformat()},
        },
    )
    assert response.status_code == 201, response.text
    arrival = get_arrival(api_repo, response.json()["identifier"])
    assert arrival is not None and (arrival.channel, arrival.late) == (Channel.BULK, True)


def test_channel_and_completion_time_errors_name_the_field(
    clients: Clients, api_repo: Repository, clock: Clock
) -> None:
    post = clients.agency.post
    assert _fields(post("/api/v1/certificates", json=construction_data(api_repo, channel="fax"))) == [
        "body.channel"
    ]
    naive = construction_data(api_repo, completed_at="2026-11-26T10:00:00")
    assert _fields(post("/api/v1/certificates", json=naive)) == ["body.completed_at"]
    garbage = construction_data(api_repo, completed_at="yesterday")
    assert _fields(post("/api/v1/certificates", json=garbage)) == ["body.completed_at"]
    future = construction_data(api_repo, completed_at=(clock.now + timedelta(hours=1)).isoformat())
    response = post("/api/v1/certificates", json=future)
    assert _fields(response) == ["body.completed_at"]
    assert "future" in response.json()["detail"]
    ancient = construction_data(api_repo, completed_at="0001-01-01T00:00:00+08:00")
    assert _fields(post("/api/v1/certificates", json=ancient)) == ["body.completed_at"]
    # nothing was stored by the refused pushes
    assert (
        clients.agency.get("/api/v1/certificates", params={"issuer_code": AGENCY_ORG}).json()["items"] == []
    )

    late = clients.bureau.get
    assert _fields(late("/api/v1/exchange/late", params={"from": "2026-11-26T10:00:00"})) == ["query.from"]
    period = {"from": "2026-11-26T10:00:00+08:00", "to": "2026-11-26T09:00:00+08:00"}
    assert _fields(late("/api/v1/exchange/late", params=period)) == ["query.to"]
    assert _fields(late("/api/v1/exchange/offenders", params=period)) == ["query.to"]
    assert _fields(late("/api/v1/exchange/late", params={"limit": 0})) == ["query.limit"]
