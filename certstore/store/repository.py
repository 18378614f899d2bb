"""The repository handle every use case receives: database, blob store, holder-index and serial keys, clock."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from certstore.keystore import KeyStore
from certstore.store.blobs import BlobStore, blob_store_from_url
from certstore.store.db import Database, database_url

__all__ = ["Repository"]


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Repository:
    """Everything a service needs, built once per process (API worker, CLI command, exchange worker)."""

    db: Database
    blobs: BlobStore
    holder_key: bytes  # HMAC-SM3 key for holder-ID digests (the index and the form logs show)
    clock: Callable[[], datetime] = field(default=_utc_now)
    #: HMAC-SM3 key of the certificate serials (:func:`certstore.identifiers.serial_for`). :meth:`open` loads the
    #: repository's key; a repository built directly (tests, schema export) gets a fresh random one.
    serial_key: bytes = field(default_factory=lambda: os.urandom(32))

    @classmethod
    def open(cls, data_dir: Path, env: Mapping[str, str] = os.environ) -> Repository:
        """From the data directory and ``CERTSTORE_*`` settings; the database must be at the latest revision."""
        db = Database(database_url(data_dir, env))
        db.check_schema()
        blobs = blob_store_from_url(env.get("CERTSTORE_BLOB_URL"), data_dir=data_dir, env=env)
        keys = KeyStore(data_dir / "keys")
        return cls(db=db, blobs=blobs, holder_key=keys.holder_index_key(env), serial_key=keys.serial_key(env))

    def now(self) -> datetime:
        return self.clock()
