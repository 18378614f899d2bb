"""The serial key (issue 15, item 6): a 32-byte repository secret in the key store, made on first use like the
holder-index key, overridable by ``CERTSTORE_SERIAL_KEY``, and carried by the repository to every issuance."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from certstore.keystore import KeyStore, KeyStoreError
from certstore.store.db import Database, database_url
from certstore.store.repository import Repository


def test_serial_key_is_made_once_and_kept(tmp_path: Path) -> None:
    keys = KeyStore(tmp_path / "keys")
    key = keys.serial_key({})
    path = tmp_path / "keys" / "serial.key"
    assert len(key) == 32 and path.is_file()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert keys.serial_key({}) == key == KeyStore(tmp_path / "keys").serial_key({})
    assert keys.holder_index_key({}) != key  # its own secret


def test_serial_key_from_the_environment(tmp_path: Path) -> None:
    keys = KeyStore(tmp_path / "keys")
    assert keys.serial_key({"CERTSTORE_SERIAL_KEY": "ab" * 32}) == bytes.fromhex("ab" * 32)
    assert not (tmp_path / "keys" / "serial.key").exists()
    with pytest.raises(KeyStoreError, match="CERTSTORE_SERIAL_KEY"):
        keys.serial_key({"CERTSTORE_SERIAL_KEY": "abcd"})


def test_the_repository_carries_the_stored_key(tmp_path: Path) -> None:
    Database(database_url(tmp_path, {})).upgrade()
    repo = Repository.open(tmp_path, {})
    assert repo.serial_key == KeyStore(tmp_path / "keys").serial_key({})
    assert Repository.open(tmp_path, {}).serial_key == repo.serial_key  # every process of the repository
