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
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from certstore.keystore import REPOSITORY_SIGNER_NAME, KeyStore, KeyStoreError
from certstore.store.config import PublicUrlNotConfiguredError, resolve_public_url
from certstore.store.db import Database, database_url, sqlite_path
from certstore.store.private import make_private_dirs
from certstore.store.repository import Repository

# Start-up (``python -m bench cli``): importing this module opens no door to sealing, rendering or the audit
# chain — the issuance (pyhanko, fonts, images), the audit trail, the seal registry, the time-stamp clients and
# the verification use case are imported where they are first used, so that ``certstore verify FILE`` starts
# fast. ``tests/test_app_imports.py`` keeps them out.
if TYPE_CHECKING:
    from certstore.audit import AuditSink
    from certstore.catalogue import CatalogueEntry
    from certstore.crypto.trust import TrustStore
    from certstore.services.certificates import FileMaker
    from certstore.services.issuance import SealingKey
    from certstore.services.seals import SealGate
    from certstore.tsa import TimeStamper
    from certstore.verify import RepositoryCheck

__all__ = ["Application"]

_REPOSITORY_KEY = "\0repository"


def _new_seal_gate() -> SealGate:
    """The seal registry's gate (:class:`~certstore.services.seals.SealGate`), imported when an application is
    made."""
    from certstore.services.seals import SealGate

    return SealGate()


@dataclass
class Application:
    """One per process (see the module docstring). ``audit``: where entries outside a transaction go — the
    API's batched :class:`~certstore.audit.AuditTrail`, or a :class:`~certstore.audit.DirectSink` (default)."""

    repo: Repository
    keystore: KeyStore
    audit: AuditSink | None = None
    #: The base URL printed in QR codes and links (``CERTSTORE_PUBLIC_URL`` or the data directory's
    #: configuration, :mod:`certstore.store.config`); None: not configured — nothing can be sealed.
    public_url: str | None = None
    _keys: dict[str, SealingKey] = field(default_factory=dict, repr=False)
    _trust: TrustStore | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _seal_gate: SealGate = field(default_factory=_new_seal_gate, repr=False)
    #: Where ``CERTSTORE_TSA_URL`` is read (:meth:`time_stamper`): the environment :meth:`open` was given.
    environment: Mapping[str, str] = field(default_factory=dict, repr=False)
    _stamper: tuple[TimeStamper | None] | None = field(default=None, repr=False)
    _stamper_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        if self.audit is None:
            from certstore.audit.chain import DirectSink

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
        does; a PostgreSQL database is upgraded only by ``certstore db upgrade``). The public URL: ``public_url``
        if given, else ``CERTSTORE_PUBLIC_URL``, else the data directory's configuration (``config.json``), else
        none (:meth:`sealing_base_url` then refuses to seal). A missing data directory is created owner-only
        (0700: it holds holder ID numbers in clear)."""
        make_private_dirs(data_dir)
        if upgrade_sqlite:
            url = database_url(data_dir, env)
            if sqlite_path(url) is not None:
                with Database(url) as database:
                    database.upgrade()
        configured, _source = resolve_public_url(data_dir, env, public_url)
        repo = Repository.open(data_dir, env)
        return cls(repo, KeyStore(data_dir / "keys"), public_url=configured, environment=env)

    def now(self) -> datetime:
        return self.repo.now()

    @property
    def trust(self) -> TrustStore:
        """The trust anchors of the key store (loaded once)."""
        if self._trust is None:
            self._trust = self.keystore.trust_store()
        return self._trust

    def sealing_key(self, entry: CatalogueEntry) -> SealingKey:
        """The key a catalogue type is sealed with — its issuer's own seal, or the seal it names if the issuer
        owns it (:func:`~certstore.services.issuance.sealing_key_for_entry`) — loaded once per process; refused
        while the seal is suspended or revoked (:class:`~certstore.services.seals.SealWithdrawnError`)."""
        from certstore.services.issuance import sealing_key_for_entry

        reference = f"{entry.issuer.credit_code}/{entry.seal}"
        with self._lock:
            key = self._keys.get(reference)
            if key is None:
                loaded = sealing_key_for_entry(self.keystore, entry)
                key = self._keys[reference] = replace(loaded, timestamper=self.time_stamper())
        # the seal registry: a suspended or revoked seal seals nothing (SealWithdrawnError; state cached 5 s)
        self._seal_gate.require_usable(self, key.seal, entry.seal)
        return key

    def sealing_base_url(self) -> str:
        """The public URL every file this repository seals prints in its QR code and links. The one gate of
        sealing: every path that seals (the file maker, PDF renditions, copies, the import, the exchange, batch
        jobs) asks here, and without a configured URL it raises :class:`PublicUrlNotConfiguredError` rather than seal
        a loopback address into a file for good. (``certstore serve --demo`` configures ``http://HOST:PORT``.)"""
        if not self.public_url:
            raise PublicUrlNotConfiguredError()
        return self.public_url

    def file_maker(self) -> FileMaker:
        """Seals each catalogue type with the seal it names (keys from :meth:`sealing_key`), its QR code
        pointing at :meth:`sealing_base_url` (raises :class:`PublicUrlNotConfiguredError` when there is none)."""
        from certstore.services.issuance import catalogue_file_maker

        return catalogue_file_maker(self.sealing_key, verify_base_url=self.sealing_base_url())

    def repository_sealing_key(self) -> SealingKey:
        """The repository's own key, which seals copies (副本) and signs audit checkpoints."""
        from certstore.services.copies import repository_sealing_key

        with self._lock:
            key = self._keys.get(_REPOSITORY_KEY)
            if key is None:
                loaded = repository_sealing_key(self.keystore)
                key = self._keys[_REPOSITORY_KEY] = replace(loaded, timestamper=self.time_stamper())
            return key

    def time_stamper(self) -> TimeStamper | None:
        """Where the time-stamp token on every seal comes from (可信时间戳, :func:`certstore.tsa.time_stamper`):
        the external TSA of ``CERTSTORE_TSA_URL``, else the key store's ``tsa`` key, else None (seals without
        tokens) — made once, on first use."""
        from certstore.tsa import time_stamper

        with self._stamper_lock:
            if self._stamper is None:
                self._stamper = (time_stamper(self.keystore, self.environment),)
            return self._stamper[0]

    def repository_check(self) -> RepositoryCheck:
        """The verifier's view of this repository (status at a time, recorded content)."""
        from certstore.services.verification import repository_check

        return repository_check(
            lambda: self.repo, self._repository_code, lambda: self._seal_gate.sync_once(self)
        )

    def _repository_code(self) -> str | None:
        """The repository's credit code, from its signer certificate (None without the repository key). Read
        from the certificate alone: a verification loads no private key and no sealing code."""
        try:
            return self.keystore.signer_entry(REPOSITORY_SIGNER_NAME).certificate.organization_identifier
        except (KeyStoreError, OSError):
            return None

    def close(self) -> None:
        self.repo.db.dispose()
