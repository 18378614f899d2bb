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

- certificate versions the repository seals (no agency file) commit in **runs**: consecutive rows of a batch,
  at most :data:`~certstore.exchange.certificate_rows.SEALED_RUN` sealed versions per run, in ONE transaction
  through :class:`~certstore.services.certificate_batch.CertificateBatch` — each version's row, lifecycle events,
  audit entry and arrival, then the ledger rows, cursor and lease fence, all or nothing. Each version is prepared
  once, when its row is planned; its file is sealed for exactly that version (by a
  :class:`~certstore.exchange.sealing.SealingPool` worker as soon as the row is planned, or in this process) and
  stored in the blob store BEFORE the transaction (content-addressed, idempotent: a crash leaves at most orphan
  blobs). A run that fails on a row is run again one row per transaction, so a bad row is only its own
  rejection (:mod:`certstore.exchange.certificate_rows`);
- a row with the agency's own sealed file (verified first), a renewal (延续), and a version whose sealing failed
  go one at a time through ``certificates.issue`` / ``change`` / ``renew`` exactly like an API push (which
  write the arrival and the audit entry in their transaction), with the ledger, cursor and lease written by
  their ``within`` hook; a row's agency file is read from the front-end alone, when its turn comes (batches are
  read without the ``file`` column);
- everything else (status changes, data-only versions when the worker runs without a file maker, rejected
  rows) is applied in batches the same way: one transaction per batch with each change's audit entry and
  arrival and the ledger rows;
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

**Where the code is.** :class:`Cycle` is put together from :mod:`~certstore.exchange.core` (the cycle's state,
ledger/cursor/lease writes, which failures are a row's own), :mod:`~certstore.exchange.reading` (the front-end:
batches, gaps, late commits, the ``file`` column, the lag), :mod:`~certstore.exchange.certificate_rows`
(certificate versions: planning, sealing ahead, the commit path) and :mod:`~certstore.exchange.status_rows`
(status changes); this module holds the receipts, the catalogue rows and :func:`run_cycle`.
"""

from __future__ import annotations

import contextlib
import gc
import time
from collections.abc import Iterator, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, select, update

from certstore.access import AccessDeniedError, Principal
from certstore.crypto.trust import TrustStore
from certstore.exchange import rowcheck
from certstore.exchange.certificate_rows import CertificateRows
from certstore.exchange.core import (
    NOT_THE_ROWS_FAULT,
    WAITING,
    CycleStats,
    Infrastructure,
    logger,
    unexpected,
)
from certstore.exchange.cursor import (
    ACCEPTED,
    IN_CHUNK,
    REJECTED,
    Done,
    message,
    safe_text,
)
from certstore.exchange.frontend import (
    CATALOGUE_TABLE,
    CERTIFICATE_TABLE,
    STATUS_TABLE,
    frontend_engine,
    write_receipts,
)
from certstore.exchange.lease import DEFAULT_LEASE, LeaseLostError, SourceLease
from certstore.exchange.plan import (
    error_problems,
)
from certstore.exchange.planning import PlanningPool
from certstore.exchange.reading import Unreadable
from certstore.exchange.sealing import SealingPool
from certstore.exchange.source import ExchangeSource
from certstore.exchange.status_rows import StatusRows
from certstore.services import exchange_metrics as metrics
from certstore.services.catalogue import CatalogueConflictError, submit_entry
from certstore.services.certificates import (
    FileMaker,
)
from certstore.services.seals import entry_seal_check
from certstore.store.models import ExchangeAppliedRow, ExchangeCycleRow

if TYPE_CHECKING:
    from certstore.app import Application

__all__ = ["DEFAULT_BATCH_SIZE", "NOT_THE_ROWS_FAULT", "WAITING", "Cycle", "CycleStats", "run_cycle"]

#: Front-end rows read and applied per repository transaction. A thousand, not fewer: each transaction rewrites
#: the index pages its rows land on (identifiers and serials are random, so nearly one page per row and index at
#: a few hundred rows), and a larger one shares more of them; with the 100k-row data-only cycle 1,000 was faster
#: than both 500 and 2,000 (2,000 leaves the first, unplanned batch too long). A transaction holds SQLite's write
#: lock for about a quarter of a second.
DEFAULT_BATCH_SIZE = 1_000


class Cycle(CertificateRows, StatusRows):
    """One cycle of one source (module docstring): the core, the front-end reading, certificate versions and
    status changes, with the receipts and the catalogue rows."""

    # -- receipts ---------------------------------------------------------------------------------------

    def flush_receipts(self, *, mark_now: bool = False) -> None:
        """Write the receipts of what was committed to the front-end; their ledger rows are marked sent in the next
        transaction that records ledger rows (or at the end of the cycle: :meth:`mark_receipts_sent`; ``mark_now``:
        in one of their own, now)."""
        if not self.receipts:
            return
        now = self.repo.now()
        pending, self.receipts = self.receipts, []
        for start in range(0, len(pending), IN_CHUNK):
            part = pending[start : start + IN_CHUNK]
            with self.frontend.begin() as conn:
                write_receipts(conn, [{**r, "written_at": now} for r in part])
            for r in part:
                self.sent.setdefault(r["table_name"], set()).add(r["seq"])
            self.stats.receipts += len(part)
        if mark_now:
            self.mark_receipts_sent()

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
                    .limit(IN_CHUNK)
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
            self.flush_receipts(mark_now=True)  # marked before the next ones are looked up

    # -- applying -------------------------------------------------------------------------------------------

    def _apply_chunk(self, table: Any, rows: Sequence[Any]) -> None:
        seen = {(table.name, int(r.seq)) for r in rows} - self._seen  # a status re-read by the 2nd pass: once
        self._seen |= seen
        self.stats.seen += len(seen)
        unreadable = [r for r in rows if isinstance(r, Unreadable)]
        if unreadable:
            self._commit_alone(
                table.name,
                [Done(r.seq, REJECTED, problems=[(r.field, f"cannot be read: {r.why}")]) for r in unreadable],
            )
            rows = [r for r in rows if not isinstance(r, Unreadable)]
        if table is CATALOGUE_TABLE:
            for row in rows:
                self._apply_catalogue(row)
        elif table is CERTIFICATE_TABLE:
            self._apply_certificates(rows)
        else:
            self._apply_statuses(rows)
        self.flush_receipts()
        self.feed_pool()  # between chunks: the sealing pool never runs dry

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
            done = Done(seq, REJECTED, problems=unexpected(exc, "document"))
        # submit_entry is idempotent (same code, version and content: no-op), so the ledger may follow it.
        self._commit_alone(CATALOGUE_TABLE.name, [done])
        self.planner.forget_entries()


@contextlib.contextmanager
def _heap_frozen() -> Iterator[None]:
    """The objects that exist before the cycle (modules, the application, caches) are left out of the garbage
    collector's passes during it (:func:`gc.freeze`), and handed back after (:func:`gc.unfreeze`). A cycle of 100k
    rows allocates millions of objects, so the collector runs hundreds of times; each full pass also walked the
    whole long-lived heap, ~20 % of the cycle. Garbage among the old objects is collected after the cycle. In a
    process that keeps a frozen heap of its own (objects frozen before the cycle), nothing is unfrozen."""
    unfreeze = gc.get_freeze_count() == 0
    gc.freeze()
    try:
        yield
    finally:
        if unfreeze:
            gc.unfreeze()


def run_cycle(
    app: Application,
    source: ExchangeSource,
    *,
    file_maker: FileMaker | None,
    worker: str,
    batch_size: int = DEFAULT_BATCH_SIZE,
    gap_grace: timedelta = timedelta(minutes=10),
    trust: TrustStore | None = None,
    lease: timedelta = DEFAULT_LEASE,
    frontend: Engine | None = None,
    sealer: SealingPool | None = None,
    planning: PlanningPool | None = None,
) -> CycleStats:
    """One exchange cycle of ``source`` into ``app``'s repository (module docstring). ``file_maker`` seals
    versions sent without a file (None: they are stored without one; ``app.file_maker()`` seals as the API
    does); ``trust`` verifies files agencies sealed themselves (without it such rows are rejected;
    ``app.trust``). Raises :class:`~certstore.exchange.lease.LeaseHeldError` when another worker holds the
    source; any other failure is recorded in the cycle's row and the returned stats (``error``) after what was
    committed stays committed. ``frontend`` reuses an engine (else one is made and disposed). ``sealer``: a pool
    of processes that seal the versions ``file_maker`` would seal (:mod:`certstore.exchange.sealing`); the
    commits stay in this process, in ``seq`` order. ``planning``: in a cycle without ``file_maker``, a process
    that plans the certificate rows ahead of their turn (:mod:`certstore.exchange.planning`). The cycle writes
    as a bulk writer (:meth:`~certstore.store.db.Database.bulk_writes`)."""
    if batch_size < 1:
        raise ValueError("batch_size must be ≥ 1")
    with _heap_frozen(), app.repo.db.bulk_writes():
        return _run_cycle(
            app, source, file_maker=file_maker, worker=worker, batch_size=batch_size, gap_grace=gap_grace,
            trust=trust, lease=lease, frontend=frontend, sealer=sealer, planning=planning,
        )  # fmt: skip


def _run_cycle(
    app: Application,
    source: ExchangeSource,
    *,
    file_maker: FileMaker | None,
    worker: str,
    batch_size: int,
    gap_grace: timedelta,
    trust: TrustStore | None,
    lease: timedelta,
    frontend: Engine | None,
    sealer: SealingPool | None,
    planning: PlanningPool | None,
) -> CycleStats:
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
            gap_grace=gap_grace, lease=holder, stats=stats, sealer=sealer, planning=planning,
        )  # fmt: skip
        cycle.resend_receipts()
        # status changes first (a revocation never waits behind the sealing backlog), then again for those
        # whose certificate version arrived in this cycle's certificate rows
        cycle.process_table(CATALOGUE_TABLE)
        cycle.seal_ahead_of_statuses()  # with a pool: the workers seal from now on, while status changes are applied
        cycle.statuses_first()
        cycle.process_table(CERTIFICATE_TABLE)
        cycle.process_table(STATUS_TABLE)
    except LeaseLostError as exc:
        stats.error = str(exc)
        logger.warning("source %s: %s", source.name, exc)
    except Exception as exc:
        cause = exc.__cause__ if isinstance(exc, Infrastructure) and exc.__cause__ is not None else exc
        stats.error = safe_text(f"{type(cause).__name__}: {cause}")
        logger.exception("source %s: the cycle failed; it resumes from the last commit", source.name)
    finally:
        try:
            if cycle is not None:
                cycle.drop_ahead()
                try:
                    cycle.mark_receipts_sent()
                except Exception:  # the next cycle writes those receipts again
                    logger.warning("source %s: receipts written but not marked", source.name, exc_info=True)
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
