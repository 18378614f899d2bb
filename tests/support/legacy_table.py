"""Legacy certificate tables for ``certstore import`` (services.imports): rows of the 建筑工程施工许可证, written
as CSV with the template's header, and the command that imports them in a process of its own."""

from __future__ import annotations

import csv
import sys
from collections.abc import Mapping
from datetime import date
from pathlib import Path

from certstore.catalogue import shipped_entry
from certstore.forms import form_fields, header_cell
from certstore.records import draft_to_json, example_draft

CODE = "11410100990000025A001"  # 建筑工程施工许可证: number 4101xx + YYYYMMDD + 2 + 2 digits
ENTRY = shipped_entry(CODE)
FIELDS = form_fields(ENTRY)
BASE = draft_to_json(example_draft(ENTRY, issue_date=date(2020, 3, 9)))


def number(n: int) -> str:
    return f"410105{20200309}{n // 100 % 100:02d}{n % 100:02d}"


def row(n: int, **changes: str) -> dict[str, str]:
    """Template values of certificate ``n`` (field name → cell text)."""
    values = {
        "certificate_number": number(n),
        "issue_date": "2020-03-09",
        "holder.name": f"郑州第{n}置业有限公司",
        "holder.id_type": BASE["holder"]["id_type"],
        "holder.id_number": BASE["holder"]["id_number"],
        **{f"face.{k}": str(v) for k, v in BASE["face"].items()},
        "face.project_name": f"历史项目第{n}号",
    }
    values.update(changes)
    return values


def write_csv(path: Path, rows: list[Mapping[str, str]], *, extra: Mapping[int, list[str]] | None = None,
              encoding: str = "utf-8-sig") -> Path:  # fmt: skip
    with path.open("w", encoding=encoding, newline="") as out:
        writer = csv.writer(out)
        writer.writerow([header_cell(f) for f in FIELDS])
        for index, values in enumerate(rows):
            writer.writerow([values.get(f.name, "") for f in FIELDS] + (extra or {}).get(index, []))
    return path


def import_command(data_dir: Path, table: Path, *, workers: int, chunk_rows: int) -> list[str]:
    """``certstore import`` run as its own process (to be signalled or killed)."""
    return [sys.executable, "-c", "from certstore.cli import main; main()", "--data-dir", str(data_dir), "import",
            str(table), "--catalogue", CODE, "--workers", str(workers), "--chunk-rows", str(chunk_rows)]  # fmt: skip
