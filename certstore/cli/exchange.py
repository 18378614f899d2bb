"""``certstore exchange``: the front-end database exchange (数据库前置机交换) — init-frontend, run, status."""

from __future__ import annotations

import json
import logging
import os
from datetime import timedelta
from pathlib import Path
from typing import Any

import click

from certstore.cli.common import Context, Failure, handle_errors, pass_context, print_json, read_file
from certstore.exchange.cycle import DEFAULT_BATCH_SIZE
from certstore.exchange.frontend import init_frontend
from certstore.exchange.planning import PlanningPool, RepositoryPlanning
from certstore.exchange.sealing import ApplicationSealer, SealingPool, default_sealing_workers
from certstore.exchange.worker import DEFAULT_INTERVAL, ExchangeSource, ExchangeWorker
from certstore.services.catalogue import list_entries, load_shipped
from certstore.services.exchange_metrics import REGISTRY, exchange_status

__all__ = ["group", "parse_source", "read_sources"]

SOURCES_FILE = "exchange-sources.json"
#: ``exchange run --once`` exit status when a cycle ended early for a reason that is not a row's fault (the
#: repository or a front-end unreachable, the sealing key unusable) or a source's cycle could not start.
EXIT_CYCLE_FAILED = 5


@click.group("exchange")
def group() -> None:
    """The exchange with agencies' front-end databases (数据库前置机)."""


@group.command("init-frontend")
@click.argument("url")
@handle_errors
def init_frontend_command(url: str) -> None:
    """Create the front-end tables at URL (any SQLAlchemy URL; existing tables are kept)."""
    try:
        created = init_frontend(url)
    except Exception as exc:  # driver missing, unreachable, no permission: say so, exit 3
        raise Failure(f"cannot create the front-end tables at {url}: {exc}") from None
    click.echo(f"created: {', '.join(created)}" if created else "all front-end tables exist already")


def parse_source(value: str, known: list[ExchangeSource] | None = None) -> ExchangeSource:
    """``NAME=ISSUERCODE=URL`` (the URL may itself contain ``=``), or a bare URL naming a source of the sources
    file (``known``), which gives its name and issuer code."""
    parts = value.split("=", 2)
    if len(parts) == 3 and "://" in parts[2] and "://" not in parts[0]:
        try:
            return ExchangeSource(parts[0], parts[2], parts[1])
        except ValueError as exc:
            raise Failure(f"--source {value!r}: {exc}") from None
    for source in known or []:
        if source.url == value:
            return source
    raise Failure(
        f"--source {value!r}: give NAME=ISSUERCODE=URL (e.g. "
        "zz-natres=11410100990000017F=sqlite:////srv/frontend/natres.db), or a URL listed in the sources file"
    )


def _certstore_env() -> dict[str, str]:
    """The ``CERTSTORE_*`` settings of this process, for the sealing workers (as ``certstore import`` does)."""
    return {k: v for k, v in os.environ.items() if k.startswith("CERTSTORE_")}


def read_sources(path: Path) -> list[ExchangeSource]:
    """A sources file: JSON ``{"sources": [{"name", "issuer_code", "url" | "url_env"}, ...]}`` (``url_env``
    names an environment variable holding the URL, to keep passwords out of the file)."""
    try:
        document = json.loads(read_file(path, "sources file"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise Failure(f"{path}: not JSON ({exc})") from None
    items = document.get("sources") if isinstance(document, dict) else document
    if not isinstance(items, list):
        raise Failure(f'{path}: expected {{"sources": [...]}}')
    sources = []
    for index, item in enumerate(items):
        where = f"{path}: sources[{index}]"
        if not isinstance(item, dict):
            raise Failure(f"{where}: expected an object with name, issuer_code and url (or url_env)")
        url = item.get("url")
        if url is None and isinstance(item.get("url_env"), str):
            url = os.environ.get(item["url_env"])
            if not url:
                raise Failure(f"{where}: environment variable {item['url_env']} is not set")
        try:
            sources.append(
                ExchangeSource(str(item.get("name", "")), str(url or ""), str(item.get("issuer_code", "")))
            )
        except ValueError as exc:
            raise Failure(f"{where}: {exc}") from None
    return sources


@group.command("run")
@click.option(
    "--source",
    "source_specs",
    multiple=True,
    metavar="NAME=ISSUERCODE=URL",
    help="A front-end database: source name, the agency's credit code, SQLAlchemy URL (or just a URL listed in "
    "the sources file). Repeatable; without it every source of the sources file runs.",
)
@click.option(
    "--sources",
    "sources_file",
    type=click.Path(path_type=Path, dir_okay=False),
    help=f"JSON sources file (default: <data-dir>/{SOURCES_FILE} if it exists).",
)
@click.option("--interval", type=click.FloatRange(min=1), default=DEFAULT_INTERVAL, show_default=True,
              help="Seconds between the starts of two cycles.")  # fmt: skip
@click.option("--once", is_flag=True, help="Run one cycle of every source and exit.")
@click.option("--batch-size", type=click.IntRange(min=1), default=DEFAULT_BATCH_SIZE, show_default=True,
              help="Front-end rows applied per repository transaction.")  # fmt: skip
@click.option("--gap-grace", type=click.FloatRange(min=0), default=600, show_default=True,
              help="Seconds a missing sequence number is waited for before it counts as rolled back.")  # fmt: skip
@click.option("--seal/--no-seal", default=True, show_default=True,
              help="Seal versions sent without a file (as the API does), or store them without a file.")  # fmt: skip
@click.option(
    "--workers",
    type=click.IntRange(0, 64),
    default=None,
    help="Sealing worker processes for versions sent without a file (default: one per CPU and one more, which "
    "seals while the others wait on their files' fsyncs; 0 seals in this process). With --no-seal, any number "
    "but 0 starts one process that plans the certificate rows ahead of their turn. Commits stay in this "
    "process, in seq order.",
)
@click.option("--worker", "worker_name", help="This worker's name in leases and logs (default host:pid).")
@click.option(
    "--metrics-port", type=click.IntRange(min=1, max=65535), help="Serve Prometheus metrics on this port."
)
@click.option("--json", "as_json", is_flag=True, help="With --once: print the cycle statistics as JSON.")
@pass_context
@handle_errors
def run(
    ctx: Context,
    source_specs: tuple[str, ...],
    sources_file: Path | None,
    interval: float,
    once: bool,
    batch_size: int,
    gap_grace: float,
    seal: bool,
    workers: int | None,
    worker_name: str | None,
    metrics_port: int | None,
    as_json: bool,
) -> None:
    """Run the exchange task: every --interval seconds, read each source's new rows into the repository and
    write receipts back. Sources: --source NAME=ISSUERCODE=URL (repeatable) and/or --sources FILE. With --once
    the exit status is 5 when a cycle ended early for a reason that is not a row's fault (or could not start)."""
    default_file = ctx.data_dir / SOURCES_FILE
    listed_file = sources_file or (default_file if default_file.is_file() else None)
    listed = read_sources(listed_file) if listed_file is not None else []
    # --source picks sources (a bare URL: from the sources file); without --source, the file's all run.
    sources = [parse_source(spec, listed) for spec in source_specs] if source_specs else listed
    if not sources:
        raise Failure(f"no sources: give --source NAME=ISSUERCODE=URL or --sources FILE (or {default_file})")
    app = ctx.application()
    if not list_entries(app.repo):
        load_shipped(app.repo)
    keystore = app.keystore
    trust = app.trust if keystore.exists() else None
    maker = None
    if seal:
        if not keystore.exists():
            raise Failure("no key store to seal with: run 'certstore keys init' (or pass --no-seal)")
        maker = app.file_maker()
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if metrics_port is not None:
        from prometheus_client import start_http_server

        start_http_server(metrics_port, registry=REGISTRY)
    processes = default_sealing_workers() if workers is None else workers
    env = _certstore_env()
    # sealing on all cores: a pool of worker processes seals, this process commits (certstore.exchange.sealing)
    sealer = (
        SealingPool(ApplicationSealer(ctx.data_dir, env), processes, blobs=app.repo.blobs)
        if maker is not None and processes > 0
        else None
    )
    # without sealing: one process plans the rows ahead while this one commits (certstore.exchange.planning)
    planning = (
        PlanningPool(RepositoryPlanning(ctx.data_dir, env)) if maker is None and processes > 0 else None
    )
    worker = ExchangeWorker(
        app, sources, file_maker=maker, interval=interval, trust=trust, worker=worker_name,
        batch_size=batch_size, gap_grace=timedelta(seconds=gap_grace), sealer=sealer, planning=planning,
    )  # fmt: skip
    if not once:
        worker.run_forever()
        return
    try:
        results = worker.run_once()
    finally:
        worker.close()
    failed = bool(worker.failed) or any(r.error for r in results)
    if as_json:
        print_json([r.to_dict() for r in results])
        if failed:
            raise click.exceptions.Exit(EXIT_CYCLE_FAILED)
        return
    for stats in results:
        click.echo(
            f"{stats.source}: seen {stats.seen}, accepted {stats.accepted}, rejected {stats.rejected}, "
            f"deferred {stats.deferred}, lag {stats.lag_seconds or 0:.1f} s, {stats.duration_seconds or 0:.2f} s"
            + (f" — error: {stats.error}" if stats.error else "")
        )
    skipped = {s.name for s in sources} - {r.source for r in results} - set(worker.failed)
    for name in sorted(skipped):
        click.echo(f"{name}: skipped (another worker holds it)")
    for name, why in sorted(worker.failed.items()):
        click.echo(f"{name}: the cycle could not start — {why}", err=True)
    if failed:
        raise click.exceptions.Exit(EXIT_CYCLE_FAILED)


@group.command("status")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_context
@handle_errors
def status(ctx: Context, as_json: bool) -> None:
    """Per source: last cycle (counts, lag, duration, error), lease, cursors and totals."""
    statuses = exchange_status(ctx.repository())
    if as_json:
        print_json([s.to_dict() for s in statuses])
        return
    if not statuses:
        click.echo("no exchange sources yet (run 'certstore exchange run')")
        return
    for s in statuses:
        data: dict[str, Any] = s.to_dict()
        last = data["last_cycle"]
        lag = "-" if s.last_lag_seconds is None else f"{s.last_lag_seconds:.1f} s"
        duration = "-" if s.last_duration_seconds is None else f"{s.last_duration_seconds:.2f} s"
        click.echo(
            f"{s.source}: lag {lag}, last cycle {last['started_at'] or '-'} ({duration}) by {s.last_worker or '-'}"
        )
        click.echo(
            f"  last cycle rows: seen {s.last_seen}, accepted {s.last_accepted}, rejected {s.last_rejected}"
        )
        if s.last_finished_at is None and s.last_started_at is not None:
            click.echo("  last cycle did not finish (worker stopped or killed)")
        if s.last_error:
            click.echo(f"  error: {s.last_error}")
        click.echo(
            f"  totals: accepted {s.accepted_total}, rejected {s.rejected_total}, receipts unsent {s.receipts_unsent}"
        )
        if s.late_total or s.given_up_total:
            click.echo(
                f"  late commits: {s.late_total} row(s) committed after their number was given up, applied late; "
                f"{s.given_up_total} number(s) given up as rolled back"
            )
        if s.lease_holder:
            click.echo(
                f"  lease: {s.lease_holder} until {s.lease_until.isoformat() if s.lease_until else '-'}"
            )
        for t in s.tables:
            gaps = (
                f", {t.open_gaps} waiting since {t.oldest_gap_since.isoformat()}"
                if t.open_gaps and t.oldest_gap_since
                else ""
            )
            click.echo(f"  {t.table}: watermark {t.watermark}{gaps}")


def _attach_reports() -> None:
    """Commands kept in their own modules (deadline reports, the upward push) join this group."""
    from certstore.cli.exchange_reports import late_command
    from certstore.cli.exchange_upward import push_upward_command

    group.add_command(late_command)
    group.add_command(push_upward_command)


_attach_reports()
