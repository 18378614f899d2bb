"""Run the real ``certstore`` entry point in-process and capture its exit code and output."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from certstore.cli import main


@dataclass(frozen=True)
class CliResult:
    code: int
    out: str
    err: str

    def json(self) -> object:
        return json.loads(self.out)


Cli = Callable[..., CliResult]


@pytest.fixture
def cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Cli:
    """``cli("keys", "init")`` runs ``certstore --data-dir <tmp>/data keys init`` and returns the result."""
    data_dir = tmp_path / "data"

    def run(*args: str | Path, data: Path | None = None) -> CliResult:
        capsys.readouterr()
        try:
            main(["--data-dir", str(data or data_dir), *map(str, args)])
            code = 0
        except SystemExit as exc:
            code = int(exc.code or 0)
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"
