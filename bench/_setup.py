"""The data directory every benchmark starts from — dev keys and a public URL, the database at the newest schema,
the shipped catalogue: what ``certstore keys init --public-url`` and a first ``certstore serve`` leave behind — opened as the one
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
from certstore.store.config import save_public_url
from certstore.store.db import Database, database_url

__all__ = ["BENCH_PUBLIC_URL", "bench_call", "prepared_data_dir"]

#: The public URL the benchmarks' files are sealed with (``CERTSTORE_PUBLIC_URL`` in ``env`` overrides it).
BENCH_PUBLIC_URL = "https://certstore.bench.example"


def prepared_data_dir(data_dir: Path, env: Mapping[str, str]) -> Application:
    """Set up ``data_dir`` (database and blob store as ``env`` configures them, SQLite or PostgreSQL: migrated
    here either way) and open its application; the caller closes it (:meth:`Application.close`)."""
    init_dev_keys(KeyStore(data_dir / "keys"))
    save_public_url(data_dir, BENCH_PUBLIC_URL)
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
