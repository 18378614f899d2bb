"""Alembic environment for certstore, used by ``Database.upgrade()`` and by the ``alembic`` command alike.

The database, first match wins:

1. a connection put in ``config.attributes["connection"]`` (``Database.upgrade()`` does this);
2. a URL in ``config.attributes["url"]`` (``certstore.store.db.alembic_config(url)``);
3. ``alembic -x url=...``;
4. ``sqlalchemy.url`` in the ini file (certstore's ``alembic.ini`` leaves it unset);
5. ``CERTSTORE_DATABASE_URL``, else the SQLite file in ``CERTSTORE_DATA_DIR`` (default ``.certstore``) — the
   same rule as the ``certstore`` command.

Each run is one transaction (PostgreSQL: under an advisory lock, so two processes upgrading at once take turns;
SQLite: ``BEGIN IMMEDIATE``). On SQLite, foreign keys are switched off while the migration runs, because batch
mode rebuilds tables (copy, drop, rename) and dropping a referenced table would fail; ``PRAGMA
foreign_key_check`` then runs before the commit and any violation aborts the migration.
"""

from __future__ import annotations

import os
from logging.config import fileConfig
from pathlib import Path

from alembic import context
from sqlalchemy import Connection, text
from sqlalchemy.pool import NullPool

from certstore.store.db import database_url, make_engine, normalise_url
from certstore.store.migrations import number_revisions, render_item
from certstore.store.models import Base

MIGRATION_LOCK = 0x63657274  # pg_advisory_xact_lock key ("cert")

config = context.config
if config.config_file_name is not None and config.attributes.get("configure_logger", True):
    fileConfig(config.config_file_name, disable_existing_loggers=False)


def _url() -> str:
    if url := config.attributes.get("url"):
        return normalise_url(url)
    if url := context.get_x_argument(as_dictionary=True).get("url"):
        return normalise_url(url)
    if url := config.get_main_option("sqlalchemy.url"):
        return normalise_url(url)
    return database_url(Path(os.environ.get("CERTSTORE_DATA_DIR") or ".certstore"))


def _options() -> dict[str, object]:
    return {
        "target_metadata": Base.metadata,
        # Batch mode on every backend: ALTERs then work on SQLite (table rebuild) and stay plain ALTER
        # TABLE on PostgreSQL, so one revision serves both whichever database it was generated against.
        "render_as_batch": True,
        "compare_type": True,
        "render_item": render_item,
        "process_revision_directives": number_revisions(context.script),
    }


def run_migrations_offline() -> None:
    """``alembic upgrade --sql``: print the SQL for the URL's dialect instead of running it."""
    context.configure(url=_url(), literal_binds=True, dialect_opts={"paramstyle": "named"}, **_options())
    with context.begin_transaction():
        context.run_migrations()


def _set_sqlite_foreign_keys(connection: Connection, enabled: bool) -> None:
    # A no-op inside a transaction, so it goes straight to the driver connection (in autocommit mode).
    if not connection.in_transaction():
        connection.connection.dbapi_connection.execute(f"PRAGMA foreign_keys = {'ON' if enabled else 'OFF'}")  # type: ignore[union-attr]


def _run(connection: Connection) -> None:
    sqlite = connection.dialect.name == "sqlite"
    if sqlite:
        _set_sqlite_foreign_keys(connection, False)
    try:
        # With SQLAlchemy emitting BEGIN (see certstore.store.db), SQLite DDL is transactional too: the whole
        # upgrade is one transaction on both backends.
        context.configure(connection=connection, transactional_ddl=True, **_options())
        with context.begin_transaction():
            if connection.dialect.name == "postgresql":
                connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
            context.run_migrations()
            if sqlite:
                violations = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                if violations:
                    raise RuntimeError(f"migration leaves foreign keys violated: {violations[:10]}")
    finally:
        if sqlite:
            _set_sqlite_foreign_keys(connection, True)


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = make_engine(_url(), poolclass=NullPool)
    try:
        with engine.connect() as connection:
            _run(connection)
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
