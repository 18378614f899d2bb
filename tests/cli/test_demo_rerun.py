"""``make demo`` is re-runnable on any later day: the demo's ``certstore`` lines, read from the Makefile, run twice
in one directory — the second time with the calendar a day on (a faked ``date.today()``) — and both runs succeed.

Before, ``catalogue example`` wrote the day's ``issue_date`` again, so the next ``issue`` sent other content under the
same certificate number and version and the user got ``DuplicateConflictError`` as a traceback. The Makefile now
writes the example data once; an identical re-run is recognised (``already stored (same data)``).
"""

from __future__ import annotations

import re
import shlex
from datetime import date, timedelta
from pathlib import Path

import pytest

import certstore.records
from tests.cli.conftest import Cli

MAKEFILE = Path(__file__).resolve().parents[2] / "Makefile"


def demo_commands() -> list[str]:
    """The recipe lines of the ``demo`` target that run ``certstore`` (but not ``serve``, which does not end)."""
    text = MAKEFILE.read_text(encoding="utf-8")
    recipe = re.search(r"^demo:.*\n((?:\t.*\n)+)", text, re.MULTILINE)
    assert recipe is not None
    variables = dict(re.findall(r"^(\w+)\s*:=\s*(\S+)", text, re.MULTILINE))
    variables.pop("BIN", None)  # kept: it marks the certstore lines
    lines = [line.strip() for line in recipe.group(1).splitlines()]
    commands = [line for line in lines if "$(BIN)/certstore" in line and " serve" not in line]
    return [re.sub(r"\$\((\w+)\)", lambda m: variables.get(m.group(1), m.group(0)), c) for c in commands]


def run_line(cli: Cli, line: str, directory: Path) -> str:
    """One recipe line as the shell runs it: ``test -s FILE || …`` and ``> FILE`` are the two forms used."""
    guard = re.match(r"test -s (\S+) \|\| (.*)", line)
    if guard is not None:
        written = directory / guard.group(1)
        if written.exists() and written.stat().st_size:
            return ""
        line = guard.group(2)
    command, _, target = line.partition(" > ")
    words = shlex.split(command)
    assert words[0] == "$(BIN)/certstore", line
    result = cli(*words[1:], data=directory / ".certstore")
    assert result.code == 0, f"{line}: exit {result.code}\n{result.err}"
    assert "Traceback" not in result.err
    if target:
        (directory / target).write_text(result.out, encoding="utf-8")
    return result.out


def test_demo_runs_again_on_a_later_day(cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Day 1 and day 2 in the same directory: every ``certstore`` line of ``make demo`` exits 0 both times, and
    the second day's issue recognises the stored certificate."""
    commands = demo_commands()
    assert any(" issue " in c for c in commands) and any("catalogue example" in c for c in commands)
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".certstore").mkdir()

    for line in commands:
        run_line(cli, line, tmp_path)
    first = (tmp_path / ".certstore" / "example.json").read_text(encoding="utf-8")

    class Tomorrow(date):
        @classmethod
        def today(cls) -> date:
            return date.today() + timedelta(days=1)

    monkeypatch.setattr(certstore.records, "date", Tomorrow)
    issued_again: list[str] = []
    for line in commands:
        out = run_line(cli, line, tmp_path)
        if " issue " in line:
            assert "already stored (same data)" in out, out
            issued_again.append(line)
    assert (tmp_path / ".certstore" / "example.json").read_text(encoding="utf-8") == first
    assert len(issued_again) == 2
