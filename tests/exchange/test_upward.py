"""Upward aggregation (省级汇聚, 第六条): the city pushes to the province, everything arrives exactly once.

Unit tests run the province in-process (its FastAPI app through a TestClient, or ``apply_batch`` directly) on each
database backend, with the city on SQLite. The Province test runs both as real ``certstore serve`` processes on
loopback, the province down for several pushes and then up.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient
from sqlalchemy import func, select, update

from api import create_app
from api.settings import Settings
from certstore.access import Actor, Principal, Role
from certstore.app import Application
from certstore.audit import AuditEvent, AuditQuery, chain_pending
from certstore.audit.query import iter_entries
from certstore.catalogue import shipped_entries
from certstore.cli import cli
from certstore.crypto.sm3 import sm3_hex
from certstore.exchange.upward import (
    Backoff,
    UpwardTarget,
    list_refusals,
    push_upward,
    target_state,
)
from certstore.identifiers import HolderIdType
from certstore.keystore import KeyStore
from certstore.lifecycle import Action
from certstore.records import Holder
from certstore.services import access, certificates
from certstore.services.aggregation import INTAKE_ACTION, Outcome, apply_batch
from certstore.services.calls import Call, Origin, Via
from certstore.services.catalogue import get_entry, list_submissions, load_shipped, review_entry, submit_entry
from certstore.services.catalogue_assets import store_asset
from certstore.services.issuance import catalogue_file_maker
from certstore.services.keys import init_dev_keys
from certstore.services.verification import repository_check
from certstore.store.blobs import FileBlobStore
from certstore.store.db import Database
from certstore.store.db import database_url as sqlite_database_url
from certstore.store.models import (
    CatalogueAssetRow,
    CatalogueEntryRow,
    CertificateEventRow,
    CertificateRow,
    UpwardReceivedRow,
    UpwardTargetRow,
)
from certstore.store.repository import Repository
from certstore.verify import verify_file
from devservers.ports import free_port
from tests.services import conftest as services_fixtures
from tests.services.conftest import Clock, DraftMaker
from tests.support import catalogue_entries as ce

CITY_ORG = "11410100MB1700000X"  # the city repository's operator (郑州市大数据管理局)
CONSTRUCTION = "11410100990000025A001"  # 建筑工程施工许可证
PLANNING = "11410100990000017F001"  # 建设项目选址意见书

# The service tests' fixtures: ``repo`` (the province here; each backend), ``clock``, ``draft``.
repo = services_fixtures.repo
clock = services_fixtures.clock
draft = services_fixtures.draft


def _number(n: int) -> str:
    return f"41010020240618{n:04d}"


# --- fixtures -----------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def city_keys(tmp_path_factory: pytest.TempPathFactory) -> tuple[KeyStore, KeyStore]:
    """The city's key store, twice: as the store and as the keys its files are sealed with (each type with its
    issuer's own seal)."""
    store = KeyStore(tmp_path_factory.mktemp("city-keys") / "keys")
    init_dev_keys(store)
    return store, store


@pytest.fixture(scope="module")
def rogue_key(tmp_path_factory: pytest.TempPathFactory) -> KeyStore:
    """Sealing keys under a root the province does not trust."""
    store = KeyStore(tmp_path_factory.mktemp("rogue-keys") / "keys")
    init_dev_keys(store)
    return store


@pytest.fixture
def city(tmp_path: Path) -> Iterator[Repository]:
    database = Database(sqlite_database_url(tmp_path / "city", env={}))
    database.upgrade()
    city_repo = Repository(
        db=database, blobs=FileBlobStore(tmp_path / "city-blobs"), holder_key=os.urandom(32), clock=Clock()
    )
    load_shipped(city_repo)
    yield city_repo
    database.dispose()


@dataclass
class Province:
    repo: Repository
    keystore: KeyStore
    client: LosingClient
    target: UpwardTarget


class LosingClient(TestClient):
    """The province's app; ``lose`` answers are dropped after the province handled the request (a lost
    acknowledgement); every request body is kept in ``sent``."""

    lose = 0
    sent: list[dict[str, Any]]

    def post(self, url: Any, **kwargs: Any) -> httpx.Response:  # type: ignore[override]
        self.sent.append(kwargs.get("json") or {})
        response = super().post(url, **kwargs)
        if self.lose:
            self.lose -= 1
            raise httpx.ReadError("connection reset before the answer arrived")
        return response


@pytest.fixture
def province(repo: Repository, city_keys, tmp_path: Path) -> Iterator[Province]:
    """The province: the ``repo`` fixture (each backend), no catalogue of its own, the city's root trusted."""
    with repo.db.session() as session:  # the repo fixture loads the shipped catalogue; the city delivers it
        for row in session.scalars(select(CatalogueEntryRow)):
            session.delete(row)
    keystore = KeyStore(tmp_path / "province-keys")
    (anchor,) = city_keys[0].trust_store().anchors
    keystore.add_trust_anchor("zhengzhou-root", anchor)
    settings = Settings(data_dir=tmp_path / "province", mode="province", batch_worker=False)
    app = create_app(settings, repo=repo, keystore=keystore)
    token = access.create_token(
        repo, role=Role.UPSTREAM, organisation_code=CITY_ORG, organisation_name="郑州市电子证照库", name="zz"
    ).token
    with LosingClient(app, raise_server_exceptions=False) as client:
        client.sent = []
        yield Province(repo, keystore, client, UpwardTarget("henan", "http://testserver", token))


def _issue(
    city: Repository, draft: DraftMaker, key: KeyStore, code: str = CONSTRUCTION, n: int = 1, **kw: Any
) -> str:
    number = _number(n) if code == CONSTRUCTION else None
    made = certificates.issue(
        _app(city), Call.operator(), draft(code, number, **kw), file_maker=catalogue_file_maker(key)
    )
    return made.certificate.identifier


def _app(city: Repository) -> Application:
    """The city's application (its files are sealed by the file makers the tests give)."""
    return Application(city, KeyStore(Path("/nonexistent/city-keys")))


def _act(city: Repository, identifier: str, action: Action, reason: str) -> None:
    certificates.act(_app(city), Call.operator(), identifier, action, reason=reason)


def sending(organisation: str = CITY_ORG) -> Call:
    """The call of a city's system account delivering to the province."""
    return Call(Actor("zz", Role.UPSTREAM, organisation), Origin(Via.PROVINCE, source=organisation))


def _push(city: Repository, province: Province, **kwargs: Any):
    return push_upward(city, province.target, http=province.client, **kwargs)


def _rows(repo: Repository) -> dict[str, dict[str, Any]]:
    """Every certificate version as comparable data (the holder digest differs by design: keyed per repository)."""
    with repo.db.session(readonly=True) as session:
        rows = session.scalars(select(CertificateRow)).all()
        by_id = {row.id: row.identifier for row in rows}
        return {
            row.identifier: {
                "version": row.version,
                "status": row.status,
                "status_changed_at": row.status_changed_at,
                "superseded_by": by_id.get(row.superseded_by_id) if row.superseded_by_id else None,
                "metadata": row.meta,
                "face": row.face,
                "holder": (row.holder_name, row.holder_id_type, row.holder_id),
                "file_key": row.file_key,
                "content_digest": row.content_digest,
                "events": [(e.action, e.from_status, e.to_status, e.reason, e.at) for e in row.events],
            }
            for row in rows
        }


def _intake_events(repo: Repository) -> list[AuditEvent]:
    chain_pending(repo.db)
    return [entry.event for entry in iter_entries(repo.db, AuditQuery(action=INTAKE_ACTION))]


def _count(repo: Repository, model: type) -> int:
    with repo.db.session(readonly=True) as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


# --- unit tests: the sender against the province's app --------------------------------------------------------------


def test_push_delivers_everything_once(
    city: Repository, province: Province, draft: DraftMaker, city_keys
) -> None:
    _, key = city_keys
    first = _issue(city, draft, key, n=1)
    second = _issue(
        city,
        draft,
        key,
        n=2,
        holder=Holder("郑州示例置业有限公司", HolderIdType.CREDIT_CODE, "91410100MA44A1B2XW"),
    )
    planning = _issue(city, draft, key, code=PLANNING)
    changed = certificates.change(
        _app(city), Call.operator(), first, draft(CONSTRUCTION, _number(1), face={**certificates.get(city, first).face}, issue_date=city.now().date()),
        reason="变更建设规模", file_maker=catalogue_file_maker(key),
    ).identifier  # fmt: skip
    _act(city, second, Action.SUSPEND, "整改")
    _act(city, second, Action.RESUME, "整改完成")
    _act(city, planning, Action.REVOKE, "行政处罚")

    stats = _push(city, province, batch=3)
    assert stats.ok and stats.caught_up, stats.summary()
    city_events = _count(city, CertificateEventRow)
    assert stats.events_applied == city_events == 8
    assert stats.catalogue_applied == len(shipped_entries()) and stats.refused == 0
    assert _rows(province.repo) == _rows(city)
    assert _count(province.repo, UpwardReceivedRow) == city_events + len(shipped_entries())
    # each applied item: one audit entry naming the sending principal, the certificate and its holder
    intake = _intake_events(province.repo)
    assert len(intake) == city_events + len(shipped_entries())
    for event in intake:
        assert (event.principal, event.role, event.organisation_code) == (
            f"{CITY_ORG}/zz",
            "upstream",
            CITY_ORG,
        )
        assert event.details["via"] == "province" and event.details["source"] == CITY_ORG
        if event.details["kind"] == "event":
            assert (
                event.holder_digest
                == certificates.get(province.repo, event.certificate_identifier).holder_ref
            )
    assert sum(1 for e in intake if e.certificate_identifier == second) == 3  # issued, suspended, resumed

    # The province's services read the aggregated records like their own.
    held = certificates.get(province.repo, first)
    assert held.superseded_by == changed and held.stored_status.value == "superseded"
    mine = certificates.list_by_holder(province.repo, HolderIdType.CREDIT_CODE, "91410100MA44A1B2XW")
    assert {c.identifier for c in mine} == {changed, second, planning}
    check = repository_check(lambda: province.repo)
    trust = province.keystore.trust_store()
    for identifier, indication in (
        (changed, "VALID"),
        (second, "VALID"),
        (planning, "INVALID"),
        (first, "INVALID"),
    ):
        held = certificates.get(province.repo, identifier)
        report = verify_file(province.repo.blobs.get(held.file_key or ""), trust=trust, repository=check)
        assert report.indication.value == indication, (identifier, report.to_dict())
    assert get_entry(province.repo, CONSTRUCTION).to_document() == get_entry(city, CONSTRUCTION).to_document()

    again = _push(city, province)
    assert again.ok and again.batches == 0 and again.events_applied == 0
    assert len(_intake_events(province.repo)) == len(intake)
    state = target_state(city, "henan")
    assert state.event_cursor == city_events and state.events_waiting == 0 and state.attempts == 0


def test_lost_acknowledgement_is_not_applied_twice(
    city: Repository, province: Province, draft: DraftMaker, city_keys
) -> None:
    _, key = city_keys
    assert _push(city, province).ok
    identifiers = [_issue(city, draft, key, n=n) for n in (1, 2)]
    _act(city, identifiers[0], Action.SUSPEND, "整改")

    province.client.lose = 1  # the province applies the batch; its answer never reaches the city
    lost = _push(city, province)
    assert lost.error and "ReadError" in lost.error and lost.attempts == 1
    assert target_state(city, "henan").event_cursor == 0
    assert _count(province.repo, CertificateRow) == 2  # applied, though the city does not know it

    skipped = _push(city, province)
    assert skipped.skipped and skipped.next_attempt_at is not None  # backing off
    city.clock.advance(seconds=31)  # type: ignore[attr-defined]
    retried = _push(city, province)
    assert retried.ok and retried.already_applied == 3 and retried.events_applied == 0, retried.summary()
    assert _count(province.repo, CertificateRow) == 2 and _count(province.repo, CertificateEventRow) == 3
    assert _rows(province.repo) == _rows(city)
    events = [e for e in _intake_events(province.repo) if e.details["kind"] == "event"]
    assert len(events) == 3  # applied once, recorded once: the retry's already_applied items record nothing
    assert target_state(city, "henan").attempts == 0


def test_refused_items_are_recorded_and_skipped(
    city: Repository, province: Province, draft: DraftMaker, city_keys, rogue_key: KeyStore
) -> None:
    _, key = city_keys
    rogue = _issue(city, draft, rogue_key, n=1)  # sealed under a root the province does not trust
    good = _issue(city, draft, key, n=2)
    _act(city, rogue, Action.REVOKE, "行政处罚")
    bad = _issue(city, draft, key, n=3)
    with (
        city.db.session() as session
    ):  # a NUL in the face: the province cannot read the batch that carries it
        session.execute(
            update(CertificateRow)
            .where(CertificateRow.identifier == bad)
            .values(face={"project_name": "a\x00b"})
        )
    later = _issue(city, draft, key, n=4)

    stats = _push(city, province, batch=10)
    assert stats.ok and stats.caught_up, stats.summary()
    assert stats.refused == 3 and stats.events_applied == 2
    assert set(_rows(province.repo)) == {good, later}
    reasons = {
        e.event.details["identifier"]: e.event.reason or "" for e in list_refusals(city, target="henan")
    }
    assert set(reasons) == {rogue, bad}
    assert "does not verify at the province" in reasons[rogue] or "not held" in reasons[rogue]
    assert "422" in reasons[bad] and "NUL" in reasons[bad]
    refusals = list_refusals(city, target="henan")
    assert len(refusals) == 3 and all(e.event.action == "upward.refused" for e in refusals)
    assert all(
        (e.event.principal, e.event.details["via"], e.event.details["source"])
        == ("operator:upward", "upward", "henan")
        for e in refusals
    )  # the repository's own system pushing (the command line names its operator)
    assert _push(city, province).batches == 0  # passed for good: not sent again


def test_pending_catalogue_entry_holds_the_catalogue_cursor(city: Repository, province: Province) -> None:
    assert _push(city, province).ok
    cursor = target_state(city, "henan").catalogue_cursor
    entry = get_entry(city, PLANNING)
    document = {**entry.to_document(), "version": entry.version + 1}
    agency = Principal(1, "agency", Role.AGENCY, entry.issuer.credit_code, entry.issuer.name)
    submit_entry(city, document, principal=agency)

    assert _push(city, province).ok
    assert target_state(city, "henan").catalogue_cursor == cursor  # pending: not passed, not sent
    bureau = Principal(2, "bureau", Role.BUREAU, CITY_ORG, "郑州市大数据管理局")
    review_entry(city, PLANNING, entry.version + 1, approve=True, reviewer=bureau)
    stats = _push(city, province)
    assert stats.ok and stats.catalogue_applied == 1
    assert target_state(city, "henan").catalogue_cursor > cursor
    assert get_entry(province.repo, PLANNING).version == entry.version + 1
    assert [s.status for s in list_submissions(province.repo, issuer_code=entry.issuer.credit_code)
            if s.entry.code == PLANNING] == ["approved", "approved"]  # fmt: skip


def test_an_uploaded_base_image_travels_with_its_entry(city: Repository, province: Province) -> None:
    """An entry whose base image an agency uploaded (``asset:<SM3>``) is delivered with the image: the province
    stores it with the entry (its faces can be laid out there), once; a delivery of that entry whose image is
    missing or is other bytes is refused, never stored without its image."""
    agency = Principal(7, "li.si", Role.AGENCY, ce.ISSUER["credit_code"], ce.ISSUER["name"])
    asset, _ = store_asset(city, ce.base_image_png(), principal=agency)
    document = ce.entry_document(base_image=asset.name)
    document["face_template"] = ce.template()
    submit_entry(city, document, principal=agency)
    bureau = Principal(2, "bureau", Role.BUREAU, CITY_ORG, "郑州市大数据管理局")
    review_entry(city, ce.CODE, 1, approve=True, reviewer=bureau)
    image = get_entry(city, ce.CODE).base_image_data
    assert image is not None and sm3_hex(image) == asset.digest

    stats = _push(city, province, max_batch_bytes=1)  # one entry per request: the image alone is over the cap
    assert stats.ok and stats.refused == 0, stats.summary()
    assert stats.catalogue_applied == len(shipped_entries()) + 1
    held = get_entry(province.repo, ce.CODE)
    assert held.base_image_data == image and held.to_document() == get_entry(city, ce.CODE).to_document()
    with province.repo.db.session(readonly=True) as session:
        row = session.get(CatalogueAssetRow, asset.digest)
        assert row is not None and row.uploaded_by == f"upward:{CITY_ORG}"

    # The same entry delivered again by another city's feed (a fresh source id) without its image, or with other
    # bytes, to a province that does not hold the image: refused with the reason.
    with province.repo.db.session() as session:
        session.delete(session.get(CatalogueAssetRow, asset.digest))
        for row in session.scalars(select(CatalogueEntryRow).where(CatalogueEntryRow.code == ce.CODE)):
            session.delete(row)
    trust = province.keystore.trust_store()
    item = {"kind": "catalogue", "source_id": 9_000_001, "document": document}
    other = ce.base_image_png(dpi=200)
    for extra, reason in (
        ({}, "which the province does not hold and the delivery does not carry"),
        ({"base_image": {"media_type": "image/png", "sm3": asset.digest, "data": base64.b64encode(other).decode()}},
         "its SM3 differs"),
    ):  # fmt: skip
        item = {**item, "source_id": item["source_id"] + 1, **extra}
        (result,) = apply_batch(province.repo, sending(), [item], trust=trust)
        assert result.outcome is Outcome.REFUSED and reason in (result.reason or ""), result
    with pytest.raises(LookupError):
        get_entry(province.repo, ce.CODE)


def test_concurrent_deliveries_of_one_batch_apply_once(
    city: Repository, province: Province, draft: DraftMaker, city_keys
) -> None:
    """A retry racing the first delivery (the city timed out while the province was still working)."""
    _, key = city_keys
    assert _push(city, province).ok  # the catalogue
    for n in range(1, 4):
        _act(city, _issue(city, draft, key, n=n), Action.SUSPEND, "整改")
    province.client.lose = 1
    assert _push(city, province).error  # the batch the city sends, kept; its answer lost
    batch = province.client.sent[-1]["items"]
    assert len(batch) == 6
    with province.repo.db.session() as session:  # forget it all: the two deliveries below race from scratch
        for model in (UpwardReceivedRow, CertificateEventRow, CertificateRow):
            for row in session.scalars(select(model)):
                session.delete(row)
    trust = province.keystore.trust_store()
    results: list[list[Any]] = []

    def deliver() -> None:
        results.append(apply_batch(province.repo, sending(), batch, trust=trust))

    threads = [threading.Thread(target=deliver) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    outcomes = [sorted(r.outcome.value for r in pair) for pair in zip(*results, strict=True)]
    assert all(pair == ["already_applied", "applied"] for pair in outcomes), outcomes
    assert _count(province.repo, CertificateRow) == 3 and _count(province.repo, CertificateEventRow) == 6


def test_status_event_from_another_sender_is_refused(
    city: Repository, province: Province, draft: DraftMaker, city_keys
) -> None:
    _, key = city_keys
    identifier = _issue(city, draft, key, n=1)
    assert _push(city, province).ok
    item = {
        "kind": "event", "source_id": 1, "identifier": identifier, "action": "revoke", "from_status": "valid",
        "to_status": "revoked", "reason": "x", "actor": "x", "at": city.now().isoformat(), "details": {},
    }  # fmt: skip
    (result,) = apply_batch(
        province.repo, sending("41000000MB0000000X"), [item], trust=province.keystore.trust_store()
    )
    assert result.outcome is Outcome.REFUSED and "not delivered by" in (result.reason or "")
    assert certificates.get(province.repo, identifier).stored_status.value == "valid"


def test_city_mode_refuses_batches(repo: Repository, tmp_path: Path) -> None:
    app = create_app(Settings(data_dir=tmp_path, batch_worker=False), repo=repo)
    token = access.create_token(repo, role=Role.UPSTREAM, organisation_code=CITY_ORG, name="zz").token
    with TestClient(app, raise_server_exceptions=False) as client:
        answer = client.post(
            "/api/v1/aggregate/batches", json={"items": []}, headers={"Authorization": f"Bearer {token}"}
        )
    assert answer.status_code == 404 and answer.json()["type"].endswith("/not-province")


def test_backoff_while_the_target_is_down(city: Repository, draft: DraftMaker, city_keys) -> None:
    _, key = city_keys
    _issue(city, draft, key, n=1)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again: nothing listens there
    target = UpwardTarget("henan", f"http://127.0.0.1:{port}", "cst_x_y")
    city_clock: Clock = city.clock  # type: ignore[assignment]
    delays = []
    for _ in range(4):
        stats = push_upward(city, target, timeout=5, backoff=Backoff(base=10, cap=25))
        assert stats.error and not stats.skipped and "ConnectError" in stats.error
        assert stats.next_attempt_at is not None
        delays.append((stats.next_attempt_at - city_clock.now).total_seconds())
        assert push_upward(city, target).skipped
        city_clock.advance(seconds=delays[-1] + 1)
    assert delays == [10, 20, 25, 25]
    with city.db.session(readonly=True) as session:
        row = session.get(UpwardTargetRow, "henan")
        assert row is not None and row.attempts == 4 and row.event_cursor == 0 and row.catalogue_cursor == 0
        assert row.last_error and "ConnectError" in row.last_error


def test_keys_trust_add(tmp_path: Path, city_keys) -> None:
    store, _ = city_keys
    root = tmp_path / "root.pem"
    root.write_bytes(store.trust_store().anchors[0].pem)
    runner = CliRunner()
    data = ["--data-dir", str(tmp_path / "province")]
    added = runner.invoke(cli, [*data, "keys", "trust", "add", "zhengzhou-root", str(root)])
    assert added.exit_code == 0, added.output
    assert KeyStore(tmp_path / "province" / "keys").trust_store().anchors == store.trust_store().anchors
    leaf = tmp_path / "leaf.pem"
    leaf.write_bytes(store.signer_entry(CONSTRUCTION[:18]).certificate.pem)
    refused = runner.invoke(cli, [*data, "keys", "trust", "add", "agency", str(leaf)])
    assert refused.exit_code == 3 and "not a root" in refused.output


# --- the Province test: two real servers over HTTP ------------------------------------------------------------------


def _certstore(data_dir: Path, *args: str, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        [sys.executable, "-c", "from certstore.cli import main; main()", "--data-dir", str(data_dir), *args],
        env=env or _env(), capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CERTSTORE_")}
    return {**env, **extra}


class Server:
    def __init__(self, data_dir: Path, port: int, *args: str, **env: str) -> None:
        self.base = f"http://127.0.0.1:{port}"
        self.log = data_dir.parent / f"server-{port}.log"
        command = [
            sys.executable,
            "-c",
            "from certstore.cli import main; main()",
            "--data-dir",
            str(data_dir),
        ]
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                [*command, "serve", "--port", str(port), *args], env=_env(**env), stdout=out, stderr=out
            )
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{self.base}/api/v1/health", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise AssertionError(f"server did not start:\n{self.log.read_text()}")
            time.sleep(0.2)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=20)


class LostAnswerClient(httpx.Client):
    """Forwards one batch to the province, which applies it, then loses the answer."""

    def post(self, url: Any, **kwargs: Any) -> httpx.Response:  # type: ignore[override]
        super().post(url, **kwargs).read()
        raise httpx.ReadError("connection reset before the answer arrived")


def test_province(tmp_path: Path) -> None:
    """City → province over HTTP on loopback: the province is down for several pushes (retry state recorded,
    cursors still), then up: everything arrives once; a batch whose acknowledgement was lost is not applied
    twice; files verify at the province against its own trust store."""
    city_dir, province_dir = tmp_path / "city", tmp_path / "province"
    city_port, province_port = free_port(), free_port()
    city_server = Server(city_dir, city_port, "--demo")
    servers = [city_server]
    try:
        tokens = json.loads((city_dir / "demo-tokens.json").read_text())
        agency = httpx.Client(base_url=f"{city_server.base}/api/v1", timeout=60,
                              headers={"Authorization": f"Bearer {tokens['agency']}"})  # fmt: skip
        form = agency.get(f"/catalogue/{CONSTRUCTION}/form-schema").json()["example"]

        def issue(n: int) -> str:
            answer = agency.post("/certificates", json={**form, "certificate_number": _number(n)})
            assert answer.status_code == 201, answer.text
            return str(answer.json()["identifier"])

        def act(identifier: str, action: str) -> None:
            answer = agency.post(
                f"/certificates/{identifier}/actions", json={"action": action, "reason": "测试"}
            )
            assert answer.status_code == 200, answer.text

        issued = [issue(n) for n in range(1, 5)]
        act(issued[1], "suspend")
        renewed = agency.post(
            f"/certificates/{issued[2]}/renew", json={"reason": "延续", "valid_until": "2035-12-31"}
        )
        assert renewed.status_code in (200, 201), renewed.text

        # The province: the city's root as a trust anchor, and an upstream token for the city.
        _certstore(
            province_dir, "keys", "trust", "add", "zhengzhou-root", str(city_dir / "keys/trust/root-ca.pem")
        )
        token = _certstore(
            province_dir, "token", "create", "--role", "upstream", "--org", CITY_ORG, "--name", "zz"
        )
        target = UpwardTarget("henan", f"http://127.0.0.1:{province_port}", token)

        city = Repository.open(city_dir, env={})
        clock = Clock()
        city.clock = clock
        # Down: nothing listens on the province's port.
        for attempt in range(1, 4):
            stats = push_upward(city, target, timeout=10)
            assert stats.error and stats.attempts == attempt, stats.summary()
            state = target_state(city, "henan")
            assert (state.event_cursor, state.catalogue_cursor, state.attempts) == (0, 0, attempt)
            assert state.last_error and state.next_attempt_at and state.events_waiting == 7
            assert push_upward(city, target).skipped  # the retry queue waits for next_attempt_at
            clock.advance(seconds=3600)
        act(issued[3], "revoke")  # the city keeps working while the province is down

        servers.append(Server(province_dir, province_port, CERTSTORE_MODE="province"))
        stats = push_upward(city, target, batch=3)
        assert stats.ok and stats.caught_up and stats.refused == 0, stats.summary()
        assert stats.events_applied == 8 and stats.catalogue_applied == 6

        # A lost acknowledgement: the province applied the batch, the city did not hear it.
        more = [issue(n) for n in (5, 6)]
        act(more[0], "suspend")
        with LostAnswerClient(timeout=60) as lossy:
            lost = push_upward(city, target, http=lossy)
        assert lost.error and target_state(city, "henan").event_cursor == 8
        clock.advance(seconds=3600)
        retried = push_upward(city, target)
        assert retried.ok and retried.already_applied == 3 and retried.events_applied == 0, retried.summary()

        province = Repository.open(province_dir, env={})
        assert _rows(province) == _rows(city)
        assert _count(province, UpwardReceivedRow) == _count(city, CertificateEventRow) + 6 == 17
        # Files verify at the province, through its own API, with its own statuses.
        with httpx.Client(base_url=f"http://127.0.0.1:{province_port}/api/v1", timeout=60) as public:
            for identifier, indication in ((issued[0], "VALID"), (issued[3], "INVALID"), (more[1], "VALID")):
                held = certificates.get(province, identifier)
                report = public.post(
                    "/public/verify", files={"file": ("c.ofd", province.blobs.get(held.file_key or ""))}
                )
                assert report.status_code == 200 and report.json()["indication"] == indication, report.text
                assert report.json()["certificate"]["status"] == held.stored_status.value
        city.db.dispose()
        province.db.dispose()
    finally:
        for server in servers:
            server.stop()


def test_an_id_hole_is_not_passed_until_it_is_old(
    city: Repository, province: Province, draft: DraftMaker, city_keys
) -> None:
    """PostgreSQL commits sequence values out of order: event 3 may be visible while event 2 is still being
    written. The cursor waits at a young hole, and passes an old one (a rolled-back write)."""
    _, key = city_keys
    identifier = _issue(city, draft, key, n=1)
    with city.db.session() as session:
        row = session.scalars(select(CertificateRow).where(CertificateRow.identifier == identifier)).one()
        (issued,) = row.events
        first, at = issued.id, city.now()

    def event(event_id: int, action: str, from_status: str, to_status: str) -> None:
        with city.db.session() as session:
            session.add(CertificateEventRow(id=event_id, certificate_id=row.id, action=action,
                                            from_status=from_status, to_status=to_status, reason="x",
                                            actor="agency", at=at, details={}))  # fmt: skip
            session.execute(
                update(CertificateRow).where(CertificateRow.id == row.id).values(status=to_status)
            )

    event(first + 2, "resume", "suspended", "valid")  # committed first …
    stats = _push(city, province)
    assert stats.ok and stats.events_applied == 1 and target_state(city, "henan").event_cursor == first
    event(first + 1, "suspend", "valid", "suspended")  # … while the write holding the lower id was running
    event(first + 4, "revoke", "valid", "revoked")  # first + 3: rolled back, never committed
    stats = _push(city, province)
    assert stats.events_applied == 2 and target_state(city, "henan").event_cursor == first + 2
    city.clock.advance(minutes=6)  # type: ignore[attr-defined]
    stats = _push(city, province)
    assert stats.events_applied == 1 and target_state(city, "henan").event_cursor == first + 4
    assert _rows(province.repo) == _rows(city)


def test_push_upward_command_once(tmp_path: Path) -> None:
    from certstore.cli.common import Context
    from certstore.cli.exchange_upward import push_upward_command

    runner = CliRunner()
    context = Context(data_dir=tmp_path / "city")
    city = context.repository()
    load_shipped(city)  # something to deliver
    city.db.dispose()
    args = ["--target", f"henan=http://127.0.0.1:{free_port()}", "--token-env", "UPWARD_TOKEN", "--once"]
    missing = runner.invoke(push_upward_command, args, obj=context, env={"UPWARD_TOKEN": ""})
    assert missing.exit_code == 3 and "UPWARD_TOKEN" in missing.output
    down = runner.invoke(push_upward_command, args, obj=context, env={"UPWARD_TOKEN": "cst_x_y"})
    assert down.exit_code == 1 and "FAILED (attempt 1" in down.output, down.output
    waiting = runner.invoke(push_upward_command, args, obj=context, env={"UPWARD_TOKEN": "cst_x_y"})
    assert waiting.exit_code == 1 and "skipped" in waiting.output  # backing off
