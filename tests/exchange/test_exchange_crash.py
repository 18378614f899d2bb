"""Crash safety of the exchange task (issue 6): a worker SIGKILLed at random points over many cycles while
an agency's writer keeps inserting certificates, new versions and status changes; after a clean final run the
repository equals the source exactly — every version once, superseded chains, final statuses, one lifecycle
event per change, one audit entry per applied change, one ledger row and one accepted receipt per front-end
row. Repository on SQLite and
PostgreSQL; front-end SQLite, written by an independent process."""

from __future__ import annotations

import os
import random
import selectors
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

from certstore.app import Application
from certstore.exchange.frontend import CERTIFICATE_TABLE, STATUS_TABLE, FrontendWriter, init_frontend
from certstore.exchange.worker import ExchangeSource, LeaseHeldError, run_cycle
from certstore.services.catalogue import load_shipped
from tests.exchange.support import (
    ISSUER,
    assert_repository_equals,
    exchange_audit_events,
    expected_change_count,
)

ROOT = Path(__file__).resolve().parents[2]
OPERATIONS = 300  # front-end rows the writer inserts
MIN_KILLS = 8
#: A cap, not a target: the loop ends as soon as the writer is done and MIN_KILLS kills happened (~25 s on an
#: idle machine); a loaded machine starts each worker more slowly and needs longer for the same kills.
TIME_LIMIT = 180.0


def _start(args: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", *args], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        text=True, bufsize=1,
    )  # fmt: skip


def _wait_ready(proc: subprocess.Popen[str], timeout: float = 30) -> None:
    assert proc.stdout is not None
    selector = selectors.DefaultSelector()
    selector.register(proc.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if selector.select(timeout=0.05) and proc.stdout.readline() == "ready\n":
            return
        assert proc.poll() is None, "the worker died before it was ready"
    raise AssertionError("the worker did not get ready")


def test_killed_worker_loses_and_duplicates_nothing(database_url: str, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    env = {**os.environ, "CERTSTORE_DATABASE_URL": database_url}
    app = Application.open(data_dir, env)
    repo = app.repo
    load_shipped(repo)
    frontend = f"sqlite:///{tmp_path / 'frontend.db'}"
    init_frontend(frontend)
    rng = random.Random(int.from_bytes(os.urandom(4), "big"))
    writer = _start(
        ["tests.exchange.fe_writer", frontend, "stream", str(OPERATIONS), str(rng.randrange(1000))], env
    )
    kills = 0
    started = time.monotonic()
    try:
        while (writer.poll() is None or kills < MIN_KILLS) and time.monotonic() - started < TIME_LIMIT:
            worker = _start(
                ["tests.exchange.crash_worker", str(data_dir), frontend, str(rng.randrange(10**6))], env
            )
            try:
                _wait_ready(worker)
                time.sleep(rng.uniform(0.05, 1.2))
            finally:
                worker.send_signal(signal.SIGKILL)
                worker.wait(timeout=30)
            kills += 1
        assert writer.wait(timeout=60) == 0
    finally:
        if writer.poll() is None:
            writer.kill()
            writer.wait()
    assert kills >= MIN_KILLS

    # A clean final run: wait out the killed worker's lease, then cycle until nothing is left.
    source = ExchangeSource("crash-fe", frontend, ISSUER)
    deadline = time.monotonic() + 60
    while True:
        assert time.monotonic() < deadline, "the exchange did not settle"
        try:
            stats = run_cycle(app, source, file_maker=None, worker="final", lease=timedelta(seconds=5))
        except LeaseHeldError:
            time.sleep(0.2)
            continue
        assert stats.error is None, stats.error
        if stats.seen == 0 and stats.open_gaps == 0:
            break
    assert_repository_equals(repo, frontend, source.name)
    events = exchange_audit_events(repo, source.name)
    assert len(events) == expected_change_count(
        frontend
    )  # killed anywhere: no change without its entry, no twin
    assert len({(e.request_id, e.action) for e in events}) == len(events)
    with FrontendWriter(frontend, create=False) as fe:
        receipts = fe.receipts()
        engine = fe.engine
        with engine.connect() as conn:
            rows = sum(
                conn.execute(t.select().with_only_columns(t.c.seq)).all().__len__()
                for t in (CERTIFICATE_TABLE, STATUS_TABLE)
            )
    assert len(receipts) == rows == OPERATIONS
    assert all(r.accepted for r in receipts)
