"""The ``certstore`` command line (reference: ``docs/cli.md``). Thin: parses options, opens the application
(:meth:`~certstore.cli.common.Context.application`), calls services as the operator, prints.

Built on click. Usage errors exit 3, not click's default 2, because 2 means INDETERMINATE for the
verification commands. Every error reaches the user as one line on stderr (``Error: …``) with a documented
exit code (:class:`~certstore.cli.common.ExitCode`), never as a traceback (``CERTSTORE_DEBUG=1`` shows it).

Start-up is kept short: the commands' modules (and with them the application, pyhanko, SQLAlchemy) are imported
only when a command runs (:class:`LazyGroup`), so ``certstore --help`` and ``certstore --version`` import
click and little else. Run as the console script, the process also starts with Python's cyclic garbage
collector paused (:func:`_pause_collector`).
"""

from __future__ import annotations

import gc
import importlib
import os
import sys
import threading
import traceback
import warnings
from pathlib import Path

import click

from certstore.cli.common import Context, ExitCode, Failure, describe_error

__all__ = ["COMMANDS", "LazyGroup", "cli", "main"]

#: Command name → (module under ``certstore.cli``, attribute, one-line help shown by ``certstore --help``).
#: ``tests/cli/test_errors.py`` checks that each help line is the command's own.
COMMANDS: dict[str, tuple[str, str, str]] = {
    "audit": ("audit", "group", "The audit log (审计日志): verify, export, archive, retention."),
    "catalogue": (
        "catalogue",
        "group",
        "Certificate types (证照目录): list, show, examples, shipped definitions.",
    ),
    "config": (
        "config",
        "group",
        "The data directory's configuration (config.json): the public URL sealed files print.",
    ),
    "db": ("db", "group", "The repository database: schema migrations and status."),
    "exchange": ("exchange", "group", "The exchange with agencies' front-end databases (数据库前置机)."),
    "import": (
        "imports",
        "import_command",
        "Import and seal legacy certificates (存量证照) from a CSV or XLSX table of one catalogue type.",
    ),
    "issue": (
        "issue",
        "issue",
        "Issue one certificate: validate DATA.json, lay out the face, package as OFD, seal, store.",
    ),
    "keys": ("keys", "group", "Signing keys, certificates, seals and trust anchors."),
    "notify": (
        "notify",
        "group",
        "Notifications (通知): deliver the outbox, show its state, write reminders, webhook subscriptions.",
    ),
    "seal": ("seal", "group", "Electronic seals (GB/T 38540 SES_Seal)."),
    "serve": (
        "serve",
        "serve",
        "Run the API (and web pages) on HOST:PORT, in WORKERS processes sharing the database and blob store.",
    ),
    "status": ("status", "group", "Certificate status for verifiers without a network."),
    "token": ("token", "group", "API tokens: create, list, revoke."),
    "user": ("user", "group", "Principals: web-page passwords; disable (offboard) and enable."),
    "verify": (
        "verify",
        "verify",
        "Verify the OFD or PDF file PATH: package, references, seals and signatures, …",
    ),
}


def filter_foreign_warnings() -> None:
    """Hide warnings the user cannot act on: pyhanko imports DSA, which cryptography deprecates
    (``CryptographyDeprecationWarning``, printed on every command before). Matched by message, so that the
    filter costs no import of cryptography."""
    warnings.filterwarnings("ignore", message=r".*\bdeprecated\b", module=r"pyhanko(\.|$)")


class LazyGroup(click.Group):
    """A group whose commands are imported on first use; ``--help`` lists them from :data:`COMMANDS`."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*COMMANDS, *self.commands})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.commands:
            return self.commands[cmd_name]
        if cmd_name not in COMMANDS:
            return None
        module_name, attribute, _ = COMMANDS[cmd_name]
        with warnings.catch_warnings():
            filter_foreign_warnings()
            module = importlib.import_module(f"certstore.cli.{module_name}")
        command: click.Command = getattr(module, attribute)
        self.add_command(command, cmd_name)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [
            (name, self.commands[name].get_short_help_str(limit=formatter.width - 6 - len(name)))
            if name in self.commands
            else (name, COMMANDS[name][2])
            for name in self.list_commands(ctx)
        ]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


def _print_version(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    """``--version``: the installed distribution's version, read only when asked (``importlib.metadata`` costs
    every other command's start-up)."""
    if not value or ctx.resilient_parsing:
        return
    from certstore import __version__

    click.echo(f"certstore {__version__}")
    ctx.exit()


EPILOG = (
    "Exit codes: 0 ok/valid, 1 invalid, 2 indeterminate, 3 bad input or unreadable file, "
    "4 a change the rules refuse, 5 internal error (CERTSTORE_DEBUG=1 prints the traceback), 130 interrupted."
)


@click.group(
    cls=LazyGroup,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110},
    epilog=EPILOG,
)
@click.option(
    "-V",
    "--version",
    is_flag=True,
    expose_value=False,
    is_eager=True,
    callback=_print_version,
    help="Show the version and exit.",
)
@click.option(
    "--data-dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=".certstore",
    show_default=True,
    envvar="CERTSTORE_DATA_DIR",
    help="Where the embedded database, blobs and key store live.",
)
@click.pass_context
def cli(ctx: click.Context, data_dir: Path) -> None:
    """certstore — city e-certificate repository (电子证照库)."""
    ctx.obj = Context(data_dir=data_dir)
    ctx.call_on_close(ctx.obj.close)


#: click ≥ 8.2 raises this (a UsageError whose message is the whole help) for a group called without a command.
_NO_ARGS_IS_HELP: type[click.UsageError] = getattr(
    click.exceptions, "NoArgsIsHelpError", type("_Never", (click.UsageError,), {})
)


def _one_line(message: str) -> str:
    return " ".join(message.split())


#: How long the console script runs with the cyclic garbage collector paused (:func:`_pause_collector`).
STARTUP_COLLECTOR_PAUSE_S = 1.0


def _pause_collector() -> None:
    """Pause the cyclic garbage collector for the first :data:`STARTUP_COLLECTOR_PAUSE_S` of the process.

    Start-up creates hundreds of thousands of long-lived objects — modules, classes, functions, SQLAlchemy's
    table metadata and mappers — that no collection can free, and each collection triggered on the way walks
    them all again: ~60 ms of a ~0.7 s ``certstore verify FILE`` (``python -m bench cli``). A short command is
    over before the pause ends; a long one (``serve``, ``exchange run``, ``import``) gets the collector back
    after a second, from a daemon timer. Reference counting, which frees everything that is not in a cycle, is
    not affected."""
    if not gc.isenabled():
        return
    gc.disable()
    if hasattr(os, "register_at_fork"):  # a child forked during the pause has no timer: it collects at once
        os.register_at_fork(after_in_child=gc.enable)
    timer = threading.Timer(STARTUP_COLLECTOR_PAUSE_S, gc.enable)
    timer.daemon = True
    timer.start()


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: every error is one line on stderr and a documented exit code. As the console
    script (``argv`` None) the collector is paused during start-up (:func:`_pause_collector`) and every object
    frozen at the end; called with ``argv`` (tests, embedding programs) the caller's collector is left alone."""
    if argv is None:
        _pause_collector()
    try:
        _main(argv)
    finally:
        if argv is None:
            # The process ends here: the collections of the interpreter's exit would walk every object once
            # more and find nothing to free (~80 ms of a ``certstore verify``). Frozen objects are still freed
            # by reference counting; exit handlers and stream flushes run as always.
            gc.freeze()


def _main(argv: list[str] | None) -> None:
    filter_foreign_warnings()
    try:
        code = cli.main(args=argv, prog_name="certstore", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except _NO_ARGS_IS_HELP as exc:  # ``certstore`` or a group without a command: its help, as before
        exc.show()
        sys.exit(ExitCode.BAD_INPUT)
    except click.UsageError as exc:  # one line, with where to find the usage (not click's usage block)
        hint = f" (see '{exc.ctx.command_path} --help')" if exc.ctx is not None else ""
        click.echo(f"Error: {_one_line(exc.format_message())}{hint}", err=True)
        sys.exit(ExitCode.BAD_INPUT)
    except click.ClickException as exc:  # bad files, unknown names, our Failure
        click.echo(f"Error: {_one_line(exc.format_message())}", err=True)
        sys.exit(exc.exit_code if isinstance(exc, Failure) else ExitCode.BAD_INPUT)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
    except Exception as exc:  # the last resort: one line, never a traceback
        if os.environ.get("CERTSTORE_DEBUG"):
            traceback.print_exc()
        message, exit_code = describe_error(exc)
        click.echo(f"Error: {message}", err=True)
        sys.exit(exit_code)
    sys.exit(code if isinstance(code, int) else ExitCode.OK)
