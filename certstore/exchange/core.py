"""What every part of an exchange cycle shares (:class:`CycleCore`): the cycle's state, the ledger, cursor and
lease written in the transaction of a row's effect, rows that wait, and which failures are a row's own
(:func:`rows_fault`, :func:`unexpected`) and which end the cycle (:data:`NOT_THE_ROWS_FAULT`).

The cycle itself is :class:`certstore.exchange.cycle.Cycle`, made of this core and its parts:
:mod:`~certstore.exchange.reading` (the front-end, gaps and late commits), :mod:`~certstore.exchange.certificate_rows`
(certificate versions and their commit path) and :mod:`~certstore.exchange.status_rows` (status changes).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine
from sqlalchemy.exc import DataError, IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session

from certstore.crypto.trust import TrustStore
from certstore.exchange import rowcheck
from certstore.exchange.cursor import (
    ACCEPTED,
    Cursor,
    Done,
    Problems,
    mark_receipts_written,
    message,
    record,
)
from certstore.exchange.lease import LeaseLostError, SourceLease, on_commit
from certstore.exchange.plan import (
    CertificatePlan,
    Planner,
)
from certstore.exchange.sealing import Sealed, SealingPool
from certstore.exchange.source import ExchangeSource
from certstore.keystore import KeyStoreError
from certstore.packaging.face import LayoutError
from certstore.services.calendar import load_calendar
from certstore.services.certificates import (
    FileMaker,
)
from certstore.workdays import WorkCalendar

if TYPE_CHECKING:
    from certstore.app import Application
    from certstore.exchange.planning import PlanningAhead, PlanningPool

__all__ = [
    "NOT_THE_ROWS_FAULT",
    "WAITING",
    "CycleCore",
    "CycleStats",
    "Infrastructure",
    "RowFault",
    "advanced",
    "rows_fault",
    "unexpected",
]

logger = logging.getLogger("certstore.exchange.worker")  # the name operators' log configurations know


class Infrastructure(Exception):  # noqa: N818 - a wrapper, not an error of its own
    """A failure of the ledger, cursor or lease write raised inside a use case's transaction."""


class RowFault(Exception):  # noqa: N818 - a wrapper, not an error of its own
    """A row's operation inside a batch failed for a reason of the row's own (:attr:`error`)."""

    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error


#: Failures that are not a row's fault: they end the cycle (it resumes from the last commit next time) instead of
#: rejecting the row in hand — the repository or front-end database, the file system, the sealing key.
NOT_THE_ROWS_FAULT: tuple[type[BaseException], ...] = (
    SQLAlchemyError, LeaseLostError, OSError, MemoryError, KeyStoreError, Infrastructure,
)  # fmt: skip
#: Database failures of a row's own values (e.g. a value the column cannot hold) inside a batch.
_ROW_DATA_ERRORS = (DataError,)


@contextlib.contextmanager
def rows_fault() -> Iterator[None]:
    """Around one row's operation in a batch: its own failures become :class:`RowFault` (the batch is split
    and that row rejected); a concurrent write (IntegrityError, retried) and :data:`NOT_THE_ROWS_FAULT` pass."""
    try:
        yield
    except _ROW_DATA_ERRORS as exc:
        raise RowFault(exc) from exc
    except (IntegrityError, *NOT_THE_ROWS_FAULT):
        raise
    except Exception as exc:
        raise RowFault(exc) from exc


#: The receipt state of a row that waits (its catalogue type awaits the bureau's approval); replaced by the
#: final receipt (accepted / rejected) when the row is applied.
WAITING = "waiting"


def unexpected(exc: Exception, path: str) -> Problems:
    """A row's own failure nobody foresaw, as a field-level problem (it never stops the cycle)."""
    if isinstance(exc, LayoutError):
        field = getattr(exc, "field", None)
        return [(f"data.face.{field}" if field else "data.face", str(exc))]
    if isinstance(exc, RecursionError):
        return [(path, f"nested too deeply (MAX_JSON_DEPTH {rowcheck.MAX_JSON_DEPTH})")]
    return [(path, f"cannot be applied: {type(exc).__name__}: {exc}")]


@dataclass
class CycleStats:
    """What one cycle of one source did. ``lag_seconds`` is the age of the oldest change not applied at the end
    (0 when caught up); ``error`` the reason a cycle ended early."""

    source: str
    worker: str
    started_at: datetime
    finished_at: datetime | None = None
    seen: int = 0
    accepted: int = 0
    rejected: int = 0
    deferred: int = 0
    abandoned: int = 0  # gaps given up as rolled-back writes
    receipts: int = 0
    open_gaps: int = 0
    planned_ahead: int = 0  # certificate rows planned by the planning process (exchange.planning)
    lag_seconds: float | None = None
    error: str | None = None

    @property
    def duration_seconds(self) -> float | None:
        return None if self.finished_at is None else (self.finished_at - self.started_at).total_seconds()

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "worker": self.worker,
            "started_at": self.started_at.isoformat(),
            "finished_at": None if self.finished_at is None else self.finished_at.isoformat(),
            "duration_seconds": self.duration_seconds,
            "seen": self.seen,
            "accepted": self.accepted,
            "rejected": self.rejected,
            "deferred": self.deferred,
            "abandoned": self.abandoned,
            "receipts": self.receipts,
            "open_gaps": self.open_gaps,
            "planned_ahead": self.planned_ahead,
            "lag_seconds": self.lag_seconds,
            "error": self.error,
        }


def advanced(candidate: Cursor, done: Iterable[Done], waiting: Iterable[int], at: datetime) -> Cursor:
    """``candidate`` (a copy of a table's cursor) with the rows ``waiting`` kept in its gaps and the rows ``done``
    settled — what the transaction that records them writes."""
    for seq in waiting:
        candidate.wait(seq, at)
    for d in done:
        candidate.settle(d.seq)
    return candidate


class CycleCore:
    """The state of one cycle of one source (see :func:`~certstore.exchange.cycle.run_cycle`) and what every
    kind of row shares: the ledger, cursor and lease written with an effect, and the receipts to write."""

    def __init__(
        self,
        app: Application,
        source: ExchangeSource,
        frontend: Engine,
        *,
        file_maker: FileMaker | None,
        trust: TrustStore | None,
        worker: str,
        batch_size: int,
        gap_grace: timedelta,
        lease: SourceLease,
        stats: CycleStats,
        sealer: SealingPool | None = None,
        planning: PlanningPool | None = None,
    ) -> None:
        repo = app.repo
        self.app, self.repo, self.source, self.frontend = app, repo, source, frontend
        self.file_maker, self.worker = file_maker, worker
        self.batch_size, self.gap_grace, self.lease, self.stats = batch_size, gap_grace, lease, stats
        self.planner = Planner(repo, source, trust=trust)
        self.actor = source.actor
        self.cursors: dict[str, Cursor] = {}
        self.calendar: WorkCalendar = load_calendar(repo)
        self.receipts: list[dict[str, Any]] = []
        #: receipts in the front-end whose ledger rows are not marked yet: table → seqs (:meth:`_mark_sent`)
        self.sent: dict[str, set[int]] = {}
        self._column_cache: dict[str, list[Any]] = {}
        self.sealer = sealer if file_maker is not None else None
        self._ahead: dict[int, Future[Sealed]] = {}  # seq → the file a pool worker seals for it
        self._planned: dict[int, CertificatePlan] = {}  # seq → its plan, made ahead of its chunk
        #: plans data-only certificate rows ahead in another process (a cycle that seals: the sealing pool's feed)
        self.planning = planning if file_maker is None else None
        self._planning_ahead: PlanningAhead | None = None
        #: the last ``fe_certificates`` seq read ahead for the pool (None: not feeding), and whether rows may follow
        self._ahead_high: int | None = None
        self._ahead_more = False
        #: (number, version) → the seq of the row of this cycle whose version is sealed (the first to claim it)
        self._claims: dict[tuple[str, int], int] = {}
        self._seen: set[tuple[str, int]] = set()  # (table, seq) read in this cycle
        #: the first pass over the status changes, before the certificate backlog (:meth:`statuses_first`)
        self.status_first = False

    # -- ledger, cursor, lease: written in the transaction of the effect -------------------------------

    def _record(self, session: Session, table: str, done: Sequence[Done], cursor: Cursor) -> None:
        """Fence the lease, insert the ledger rows, write the cursor: in ``session``'s transaction — and mark the
        receipts written since the last one (:meth:`_mark_sent`)."""
        record(session, self.lease, table, done, cursor, self.repo.now())
        self._mark_sent(session)

    def _mark_sent(self, session: Session) -> None:
        """Mark the ledger rows whose receipts were written to the front-end since the last transaction, in
        ``session``'s: no commit of its own per batch of receipts. A crash before it commits leaves them to the
        next cycle, which writes those receipts again (the same content)."""
        if not any(self.sent.values()):
            return
        marked = {table: set(seqs) for table, seqs in self.sent.items() if seqs}
        mark_receipts_written(session, self.source.name, marked)

        def forget() -> None:
            for table, seqs in marked.items():
                self.sent[table] -= seqs

        on_commit(session, forget)

    def mark_receipts_sent(self) -> None:
        """Mark what :meth:`_mark_sent` has not yet, in a transaction of its own (the end of a cycle)."""
        if any(self.sent.values()):
            with self.repo.db.session() as session:
                self._mark_sent(session)

    def _committed(self, table: str, done: Sequence[Done], candidate: Cursor) -> None:
        self.cursors[table].adopt(candidate)
        for d in done:
            if d.outcome == ACCEPTED:
                self.stats.accepted += 1
            else:
                self.stats.rejected += 1
            self.receipts.append(
                {
                    "table_name": table,
                    "seq": d.seq,
                    "status": d.outcome,
                    "identifier": d.identifier,
                    "message": message(d.problems),
                    "problems": None if d.problems is None else [list(p) for p in d.problems],
                }
            )

    def _commit_alone(self, table: str, done: Sequence[Done], waiting: Iterable[int] = ()) -> None:
        """Ledger + cursor in a transaction of their own (no effect, or an effect already in place)."""
        candidate = advanced(self.cursors[table].copy(), done, waiting, self.repo.now())
        with self.repo.db.session() as session:
            self._record(session, table, done, candidate)
        self._committed(table, done, candidate)

    def _wait(self, table: str, seqs: Sequence[int], why: str) -> None:
        """Rows that wait: kept in the gaps (never given up), a ``waiting`` receipt the first time."""
        if not seqs:
            return
        cursor = self.cursors[table]
        new = [s for s in seqs if s not in cursor.gaps]
        self._commit_alone(table, [], waiting=seqs)
        self.stats.deferred += len(seqs)
        for seq in new:
            self.receipts.append(
                {"table_name": table, "seq": seq, "status": WAITING, "identifier": None,
                 "message": f"waiting: {why}", "problems": None}
            )  # fmt: skip
