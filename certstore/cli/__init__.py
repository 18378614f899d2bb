"""The ``certstore`` command line (contract: ``CLI.md``). Thin: parses options, opens the application
(:meth:`~certstore.cli.common.Context.application`), calls services as the operator, prints.

Built on click. Usage errors exit 3, not click's default 2, because 2 means INDETERMINATE for the
verification commands.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from certstore.cli import (
    audit,
    catalogue,
    config,
    db,
    exchange,
    imports,
    issue,
    keys,
    notify,
    seal,
    serve,
    status,
    token,
    user,
    verify,
)
from certstore.cli.common import Context, ExitCode, Failure

__all__ = ["cli", "main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
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


cli.add_command(audit.group)
cli.add_command(catalogue.group)
cli.add_command(config.group)
cli.add_command(db.group)
cli.add_command(exchange.group)
cli.add_command(imports.import_command)
cli.add_command(issue.issue)
cli.add_command(keys.group)
cli.add_command(notify.group)
cli.add_command(seal.group)
cli.add_command(serve.serve)
cli.add_command(status.group)
cli.add_command(token.group)
cli.add_command(user.group)
cli.add_command(verify.verify)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    try:
        code = cli.main(args=argv, prog_name="certstore", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:  # usage errors, bad parameters, unreadable files, our Failure
        exc.show()
        sys.exit(exc.exit_code if isinstance(exc, Failure) else ExitCode.BAD_INPUT)
    sys.exit(code if isinstance(code, int) else ExitCode.OK)
