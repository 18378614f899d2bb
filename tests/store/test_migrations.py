"""The Alembic migrations are the schema: on SQLite and a real PostgreSQL they build exactly what
``certstore/store/models.py`` describes, from the ``alembic`` command line and programmatically, revision by
revision, down to nothing and up again."""

from __future__ import annotations

import io
import itertools
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata, produce_migrations, render_python_code
from alembic.operations import Operations
from alembic.runtime.migration import MigrationContext
from alembic.script import Script, ScriptDirectory
from sqlalchemy import Connection, inspect
from sqlalchemy.dialects import postgresql

from certstore.store.db import MIGRATIONS_DIR, Database, alembic_config, head_revision
from certstore.store.migrations import next_revision_id, render_item
from certstore.store.models import Base

REPO = Path(__file__).resolve().parents[2]
TABLES = {
    "catalogue_entries",
    "certificates",
    "certificate_events",
    "organisations",
    "principals",
    "api_tokens",
    "access_grants",
    "audit_events",
    "review_requests",
    "calendar_days",
    "inspections",
    "batch_jobs",
    "batch_items",
    "exchange_cursors",
    "exchange_leases",
    "exchange_applied",
    "exchange_cycles",
    "arrivals",
    "upward_targets",
    "upward_received",
    "principal_credentials",
    "web_sessions",
    "audit_chain",
    "audit_pending",
    "audit_checkpoints",
    "audit_tree_nodes",
    "audit_archives",
    "audit_request_ids",
    "matter_bindings",
    "holders",
    "holder_sessions",
    "holder_login_attempts",
    "matters",
    "holder_authorisations",
    "notification_outbox",
    "holder_contacts",
    "webhook_subscriptions",
    "seals",
    "seal_events",
    "catalogue_assets",
}


def alembic_cli(*args: str, env: dict[str, str] | None = None, ini: Path | None = None) -> str:
    """Run the real ``alembic`` command (``python -m alembic``) in the repository root; returns its output."""
    base_env = {k: v for k, v in os.environ.items() if not k.startswith("CERTSTORE_")}
    result = subprocess.run(
        [sys.executable, "-m", "alembic", *(["-c", str(ini)] if ini else []), *args],
        cwd=REPO,
        env={**base_env, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout + result.stderr


def revisions_in_order() -> list[Script]:
    script = ScriptDirectory.from_config(alembic_config())
    return list(reversed(list(script.walk_revisions("base", "heads"))))


def schema_differences(conn: Connection) -> list[object]:
    """What autogenerate would change to make the database match the models (empty: identical)."""
    context = MigrationContext.configure(conn, opts={"compare_type": True, "compare_server_default": True})
    return list(compare_metadata(context, Base.metadata))


def constraint_names(conn: Connection) -> dict[str, set[str]]:
    """Every named primary key, unique constraint, foreign key and index of certstore's tables."""
    inspector = inspect(conn)
    names: dict[str, set[str]] = {}
    for table in TABLES:
        found = {inspector.get_pk_constraint(table)["name"]}
        found |= {c["name"] for c in inspector.get_unique_constraints(table)}
        found |= {c["name"] for c in inspector.get_foreign_keys(table)}
        found |= {i["name"] for i in inspector.get_indexes(table)}
        names[table] = {n for n in found if n and not n.startswith("sqlite_autoindex")}
    return names


def model_constraint_names() -> dict[str, set[str]]:
    names: dict[str, set[str]] = {}
    for table in Base.metadata.sorted_tables:
        found = {str(c.name) for c in table.constraints if c.name} | {str(i.name) for i in table.indexes}
        names[table.name] = found
    return names


def assert_matches_models(db: Database) -> None:
    with db.engine.connect() as conn:
        assert schema_differences(conn) == []
        assert constraint_names(conn) == model_constraint_names()


# -- the alembic command line --------------------------------------------------------------------------


def test_alembic_upgrade_head_on_an_empty_database(empty_database_url: str) -> None:
    output = alembic_cli("-x", f"url={empty_database_url}", "upgrade", "head")
    assert "Running upgrade  -> 0001_initial" in output
    # The other way to name the database: the environment variable certstore itself reads.
    current = alembic_cli("current", env={"CERTSTORE_DATABASE_URL": empty_database_url})
    assert f"{head_revision()} (head)" in current
    with Database(empty_database_url) as db:
        assert db.check_schema() == head_revision()
        with db.engine.connect() as conn:
            assert set(inspect(conn).get_table_names()) == TABLES | {"alembic_version"}
        assert_matches_models(db)


def test_alembic_default_database_is_the_data_dir(tmp_path: Path) -> None:
    alembic_cli("upgrade", "head", env={"CERTSTORE_DATA_DIR": str(tmp_path / "data")})
    with Database.from_data_dir(tmp_path / "data", env={}) as db:
        assert db.check_schema() == head_revision()


def test_offline_sql_renders_each_backends_types() -> None:
    def sql(url: str) -> str:
        config = alembic_config(url)
        config.output_buffer = io.StringIO()
        command.upgrade(config, "head", sql=True)
        return config.output_buffer.getvalue()

    pg = sql("postgresql://certstore@db.example/certstore")
    assert "id BIGSERIAL NOT NULL" in pg
    assert "certificate_id BIGINT NOT NULL" in pg
    assert "face JSONB NOT NULL" in pg
    assert "created_at TIMESTAMP WITH TIME ZONE NOT NULL" in pg
    assert "holder_id_digest BYTEA NOT NULL" in pg
    assert "CONSTRAINT uq_certificates_issuer_code_certificate_number_version UNIQUE" in pg
    lite = sql("sqlite:///offline.db")
    assert "id INTEGER NOT NULL" in lite
    assert "face JSON NOT NULL" in lite
    assert "created_at DATETIME NOT NULL" in lite


# -- every revision, in order ----------------------------------------------------------------------------


def test_revision_history_is_linear_from_0001_initial() -> None:
    revisions = revisions_in_order()
    assert revisions[0].revision == "0001_initial"
    assert revisions[0].down_revision is None
    for before, after in itertools.pairwise(revisions):
        assert after.down_revision == before.revision, f"{after.revision} does not follow {before.revision}"
    assert revisions[-1].revision == head_revision()
    for revision in revisions:
        assert revision.path is not None
        assert Path(revision.path).name == f"{revision.revision}.py"


def test_upgrade_revision_by_revision_then_downgrade_to_base_and_up_again(empty_database_url: str) -> None:
    revisions = revisions_in_order()
    with Database(empty_database_url) as db:
        for revision in revisions:
            before = db.current_revision()
            assert db.upgrade(revision.revision) == (before, revision.revision)
        assert_matches_models(db)

        for revision in reversed(revisions):
            with db.engine.connect() as conn:
                command.downgrade(alembic_config(connection=conn), revision.down_revision or "base")
            assert db.current_revision() == revision.down_revision
        with db.engine.connect() as conn:
            assert set(inspect(conn).get_table_names()) <= {"alembic_version"}

        assert db.upgrade() == (None, head_revision())
        assert_matches_models(db)


def test_migrated_schema_matches_the_models(database: Database) -> None:
    assert_matches_models(database)


def test_a_failed_migration_leaves_nothing_behind(empty_database_url: str, tmp_path: Path) -> None:
    """The upgrade is one transaction on both backends (SQLite too): a revision failing half-way leaves the
    database as it was."""
    migrations = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS_DIR, migrations, ignore=shutil.ignore_patterns("__pycache__"))
    (migrations / "versions" / "9999_broken.py").write_text(
        '"""broken"""\n\nimport sqlalchemy as sa\nfrom alembic import op\n\n'
        f'revision = "9999_broken"\ndown_revision = "{head_revision()}"\n\n\n'
        "def upgrade() -> None:\n"
        '    op.create_table("half_done", sa.Column("id", sa.Integer(), primary_key=True))\n'
        '    op.execute("SELECT * FROM no_such_table")\n'
    )
    with Database(empty_database_url) as db:
        with db.engine.connect() as conn:
            config = alembic_config(connection=conn)
            config.set_main_option("script_location", str(migrations))
            with pytest.raises(sa.exc.DBAPIError):
                command.upgrade(config, "head")
        assert db.current_revision() is None
        with db.engine.connect() as conn:
            assert inspect(conn).get_table_names() == []


# -- writing future revisions --------------------------------------------------------------------------


def test_revisions_do_not_import_the_application() -> None:
    for revision in revisions_in_order():
        source = Path(str(revision.path)).read_text(encoding="utf-8")
        assert not re.search(r"^\s*(from|import)\s+certstore\b", source, re.MULTILINE), revision.path


def test_autogenerated_code_is_portable_and_complete(tmp_path: Path) -> None:
    """What autogenerate would write for the whole models (UTCDateTime, the JSON/JSONB and id variants) has
    no certstore reference, and running it builds a schema identical to the models'."""
    with Database(f"sqlite:///{tmp_path / 'auto.db'}") as db, db.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"render_item": render_item, "render_as_batch": True})
        code = render_python_code(
            produce_migrations(context, Base.metadata).upgrade_ops,
            render_item=render_item,
            render_as_batch=True,
        )
        assert "certstore" not in code
        assert "sa.DateTime(timezone=True)" in code
        assert "sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql')" in code
        assert "sa.BigInteger().with_variant(sa.Integer(), 'sqlite')" in code

        source = "def upgrade():\n" + "\n".join(f"    {line}" for line in code.splitlines())
        namespace: dict[str, object] = {"sa": sa, "postgresql": postgresql, "op": Operations(context)}
        exec(compile(source, "<autogenerated>", "exec"), namespace)  # the exact text a revision would hold
        namespace["upgrade"]()  # type: ignore[operator]
        conn.commit()
        assert schema_differences(conn) == []


def test_autogenerate_from_the_command_line(tmp_path: Path) -> None:
    """``alembic revision --autogenerate`` against a database at head writes nothing; after a change it
    writes ``<next number>_<slug>.py``, rendered in batch mode and ruff-formatted, that passes ``ruff check``."""
    migrations = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS_DIR, migrations, ignore=shutil.ignore_patterns("__pycache__"))
    ini = tmp_path / "alembic.ini"
    ini.write_text(
        (REPO / "alembic.ini")
        .read_text()
        .replace("%(here)s/certstore/store/migrations", str(migrations))
        .replace("prepend_sys_path = .", f"prepend_sys_path = {REPO}")
    )
    url = f"sqlite:///{tmp_path / 'scratch.db'}"
    with Database(url) as db:
        db.upgrade()
        output = alembic_cli("-x", f"url={url}", "revision", "--autogenerate", "-m", "nothing", ini=ini)
        assert "no revision written" in output
        existing = sorted(p.name for p in (migrations / "versions").glob("[0-9]*.py"))
        assert existing == sorted(p.name for p in (MIGRATIONS_DIR / "versions").glob("[0-9]*.py"))
        number = f"{len(existing) + 1:04d}"

        with db.engine.begin() as conn:
            conn.exec_driver_sql("DROP INDEX ix_certificates_status")
        alembic_cli("-x", f"url={url}", "revision", "--autogenerate", "-m", "Restore status index!", ini=ini)
        written = migrations / "versions" / f"{number}_restore_status_index.py"
        source = written.read_text()
        assert f'revision: str = "{number}_restore_status_index"' in source
        assert f'down_revision: str | Sequence[str] | None = "{head_revision()}"' in source
        assert 'batch_op.create_index(batch_op.f("ix_certificates_status")' in source
        assert "certstore" not in source
    lint = subprocess.run(
        [
            sys.executable,
            "-m",
            "ruff",
            "check",
            "--no-cache",
            "--config",
            str(REPO / "pyproject.toml"),
            str(written),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert lint.returncode == 0, lint.stdout + lint.stderr


@pytest.mark.parametrize(
    ("existing", "message", "expected"),
    [
        (1, "add holder index", "0002_add_holder_index"),
        (1, "  Add: 持证主体 index!! ", "0002_add_index"),
        (9, None, "0010_revision"),
        (1, "a very long message that goes on and on", "0002_a_very_long_message_that_go"),
    ],
)
def test_next_revision_id(existing: int, message: str | None, expected: str) -> None:
    class Scripts:
        def walk_revisions(self) -> list[int]:
            return list(range(existing))

    revision_id = next_revision_id(Scripts(), message)  # type: ignore[arg-type]
    assert revision_id == expected
    assert len(revision_id) <= 32
