"""Planning a cycle's certificate rows ahead of their turn, in another process (:class:`PlanningPool`).

In a cycle that seals nothing (``exchange run --no-seal``: data-only versions) one process does everything, and
planning a row — parsing and checking DATA.json, validating the face and the holder, deriving the identifier,
digests and metadata (:meth:`~certstore.exchange.plan.Planner.certificate`) — is a third of its time. The rest
is the serial part: deciding each write against the stored versions and committing it with its audit entry,
ledger row and receipt, in ``seq`` order.

So a worker process reads the certificate rows ahead of the chunk being committed — ranges of ``seq`` numbers
after the cursor, never their files — plans each with its own :class:`~certstore.exchange.plan.Planner` on the
same repository, and sends back the plans (:class:`~certstore.exchange.plan.AheadPlan`) while the cycle commits
the chunks before. When a row's turn comes, the cycle takes its plan only if it is the one it would make now
(:meth:`Planner.adopt <certstore.exchange.plan.Planner.adopt>`: the row reads the same, the same catalogue
version, the stored serial); anything else — a row the worker did not plan (rejected, waiting, carrying a file,
read in a gap), a worker that failed or fell behind — is planned in the cycle's process as before. The worker
writes nothing and decides nothing: the ledger, the order of the commits and every outcome are those of a
cycle without it.
"""

from __future__ import annotations

import concurrent.futures
import itertools
import logging
import multiprocessing
import os
import signal
import time
from collections import deque
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, select

from certstore.exchange.frontend import CERTIFICATE_TABLE, frontend_engine
from certstore.exchange.plan import AheadPlan, CertificatePlan, Planner
from certstore.exchange.reading import HAS_FILE, FileRow, frontend_columns
from certstore.exchange.source import ExchangeSource
from certstore.services.imports import _start_forkserver_deaf_to_ctrl_c
from certstore.store.blobs.contract import BlobStore
from certstore.store.db import Database
from certstore.store.repository import Repository

__all__ = [
    "AHEAD_RANGES",
    "TAKE_TIMEOUT",
    "PlanningAhead",
    "PlanningPool",
    "RepositoryFactory",
    "RepositoryPlanning",
    "SameRepository",
    "repository_twin",
]

logger = logging.getLogger("certstore.exchange")

#: Ranges of ``seq`` numbers (a batch's worth each) the worker plans ahead of the chunk being committed.
AHEAD_RANGES = 4
#: Seconds the cycle waits for a range's plans before it plans on its own (a stuck or starved process).
TAKE_TIMEOUT = 60.0


#: A picklable callable that opens, in the worker, the repository the cycle commits to.
RepositoryFactory = Callable[[], Repository]


@dataclass(frozen=True)
class RepositoryPlanning:
    """The repository of ``data_dir`` as ``env`` configures it (what ``exchange run`` commits to)."""

    data_dir: Path
    env: Mapping[str, str] = field(default_factory=dict)

    def __call__(self) -> Repository:
        return Repository.open(self.data_dir, {**os.environ, **self.env})


@dataclass(frozen=True)
class SameRepository:
    """The repository on ``database_url`` with these blobs and keys — :func:`repository_twin` of an open one."""

    database_url: str
    blobs: BlobStore
    holder_key: bytes
    serial_key: bytes

    def __call__(self) -> Repository:
        return Repository(
            db=Database(self.database_url), blobs=self.blobs, holder_key=self.holder_key,
            serial_key=self.serial_key,
        )  # fmt: skip


def repository_twin(repo: Repository) -> RepositoryFactory:
    """A factory of ``repo``'s twin in another process (a picklable blob store: files): its database, blob store
    and keys."""
    return SameRepository(repo.db.url, repo.blobs, repo.holder_key, repo.serial_key)


# -- the worker process -------------------------------------------------------------------------------------

_REPO: Repository | None = None
_PLANNERS: dict[str, tuple[int, Planner]] = {}  # source name → (cycle epoch, its planner)
_FRONTENDS: dict[str, tuple[Engine, list[Any]]] = {}  # url → engine, columns of the certificate table


def _init_worker(factory: RepositoryFactory) -> None:
    global _REPO
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the cycle's: the parent decides
    _REPO = factory()


def _planner(source: ExchangeSource, epoch: int) -> Planner:
    """The planner of ``source`` for one cycle (``epoch``): catalogue entries looked up once per cycle, as the
    cycle's own planner does."""
    assert _REPO is not None, "worker not initialised"
    known = _PLANNERS.get(source.name)
    if known is None or known[0] != epoch:
        known = _PLANNERS[source.name] = (epoch, Planner(_REPO, source, trust=None))
    return known[1]


def _frontend(url: str) -> tuple[Engine, list[Any]]:
    if url not in _FRONTENDS:
        engine = frontend_engine(url)
        _FRONTENDS[url] = (engine, frontend_columns(engine, CERTIFICATE_TABLE))
    return _FRONTENDS[url]


def _cpu_seconds() -> float:
    """A task: the CPU time this worker has used (benchmarks add it to the cycle's)."""
    return time.process_time()


def _plan_range(
    source: ExchangeSource, epoch: int, low: int, high: int
) -> tuple[list[tuple[int, AheadPlan]], bool]:
    """A task: plan the certificate rows with ``low < seq ≤ high`` that carry no file; and whether rows after
    ``high`` exist. A row that cannot be read or planned here is left out (the cycle reads and plans it, and
    names what is wrong with it)."""
    assert _REPO is not None, "worker not initialised"
    table = CERTIFICATE_TABLE
    engine, columns = _frontend(source.url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                select(*columns).where(table.c.seq > low, table.c.seq <= high).order_by(table.c.seq)
            ).all()
            more = conn.execute(select(table.c.seq).where(table.c.seq > high).limit(1)).first() is not None
    except Exception:  # a value the driver cannot read, the front-end down: the cycle reads these rows itself
        return [], True
    rows = [row for row in rows if not getattr(row, HAS_FILE, False)]
    planner = _planner(source, epoch)
    planner.prefetch_serials(rows)
    now = _REPO.now()
    plans: list[tuple[int, AheadPlan]] = []
    for row in rows:
        try:
            plan = planner.certificate(table.name, FileRow(row, None), now)
        except Exception:  # the cycle plans it, and names the failure
            continue
        if isinstance(plan, CertificatePlan):
            plans.append((plan.seq, planner.ahead(plan, row)))
    return plans, more


# -- the cycle's side ---------------------------------------------------------------------------------------


class PlanningPool:
    """One planning process on the repository ``factory`` opens (the one the cycle commits to: plans made with
    other keys are never taken), started on first use and kept across cycles (the exchange's sources take
    turns)."""

    def __init__(self, factory: RepositoryFactory) -> None:
        self.factory = factory
        self._pool: concurrent.futures.ProcessPoolExecutor | None = None
        self._epochs = itertools.count(1)
        #: plans taken as the worker made them, and rows it planned that the cycle planned again
        self.adopted = self.replanned = 0

    def _executor(self) -> concurrent.futures.ProcessPoolExecutor:
        if self._pool is None:
            context = multiprocessing.get_context("forkserver" if os.name == "posix" else "spawn")
            _start_forkserver_deaf_to_ctrl_c(context)
            self._pool = concurrent.futures.ProcessPoolExecutor(
                max_workers=1, mp_context=context, initializer=_init_worker, initargs=(self.factory,)
            )
        return self._pool

    def start(self) -> None:
        """Start the process now and wait until it has opened the repository (else the first cycle does)."""
        self.cpu_seconds()

    def cpu_seconds(self) -> float:
        """The CPU time the planning process has used so far (it starts the process)."""
        return float(self._executor().submit(_cpu_seconds).result())

    def ahead(self, source: ExchangeSource, after: int, span: int) -> PlanningAhead:
        """Start planning ``source``'s certificate rows after ``seq`` ``after``, ``span`` numbers a task."""
        return PlanningAhead(self, source, next(self._epochs), after, span)

    def submit(self, source: ExchangeSource, epoch: int, low: int, high: int) -> Future[Any]:
        return self._executor().submit(_plan_range, source, epoch, low, high)

    def reset(self) -> None:
        """Let go of a process that failed or fell behind (its tasks not started are dropped); the next cycle
        starts a new one."""
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def __enter__(self) -> PlanningPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class PlanningAhead:
    """One cycle's certificate rows planned ahead: :data:`AHEAD_RANGES` ranges of ``span`` numbers in flight
    after the chunk being committed (:meth:`take`), until the front-end has no more rows."""

    def __init__(self, pool: PlanningPool, source: ExchangeSource, epoch: int, after: int, span: int) -> None:
        self.pool, self.source, self.epoch, self.span = pool, source, epoch, max(1, span)
        self._next = after  # the low end of the next range to submit
        self._flight: deque[tuple[int, Future[Any]]] = deque()  # (high, task), in seq order
        self._plans: dict[int, AheadPlan] = {}
        self._more = True
        self._failed = False
        self._fill()

    def _fill(self) -> None:
        while not self._failed and self._more and len(self._flight) < AHEAD_RANGES:
            low, high = self._next, self._next + self.span
            try:
                self._flight.append((high, self.pool.submit(self.source, self.epoch, low, high)))
            except Exception:
                self._stop("the planning process cannot take work")
                return
            self._next = high

    def _stop(self, why: str) -> None:
        logger.warning(
            "source %s: %s; rows are planned in this process", self.source.name, why, exc_info=True
        )
        self._failed = True
        self.cancel()
        self.pool.reset()

    def take(self, up_to: int) -> dict[int, AheadPlan]:
        """The plans made of rows up to ``seq`` ``up_to`` (waiting for the ranges that cover them); the next
        ranges are sent on."""
        while self._flight and self._flight[0][0] - self.span < up_to:
            _high, task = self._flight.popleft()
            try:
                plans, more = task.result(timeout=TAKE_TIMEOUT)
            except concurrent.futures.TimeoutError:
                self._stop(f"the planning process gave no plans for {TAKE_TIMEOUT:.0f} s")
                break
            except Exception:
                self._stop("the planning process failed")
                break
            self._plans.update(plans)
            if not more:
                self._more = False
        taken = {seq: self._plans.pop(seq) for seq in [s for s in self._plans if s <= up_to]}
        self._fill()
        return taken

    def count(self, adopted: bool) -> None:
        """One plan of the worker's taken (``adopted``) or made again in the cycle's process."""
        if adopted:
            self.pool.adopted += 1
        else:
            self.pool.replanned += 1

    def cancel(self) -> None:
        """The end of the table (or of the cycle): tasks not started are dropped, plans not taken forgotten."""
        for _high, task in self._flight:
            task.cancel()
        self._flight.clear()
        self._plans.clear()
