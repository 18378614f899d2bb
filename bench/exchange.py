"""``python -m bench exchange``: exchange cycles from a SQLite front-end into a SQLite repository + file blobs:
the data-only cycle of 100k rows, the sealed mix (20k versions sealed + 80k data-only rows) in one process and on
all cores, and peak memory with 1 MiB agency files.

1. **1 MiB agency files** (first, while the process is small): ``FILE_ROWS`` rows (``--quick``:
   ``FILE_ROWS_QUICK``) each carrying a 1 MiB ``file`` (a PDF header on random bytes: read, checked and rejected
   as an unreadable sealed file). The batch reads leave the ``file`` column out and each row's file is read
   alone, so peak RSS grows by a few MiB, not by the files' total (``rss_growth_files_mb``).
2. **Data-only cycle** of ``FULL`` rows (``--quick``: 10k, time scaled linearly to 100k): 60 % new
   certificates (version 1), 20 % new versions (变更, version 2 of the first of them), 20 % status changes
   (挂起 suspend of the latest version) — each certificate row with its business completion time and channel, so
   every new version also records its arrival (第十一条). The versions carry no file and the worker runs without
   a file maker: this measures the exchange itself (reading, validating DATA.json, face schema, number format,
   holder ID check digits, lifecycle rules, the exactly-once ledger, cursors, arrivals, receipts); applied in
   batches (``batch_size`` 1,000, the default: one transaction per batch with its ledger rows, cursor and lease
   renewal), the rows planned ahead in a second process as ``exchange run --no-seal`` does
   (:class:`~certstore.exchange.planning.PlanningPool`, started before the timed cycle as a running worker
   keeps it).
3. **Sealed mix**: one cycle of ``SEALED`` new certificates without a file, which the repository seals, and
   ``4 × SEALED`` data-only rows — status changes (挂起 then 恢复, in turn, of certificates stored by cycle 2;
   each run its own half of them), which are applied before the sealing backlog. Run twice, each on a source of
   its own after an untimed warm-up cycle (``WARM_UP`` rows: fonts, keys, every one of the pool's processes
   started: a running ``exchange run`` keeps them): once sealing in the
   cycle's process (``exchange run --workers 0``) and once with a :class:`~certstore.exchange.sealing.
   SealingPool` of one process per CPU and one more (the default of ``exchange run``). Both commit the same way — a run of
   sealed versions per transaction, files stored first, in ``seq`` order — so the ratio is what the extra
   cores give (target ≥ 1.8× on 2 cores). ``--quick``: ``SEALED_QUICK``; ``CERTSTORE_BENCH_SEALED=N``
   overrides the count (to measure at an intermediate size).

A cProfile summary of the data-only cycle is printed with ``CERTSTORE_BENCH_PROFILE=1``. Full size runs about
12 minutes on an idle 2-core machine (most of it the one-process sealed run).
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
from certstore.app import Application
from certstore.catalogue.definitions import example_face, shipped_entries
from certstore.exchange.cycle import run_cycle
from certstore.exchange.frontend import CERTIFICATE_TABLE, STATUS_TABLE, frontend_engine, init_frontend
from certstore.exchange.planning import PlanningPool, RepositoryPlanning
from certstore.exchange.sealing import TASK_SIZE, ApplicationSealer, SealingPool, default_sealing_workers
from certstore.exchange.source import ExchangeSource

CATALOGUE = "11410100990000017F002"  # 建设用地规划许可证
FULL = 100_000
CHUNK = 5_000  # rows per INSERT batch while writing the front-end (memory stays flat)
SEALED, SEALED_QUICK = 20_000, 24  # certificates sealed by each run of the sealed mix
DATA_PER_SEALED = 4  # data-only rows (status changes) per sealed version in the sealed mix: 20k + 80k
#: Rows of the untimed cycle before each sealed run: two tasks for every worker of the pool and two more, so
#: that every worker process is started and has sealed (fonts, keys, the compiled template) before the timed
#: cycle — as in a running ``exchange run``, which keeps its pool. (With one task's worth, only one of the
#: three workers started before the timed cycle; the other two started, cold, inside it.)
WARM_UP = TASK_SIZE * 2 * (default_sealing_workers() + 1)
FILE_ROWS, FILE_ROWS_QUICK = 300, 20  # rows with a 1 MiB agency file
FILE_SIZE = 1 << 20


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


def _write_new(url: str, first: int, count: int, *, tag: str, file_size: int = 0, chunk: int = CHUNK) -> None:
    """``count`` new certificates (version 1), numbers from ``first``, ``chunk`` rows per transaction: without a
    file (the repository seals them) or, with ``file_size``, each carrying an agency ``file`` of that size (a PDF
    header on random bytes). ``tag`` marks the rows in their metadata."""
    entry = next(e for e in shipped_entries() if e.code == CATALOGUE)
    face = example_face(entry)
    holder = {"name": "郑州示例置业有限公司", "id_type": "001", "id_number": "91410100MA44A1B2XW"}
    completed = datetime.now(UTC) - timedelta(hours=2)

    def row(i: int) -> dict[str, object]:
        values: dict[str, object] = {
            "issuer_code": entry.issuer.credit_code, "certificate_number": _number(i), "version": 1,
            "data": json.dumps({
                "catalogue": CATALOGUE, "certificate_number": _number(i), "holder": holder,
                "issue_date": date(2026, 11, 26).isoformat(), "face": face, "metadata": {tag: i},
            }, ensure_ascii=False),
            "channel": "online", "completed_at": completed, "written_at": datetime.now(UTC),
        }  # fmt: skip
        if file_size:
            values["file"] = b"%PDF-1.7\n" + os.urandom(file_size - 9)
            values["file_media_type"] = "application/pdf"
        return values

    init_frontend(url)
    engine = frontend_engine(url)
    try:
        for start in range(first, first + count, chunk):
            with engine.begin() as conn:
                conn.execute(
                    insert(CERTIFICATE_TABLE),
                    [row(i) for i in range(start, min(start + chunk, first + count))],
                )
    finally:
        engine.dispose()


def _write_statuses(url: str, numbers: range, count: int) -> None:
    """``count`` status changes of the stored certificates ``numbers``: 挂起 (suspend) then 恢复 (resume) of
    each, in turn — every one a valid transition of the latest version."""
    issuer = next(e for e in shipped_entries() if e.code == CATALOGUE).issuer.credit_code
    engine = frontend_engine(url)
    rows = [
        (numbers[i % len(numbers)], "suspend" if (i // len(numbers)) % 2 == 0 else "resume")
        for i in range(count)
    ]
    try:
        for start in range(0, count, CHUNK):
            with engine.begin() as conn:
                conn.execute(insert(STATUS_TABLE), [
                    {"issuer_code": issuer, "certificate_number": _number(n), "version": None, "action": action,
                     "reason": "年检核查" if action == "suspend" else "核查完毕", "written_at": datetime.now(UTC)}
                    for n, action in rows[start : start + CHUNK]
                ])  # fmt: skip
    finally:
        engine.dispose()


def _sealed_run(ctx: BenchContext, app: Application, root: Path, name: str, first: int, count: int,
                stored: range, pool: SealingPool | None) -> tuple[float, float, float]:  # fmt: skip
    """Seconds of one cycle sealing ``count`` versions among ``DATA_PER_SEALED × count`` status changes of the
    ``stored`` certificates (after an untimed warm-up cycle of its own rows), and the CPU seconds of the cycle's
    process and of the pool's workers."""
    url = f"sqlite:///{root / f'{name}.db'}"
    issuer = next(e for e in shipped_entries() if e.code == CATALOGUE).issuer.credit_code
    source = ExchangeSource(name, url, issuer)
    maker = app.file_maker()
    _write_new(url, first, WARM_UP, tag="sealed")
    warm = run_cycle(app, source, file_maker=maker, worker="bench", sealer=pool)
    data = DATA_PER_SEALED * count
    _write_new(url, first + WARM_UP, count, tag="sealed")
    _write_statuses(url, stored, data)
    workers_cpu = pool.cpu_seconds() if pool is not None else 0.0
    start, cpu_start = time.perf_counter(), time.process_time()
    stats = run_cycle(app, source, file_maker=maker, worker="bench", sealer=pool)
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    workers_cpu = pool.cpu_seconds() - workers_cpu if pool is not None else 0.0
    if warm.error or stats.error or stats.accepted != count + data:
        raise RuntimeError(f"the sealed cycle did not apply every row: {stats.to_dict()}")
    how = "in the cycle's process" if pool is None else f"on a pool of {pool.workers}"
    ctx.log(
        f"sealed mix, sealing {how}: {count} sealed + {data} data-only rows in {elapsed:.1f} s "
        f"({elapsed / count * 1000:.1f} ms per sealed version); CPU: the cycle's process {cpu:.1f} s"
        + (f", the workers {workers_cpu:.1f} s" if pool is not None else "")
    )
    if pool is not None:
        ctx.log(f"pool: {pool.submitted} versions sealed by workers, {pool.used} files used, "
                f"{pool.resealed} sealed again in the cycle's process")  # fmt: skip
    return elapsed, cpu, workers_cpu


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _file_rows(ctx: BenchContext, app: Application, root: Path) -> float:
    """Peak RSS growth (MB) of a cycle over rows with 1 MiB agency files."""
    count = int(ctx.pick(full=FILE_ROWS, quick=FILE_ROWS_QUICK))
    url = f"sqlite:///{root / 'files.db'}"
    issuer = next(e for e in shipped_entries() if e.code == CATALOGUE).issuer.credit_code
    _write_new(url, 900_000, count, tag="file", file_size=FILE_SIZE, chunk=8)
    before = _peak_mb()
    start = time.perf_counter()
    stats = run_cycle(
        app, ExchangeSource("files", url, issuer), file_maker=None, worker="bench", trust=app.trust
    )
    elapsed = time.perf_counter() - start
    if stats.error or stats.rejected != count:
        raise RuntimeError(f"the file rows were not all read and rejected: {stats.to_dict()}")
    growth = _peak_mb() - before
    ctx.log(f"1 MiB agency files: {count} rows ({count} MiB) read one at a time and rejected in {elapsed:.1f} s; "
            f"peak RSS {before:.0f} → {_peak_mb():.0f} MB (+{growth:.0f} MB)")  # fmt: skip
    return growth


@register(
    "exchange", "exchange cycles: 100k data-only rows, the sealed mix on all cores, 1 MiB files (peak RSS)"
)
def exchange(ctx: BenchContext) -> Results:
    rows = int(ctx.pick(full=FULL, quick=10_000))
    sealed = int(os.environ.get("CERTSTORE_BENCH_SEALED") or ctx.pick(full=SEALED, quick=SEALED_QUICK))
    with tempfile.TemporaryDirectory(prefix="certstore-bench-exchange-") as tmp:
        root = Path(tmp)
        app = prepared_data_dir(root, {})  # SQLite + file blobs: <root>/certstore.db, <root>/blobs
        file_growth = _file_rows(ctx, app, root)
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
        planning = PlanningPool(RepositoryPlanning(root))  # as `exchange run --no-seal` plans ahead
        planning.start()  # a running `exchange run` keeps its process
        planning_cpu = planning.cpu_seconds()
        start, cpu_start = time.perf_counter(), time.process_time()
        stats = run_cycle(app, source, file_maker=None, worker="bench", planning=planning)
        elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu_start
        planning_cpu = planning.cpu_seconds() - planning_cpu
        adopted, replanned = planning.adopted, planning.replanned
        planning.close()
        if profiler is not None:
            profiler.disable()
            out = io.StringIO()
            stats_ = pstats.Stats(profiler, stream=out).sort_stats("cumulative")
            stats_.print_stats(40)
            if callees := os.environ.get("CERTSTORE_BENCH_PROFILE_CALLEES"):
                stats_.print_callees(callees)
            ctx.log(out.getvalue())
        if stats.error or stats.accepted != rows:
            raise RuntimeError(f"the cycle did not apply every row: {stats.to_dict()}")
        peak_mb = _peak_mb()
        per_row_us = elapsed / rows * 1e6
        scaled = elapsed * FULL / rows
        ctx.log(
            f"CPU time of the cycle: {cpu:.1f} s ({cpu / elapsed:.0%} of the wall time; less means the machine "
            f"was busy with other work or the cycle waited on I/O), and {planning_cpu:.1f} s in the planning "
            f"process, whose plans of {adopted} rows were taken ({replanned} planned again)"
        )
        ctx.log(f"data-only cycle: {rows} rows in {elapsed:.1f} s ({per_row_us:.0f} µs/row, {rows / elapsed:.0f} "
                f"rows/s); 100k rows → {scaled:.1f} s (target ≤ 30 s); peak RSS {peak_mb:.0f} MB "
                "(target ≤ 300 MB)")  # fmt: skip
        # the sealed mix: status changes of the certificates still valid after the data-only cycle (the first
        # `changed` numbers have a valid version 2, the next ones up to the suspended tail a valid version 1)
        valid = range(0, new - statuses)
        half = len(valid) // 2  # each run changes its own half: every change a real transition, not a repeat
        workers = default_sealing_workers()  # as `exchange run` seals by default
        one, one_cpu, _ = _sealed_run(
            ctx, app, root, "sealed-one-process", 200_000, sealed, valid[:half], None
        )
        with SealingPool(ApplicationSealer(root), workers, blobs=app.repo.blobs) as pool:
            pooled, pool_cpu, workers_cpu = _sealed_run(
                ctx, app, root, "sealed-pool", 300_000, sealed, valid[half:], pool
            )
        app.close()
    speedup = one / pooled
    ctx.log(f"sealed mix: {sealed} sealed + {DATA_PER_SEALED * sealed} data-only rows — one process {one:.1f} s, "
            f"pool of {workers} {pooled:.1f} s: speed-up {speedup:.2f}× (target ≥ 1.8× on 2 cores)")  # fmt: skip
    return {
        "rss_growth_files_mb": file_growth,
        "sealed_rows": sealed,
        "sealed_data_rows": DATA_PER_SEALED * sealed,
        "sealed_workers": workers,
        "sealed_one_process_s": one,
        "sealed_pool_s": pooled,
        "sealed_speedup": speedup,
        "sealed_one_process_cpu_s": one_cpu,
        "sealed_pool_cycle_cpu_s": pool_cpu,
        "sealed_pool_workers_cpu_s": workers_cpu,
        "rows": rows,
        "rows_per_s": rows / elapsed,
        "us_per_row": per_row_us,
        "cpu_100k_s": cpu * FULL / rows,
        "cycle_100k_s": scaled,
        "peak_rss_mb": peak_mb,
    }
