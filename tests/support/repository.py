"""Repositories for tests: on a test database with a file blob store under a scratch directory, a random holder
key and the shipped catalogue; or a whole data directory (keys, migrated database, catalogue) as the CLI and the
server open it."""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from certstore.services.catalogue import load_shipped
from certstore.store.blobs import FileBlobStore
from certstore.store.db import Database
from certstore.store.repository import Repository


def make_repo(database: Database, root: Path, clock: Callable[[], datetime] | None = None) -> Repository:
    """Blobs under ``root / "blobs"``; ``clock`` replaces the real time when given."""
    repo = Repository(db=database, blobs=FileBlobStore(root / "blobs"), holder_key=os.urandom(32))
    if clock is not None:
        repo.clock = clock
    load_shipped(repo)
    return repo
