"""``certstore user``: passwords of principals for the web pages (员工登录口令); disabling and enabling principals
(offboarding)."""

from __future__ import annotations

import os

import click

from certstore.access import Role
from certstore.cli.common import Context, Failure, handle_errors, pass_context
from certstore.services import access, logins
from certstore.services.calls import Call

__all__ = ["group"]


@click.group("user")
def group() -> None:
    """Principals: web-page passwords; disable (offboard) and enable."""


@group.command("set-password")
@click.option("--org", "org", required=True, help="Organisation code of the principal (e.g. its USCC).")
@click.option("--name", required=True, help="Principal name (the login name on the pages).")
@click.option(
    "--role",
    type=click.Choice([r.value for r in Role if r not in (Role.OPERATOR, Role.HOLDER)]),
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


def _split(principal: str) -> tuple[str, str]:
    code, sep, name = principal.partition("/")
    if not sep or not code.strip() or not name.strip():
        raise Failure(f"principal {principal!r}: give it as ORG/NAME (as 'certstore token list' shows it)")
    return code, name


def _set_disabled(ctx: Context, principal: str, reason: str | None, *, disabled: bool) -> None:
    code, name = _split(principal)
    try:
        state = access.set_disabled(
            ctx.application(),
            Call.operator(),
            organisation_code=code,
            name=name,
            disabled=disabled,
            reason=reason,
        )
    except (LookupError, ValueError) as exc:
        raise Failure(str(exc)) from None
    ref = f"{state.principal.ref} ({state.principal.role.value})"
    if disabled:
        was = (
            "disabled" if state.changed else f"already disabled since {state.disabled_at:%Y-%m-%d %H:%M} UTC"
        )
        click.echo(f"{ref}: {was}; its tokens and password no longer work, {state.sessions_ended} page "
                   "session(s) ended")  # fmt: skip
    else:
        click.echo(
            f"{ref}: {'enabled' if state.changed else 'was not disabled'}; its tokens and password work again"
        )


@group.command("disable")
@click.argument("principal", metavar="ORG/NAME")
@click.option("--reason", help="Why (recorded in the audit log), e.g. '离职' or a ticket number.")
@pass_context
@handle_errors
def disable(ctx: Context, principal: str, reason: str | None) -> None:
    """Disable (offboard) principal ORG/NAME: from its next request on, its API tokens and client certificates
    authenticate nobody, its page sessions are ended and its password is refused. Audited."""
    _set_disabled(ctx, principal, reason, disabled=True)


@group.command("enable")
@click.argument("principal", metavar="ORG/NAME")
@click.option("--reason", help="Why (recorded in the audit log).")
@pass_context
@handle_errors
def enable(ctx: Context, principal: str, reason: str | None) -> None:
    """Enable principal ORG/NAME again: its unrevoked tokens and its password work again. Audited."""
    _set_disabled(ctx, principal, reason, disabled=False)
