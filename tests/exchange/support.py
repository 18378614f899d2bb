"""Shared by the exchange-task tests: a repository fixture, DATA.json documents, sources and the expected
repository state computed from a front-end database (what "the repository equals the source" means)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, func, select

from certstore.app import Application
from certstore.audit import AuditEvent, AuditQuery, chain_pending
from certstore.audit.query import iter_entries
from certstore.catalogue.definitions import example_face, shipped_entries
from certstore.exchange.frontend import CERTIFICATE_TABLE, STATUS_TABLE, FrontendWriter, frontend_engine
from certstore.exchange.worker import ExchangeSource
from certstore.keystore import KeyStore
from certstore.store.db import Database
from certstore.store.models import CertificateEventRow, CertificateRow, ExchangeAppliedRow
from certstore.store.repository import Repository
from tests.support.clock import Clock
from tests.support.repository import make_repo

CATALOGUE = "11410100990000017F002"  # 建设用地规划许可证, issued by ISSUER
ISSUER = "11410100990000017F"
OTHER_CATALOGUE = "11410100990000025A001"  # 建筑工程施工许可证: another agency's type
HOLDER = {"name": "郑州示例置业有限公司", "id_type": "001", "id_number": "91410100MA44A1B2XW"}
ACTION_RESULT = {"suspend": "suspended", "resume": "valid", "revoke": "revoked", "cancel": "cancelled",
                 "annul": "annulled"}  # fmt: skip


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def repo(database: Database, tmp_path: Path, clock: Clock) -> Repository:
    return make_repo(database, tmp_path, clock)


@pytest.fixture
def app(repo: Repository, tmp_path: Path) -> Application:
    """The application of ``repo`` (an empty key store: cycles seal with the file maker they are given)."""
    return Application(repo, KeyStore(tmp_path / "keys"))


@pytest.fixture
def frontend_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'frontend.db'}"


@pytest.fixture
def source(frontend_url: str) -> ExchangeSource:
    return ExchangeSource("zz-natres", frontend_url, ISSUER)


def number(i: int) -> str:
    return f"地字第4101002026{i:05d}号"


def document(i: int, version: int = 1, *, catalogue: str = CATALOGUE, **changes: Any) -> dict[str, Any]:
    """A valid DATA.json for certificate ``i`` (the metadata says which version, so versions differ)."""
    entry = next(e for e in shipped_entries() if e.code == catalogue)
    doc: dict[str, Any] = {
        "catalogue": catalogue,
        "certificate_number": number(i) if catalogue == CATALOGUE else entry.number_example,
        "holder": dict(HOLDER),
        "issue_date": date(2026, 11, 26).isoformat(),
        "face": example_face(entry),
        "metadata": {"note": f"version {version}"},
    }
    doc.update(changes)
    return doc


@dataclass(frozen=True)
class Expected:
    versions: dict[str, set[int]]  # number → versions
    final_status: dict[str, str]  # number → status of its latest version
    status_events: dict[str, int]  # number → status actions applied to the latest version


def expected_state(frontend_url: str, issuer: str = ISSUER) -> Expected:
    """What the repository must hold after exchanging a front-end whose rows are all valid and written in a
    causal order (versions 1..k; status changes name the last version and follow the lifecycle)."""
    engine = frontend_engine(frontend_url)
    try:
        with engine.connect() as conn:
            versions: dict[str, set[int]] = {}
            for number_, version in conn.execute(
                select(CERTIFICATE_TABLE.c.certificate_number, CERTIFICATE_TABLE.c.version).where(
                    CERTIFICATE_TABLE.c.issuer_code == issuer
                )
            ):
                versions.setdefault(number_, set()).add(version)
            status = {n: "valid" for n in versions}
            events = dict.fromkeys(versions, 0)
            for number_, action in conn.execute(
                select(STATUS_TABLE.c.certificate_number, STATUS_TABLE.c.action).order_by(STATUS_TABLE.c.seq)
            ):
                status[number_] = ACTION_RESULT[action]
                events[number_] += 1
    finally:
        engine.dispose()
    return Expected(versions, status, events)


def assert_repository_equals(repo: Repository, frontend_url: str, source: str) -> None:
    """The repository holds exactly the front-end's certificates: every version once, superseded chains, final
    statuses, one lifecycle event per applied change and status action, and one ledger row per front-end row."""
    expected = expected_state(frontend_url)
    with repo.db.session(readonly=True) as session:
        rows = session.scalars(select(CertificateRow).where(CertificateRow.issuer_code == ISSUER)).all()
        events = dict(
            session.execute(
                select(CertificateEventRow.certificate_id, func.count()).group_by(
                    CertificateEventRow.certificate_id
                )
            ).all()
        )
        ledger = session.execute(
            select(ExchangeAppliedRow.table_name, ExchangeAppliedRow.seq, ExchangeAppliedRow.outcome).where(
                ExchangeAppliedRow.source == source
            )
        ).all()
    rejected = [(t, s) for t, s, o in ledger if o != "accepted"]
    if rejected:
        with FrontendWriter(frontend_url, create=False) as fe:
            reasons = [fe.receipt(t, s) for t, s in rejected[:5]]
        raise AssertionError(f"{len(rejected)} rejected rows, e.g. {reasons}")
    got: dict[str, dict[int, CertificateRow]] = {}
    for row in rows:
        assert row.version not in got.get(row.certificate_number, {}), f"duplicate {row.identifier}"
        got.setdefault(row.certificate_number, {})[row.version] = row
    assert {n: set(v) for n, v in got.items()} == expected.versions
    for number_, versions in got.items():
        last = max(versions)
        for version, row in versions.items():
            if version < last:
                assert row.status == "superseded", row.identifier
                assert row.superseded_by_id == versions[version + 1].id
                # issue or change-in, plus the change-out event
                assert events[row.id] == 2, (row.identifier, events[row.id])
            else:
                assert row.status == expected.final_status[number_], (number_, row.status)
                assert row.superseded_by_id is None
                assert events[row.id] == 1 + expected.status_events[number_], (row.identifier, events[row.id])
    engine = create_engine(frontend_url)
    try:
        with engine.connect() as conn:
            fe_rows = {
                (table.name, int(seq)) for table in (CERTIFICATE_TABLE, STATUS_TABLE)
                for (seq,) in conn.execute(select(table.c.seq))
            }  # fmt: skip
    finally:
        engine.dispose()
    keys = [(t, int(s)) for t, s, _ in ledger if t != "fe_catalogue_entries"]
    assert len(keys) == len(set(keys)), "a front-end row applied twice"
    assert set(keys) == fe_rows, "front-end rows missing from the ledger"


def audit_events(repo: Repository, **filters: Any) -> list[AuditEvent]:
    """Every audit event recorded so far that matches ``filters`` (:class:`AuditQuery` fields), oldest first —
    the ones written in transactions chained first."""
    chain_pending(repo.db)
    return [entry.event for entry in iter_entries(repo.db, AuditQuery(**filters))]


def exchange_audit_events(repo: Repository, source: str) -> list[AuditEvent]:
    """The audit events of certificate changes the exchange applied from ``source``."""
    return [
        e for e in audit_events(repo)
        if e.details.get("via") == "exchange" and e.details.get("source") == source
        and e.action.startswith("certificate.")
    ]  # fmt: skip


def expected_change_count(frontend_url: str) -> int:
    """How many certificate changes a front-end of valid rows in causal order makes: every version, and every
    status action (each one audit entry)."""
    expected = expected_state(frontend_url)
    return sum(len(v) for v in expected.versions.values()) + sum(expected.status_events.values())
