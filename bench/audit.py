"""``python -m bench audit``: audit-log ingest rate and auditor query latency on a large PostgreSQL table.

Setup (not timed): a PostgreSQL database at the newest schema — ``CERTSTORE_BENCH_PG_URL`` (an empty database,
or one this benchmark filled before: it is reused when it already holds enough rows), else a throwaway cluster
from ``devservers/postgres.py`` (which runs with ``fsync=off``: ingest figures are then an upper bound for
durable storage). The table is filled server-side with ``generate_series`` to ``CERTSTORE_BENCH_AUDIT_ROWS``
synthetic entries (default 10,000,000; ``--quick`` 200,000) spread over twelve monthly partitions — 2,000
principals in 200 organisations, 40 actions, 3 % denials, a holder on 30 % of the rows, a certificate on 40 %,
a matter on 30 %, a grant on 1 % — with the secondary indexes built after the load. Synthetic rows carry
placeholder hashes: the chain is not verifiable, which ingest and queries do not need.

- **ingest**: processes like API workers, each an event loop with 256 concurrent "requests" awaiting
  :meth:`AuditTrail.asubmit` as the middleware does — normalised, fsynced to the spool (group commit), chained,
  hashed, COPYed in batches with their Merkle subtrees — for 20 s; the rate is entries committed per second.
  ``audit_ingest_per_s``: 3 processes sharing the chain (``CERTSTORE_BENCH_AUDIT_PROCS``), as ``certstore serve
  --workers 3`` runs; ``audit_ingest_1proc_per_s``: one process (bound by Python's GIL: ~30 µs of interpreter
  time per event across building and normalising the event, spooling, hashing and COPY — docs/audit.md has the
  breakdown); ``audit_writer_per_s``: the chain writer alone (events handed to it directly, normalised and
  prepared in the timed loop). The clock of the end-to-end figures stops when every process has everything it
  acknowledged committed, not when the processes have exited (their shutdown is no part of the ingest rate).
- **queries**: 400 auditor queries (first page of 100, or the second page through the cursor) drawn from: a
  day; a principal over a month; an organisation over a week; an action over a day; denials over a day; a
  holder; a certificate; a matter; a grant — p50/p95 (``audit_query_p95_ms``); and the summary view of one day.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import random
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import text

from bench import BenchContext, Results, register
from certstore.audit import AuditEvent, AuditTrail, Outcome, append_events
from certstore.audit.partitions import ensure_partitions
from certstore.audit.query import AuditQuery, query_entries, summary
from certstore.store.db import Database

URL_ENV = "CERTSTORE_BENCH_PG_URL"
ROWS_ENV = "CERTSTORE_BENCH_AUDIT_ROWS"
FULL_ROWS = 10_000_000
QUICK_ROWS = 200_000
MONTHS = 12
ORGS = 200
PRINCIPALS = 2_000
ACTIONS = 40
IN_FLIGHT = 256  # concurrent requests awaiting their audit acknowledgement, per process
PROCESSES = 3  # API worker processes for the end-to-end figure
PROCS_ENV = "CERTSTORE_BENCH_AUDIT_PROCS"
SECONDARY = [
    "ix_audit_events_occurred",
    "ix_audit_events_principal",
    "ix_audit_events_organisation",
    "ix_audit_events_action",
    "ix_audit_events_certificate",
    "ix_audit_events_holder",
    "ix_audit_events_matter",
    "ix_audit_events_grant",
]


def _org(i: int) -> str:
    return f"124101{i:04d}MB00001X"


def _action(i: int) -> str:
    return f"action_{i:02d}"


_FILL = """
INSERT INTO audit_events (seq, at, prev_hash, entry_hash, occurred_at, event_id, request_id, principal,
    organisation_code, role, action, resource, matter, holder_digest, certificate_identifier, grant_id, outcome,
    status_code, reason, client, user_agent, details)
SELECT g,
       ts,
       sha256(int8send(g - 1)),
       sha256(int8send(g)),
       ts - interval '2 milliseconds',
       md5(g::text),
       md5((g * 7)::text),
       '124101' || lpad((p % {orgs})::text, 4, '0') || 'MB00001X/staff' || (p / {orgs})::text,
       '124101' || lpad((p % {orgs})::text, 4, '0') || 'MB00001X',
       CASE WHEN p % 5 = 0 THEN 'agency' ELSE 'window' END,
       'action_' || lpad((g % {actions})::text, 2, '0'),
       'GET /api/v1/holders/{{id_type}}/{{id_number}}/certificates',
       CASE WHEN g % 10 < 3 THEN 'ZZ' || (g / 3)::text END,
       CASE WHEN g % 10 >= 7 THEN lpad(to_hex(hashint8(g % 1000003)), 16, '0') END,
       CASE WHEN g % 5 < 2 THEN 'ZZ-' || (g % 3000017)::text END,
       CASE WHEN g % 100 = 0 THEN (g / 100) % 500 END,
       CASE WHEN g % 33 = 0 THEN 'deny' ELSE 'allow' END,
       CASE WHEN g % 33 = 0 THEN 403 ELSE 200 END,
       CASE WHEN g % 33 = 0 THEN 'window staff must state the matter' END,
       '10.0.' || (g % 250)::text || '.' || (p % 250)::text,
       'Mozilla/5.0 (certstore bench)',
       '{{"ms":' || (g % 97)::text || '.5}}'
FROM (SELECT g, (hashint8(g)::bigint & 2147483647) % {principals} AS p,
             CAST(:start AS timestamptz) + (g * CAST(:step AS bigint)) * interval '1 microsecond' AS ts
      FROM generate_series(CAST(:lo AS bigint), CAST(:hi AS bigint) - 1) AS g) AS s
"""


def _database(ctx: BenchContext) -> tuple[Database, Any]:
    url = os.environ.get(URL_ENV)
    if url:
        ctx.log(f"database: {URL_ENV}")
        return Database(url), None
    from devservers.postgres import PostgresServer  # the throwaway cluster of the test suite

    server = PostgresServer()
    server.start()
    ctx.log(f"database: throwaway cluster in {server.base_dir} (fsync=off)")
    return Database(server.url(server.create_database())), server


def _fill(ctx: BenchContext, db: Database, rows: int) -> datetime:
    """Fill to ``rows`` entries spread over the last twelve months; returns the first entry's time."""
    now = datetime.now(UTC)
    start = (now - timedelta(days=30 * MONTHS)).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    with db.connect(readonly=True) as conn:
        have = int(conn.execute(text("SELECT size FROM audit_chain WHERE id = 1")).scalar_one())
    if have >= rows:
        ctx.log(f"reusing {have:,} rows")
        return start
    if have:
        raise RuntimeError(f"the database holds {have:,} entries, fewer than {rows:,}: give an empty one")
    span_us = int((now - timedelta(days=1) - start).total_seconds() * 1e6)
    step = max(1, span_us // rows)
    for month in range(MONTHS + 2):
        ensure_partitions(db, months_ahead=0, now=start + timedelta(days=31 * month))
    began = time.perf_counter()
    with db.engine.begin() as conn:
        for name in SECONDARY:
            conn.execute(text(f"DROP INDEX IF EXISTS {name}"))
    chunk = 1_000_000
    sql = _FILL.format(orgs=ORGS, actions=ACTIONS, principals=PRINCIPALS)
    for lo in range(0, rows, chunk):
        hi = min(rows, lo + chunk)
        with db.engine.begin() as conn:
            conn.execute(text("SET LOCAL synchronous_commit = off"))
            conn.execute(text(sql), {"start": start, "step": step, "lo": lo, "hi": hi})
        ctx.log(f"  filled {hi:,} rows ({time.perf_counter() - began:.0f} s)")
    index_sql = {
        "ix_audit_events_occurred": "(occurred_at, seq)",
        "ix_audit_events_principal": "(principal, occurred_at, seq)",
        "ix_audit_events_organisation": "(organisation_code, occurred_at, seq)",
        "ix_audit_events_action": "(action, occurred_at, seq)",
        "ix_audit_events_certificate": "(certificate_identifier, occurred_at, seq) "
        "WHERE certificate_identifier IS NOT NULL",
        "ix_audit_events_holder": "(holder_digest, occurred_at, seq) WHERE holder_digest IS NOT NULL",
        "ix_audit_events_matter": "(matter, organisation_code) WHERE matter IS NOT NULL",
        "ix_audit_events_grant": "(grant_id, occurred_at) WHERE grant_id IS NOT NULL",
    }
    with db.engine.begin() as conn:
        conn.execute(text("SET LOCAL maintenance_work_mem = '512MB'"))
        for name, columns in index_sql.items():
            conn.execute(text(f"CREATE INDEX {name} ON audit_events {columns}"))
    ctx.log(f"  indexes built ({time.perf_counter() - began:.0f} s)")
    with db.engine.begin() as conn:
        last = conn.execute(text("SELECT max(at) FROM audit_events")).scalar_one()
        # A head consistent in shape with the size (placeholder hashes): appends continue from it.
        frontier = '["' + '","'.join(["00" * 32] * bin(rows).count("1")) + '"]'
        conn.execute(
            text(
                "UPDATE audit_chain SET size = :n, last_at = :at, frontier = :f, checkpoint_size = :n WHERE id = 1"
            ),
            {"n": rows, "at": last, "f": frontier},
        )
        conn.execute(text("ANALYZE audit_events"))
    ctx.log(f"filled {rows:,} rows in {time.perf_counter() - began:.0f} s")
    return start


def _event(i: int) -> AuditEvent:
    org = i % ORGS
    return AuditEvent(
        at=datetime.now(UTC),
        request_id=f"bench-{i}",
        action=_action(i % ACTIONS),
        outcome=Outcome.DENY if i % 33 == 0 else Outcome.ALLOW,
        status_code=403 if i % 33 == 0 else 200,
        principal=f"{_org(org)}/staff{i % 10}",
        organisation_code=_org(org),
        role="window",
        resource="GET /api/v1/holders/{id_type}/{id_number}/certificates",
        matter=f"ZZ{i}" if i % 10 < 3 else None,
        holder_digest=f"{i * 2654435761 % 2**64:016x}" if i % 10 >= 7 else None,
        certificate_identifier=f"ZZ-{i}" if i % 5 < 2 else None,
        client="10.0.0.7",
        user_agent="Mozilla/5.0 (certstore bench)",
        details={"ms": 1.5},
    )


def _submitter(url: str, seconds: float, first: int, ready: Any, go: Any, done: Any) -> None:
    """One API-like process: an event loop with IN_FLIGHT requests awaiting their audit acknowledgement; sets
    ``done`` once everything it acknowledged is committed."""
    db = Database(url)
    with tempfile.TemporaryDirectory(prefix="certstore-bench-spool-") as spool:
        trail = AuditTrail(db, spool_dir=Path(spool), batch_size=5_000, max_pending=50_000, partitions=False)
        trail.start()
        counter = iter(range(first, first + 10**9))

        async def request_stream(stop: float) -> None:
            while time.perf_counter() < stop:
                await trail.asubmit(_event(next(counter)))

        async def load() -> None:
            stop = time.perf_counter() + seconds
            await asyncio.gather(*(request_stream(stop) for _ in range(IN_FLIGHT)))

        ready.set()
        go.wait()
        asyncio.run(load())
        trail.flush(timeout=600)
        done.set()
        trail.close()
    db.dispose()


def _size(db: Database) -> int:
    with db.connect(readonly=True) as conn:
        return int(conn.execute(text("SELECT size FROM audit_chain WHERE id = 1")).scalar_one())


def _end_to_end(db: Database, processes: int, seconds: float) -> float:
    """Entries per second appended while ``processes`` submitting processes run: from the start signal until
    the last process has everything it acknowledged committed (not until the processes have exited: their
    shutdown — final checkpoint, interpreter exit — is no part of the ingest rate: it was 0.8–1.7 s of a 3 s
    ``--quick`` run)."""
    context = multiprocessing.get_context("spawn")
    go = context.Event()
    readies = [context.Event() for _ in range(processes)]
    dones = [context.Event() for _ in range(processes)]
    workers = [
        context.Process(target=_submitter, args=(db.url, seconds, (n + 1) * 10**10, readies[n], go, dones[n]))
        for n in range(processes)
    ]
    for worker in workers:
        worker.start()
    for ready in readies:
        ready.wait(120)
    before, began = _size(db), time.perf_counter()
    go.set()
    for done, worker in zip(dones, workers, strict=True):
        while not done.wait(1.0):
            if not worker.is_alive():
                raise RuntimeError(f"benchmark process {worker.pid} died (exit code {worker.exitcode})")
    elapsed = time.perf_counter() - began
    added = _size(db) - before
    for worker in workers:
        worker.join()
    return added / elapsed


def _ingest(ctx: BenchContext, db: Database, seconds: float) -> tuple[float, float, float]:
    counter = iter(range(10**9))
    # 1. the writer alone: batches of 2,000 prepared events chained and COPYed under the head lock
    batches = [[_event(next(counter)) for _ in range(2_000)] for _ in range(4)]
    written = 0
    began = time.perf_counter()
    while time.perf_counter() - began < seconds / 3:
        with db.session() as session:
            written += append_events(session, batches[written // 2_000 % 4]).count
    writer_rate = written / (time.perf_counter() - began)
    ctx.log(f"writer alone (chain + tree + COPY, batches of 2,000): {writer_rate:,.0f} entries/s")
    # 2. end to end, as the API middleware does it: requests in flight on an event loop, each awaiting its
    #    event's acknowledgement (normalise, spool write + fsync in groups, then batch, chain, COPY) — in one
    #    process, and in several API processes sharing the chain (certstore serve --workers N)
    single = _end_to_end(db, 1, seconds)
    ctx.log(f"end to end, 1 process ({IN_FLIGHT} requests in flight): {single:,.0f} entries/s")
    processes = int(os.environ.get(PROCS_ENV) or PROCESSES)
    several = _end_to_end(db, processes, seconds)
    ctx.log(f"end to end, {processes} processes sharing the chain: {several:,.0f} entries/s")
    return several, single, writer_rate


def _queries(
    ctx: BenchContext, db: Database, start: datetime, rows: int, count: int
) -> tuple[list[float], float]:
    rng = random.Random(20261126)
    end = datetime.now(UTC) - timedelta(days=1)
    span = (end - start).total_seconds()

    def day() -> datetime:
        return start + timedelta(seconds=rng.uniform(0, span - 86_400 * 31))

    def pick() -> AuditQuery:
        kind = rng.randrange(9)
        t = day()
        if kind == 0:
            return AuditQuery(start=t, end=t + timedelta(days=1))
        if kind == 1:
            p = rng.randrange(PRINCIPALS)
            return AuditQuery(
                principal=f"{_org(p % ORGS)}/staff{p // ORGS}", start=t, end=t + timedelta(days=30)
            )
        if kind == 2:
            return AuditQuery(organisation_code=_org(rng.randrange(ORGS)), start=t, end=t + timedelta(days=7))
        if kind == 3:
            return AuditQuery(action=_action(rng.randrange(ACTIONS)), start=t, end=t + timedelta(days=1))
        if kind == 4:
            return AuditQuery(outcome="deny", start=t, end=t + timedelta(days=1))
        column, step, offset = (
            ("holder_digest", 10, 7),
            ("certificate_identifier", 10, 0),
            ("matter", 10, 0),
            ("grant_id", 100, 0),
        )[kind - 5]
        with db.connect(readonly=True) as conn:  # a value that exists, as an auditor would search for it
            value = conn.execute(
                text(f"SELECT {column} FROM audit_events WHERE seq = :s"),
                {"s": rng.randrange(rows // step) * step + offset},
            ).scalar()
        if value is None:
            return AuditQuery(start=t, end=t + timedelta(hours=1))
        return AuditQuery(**{column: value})

    latencies = []
    for i in range(count):
        query = pick()
        began = time.perf_counter()
        page = query_entries(db, query, limit=100)
        if i % 4 == 3 and page.next_cursor:  # every fourth: the next page too, through the cursor
            query_entries(db, query, cursor=page.next_cursor, limit=100)
        latencies.append((time.perf_counter() - began) * 1000)
    t = day()
    began = time.perf_counter()
    summary(db, t, t + timedelta(days=1))
    summary_ms = (time.perf_counter() - began) * 1000
    return latencies, summary_ms


@register("audit", "audit-log ingest rate and auditor query p95 on a PostgreSQL table of 10M+ entries")
def audit(ctx: BenchContext) -> Results:
    rows = int(os.environ.get(ROWS_ENV) or (QUICK_ROWS if ctx.quick else FULL_ROWS))
    db, server = _database(ctx)
    try:
        db.upgrade()
        start = _fill(ctx, db, rows)
        ingest, single, writer = _ingest(ctx, db, ctx.pick(full=20.0, quick=3.0))
        latencies, summary_ms = _queries(ctx, db, start, rows, int(ctx.pick(full=400, quick=60)))
        latencies.sort()
        p50 = statistics.median(latencies)
        p95 = latencies[min(len(latencies) - 1, int(0.95 * len(latencies)))]
        with db.connect(readonly=True) as conn:
            total = int(conn.execute(text("SELECT size FROM audit_chain WHERE id = 1")).scalar_one())
            size = conn.execute(
                text(
                    "SELECT pg_size_pretty(sum(pg_total_relation_size(inhrelid))) FROM pg_inherits "
                    "WHERE inhparent = 'audit_events'::regclass"
                )
            ).scalar()
        ctx.log(
            f"queries: p50 {p50:.1f} ms, p95 {p95:.1f} ms, max {latencies[-1]:.1f} ms; summary of a day {summary_ms:.0f} ms"
        )
        ctx.log(f"table: {total:,} entries ({size} with partitions and indexes)")
    finally:
        db.dispose()
        if server is not None:
            server.stop()
    return {
        "audit_writer_per_s": writer,
        "audit_ingest_1proc_per_s": single,
        "audit_query_p50_ms": p50,
        "audit_summary_day_ms": summary_ms,
        "audit_ingest_per_s": ingest,
        "audit_query_p95_ms": p95,
        "audit_rows": total,
    }
