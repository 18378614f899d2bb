"""``python -m bench exchange``: one exchange cycle of 100k changed front-end rows, SQLite front-end → SQLite
repository + file blobs, with peak memory.

Row mix (one source, one agency, one catalogue type), written before the clock starts:

- 60 % new certificates (version 1), 20 % new versions (变更, version 2 of the first of them), 20 % status
  changes (挂起 suspend of the latest version) — each certificate row with its business completion time and
  channel, so every new version also records its arrival (第十一条);
- **data only**: the versions carry no file and the worker runs without a file maker, so the repository stores
  the certificate data without sealing. Sealing costs ~11–14 ms of CPU per certificate (``python -m bench
  verify`` / ``import``): 80k sealed versions would take ~15 minutes on one core, ~8 on two — no 30-second
  target can include it. What this measures is the exchange itself: reading, validating (DATA.json, face
  schema, number format, holder ID check digits), lifecycle rules, the exactly-once ledger, cursors,
  arrivals and receipts.

The worker applies rows in batches (``batch_size`` 500): one repository transaction per batch holds the
effects, their ledger rows, the cursor and the lease renewal. ``--quick`` runs 10k rows and scales the time
linearly to 100k. A cProfile summary of where the time goes is printed with ``CERTSTORE_BENCH_PROFILE=1``.
"""

from __future__ import annotations

import cProfile
import io
import json
import os
import pstats
import resource
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from sqlalchemy import insert

from bench import BenchContext, Results, register
from bench._setup import prepared_data_dir
from certstore.catalogue.definitions import example_face, shipped_entries
from certstore.exchange.cycle import run_cycle
from certstore.exchange.frontend import CERTIFICATE_TABLE, STATUS_TABLE, frontend_engine, init_frontend
from certstore.exchange.source import ExchangeSource

CATALOGUE = "11410100990000017F002"  # 建设用地规划许可证
FULL = 100_000
CHUNK = 5_000  # rows per INSERT batch while writing the front-end (memory stays flat)


def _number(i: int) -> str:
    return f"地字第4101{i // 100_000:02d}2026{i % 100_000:05d}号"  # division code, year, 5-digit sequence


def _write_frontend(url: str, rows: int) -> tuple[int, int, int]:
    """Write the row mix; returns (new certificates, new versions, status changes)."""
    entry = next(e for e in shipped_entries() if e.code == CATALOGUE)
    face = example_face(entry)
    holder = {"name": "郑州示例置业有限公司", "id_type": "001", "id_number": "91410100MA44A1B2XW"}
    issuer = entry.issuer.credit_code
    new, changed = rows * 6 // 10, rows * 2 // 10
    statuses = rows - new - changed
    completed = datetime.now(UTC) - timedelta(hours=2)
    written = datetime.now(UTC)

    def certificate(i: int, version: int) -> dict[str, object]:
        data = {
            "catalogue": CATALOGUE, "certificate_number": _number(i), "holder": holder,
            "issue_date": date(2026, 11, 26).isoformat(), "face": face, "metadata": {"version": version},
        }  # fmt: skip
        return {
            "issuer_code": issuer, "certificate_number": _number(i), "version": version,
            "data": json.dumps(data, ensure_ascii=False), "channel": "offline", "completed_at": completed,
            "written_at": written,
        }  # fmt: skip

    init_frontend(url)
    engine = frontend_engine(url)
    try:
        items = [(i, 1) for i in range(new)] + [(i, 2) for i in range(changed)]
        for start in range(0, len(items), CHUNK):
            with engine.begin() as conn:
                conn.execute(
                    insert(CERTIFICATE_TABLE), [certificate(i, v) for i, v in items[start : start + CHUNK]]
                )
        for start in range(0, statuses, CHUNK):
            with engine.begin() as conn:
                conn.execute(
                    insert(STATUS_TABLE),
                    [
                        {
                            "issuer_code": issuer,
                            "certificate_number": _number(new - 1 - i),
                            "version": None,
                            "action": "suspend",
                            "reason": "年检不合格",
                            "written_at": written,
                        }
                        for i in range(start, min(start + CHUNK, statuses))
                    ],
                )
    finally:
        engine.dispose()
    return new, changed, statuses


@register("exchange", "one exchange cycle of 100k front-end rows (SQLite → SQLite + files), peak RSS")
def exchange(ctx: BenchContext) -> Results:
    rows = int(ctx.pick(full=FULL, quick=10_000))
    with tempfile.TemporaryDirectory(prefix="certstore-bench-exchange-") as tmp:
        root = Path(tmp)
        app = prepared_data_dir(root, {})  # SQLite + file blobs: <root>/certstore.db, <root>/blobs
        url = f"sqlite:///{root / 'frontend.db'}"
        start = time.perf_counter()
        new, changed, statuses = _write_frontend(url, rows)
        ctx.log(f"front-end written: {new} new certificates, {changed} new versions, {statuses} status changes "
                f"({time.perf_counter() - start:.1f} s, not timed)")  # fmt: skip
        issuer = next(e for e in shipped_entries() if e.code == CATALOGUE).issuer.credit_code
        source = ExchangeSource("bench", url, issuer)
        profiler = cProfile.Profile() if os.environ.get("CERTSTORE_BENCH_PROFILE") else None
        if profiler is not None:
            profiler.enable()
        start, cpu_start = time.perf_counter(), time.process_time()
        stats = run_cycle(app, source, file_maker=None, worker="bench", batch_size=500)
        elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu_start
        if profiler is not None:
            profiler.disable()
            out = io.StringIO()
            pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(40)
            ctx.log(out.getvalue())
        if stats.error or stats.accepted != rows:
            raise RuntimeError(f"the cycle did not apply every row: {stats.to_dict()}")
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
        app.close()
    per_row_us = elapsed / rows * 1e6
    scaled = elapsed * FULL / rows
    ctx.log(
        f"CPU time of the cycle: {cpu:.1f} s ({cpu / elapsed:.0%} of the wall time; less means the machine "
        "was busy with other work or the cycle waited on I/O)"
    )
    ctx.log(f"cycle: {rows} rows in {elapsed:.1f} s ({per_row_us:.0f} µs/row, {rows / elapsed:.0f} rows/s); "
            f"100k rows → {scaled:.1f} s (target ≤ 30 s); peak RSS {peak_mb:.0f} MB (target ≤ 300 MB)")  # fmt: skip
    return {
        "rows": rows,
        "rows_per_s": rows / elapsed,
        "us_per_row": per_row_us,
        "cpu_100k_s": cpu * FULL / rows,
        "cycle_100k_s": scaled,
        "peak_rss_mb": peak_mb,
    }
