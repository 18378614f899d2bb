"""The audit write path (写入通道): a bounded in-process queue, a durable spool, batched appends.

::

    request ──submit──▶ intake ──spool thread: write + fsync (group commit)──▶ acknowledged
                                        │
                                        ▼
                              writer thread: batches of ≤ ``batch_size`` ──append_events──▶ database
                              (also chains ``audit_pending`` rows and signs checkpoints when due)

- **Latency.** A request waits only for its event to be fsynced to the local spool (one fsync for every event
  that arrived meanwhile), not for the database.
- **Bounded.** At most ``max_pending`` events are accepted and not yet in the database; beyond that ``submit``
  blocks until the writer catches up (back-pressure instead of unbounded memory).
- **Nothing acknowledged is lost.** On shutdown :meth:`AuditTrail.close` drains the queue into the database.
  On a crash the spool file survives; the next :meth:`AuditTrail.start` (any process sharing the spool directory)
  replays it, de-duplicated by ``event_id``. Mutations do not rely on the spool at all: they write their event in
  their own transaction (:func:`certstore.audit.chain.append_in_transaction`), which the writer chains.
- **One order.** Every append locks the chain head, so several processes interleave whole batches of one chain.

Not started (e.g. a test client without lifespan), :meth:`AuditTrail.submit` appends synchronously.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from certstore.audit.chain import (
    CheckpointPolicy,
    KeyProvider,
    PreparedEntry,
    append_events,
    append_prepared,
    make_checkpoint,
    prepare_entries,
)
from certstore.audit.checkpoints import Checkpoint, CheckpointKey
from certstore.audit.events import AuditEvent
from certstore.audit.spool import Spool, orphans
from certstore.store.db import Database
from certstore.store.models import AuditChainRow, AuditPendingRow

__all__ = ["AuditTrail", "TrailStats"]

log = logging.getLogger("certstore.audit")


@dataclass
class TrailStats:
    accepted: int = 0  # events acknowledged through the queue
    written: int = 0  # of those, in the database
    replayed: int = 0  # events recovered from spools of earlier processes
    batches: int = 0
    failures: int = 0
    checkpoints: int = 0
    last_error: str | None = None


class _Group:
    """Events that arrived while the spool threads were busy: written and fsynced together (one group commit),
    acknowledged together. Threads wait on ``future`` (one per group); coroutines each on their own asyncio
    future (``waiters``, by event loop — a shared one would be cancelled with the first cancelled request), all
    those of one loop resolved with a single call into it."""

    __slots__ = ("events", "future", "waiters")

    def __init__(self) -> None:
        self.events: list[AuditEvent] = []
        self.future: Future[None] | None = None
        self.waiters: dict[asyncio.AbstractEventLoop, list[asyncio.Future[None]]] = {}


def _resolve(waiters: list[asyncio.Future[None]], error: BaseException | None) -> None:
    for waiter in waiters:
        if not waiter.done():
            if error is None:
                waiter.set_result(None)
            else:
                waiter.set_exception(error)


class AuditTrail:
    """The batched, durable audit writer of one process (thread-safe).

    ``spool_dir``: where this process's spool files live (the API: ``<data-dir>/audit-spool``, shared by the
    workers of one host); ``None`` acknowledges events once queued — no crash durability, for tools and tests.
    ``key_provider`` returns the checkpoint key (or raises/returns None: entries are then chained unsigned until
    a key exists). ``max_pending`` bounds the events acknowledged and not yet in the database.
    """

    def __init__(
        self,
        db: Database,
        *,
        spool_dir: Path | None,
        key_provider: KeyProvider | None = None,
        policy: CheckpointPolicy | None = None,
        max_pending: int = 10_000,
        batch_size: int = 2_000,
        idle_interval: float = 0.5,
        partitions: bool = True,
        spool_threads: int = 2,
    ) -> None:
        self.db = db
        self.spool_dir = spool_dir
        self.policy = policy or CheckpointPolicy()
        self.batch_size = batch_size
        self.idle_interval = idle_interval
        self.stats = TrailStats()
        self._key_provider = key_provider
        self._key: CheckpointKey | None = None
        self._key_loaded = False
        self._max_pending = max_pending
        self._lock = threading.Condition()
        self._outstanding = 0  # events accepted by submit and not yet in the database (≤ max_pending)
        self._intake = _Group()
        # Spooled groups waiting for the writer, in order: (their prepared entries, index of their spool file);
        # the first may be what is left of a group the writer took part of.
        self._ready: deque[tuple[list[PreparedEntry], int | None]] = deque()
        self._ready_count = 0
        self._spool_threads = max(1, spool_threads)
        self._unwritten: list[int] = []  # per spool file: its lines not yet in the database
        self._cycle_started = 0
        self._cycle_done = 0
        self._flush_wanted = 0
        self._running = False
        self._stopping = False
        self._spools: list[Spool] = []
        self._threads: list[threading.Thread] = []
        self._partitions = partitions
        self._postgresql = db.backend == "postgresql"
        self._partitions_checked = 0.0

    # -- lifecycle -------------------------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._running

    def start(self) -> None:
        """Replay spools left by crashed processes, then start the spool and writer threads."""
        if self._running:
            return
        self._ensure_partitions(force=True)
        if self.spool_dir is not None:
            self._spools = [Spool(self.spool_dir) for _ in range(self._spool_threads)]
            self._unwritten = [0] * len(self._spools)
            self.replay()
        self._stopping = False
        self._running = True
        # Several spool threads, each with its own file: while one waits for its fsync the next takes the events
        # that arrived meanwhile (group commits overlap).
        self._threads = [
            threading.Thread(target=self._spool_loop, args=(i,), name=f"audit-spool-{i}", daemon=True)
            for i in range(max(1, len(self._spools)))
        ]
        self._threads.append(threading.Thread(target=self._writer_loop, name="audit-writer", daemon=True))
        for thread in self._threads:
            thread.start()

    def close(self, timeout: float = 30.0) -> None:
        """Stop accepting, write everything acknowledged to the database, sign a final checkpoint when entries
        were added since the last one, and remove the (then empty) spool file."""
        if not self._running:
            return
        with self._lock:
            self._running = False
            self._stopping = True
            self._lock.notify_all()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        self._threads = []
        clean = not self._ready and not self._intake.events and not any(self._unwritten)
        if clean:
            key = self._checkpoint_key()
            if key is not None:
                try:
                    with self.db.session() as session:
                        row = session.get(AuditChainRow, 1)
                        if row is not None and row.size > row.checkpoint_size:
                            append_events(session, [], key=key, force_checkpoint=True)
                except SQLAlchemyError as exc:
                    log.warning("audit: final checkpoint failed: %s", exc)
        for spool in self._spools:
            spool.close(remove=clean)
        if self._spools and not clean:
            log.error(
                "audit: %s events not yet in the database stay in %s", self._ready_count, self.spool_dir
            )
        self._spools = []

    def __enter__(self) -> AuditTrail:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- submitting ------------------------------------------------------------------------------------------

    def submit(self, event: AuditEvent) -> None:
        """Record ``event``; returns once it is durable (spool fsynced, or in the database when not started)."""
        if not self._running:
            self._write_now([event])
            return
        normalised = event.normalised()
        with self._lock:
            while self._running and self._outstanding >= self._max_pending:
                self._lock.wait(1.0)  # back-pressure: the writer frees room
            if self._running:
                group = self._intake
                if group.future is None:
                    group.future = Future()
                future = group.future
                self._accept(normalised)
            else:
                future = None
        if future is None:
            self._write_now([event])
            return
        future.result()

    async def asubmit(self, event: AuditEvent) -> None:
        """:meth:`submit` for coroutines: waits without blocking the event loop."""
        loop = asyncio.get_running_loop()
        if not self._running:
            await loop.run_in_executor(None, self._write_now, [event])
            return
        normalised = event.normalised()
        waiter: asyncio.Future[None] | None = None
        while True:
            with self._lock:
                if not self._running:
                    break
                if self._outstanding < self._max_pending:
                    waiter = loop.create_future()
                    waiters = self._intake.waiters.get(loop)
                    if waiters is None:
                        self._intake.waiters[loop] = [waiter]
                    else:
                        waiters.append(waiter)
                    self._accept(normalised)
                    break
            await loop.run_in_executor(None, self._wait_for_room)
        if waiter is None:
            await loop.run_in_executor(None, self._write_now, [event])
            return
        await waiter

    def _accept(self, event: AuditEvent) -> None:
        """Add ``event`` to the group the spool threads take next (``_lock`` held)."""
        events = self._intake.events
        events.append(event)
        self._outstanding += 1
        if len(events) == 1:
            self._lock.notify_all()

    def _wait_for_room(self) -> None:
        with self._lock:
            while self._running and self._outstanding >= self._max_pending:
                self._lock.wait(1.0)

    def _write_now(self, events: list[AuditEvent]) -> None:
        with self.db.session() as session:
            append_events(
                session, events, key=self._checkpoint_key(), policy=self.policy, pending_limit=1_000
            )

    # -- flushing and checkpoints ----------------------------------------------------------------------------

    def flush(self, timeout: float = 10.0, *, pending: bool = True) -> bool:
        """Wait until every event acknowledged so far is in the database — and, with ``pending``, every mutation
        event committed so far (``audit_pending``, any process) is chained too. False on timeout."""
        if not self._running:
            if pending:
                try:
                    self._write_now([])
                except SQLAlchemyError as exc:
                    log.warning("audit: chaining pending events failed: %s", exc)
            return True
        deadline = time.monotonic() + timeout
        with self._lock:
            target_events = self.stats.accepted + len(self._intake.events)
            wanted_cycle = self._cycle_started + 1 if pending else 0
            if pending:
                self._flush_wanted = max(self._flush_wanted, wanted_cycle)
                self._lock.notify_all()
            while not (self.stats.written >= target_events and self._cycle_done >= wanted_cycle):
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not self._threads:
                    return False
                self._lock.wait(remaining)
        return True

    def checkpoint(self) -> Checkpoint:
        """Sign a checkpoint now, covering everything acknowledged so far (``LookupError`` without a key)."""
        key = self._checkpoint_key()
        if key is None:
            raise LookupError("the repository has no signing key for audit checkpoints (certstore keys init)")
        self.flush()
        checkpoint = make_checkpoint(self.db, key)
        self.stats.checkpoints += 1
        return checkpoint

    def _checkpoint_key(self) -> CheckpointKey | None:
        if not self._key_loaded and self._key_provider is not None:
            try:
                self._key = self._key_provider()
            except Exception as exc:  # a key store without a repository key: log unsigned
                log.warning("audit: no checkpoint key (%s); checkpoints are not signed", exc)
                self._key = None
            self._key_loaded = True
        return self._key

    # -- crash recovery --------------------------------------------------------------------------------------

    def replay(self) -> int:
        """Append the events of spool files left by dead processes (de-duplicated); returns how many."""
        if self.spool_dir is None:
            return 0
        count = 0
        for orphan in orphans(self.spool_dir, exclude={spool.path for spool in self._spools}):
            try:
                for start in range(0, len(orphan.events), self.batch_size):
                    with self.db.session() as session:
                        result = append_events(
                            session, orphan.events[start : start + self.batch_size], deduplicate=True
                        )
                    count += result.count
            except SQLAlchemyError as exc:
                log.error("audit: replaying %s failed (kept for the next start): %s", orphan.path, exc)
                orphan.release()
                continue
            log.warning(
                "audit: replayed %d events from %s (%d already in the log, %d torn lines skipped)",
                count,
                orphan.path.name,
                len(orphan.events) - count,
                orphan.skipped,
            )
            orphan.remove()
        self.stats.replayed += count
        return count

    # -- threads ---------------------------------------------------------------------------------------------

    def _spool_loop(self, index: int) -> None:
        spool = self._spools[index] if self._spools else None
        while True:
            with self._lock:
                while not self._intake.events and not self._stopping:
                    if spool is not None and self._unwritten[index] == 0 and spool.size:
                        spool.truncate()
                    self._lock.wait(1.0)
                if not self._intake.events and self._stopping:
                    self._lock.notify_all()
                    return
                group, self._intake = self._intake, _Group()
            events = group.events
            error: OSError | None = None
            where: int | None = None
            if spool is not None:
                try:
                    spool.append(events)
                    where = index
                except OSError as exc:  # the disk failed: the events still go to the database, unacknowledged
                    log.error("audit: spool write failed: %s", exc)
                    error = exc
            prepared = prepare_entries(events, postgresql=self._postgresql)
            with self._lock:
                self._ready.append((prepared, where))
                self._ready_count += len(events)
                if where is not None:
                    self._unwritten[where] += len(events)
                self.stats.accepted += len(events)
                self._lock.notify_all()
            if group.future is not None:
                if error is None:
                    group.future.set_result(None)
                else:
                    group.future.set_exception(error)
            for loop, waiters in group.waiters.items():
                with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits any more
                    loop.call_soon_threadsafe(_resolve, waiters, error)

    def _has_work_in_db(self) -> bool:
        """Pending mutation events to chain, or a checkpoint due (cheap reads, no lock)."""
        try:
            with self.db.session(readonly=True) as session:
                if session.scalars(select(AuditPendingRow.id).limit(1)).first() is not None:
                    return True
                row = session.get(AuditChainRow, 1)
                return (
                    row is not None
                    and self._checkpoint_key() is not None
                    and self.policy.due(row, datetime.now(UTC))
                )
        except SQLAlchemyError as exc:
            log.warning("audit: %s", exc)
            return False

    def _writer_loop(self) -> None:
        backoff = 0.1
        while True:
            with self._lock:
                if not self._ready_count and self._flush_wanted <= self._cycle_done:
                    if self._stopping:
                        if not self._intake.events and not any(
                            t.name.startswith("audit-spool") and t.is_alive() for t in self._threads
                        ):
                            self._cycle_started += 1
                            self._cycle_done = self._cycle_started
                            self._lock.notify_all()
                            return
                        self._lock.wait(0.01)
                        continue
                    self._lock.wait(self.idle_interval)
                self._cycle_started += 1
                cycle = self._cycle_started
                # (entries, spool file) from the front of the queue, at most batch_size entries
                taken: list[tuple[list[PreparedEntry], int | None]] = []
                room = self.batch_size
                for entries, where in self._ready:
                    if room <= 0:
                        break
                    part = entries if len(entries) <= room else entries[:room]
                    taken.append((part, where))
                    room -= len(part)
            batch = [entry for part, _ in taken for entry in part]
            self._ensure_partitions()
            try:
                if batch or self._has_work_in_db():
                    with self.db.session() as session:
                        result = append_prepared(
                            session,
                            batch,
                            key=self._checkpoint_key(),
                            policy=self.policy,
                            pending_limit=self.batch_size,
                        )
                    if result.checkpoint is not None:
                        self.stats.checkpoints += 1
                    self.stats.batches += 1
                backoff = 0.1
            except Exception as exc:
                self.stats.failures += 1
                self.stats.last_error = str(exc)
                log.error("audit: writing %d events failed, retrying: %s", len(batch), exc)
                with self._lock:
                    self._cycle_done = cycle
                    self._lock.notify_all()
                time.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            with self._lock:
                for part, where in taken:
                    entries, _ = self._ready[0]
                    if len(part) == len(entries):
                        self._ready.popleft()
                    else:  # the batch ended inside this group: the rest stays first in line
                        self._ready[0] = (entries[len(part) :], where)
                    if where is not None:
                        self._unwritten[where] -= len(part)
                self._ready_count -= len(batch)
                self._outstanding -= len(batch)
                self.stats.written += len(batch)
                self._cycle_done = cycle
                self._lock.notify_all()

    def _ensure_partitions(self, *, force: bool = False) -> None:
        if not self._partitions or self.db.backend != "postgresql":
            return
        now = time.monotonic()
        if not force and now - self._partitions_checked < 3600:
            return
        self._partitions_checked = now
        from certstore.audit.partitions import ensure_partitions

        try:
            ensure_partitions(self.db)
        except (
            SQLAlchemyError
        ) as exc:  # the application's role may lack the right: the operator's cron does it
            log.info("audit: partitions not created by this process (%s)", str(exc).splitlines()[0])

    @property
    def max_pending(self) -> int:
        return self._max_pending
