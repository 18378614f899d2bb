"""certstore.store.db on SQLite and a real PostgreSQL: URLs, engines, sessions, column types, constraints,
schema checks and the ``certstore db`` commands."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import event, func, select, text
from sqlalchemy.exc import DBAPIError, IntegrityError, StatementError
from sqlalchemy.pool import NullPool, QueuePool

from certstore.cli import main
from certstore.store.db import (
    SQLITE_BULK_CACHE_KIB,
    SQLITE_BULK_CHECKPOINT_PAGES,
    SQLITE_CACHE_KIB,
    SQLITE_CHECKPOINT_PAGES,
    Database,
    DatabaseURLError,
    SchemaError,
    database_url,
    head_revision,
    make_engine,
    mask_url,
    normalise_url,
    sqlite_path,
)
from certstore.store.models import CatalogueEntryRow, CertificateEventRow, CertificateRow

CHINA = timezone(timedelta(hours=8))


# -- URLs ----------------------------------------------------------------------------------------------


def test_default_url_is_sqlite_file_in_data_dir(tmp_path: Path) -> None:
    url = database_url(tmp_path / "data", env={})
    assert url == f"sqlite:///{tmp_path}/data/certstore.db"
    assert sqlite_path(url) == tmp_path / "data" / "certstore.db"


def test_relative_data_dir_gives_absolute_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert database_url(Path(".certstore"), env={}) == f"sqlite:///{tmp_path}/.certstore/certstore.db"


@pytest.mark.parametrize(
    ("configured", "expected"),
    [
        ("postgresql://app:pw@db.example:5432/certs", "postgresql+psycopg://app:pw@db.example:5432/certs"),
        ("postgres://app@db.example/certs", "postgresql+psycopg://app@db.example/certs"),
        ("postgresql+psycopg://app@db/certs", "postgresql+psycopg://app@db/certs"),
        ("  sqlite:////var/lib/certstore/c.db ", "sqlite:////var/lib/certstore/c.db"),
        ("postgresql://app:p%40ss%2Fw@db/certs", "postgresql+psycopg://app:p%40ss%2Fw@db/certs"),
    ],
)
def test_environment_url_wins_and_is_normalised(tmp_path: Path, configured: str, expected: str) -> None:
    assert database_url(tmp_path, env={"CERTSTORE_DATABASE_URL": configured}) == expected


@pytest.mark.parametrize("bad", ["mysql://u:secret@h/db", "not a url", "oracle://x"])
def test_unsupported_urls_are_refused_without_showing_passwords(bad: str) -> None:
    with pytest.raises(DatabaseURLError) as info:
        normalise_url(bad)
    assert "secret" not in str(info.value)


def test_mask_url_hides_the_password() -> None:
    assert mask_url("postgresql+psycopg://app:s3cret@db/certs") == "postgresql+psycopg://app:***@db/certs"
    assert mask_url("sqlite:////x/c.db") == "sqlite:////x/c.db"


# -- engines -------------------------------------------------------------------------------------------


def test_sqlite_engine_pragmas_and_directory(tmp_path: Path) -> None:
    url = database_url(tmp_path / "a" / "b", env={})
    engine = make_engine(url)
    try:
        assert (tmp_path / "a" / "b").is_dir()
        with engine.connect() as conn:
            pragmas = {
                name: conn.exec_driver_sql(f"PRAGMA {name}").scalar()
                for name in ("journal_mode", "foreign_keys", "busy_timeout", "synchronous")
            }
        assert pragmas == {"journal_mode": "wal", "foreign_keys": 1, "busy_timeout": 10_000, "synchronous": 1}
    finally:
        engine.dispose()


def test_sqlite_transactions_are_begun_by_sqlalchemy(tmp_path: Path) -> None:
    """BEGIN IMMEDIATE for read-write work, so a read-then-write transaction holds the write lock from the start."""
    db = Database(database_url(tmp_path, env={}))
    statements: list[str] = []
    try:
        with db.engine.connect() as conn:
            conn.exec_driver_sql("CREATE TABLE t (x INTEGER)")
            conn.commit()
        event.listen(db.engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
        with db.session() as session:
            session.execute(text("SELECT count(*) FROM t"))
        with db.session(readonly=True) as session:
            session.execute(text("SELECT count(*) FROM t"))
        assert statements[:2] == ["BEGIN IMMEDIATE", "SELECT count(*) FROM t"]
        assert statements[2:] == ["PRAGMA query_only = 1", "BEGIN", "SELECT count(*) FROM t"]
    finally:
        db.dispose()


def test_bulk_writes_checkpoint_less_often_with_a_larger_cache(tmp_path: Path) -> None:
    """Inside ``bulk_writes`` (this thread only) a write transaction's connection checkpoints the write-ahead log
    every 10,000 pages and caches 64 MB; ordinary writers, before and after, and other threads meanwhile, every
    1,000 pages with SQLite's 2 MB — the same pooled connection set back."""
    db = Database(database_url(tmp_path, env={}), poolclass=QueuePool, pool_size=1, max_overflow=0)

    def settings(*, readonly: bool = False) -> tuple[int, int]:
        with db.session(readonly=readonly) as session:
            return (
                int(session.execute(text("PRAGMA wal_autocheckpoint")).scalar_one()),
                int(session.execute(text("PRAGMA cache_size")).scalar_one()),
            )

    ordinary = (SQLITE_CHECKPOINT_PAGES, -SQLITE_CACHE_KIB)
    bulk = (SQLITE_BULK_CHECKPOINT_PAGES, -SQLITE_BULK_CACHE_KIB)
    try:
        assert settings() == ordinary == (1_000, -2_000)
        elsewhere: list[tuple[int, int]] = []
        with db.bulk_writes():
            assert settings() == bulk == (10_000, -65_536)
            assert settings(readonly=True) == bulk  # a reader between the writes leaves them be
            thread = threading.Thread(target=lambda: elsewhere.append(settings()))
            thread.start()
            thread.join()
            assert settings() == bulk
        assert elsewhere == [ordinary]
        assert settings() == ordinary
    finally:
        db.dispose()


def test_postgres_engine_pool_survives_dropped_connections(postgres_database: str) -> None:
    engine = make_engine(postgres_database.replace("postgresql+psycopg://", "postgresql://"))
    try:
        assert engine.url.drivername == "postgresql+psycopg"
        assert isinstance(engine.pool, QueuePool)
        assert engine.pool.size() == 10
        with engine.connect() as conn:
            assert conn.exec_driver_sql("SHOW transaction_isolation").scalar() == "read committed"
            pid = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar()
        admin = make_engine(postgres_database, poolclass=NullPool)
        try:  # the server drops the pooled connection (restart, idle timeout, ...)
            with admin.connect() as other:
                assert other.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid}).scalar()
        finally:
            admin.dispose()
        with engine.connect() as conn:  # pool_pre_ping notices and reconnects instead of failing
            assert conn.exec_driver_sql("SELECT 1").scalar() == 1
    finally:
        engine.dispose()


# -- sessions ------------------------------------------------------------------------------------------


def _entry(code: str = "110000001", version: int = 1, **changes: object) -> CatalogueEntryRow:
    fields: dict[str, object] = {
        "code": code,
        "version": version,
        "name": "食品经营许可证",
        "category": "license",
        "issuer_code": "11410100MB1234567X",
        "holder_type": "legal_person",
        "status": "approved",
        "definition": {"name": "食品经营许可证", "fields": [{"key": "经营场所", "type": "string"}]},
        "created_at": datetime(2026, 11, 26, 9, 30, tzinfo=CHINA),
    }
    fields.update(changes)
    return CatalogueEntryRow(**fields)


def _certificate(number: str = "JY14101050012345", version: int = 1, **changes: object) -> CertificateRow:
    at = datetime(2026, 11, 26, 1, 2, 3, 456789, tzinfo=UTC)
    fields: dict[str, object] = {
        "identifier": f"1.2.156.3005.2.11410100MB1234567X.{number}.{version:03d}",
        "type_code": "11100000000000001",
        "issuer_code": "11410100MB1234567X",
        "issuer_name": "郑州市市场监督管理局",
        "serial": number,
        "version": version,
        "certificate_number": number,
        "name": "食品经营许可证",
        "catalogue_code": "110000001",
        "catalogue_version": 1,
        "holder_name": "郑州示例餐饮有限公司",
        "holder_id_type": "049",
        "holder_id": "91410100MA44A1B2XW",
        "holder_id_digest": bytes(range(32)),
        "issue_date": date(2026, 11, 26),
        "valid_from": date(2026, 11, 26),
        "valid_until": None,
        "face": {"经营者名称": "郑州示例餐饮有限公司", "经营项目": ["热食类食品制售", "冷食类食品制售"]},
        "meta": {"颁证单位": "郑州市市场监督管理局", "版本": version},
        "content_digest": "ab" * 32,
        "status": "valid",
        "status_changed_at": at,
        "created_at": at,
    }
    fields.update(changes)
    return CertificateRow(**fields)


def test_session_commits_on_success_and_rolls_back_on_error(database: Database) -> None:
    with database.session() as session:
        session.add(_entry("A"))
    with pytest.raises(RuntimeError), database.session() as session:
        session.add(_entry("B"))
        session.flush()
        raise RuntimeError("boom")
    with database.session() as session:
        assert session.scalars(select(CatalogueEntryRow.code)).all() == ["A"]


def test_objects_stay_readable_after_the_session(database: Database) -> None:
    with database.session() as session:
        row = _entry()
        session.add(row)
    assert row.id is not None
    assert row.name == "食品经营许可证"


def test_readonly_session_refuses_writes(database: Database) -> None:
    with database.session(readonly=True) as session:
        assert session.scalar(select(func.count()).select_from(CatalogueEntryRow)) == 0
    with pytest.raises(DBAPIError), database.session(readonly=True) as session:
        session.add(_entry())
    with database.session() as session:  # the connection went back to the pool writable again
        session.add(_entry())


def test_concurrent_read_then_write_sessions_do_not_fail(database: Database) -> None:
    """Each worker counts rows and inserts one (the services' read-check-write shape). On SQLite a deferred
    transaction would hit "database is locked" here; BEGIN IMMEDIATE makes writers queue instead."""
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        try:
            for i in range(5):
                with database.session() as session:
                    count = session.scalar(select(func.count()).select_from(CatalogueEntryRow))
                    session.add(_entry(f"W{n}-{i}", version=int(count or 0) + 1))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with database.session() as session:
        assert session.scalar(select(func.count()).select_from(CatalogueEntryRow)) == 30


# -- column types and constraints ----------------------------------------------------------------------


def test_utc_datetime_round_trips_aware_times(database: Database) -> None:
    beijing = datetime(2026, 11, 26, 9, 30, 15, 123456, tzinfo=CHINA)
    with database.session() as session:
        session.add(_entry(created_at=beijing))
    with database.session() as session:
        stored = session.scalars(select(CatalogueEntryRow.created_at)).one()
        later = session.scalars(
            select(CatalogueEntryRow.code).where(
                CatalogueEntryRow.created_at > beijing - timedelta(seconds=1)
            )
        ).all()
    assert stored == beijing
    assert stored.tzinfo is UTC
    assert stored.hour == 1  # 09:30 in Beijing is 01:30 UTC
    assert later == ["110000001"]


def test_utc_datetime_refuses_naive_times(database: Database) -> None:
    with pytest.raises(StatementError) as info, database.session() as session:
        session.add(_entry(created_at=datetime(2026, 11, 26, 9, 30)))
        session.flush()
    assert isinstance(info.value.orig, ValueError)
    assert "naive datetime" in str(info.value)
    with pytest.raises(StatementError), database.session() as session:
        session.scalars(
            select(CatalogueEntryRow).where(CatalogueEntryRow.created_at < datetime(2026, 1, 1))
        ).all()


def test_json_documents_round_trip_chinese_text(database: Database) -> None:
    certificate = _certificate()
    with database.session() as session:
        session.add(certificate)
        session.flush()
        session.add(
            CertificateEventRow(
                certificate_id=certificate.id,
                action="issue",
                from_status=None,
                to_status="valid",
                reason="签发",
                actor="郑州市市场监督管理局·张三",
                at=datetime.now(UTC),
            )
        )
    with database.session() as session:
        row = session.scalars(select(CertificateRow)).one()
        assert row.face == {
            "经营者名称": "郑州示例餐饮有限公司",
            "经营项目": ["热食类食品制售", "冷食类食品制售"],
        }
        assert row.meta == {"颁证单位": "郑州市市场监督管理局", "版本": 1}
        assert row.holder_id_digest == bytes(range(32))
        assert row.valid_until is None
        assert [(e.reason, e.actor, e.details) for e in row.events] == [
            ("签发", "郑州市市场监督管理局·张三", {})
        ]
        raw = session.execute(text("SELECT face FROM certificates")).scalar()
    # Stored as real UTF-8 text, not \\u escapes (readable, and what JSONB would normalise to anyway).
    stored = raw if isinstance(raw, str) else json.dumps(raw, ensure_ascii=False)
    assert "郑州示例餐饮有限公司" in stored


def test_certificate_version_identity_is_unique(database: Database) -> None:
    with database.session() as session:
        session.add(_certificate(version=1))
        session.add(_certificate(version=2))  # another version of the same certificate: fine
    with pytest.raises(IntegrityError) as info, database.session() as session:
        session.add(_certificate(version=2, identifier="another-identifier"))
    assert "uq_certificates_issuer_code_certificate_number_version" in str(info.value) or (
        "certificates.issuer_code, certificates.certificate_number, certificates.version" in str(info.value)
    )
    with database.session() as session:
        assert session.scalar(select(func.count()).select_from(CertificateRow)) == 2


def test_catalogue_code_version_is_unique(database: Database) -> None:
    with database.session() as session:
        session.add(_entry(version=1))
        session.add(_entry(version=2))
    with pytest.raises(IntegrityError), database.session() as session:
        session.add(_entry(version=2))


def test_foreign_keys_are_enforced(database: Database) -> None:
    with pytest.raises(IntegrityError), database.session() as session:
        session.add(
            CertificateEventRow(
                certificate_id=424242,
                action="issue",
                to_status="valid",
                reason="签发",
                actor="x",
                at=datetime.now(UTC),
            )
        )


# -- schema revision -----------------------------------------------------------------------------------


def test_check_schema_on_an_empty_database(empty_database_url: str) -> None:
    with Database(empty_database_url) as db:
        assert db.current_revision() is None
        with pytest.raises(SchemaError, match=r"no certstore schema .*run `certstore db upgrade`"):
            db.check_schema()
        assert db.upgrade() == (None, head_revision())
        assert db.check_schema() == head_revision()
        assert db.upgrade() == (head_revision(), head_revision())


def test_check_schema_on_an_older_and_a_newer_database(database: Database) -> None:
    with database.engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999_from_the_future'"))
    with pytest.raises(SchemaError, match="does not know"):
        database.check_schema()
    with database.engine.begin() as conn:
        conn.execute(text("DELETE FROM alembic_version"))
    with pytest.raises(SchemaError, match="run `certstore db upgrade`"):
        database.check_schema()


def test_check_schema_hides_the_password(postgres_database: str) -> None:
    url = postgres_database.replace("postgres@", "postgres:s3cret@")  # trust authentication ignores it
    with Database(url) as db, pytest.raises(SchemaError) as info:
        db.check_schema()
    assert "s3cret" not in str(info.value)
    assert "postgres:***@" in str(info.value)


UPGRADE_SCRIPT = """
import sys
from certstore.store.db import Database
with Database(sys.argv[1]) as db:
    before, after = db.upgrade()
print(before, after)
"""


def test_concurrent_upgrades_take_turns(empty_database_url: str) -> None:
    """Several processes (API workers, say) start against an empty database and all run ``upgrade``: one
    migrates, the others wait (PostgreSQL advisory lock, SQLite write lock) and then find the schema at head."""
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", UPGRADE_SCRIPT, empty_database_url],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    outcomes = [(p.wait(timeout=60), *p.communicate()) for p in processes]
    assert [code for code, _, _ in outcomes] == [0, 0, 0], [err for _, _, err in outcomes]
    head = head_revision()
    assert all(out.split()[-1] == head for _, out, _ in outcomes)
    assert sum(out.split()[0] == "None" for _, out, _ in outcomes) >= 1
    with Database(empty_database_url) as db:
        assert db.check_schema() == head


def test_upgrades_from_threads_take_turns(empty_database_url: str) -> None:
    """Alembic's ``context``/``op`` are process-wide, so in one process upgrades are serialised by a lock."""
    results: list[tuple[str | None, str | None]] = []

    def upgrade() -> None:
        with Database(empty_database_url) as db:
            results.append(db.upgrade())

    threads = [threading.Thread(target=upgrade) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    head = head_revision()
    assert sorted(results, key=str) == sorted([(None, head), (head, head), (head, head)], key=str)


# -- certstore db ... ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    code: int
    out: str
    err: str


RunCli = Callable[..., Run]


@pytest.fixture
def run_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> RunCli:
    """``run_cli("db", "status")`` runs ``certstore --data-dir <tmp>/data db status`` in-process."""

    def run(*args: str) -> Run:
        capsys.readouterr()
        try:
            main(["--data-dir", str(tmp_path / "data"), *args])
            code = 0
        except SystemExit as exc:
            code = int(exc.code or 0)
        captured = capsys.readouterr()
        return Run(code, captured.out, captured.err)

    return run


def test_db_commands(
    empty_database_url: str,
    database_backend: str,
    run_cli: RunCli,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    url = empty_database_url
    if database_backend == "postgresql":
        url = url.replace("postgresql+psycopg://postgres@", "postgresql://postgres:s3cret@")
        monkeypatch.setenv("CERTSTORE_DATABASE_URL", url)
    else:
        monkeypatch.delenv("CERTSTORE_DATABASE_URL", raising=False)
        assert url == database_url(tmp_path / "data", env={})
    shown = mask_url(normalise_url(url))
    head = head_revision()

    status = run_cli("db", "status")
    assert status.code == 0, status.err
    assert status.out.splitlines() == [
        f"database: {shown}",
        "current:  (none)",
        f"head:     {head}",
        "status:   no schema: run `certstore db upgrade`",
    ]
    if database_backend == "sqlite":
        assert not (tmp_path / "data").exists()  # status does not create the database

    upgrade = run_cli("db", "upgrade")
    assert upgrade.code == 0, upgrade.err
    assert upgrade.out.splitlines() == [f"database: {shown}", f"upgraded: (empty) → {head}"]
    assert run_cli("db", "upgrade").out.splitlines()[-1] == f"already at {head} (head)"

    status = run_cli("db", "status", "--json")
    assert json.loads(status.out) == {"database": shown, "current": head, "head": head, "up_to_date": True}
    assert "s3cret" not in status.out + upgrade.out


def test_db_commands_report_bad_configuration(run_cli: RunCli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CERTSTORE_DATABASE_URL", "mysql://app:s3cret@db/certs")
    result = run_cli("db", "status")
    assert result.code == 3
    assert "unsupported database" in result.err and "s3cret" not in result.err

    monkeypatch.setenv("CERTSTORE_DATABASE_URL", "postgresql://app:s3cret@127.0.0.1:1/certs")
    result = run_cli("db", "upgrade")
    assert result.code == 3
    assert "postgresql+psycopg://app:***@127.0.0.1:1/certs" in result.err
    assert "s3cret" not in result.err
