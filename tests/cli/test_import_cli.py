"""``certstore import``: the docs/cli.md contract — counts on stdout, exit 0 / 1 (rejects listed) / 3 (unreadable)."""

from __future__ import annotations

import csv
from pathlib import Path

from certstore.access import Actor
from certstore.store.repository import Repository
from tests.cli.conftest import Cli
from tests.exchange.support import audit_events
from tests.support.legacy_table import CODE, row, write_csv


def test_import_counts_and_exit_codes(cli: Cli, tmp_path: Path) -> None:
    assert cli("keys", "init").code == 0
    good = write_csv(tmp_path / "good.csv", [row(0), row(1)])
    result = cli("import", good, "--catalogue", CODE, "--workers", "0")
    assert result.code == 0, result.err
    assert "imported: 2" in result.out and "already stored: 0" in result.out and "rejected: 0" in result.out

    again = cli("import", good, "--catalogue", CODE, "--workers", "0")
    assert again.code == 0 and "imported: 0" in again.out and "already stored: 2" in again.out
    # one entry per certificate imported, naming the operator who ran the command; one summary per run
    repo = Repository.open(tmp_path / "data")
    entries = audit_events(repo)
    imported = [e for e in entries if e.action == "certificate.import"]
    assert len(imported) == 2 and all(
        e.principal == Actor.operator().ref and e.holder_digest for e in imported
    )
    assert [e.details["imported"] for e in entries if e.action == "import.run"] == [2, 0]
    repo.db.dispose()

    mixed = write_csv(tmp_path / "mixed.csv", [row(2), row(3, certificate_number="12")])
    result = cli("import", mixed, "--catalogue", CODE, "--workers", "0")
    assert result.code == 1
    rejects = tmp_path / "mixed.csv.rejected.csv"
    assert f"rejected rows listed in {rejects}" in result.out
    with rejects.open(encoding="utf-8-sig", newline="") as handle:
        lines = list(csv.reader(handle))
    assert lines[0] == ["行号", "证照编号", "字段", "问题"]
    assert lines[1][:3] == ["3", "12", "certificate_number"]

    chosen = tmp_path / "errors" / "r.csv"
    chosen.parent.mkdir()
    bad = write_csv(tmp_path / "bad.csv", [row(4, **{"holder.name": " "})])
    result = cli("import", bad, "--catalogue", CODE, "--workers", "0", "--rejects", chosen)
    assert result.code == 1 and chosen.exists() and "holder.name" in chosen.read_text(encoding="utf-8-sig")


def test_unreadable_tables_exit_3(cli: Cli, tmp_path: Path) -> None:
    assert cli("keys", "init").code == 0
    header_only = tmp_path / "odd.csv"
    header_only.write_text("名字,颜色\n", encoding="utf-8")
    result = cli("import", header_only, "--catalogue", CODE)
    assert result.code == 3 and "未知的列" in result.err
    broken = tmp_path / "broken.xlsx"
    broken.write_bytes(b"PK\x03\x04 not really a workbook")
    result = cli("import", broken, "--catalogue", CODE)
    assert result.code == 3 and "不是有效的 XLSX 文件" in result.err
    result = cli("import", tmp_path / "absent.csv", "--catalogue", CODE)
    assert result.code == 3
    result = cli("import", write_csv(tmp_path / "t.csv", [row(5)]), "--catalogue", "NOPE")
    assert result.code == 3 and "NOPE" in result.err
