"""``certstore db``: apply the schema migrations and show where the database stands.

The database is ``CERTSTORE_DATABASE_URL`` if set, else ``<data-dir>/certstore.db`` (SQLite).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import click
from sqlalchemy.exc import DBAPIError

from certstore.cli.common import Context, Failure, handle_errors, pass_context, print_json
from certstore.store.db import Database, DatabaseURLError, database_url, head_revision, mask_url, sqlite_path


@click.group("db")
def group() -> None:
    """The repository database: schema migrations and status."""


def _url(ctx: Context) -> str:
    try:
        return database_url(ctx.data_dir)
    except DatabaseURLError as exc:
        raise Failure(f"CERTSTORE_DATABASE_URL: {exc}") from None


@contextmanager
def _database(url: str) -> Iterator[Database]:
    """The database at ``url``; connection and SQL errors become a one-line ``error:`` message."""
    database = Database(url)
    try:
        yield database
    except DBAPIError as exc:
        detail = str(exc.orig).strip().splitlines()[0] if exc.orig is not None else str(exc)
        raise Failure(f"database {mask_url(url)}: {detail}") from None
    finally:
        database.dispose()


@group.command("upgrade")
@pass_context
@handle_errors
def upgrade(ctx: Context) -> None:
    """Apply the migrations up to the newest revision (creates the schema in an empty database)."""
    url = _url(ctx)
    with _database(url) as database:
        before, after = database.upgrade()
    click.echo(f"database: {mask_url(url)}")
    if before == after:
        click.echo(f"already at {after} (head)")
    else:
        click.echo(f"upgraded: {before or '(empty)'} → {after}")


@group.command("status")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_context
@handle_errors
def status(ctx: Context, as_json: bool) -> None:
    """Show the database URL (password hidden), its revision and the newest one."""
    url = _url(ctx)
    head = head_revision()
    path = sqlite_path(url)
    if path is not None and not path.exists():
        current = None  # do not create the file just to look at it
    else:
        with _database(url) as database:
            current = database.current_revision()
    if current == head:
        state = "up to date"
    elif current is None:
        state = "no schema: run `certstore db upgrade`"
    else:
        state = "behind: run `certstore db upgrade`"
    if as_json:
        print_json(
            {"database": mask_url(url), "current": current, "head": head, "up_to_date": current == head}
        )
        return
    click.echo(f"database: {mask_url(url)}")
    click.echo(f"current:  {current or '(none)'}")
    click.echo(f"head:     {head}")
    click.echo(f"status:   {state}")
