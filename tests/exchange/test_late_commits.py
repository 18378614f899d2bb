"""Late commits (issue 18 item 4): on a PostgreSQL front-end a transaction held past the gap grace commits a row
whose sequence number was already given up as a rolled-back write. The next cycle finds it among the numbers
given up, applies it exactly once (the ledger), answers it with a receipt and reports it late: ``late_commits`` in
``exchange status`` and the ``certstore_exchange_late_commits`` metric."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import select

from certstore.app import Application
from certstore.exchange.cursor import GIVEN_UP, LATE
from certstore.exchange.frontend import FrontendWriter
from certstore.exchange.worker import ExchangeSource, run_cycle
from certstore.services import certificates
from certstore.services.exchange_metrics import exchange_status, metrics_text
from certstore.store.models import ExchangeAppliedRow
from certstore.store.repository import Repository
from tests.cli.conftest import Cli, cli  # noqa: F401 - the fixture
from tests.exchange.support import ISSUER, Clock, document, number

pytestmark = pytest.mark.postgres


@pytest.fixture
def pg_frontend(postgres_server: object) -> Iterator[str]:
    """A PostgreSQL front-end database of its own (dropped afterwards)."""
    name = postgres_server.create_database()  # type: ignore[attr-defined]
    try:
        yield postgres_server.url(name)  # type: ignore[attr-defined]
    finally:
        postgres_server.drop_database(name)  # type: ignore[attr-defined]


def _ledger(repo: Repository, source: str) -> list[tuple[int, str]]:
    with repo.db.session() as session:
        return sorted(
            (int(seq), outcome)
            for seq, outcome in session.execute(
                select(ExchangeAppliedRow.seq, ExchangeAppliedRow.outcome).where(
                    ExchangeAppliedRow.source == source, ExchangeAppliedRow.table_name == "fe_certificates"
                )
            )
        )


def test_a_row_committed_after_its_gap_was_given_up_is_applied_and_reported_late(
    app: Application, repo: Repository, clock: Clock, pg_frontend: str
) -> None:
    """The slow transaction's number is a gap, given up after the grace (logged, ``given_up`` in the ledger);
    when it commits, the next cycle applies the row once, writes its receipt, and status and metrics count it
    late. Later cycles apply nothing more."""
    source = ExchangeSource("pg-late", pg_frontend, ISSUER)
    grace = timedelta(seconds=60)
    with FrontendWriter(pg_frontend) as first, FrontendWriter(pg_frontend, create=False) as second:
        with first.transaction() as slow:
            low = first.certificate(ISSUER, number(30), 1, document(30), conn=slow)
            high = second.certificate(ISSUER, number(31), 1, document(31))
            stats = run_cycle(app, source, file_maker=None, worker="w", gap_grace=grace)
            assert (stats.accepted, stats.open_gaps, stats.error) == (1, 1, None)
            clock.advance(seconds=100)  # the transaction is held past the grace
            stats = run_cycle(app, source, file_maker=None, worker="w", gap_grace=grace)
            assert (stats.abandoned, stats.open_gaps, stats.lag_seconds) == (1, 0, 0.0)
            assert _ledger(repo, source.name) == [(low, GIVEN_UP), (high, "accepted")]
            [status] = exchange_status(repo)
            assert (status.late_total, status.given_up_total) == (0, 1)
        # the slow transaction commits now
        stats = run_cycle(app, source, file_maker=None, worker="w", gap_grace=grace)
        assert (stats.seen, stats.accepted, stats.error) == (1, 1, None)
        assert first.receipt("fe_certificates", low).accepted
        assert certificates.stored_version(repo, ISSUER, number(30)) is not None
        assert _ledger(repo, source.name) == [(-low, LATE), (low, "accepted"), (high, "accepted")]
        again = run_cycle(app, source, file_maker=None, worker="w", gap_grace=grace)
        assert (again.seen, again.accepted, again.rejected) == (0, 0, 0)
    [status] = exchange_status(repo)
    assert (status.late_total, status.given_up_total, status.accepted_total) == (1, 0, 2)
    assert status.to_dict()["late_commits"] == {"rows": 1, "given_up": 0}
    assert f'certstore_exchange_late_commits{{source="{source.name}"}} 1.0' in metrics_text(repo).decode()


def test_exchange_status_reports_a_late_row(cli: Cli, pg_frontend: str) -> None:  # noqa: F811
    """End to end with the command line and a one-second grace: ``exchange run --once`` gives the held number
    up, applies the row once it commits, and ``exchange status`` names it late."""
    spec = f"pg={ISSUER}={pg_frontend}"
    run = ("exchange", "run", "--once", "--no-seal", "--json", "--gap-grace", "1", "--source", spec)
    with FrontendWriter(pg_frontend) as first, FrontendWriter(pg_frontend, create=False) as second:
        with first.transaction() as slow:
            low = first.certificate(ISSUER, number(40), 1, document(40), conn=slow)
            second.certificate(ISSUER, number(41), 1, document(41))
            assert cli(*run).code == 0
            time.sleep(1.2)
            result = cli(*run)
            assert result.code == 0, result.err
            assert result.json()[0]["abandoned"] == 1  # type: ignore[index]
        result = cli(*run)
        assert result.code == 0, result.err
        assert result.json()[0]["accepted"] == 1  # type: ignore[index]
        assert first.receipt("fe_certificates", low).accepted
    [entry] = cli("exchange", "status", "--json").json()  # type: ignore[misc]
    assert entry["late_commits"] == {"rows": 1, "given_up": 0}
    assert entry["totals"]["accepted"] == 2 and entry["last_cycle"]["lag_seconds"] == 0.0
    text = cli("exchange", "status").out
    assert "late commits: 1 row(s) committed after their number was given up, applied late" in text
