"""One exchange cycle of one source (:func:`run_cycle`): read → plan → apply → receipts.

1. take the source's lease (:mod:`certstore.exchange.lease`);
2. send receipts the last cycle could not write (crash between the repository commit and the receipt);
3. for each front-end table, in the order catalogue entries → status changes → certificates → status changes:
   re-read the open gaps, then the rows after the highest sequence number seen
   (:mod:`certstore.exchange.cursor`), ``batch_size`` at a time; turn each row into a plan
   (:mod:`certstore.exchange.plan`) and apply it. Status changes (revocations included) of certificates already
   stored are applied BEFORE the cycle's certificate backlog; one whose certificate version still waits in the
   front-end waits (kept in the gaps) and is applied by the second status pass, after the certificates;
4. write the receipts (回执) of what was applied, record the cycle (``exchange_cycles``) and the metrics.

Gaps are re-read every cycle; a number still missing ``gap_grace`` after it was noticed is taken as a
rolled-back write and settled (logged).

**Exactly once, with its guarantees.** The effect of a row, its audit entry, its arrival (第十一条), its ledger
entry (``exchange_applied``, unique per source, table and seq), the cursor and the lease renewal commit in ONE
repository transaction:

- certificate versions that need a file — sealed by the repository (``file_maker``) or the agency's own
  sealed file (verified first) — go one at a time through ``certificates.issue`` / ``change`` exactly like an
  API push (which write the arrival and the audit entry in their transaction), with the ledger, cursor and
  lease written by their ``within`` hook; with a ``sealer`` (:mod:`certstore.exchange.sealing`) the files are
  sealed ahead by worker processes and these commits stay here, in ``seq`` order; a row's agency file is read
  from the front-end alone, when its turn comes (batches are read without the ``file`` column);
- everything else (status changes, data-only versions when the worker runs without a file maker, rejected
  rows) is applied in batches: :class:`~certstore.services.certificate_batch.CertificateBatch` writes many
  changes under the same rules in one transaction — with each change's audit entry and arrival — and the
  ledger rows follow in that transaction;
- an idempotent repeat (the identical version already stored, an action already in effect) and a catalogue
  entry (``submit_entry`` is idempotent by code, version and content) have their effect already in place: the
  ledger and cursor are written in a transaction of their own, which is safe because applying them again
  changes nothing (and records no audit entry: nothing was applied).

Each applied certificate change has exactly one audit entry: the actor is the source's agency system
(``Actor.agency_system(issuer_code, "exchange:<source>")``), the origin the exchange with the source's name and
a request id stable for the front-end row — the ledger already guarantees the change is applied once, and its
entry commits with it.

A worker killed at any instant leaves either the whole row (effect + audit + ledger + cursor) or nothing; the
next cycle resumes from the cursor. Every commit re-checks the lease, so a worker whose lease expired and was
taken over cannot commit; and the ledger's unique key refuses a second application even then. Receipts are
written to the front-end after the repository commit, marked ``receipt_written``, and re-sent by the next cycle
when the worker died in between (upsert by table and seq).

**One bad row never blocks the rest.** A row that cannot be applied is rejected with field-level reasons in
its receipt and never retried: the agency writes a corrected row. Odd values are refused up front with named
limits (:mod:`certstore.exchange.rowcheck`); any other exception while reading, preparing, rendering or sealing
ONE row becomes that row's rejection too. Only failures that are not the row's fault (:data:`NOT_THE_ROWS_FAULT`:
database down, file system, sealing key unusable) abort the cycle, which then resumes from the last commit.

**Waiting for approval.** A certificate of the agency's own catalogue type that is still awaiting the bureau's
approval waits (kept in the gaps, with a ``waiting`` receipt) and is applied in the first cycle after approval.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, inspect, literal, select, update
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session

from certstore.access import AccessDeniedError, Principal
from certstore.crypto.trust import TrustStore
from certstore.exchange import rowcheck
from certstore.exchange.cursor import (
    ACCEPTED,
    LATE_WINDOW,
    REJECTED,
    Cursor,
    Done,
    Problems,
    late_candidates,
    load_cursor,
    message,
    record,
    safe_text,
)
from certstore.exchange.frontend import (
    CATALOGUE_TABLE,
    CERTIFICATE_TABLE,
    STATUS_TABLE,
    frontend_engine,
    write_receipts,
)
from certstore.exchange.lease import DEFAULT_LEASE, LeaseLostError, SourceLease, on_commit
from certstore.exchange.plan import (
    ACTION_RESULT,
    CertificatePlan,
    Defer,
    Planner,
    Reject,
    StatusPlan,
    error_problems,
    prefixed,
)
from certstore.exchange.sealing import Presealed, SealingPool
from certstore.exchange.source import ExchangeSource
from certstore.keystore import KeyStoreError
from certstore.lifecycle import TransitionError
from certstore.packaging.face import LayoutError
from certstore.records import RecordError
from certstore.services import certificates
from certstore.services import exchange_metrics as metrics
from certstore.services.calendar import load_calendar
from certstore.services.catalogue import CatalogueConflictError, submit_entry
from certstore.services.certificate_batch import CertificateBatch
from certstore.services.certificates import (
    NO_FILE,
    CertificateNotFoundError,
    DuplicateConflictError,
    FileMaker,
    NotLatestVersionError,
    written_version,
)
from certstore.services.seals import entry_seal_check
from certstore.store.models import ExchangeAppliedRow, ExchangeCycleRow
from certstore.workdays import WorkCalendar

if TYPE_CHECKING:
    from certstore.app import Application

__all__ = ["NOT_THE_ROWS_FAULT", "WAITING", "CycleStats", "run_cycle"]

logger = logging.getLogger("certstore.exchange.worker")  # the name operators' log configurations know

_IN_CHUNK = 500  # numbers per IN (...) list


class _Infrastructure(Exception):  # noqa: N818 - a wrapper, not an error of its own
    """A failure of the ledger, cursor or lease write raised inside a use case's transaction."""


class _Postponed(Exception):  # noqa: N818 - control flow, not an error
    """The first status pass stops: the rest waits for the pass after the certificates."""


class _RowFault(Exception):  # noqa: N818 - a wrapper, not an error of its own
    """A row's operation inside a batch failed for a reason of the row's own (:attr:`error`)."""

    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error


#: Failures that are not a row's fault: they end the cycle (it resumes from the last commit next time) instead of
#: rejecting the row in hand — the repository or front-end database, the file system, the sealing key.
NOT_THE_ROWS_FAULT: tuple[type[BaseException], ...] = (
    SQLAlchemyError, LeaseLostError, OSError, MemoryError, KeyStoreError, _Infrastructure,
)  # fmt: skip
#: Database failures of a row's own values (e.g. a value the column cannot hold) inside a batch.
_ROW_DATA_ERRORS = (DataError,)


@contextlib.contextmanager
def _rows_fault() -> Iterator[None]:
    """Around one row's operation in a batch: its own failures become :class:`_RowFault` (the batch is split
    and that row rejected); a concurrent write (IntegrityError, retried) and :data:`NOT_THE_ROWS_FAULT` pass."""
    try:
        yield
    except _ROW_DATA_ERRORS as exc:
        raise _RowFault(exc) from exc
    except (IntegrityError, *NOT_THE_ROWS_FAULT):
        raise
    except Exception as exc:
        raise _RowFault(exc) from exc


#: The receipt state of a row that waits (its catalogue type awaits the bureau's approval); replaced by the
#: final receipt (accepted / rejected) when the row is applied.
WAITING = "waiting"


def _unexpected(exc: Exception, path: str) -> Problems:
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
            "lag_seconds": self.lag_seconds,
            "error": self.error,
        }


class Cycle:
    """The state of one cycle of one source (see :func:`run_cycle`)."""

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
        self._column_cache: dict[str, list[Any]] = {}
        self.sealer = sealer if file_maker is not None else None
        self._presealed: dict[int, Presealed] = {}  # seq → the file the pool seals for it
        self._seen: set[tuple[str, int]] = set()  # (table, seq) read in this cycle
        #: the first pass over the status changes, before the certificate backlog (:meth:`statuses_first`)
        self.status_first = False

    # -- ledger, cursor, lease: written in the transaction of the effect -------------------------------

    def _record(self, session: Session, table: str, done: Sequence[Done], cursor: Cursor) -> None:
        """Fence the lease, insert the ledger rows, write the cursor: in ``session``'s transaction."""
        record(session, self.lease, table, done, cursor, self.repo.now())

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
        candidate = self.cursors[table].copy()
        now = self.repo.now()
        for seq in waiting:
            candidate.wait(seq, now)
        for d in done:
            candidate.settle(d.seq)
        with self.repo.db.session() as session:
            self._record(session, table, done, candidate)
        self._committed(table, done, candidate)

    # -- receipts ---------------------------------------------------------------------------------------

    def flush_receipts(self) -> None:
        """Write the receipts of what was committed to the front-end, then mark them sent in the ledger."""
        if not self.receipts:
            return
        now = self.repo.now()
        pending, self.receipts = self.receipts, []
        for start in range(0, len(pending), _IN_CHUNK):
            part = pending[start : start + _IN_CHUNK]
            with self.frontend.begin() as conn:
                write_receipts(conn, [{**r, "written_at": now} for r in part])
            by_table: dict[str, list[int]] = {}
            for r in part:
                by_table.setdefault(r["table_name"], []).append(r["seq"])
            with self.repo.db.session() as session:
                for table, seqs in by_table.items():
                    session.execute(
                        update(ExchangeAppliedRow)
                        .where(
                            ExchangeAppliedRow.source == self.source.name,
                            ExchangeAppliedRow.table_name == table,
                            ExchangeAppliedRow.seq.in_(seqs),
                        )
                        .values(receipt_written=True)
                        .execution_options(synchronize_session=False)
                    )
            self.stats.receipts += len(part)

    def resend_receipts(self) -> None:
        """Receipts of ledger rows committed by an earlier cycle that died before writing them."""
        while True:
            with self.repo.db.session(readonly=True) as session:
                rows = session.execute(
                    select(
                        ExchangeAppliedRow.table_name,
                        ExchangeAppliedRow.seq,
                        ExchangeAppliedRow.outcome,
                        ExchangeAppliedRow.identifier,
                        ExchangeAppliedRow.problems,
                    )
                    .where(
                        ExchangeAppliedRow.source == self.source.name,
                        ExchangeAppliedRow.receipt_written.is_(False),
                    )
                    .order_by(ExchangeAppliedRow.id)
                    .limit(_IN_CHUNK)
                ).all()
            if not rows:
                return
            self.receipts = [
                {
                    "table_name": t,
                    "seq": int(s),
                    "status": o,
                    "identifier": i,
                    "message": message(p),
                    "problems": p,
                }
                for t, s, o, i, p in rows
            ]
            logger.info("source %s: re-sending %d receipts", self.source.name, len(rows))
            self.flush_receipts()

    # -- reading the front-end ----------------------------------------------------------------------------

    def _columns(self, table: Any) -> list[Any]:
        """The columns to read: a column the contract added later that this front-end lacks reads as NULL."""
        columns = self._column_cache.get(table.name)
        if columns is None:
            present = {c["name"] for c in inspect(self.frontend).get_columns(table.name)}
            columns = [c if c.name in present else literal(None).label(c.name) for c in table.c]
            if table is CERTIFICATE_TABLE:  # the agency's file is read one row at a time (_with_file)
                columns = [
                    (table.c.file.is_not(None) if "file" in present else literal(False)).label(_HAS_FILE)
                    if c.name == "file"
                    else c
                    for c in columns
                ]
            self._column_cache[table.name] = columns
        return columns

    def _fetch(self, table: Any, condition: Any, limit: int | None = None) -> list[Any]:
        query = select(*self._columns(table)).where(condition).order_by(table.c.seq)
        if limit is not None:
            query = query.limit(limit)
        try:
            with self.frontend.connect() as conn:
                return list(conn.execute(query).all())
        except Exception as exc:
            if not _row_data_error(exc):
                raise
        # a value the driver cannot convert (e.g. a time before year 1): read row by row, reject the unreadable
        with self.frontend.connect() as conn:
            seqs = [int(s) for s in conn.execute(select(table.c.seq).where(condition).order_by(table.c.seq)
                                                 .limit(limit)).scalars()]  # fmt: skip
        rows: list[Any] = []
        for seq in seqs:
            try:
                with self.frontend.connect() as conn:
                    rows.extend(conn.execute(select(*self._columns(table)).where(table.c.seq == seq)).all())
            except Exception as exc:
                if not _row_data_error(exc):
                    raise
                rows.append(_Unreadable(seq, self._unreadable_field(table, seq), str(exc).splitlines()[0]))
        return rows

    def _with_file(self, row: Any) -> Any:
        """A certificate row with its ``file`` column: read now, for this row alone (batches are read without it,
        so a batch of 1 MiB agency files never sits in memory at once)."""
        if not getattr(row, _HAS_FILE, False):
            return _FileRow(row, None)
        table = CERTIFICATE_TABLE
        try:
            with self.frontend.connect() as conn:
                file = conn.execute(select(table.c.file).where(table.c.seq == int(row.seq))).scalar()
        except Exception as exc:
            if not _row_data_error(exc):
                raise
            return _Unreadable(int(row.seq), "file", str(exc).splitlines()[0])
        return _FileRow(row, file)

    def _unreadable_field(self, table: Any, seq: int) -> str:
        for column in (
            [*self._columns(table), table.c.file] if table is CERTIFICATE_TABLE else self._columns(table)
        ):
            try:
                with self.frontend.connect() as conn:
                    conn.execute(select(column).where(table.c.seq == seq)).all()
            except Exception as exc:
                if _row_data_error(exc):
                    return str(column.name)
                raise
        return "$"

    def process_table(self, table: Any) -> None:
        name = table.name
        cursor = self.cursors[name] = load_cursor(self.repo, self.source.name, name)
        # 1. open gaps: filled now, still missing, or given up
        waiting = sorted(cursor.gaps)
        for start in range(0, len(waiting), _IN_CHUNK):
            wanted = waiting[start : start + _IN_CHUNK]
            rows = self._fetch(table, table.c.seq.in_(wanted))
            found = {int(r.seq) for r in rows}
            now = self.repo.now()
            abandoned = [s for s in wanted if s not in found and now - cursor.gaps[s] > self.gap_grace]
            if abandoned:
                logger.warning(
                    "source %s table %s: sequence numbers %s missing for over %s, taken as rolled back",
                    self.source.name, name, abandoned, self.gap_grace,
                )  # fmt: skip
                self.stats.abandoned += len(abandoned)
                candidate = cursor.copy()
                for seq in abandoned:
                    candidate.settle(seq)
                with self.repo.db.session() as session:
                    self._record(session, name, [], candidate)
                cursor.adopt(candidate)
            if rows:
                self._apply_chunk(table, rows)
        # 1b. late commits: numbers given up as rolled back whose rows committed after all (cursor.late_candidates)
        late = late_candidates(self.repo, self.source.name, name, self.repo.now() - LATE_WINDOW)
        for start in range(0, len(late), _IN_CHUNK):
            if rows := self._fetch(table, table.c.seq.in_(late[start : start + _IN_CHUNK])):
                self._apply_chunk(table, rows)
        # 2. new rows, a batch at a time
        while True:
            rows = self._fetch(table, table.c.seq > cursor.high, self.batch_size)
            if not rows:
                break
            now = self.repo.now()
            previous = cursor.high
            for row in rows:  # numbers skipped between rows read: not committed (yet)
                for missing in range(previous + 1, int(row.seq)):
                    cursor.wait(missing, now)
                previous = int(row.seq)
            self._apply_chunk(table, rows)
            if len(rows) < self.batch_size:
                break

    # -- applying -------------------------------------------------------------------------------------------

    def _apply_chunk(self, table: Any, rows: Sequence[Any]) -> None:
        seen = {(table.name, int(r.seq)) for r in rows} - self._seen  # a status re-read by the 2nd pass: once
        self._seen |= seen
        self.stats.seen += len(seen)
        unreadable = [r for r in rows if isinstance(r, _Unreadable)]
        if unreadable:
            self._commit_alone(
                table.name,
                [Done(r.seq, REJECTED, problems=[(r.field, f"cannot be read: {r.why}")]) for r in unreadable],
            )
            rows = [r for r in rows if not isinstance(r, _Unreadable)]
        if table is CATALOGUE_TABLE:
            for row in rows:
                self._apply_catalogue(row)
        elif table is CERTIFICATE_TABLE:
            self._apply_certificates(rows)
        else:
            self._apply_statuses(rows)
        self.flush_receipts()

    def _apply_catalogue(self, row: Any) -> None:
        seq = int(row.seq)
        principal = Principal(
            id=0, name=self.actor.name, role=self.actor.role,
            organisation_code=self.source.issuer_code, organisation_name=self.source.issuer_code,
        )  # fmt: skip
        try:
            document = rowcheck.load_json(row.document, "document")
            # the seal a type names must be its issuer's (and exist here) when this exchange seals for it; an
            # agency that seals its own files (--no-seal) holds its seal itself: seal_owner binds those files
            check = entry_seal_check(self.app) if self.file_maker is not None else None
            submission, _created = submit_entry(self.repo, document, principal=principal, seal_check=check)
            done = Done(seq, ACCEPTED, f"{submission.entry.code}/v{submission.entry.version}")
        except rowcheck.RowCheckError as exc:
            done = Done(seq, REJECTED, problems=exc.problems)
        except AccessDeniedError as exc:
            done = Done(seq, REJECTED, problems=[("document.issuer.credit_code", str(exc))])
        except CatalogueConflictError as exc:
            done = Done(seq, REJECTED, problems=[("document.version", str(exc))])
        except ValueError as exc:
            done = Done(seq, REJECTED, problems=error_problems(exc, "document"))
        except NOT_THE_ROWS_FAULT:
            raise
        except Exception as exc:
            done = Done(seq, REJECTED, problems=_unexpected(exc, "document"))
        # submit_entry is idempotent (same code, version and content: no-op), so the ledger may follow it.
        self._commit_alone(CATALOGUE_TABLE.name, [done])
        self.planner.forget_entries()

    # certificates

    def _pending_certificates(self, numbers: Iterable[str], exclude: set[int]) -> dict[str, set[int]]:
        """Certificate rows of these numbers waiting in the front-end (not settled, not being applied now):
        number → versions."""
        cursor = self.cursors.get(CERTIFICATE_TABLE.name) or load_cursor(
            self.repo, self.source.name, CERTIFICATE_TABLE.name
        )
        wanted = sorted(set(numbers))
        pending: dict[str, set[int]] = {}
        table = CERTIFICATE_TABLE
        for start in range(0, len(wanted), _IN_CHUNK):
            query = select(table.c.seq, table.c.certificate_number, table.c.version).where(
                table.c.issuer_code == self.source.issuer_code,
                table.c.certificate_number.in_(wanted[start : start + _IN_CHUNK]),
                table.c.seq > cursor.watermark,
            )
            with self.frontend.connect() as conn:
                for seq, number, version in conn.execute(query):
                    if int(seq) not in cursor.applied and int(seq) not in exclude:
                        pending.setdefault(number, set()).add(version)
        return pending

    def _plan_certificate(self, row: Any, now: datetime) -> CertificatePlan | Reject | Defer:
        try:
            return self.planner.certificate(CERTIFICATE_TABLE.name, row, now)
        except NOT_THE_ROWS_FAULT:
            raise
        except Exception as exc:
            return Reject(_unexpected(exc, "data"))

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

    def _apply_certificates(self, rows: Sequence[Any]) -> None:
        now = self.repo.now()
        plans: list[CertificatePlan | Done | _Later] = []
        waits: dict[str, list[int]] = {}  # why → rows
        for row in rows:
            if getattr(row, _HAS_FILE, False):  # planned (file read) and applied when its turn comes
                plans.append(_Later(row))
                continue
            plan = self._plan_certificate(_FileRow(row, None), now)
            if isinstance(plan, Defer):
                waits.setdefault(plan.why, []).append(int(row.seq))
                continue
            plans.append(
                Done(int(row.seq), REJECTED, problems=plan.problems) if isinstance(plan, Reject) else plan
            )
        for why, seqs in waits.items():
            self._wait(CERTIFICATE_TABLE.name, seqs, why)
        in_chunk = {int(r.seq) for r in rows}
        if (
            self.sealer is not None and self.file_maker is not None
        ):  # sealed by the pool, committed below in order
            for item in plans:
                if isinstance(item, CertificatePlan) and item.file is None and not item.renewal:
                    self._presealed[item.seq] = self.sealer.submit(self.file_maker, item.prepared)
        try:
            self._apply_planned(plans, now, in_chunk)
        finally:
            for presealed in self._presealed.values():
                presealed.future.cancel()
            self._presealed.clear()

    def _apply_planned(
        self, plans: Sequence[CertificatePlan | Done | _Later], now: datetime, in_chunk: set[int]
    ) -> None:
        batch: list[CertificatePlan | Done] = []
        for item in plans:
            if isinstance(item, _Later):
                self._certificate_batch(batch, in_chunk)
                batch = []
                self._certificate_with_file(item.row, now, in_chunk)
                continue
            plan = item
            if isinstance(plan, CertificatePlan) and (
                plan.file is not None or self.file_maker is not None or plan.renewal
            ):
                self._certificate_batch(batch, in_chunk)
                batch = []
                self._certificate_alone(plan, in_chunk)
            else:
                batch.append(plan)
        self._certificate_batch(batch, in_chunk)

    def _certificate_with_file(self, row: Any, now: datetime, in_chunk: set[int]) -> None:
        """A row that carries the agency's sealed file: its file read, planned and applied alone — the bytes are
        dropped before the next row's are read."""
        table = CERTIFICATE_TABLE.name
        full = self._with_file(row)
        if isinstance(full, _Unreadable):
            self._commit_alone(
                table, [Done(full.seq, REJECTED, problems=[(full.field, f"cannot be read: {full.why}")])]
            )
            return
        plan = self._plan_certificate(full, now)
        del full
        if isinstance(plan, Defer):
            self._wait(table, [int(row.seq)], plan.why)
        elif isinstance(plan, Reject):
            self._commit_alone(table, [Done(int(row.seq), REJECTED, problems=plan.problems)])
        else:
            self._certificate_alone(plan, in_chunk)

    def _missing_predecessor(self, plan: CertificatePlan, in_chunk: set[int]) -> Defer | Done:
        # rows of this chunk up to this one are being decided now; later ones still wait
        pending = self._pending_certificates([plan.number], {s for s in in_chunk if s <= plan.seq})
        if plan.version - 1 in pending.get(plan.number, set()):
            return Defer(f"version {plan.version - 1} is still waiting in the front-end")
        return Done(
            plan.seq,
            REJECTED,
            problems=[
                (
                    "version",
                    f"version {plan.version - 1} of certificate {plan.number!r} is not in the repository: "
                    "deliver versions in order (a correction of a rejected version is a new row)",
                )
            ],
        )

    def _certificate_batch(self, plans: Sequence[CertificatePlan | Done], in_chunk: set[int]) -> None:
        if not plans:
            return
        table = CERTIFICATE_TABLE.name
        for attempt in (1, 2):
            candidate = self.cursors[table].copy()
            done: list[Done] = []
            waiting: list[int] = []
            try:
                with self.repo.db.session() as session:
                    at = self.repo.now()
                    numbers = [p.number for p in plans if isinstance(p, CertificatePlan)]
                    batch = CertificateBatch(
                        self.repo, session, issuer_code=self.source.issuer_code, numbers=numbers, at=at,
                        calendar=self.calendar,
                    )  # fmt: skip
                    for plan in plans:
                        if isinstance(plan, Done):
                            done.append(plan)
                            continue
                        with _rows_fault():
                            outcome = self._batch_one(batch, plan, in_chunk)
                        if isinstance(outcome, Defer):
                            waiting.append(plan.seq)
                            continue
                        done.append(outcome)
                    with _rows_fault():
                        batch.flush()  # the effects with their audit entries and arrivals
                    for seq in waiting:
                        candidate.wait(seq, at)
                    for d in done:
                        candidate.settle(d.seq)
                    self._record(session, table, done, candidate)
            except IntegrityError:
                if attempt == 2:
                    raise
                logger.info(
                    "source %s: a concurrent write touched this batch; running it again", self.source.name
                )
                continue
            except _RowFault as fault:  # one row's failure: find it, reject it, apply the rest
                self._split_batch(plans, in_chunk, fault.error)
                return
            self._committed(table, done, candidate)
            self.stats.deferred += len(waiting)
            return

    def _split_batch(
        self, plans: Sequence[CertificatePlan | Done], in_chunk: set[int], exc: Exception
    ) -> None:
        """A batch failed on a row: run its rows one per batch; the failing one alone is rejected."""
        if len(plans) == 1:
            plan = plans[0]
            logger.warning("source %s: certificate row %d failed: %r", self.source.name, plan.seq, exc)
            self._commit_alone(
                CERTIFICATE_TABLE.name, [Done(plan.seq, REJECTED, problems=_unexpected(exc, "data"))]
            )
            return
        for plan in plans:
            self._certificate_batch([plan], in_chunk)

    def _batch_one(self, batch: CertificateBatch, plan: CertificatePlan, in_chunk: set[int]) -> Done | Defer:
        try:
            if plan.version == 1:
                identifier, created = batch.issue(plan.prepared, call=plan.call)
            else:
                identifier, created = batch.change(
                    plan.prepared, reason=self._change_reason(plan), call=plan.call
                )
        except CertificateNotFoundError:
            return self._missing_predecessor(plan, in_chunk)
        except DuplicateConflictError as exc:
            return Done(plan.seq, REJECTED, problems=[("version", str(exc))])
        except (NotLatestVersionError, TransitionError) as exc:
            return Done(plan.seq, REJECTED, problems=[("version", str(exc))])
        except RecordError as exc:
            return Done(plan.seq, REJECTED, problems=prefixed("data", exc.problems))
        return Done(plan.seq, ACCEPTED, identifier, created=created)

    def _change_reason(self, plan: CertificatePlan) -> str:
        return f"变更 (exchange {self.source.name} #{plan.seq})"

    def _certificate_alone(self, plan: CertificatePlan, in_chunk: set[int]) -> None:
        """One version with a file: ``certificates.issue``/``change`` for the row's call, exactly like an API push
        (authorised, arrival and audit entry in its transaction); the ledger, cursor and lease written by the
        ``within`` hook in that same transaction."""
        table = CERTIFICATE_TABLE.name
        candidate = self.cursors[table].copy()
        candidate.settle(plan.seq)
        committed: list[str] = []

        def within(session: Session) -> None:
            identifier = (
                written_version(session).identifier if plan.renewal else str(plan.prepared.identifier)
            )
            try:
                self._record(session, table, [Done(plan.seq, ACCEPTED, identifier)], candidate)
            except NOT_THE_ROWS_FAULT:
                raise
            except Exception as exc:  # the ledger, cursor or lease: never the row's fault
                raise _Infrastructure(exc) from exc
            on_commit(session, lambda: committed.append(identifier))

        file_options: dict[str, Any] = (
            {"file": bytes(plan.file), "file_media_type": plan.file_media_type}
            if plan.file is not None
            else {
                "file_maker": self._presealed.get(plan.seq)
                or (self.file_maker if self.file_maker is not None else NO_FILE)
            }
        )
        outcome: Done | Defer
        try:
            identical = None if plan.renewal else certificates.find_identical(self.repo, plan.prepared)
            if identical is not None:  # a repeat: accepted, nothing to apply (and nothing to audit)
                outcome = Done(plan.seq, ACCEPTED, identical.identifier)
            elif plan.renewal:
                outcome = self._renew_alone(plan, within, file_options, in_chunk)
            elif plan.version == 1:
                result = certificates.issue(
                    self.app, plan.call, plan.draft, within=within, catalogue_version=plan.prepared.entry.version,
                    **file_options,
                )  # fmt: skip
                outcome = Done(plan.seq, ACCEPTED, result.certificate.identifier)
            else:
                outcome = self._change_alone(plan, within, file_options, in_chunk)
        except DuplicateConflictError as exc:
            outcome = Done(plan.seq, REJECTED, problems=[("version", str(exc))])
        except (NotLatestVersionError, TransitionError) as exc:
            outcome = Done(plan.seq, REJECTED, problems=[("version", str(exc))])
        except RecordError as exc:
            outcome = Done(plan.seq, REJECTED, problems=prefixed("data", exc.problems))
        except (
            LayoutError
        ) as exc:  # the face cannot be laid out (too long, a character no font has): the row's
            outcome = Done(plan.seq, REJECTED, problems=_unexpected(exc, "data.face"))
        except AccessDeniedError as exc:  # the issuer rules, checked again by the use case (planned already)
            outcome = Done(plan.seq, REJECTED, problems=[("data.catalogue", str(exc))])
        except NOT_THE_ROWS_FAULT:
            raise
        except Exception as exc:
            if committed:
                raise  # after the commit: not the row's doing
            logger.warning("source %s: certificate row %d failed: %r", self.source.name, plan.seq, exc)
            outcome = Done(plan.seq, REJECTED, problems=_unexpected(exc, "data"))
        if committed:  # the within hook's transaction committed: ledger and cursor are in
            done = Done(plan.seq, ACCEPTED, committed[0])
            self._committed(table, [done], candidate)
        elif isinstance(outcome, Defer):
            self._commit_alone(table, [], waiting=[plan.seq])
            self.stats.deferred += 1
        else:  # refused, or an identical version already stored: nothing was written for this row
            self._commit_alone(table, [outcome])

    def _renew_alone(
        self, plan: CertificatePlan, within: certificates.Within, file_options: Mapping[str, Any],
        in_chunk: set[int],
    ) -> Done | Defer:  # fmt: skip
        """延续 (operation ``renew``): version N renews version N-1 — the same content, a later end of validity."""
        previous = certificates.stored_version(
            self.repo, self.source.issuer_code, plan.number, plan.version - 1
        )
        if previous is None:
            return self._missing_predecessor(plan, in_chunk)
        draft = plan.draft
        differs = [
            name
            for name, old, new in (
                ("data.catalogue", previous.catalogue_code, plan.prepared.entry.code),
                ("data.face", dict(previous.face), dict(draft.face)),
                ("data.holder", previous.holder, draft.holder),
            )
            if old != new
        ]
        if differs:
            return Done(
                plan.seq, REJECTED,
                problems=[(name, "a renewal (延续) keeps the content and extends the validity; deliver other "
                                 "content as a change (变更: operation empty or change)") for name in differs],
            )  # fmt: skip
        new = certificates.renew(
            self.app, plan.call, previous.identifier, valid_until=plan.prepared.valid_until,
            reason=f"延续 (exchange {self.source.name} #{plan.seq})", within=within, **file_options,
        )  # fmt: skip
        return Done(plan.seq, ACCEPTED, new.identifier)

    def _change_alone(
        self, plan: CertificatePlan, within: certificates.Within, file_options: Mapping[str, Any],
        in_chunk: set[int],
    ) -> Done | Defer:  # fmt: skip
        previous = certificates.stored_version(
            self.repo, self.source.issuer_code, plan.number, plan.version - 1
        )
        if previous is None:
            return self._missing_predecessor(plan, in_chunk)
        if previous.catalogue_code != plan.prepared.entry.code:
            return Done(
                plan.seq, REJECTED,
                problems=[("data.catalogue", f"a new version keeps the catalogue type {previous.catalogue_code}")],
            )  # fmt: skip
        new = certificates.change(
            self.app, plan.call, previous.identifier, plan.draft, reason=self._change_reason(plan),
            within=within, **file_options,
        )  # fmt: skip
        return Done(plan.seq, ACCEPTED, new.identifier)

    # status changes

    def _apply_statuses(self, rows: Sequence[Any]) -> None:
        plans: list[StatusPlan | Done] = []
        if not rows:
            return
        for row in rows:
            try:
                plan = self.planner.status(STATUS_TABLE.name, row)
            except NOT_THE_ROWS_FAULT:
                raise
            except Exception as exc:
                plan = Reject(_unexpected(exc, "$"))
            plans.append(
                Done(int(row.seq), REJECTED, problems=plan.problems) if isinstance(plan, Reject) else plan
            )
        numbers = [p.number for p in plans if isinstance(p, StatusPlan)]
        # A certificate version still waiting in the front-end comes first: the status waits for it.
        pending = self._pending_certificates(numbers, set()) if numbers else {}
        table = STATUS_TABLE.name
        if self.status_first and all(isinstance(p, StatusPlan) and p.number in pending for p in plans):
            raise _Postponed()  # nothing of this batch is for a certificate already settled: the second pass
        for attempt in (1, 2):
            candidate = self.cursors[table].copy()
            done: list[Done] = []
            waiting: list[int] = []
            try:
                with self.repo.db.session() as session:
                    at = self.repo.now()
                    batch = CertificateBatch(
                        self.repo, session, issuer_code=self.source.issuer_code, numbers=numbers, at=at,
                        calendar=self.calendar,
                    )  # fmt: skip
                    for plan in plans:
                        if isinstance(plan, Done):
                            done.append(plan)
                        elif plan.number in pending and (
                            self.status_first or plan.version is None or plan.version in pending[plan.number]
                        ):  # before the backlog: any version of it still waiting in the front-end comes first
                            waiting.append(plan.seq)
                        else:
                            with _rows_fault():
                                done.append(self._act(batch, plan))
                    with _rows_fault():
                        batch.flush()  # the status changes with their audit entries
                    for seq in waiting:
                        candidate.wait(seq, at)
                    for d in done:
                        candidate.settle(d.seq)
                    self._record(session, table, done, candidate)
            except IntegrityError:
                if attempt == 2:
                    raise
                continue
            except _RowFault as fault:  # one row's failure: find it, reject it, apply the rest
                if len(rows) == 1:
                    problems = _unexpected(fault.error, "$")
                    self._commit_alone(table, [Done(int(rows[0].seq), REJECTED, problems=problems)])
                else:
                    for row in rows:
                        self._apply_statuses([row])
                return
            self._committed(table, done, candidate)
            self.stats.deferred += len(waiting)
            return

    def statuses_first(self) -> None:
        """The status changes of certificates already stored (nothing of theirs waiting in the front-end), applied
        before the cycle's certificate backlog — a revocation never waits behind sealing. The others wait (kept in
        the gaps) for the second pass after the certificates; a batch with nothing to apply now stops this pass
        without writing anything. Rows deferred here are counted once, by the second pass."""
        deferred = self.stats.deferred
        self.status_first = True
        try:
            self.process_table(STATUS_TABLE)
        except _Postponed:
            pass
        finally:
            self.status_first = False
            self.stats.deferred = deferred

    def _act(self, batch: CertificateBatch, plan: StatusPlan) -> Done:
        try:
            identifier = batch.act(plan.number, plan.version, plan.action, reason=plan.reason, call=plan.call)
            return Done(plan.seq, ACCEPTED, identifier)
        except CertificateNotFoundError as exc:
            # the certificate exists but not that version: the version is what is wrong
            field = (
                "version"
                if plan.version is not None and batch.version(plan.number, None) is not None
                else "certificate_number"
            )
            return Done(plan.seq, REJECTED, problems=[(field, str(exc))])
        except TransitionError as exc:
            found = batch.version(plan.number, plan.version)
            if found is not None and found[1] is ACTION_RESULT[plan.action]:
                return Done(plan.seq, ACCEPTED, found[0])  # already in effect: a repeat
            return Done(plan.seq, REJECTED, problems=[("action", str(exc))])
        except ValueError as exc:
            return Done(plan.seq, REJECTED, problems=[("reason", str(exc))])

    # -- the end --------------------------------------------------------------------------------------------

    def lag(self) -> float:
        """Age of the oldest change not applied: open gaps (since noticed) and rows not read yet."""
        now = self.repo.now()
        oldest: datetime | None = None
        for table in (CATALOGUE_TABLE, CERTIFICATE_TABLE, STATUS_TABLE):
            cursor = self.cursors.get(table.name)
            if cursor is None:
                continue
            for noticed in cursor.gaps.values():
                oldest = noticed if oldest is None or noticed < oldest else oldest
            with self.frontend.connect() as conn:
                first = conn.execute(
                    select(table.c.written_at).where(table.c.seq > cursor.high).order_by(table.c.seq).limit(1)
                ).scalar()
            if isinstance(first, datetime):
                oldest = first if oldest is None or first < oldest else oldest
        return 0.0 if oldest is None else max((now - oldest).total_seconds(), 0.0)


_HAS_FILE = "has_file"  # the label of ``file IS NOT NULL`` in batch reads of the certificate table


class _FileRow:
    """A certificate row read without its ``file`` column, with the file read for it alone (or None)."""

    __slots__ = ("_row", "file")

    def __init__(self, row: Any, file: bytes | None) -> None:
        self._row, self.file = row, file

    def __getattr__(self, name: str) -> Any:
        return getattr(self._row, name)


@dataclass
class _Later:
    """A certificate row with a file: planned when its turn to be applied comes."""

    row: Any


@dataclass
class _Unreadable:
    """A front-end row the driver cannot read (a value out of its range): rejected, naming the column."""

    seq: int
    field: str
    why: str


def _row_data_error(exc: Exception) -> bool:
    """A failure converting one row's values (not the database being unreachable)."""
    if isinstance(exc, DataError | ValueError | OverflowError):
        return True
    cause = exc.orig if isinstance(exc, DBAPIError) else exc.__cause__
    return isinstance(cause, ValueError | OverflowError)


def run_cycle(
    app: Application,
    source: ExchangeSource,
    *,
    file_maker: FileMaker | None,
    worker: str,
    batch_size: int = 500,
    gap_grace: timedelta = timedelta(minutes=10),
    trust: TrustStore | None = None,
    lease: timedelta = DEFAULT_LEASE,
    frontend: Engine | None = None,
    sealer: SealingPool | None = None,
) -> CycleStats:
    """One exchange cycle of ``source`` into ``app``'s repository (module docstring). ``file_maker`` seals
    versions sent without a file (None: they are stored without one; ``app.file_maker()`` seals as the API
    does); ``trust`` verifies files agencies sealed themselves (without it such rows are rejected;
    ``app.trust``). Raises :class:`~certstore.exchange.lease.LeaseHeldError` when another worker holds the
    source; any other failure is recorded in the cycle's row and the returned stats (``error``) after what was
    committed stays committed. ``frontend`` reuses an engine (else one is made and disposed). ``sealer``: a pool
    of processes that seal the versions ``file_maker`` would seal (:mod:`certstore.exchange.sealing`); the
    commits stay in this process, in ``seq`` order."""
    if batch_size < 1:
        raise ValueError("batch_size must be ≥ 1")
    repo = app.repo
    started = repo.now()
    stats = CycleStats(source.name, worker, started)
    holder = SourceLease(repo, source.name, worker, lease)
    holder.acquire()
    engine = frontend or frontend_engine(source.url)
    clock = time.perf_counter()
    cycle_id: int | None = None
    cycle: Cycle | None = None
    try:
        with repo.db.session() as session:
            row = ExchangeCycleRow(
                source=source.name, worker=worker, started_at=started, seen=0, accepted=0, rejected=0
            )
            session.add(row)
            session.flush()
            cycle_id = row.id
        cycle = Cycle(
            app, source, engine, file_maker=file_maker, trust=trust, worker=worker, batch_size=batch_size,
            gap_grace=gap_grace, lease=holder, stats=stats, sealer=sealer,
        )  # fmt: skip
        cycle.resend_receipts()
        # status changes first (a revocation never waits behind the sealing backlog), then again for those
        # whose certificate version arrived in this cycle's certificate rows
        cycle.process_table(CATALOGUE_TABLE)
        cycle.statuses_first()
        cycle.process_table(CERTIFICATE_TABLE)
        cycle.process_table(STATUS_TABLE)
    except LeaseLostError as exc:
        stats.error = str(exc)
        logger.warning("source %s: %s", source.name, exc)
    except Exception as exc:
        cause = exc.__cause__ if isinstance(exc, _Infrastructure) and exc.__cause__ is not None else exc
        stats.error = safe_text(f"{type(cause).__name__}: {cause}")
        logger.exception("source %s: the cycle failed; it resumes from the last commit", source.name)
    finally:
        try:
            if cycle is not None:
                with contextlib.suppress(Exception):
                    stats.lag_seconds = cycle.lag()
                stats.open_gaps = sum(len(c.gaps) for c in cycle.cursors.values())
            stats.finished_at = started + timedelta(seconds=time.perf_counter() - clock)
            if cycle_id is not None:
                with contextlib.suppress(Exception), repo.db.session() as session:
                    session.execute(
                        update(ExchangeCycleRow)
                        .where(ExchangeCycleRow.id == cycle_id)
                        .values(
                            finished_at=stats.finished_at, seen=stats.seen, accepted=stats.accepted,
                            rejected=stats.rejected, lag_seconds=stats.lag_seconds, error=stats.error,
                        )
                        .execution_options(synchronize_session=False)
                    )  # fmt: skip
            metrics.observe_cycle(stats)
            with contextlib.suppress(Exception):
                holder.release()
        finally:
            if frontend is None:
                engine.dispose()
    logger.info(
        "source %s: seen %d, accepted %d, rejected %d, deferred %d in %.2f s (lag %.1f s)%s",
        source.name, stats.seen, stats.accepted, stats.rejected, stats.deferred, stats.duration_seconds or 0,
        stats.lag_seconds or 0, f" — {stats.error}" if stats.error else "",
    )  # fmt: skip
    return stats
