"""``certstore config``: the data directory's configuration (``<data-dir>/config.json``,
:mod:`certstore.store.config`) — today the public URL printed in the QR code and links of every sealed file."""

from __future__ import annotations

import os

import click

from certstore.cli.common import Context, handle_errors, pass_context, print_json
from certstore.store.config import (
    CONFIG_FILE,
    HOW_TO_SET,
    PUBLIC_URL_ENV,
    configured_public_url,
    resolve_public_url,
    save_public_url,
)

#: The settings ``config set`` / ``config unset`` know (the name on the command line).
SETTINGS = ("public-url",)


@click.group("config")
def group() -> None:
    """The data directory's configuration (config.json): the public URL sealed files print."""


@group.command("show")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_context
@handle_errors
def show(ctx: Context, as_json: bool) -> None:
    """Show each setting, the value in effect and where it comes from (environment, config file or none)."""
    stored = configured_public_url(ctx.data_dir)
    effective, source = resolve_public_url(ctx.data_dir, os.environ)
    if as_json:
        print_json(
            {
                "file": str(ctx.data_dir / CONFIG_FILE),
                "public_url": {"value": effective, "source": source, "configured": stored},
            }
        )
        return
    click.echo(f"configuration: {ctx.data_dir / CONFIG_FILE}")
    if effective is None:
        click.echo("public-url: not configured — nothing can be sealed")
        click.echo(f"  {HOW_TO_SET}")
    elif source == "environment":
        overridden = f" (overrides {stored} of the file)" if stored and stored != effective else ""
        click.echo(f"public-url: {effective}  from {PUBLIC_URL_ENV}{overridden}")
    else:
        click.echo(f"public-url: {effective}  from {CONFIG_FILE}")


@group.command("set")
@click.argument("name", metavar="NAME", type=click.Choice(SETTINGS))
@click.argument("value", metavar="VALUE")
@pass_context
@handle_errors
def set_(ctx: Context, name: str, value: str) -> None:
    """Set NAME to VALUE in the data directory's configuration. public-url: an absolute http(s) URL without
    query or fragment (https://HOST[/PATH]); it is printed in every file sealed from now on — files sealed
    before keep theirs."""
    stored = save_public_url(ctx.data_dir, value)
    click.echo(f"public-url: {stored} ({ctx.data_dir / CONFIG_FILE})")
    env_value = os.environ.get(PUBLIC_URL_ENV, "").strip()
    if env_value:
        click.echo(f"note: {PUBLIC_URL_ENV}={env_value} is set here and overrides it", err=True)


@group.command("unset")
@click.argument("name", metavar="NAME", type=click.Choice(SETTINGS))
@pass_context
@handle_errors
def unset(ctx: Context, name: str) -> None:
    """Remove NAME from the data directory's configuration (public-url: sealing is refused until set again)."""
    save_public_url(ctx.data_dir, None)
    click.echo(f"public-url: not configured ({ctx.data_dir / CONFIG_FILE})")
