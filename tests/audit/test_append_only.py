"""The audit trail is append-only on PostgreSQL for every role the application and its operators use (issue 17).

Three roles, as docs/audit.md and README.md set them up: a superuser (installs the event triggers, once), the
**owner** (a plain role that runs ``certstore db upgrade`` and owns the tables) and the **application** role
(``certstore_app``, granted what ``certstore audit grants`` prints). Each statement an attacker used — UPDATE or
DELETE of pending entries, moving the chain head, locking it, TRUNCATE of a partition, DISABLE TRIGGER,
DETACH/DROP of a partition, replacing a guard function — is refused to both; mutations committed while
another session holds (or tries to hold) the head lock are all chained, with the fields they were written with.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest
from click.testing import CliRunner
from sqlalchemy import select
from sqlalchemy.engine import make_url

from certstore.audit import append_in_transaction, chain_pending, verify_log
from certstore.audit.chain import append_events
from certstore.audit.partitions import (
    check_role,
    ensure_partitions,
    grant_statements,
    partition_name,
    superuser_statements,
)
from certstore.store.db import Database
from certstore.store.models import AuditEventRow, AuditPendingRow
from devservers.postgres import PostgresServer
from tests.audit.conftest import event

pytestmark = pytest.mark.postgres

#: SQLSTATEs of a refusal: no privilege / must be owner (42501), a guard trigger (23000).
REFUSED = {"42501", "23000"}


@dataclass
class Roles:
    superuser: Database
    owner: Database
    app: Database
    owner_name: str
    app_name: str

    def raw(self, who: str) -> psycopg.Connection[tuple[object, ...]]:
        db = self.owner if who == "owner" else self.app
        url = make_url(db.url)
        return psycopg.connect(
            host=url.host, port=url.port, user=url.username, dbname=url.database, autocommit=True
        )


@pytest.fixture(scope="module")
def roles(postgres_server: PostgresServer) -> Iterator[Roles]:
    """A database owned by a plain owner role, migrated by it; the event triggers installed by the superuser
    (what `certstore audit grants` prints for one); the application role granted as documented."""
    tag = secrets.token_hex(3)
    owner_name, app_name = f"certstore_owner_{tag}", f"certstore_app_{tag}"
    name = postgres_server.create_database()
    superuser = Database(postgres_server.url(name))
    with superuser.engine.begin() as conn:
        conn.exec_driver_sql(f"CREATE ROLE {owner_name} LOGIN")
        conn.exec_driver_sql(f"CREATE ROLE {app_name} LOGIN")
        conn.exec_driver_sql(f'ALTER DATABASE "{name}" OWNER TO {owner_name}')
    base = make_url(postgres_server.url(name))
    owner = Database(base.set(username=owner_name).render_as_string(hide_password=False))
    app = Database(base.set(username=app_name).render_as_string(hide_password=False))
    try:
        owner.upgrade()  # as a plain role: everything but the event triggers
        as_owner, as_superuser = _printed_grants(app_name)
        with superuser.engine.begin() as conn:
            for statement in as_superuser:
                conn.exec_driver_sql(statement)
        with owner.engine.begin() as conn:
            for statement in as_owner:
                conn.exec_driver_sql(statement)
        yield Roles(superuser, owner, app, owner_name, app_name)
    finally:
        for db in (app, owner, superuser):
            db.dispose()
        postgres_server.drop_database(name)
        with psycopg.connect(
            host=base.host, port=base.port, user=base.username, dbname="postgres", autocommit=True
        ) as admin:
            for role in (app_name, owner_name):
                admin.execute(f"DROP ROLE IF EXISTS {role}")  # type: ignore[arg-type]


def _printed_grants(role: str) -> tuple[list[str], list[str]]:
    """What `certstore audit grants --role ROLE` prints: the owner's statements, then the superuser's."""
    from certstore.cli import cli

    printed = CliRunner().invoke(cli, ["audit", "grants", "--role", role], catch_exceptions=False)
    assert printed.exit_code == 0, printed.output
    owner_part, superuser_part = printed.output.split("-- as a superuser")

    def statements(text: str) -> list[str]:
        lines = [
            line
            for line in text.splitlines()
            if not line.lstrip().startswith("--") and "superuser" not in line
        ]
        return [s.strip() for s in " ".join(lines).split(";") if s.strip()]

    as_owner, as_superuser = statements(owner_part), statements(superuser_part.split("\n", 1)[1])
    assert as_owner == grant_statements(role) and as_superuser == superuser_statements()
    return as_owner, as_superuser


def _refused(connection: psycopg.Connection[tuple[object, ...]], statement: str) -> str:
    with pytest.raises(psycopg.Error) as caught:
        connection.execute(statement)  # type: ignore[arg-type]
    assert caught.value.sqlstate in REFUSED, f"{statement}: {caught.value.sqlstate} {caught.value}"
    return str(caught.value)


def _pending(db: Database, principal: str) -> str:
    """A mutation's entry written in its own (committed) transaction; returns its event id."""
    written = event(1, principal=principal).normalised()
    with db.session() as session:
        append_in_transaction(session, written)
    return written.event_id


def test_neither_the_application_nor_the_owner_can_edit_the_trail(roles: Roles) -> None:
    """Every statement of the issue, as the application role and as the owner: refused, and nothing changed."""
    with roles.app.session() as session:  # the application appends (and chains) as it always did
        append_events(session, [event(i) for i in range(5)])
    waiting = _pending(roles.app, "ORG/real-clerk")
    partition = f"audit_partitions.{partition_name(datetime.now(UTC).strftime('%Y-%m'))}"
    statements = [
        "UPDATE audit_pending SET payload = replace(payload, 'real-clerk', 'forged')",
        "DELETE FROM audit_pending",
        "UPDATE audit_chain SET head_hash = '\\x00'::bytea",
        "UPDATE audit_chain SET size = size + 1",
        "UPDATE audit_events SET principal = 'ORG/nobody'",
        "DELETE FROM audit_events",
        f"TRUNCATE {partition}",
        "TRUNCATE audit_pending",
        "TRUNCATE audit_chain",
        "TRUNCATE audit_checkpoints",
        "TRUNCATE audit_events",
        "ALTER TABLE audit_pending DISABLE TRIGGER audit_pending_guard",
        "ALTER TABLE audit_events DISABLE TRIGGER audit_events_retain",
        f"ALTER TABLE {partition} DISABLE TRIGGER ALL",
        "ALTER TABLE audit_chain DISABLE TRIGGER USER",
        f"ALTER TABLE audit_events DETACH PARTITION {partition}",
        f"DROP TABLE {partition}",
        "DROP TABLE audit_pending",
        "DROP TRIGGER audit_pending_guard ON audit_pending",
        f"DROP TRIGGER audit_partition_no_truncate ON {partition}",
        "CREATE OR REPLACE FUNCTION audit_pending_guard() RETURNS trigger LANGUAGE plpgsql "
        "AS $$ BEGIN RETURN OLD; END $$",
        "ALTER FUNCTION audit_chain_guard() RENAME TO audit_chain_guard_old",
        f"ALTER TABLE {partition} RENAME TO audit_events_2001_01",
        "SELECT audit_head_store(0, '\\x00'::bytea, now(), '[]', 0, now())",
        "SELECT audit_pending_consume(ARRAY(SELECT id FROM audit_pending))",
    ]
    for who in ("app", "owner"):
        with roles.raw(who) as connection:
            for statement in statements:
                _refused(connection, statement)
    with roles.raw("app") as connection:  # a claimed client request id stays claimed
        for statement in ("DELETE FROM audit_request_ids", "UPDATE audit_request_ids SET request_id = 'x'"):
            _refused(connection, statement)
    for statement in ("SELECT * FROM audit_chain FOR UPDATE", "LOCK TABLE audit_chain IN EXCLUSIVE MODE"):
        with roles.raw("app") as connection:  # the application cannot even lock the head
            connection.autocommit = False
            assert "permission denied" in _refused(connection, statement)
    made = ensure_partitions(roles.owner, months_ahead=5)  # the monthly cron, as the owner
    assert made
    with roles.owner.connect(readonly=True) as conn:  # the event trigger guarded the new partitions at once
        guarded = conn.exec_driver_sql(
            "SELECT count(*) FROM pg_trigger WHERE tgname = 'audit_partition_no_truncate' "
            f"AND tgrelid::regclass::text IN ({', '.join(repr('audit_partitions.' + m) for m in made)})"
        ).scalar_one()
        assert guarded == len(made)
    with roles.owner.session(readonly=True) as session:
        payload = session.scalars(select(AuditPendingRow.payload)).one()
        assert "real-clerk" in payload and waiting in payload
    assert chain_pending(roles.app) == 1  # the waiting entry is chained as written
    with roles.owner.session(readonly=True) as session:
        chained = session.scalars(select(AuditEventRow).where(AuditEventRow.event_id == waiting)).one()
        assert chained.principal == "ORG/real-clerk"
    result = verify_log(roles.owner)
    assert result.intact and result.pending == 0, result.findings


def test_four_mutations_are_chained_while_another_session_holds_the_head(roles: Roles) -> None:
    """The issue's attack: a session holds the chain head's lock while 4 mutations commit, then tries to
    rewrite one pending entry and delete two. The application role cannot take the lock at all; the owner can
    hold it but not touch the pending entries; once it lets go, all 4 entries are chained as written."""
    with roles.raw("app") as connection:
        connection.autocommit = False
        _refused(connection, "SELECT * FROM audit_chain FOR UPDATE")
    holder = roles.raw("owner")
    holder.autocommit = False
    holder.execute("SELECT * FROM audit_chain WHERE id = 1 FOR UPDATE")
    ids: list[str] = []
    lock = threading.Lock()

    def mutate(i: int) -> None:
        event_id = _pending(roles.app, f"ORG/clerk{i}")
        with lock:
            ids.append(event_id)

    workers = [threading.Thread(target=mutate, args=(i,)) for i in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(10)
    assert len(ids) == 4  # the mutations committed although the head is locked: appending needs no head lock
    chained: list[int] = []
    chainer = threading.Thread(target=lambda: chained.append(chain_pending(roles.app)))
    chainer.start()
    time.sleep(0.3)
    assert chainer.is_alive()  # the chainer waits for the head...
    holder.execute("SAVEPOINT attack")
    for statement in (
        "UPDATE audit_pending SET payload = replace(payload, 'clerk1', 'forged')",
        "DELETE FROM audit_pending WHERE payload LIKE '%clerk2%' OR payload LIKE '%clerk3%'",
    ):
        with pytest.raises(psycopg.errors.IntegrityConstraintViolation):
            holder.execute(statement)  # type: ignore[arg-type]
        holder.execute("ROLLBACK TO SAVEPOINT attack")
    holder.rollback()  # ...until the holder lets go
    holder.close()
    chainer.join(10)
    assert chained == [4]
    with roles.owner.session(readonly=True) as session:
        rows = session.scalars(select(AuditEventRow).where(AuditEventRow.event_id.in_(ids))).all()
        assert sorted(r.principal or "" for r in rows) == [f"ORG/clerk{i}" for i in range(4)]
        assert session.scalars(select(AuditPendingRow.id)).first() is None
    assert verify_log(roles.owner).intact


def test_the_role_check_of_serve(roles: Roles) -> None:
    """`check_role` tells the owner (and a superuser) from the application role — what `certstore serve`
    refuses to run as."""
    owner, app, superuser = check_role(roles.owner), check_role(roles.app), check_role(roles.superuser)
    assert owner is not None and owner.owns_audit_tables and owner.event_triggers
    assert app is not None and not app.owns_audit_tables
    assert superuser is not None and superuser.owns_audit_tables and superuser.superuser


def test_serve_refuses_to_start_as_the_owner(
    roles: Roles, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`certstore serve` with the owner's URL exits with an error before serving; with ``--allow-owner`` it
    warns loudly and serves; with the application role's URL it serves without a word about it."""
    env = {"CERTSTORE_DATABASE_URL": roles.owner.url, "CERTSTORE_PUBLIC_URL": "https://certs.example"}
    run = subprocess.run(
        [
            str(Path(sys.executable).parent / "certstore"),
            "--data-dir",
            str(tmp_path / "data"),
            "serve",
            "--port",
            "1",
        ],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode != 0
    assert "owner of the audit tables" in run.stderr and "--allow-owner" in run.stderr

    from certstore.cli import cli
    from certstore.cli import serve as serve_module

    served: list[tuple[object, ...]] = []
    monkeypatch.setattr(serve_module, "run_uvicorn", lambda *a, **k: served.append(a))
    for url, allow in ((roles.owner.url, True), (roles.app.url, False)):
        monkeypatch.setenv("CERTSTORE_DATABASE_URL", url)
        monkeypatch.setenv("CERTSTORE_PUBLIC_URL", "https://certs.example")
        args = ["--data-dir", str(tmp_path / "data"), "serve", *(["--allow-owner"] if allow else [])]
        result = CliRunner().invoke(cli, args, catch_exceptions=False)
        assert result.exit_code == 0, result.output
        assert ("WARNING: serving as" in result.output) is allow
    assert len(served) == 2


def test_the_printed_superuser_statements_are_what_the_migration_installs() -> None:
    """Revision 0010 keeps its own copy of the event-trigger statements (a migration never imports application
    code, so that it stays what it was when it ran); `certstore audit grants` prints
    :func:`certstore.audit.partitions.superuser_statements`. The two must not drift apart."""
    import importlib.util

    from certstore.store.db import MIGRATIONS_DIR

    path = MIGRATIONS_DIR / "versions" / "0010_audit_append_only.py"
    spec = importlib.util.spec_from_file_location("migration_0010", path)
    assert spec is not None and spec.loader is not None
    migration = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(migration)
    assert migration.superuser_statements("public") == superuser_statements()
    assert migration.superuser_statements("audit_x") == superuser_statements(schema="audit_x")
