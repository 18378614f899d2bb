"""``certstore catalogue``: the certificate types (证照目录) the repository knows."""

from __future__ import annotations

import click

from certstore.catalogue import shipped_entries
from certstore.cli.common import Context, Failure, handle_errors, pass_context, print_json
from certstore.records import draft_to_json, example_draft
from certstore.services.catalogue import UnknownCatalogueError, get_entry, list_entries, load_shipped
from certstore.store.repository import Repository


def _repository(ctx: Context) -> Repository:
    """The repository; a new one (no catalogue yet) starts with the shipped definitions."""
    repo = ctx.repository()
    if not list_entries(repo):
        load_shipped(repo)
    return repo


@click.group("catalogue")
def group() -> None:
    """Certificate types (证照目录): list, show, examples, shipped definitions."""


@group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_context
@handle_errors
def list_(ctx: Context, as_json: bool) -> None:
    """List catalogue types: code, name, issuer, version."""
    entries = list_entries(_repository(ctx))
    rows = [
        {
            "code": e.code,
            "name": e.name,
            "category": str(e.category),
            "issuer": e.issuer.name,
            "issuer_code": e.issuer.credit_code,
            "version": e.version,
        }
        for e in entries
    ]
    if as_json:
        print_json(rows)
        return
    for row in rows:
        click.echo(f"{row['code']}  v{row['version']}  {row['name']}  —  {row['issuer']}")


@group.command("show")
@click.argument("code")
@click.option("--version", "version", type=int, help="A given version instead of the latest approved one.")
@pass_context
@handle_errors
def show(ctx: Context, code: str, version: int | None) -> None:
    """Print the catalogue entry CODE as JSON (the definition document)."""
    print_json(get_entry(_repository(ctx), code, version).to_document())


@group.command("example")
@click.argument("code")
@pass_context
@handle_errors
def example(ctx: Context, code: str) -> None:
    """Print a valid example DATA.json for type CODE (usable with 'certstore issue')."""
    repo = _repository(ctx)
    try:
        entry = get_entry(repo, code)
    except UnknownCatalogueError:
        known = ", ".join(e.code for e in list_entries(repo))
        raise Failure(f"unknown catalogue code {code!r} (known: {known})") from None
    print_json(draft_to_json(example_draft(entry)))


@group.command("load")
@pass_context
@handle_errors
def load(ctx: Context) -> None:
    """Register the shipped definitions (schemas/catalogue) in the repository; idempotent."""
    added = load_shipped(ctx.repository())
    click.echo(f"{len(added)} added, {len(shipped_entries()) - len(added)} already present")
