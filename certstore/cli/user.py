"""``certstore user``: passwords of principals for the web pages (员工登录口令)."""

from __future__ import annotations

import os

import click

from certstore.access import Role
from certstore.cli.common import Context, Failure, handle_errors, pass_context
from certstore.services import logins

__all__ = ["group"]


@click.group("user")
def group() -> None:
    """Web-page logins of principals: set passwords."""


@group.command("set-password")
@click.option("--org", "org", required=True, help="Organisation code of the principal (e.g. its USCC).")
@click.option("--name", required=True, help="Principal name (the login name on the pages).")
@click.option(
    "--role",
    type=click.Choice([r.value for r in Role if r is not Role.OPERATOR]),
    help="Create the principal with this role if it does not exist yet.",
)
@click.option("--org-name", help="The organisation's name, when registering it.")
@click.option(
    "--password-env",
    metavar="VAR",
    help="Read the password from environment variable VAR instead of prompting (scripts, CI).",
)
@pass_context
@handle_errors
def set_password(
    ctx: Context, org: str, name: str, role: str | None, org_name: str | None, password_env: str | None
) -> None:
    """Set the password ORG/NAME logs in to the web pages with (scrypt-hashed; clears a lockout)."""
    if password_env:
        password = os.environ.get(password_env)
        if password is None:
            raise Failure(f"environment variable {password_env} is not set")
    else:
        password = click.prompt("password", hide_input=True, confirmation_prompt=True, err=True)
    try:
        principal = logins.set_password(
            ctx.repository(),
            organisation_code=org,
            name=name,
            password=password,
            role=Role(role) if role else None,
            organisation_name=org_name,
        )
    except ValueError as exc:
        raise Failure(str(exc)) from None
    click.echo(f"password set for {principal.ref} ({principal.role.value})")
