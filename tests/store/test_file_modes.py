"""Owner-only files (issue 17): the data directory, the SQLite database with its ``-wal`` and ``-shm``, and the
blob store's directories and files hold holder ID numbers in clear, so certstore creates its directories 0700
and its files 0600 whatever the process umask — here even under umask 0, where anything left to the default
would come out 0777 / 0666."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from certstore.app import Application
from certstore.store.blobs import FileArchive, FileBlobStore
from certstore.store.config import write_config
from certstore.store.db import Database, database_url
from certstore.store.private import create_private_file, make_private_dirs


@pytest.fixture(params=[0o000, 0o022], ids=["umask-000", "umask-022"])
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    """Run the test under a permissive process umask, restored afterwards."""
    previous = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(previous)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _tree(root: Path) -> tuple[dict[Path, int], dict[Path, int]]:
    """Every directory and file under ``root`` (itself included) with its mode."""
    directories, files = {root: _mode(root)}, {}
    for parent, names, file_names in os.walk(root):
        for name in names:
            directories[Path(parent, name)] = _mode(Path(parent, name))
        for name in file_names:
            files[Path(parent, name)] = _mode(Path(parent, name))
    return directories, files


def test_a_fresh_data_directory_its_database_wal_shm_and_blobs_are_owner_only(
    tmp_path: Path, umask: int
) -> None:
    """Application.open on a missing data directory (the command line's path: migrate, then open), one
    certificate-sized blob stored: the directories (missing parents too) are 0700, the database, its -wal and
    -shm, the blob and its sidecar 0600."""
    data_dir = tmp_path / "srv" / "certstore"
    app = Application.open(data_dir, {}, upgrade_sqlite=True)
    try:
        app.repo.blobs.put(b"<ofd>holder 11010519491231002X</ofd>", media_type="application/ofd")
        app.repo.blobs.put_many([(b"one", "application/octet-stream"), (b"two", "application/octet-stream")])
        database = data_dir / "certstore.db"
        for path in (database, Path(f"{database}-wal"), Path(f"{database}-shm")):
            assert path.exists(), path
            assert _mode(path) == 0o600, (path, oct(_mode(path)))
        for directory in (tmp_path / "srv", data_dir, data_dir / "blobs"):
            assert _mode(directory) == 0o700, directory
        directories, files = _tree(data_dir / "blobs")
        assert len(files) >= 6  # three blobs, three sidecars
        assert {oct(m) for m in directories.values()} == {"0o700"}, directories
        assert {oct(m) for m in files.values()} == {"0o600"}, files
    finally:
        app.close()


def test_a_database_and_archive_created_on_their_own_are_owner_only(tmp_path: Path, umask: int) -> None:
    """``certstore db upgrade`` creates the database by itself (Database.upgrade), and the archive writes its
    ``.retain`` sidecars: the same modes."""
    database = tmp_path / "db" / "nested" / "certstore.db"
    with Database(database_url(database.parent, {})) as db:
        db.upgrade()
        assert {_mode(p) for p in database.parent.iterdir()} == {0o600}
        assert _mode(database.parent) == _mode(database.parent.parent) == 0o700
    archive = FileArchive(tmp_path / "archive")
    archive.put(b"record", retain_until=datetime.now(UTC) + timedelta(days=1))
    directories, files = _tree(tmp_path / "archive")
    assert any(p.name.endswith(".retain") for p in files)
    assert set(directories.values()) == {0o700} and set(files.values()) == {0o600}


def test_what_the_operator_created_keeps_its_mode(tmp_path: Path, umask: int) -> None:
    """Only what certstore creates is set: an existing data directory and database file keep their modes (the
    operator's choice), while the new blob directories below are still 0700."""
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    data_dir.chmod(0o750)
    (data_dir / "certstore.db").touch()
    (data_dir / "certstore.db").chmod(0o640)
    assert make_private_dirs(data_dir) == []
    assert create_private_file(data_dir / "certstore.db") is False
    store = FileBlobStore(data_dir / "blobs")
    store.put(b"x")
    assert _mode(data_dir) == 0o750 and _mode(data_dir / "certstore.db") == 0o640
    assert _mode(data_dir / "blobs") == 0o700


def test_configuring_a_data_directory_first_creates_it_owner_only(tmp_path: Path, umask: int) -> None:
    """``certstore config set public-url`` may be the first command on a new data directory: it is created
    0700 too (``config.json`` itself, the public URL only, stays readable: 0644 by design)."""
    data_dir = tmp_path / "new" / "data"
    write_config(data_dir, {"public_url": "https://zz.example.gov.cn"})
    assert _mode(data_dir) == _mode(data_dir.parent) == 0o700
