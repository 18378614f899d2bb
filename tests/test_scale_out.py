"""The scale-out path of ``docs/scaling.md``, exercised on one machine.

Two API "hosts" share one PostgreSQL database and one S3 bucket (SeaweedFS), as behind a load balancer:

- host A: ``certstore serve --workers 2`` (uvicorn's supervisor and two worker processes);
- host B: ``certstore serve`` (one process).

Each host has its own data directory — so its own audit spool — with a copy of one key store, and both get the
same ``CERTSTORE_HOLDER_KEY`` and ``CERTSTORE_SESSION_KEY``; nothing else is shared but the database and the
bucket. What must hold:

1. a certificate issued through A is readable, downloadable, verifiable and changeable through B, and a status
   change made through B is what A answers at once;
2. the same push sent concurrently to both hosts makes one record (one ``201``, the others ``200`` with the same
   identifier);
3. the audit entries written by every process of both hosts form one chain that ``certstore audit verify``
   finds intact.

Several exchange workers splitting sources through database leases are tested in
``tests/exchange/test_exchange_worker.py`` (``test_two_workers_at_once_never_double_apply``,
``test_a_second_worker_is_refused_while_the_lease_is_held``), not here.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from certstore.access import Role
from certstore.audit.query import AuditQuery, iter_entries
from certstore.keystore import KeyStore
from certstore.records import draft_to_json, example_draft
from certstore.services import access
from certstore.services.catalogue import get_entry, load_shipped
from certstore.services.keys import init_dev_keys
from certstore.store.db import Database
from certstore.store.repository import Repository
from devservers.api import ApiServer
from devservers.postgres import PostgresServer
from devservers.seaweedfs import S3Server

pytestmark = pytest.mark.postgres

CONSTRUCTION = "11410100990000025A001"  # 建筑工程施工许可证, issued by 11410100990000025A
AGENCY_ORG = "11410100990000025A"


@dataclass
class Cluster:
    """The two hosts, the environment they share, and a client per host (each with its own User-Agent, so the
    audit entries tell which host served a request)."""

    env: dict[str, str]
    data_dirs: dict[str, Path]
    servers: dict[str, ApiServer]
    clients: dict[str, httpx.Client]
    document: dict[str, Any]  # a valid DATA.json of the construction permit type
    database_url: str

    def data(self, number: str) -> dict[str, Any]:
        return {**self.document, "certificate_number": number}

    def stop(self) -> None:
        """Stop both hosts (each drains its audit trail into the database on the way out)."""
        for client in self.clients.values():
            client.close()
        with ThreadPoolExecutor(len(self.servers)) as pool:
            list(pool.map(ApiServer.stop, self.servers.values()))


@pytest.fixture(scope="module")
def cluster(
    postgres_server: PostgresServer, s3_server: S3Server, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Cluster]:
    root = tmp_path_factory.mktemp("scale-out")
    database_name = postgres_server.create_database()
    database_url = postgres_server.url(database_name)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CERTSTORE_")}
    env.update(
        CERTSTORE_DATABASE_URL=database_url,
        CERTSTORE_BLOB_URL=f"s3://{s3_server.endpoint}/scale-out-{secrets.token_hex(4)}",
        CERTSTORE_HOLDER_KEY=os.urandom(32).hex(),
        CERTSTORE_SESSION_KEY=os.urandom(32).hex(),
        # the hosts serve as the migrating superuser here: the split into owner and application role is what
        # tests/audit/test_append_only.py shows; this test is about two hosts sharing one store
        CERTSTORE_ALLOW_OWNER="1",
        **s3_server.env(),
    )
    with Database(database_url) as database:
        database.upgrade()  # PostgreSQL is migrated by the operator, once, before the hosts start
    data_dirs = {"a": root / "host-a", "b": root / "host-b"}
    init_dev_keys(KeyStore(data_dirs["a"] / "keys"))
    shutil.copytree(data_dirs["a"] / "keys", data_dirs["b"] / "keys")  # one key store, deployed to each host
    repo = Repository.open(data_dirs["a"], env)
    try:
        load_shipped(repo)
        token = access.create_token(
            repo, role=Role.AGENCY, organisation_code=AGENCY_ORG, organisation_name="郑州市城乡建设局",
            name="scale-out-agency",
        ).token  # fmt: skip
        document = draft_to_json(example_draft(get_entry(repo, CONSTRUCTION)))
    finally:
        repo.db.dispose()
    servers = {
        "a": ApiServer(data_dirs["a"], env=env, workers=2),
        "b": ApiServer(data_dirs["b"], env=env, workers=1),
    }
    cluster = Cluster(env, data_dirs, servers, {}, document, database_url)
    try:
        with ThreadPoolExecutor(2) as pool:  # both start at once: imports and migrations checks overlap
            list(pool.map(ApiServer.start, servers.values()))
        cluster.clients = {
            name: httpx.Client(
                base_url=server.base_url,
                headers={"Authorization": f"Bearer {token}", "User-Agent": f"scale-out-host-{name}"},
                timeout=60,
            )
            for name, server in servers.items()
        }
        yield cluster
    finally:
        cluster.stop()
        postgres_server.drop_database(database_name)


def test_issued_on_one_host_is_visible_verifiable_and_changeable_on_the_other(cluster: Cluster) -> None:
    a, b = cluster.clients["a"], cluster.clients["b"]
    issued = a.post("/api/v1/certificates", json=cluster.data("410100202611260001"))
    assert issued.status_code == 201, issued.text
    identifier = issued.json()["identifier"]

    seen = b.get(f"/api/v1/certificates/{identifier}")
    assert seen.status_code == 200 and seen.json()["status"] == "valid"
    ofd = b.get(f"/api/v1/certificates/{identifier}/file")  # the file host A put into the shared bucket
    assert ofd.status_code == 200 and ofd.content[:2] == b"PK"
    report = b.post("/api/v1/public/verify", files={"file": ("permit.ofd", ofd.content, "application/ofd")})
    assert report.status_code == 200 and report.json()["indication"] == "VALID", report.text

    suspended = b.post(
        f"/api/v1/certificates/{identifier}/actions", json={"action": "suspend", "reason": "年检不合格"}
    )
    assert suspended.status_code == 200 and suspended.json()["status"] == "suspended", suspended.text
    public = a.get(f"/api/v1/public/certificates/{identifier}/status")  # host A answers B's change at once
    assert public.status_code == 200 and public.json()["status"] == "suspended"
    resumed = a.post(
        f"/api/v1/certificates/{identifier}/actions", json={"action": "resume", "reason": "整改完成"}
    )
    assert resumed.status_code == 200 and resumed.json()["status"] == "valid", resumed.text

    changed_data = cluster.data("410100202611260001")
    changed_data["face"] = {**changed_data["face"], "project_name": "示例项目（变更后）"}
    changed = b.post(
        f"/api/v1/certificates/{identifier}/change", json={"reason": "项目名称变更", "data": changed_data}
    )
    assert changed.status_code == 201, changed.text
    new_identifier = changed.json()["identifier"]
    assert changed.json()["version"] == 2
    old = a.get(f"/api/v1/certificates/{identifier}")
    assert old.json()["superseded_by"] == new_identifier
    history = a.get(f"/api/v1/certificates/{new_identifier}/history")
    assert [c["version"] for c in history.json()] == [1, 2]


def test_concurrent_identical_pushes_over_both_hosts_make_one_record(cluster: Cluster) -> None:
    document = cluster.data("410100202611260002")
    hosts = ["a", "b"] * 4  # 8 pushes, 4 per host (two worker processes behind host A)

    def push(host: str) -> httpx.Response:
        return cluster.clients[host].post("/api/v1/certificates", json=document)

    with ThreadPoolExecutor(len(hosts)) as pool:
        answers = list(pool.map(push, hosts))
    assert all(answer.status_code in (200, 201) for answer in answers), [a.text for a in answers]
    assert sorted(answer.status_code for answer in answers) == [200] * 7 + [201]
    identifiers = {answer.json()["identifier"] for answer in answers}
    assert len(identifiers) == 1
    listing = cluster.clients["b"].get(
        "/api/v1/certificates", params={"issuer_code": AGENCY_ORG, "limit": 500}
    )
    assert listing.status_code == 200, listing.text
    numbers = [c["certificate_number"] for c in listing.json()["items"]]
    assert numbers.count("410100202611260002") == 1


def test_keep_alive_answers_of_several_workers_are_not_held_back(cluster: Cluster) -> None:
    """``serve --workers 2`` keeps TCP_NODELAY on accepted connections (``certstore/cli/serve.py``): without it
    every answer after the first on a keep-alive connection waits ≥ 40 ms for the client's delayed ACK."""
    client = cluster.clients["a"]
    client.get("/api/v1/health")  # opens the connection
    timings = []
    for _ in range(11):
        start = time.perf_counter()
        assert client.get("/api/v1/health").status_code == 200
        timings.append(time.perf_counter() - start)
    assert statistics.median(timings) < 0.030, [round(t * 1000, 1) for t in timings]


def test_audit_entries_of_both_hosts_form_one_verifying_chain(cluster: Cluster) -> None:
    for host, client in cluster.clients.items():
        for _ in range(5):
            assert client.get("/api/v1/health").status_code == 200  # not audited
            assert client.get("/api/v1/catalogue").status_code == 200, f"host {host}"
    cluster.stop()  # each process drains its acknowledged audit events into the database

    with Database(cluster.database_url) as database:
        entries = list(iter_entries(database, AuditQuery()))
    agents = {entry.event.user_agent for entry in entries}
    assert {"scale-out-host-a", "scale-out-host-b"} <= agents
    positions = sorted(entry.seq for entry in entries)
    assert positions == list(range(positions[0], positions[0] + len(entries)))  # one order, no gap, no twin

    for host in ("a", "b"):  # any host's operator can check the one shared chain
        completed = subprocess.run(
            [sys.executable, "-c", "from certstore.cli import main; main()",
             "--data-dir", str(cluster.data_dirs[host]), "audit", "verify", "--json"],
            env=cluster.env, capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert completed.returncode == 0, completed.stdout + completed.stderr
        result = json.loads(completed.stdout)
        assert result["intact"] is True and result["pending_events"] == 0
        assert result["entries_checked"] == len(entries)
