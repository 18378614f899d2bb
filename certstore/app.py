"""The application object: what every entry point constructs once per process and hands to the use cases.

The API (``api.app``), the pages, the command line, the exchange worker, the batch worker, the import and the
benchmarks all build an :class:`Application` — the repository (database, blob store, holder-index key, clock), the
key store, the trust anchors, the sealing keys of the catalogue's seals, the audit sink and the public URL printed
in QR codes — and call ``certstore.services`` with it and a :class:`~certstore.services.calls.Call`. Every member
is thread-safe; keys and trust anchors are loaded once, on first use.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from certstore.audit import AuditSink, DirectSink
from certstore.catalogue import CatalogueEntry
from certstore.crypto.trust import TrustStore
from certstore.keystore import KeyStore
from certstore.services.certificates import FileMaker
from certstore.services.issuance import (
    DEFAULT_VERIFY_BASE_URL,
    SealingKey,
    catalogue_file_maker,
    sealing_key_for_seal,
)
from certstore.services.verification import repository_check
from certstore.store.db import Database, database_url, sqlite_path
from certstore.store.repository import Repository
from certstore.verify import RepositoryCheck

__all__ = ["Application"]

_REPOSITORY_KEY = "\0repository"


@dataclass
class Application:
    """One per process (see the module docstring). ``audit``: where entries outside a transaction go — the
    API's batched :class:`~certstore.audit.AuditTrail`, or a :class:`~certstore.audit.DirectSink` (default)."""

    repo: Repository
    keystore: KeyStore
    audit: AuditSink | None = None
    public_url: str = DEFAULT_VERIFY_BASE_URL
    _keys: dict[str, SealingKey] = field(default_factory=dict, repr=False)
    _trust: TrustStore | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        if self.audit is None:
            self.audit = DirectSink(self.repo.db)

    @classmethod
    def open(
        cls,
        data_dir: Path,
        env: Mapping[str, str] = os.environ,
        *,
        upgrade_sqlite: bool = False,
        public_url: str | None = None,
    ) -> Application:
        """The application of a data directory (database, blobs and keys as ``CERTSTORE_*`` configure them).
        ``upgrade_sqlite``: migrate an embedded SQLite database to the newest schema first (the command line
        does; a PostgreSQL database is upgraded only by ``certstore db upgrade``)."""
        if upgrade_sqlite:
            url = database_url(data_dir, env)
            if sqlite_path(url) is not None:
                with Database(url) as database:
                    database.upgrade()
        repo = Repository.open(data_dir, env)
        return cls(
            repo,
            KeyStore(data_dir / "keys"),
            public_url=public_url or env.get("CERTSTORE_PUBLIC_URL") or DEFAULT_VERIFY_BASE_URL,
        )

    def now(self) -> datetime:
        return self.repo.now()

    @property
    def trust(self) -> TrustStore:
        """The trust anchors of the key store (loaded once)."""
        if self._trust is None:
            self._trust = self.keystore.trust_store()
        return self._trust

    def sealing_key(self, entry: CatalogueEntry) -> SealingKey:
        """The key of the seal the catalogue type names (``seal``), loaded once per process."""
        with self._lock:
            key = self._keys.get(entry.seal)
            if key is None:
                key = self._keys[entry.seal] = sealing_key_for_seal(self.keystore, entry.seal)
            return key

    def file_maker(self) -> FileMaker:
        """Seals each catalogue type with the seal it names (keys from :meth:`sealing_key`)."""
        return catalogue_file_maker(self.sealing_key, verify_base_url=self.public_url)

    def repository_sealing_key(self) -> SealingKey:
        """The repository's own key, which seals copies (副本) and signs audit checkpoints."""
        from certstore.services.copies import repository_sealing_key

        with self._lock:
            key = self._keys.get(_REPOSITORY_KEY)
            if key is None:
                key = self._keys[_REPOSITORY_KEY] = repository_sealing_key(self.keystore)
            return key

    def repository_check(self) -> RepositoryCheck:
        """The verifier's view of this repository (status at a time, recorded content)."""
        return repository_check(lambda: self.repo)

    def close(self) -> None:
        self.repo.db.dispose()
