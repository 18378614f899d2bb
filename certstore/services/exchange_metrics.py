"""Observability of the exchange (交换监控): Prometheus metrics and ``certstore exchange status`` — a read model of
the exchange tables shared by the worker (an adapter), the API's ``/metrics`` and the command line.

Two views of the same facts:

- **In the worker process** (``certstore exchange run``): counters and gauges updated after every cycle —
  ``certstore_exchange_rows_total{source,outcome}`` (accepted | rejected | deferred),
  ``certstore_exchange_cycles_total{source,result}`` (ok | error | skipped: lease held elsewhere),
  ``certstore_exchange_lag_seconds{source}`` (age of the oldest change not applied),
  ``certstore_exchange_cycle_seconds{source}`` (histogram of cycle durations),
  ``certstore_exchange_open_gaps{source}``, ``certstore_exchange_last_cycle_timestamp_seconds{source}``.
  ``certstore exchange run --metrics-port N`` serves them.
- **From the repository database** (any process, e.g. the API's ``/metrics``): :func:`metrics_text` with a
  repository adds gauges read from ``exchange_cycles``/``exchange_cursors``/``exchange_applied`` — the last
  cycle of each source (``certstore_exchange_last_cycle_rows{source,outcome}``,
  ``certstore_exchange_last_cycle_lag_seconds``, ``..._duration_seconds``, ``..._finished_timestamp_seconds``,
  ``..._failed``), open gaps and receipts not yet written back.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from certstore.store.models import ExchangeAppliedRow, ExchangeCursorRow, ExchangeCycleRow, ExchangeLeaseRow
from certstore.store.repository import Repository


class CycleFigures(Protocol):
    """What :func:`observe_cycle` reads of a finished cycle (``certstore.exchange.cycle.CycleStats``)."""

    source: str
    accepted: int
    rejected: int
    deferred: int
    error: str | None
    lag_seconds: float | None
    open_gaps: int
    finished_at: datetime | None

    @property
    def duration_seconds(self) -> float | None: ...


__all__ = [
    "REGISTRY",
    "SourceStatus",
    "TableStatus",
    "exchange_status",
    "metrics_text",
    "observe_cycle",
    "observe_skip",
]

#: The worker process's own metrics (not the global default registry, so importing certstore registers nothing
#: in an application's registry).
REGISTRY = CollectorRegistry(auto_describe=True)

ROWS = Counter(
    "certstore_exchange_rows",
    "Front-end rows handled by the exchange",
    ["source", "outcome"],
    registry=REGISTRY,
)
CYCLES = Counter("certstore_exchange_cycles", "Exchange cycles run", ["source", "result"], registry=REGISTRY)
LAG = Gauge(
    "certstore_exchange_lag_seconds",
    "Age of the oldest front-end change not applied at the end of the last cycle",
    ["source"],
    registry=REGISTRY,
)
DURATION = Histogram(
    "certstore_exchange_cycle_seconds",
    "Duration of exchange cycles",
    ["source"],
    buckets=(0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600),
    registry=REGISTRY,
)
GAPS = Gauge(
    "certstore_exchange_open_gaps",
    "Sequence numbers waiting (gaps, deferred rows)",
    ["source"],
    registry=REGISTRY,
)
LAST = Gauge(
    "certstore_exchange_last_cycle_timestamp_seconds",
    "When the last cycle of the source finished (Unix time)",
    ["source"],
    registry=REGISTRY,
)


def observe_cycle(stats: CycleFigures) -> None:
    """Update the process metrics with one finished cycle."""
    source = stats.source
    ROWS.labels(source, "accepted").inc(stats.accepted)
    ROWS.labels(source, "rejected").inc(stats.rejected)
    ROWS.labels(source, "deferred").inc(stats.deferred)
    CYCLES.labels(source, "error" if stats.error else "ok").inc()
    if stats.lag_seconds is not None:
        LAG.labels(source).set(stats.lag_seconds)
    if stats.duration_seconds is not None:
        DURATION.labels(source).observe(stats.duration_seconds)
    GAPS.labels(source).set(stats.open_gaps)
    if stats.finished_at is not None:
        LAST.labels(source).set(stats.finished_at.timestamp())


def observe_skip(source: str) -> None:
    """A round in which another worker held the source's lease."""
    CYCLES.labels(source, "skipped").inc()


# --- status from the database ----------------------------------------------------------------------------


@dataclass(frozen=True)
class TableStatus:
    table: str
    watermark: int
    applied_above: int  # how many settled numbers lie above the watermark
    open_gaps: int
    oldest_gap_since: datetime | None


@dataclass(frozen=True)
class SourceStatus:
    """What the repository knows about one source: its last cycle, lease, cursors and ledger totals."""

    source: str
    last_started_at: datetime | None
    last_finished_at: datetime | None
    last_worker: str | None
    last_seen: int
    last_accepted: int
    last_rejected: int
    last_lag_seconds: float | None
    last_duration_seconds: float | None
    last_error: str | None
    lease_holder: str | None
    lease_until: datetime | None
    accepted_total: int
    rejected_total: int
    receipts_unsent: int
    tables: tuple[TableStatus, ...]
    late_total: int = 0  # rows that committed after their number was given up, applied late
    given_up_total: int = 0  # numbers given up as rolled-back writes (no row seen)

    def to_dict(self) -> dict[str, Any]:
        def iso(value: datetime | None) -> str | None:
            return None if value is None else value.isoformat()

        return {
            "source": self.source,
            "last_cycle": {
                "started_at": iso(self.last_started_at),
                "finished_at": iso(self.last_finished_at),
                "worker": self.last_worker,
                "seen": self.last_seen,
                "accepted": self.last_accepted,
                "rejected": self.last_rejected,
                "lag_seconds": self.last_lag_seconds,
                "duration_seconds": self.last_duration_seconds,
                "error": self.last_error,
            },
            "lease": {"holder": self.lease_holder, "until": iso(self.lease_until)},
            "totals": {
                "accepted": self.accepted_total,
                "rejected": self.rejected_total,
                "receipts_unsent": self.receipts_unsent,
            },
            "late_commits": {"rows": self.late_total, "given_up": self.given_up_total},
            "tables": [
                {
                    "table": t.table,
                    "watermark": t.watermark,
                    "applied_above": t.applied_above,
                    "open_gaps": t.open_gaps,
                    "oldest_gap_since": iso(t.oldest_gap_since),
                }
                for t in self.tables
            ],
        }


def exchange_status(repo: Repository) -> list[SourceStatus]:
    """Per source known to the repository (it has a cursor, a lease or a cycle): the last cycle, the lease,
    per-table cursors and the ledger's totals."""
    with repo.db.session(readonly=True) as session:
        cursors = session.scalars(
            select(ExchangeCursorRow).order_by(ExchangeCursorRow.source, ExchangeCursorRow.table_name)
        ).all()
        leases = {row.source: row for row in session.scalars(select(ExchangeLeaseRow))}
        last_ids = select(func.max(ExchangeCycleRow.id)).group_by(ExchangeCycleRow.source)
        cycles = {
            row.source: row
            for row in session.scalars(select(ExchangeCycleRow).where(ExchangeCycleRow.id.in_(last_ids)))
        }
        totals: dict[tuple[str, str], int] = {
            (source, outcome): int(count)
            for source, outcome, count in session.execute(
                select(ExchangeAppliedRow.source, ExchangeAppliedRow.outcome, func.count()).group_by(
                    ExchangeAppliedRow.source, ExchangeAppliedRow.outcome
                )
            )
        }
        unsent = dict(
            session.execute(
                select(ExchangeAppliedRow.source, func.count())
                .where(ExchangeAppliedRow.receipt_written.is_(False))
                .group_by(ExchangeAppliedRow.source)
            ).all()
        )
    sources = sorted({c.source for c in cursors} | set(leases) | set(cycles))
    result = []
    for source in sources:
        cycle = cycles.get(source)
        lease = leases.get(source)
        tables = tuple(
            TableStatus(
                c.table_name,
                int(c.watermark),
                len(c.applied_above or []),
                len(c.gaps or {}),
                min((datetime.fromisoformat(at) for at in (c.gaps or {}).values()), default=None),
            )
            for c in cursors
            if c.source == source
        )
        duration = (
            (cycle.finished_at - cycle.started_at).total_seconds()
            if cycle is not None and cycle.finished_at is not None
            else None
        )
        result.append(
            SourceStatus(
                source=source,
                last_started_at=cycle.started_at if cycle else None,
                last_finished_at=cycle.finished_at if cycle else None,
                last_worker=cycle.worker if cycle else None,
                last_seen=cycle.seen if cycle else 0,
                last_accepted=cycle.accepted if cycle else 0,
                last_rejected=cycle.rejected if cycle else 0,
                last_lag_seconds=cycle.lag_seconds if cycle else None,
                last_duration_seconds=duration,
                last_error=cycle.error if cycle else None,
                lease_holder=lease.holder if lease and lease.lease_until else None,
                lease_until=lease.lease_until if lease else None,
                accepted_total=totals.get((source, "accepted"), 0),
                rejected_total=totals.get((source, "rejected"), 0),
                receipts_unsent=int(unsent.get(source, 0)),
                tables=tables,
                late_total=totals.get((source, "late"), 0),
                given_up_total=totals.get((source, "given_up"), 0),
            )
        )
    return result


class _DatabaseCollector(Collector):
    def __init__(self, repo: Repository) -> None:
        self.repo = repo

    def collect(self) -> Iterator[GaugeMetricFamily]:
        statuses = exchange_status(self.repo)
        rows = GaugeMetricFamily(
            "certstore_exchange_last_cycle_rows", "Rows of the last cycle", labels=["source", "outcome"]
        )
        lag = GaugeMetricFamily(
            "certstore_exchange_last_cycle_lag_seconds", "Lag at the end of the last cycle", labels=["source"]
        )
        duration = GaugeMetricFamily(
            "certstore_exchange_last_cycle_duration_seconds", "Duration of the last cycle", labels=["source"]
        )
        finished = GaugeMetricFamily(
            "certstore_exchange_last_cycle_finished_timestamp_seconds",
            "When the last cycle finished (Unix time)",
            labels=["source"],
        )
        failed = GaugeMetricFamily(
            "certstore_exchange_last_cycle_failed",
            "1 if the last cycle ended with an error",
            labels=["source"],
        )
        gaps = GaugeMetricFamily(
            "certstore_exchange_cursor_open_gaps", "Sequence numbers waiting, per source", labels=["source"]
        )
        unsent = GaugeMetricFamily(
            "certstore_exchange_receipts_unsent", "Receipts not yet written back", labels=["source"]
        )
        late = GaugeMetricFamily(
            "certstore_exchange_late_commits",
            "Rows that committed after their sequence number was given up, applied late",
            labels=["source"],
        )
        for s in statuses:
            late.add_metric([s.source], s.late_total)
            rows.add_metric([s.source, "seen"], s.last_seen)
            rows.add_metric([s.source, "accepted"], s.last_accepted)
            rows.add_metric([s.source, "rejected"], s.last_rejected)
            if s.last_lag_seconds is not None:
                lag.add_metric([s.source], s.last_lag_seconds)
            if s.last_duration_seconds is not None:
                duration.add_metric([s.source], s.last_duration_seconds)
            if s.last_finished_at is not None:
                finished.add_metric([s.source], s.last_finished_at.timestamp())
            failed.add_metric([s.source], 1.0 if s.last_error else 0.0)
            gaps.add_metric([s.source], sum(t.open_gaps for t in s.tables))
            unsent.add_metric([s.source], s.receipts_unsent)
        yield from (rows, lag, duration, finished, failed, gaps, unsent, late)


def metrics_text(repo: Repository | None = None) -> bytes:
    """The Prometheus text exposition (``text/plain; version=0.0.4``): this process's exchange metrics and,
    with ``repo``, the per-source gauges read from the repository database (what the API's ``/metrics``
    serves, since the worker runs in another process)."""
    text = generate_latest(REGISTRY)
    if repo is not None:
        registry = CollectorRegistry(auto_describe=False)
        registry.register(_DatabaseCollector(repo))
        text += generate_latest(registry)
    return text
