"""Every command, given bad input, answers with one line on stderr and a documented exit code — never a traceback.

The exit codes are those of the README and ``certstore --help``: 3 bad input or unreadable file, 4 a change the
rules refuse, 5 internal error. Also here: ``certstore --version``, the lazy command table behind ``--help``, and
the warnings that are not the user's to act on (pyhanko's ``CryptographyDeprecationWarning``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import click
import pytest

from certstore import __version__
from certstore.cli import COMMANDS
from certstore.cli import cli as cli_group
from certstore.cli.common import ExitCode, describe_error, handle_errors
from tests.cli.conftest import Cli, CliResult

DEMO_TYPE = "11410100990000025A001"

#: (arguments, exit code) — at least one case per command; files named here are made by ``_files``.
BAD_INPUT: list[tuple[tuple[str, ...], int]] = [
    (("audit", "export", "--from", "yesterday", "--to", "x", "--out", "o.jsonl"), 3),
    (("audit", "retention", "--years", "-1"), 3),
    (("audit", "verify-export", "missing.jsonl"), 3),
    (("catalogue", "show", "NOPE"), 3),
    (("catalogue", "example", "NOPE"), 3),
    (("config", "set", "no_such_setting", "x"), 3),
    (("db", "status", "--jsn"), 3),
    (("exchange", "init-frontend", "not-a-url"), 3),
    (("exchange", "run", "--sources", "missing.json"), 3),
    (("exchange", "push-upward", "--target", "nope", "--token-env", "NOPE_ENV"), 3),
    (("import", "missing.csv", "--catalogue", "X"), 3),
    (("issue", "--catalogue", "X", "--data", "missing.json", "--out", "o.ofd"), 3),
    (("issue", "--catalogue", "X", "--data", "bad.json", "--out", "o.ofd"), 3),
    (("issue", "--catalogue", "X", "--data", "bad.json", "--out", "o.txt"), 3),
    (("keys", "export", "nosuch"), 3),
    (("keys", "import", "--name", "x", "--key", "missing.pem", "--cert", "missing.pem"), 3),
    (("notify", "reminders", "--at", "tomorrow"), 3),
    (("notify", "unsubscribe", "nosuch"), 3),
    (("notify", "subscribe", "--org", "X", "--url", "notaurl"), 3),
    (("seal", "show", "bad.ofd"), 3),
    (("seal", "verify", "missing.esl"), 3),
    (("seal", "revoke", "nosuch", "--reason", "x"), 3),
    (("serve", "--port", "notanumber"), 3),
    (("status", "snapshot", "--out", "s.bin"), 3),
    (("token", "create", "--role", "emperor", "--org", "x"), 3),
    (("token", "revoke", "nosuch"), 3),
    (("user", "disable", "nosuch"), 3),
    (("verify", "bad.ofd"), 3),
    (("verify", "missing.ofd"), 3),
    (("nosuchcommand",), 3),
    (("--nosuchoption",), 3),
]


def _files(directory: Path) -> None:
    (directory / "bad.json").write_text("not json\n", encoding="utf-8")
    (directory / "bad.ofd").write_bytes(b"garbage\n")


def _assert_one_line(result: CliResult, code: int) -> None:
    lines = result.err.strip().splitlines()
    assert result.code == code, (result.code, result.err)
    assert len(lines) == 1, result.err
    assert lines[0].startswith("Error: "), lines[0]
    assert "Traceback" not in result.err + result.out


def test_every_command_is_covered() -> None:
    """The bad-input table below names every top-level command, so a new command cannot slip past this file."""
    covered = {args[0] for args, _ in BAD_INPUT if not args[0].startswith("-")}
    assert set(COMMANDS) <= covered


@pytest.mark.parametrize(("args", "code"), BAD_INPUT, ids=[" ".join(a) for a, _ in BAD_INPUT])
def test_bad_input_is_one_line_with_its_exit_code(
    args: tuple[str, ...], code: int, cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Bad input to each command: exit 3 and one ``Error: …`` line on stderr, no traceback, no usage block."""
    _files(tmp_path)
    monkeypatch.chdir(tmp_path)
    _assert_one_line(cli(*args), code)


def test_usage_error_points_at_the_command_help(cli: Cli) -> None:
    """A usage error names the command whose ``--help`` explains it, on the same line."""
    result = cli("token", "create", "--role", "emperor", "--org", "x")
    assert "'emperor' is not one of" in result.err
    assert "(see 'certstore token create --help')" in result.err


def test_a_group_without_a_command_shows_its_help(cli: Cli) -> None:
    """``certstore catalogue`` alone shows that group's help (exit 3), not a one-line collapse of it; options
    without a command are a one-line usage error."""
    result = cli("catalogue")
    assert result.code == ExitCode.BAD_INPUT
    assert result.err.startswith("Usage: certstore catalogue [OPTIONS] COMMAND")
    assert "\nCommands:\n" in result.err
    _assert_one_line(cli(), ExitCode.BAD_INPUT)  # ``--data-dir DIR`` and nothing else


def test_other_content_under_a_stored_number_is_refused_in_one_line(cli: Cli, tmp_path: Path) -> None:
    """The demo on a later day: the example data of another day under the same number and version is a change
    the rules refuse (exit 4, one line naming the certificate), while the same data again is recognised."""
    assert cli("keys", "init", "--public-url", "http://127.0.0.1:8000").code == 0
    example = cli("catalogue", "example", DEMO_TYPE)
    assert example.code == 0
    today = tmp_path / "today.json"
    today.write_text(example.out, encoding="utf-8")
    document = json.loads(example.out)
    document["issue_date"] = "2020-01-02"
    other_day = tmp_path / "other-day.json"
    other_day.write_text(json.dumps(document, ensure_ascii=False), encoding="utf-8")

    first = cli("issue", "--catalogue", DEMO_TYPE, "--data", today, "--out", tmp_path / "a.ofd")
    assert first.code == 0, first.err
    again = cli("issue", "--catalogue", DEMO_TYPE, "--data", today, "--out", tmp_path / "b.ofd")
    assert again.code == 0, again.err
    assert "already stored (same data)" in again.out

    refused = cli("issue", "--catalogue", DEMO_TYPE, "--data", other_day, "--out", tmp_path / "c.ofd")
    _assert_one_line(refused, ExitCode.REFUSED)
    assert "refused:" in refused.err
    assert "already pushed with different content" in refused.err
    assert document["certificate_number"] in refused.err


def test_an_unexpected_fault_is_one_line_exit_5(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    """A fault that is no one's input (here a command that breaks) still reaches the user as one line, exit 5,
    naming the error type; ``CERTSTORE_DEBUG=1`` adds the traceback for a developer."""

    @click.command("broken")
    def broken() -> None:
        raise RuntimeError("disk\non fire")

    monkeypatch.setitem(cli_group.commands, "broken", broken)
    result = cli("broken")
    _assert_one_line(result, ExitCode.INTERNAL)
    assert "internal error (RuntimeError: disk on fire)" in result.err
    monkeypatch.setenv("CERTSTORE_DEBUG", "1")
    assert "Traceback" in cli("broken").err


def test_describe_error_maps_domain_errors_to_documented_codes() -> None:
    """The last-resort mapping: refusals 4, input errors 3, unreadable files 3 with the path, the rest 5."""
    from certstore.access import AccessDeniedError
    from certstore.records import RecordError
    from certstore.services.certificates import DuplicateConflictError

    assert describe_error(DuplicateConflictError("x\ny")) == ("refused: x y", ExitCode.REFUSED)
    assert describe_error(AccessDeniedError("no")) == ("refused: no", ExitCode.REFUSED)
    assert describe_error(RecordError("bad field")) == ("bad field", ExitCode.BAD_INPUT)
    assert describe_error(LookupError("none")) == ("none", ExitCode.BAD_INPUT)
    assert describe_error(FileNotFoundError(2, "No such file or directory", "f.json")) == (
        "No such file or directory: f.json",
        ExitCode.BAD_INPUT,
    )
    assert describe_error(ZeroDivisionError("division by zero"))[1] == ExitCode.INTERNAL


def test_handle_errors_turns_a_refusal_into_exit_4() -> None:
    """Inside a command, a refusal becomes a :class:`~certstore.cli.common.Failure` with exit 4 and an
    unexpected error passes through untouched (to the one-line last resort)."""
    from certstore.services.certificates import DuplicateConflictError

    @handle_errors
    def refuse() -> None:
        raise DuplicateConflictError("other content")

    @handle_errors
    def crash() -> None:
        raise ZeroDivisionError

    with pytest.raises(click.ClickException) as caught:
        refuse()
    assert caught.value.exit_code == ExitCode.REFUSED
    with pytest.raises(ZeroDivisionError):
        crash()


def test_version(cli: Cli) -> None:
    """``certstore --version`` (and ``-V``) print the installed version and exit 0."""
    for option in ("--version", "-V"):
        result = cli(option)
        assert result.code == 0
        assert result.out.strip() == f"certstore {__version__}"


def test_help_lines_are_the_commands_own() -> None:
    """``--help`` lists the commands from a table without importing them; each line is the start of the
    command's own help, so the table cannot drift from the commands."""
    context = click.Context(cli_group)
    for name, (_, _, line) in COMMANDS.items():
        command = cli_group.get_command(context, name)
        assert command is not None and command.name == name
        own = " ".join((command.help or "").split())
        assert own.startswith(line.removesuffix(" …")), name
    listed = cli_group.get_help(click.Context(cli_group, info_name="certstore"))
    assert all(f"  {name} " in listed for name in COMMANDS)


def _run(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONWARNINGS", "CERTSTORE_DEBUG")}
    return subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=60, env=env, check=False
    )


def test_help_imports_no_command_module() -> None:
    """``certstore --help`` imports click and the command table only: not the application, SQLAlchemy or
    pyhanko (what made every command take ~2 s to start)."""
    probe = (
        "import sys\nfrom certstore.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "heavy = sorted(m for m in ('certstore.app', 'sqlalchemy', 'pyhanko', 'certstore.cli.audit') "
        "if m in sys.modules)\nprint('HEAVY', heavy, file=sys.stderr)"
    )
    result = _run(probe)
    assert "HEAVY []" in result.stderr, result.stderr
    assert "Commands:" in result.stdout


def test_no_foreign_warning_on_a_command(tmp_path: Path) -> None:
    """A command that imports pyhanko (``verify``) prints no ``CryptographyDeprecationWarning``: the warning is
    not the user's to act on and is filtered at the entry point; the error itself is still one line."""
    bad = tmp_path / "bad.ofd"
    bad.write_bytes(b"garbage")
    result = _run(
        "from certstore.cli import main; main()", "--data-dir", str(tmp_path / "data"), "verify", str(bad)
    )
    assert result.returncode == ExitCode.BAD_INPUT
    assert "Warning" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        f"Error: {bad}: unreadable: neither an OFD (ZIP) nor a PDF file"
    ]
