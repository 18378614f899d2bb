"""``docs/cli.md`` is generated from the click commands (``python -m certstore.cli.docs``) and kept current: this
test fails when a command, option or help text changed and the file was not regenerated (issue 21, item 6)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import click
import pytest

from certstore.cli import cli
from certstore.cli import docs as cli_docs

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / cli_docs.DOCS_PATH


def _commands() -> list[tuple[click.Command, click.Context]]:
    root = click.Context(cli, info_name="certstore", **cli.context_settings)
    found = []

    def walk(command: click.Command, ctx: click.Context) -> None:
        found.append((command, ctx))
        if isinstance(command, click.Group):
            for name in command.list_commands(ctx):
                sub = command.get_command(ctx, name)
                assert sub is not None, name
                if not sub.hidden:
                    walk(sub, click.Context(sub, info_name=name, parent=ctx, **sub.context_settings))

    walk(cli, root)
    return found


def test_docs_cli_md_is_current() -> None:
    """The checked-in reference equals what the commands generate now; if not, the message says how to fix it."""
    assert DOCS.read_text(encoding="utf-8") == cli_docs.render(), (
        "docs/cli.md is not current: run `.venv/bin/python -m certstore.cli.docs` and commit the result"
    )


def test_every_command_and_option_is_documented() -> None:
    """Each command of the tree (groups and leaves, lazily loaded ones included) has its own section with its
    usage line, and each of its visible options appears in that section."""
    text = DOCS.read_text(encoding="utf-8")
    commands = _commands()
    assert len(commands) > 40  # the whole tree, not the root's list only
    for command, ctx in commands:
        path = ctx.command_path
        heading = re.search(rf"^#+ `{re.escape(path)}`$", text, re.MULTILINE)
        assert heading is not None, f"no section for {path}"
        section = text[heading.end() :].split("\n## ", 1)[0].split("\n### ", 1)[0]
        assert f"\n{path} " in section or f"\n{path}\n" in section, f"no usage line for {path}"
        for param in command.get_params(ctx):
            if isinstance(param, click.Option) and not param.hidden and param.name != "help":
                if param is command.get_help_option(ctx):
                    continue
                assert param.opts[0] in section, f"{path}: option {param.opts[0]} not documented"


def test_rendering_does_not_depend_on_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """A terminal width, a data directory in the environment or another working directory change nothing: the CI
    check compares like with like."""
    expected = cli_docs.render()
    monkeypatch.setenv("COLUMNS", "40")
    monkeypatch.setenv("CERTSTORE_DATA_DIR", "/somewhere/else")
    monkeypatch.chdir("/")
    assert cli_docs.render() == expected


def test_check_mode_reports_a_stale_file_and_the_generator_fixes_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--check`` exits 1 on a stale file and writes nothing (run as CI runs it, ``python -m
    certstore.cli.docs``); without it the file is written, and then the check passes."""
    out = tmp_path / "cli.md"
    out.write_text("# stale\n", encoding="utf-8")
    command = [sys.executable, "-m", "certstore.cli.docs", "--out", str(out), "--check"]
    stale = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert stale.returncode == 1
    assert "is not current: run python -m certstore.cli.docs" in stale.stderr
    assert out.read_text(encoding="utf-8") == "# stale\n"
    assert cli_docs.main(["--out", str(out)]) == 0
    assert "wrote" in capsys.readouterr().out
    assert out.read_text(encoding="utf-8") == cli_docs.render()
    assert cli_docs.main(["--out", str(out), "--check"]) == 0


def test_tables_stay_tables() -> None:
    """Every table row has the cells of its header (a ``|`` inside a help text or a choice list is escaped)."""
    text = DOCS.read_text(encoding="utf-8")
    for line in text.splitlines():
        if line.startswith("| "):
            cells = re.split(r"(?<!\\)\|", line.strip())[1:-1]
            assert len(cells) == 2, line
