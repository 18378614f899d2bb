"""The data directory every benchmark starts from: dev keys, the database at the newest schema, the shipped
catalogue — what ``certstore keys init`` and a first ``certstore serve`` leave behind."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from certstore.keystore import KeyStore
from certstore.services.catalogue import load_shipped
from certstore.services.keys import init_dev_keys
from certstore.store.db import Database, database_url
from certstore.store.repository import Repository

__all__ = ["prepared_data_dir"]


def prepared_data_dir(data_dir: Path, env: Mapping[str, str]) -> tuple[Repository, KeyStore]:
    """Set up ``data_dir`` (database and blob store as ``env`` configures them) and open its repository."""
    store = KeyStore(data_dir / "keys")
    init_dev_keys(store)
    with Database(database_url(data_dir, env)) as database:
        database.upgrade()
    repo = Repository.open(data_dir, env)
    load_shipped(repo)
    return repo, store
