"""Planning a data-only cycle's certificate rows ahead in another process (``certstore.exchange.planning``): the
cycle takes a plan only as it would make it now, and everything — repository, ledger, receipts — equals a cycle
planned in one process; a planning process that fails leaves the cycle to plan."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert, select

from certstore.app import Application
from certstore.exchange.cycle import run_cycle
from certstore.exchange.frontend import CERTIFICATE_TABLE, FrontendWriter, frontend_engine
from certstore.exchange.plan import AheadPlan, CertificatePlan, Planner
from certstore.exchange.planning import PlanningPool, SameRepository, repository_twin
from certstore.exchange.reading import FileRow, frontend_columns
from certstore.exchange.worker import ExchangeSource
from certstore.identifiers import CertificateIdentifier
from certstore.services.deadlines import CLOCK_SKEW
from certstore.store.models import ExchangeAppliedRow
from certstore.store.repository import Repository
from tests.cli.conftest import Cli, cli  # noqa: F401 - the fixture
from tests.exchange.support import ISSUER, assert_repository_equals, document, number
from tests.support.clock import Clock


def _deliver(writer: FrontendWriter, offset: int = 0) -> None:
    """Versions 1 and 2 (interleaved, some a batch apart), a renewal, a repeat and status changes."""
    for i in range(offset, offset + 24):
        writer.certificate(ISSUER, number(i), 1, document(i))
        if (i - offset) % 3 == 2:
            writer.certificate(ISSUER, number(i - 2), 2, document(i - 2, 2))
    writer.certificate(ISSUER, number(offset + 1), 1, document(offset + 1))  # a repeat
    writer.certificate(
        ISSUER, number(offset + 1), 2, document(offset + 1, 2, valid_until="2031-12-31"), operation="renew"
    )
    writer.status_change(ISSUER, number(offset + 4), "suspend", "挂起: 核查")
    writer.status_change(ISSUER, number(offset + 5), "revoke", "吊销: 违法")


def _outcomes(writer: FrontendWriter) -> list[tuple[str, int, str, str | None, tuple[Any, ...]]]:
    return [(r.table_name, r.seq, r.status, r.identifier, r.problems) for r in writer.receipts()]


def test_a_cycle_planned_ahead_equals_one_planned_in_one_process(
    app: Application, repo: Repository, source: ExchangeSource, tmp_path: Path
) -> None:
    with FrontendWriter(source.url) as writer:
        _deliver(writer)
    with PlanningPool(repository_twin(repo)) as pool:
        stats = run_cycle(app, source, file_maker=None, worker="w", batch_size=7, planning=pool)
        assert stats.error is None
        # every certificate row after the first batch (the backlog) was planned there, the repeat's too
        assert (pool.adopted, pool.replanned) == (34 - 7, 0)
    assert (stats.seen, stats.accepted, stats.rejected) == (36, 36, 0)
    assert_repository_equals(repo, source.url, source.name)
    with repo.db.session(readonly=True) as session:
        certificate_seqs = session.scalars(
            select(ExchangeAppliedRow.seq)
            .where(
                ExchangeAppliedRow.source == source.name, ExchangeAppliedRow.table_name == "fe_certificates"
            )
            .order_by(ExchangeAppliedRow.id)
        ).all()
    assert certificate_seqs == sorted(certificate_seqs)  # committed in seq order
    with FrontendWriter(source.url, create=False) as writer:
        ahead = _outcomes(writer)

    # the same delivery planned in one process (a twin front-end of the same repository: every version is then
    # found identical to the one stored, so the receipts name the same identifiers)
    other = ExchangeSource("zz-one-process", f"sqlite:///{tmp_path / 'other.db'}", ISSUER)
    with FrontendWriter(other.url) as writer:
        _deliver(writer)
    single = run_cycle(app, other, file_maker=None, worker="w", batch_size=7)
    assert (single.seen, single.accepted, single.error) == (stats.seen, stats.accepted, None)
    with FrontendWriter(other.url, create=False) as writer:
        assert _outcomes(writer) == ahead


def test_odd_rows_get_the_receipts_of_a_cycle_in_one_process(
    app: Application, repo: Repository, source: ExchangeSource, tmp_path: Path
) -> None:
    """Rejected rows are planned (and named) by the cycle itself, whatever the planning process made of them."""

    def deliver(writer: FrontendWriter, offset: int) -> None:
        for i in range(offset, offset + 6):
            writer.certificate(ISSUER, number(i), 1, document(i))
        writer.certificate(ISSUER, number(offset + 6), 1, document(offset + 6, holder={"name": "x\t"}))
        writer.certificate(ISSUER, number(offset + 7), 1000, document(offset + 7))
        writer.certificate(ISSUER, number(offset + 8), 1, "{not json")
        writer.certificate(ISSUER, number(offset + 9), 3, document(offset + 9, 3))  # no version 2
        writer.certificate(ISSUER, number(offset + 10), 1, document(offset + 10))

    with FrontendWriter(source.url) as writer:
        deliver(writer, 0)
    with PlanningPool(repository_twin(repo)) as pool:
        stats = run_cycle(app, source, file_maker=None, worker="w", batch_size=4, planning=pool)
        assert pool.adopted == 8 - 4 and pool.replanned == 0  # the valid rows after the first batch
    other = ExchangeSource("zz-one-process", f"sqlite:///{tmp_path / 'other.db'}", ISSUER)
    with FrontendWriter(other.url) as writer:
        deliver(writer, 100)
    single = run_cycle(app, other, file_maker=None, worker="w", batch_size=4)
    assert (stats.accepted, stats.rejected) == (single.accepted, single.rejected) == (7, 4)

    def problems(url: str) -> list[tuple[int, str, tuple[str, ...]]]:
        with FrontendWriter(url, create=False) as writer:
            return [(r.seq, r.status, tuple(p[0] for p in r.problems)) for r in writer.receipts()]

    assert problems(source.url) == problems(other.url)


class _Rows:
    """One front-end's certificate rows as a cycle reads them (the file as ``has_file``)."""

    def __init__(self, url: str) -> None:
        self.engine = frontend_engine(url)
        self.columns = frontend_columns(self.engine, CERTIFICATE_TABLE)

    def __call__(self) -> list[Any]:
        with self.engine.connect() as conn:
            return list(conn.execute(select(*self.columns).order_by(CERTIFICATE_TABLE.c.seq)).all())


def test_a_plan_is_taken_only_as_this_process_would_make_it(
    app: Application, repo: Repository, source: ExchangeSource, clock: Clock
) -> None:
    with FrontendWriter(source.url) as writer:
        writer.certificate(ISSUER, number(1), 1, document(1))
        writer.certificate(ISSUER, number(2), 1, document(2))
    rows = _Rows(source.url)
    first, second = rows()
    table, now = CERTIFICATE_TABLE.name, clock()
    theirs = Planner(
        SameRepository(repo.db.url, repo.blobs, repo.holder_key, repo.serial_key)(), source, trust=None
    )
    plan = theirs.certificate(table, FileRow(first, None), now)
    assert isinstance(plan, CertificatePlan)
    ahead = theirs.ahead(plan, first)
    ours = Planner(repo, source, trust=None)

    adopted = ours.adopt(table, ahead, first, now)
    made = ours.certificate(table, FileRow(first, None), now)
    assert isinstance(adopted, CertificatePlan) and isinstance(made, CertificatePlan)
    assert dataclasses.replace(adopted, call=None) == dataclasses.replace(made, call=None)
    assert adopted.call.origin == made.call.origin and adopted.call.actor == made.call.actor

    # another row (or the same seq read with other values)
    assert ours.adopt(table, ahead, second, now) is None
    # planned with another repository's keys
    stranger = Planner(
        Repository(db=repo.db, blobs=repo.blobs, holder_key=os.urandom(32), serial_key=repo.serial_key),
        source, trust=None,
    )  # fmt: skip
    assert ours.adopt(table, stranger.ahead(plan, first), first, now) is None
    # planned with another version of the catalogue type
    assert (
        ours.adopt(table, dataclasses.replace(ahead, entry=(ahead.entry[0], ahead.entry[1] + 1)), first, now)
        is None
    )
    # completed after the arrival as this process sees it (its clock behind the planning process's)
    assert ours.adopt(table, ahead, first, ahead.completed_at - CLOCK_SKEW - timedelta(seconds=1)) is None


def test_a_later_version_keeps_the_serial_stored_for_its_certificate(
    app: Application, repo: Repository, source: ExchangeSource, clock: Clock
) -> None:
    """A version 2 planned before version 1 was stored derives the serial; if the certificate was stored with
    another serial (issued before the serial key), the plan is made again here."""
    with FrontendWriter(source.url) as writer:
        writer.certificate(ISSUER, number(1), 1, document(1))
        writer.certificate(ISSUER, number(1), 2, document(1, 2))
    _first, second = _Rows(source.url)()
    table, now = CERTIFICATE_TABLE.name, clock()
    theirs = Planner(repo, source, trust=None)
    plan = theirs.certificate(table, FileRow(second, None), now)
    assert isinstance(plan, CertificatePlan)
    ahead = theirs.ahead(plan, second)
    assert run_cycle(app, source, file_maker=None, worker="w", batch_size=1).accepted == 2
    ours = Planner(repo, source, trust=None)
    ours.prefetch_serials([second])
    assert isinstance(ours.adopt(table, ahead, second, now), CertificatePlan)  # the stored serial: the same
    stored = plan.prepared.identifier
    legacy = CertificateIdentifier.build(stored.type_code, stored.issuer_code, "0" * 32, 2)
    other: AheadPlan = dataclasses.replace(ahead, prepared={**ahead.prepared, "identifier": legacy})
    assert ours.adopt(table, other, second, now) is None


def test_a_planning_process_that_fails_leaves_the_cycle_to_plan(
    app: Application, repo: Repository, source: ExchangeSource, caplog: pytest.LogCaptureFixture
) -> None:
    with FrontendWriter(source.url) as writer:
        _deliver(writer)
    broken = SameRepository(
        "sqlite:////nonexistent/dir/db.sqlite", repo.blobs, repo.holder_key, repo.serial_key
    )
    with caplog.at_level(logging.WARNING, "certstore.exchange"), PlanningPool(broken) as pool:
        stats = run_cycle(app, source, file_maker=None, worker="w", batch_size=7, planning=pool)
        assert (pool.adopted, pool.replanned) == (0, 0)
        assert (stats.seen, stats.accepted, stats.error) == (36, 36, None)
        assert_repository_equals(repo, source.url, source.name)
        assert "rows are planned in this process" in caplog.text
        with FrontendWriter(source.url, create=False) as writer:  # the next cycle tries a new process
            _deliver(writer, offset=100)
        again = run_cycle(app, source, file_maker=None, worker="w", batch_size=7, planning=pool)
        assert (again.seen, again.accepted, again.error, again.planned_ahead) == (36, 36, None, 0)


def test_exchange_run_no_seal_plans_a_backlog_ahead(cli: Cli, tmp_path: Path) -> None:  # noqa: F811
    """`exchange run --no-seal` plans ahead in a process of its own on the data directory's repository (its
    keys: every plan is taken); a delivery of less than a batch starts none."""
    url = f"sqlite:///{tmp_path / 'fe.db'}"
    assert cli("exchange", "init-frontend", url).code == 0
    with FrontendWriter(url, create=False) as writer:
        _deliver(writer)
    run = ("exchange", "run", "--once", "--no-seal", "--json", "--source", f"natres={ISSUER}={url}")
    result = cli(*run, "--batch-size", "7")
    assert result.code == 0, result.err
    [stats] = result.json()  # type: ignore[misc]
    assert (stats["accepted"], stats["rejected"], stats["planned_ahead"]) == (36, 0, 34 - 7)
    with FrontendWriter(url, create=False) as writer:
        writer.certificate(ISSUER, number(100), 1, document(100))
    [stats] = cli(*run, "--batch-size", "7").json()  # type: ignore[misc]
    assert (stats["accepted"], stats["planned_ahead"]) == (1, 0)
    with FrontendWriter(url, create=False) as writer:  # a backlog, and --workers 0: all in this process
        for i in range(101, 109):
            writer.certificate(ISSUER, number(i), 1, document(i))
    [stats] = cli(*run, "--workers", "0", "--batch-size", "4").json()  # type: ignore[misc]
    assert (stats["accepted"], stats["planned_ahead"]) == (8, 0)


def test_a_range_the_planning_process_cannot_read_is_planned_by_the_cycle(
    app: Application, repo: Repository, postgres_server: object
) -> None:
    """A PostgreSQL front-end with a time the driver cannot convert (`0001-01-01T00:00:00+14:00`, stored as BC):
    the planning process gives no plans for that range and goes on with the next; the cycle reads that range
    row by row, rejects the odd row under `completed_at` and applies the rest."""
    name = postgres_server.create_database()  # type: ignore[attr-defined]
    url = postgres_server.url(name)  # type: ignore[attr-defined]
    try:
        with FrontendWriter(url) as writer:
            for i in range(1, 6):
                writer.certificate(ISSUER, number(i), 1, document(i))
            with writer.engine.begin() as conn:
                conn.execute(
                    insert(CERTIFICATE_TABLE),
                    {"issuer_code": ISSUER, "certificate_number": number(6), "version": 1,
                     "data": json.dumps(document(6), ensure_ascii=False), "channel": "online",
                     "completed_at": "0001-01-01T00:00:00+14:00", "written_at": datetime.now(UTC)},
                )  # fmt: skip
            for i in range(7, 14):
                writer.certificate(ISSUER, number(i), 1, document(i))
        source = ExchangeSource("pg-odd", url, ISSUER)
        with PlanningPool(repository_twin(repo)) as pool:
            stats = run_cycle(app, source, file_maker=None, worker="w", batch_size=4, planning=pool)
            # seqs 1–4: the first batch; 5–8: the range it could not read; 9–13 planned there
            assert (stats.accepted, stats.rejected, stats.planned_ahead) == (12, 1, 5)
            assert (pool.adopted, pool.replanned) == (5, 0)
        with FrontendWriter(url, create=False) as writer:
            (odd,) = [r for r in writer.receipts() if r.status == "rejected"]
        assert (odd.seq, odd.problems[0][0]) == (6, "completed_at")
    finally:
        postgres_server.drop_database(name)  # type: ignore[attr-defined]
