"""The exchange task (交换任务): reads agencies' front-end databases (数据库前置机) into the repository.

:class:`ExchangeWorker` runs one cycle of every source every 2 minutes by default (规范§四). The parts:

- :mod:`certstore.exchange.source` — :class:`ExchangeSource`: a front-end database and its agency;
- :mod:`certstore.exchange.lease` — one worker per source (``exchange_leases``, fencing tokens);
- :mod:`certstore.exchange.cursor` — gap-safe cursors and the exactly-once ledger;
- :mod:`certstore.exchange.plan` — a front-end row → a plan (with its call) or a rejection with reasons;
- :mod:`certstore.exchange.sealing` — a pool of processes sealing a cycle's versions on all cores;
- :mod:`certstore.exchange.cycle` — one cycle (:func:`run_cycle`): read → plan → apply → receipts, each
  applied change with its audit entry, arrival, ledger entry and cursor in one transaction; its parts are
  :mod:`~certstore.exchange.core`, :mod:`~certstore.exchange.reading` (front-end, gaps, late commits),
  :mod:`~certstore.exchange.certificate_rows` (certificate versions and their commit path) and
  :mod:`~certstore.exchange.status_rows` (status changes).

This module keeps the names other code imports (``from certstore.exchange.worker import run_cycle`` …).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Iterator, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING

from sqlalchemy import Engine

from certstore.crypto.trust import TrustStore
from certstore.exchange.cycle import DEFAULT_BATCH_SIZE, CycleStats, run_cycle
from certstore.exchange.frontend import frontend_engine
from certstore.exchange.lease import DEFAULT_LEASE, LeaseHeldError, LeaseLostError
from certstore.exchange.planning import PlanningPool
from certstore.exchange.sealing import SealingPool
from certstore.exchange.source import ExchangeSource
from certstore.services import exchange_metrics as metrics
from certstore.services.certificates import FileMaker

if TYPE_CHECKING:
    from certstore.app import Application

__all__ = [
    "DEFAULT_INTERVAL",
    "DEFAULT_LEASE",
    "CycleStats",
    "ExchangeSource",
    "ExchangeWorker",
    "LeaseHeldError",
    "LeaseLostError",
    "default_worker_name",
    "run_cycle",
]

logger = logging.getLogger(__name__)

DEFAULT_INTERVAL = 120.0  # 规范§四: an exchange task every 2 minutes


def default_worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class ExchangeWorker:
    """Runs :func:`run_cycle` for every source every ``interval`` seconds (``run_forever``) or once
    (``run_once``), into the repository of ``app``. A source whose lease another worker holds is skipped for that
    round. ``sealer``: a :class:`~certstore.exchange.sealing.SealingPool` sealing with ``file_maker`` on all
    cores (commits stay in this process, in ``seq`` order); ``planning``: without ``file_maker``, a
    :class:`~certstore.exchange.planning.PlanningPool` planning the certificate rows ahead of their turn. SIGTERM/SIGINT (or :meth:`stop`) end the loop after the source in hand."""

    def __init__(
        self,
        app: Application,
        sources: Sequence[ExchangeSource],
        *,
        file_maker: FileMaker | None,
        interval: float = DEFAULT_INTERVAL,
        trust: TrustStore | None = None,
        worker: str | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        gap_grace: timedelta = timedelta(minutes=10),
        lease: timedelta = DEFAULT_LEASE,
        sealer: SealingPool | None = None,
        planning: PlanningPool | None = None,
    ) -> None:
        names = [s.name for s in sources]
        if len(set(names)) != len(names):
            raise ValueError(f"source names must be unique: {names}")
        if interval <= 0:
            raise ValueError("the interval must be positive")
        self.app, self.sources, self.file_maker, self.interval = app, list(sources), file_maker, interval
        self.trust, self.worker = trust, worker or default_worker_name()
        self.batch_size, self.gap_grace, self.lease = batch_size, gap_grace, lease
        self.sealer = sealer  # seals what file_maker would, in worker processes; closed by close()
        self.planning = planning  # without file_maker: plans the certificate rows ahead; closed by close()
        self._stop = threading.Event()
        self._engines: dict[str, Engine] = {}
        #: sources whose cycle could not start in the last round (repository unreachable), with the reason
        self.failed: dict[str, str] = {}

    def stop(self) -> None:
        self._stop.set()

    def close(self) -> None:
        """Dispose of the front-end engines and stop the sealing pool (``run_forever`` does it when it ends)."""
        if self.sealer is not None:
            self.sealer.close()
        if self.planning is not None:
            self.planning.close()
        for engine in self._engines.values():
            engine.dispose()
        self._engines.clear()

    def run_once(self) -> list[CycleStats]:
        """One cycle of every source; sources held by another worker are left out of the result."""
        results = []
        self.failed = {}
        for source in self.sources:
            if self._stop.is_set():
                break
            engine = self._engines.get(source.name)
            if engine is None:
                engine = self._engines[source.name] = frontend_engine(source.url)
            try:
                results.append(
                    run_cycle(
                        self.app,
                        source,
                        file_maker=self.file_maker,
                        worker=self.worker,
                        trust=self.trust,
                        batch_size=self.batch_size,
                        gap_grace=self.gap_grace,
                        lease=self.lease,
                        frontend=engine,
                        sealer=self.sealer,
                        planning=self.planning,
                    )
                )
            except LeaseHeldError as exc:
                metrics.observe_skip(source.name)
                logger.info("%s", exc)
            except Exception as exc:  # the repository itself unreachable: try again next round
                self.failed[source.name] = f"{type(exc).__name__}: {exc}"[:2000]
                metrics.CYCLES.labels(source.name, "error").inc()  # the metrics say so
                logger.exception("source %s: cycle could not start", source.name)
        return results

    def run_forever(self) -> None:
        """Cycles every ``interval`` seconds (measured from the start of each round) until stopped."""
        with self._signals():
            while not self._stop.is_set():
                began = time.monotonic()
                self.run_once()
                self._stop.wait(max(0.0, self.interval - (time.monotonic() - began)))
        self.close()

    @contextlib.contextmanager
    def _signals(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
        for sig in previous:
            signal.signal(sig, lambda *_: self.stop())
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
