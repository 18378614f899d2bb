"""``certstore token``: API credentials for principals (operator bootstrap and maintenance)."""

from __future__ import annotations

import click

from certstore.access import Role
from certstore.cli.common import Context, Failure, handle_errors, pass_context, print_json
from certstore.services import access


@click.group("token")
def group() -> None:
    """API tokens: create, list, revoke."""


@group.command("create")
@click.option(
    "--role",
    required=True,
    type=click.Choice([r.value for r in Role if r not in (Role.OPERATOR, Role.HOLDER)]),
    help="The principal's role.",
)
@click.option("--org", "org", required=True, help="Organisation code (e.g. its USCC); registered if new.")
@click.option("--org-name", help="The organisation's name, when registering it.")
@click.option("--name", help="Principal name (default: the role).")
@click.option("--days", type=click.IntRange(min=1), default=90, show_default=True, help="Days until expiry.")
@pass_context
@handle_errors
def create(ctx: Context, role: str, org: str, org_name: str | None, name: str | None, days: int) -> None:
    """Create an API token; it is printed once, on the last line, and never stored."""
    try:
        issued = access.create_token(
            ctx.repository(),
            role=Role(role),
            organisation_code=org,
            organisation_name=org_name,
            name=name,
            days=days,
        )
    except ValueError as exc:
        raise Failure(str(exc)) from None
    expires = issued.expires_at.isoformat() if issued.expires_at else "never"
    click.echo(
        f"principal {issued.principal.ref} ({issued.principal.role.value}), expires {expires}", err=True
    )
    click.echo(f"token id {issued.lookup}; keep the token secret, it is shown only now", err=True)
    click.echo(issued.token)


@group.command("list")
@click.option("--org", "org", help="Only this organisation's tokens.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_context
@handle_errors
def list_(ctx: Context, org: str | None, as_json: bool) -> None:
    """List tokens (never their secrets)."""
    rows = [
        {
            "id": t.lookup,
            "kind": t.kind,
            "principal": t.principal.ref,
            "role": t.principal.role.value,
            "created_at": t.created_at.isoformat(),
            "expires_at": t.expires_at.isoformat() if t.expires_at else None,
            "revoked_at": t.revoked_at.isoformat() if t.revoked_at else None,
            "last_used_at": t.last_used_at.isoformat() if t.last_used_at else None,
        }
        for t in access.list_tokens(ctx.repository(), organisation_code=org)
    ]
    if as_json:
        print_json(rows)
        return
    for row in rows:
        state = "revoked" if row["revoked_at"] else f"expires {row['expires_at'] or 'never'}"
        click.echo(f"{row['id']}  {row['kind']:6}  {row['role']:8}  {row['principal']}  {state}")


@group.command("revoke")
@click.argument("token_id")
@pass_context
@handle_errors
def revoke(ctx: Context, token_id: str) -> None:
    """Revoke token TOKEN_ID (the id printed by create/list); effective for the next request."""
    try:
        info = access.revoke_token(ctx.repository(), token_id)
    except LookupError as exc:
        raise Failure(str(exc)) from None
    click.echo(f"revoked {info.lookup} of {info.principal.ref}")
