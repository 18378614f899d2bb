"""Fixtures shared by the whole suite: the real servers and a database on each backend.

- ``postgres_server`` / ``postgres_database``: a throwaway PostgreSQL (``tests/servers/postgres.py``).
- ``s3_server``: a real S3 server (``tests/servers/seaweedfs.py``), when that module is present.
- ``database_backend``: ``"sqlite"`` or ``"postgresql"`` — a test using any database fixture below runs once
  per backend (ids ``[sqlite]`` / ``[postgresql]``).
- ``empty_database_url``: a fresh database with no tables; ``database_url``: a fresh database at head — a copy of
  the one the migrations made once per session and backend (``migrated_templates``); ``database``: a
  :class:`certstore.store.db.Database` on it.

Tests on PostgreSQL carry the ``postgres`` marker: ``pytest -m "not postgres"`` runs the SQLite half only.

**Scratch space in memory.** Unless ``TMPDIR`` is set, the suite's scratch files — every ``tmp_path``, the
PostgreSQL cluster, SeaweedFS, Chromium's profiles and the temporary files of the processes the tests start —
go to the machine's RAM file system (:data:`MEMORY_TMPDIR`, when it is a writable directory with at least
:data:`MEMORY_TMPDIR_MIN_FREE` bytes free): on disk, copying the migrated PostgreSQL template for one test cost
~0.45 s of kernel time on this project's VMs, in memory ~20 ms; SQLite's and the blob store's ``fsync`` calls
likewise. ``tmp_path_retention_policy = "failed"`` (``pyproject.toml``) removes a passing test's ``tmp_path``
after it, so the suite holds little memory and a green run leaves nothing behind; a failing test's directory is
kept for a look. ``TMPDIR=/somewhere pytest`` overrides the choice.

Sealing needs a public URL (``certstore.store.config``): the whole session runs with ``CERTSTORE_PUBLIC_URL`` set
to :data:`tests.support.issuing.PUBLIC_URL` (subprocesses inherit it), as a deployment sets it once; tests of
the refusal without one remove it (``monkeypatch.delenv``).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from certstore.store.config import PUBLIC_URL_ENV
from certstore.store.db import Database, sqlite_path
from certstore.store.db import database_url as sqlite_database_url
from certstore.store.private import create_private_file, make_private_dirs
from tests.servers.postgres import postgres_database, postgres_server  # noqa: F401
from tests.servers.seaweedfs import s3_server  # noqa: F401
from tests.support import screenshots
from tests.support.issuing import PUBLIC_URL

POSTGRES_FIXTURES = frozenset({"postgres_server", "postgres_database"})
MEMORY_TMPDIR = Path("/dev/shm")
MEMORY_TMPDIR_MIN_FREE = 4 << 30


def _memory_tmpdir() -> Path | None:
    """:data:`MEMORY_TMPDIR` when ``TMPDIR`` is unset and it is a writable directory with room (module docstring)."""
    if (
        os.environ.get("TMPDIR")
        or not MEMORY_TMPDIR.is_dir()
        or not os.access(MEMORY_TMPDIR, os.W_OK | os.X_OK)
    ):
        return None
    stat = os.statvfs(MEMORY_TMPDIR)
    return MEMORY_TMPDIR if stat.f_bavail * stat.f_frsize >= MEMORY_TMPDIR_MIN_FREE else None


def pytest_configure(config: pytest.Config) -> None:
    """Scratch files in memory (module docstring): before any temporary directory of the session is made. In the
    controlling process of a parallel run, the collector of the workers' screenshots."""
    scratch = _memory_tmpdir()
    if scratch is not None:
        os.environ["TMPDIR"] = str(scratch)  # the processes the tests start
        tempfile.tempdir = str(scratch)  # this one (pytest's tmp_path root included)
    if config.pluginmanager.hasplugin("xdist") and not hasattr(config, "workerinput"):
        config.pluginmanager.register(screenshots.WorkerShots(), "certstore-worker-screenshots")


def pytest_sessionfinish(session: pytest.Session) -> None:
    """A worker of a parallel run hands the paths of its screenshots to the controlling process."""
    output = getattr(session.config, "workeroutput", None)
    if output is not None:
        output[screenshots.WORKER_KEY] = [str(path) for path in screenshots.taken(session.config)]


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    """The page tests' screenshots (``tests/support/screenshots.py``), by name."""
    shots = sorted(screenshots.taken(config), key=lambda path: path.name)
    if not shots:
        return
    terminalreporter.section("page screenshots")
    terminalreporter.write_line(f"{len(shots)} screenshots in {shots[0].parent}")
    for path in shots:
        terminalreporter.write_line(f"  {path.name}")


@pytest.fixture(autouse=True, scope="session")
def public_url() -> Iterator[str]:
    """The public URL every test seals with (module docstring)."""
    previous = os.environ.get(PUBLIC_URL_ENV)
    os.environ[PUBLIC_URL_ENV] = PUBLIC_URL
    try:
        yield PUBLIC_URL
    finally:
        if previous is None:
            os.environ.pop(PUBLIC_URL_ENV, None)
        else:
            os.environ[PUBLIC_URL_ENV] = previous


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that uses the PostgreSQL server ``postgres`` (the backend param is marked already)."""
    for item in items:
        if POSTGRES_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.postgres)


@pytest.fixture(
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
    ]
)
def database_backend(request: pytest.FixtureRequest) -> str:
    """The backend under test; parametrises every test that uses a database."""
    return str(request.param)


@pytest.fixture
def empty_database_url(database_backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """A new database without any tables: a SQLite file under ``tmp_path`` or a fresh PostgreSQL database."""
    if database_backend == "sqlite":
        return sqlite_database_url(tmp_path / "data", env={})
    return str(request.getfixturevalue("postgres_database"))


@pytest.fixture(scope="session")
def migrated_templates(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Per backend, a database the migrations brought to head once per session (a SQLite file; the name of a
    PostgreSQL database): :func:`database_url` copies it instead of running every migration for every test."""
    return {}


def _template(backend: str, templates: dict[str, str], request: pytest.FixtureRequest) -> str:
    if backend not in templates:
        if backend == "sqlite":
            directory = request.getfixturevalue("tmp_path_factory").mktemp("migrated-template")
            url = sqlite_database_url(directory / "data", env={})
            with Database(url) as database:
                database.upgrade()
            templates[backend] = str(sqlite_path(url))
        else:
            server = request.getfixturevalue("postgres_server")
            name = server.create_database()
            with Database(server.url(name)) as database:
                database.upgrade()
            templates[backend] = name
    return templates[backend]


@pytest.fixture
def database_url(
    database_backend: str,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    migrated_templates: dict[str, str],
) -> Iterator[str]:
    """A new database at the head revision: a copy of the session's database that the migrations made (as in
    production), so a test pays for a file copy or ``CREATE DATABASE … TEMPLATE`` instead of every migration."""
    template = _template(database_backend, migrated_templates, request)
    if database_backend == "sqlite":
        url = sqlite_database_url(tmp_path / "data", env={})
        path = sqlite_path(url)
        assert path is not None
        make_private_dirs(path.parent)
        create_private_file(path)
        with (
            contextlib.closing(sqlite3.connect(template)) as source,
            contextlib.closing(sqlite3.connect(path)) as copy,
        ):
            source.backup(copy)
        yield url
        return
    server = request.getfixturevalue("postgres_server")
    name = server.create_database(template=template)
    try:
        yield server.url(name)
    finally:
        server.drop_database(name)


@pytest.fixture
def database(database_url: str) -> Iterator[Database]:
    """A :class:`Database` on a new database at head; disposed after the test."""
    db = Database(database_url)
    try:
        yield db
    finally:
        db.dispose()
