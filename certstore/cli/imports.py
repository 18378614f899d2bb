"""``certstore import FILE.csv|FILE.xlsx --catalogue CODE [--workers N]``: bulk import of legacy certificates.

Exit codes (docs/cli.md): 0 every row imported or already stored, 1 some rows rejected (listed in the rejects file),
3 the table cannot be read or does not fit the catalogue type. Interrupted with Ctrl-C: the chunks in flight
finish, the counts so far are printed, exit 130 — running the same command again continues where it stopped.
"""

from __future__ import annotations

import csv
import os
import sys
from pathlib import Path

import click

from certstore.access import Actor
from certstore.cli.common import Context, ExitCode, Failure, handle_errors, pass_context
from certstore.forms import TableError
from certstore.services.calls import Call, Origin, Via
from certstore.services.catalogue import list_entries, load_shipped
from certstore.services.imports import (
    DEFAULT_CHUNK_ROWS,
    ImportProgress,
    ImportReport,
    ImportSettings,
    default_workers,
    import_table,
)

__all__ = ["import_command"]


@click.command("import")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False, exists=True))
@click.option(
    "--catalogue", "code", required=True, help="Catalogue code of the certificate type in the table."
)
@click.option(
    "--workers",
    type=click.IntRange(0, 64),
    default=None,
    help="Sealing worker processes (default: one per CPU; 0 seals in this process).",
)
@click.option(
    "--chunk-rows",
    type=click.IntRange(1, 10_000),
    default=DEFAULT_CHUNK_ROWS,
    show_default=True,
    help="Rows per worker task and per database commit.",
)
@click.option(
    "--rejects",
    "rejects_path",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Where to list rejected rows (default: FILE's name + .rejected.csv, next to it).",
)
@click.option("--seal", "seal_name", help="Key-store seal to use instead of the catalogue type's own.")
@click.option(
    "--actor",
    metavar="USER",
    help="Who imports (the operator named in the audit entries and lifecycle records; default: this OS user).",
)
@pass_context
@handle_errors
def import_command(
    ctx: Context,
    file: Path,
    code: str,
    workers: int | None,
    chunk_rows: int,
    rejects_path: Path | None,
    seal_name: str | None,
    actor: str | None,
) -> None:
    """Import and seal legacy certificates (存量证照) from a CSV or XLSX table of one catalogue type.

    The columns are those of the agency batch template (``*标签(field.name)``, or just the labels). Each row is
    validated like an API push, sealed with the type's seal and stored; rows already stored with the same
    content are skipped, so an interrupted import is resumed by running it again. Prints the counts and where
    rejected rows are listed. Every certificate imported has its audit entry (certificate.import, the
    operator as actor); the run adds a summary entry (import.run)."""
    app = ctx.application()
    repo = app.repo
    if not list_entries(repo):
        load_shipped(repo)
    settings = ImportSettings(
        data_dir=ctx.data_dir,
        catalogue_code=code,
        env={k: v for k, v in os.environ.items() if k.startswith("CERTSTORE_")},
        verify_base_url=app.sealing_base_url(),
        seal=seal_name,
    )
    call = Call(Actor.operator(user=actor), Origin(Via.IMPORT, source=file.name))
    count = default_workers() if workers is None else workers
    click.echo(f"importing {file.name} into {code} with {count or 'no'} sealing worker(s)", err=True)
    with click.progressbar(
        length=1, label="导入", show_eta=True, show_percent=True, file=sys.stderr, item_show_func=_rate
    ) as bar:
        shown = 0

        def on_progress(progress: ImportProgress) -> None:
            nonlocal shown
            if progress.total is not None and bar.length != max(progress.total, progress.done):
                bar.length = max(progress.total, progress.done, 1)
            bar.current_item = progress  # type: ignore[assignment]
            bar.update(progress.done - shown)
            shown = progress.done

        try:
            report = import_table(
                file, settings, workers=workers, chunk_rows=chunk_rows, on_progress=on_progress, repo=repo,
                call=call, audit=app.audit,
            )  # fmt: skip
        except TableError as exc:
            raise Failure(str(exc)) from None
    _print(report, file, rejects_path)


def _rate(progress: object) -> str | None:
    if not isinstance(progress, ImportProgress):
        return None
    return f"{progress.done} 行, {progress.rate:,.0f} 行/秒"


def _print(report: ImportReport, file: Path, rejects_path: Path | None) -> None:
    minutes, seconds = divmod(report.seconds, 60)
    rate = report.rows / report.seconds if report.seconds > 0 else 0.0
    click.echo(f"imported: {report.imported}")
    click.echo(f"already stored: {report.existing}")
    click.echo(f"rejected: {report.rejected}")
    click.echo(f"time: {int(minutes)}m{seconds:04.1f}s ({rate:,.0f} rows/s)")
    if report.rejections:
        target = rejects_path or file.with_name(file.name + ".rejected.csv")
        with target.open("w", encoding="utf-8-sig", newline="") as out:
            writer = csv.writer(out, lineterminator="\r\n")
            writer.writerow(["行号", "证照编号", "字段", "问题"])
            for rejection in report.rejections:
                for field, message in rejection.problems:
                    writer.writerow([rejection.line, rejection.certificate_number or "", field, message])
        click.echo(f"rejected rows listed in {target}")
    if report.interrupted:
        click.echo("interrupted: run the same command again to import the remaining rows", err=True)
        sys.exit(130)
    if report.rejections:
        sys.exit(int(ExitCode.INVALID))
