"""The data directory every benchmark starts from — dev keys, the database at the newest schema, the shipped
catalogue: what ``certstore keys init`` and a first ``certstore serve`` leave behind — opened as the one
application object (:class:`certstore.app.Application`) every entry point builds, and the call a benchmark makes
its use cases with."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from certstore.app import Application
from certstore.keystore import KeyStore
from certstore.services.calls import Call, Via
from certstore.services.catalogue import load_shipped
from certstore.services.keys import init_dev_keys
from certstore.store.db import Database, database_url

__all__ = ["bench_call", "prepared_data_dir"]


def prepared_data_dir(data_dir: Path, env: Mapping[str, str]) -> Application:
    """Set up ``data_dir`` (database and blob store as ``env`` configures them, SQLite or PostgreSQL: migrated
    here either way) and open its application; the caller closes it (:meth:`Application.close`)."""
    init_dev_keys(KeyStore(data_dir / "keys"))
    with Database(database_url(data_dir, env)) as database:
        database.upgrade()
    app = Application.open(data_dir, env)
    load_shipped(app.repo)
    return app


def bench_call(benchmark: str, via: Via = Via.CLI) -> Call:
    """The call a benchmark's use cases run under: the operator of this host, through the command line (or the
    entry point ``via`` the benchmark drives, e.g. the import), the benchmark as its source — authorised, audited
    and recorded like ``certstore issue`` or ``certstore import``."""
    return Call.operator(source=f"bench:{benchmark}", via=via)
