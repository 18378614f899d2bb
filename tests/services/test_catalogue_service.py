"""Catalogue registration in the repository: versioned, idempotent, never rewritten."""

from __future__ import annotations

import pytest

from certstore.catalogue import CatalogueEntry, shipped_entries
from certstore.services.catalogue import (
    CatalogueConflictError,
    UnknownCatalogueError,
    get_entry,
    list_entries,
    load_shipped,
    register_entry,
)
from certstore.store.repository import Repository


def _bump(entry: CatalogueEntry, version: int, name_suffix: str = "") -> CatalogueEntry:
    document = entry.to_document()
    document["version"] = version
    document["name"] = entry.name + name_suffix
    return CatalogueEntry.from_document(document)


def test_shipped_entries_load_once(repo: Repository) -> None:
    assert load_shipped(repo) == []  # the fixture loaded them already
    assert {e.code for e in list_entries(repo)} == {e.code for e in shipped_entries()}


def test_versions(repo: Repository) -> None:
    entry = shipped_entries()[0]
    assert register_entry(repo, entry) == (entry, False)  # same content again: no-op
    with pytest.raises(CatalogueConflictError, match="different content"):
        register_entry(repo, _bump(entry, entry.version, "（改）"))
    v2 = _bump(entry, entry.version + 1, "（第二版）")
    assert register_entry(repo, v2) == (v2, True)
    assert get_entry(repo, entry.code) == v2  # latest approved
    assert get_entry(repo, entry.code, entry.version) == entry  # history kept
    register_entry(repo, _bump(entry, entry.version + 3, "（第四版）"))
    with pytest.raises(CatalogueConflictError, match="older"):
        register_entry(repo, _bump(entry, entry.version + 2, "（迟到的第三版）"))


def test_unknown_code(repo: Repository) -> None:
    with pytest.raises(UnknownCatalogueError):
        get_entry(repo, "11410100990000017F999")
