"""Issue 14, first "must show": every entry point that changes or reveals certificate data — the API, the agency
page, ``certstore issue``, ``certstore import``, an exchange cycle, a batch job, the province's intake, and the
window's holder look-up, copy and history — leaves exactly one audit entry per operation, naming the actor, the
action, the certificate, its holder digest and the outcome, and the arrival row (第十一条) exactly where its
channel has a deadline. For the mutating ones the entry and the effect are one transaction: a commit refused
after both were written (:class:`tests.support.entry_points.CommitFault`, "a kill between") leaves neither, and
running the operation again then gives exactly one of each.

Each case drives the real entry point (FastAPI TestClient, a page session with CSRF, click's CliRunner on
``certstore``, ``run_cycle``, ``process_batch``, the province's aggregate route) against one data directory on
each database backend (SQLite, PostgreSQL: ``CERTSTORE_DATABASE_URL`` points the command line at the same one).
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient
from sqlalchemy import select

from api import create_app
from api.settings import Settings
from certstore.access import Actor, Role
from certstore.audit import AuditEvent, Outcome
from certstore.catalogue import shipped_entry
from certstore.cli import cli
from certstore.exchange.frontend import FrontendWriter
from certstore.exchange.worker import ExchangeSource, run_cycle
from certstore.forms import form_fields
from certstore.keystore import KeyStore
from certstore.records import draft_from_json, draft_to_json, example_draft, prepare_version
from certstore.services import access, certificates, logins
from certstore.services.aggregation import CertificateDelivery, DeliveredVersion, delivery_to_json
from certstore.services.batches import process_batch
from certstore.services.catalogue import load_shipped
from certstore.services.certificates import NO_FILE
from certstore.services.keys import init_dev_keys
from certstore.store.config import save_public_url
from certstore.store.models import ArrivalRow, CertificateRow
from certstore.store.repository import Repository
from tests.exchange import support as exchange
from tests.support import issuing, legacy_table
from tests.support.entry_points import CommitFault
from tests.support.matters import register_matter

CONSTRUCTION = "11410100990000025A001"  # 建筑工程施工许可证, issued by AGENCY_ORG
AGENCY_ORG = "11410100990000025A"  # 郑州市城乡建设局
WINDOW_ORG = "12410100MB0000001X"  # 郑州市政务服务中心
CITY_ORG = "11410100MB1700000X"  # a city repository delivering to this one (the province)
PAGE_USER, PASSWORD = "李四", "correct-horse-9"
MATTER = "ZZ2026120600001"
SOURCE = "zz-natres"  # the exchange source (front-end database of exchange.ISSUER)


# --- the data directory every entry point of one test shares ------------------------------------------------------


@pytest.fixture(scope="module")
def dev_keys(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Dev keys made once, copied into each test's data directory."""
    root = tmp_path_factory.mktemp("entry-point-keys") / "keys"
    init_dev_keys(KeyStore(root))
    return root


@dataclass
class World:
    """One repository (data directory + database) and the entry points around it."""

    data_dir: Path
    tmp: Path
    repo: Repository
    app: Any
    clients: dict[str, TestClient]
    page: TestClient
    #: set by a case's ``prepare``: the certificate a read is about, the page's CSRF token, a batch job …
    state: dict[str, Any] = field(default_factory=dict)

    @property
    def services(self) -> Any:
        return self.app.state.services


@pytest.fixture
def world(
    database_url: str, dev_keys: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[World]:
    for name in [n for n in os.environ if n.startswith("CERTSTORE_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("CERTSTORE_DATABASE_URL", database_url)  # the command line opens this database too
    data_dir = tmp_path / "data"
    data_dir.mkdir(exist_ok=True)
    shutil.copytree(dev_keys, data_dir / "keys")
    save_public_url(data_dir, "http://testserver")  # as 'certstore keys init --public-url' records it
    repo = Repository.open(data_dir)
    load_shipped(repo)
    tokens = {
        name: access.create_token(repo, role=role, organisation_code=org, organisation_name=label, name=name).token
        for name, role, org, label in (
            ("agency", Role.AGENCY, AGENCY_ORG, "郑州市城乡建设局"),
            ("window", Role.WINDOW, WINDOW_ORG, "郑州市政务服务中心"),
            ("zz", Role.UPSTREAM, CITY_ORG, "郑州市电子证照库"),
        )
    }  # fmt: skip
    logins.set_password(
        repo, organisation_code=AGENCY_ORG, name=PAGE_USER, password=PASSWORD, role=Role.AGENCY
    )
    holder = construction_document("0")["holder"]  # the window's matter, registered by its case system
    register_matter(repo, WINDOW_ORG, MATTER, holder["id_type"], holder["id_number"])
    # province mode only opens the aggregate route (the province's intake); everything else is as in a city
    settings = Settings(data_dir=data_dir, public_url="http://testserver", batch_worker=False,
                        mode="province")  # fmt: skip
    app = create_app(settings, repo=repo, keystore=KeyStore(data_dir / "keys"))
    try:
        with TestClient(app, raise_server_exceptions=False):  # runs the lifespan: the audit trail
            clients = {}
            for name, token in tokens.items():
                client = TestClient(app, raise_server_exceptions=False)
                client.headers["Authorization"] = f"Bearer {token}"
                clients[name] = client
            page = TestClient(app, raise_server_exceptions=False)
            yield World(data_dir, tmp_path, repo, app, clients, page)
    finally:
        repo.db.dispose()


# --- what the repository holds --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Snapshot:
    entries: dict[str, AuditEvent]  # event id → event, chained or pending
    certificates: frozenset[str]
    arrivals: tuple[str, ...]  # identifiers, one per arrival row

    def since(self, before: Snapshot) -> Snapshot:
        return Snapshot(
            {k: v for k, v in self.entries.items() if k not in before.entries},
            self.certificates - before.certificates,
            tuple(a for a in self.arrivals if a not in before.arrivals),
        )


def snapshot(world: World) -> Snapshot:
    assert world.services.audit.flush(), "the API's audit trail did not drain"
    entries = {e.event_id: e for e in issuing.audit_entries(world.repo)}
    with world.repo.db.session(readonly=True) as session:
        held = frozenset(session.scalars(select(CertificateRow.identifier)))
        arrivals = tuple(session.scalars(select(ArrivalRow.identifier).order_by(ArrivalRow.identifier)))
    return Snapshot(entries, held, arrivals)


# --- the entry points -------------------------------------------------------------------------------------------


def construction_document(number: str) -> dict[str, Any]:
    document = draft_to_json(example_draft(shipped_entry(CONSTRUCTION)))
    document["certificate_number"] = number
    return document


def _http(response: Any, expected: int) -> str | None:
    """None when ``response`` has the ``expected`` status, else how it failed."""
    return None if response.status_code == expected else f"HTTP {response.status_code}: {response.text[:300]}"


def _cli(*args: str | Path) -> str | None:
    result = CliRunner().invoke(cli, [str(a) for a in args])
    if result.exit_code == 0:
        return None
    return f"exit {result.exit_code}: {result.output[-300:]} {result.exception!r}"


def _serving(world: World) -> dict[str, str]:
    holder = world.state["document"]["holder"]
    return {"matter": MATTER, "holder_id_type": holder["id_type"], "holder_id": holder["id_number"]}


# API: an agency pushes one certificate (POST /api/v1/certificates).
def run_api(world: World) -> str | None:
    document = construction_document("410100202412060001")
    return _http(world.clients["agency"].post("/api/v1/certificates", json=document), 201)


# The agency page: a logged-in clerk submits the issuing form.
def prepare_page(world: World) -> None:
    def csrf(html: str) -> str:
        match = re.search(r'name="csrf_token" value="([0-9a-f]+)"', html)
        assert match, html[:300]
        return match.group(1)

    login = {"csrf_token": csrf(world.page.get("/login").text), "organisation_code": AGENCY_ORG,
             "name": PAGE_USER, "password": PASSWORD}  # fmt: skip
    assert world.page.post("/login", data=login, follow_redirects=False).status_code == 303
    world.state["csrf"] = csrf(world.page.get(f"/agency/types/{CONSTRUCTION}/issue").text)


def run_page(world: World) -> str | None:
    values = {f.name: f.example for f in form_fields(shipped_entry(CONSTRUCTION))}
    form = {"csrf_token": world.state["csrf"], **values}
    return _http(world.page.post(f"/agency/types/{CONSTRUCTION}/issue", data=form), 201)


# certstore issue: the operator issues from a DATA.json file.
def prepare_cli_issue(world: World) -> None:
    path = world.tmp / "data.json"
    path.write_text(json.dumps(construction_document("410100202412060002"), ensure_ascii=False))
    world.state["data"] = path


def run_cli_issue(world: World) -> str | None:
    return _cli("--data-dir", world.data_dir, "issue", "--catalogue", CONSTRUCTION, "--data", world.state["data"],
                "--out", world.tmp / "cert.ofd")  # fmt: skip


# certstore import: one legacy row. ``--workers 0`` imports in this process (the sealing pool would run in
# worker processes, which this process's commit fault does not reach); the chunk transaction is the same.
def prepare_cli_import(world: World) -> None:
    world.state["table"] = legacy_table.write_csv(world.tmp / "legacy.csv", [legacy_table.row(1)])


def run_cli_import(world: World) -> str | None:
    return _cli("--data-dir", world.data_dir, "import", world.state["table"], "--catalogue", legacy_table.CODE,
                "--workers", "0")  # fmt: skip


# An exchange cycle: the agency's front-end database holds one new certificate row.
def prepare_exchange(world: World) -> None:
    url = f"sqlite:///{world.tmp / 'frontend.db'}"
    with FrontendWriter(url) as writer:
        writer.certificate(exchange.ISSUER, exchange.number(1), 1, exchange.document(1))
    world.state["source"] = ExchangeSource(SOURCE, url, exchange.ISSUER)


def run_exchange(world: World) -> str | None:
    stats = run_cycle(world.services, world.state["source"], file_maker=None, worker="test-worker")
    if stats.error is not None:
        return stats.error
    return None if stats.accepted == 1 else f"accepted {stats.accepted}, rejected {stats.rejected}"


# A batch job: the agency submits one item through the API; the batch worker processes the job (here in this
# thread: Settings(batch_worker=False)). A retry processes the same job again (its failed item is still pending).
def run_batch(world: World) -> str | None:
    if "job" not in world.state:
        submitted = world.clients["agency"].post(
            "/api/v1/batches", json=[construction_document("410100202412060003")]
        )
        assert submitted.status_code == 202, submitted.text
        world.state["job"] = submitted.json()["id"]
    try:
        job = process_batch(world.services, world.state["job"], file_maker=NO_FILE, worker="test-worker")
    except Exception as exc:  # the item in flight stays pending, the lease is given up
        return f"{type(exc).__name__}: {exc}"
    return None if (job.status, job.succeeded) == ("done", 1) else f"job {job}"


# The province's intake: a city delivers one issued version (POST /api/v1/aggregate/batches, role upstream).
def prepare_province(world: World) -> None:
    entry = shipped_entry(CONSTRUCTION)
    draft = draft_from_json(construction_document("410100202412060004"))
    prepared = prepare_version(
        entry, draft, version=1, holder_key=b"\x01" * 32, serial_key=b"\x01" * 32, file_key=None
    )
    identifier, at = prepared.identifier, datetime(2026, 12, 6, 8, 0, tzinfo=UTC)
    version = DeliveredVersion(
        identifier=str(identifier), type_code=identifier.type_code, issuer_code=identifier.issuer_code,
        issuer_name=entry.issuer.name, serial=identifier.serial, version=1,
        certificate_number=draft.certificate_number, name=entry.name, catalogue_code=entry.code,
        catalogue_version=entry.version, holder=draft.holder, issue_date=draft.issue_date,
        valid_from=prepared.valid_from, valid_until=prepared.valid_until, face=prepared.face,
        metadata=prepared.metadata, content_digest=prepared.digest, created_at=at,
    )  # fmt: skip
    delivery = CertificateDelivery(source_id=1, identifier=str(identifier), action="issue", from_status=None,
                                   to_status="valid", reason="签发", actor=f"{AGENCY_ORG}/city-clerk", at=at,
                                   version=version)  # fmt: skip
    world.state["items"] = [delivery_to_json(delivery)]


def run_province(world: World) -> str | None:
    response = world.clients["zz"].post("/api/v1/aggregate/batches", json={"items": world.state["items"]})
    if response.status_code != 200:
        return _http(response, 200)
    body = response.json()
    return None if body["applied"] == 1 else f"not applied: {body['results']}"


# The window's reads, of a certificate the agency pushed through the API (with its sealed file, for the copy).
def prepare_read(world: World) -> None:
    document = construction_document("410100202412060005")
    pushed = world.clients["agency"].post("/api/v1/certificates", json=document)
    assert pushed.status_code == 201, pushed.text
    world.state["document"], world.state["subject"] = document, pushed.json()["identifier"]


def run_window_lookup(world: World) -> str | None:
    holder = world.state["document"]["holder"]
    body = {"holder_id_type": holder["id_type"], "holder_id": holder["id_number"], "matter": MATTER}
    return _http(world.clients["window"].post("/api/v1/holders/certificates", json=body), 200)


def run_copy(world: World) -> str | None:
    body = {"purpose": "办理不动产登记", **_serving(world)}
    return _http(
        world.clients["window"].post(f"/api/v1/certificates/{world.state['subject']}/copies", json=body), 200
    )


def run_history(world: World) -> str | None:
    path = f"/api/v1/certificates/{world.state['subject']}/history"
    serving = _serving(world)  # the matter in the query, the holder in headers (never the URL)
    headers = {"X-Holder-Id-Type": serving["holder_id_type"], "X-Holder-Id": serving["holder_id"]}
    return _http(world.clients["window"].get(path, params={"matter": MATTER}, headers=headers), 200)


# --- the cases -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """One entry point: how to run its operation and what its one audit entry must say."""

    run: Callable[[World], str | None]  # the operation; None when it succeeded, else how it failed
    action: str
    via: str  # the entry's details["via"]
    actor: tuple[str, str, str | None]  # the entry's (principal, role, organisation)
    has_deadline: bool  # the channel has a deadline (第十一条): one arrival row, else none
    prepare: Callable[[World], None] | None = None  # before the operation (not counted)
    mutates: bool = True  # stores a certificate version (else: reveals one, prepared by ``prepare``)
    companions: tuple[str, ...] = ()  # entries the operation also writes, about no certificate


OPERATOR = (Actor.operator().ref, "operator", None)
AGENCY = (f"{AGENCY_ORG}/agency", "agency", AGENCY_ORG)
WINDOW = (f"{WINDOW_ORG}/window", "window", WINDOW_ORG)
CASES = {
    "api": Case(run_api, "certificate.issue", "api", AGENCY, has_deadline=True),
    "page": Case(run_page, "certificate.issue", "page", (f"{AGENCY_ORG}/{PAGE_USER}", "agency", AGENCY_ORG),
                 has_deadline=True, prepare=prepare_page),
    "cli_issue": Case(run_cli_issue, "certificate.issue", "cli", OPERATOR, has_deadline=False,
                      prepare=prepare_cli_issue),
    "cli_import": Case(run_cli_import, "certificate.import", "import", OPERATOR, has_deadline=False,
                       prepare=prepare_cli_import, companions=("import.run",)),
    "exchange": Case(run_exchange, "certificate.issue", "exchange",
                     (f"{exchange.ISSUER}/exchange:{SOURCE}", "agency", exchange.ISSUER), has_deadline=True,
                     prepare=prepare_exchange),
    "batch": Case(run_batch, "certificate.issue", "batch", AGENCY, has_deadline=True,
                  companions=("batch.submit",)),
    "province": Case(run_province, "province.intake", "province", (f"{CITY_ORG}/zz", "upstream", CITY_ORG),
                     has_deadline=False, prepare=prepare_province),
    "window_lookup": Case(run_window_lookup, "holder.lookup", "api", WINDOW, has_deadline=False,
                          prepare=prepare_read, mutates=False),
    "copy": Case(run_copy, "certificate.copy", "api", WINDOW, has_deadline=False, prepare=prepare_read,
                 mutates=False),
    "history": Case(run_history, "certificate.history", "api", WINDOW, has_deadline=False, prepare=prepare_read,
                    mutates=False),
}  # fmt: skip
MUTATING = [name for name, case in CASES.items() if case.mutates]


def _names(entry: AuditEvent, identifier: str) -> bool:
    """The entry names the certificate: as its certificate, or — a holder look-up, which reveals a list — as the
    one certificate listed in its details."""
    if entry.certificate_identifier is not None:
        return entry.certificate_identifier == identifier
    return entry.details.get("identifiers") == [identifier]


def assert_one_entry(world: World, case: Case, new: Snapshot) -> None:
    """The operation's one entry, complete, and the arrival exactly where the channel has a deadline."""
    if case.mutates:
        assert len(new.certificates) == 1, new.certificates
        (identifier,) = new.certificates
    else:
        assert not new.certificates
        identifier = world.state["subject"]
    companions = sorted(e.action for e in new.entries.values() if e.action in case.companions)
    assert companions == sorted(set(companions)), companions  # at most one of each
    assert all(e.certificate_identifier is None for e in new.entries.values() if e.action in case.companions)
    entries = [e for e in new.entries.values() if e.action not in case.companions]
    assert len(entries) == 1, [(e.action, e.principal, e.certificate_identifier) for e in entries]
    (entry,) = entries
    certificate = certificates.get(world.repo, identifier)
    assert (entry.principal, entry.role, entry.organisation_code) == case.actor
    assert entry.action == case.action
    assert _names(entry, identifier), (entry.certificate_identifier, entry.details)
    assert entry.holder_digest == certificate.holder_ref
    assert entry.outcome is Outcome.ALLOW and entry.status_code < 300
    assert entry.details["via"] == case.via
    assert new.arrivals == ((identifier,) if case.has_deadline else ())


# --- the tests ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(CASES))
def test_one_entry_per_operation(world: World, name: str) -> None:
    """One operation through the entry point: exactly one new audit entry (actor, action, certificate, holder
    digest, outcome allow) and the arrival where the channel has a deadline; a change commits its entry and its
    effect in one commit."""
    case = CASES[name]
    if case.prepare is not None:
        case.prepare(world)
    before = snapshot(world)
    with CommitFault(armed=False) as watch:
        failure = case.run(world)
    assert failure is None, failure
    assert_one_entry(world, case, snapshot(world).since(before))
    assert watch.together == (1 if case.mutates else 0)


@pytest.mark.parametrize("name", MUTATING)
def test_entry_and_effect_commit_together(world: World, name: str) -> None:
    """The commit of the transaction holding the entry and the effect fails: neither is stored (nor the arrival).
    Had they been written in separate transactions, no commit would hold both and the fault would not fire. Run
    again, the operation leaves exactly one of each (the exchange's ledger, the batch's pending item, the
    province's received-row and the idempotent issue make the retry exactly-once)."""
    case = CASES[name]
    if case.prepare is not None:
        case.prepare(world)
    before = snapshot(world)
    with CommitFault() as fault:
        failure = case.run(world)
    assert fault.fired == 1, "entry and effect were never in one commit"
    assert failure is not None, "the entry point reported success for a transaction that did not commit"
    failed = snapshot(world)
    lost = failed.since(before)
    assert not lost.certificates and not lost.arrivals
    # what may be left: the log of the failed request (the API middleware's), a companion — nothing that says
    # the operation was done
    done = [
        e
        for e in lost.entries.values()
        if e.action == case.action or (e.outcome is Outcome.ALLOW and e.certificate_identifier is not None)
    ]
    assert not done, done

    assert case.run(world) is None
    assert_one_entry(world, case, snapshot(world).since(failed))
