"""`certstore catalogue list|show|example|load` on a fresh data directory (embedded SQLite)."""

from __future__ import annotations

import os

from certstore.catalogue import shipped_entries
from certstore.records import draft_from_json, prepare_version

CODES = sorted(e.code for e in shipped_entries())


def test_list(cli) -> None:
    text = cli("catalogue", "list")
    assert text.code == 0, text.err
    assert "营业执照" in text.out and "建筑工程施工许可证" in text.out
    rows = cli("catalogue", "list", "--json").json()
    assert sorted(r["code"] for r in rows) == CODES
    assert all(r["version"] == 2 for r in rows)


def test_example_is_valid_data(cli) -> None:
    entries = {e.code: e for e in shipped_entries()}
    for code in CODES:
        result = cli("catalogue", "example", code)
        assert result.code == 0, result.err
        draft = draft_from_json(result.json())
        prepared = prepare_version(
            entries[code], draft, version=1, holder_key=os.urandom(32), serial_key=os.urandom(32)
        )
        assert str(prepared.identifier).startswith(f"1.2.156.3005.2.{code}.")


def test_show_and_load(cli) -> None:
    shown = cli("catalogue", "show", CODES[0])
    assert shown.code == 0 and shown.json()["code"] == CODES[0]
    loaded = cli("catalogue", "load")
    assert (
        loaded.code == 0 and "0 added, 6 already present" in loaded.out
    )  # a new repository starts with them


def test_unknown_code_exits_3(cli) -> None:
    result = cli("catalogue", "example", "NOPE")
    assert result.code == 3 and "unknown catalogue code" in result.err
    assert cli("catalogue", "show", "NOPE").code == 3
