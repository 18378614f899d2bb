"""Retention in the database itself: on PostgreSQL the application's role has no UPDATE/DELETE/TRUNCATE on the
audit tables (raw SQL gets an error), and a trigger refuses UPDATE of any entry and DELETE of entries younger than
the retention period even to the owner; the period only grows. SQLite has the same triggers."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from certstore.audit import append_events, append_in_transaction, verify_log
from certstore.audit.checkpoints import CheckpointKey
from certstore.audit.partitions import (
    RetentionError,
    ensure_partitions,
    grant_statements,
    list_partitions,
    partition_name,
    retention_years,
    set_retention_years,
)
from certstore.store.db import Database
from tests.audit.conftest import event, fill


def _four_years_ago() -> datetime:
    return datetime.now(UTC) - timedelta(days=4 * 366)


@pytest.fixture
def old_and_young(database: Database, key: CheckpointKey) -> Database:
    """Entries 0..4 logged four years ago, 5..9 now; a checkpoint."""
    with database.session() as session:
        append_events(session, [event(i) for i in range(5)], now=_four_years_ago())
    fill(database, 5, start=5, key=key, every=5)
    return database


def _refused(db: Database, statement: str) -> str:
    with pytest.raises(sa.exc.DBAPIError) as refused, db.engine.begin() as conn:
        conn.execute(sa.text(statement))
    return str(refused.value.orig)


def test_the_database_refuses_updates_and_young_deletes(old_and_young: Database) -> None:
    db = old_and_young
    assert "cannot be updated" in _refused(db, "UPDATE audit_events SET principal = 'x' WHERE seq = 7")
    assert "cannot be updated" in _refused(db, "UPDATE audit_events SET principal = 'x' WHERE seq = 1")
    assert "younger than the retention period" in _refused(db, "DELETE FROM audit_events WHERE seq = 7")
    assert "younger than the retention period" in _refused(db, "DELETE FROM audit_events")
    assert "append-only" in _refused(db, "DELETE FROM audit_checkpoints")
    assert "shrink" in _refused(db, "UPDATE audit_chain SET size = 3")
    assert "chain head" in _refused(db, "DELETE FROM audit_chain")
    if db.backend == "postgresql":
        assert "append-only" in _refused(db, "TRUNCATE audit_events")
    with db.session() as session:  # a mutation's entry waiting to be chained is never rewritten
        append_in_transaction(session, event(50, principal="ORG/clerk"))
    assert "cannot be updated" in _refused(
        db, "UPDATE audit_pending SET payload = replace(payload, 'clerk', 'x')"
    )
    if db.backend == "postgresql":  # nor removed before it is in the chain (SQLite: tamper evidence only)
        assert "not chained yet" in _refused(db, "DELETE FROM audit_pending")
        assert "append-only" in _refused(db, "TRUNCATE audit_pending")
    # entries older than the retention period may go (their archive holds them, see test_archive)
    with db.engine.begin() as conn:
        deleted = conn.execute(sa.text("DELETE FROM audit_events WHERE seq < 2"))
        assert deleted.rowcount == 2
    result = verify_log(db)
    assert ("missing", 0) in [(f.kind, f.seq) for f in result.findings]  # and verification says so


def test_the_retention_period_only_grows(database: Database) -> None:
    assert retention_years(database) == 3
    with pytest.raises(RetentionError, match="at least 3"):
        set_retention_years(database, 2)
    assert set_retention_years(database, 5) == 5
    with pytest.raises(RetentionError, match="only be raised"):
        set_retention_years(database, 4)
    assert "retention period" in _refused(database, "UPDATE audit_chain SET retention_years = 3")
    assert retention_years(database) == 5
    with database.session() as session:  # five years now: an entry of four years ago is protected
        append_events(session, [event(1)], now=_four_years_ago())
    assert "younger than the retention period" in _refused(database, "DELETE FROM audit_events")


@pytest.fixture
def app_role(postgres_database: str) -> Iterator[tuple[Database, str]]:
    """The migrated database and a login role set up with :func:`grant_statements` (as docs/audit.md says)."""
    owner = Database(postgres_database)
    owner.upgrade()
    role = f"certstore_app_{secrets.token_hex(4)}"
    with owner.engine.begin() as conn:
        conn.exec_driver_sql(f"CREATE ROLE {role} LOGIN")
        for statement in grant_statements(role):
            conn.exec_driver_sql(statement)
    try:
        yield owner, role
    finally:
        with owner.engine.begin() as conn:
            conn.exec_driver_sql(f"DROP OWNED BY {role}")
            conn.exec_driver_sql(f"DROP ROLE {role}")
        owner.dispose()


def test_the_application_role_gets_an_error_on_update_and_delete(app_role: tuple[Database, str]) -> None:
    owner, role = app_role
    app_url = make_url(owner.url).set(username=role)
    app = Database(app_url.render_as_string(hide_password=False))
    try:
        fill(app, 20)  # the application appends, chains, stores subtrees: all it needs
        with app.session() as session:
            append_events(session, [event(99)], key=None, pending_limit=10)
        parsed = make_url(owner.url)
        with psycopg.connect(
            host=parsed.host, port=parsed.port, user=role, dbname=parsed.database, autocommit=True
        ) as raw:
            partition = f"audit_partitions.{partition_name(datetime.now(UTC).strftime('%Y-%m'))}"
            for statement in (
                "UPDATE audit_events SET principal = 'ORG/nobody' WHERE seq = 3",
                "DELETE FROM audit_events WHERE seq = 3",
                "DELETE FROM audit_events",
                "TRUNCATE audit_events",
                f"DELETE FROM {partition}",
                f"UPDATE {partition} SET matter = 'x'",
                "DELETE FROM audit_checkpoints",
                "DELETE FROM audit_tree_nodes",
                "INSERT INTO audit_archives (month, first_seq, end_seq, last_hash, frontier_end, manifest_key, "
                "segments, retain_until, archived_at) VALUES ('2000-01', 0, 21, '', '[]', '', '[]', now(), now())",
            ):
                with pytest.raises(psycopg.errors.InsufficientPrivilege):
                    raw.execute(statement)  # type: ignore[arg-type]
            # the chain head and the pending entries: no UPDATE or DELETE either (it appends through
            # audit_head_store / audit_pending_consume, whose triggers let the head move only over new entries)
            for statement in (
                "UPDATE audit_chain SET retention_years = 1",
                "UPDATE audit_chain SET size = 0",
                "UPDATE audit_pending SET payload = ''",
                "DELETE FROM audit_pending",
            ):
                with pytest.raises(psycopg.errors.InsufficientPrivilege):
                    raw.execute(statement)  # type: ignore[arg-type]
            with pytest.raises(psycopg.errors.IntegrityConstraintViolation, match="shrink"):
                raw.execute("SELECT audit_head_store(0, '\\x00'::bytea, now(), '[]', 0, now())")
        assert verify_log(owner).intact
    finally:
        app.dispose()


def test_partitions_are_made_ahead_and_rows_land_in_their_month(postgres_database: str) -> None:
    with Database(postgres_database) as db:
        db.upgrade()
        now = datetime.now(UTC)
        made = list_partitions(db)
        assert "audit_events_default" in made
        assert partition_name(now.strftime("%Y-%m")) in made
        assert len(made) == 1 + 4  # this month and three ahead, plus DEFAULT
        created = ensure_partitions(db, months_ahead=6)
        assert len(created) == 3
        assert ensure_partitions(db, months_ahead=6) == []
        fill(db, 3)
        with db.engine.connect() as conn:
            where = conn.execute(
                sa.text("SELECT DISTINCT tableoid::regclass::text FROM audit_events")
            ).scalars()
            assert list(where) == [f"audit_partitions.{partition_name(now.strftime('%Y-%m'))}"]
