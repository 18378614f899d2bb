"""The write path: events are acknowledged once fsynced to the local spool, written in batches by one writer
thread, bounded in number, drained on shutdown, and recovered from the spool after a crash — exactly once."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from certstore.audit import AuditTrail, CheckpointPolicy, append_in_transaction, verify_log
from certstore.audit import trail as trail_module
from certstore.audit.checkpoints import CheckpointKey
from certstore.audit.query import AuditQuery, query_entries
from certstore.audit.spool import Spool
from certstore.store.db import Database
from certstore.store.models import AuditCheckpointRow, AuditEventRow
from tests.audit.conftest import event

ROOT = Path(__file__).resolve().parents[2]


def _count(db: Database) -> int:
    with db.session(readonly=True) as session:
        return int(session.scalar(select(func.count()).select_from(AuditEventRow)) or 0)


def test_many_threads_one_chain_and_a_checkpoint_on_close(
    database: Database, spool_dir: Path, key: CheckpointKey
) -> None:
    trail = AuditTrail(
        database, spool_dir=spool_dir, key_provider=lambda: key, policy=CheckpointPolicy(every_seconds=3600)
    )
    trail.start()
    with database.session() as session:  # a mutation event, written in its own transaction
        append_in_transaction(session, event(-1, action="revoke_certificate"))

    def work(n: int) -> None:
        for i in range(50):
            trail.submit(event(n * 100 + i))

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert trail.flush()
    assert _count(database) == 401  # 400 submitted + the pending mutation event
    assert trail.stats.written == 400 and trail.stats.batches < 400  # batched
    trail.close()
    assert not list(spool_dir.iterdir())  # the spool is removed once everything is in the database
    with database.session(readonly=True) as session:
        sizes = list(session.scalars(select(AuditCheckpointRow.tree_size)))
    assert sizes[-1] == 401  # a checkpoint on the way out covers everything
    assert verify_log(database).entries == 401


def test_submit_is_synchronous_when_the_trail_is_not_running(database: Database) -> None:
    trail = AuditTrail(database, spool_dir=None)
    trail.submit(event(1))
    assert _count(database) == 1
    assert trail.flush()


def test_the_queue_is_bounded(database: Database, spool_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    gate = threading.Event()
    real = trail_module.append_prepared

    def stalled(*args: Any, **kwargs: Any) -> Any:
        gate.wait(10)
        return real(*args, **kwargs)

    monkeypatch.setattr(trail_module, "append_prepared", stalled)
    trail = AuditTrail(database, spool_dir=spool_dir, max_pending=5, idle_interval=0.05)
    trail.start()
    try:
        for i in range(5):
            trail.submit(event(i))  # acknowledged: in the spool
        blocked = threading.Thread(target=trail.submit, args=(event(5),))
        blocked.start()
        blocked.join(0.3)
        assert blocked.is_alive()  # the sixth waits for the writer: back-pressure, not unbounded memory
        gate.set()
        blocked.join(5)
        assert not blocked.is_alive()
        assert trail.flush()
        assert _count(database) == 6
    finally:
        gate.set()
        trail.close()


def test_acknowledged_events_survive_a_crash(database: Database, spool_dir: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "tests.audit.crash_writer", database.url, str(spool_dir), "40"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == -9, done.stderr
    assert "acknowledged 40" in done.stdout
    left = set(spool_dir.glob("spool-*.jsonl"))
    assert _count(database) == 0 and left  # everything acknowledged is only in the dead process's spool

    trail = AuditTrail(database, spool_dir=spool_dir)
    trail.start()  # replays the dead process's spool before accepting anything
    try:
        assert trail.stats.replayed == 40
        found = query_entries(database, AuditQuery(), limit=100).entries
        assert sorted(e.event.request_id for e in found) == sorted(f"crash-{i}" for i in range(40))
        assert not left & set(spool_dir.glob("spool-*.jsonl"))  # replayed and removed; only our own remain
    finally:
        trail.close()
    assert verify_log(database).intact


def test_replay_is_exactly_once_and_skips_a_torn_line(database: Database, spool_dir: Path) -> None:
    """A crash after the database commit but before the spool was emptied: replay must not log twice."""
    events = [event(i, request_id=f"dup-{i}") for i in range(10)]
    with AuditTrail(database, spool_dir=None) as trail:
        for e in events[:6]:
            trail.submit(e)  # already in the database
    spool = Spool(spool_dir)
    spool.append(events)
    with spool.path.open("ab") as torn:
        torn.write(b'{"v":1,"event_id":"half a li')  # the crash hit mid-write: never acknowledged
    spool.close(remove=False)

    with AuditTrail(database, spool_dir=spool_dir) as trail:
        assert trail.stats.replayed == 4
    ids = [e.event.request_id for e in query_entries(database, AuditQuery(), limit=100).entries]
    assert sorted(ids) == sorted(f"dup-{i}" for i in range(10))
    assert not list(spool_dir.glob("spool-*.jsonl"))


def test_a_live_processes_spool_is_left_alone(database: Database, spool_dir: Path) -> None:
    live = Spool(spool_dir)  # held (flock) by a live "process"
    live.append([event(1)])
    with AuditTrail(database, spool_dir=spool_dir) as trail:
        assert trail.stats.replayed == 0
    assert live.path.exists()
    live.close(remove=True)


def test_flush_waits_for_pending_mutation_events(database: Database, spool_dir: Path) -> None:
    with AuditTrail(database, spool_dir=spool_dir, idle_interval=5.0) as trail:
        with database.session() as session:
            append_in_transaction(session, event(1, action="suspend_certificate"))
        started = time.monotonic()
        assert trail.flush()
        assert time.monotonic() - started < 2.0  # woken at once, not after the idle interval
        assert _count(database) == 1
