"""The exchange task (交换任务): reads agencies' front-end databases (数据库前置机) into the repository.

One cycle of one source (:func:`run_cycle`), every 2 minutes by default (:class:`ExchangeWorker`):

1. take the source's lease (``exchange_leases``: one worker per source; a second worker started by mistake
   skips the source while the lease is held);
2. send receipts the last cycle could not write (crash between the repository commit and the receipt);
3. for each front-end table, in the order catalogue entries → certificates → status changes: re-read the open
   gaps, then the rows after the highest sequence number seen, ``batch_size`` at a time, and apply each row;
4. write the receipts (回执) of what was applied, record the cycle (``exchange_cycles``) and the metrics.

**Incremental by sequence, never by time.** Each (source, table) has a cursor (``exchange_cursors``): every
``seq`` ≤ ``watermark`` is settled, ``applied_above`` lists the settled numbers above it, ``gaps`` the numbers
below the highest seen that are not settled yet, with the time each was first noticed. A gap is a number a
concurrent writer has not committed yet (PostgreSQL sequences are allocated at INSERT and commit out of
order), a rolled-back write, or a row *deferred* because the certificate it refers to is still waiting in the
front-end. Gaps are re-read every cycle; a number still missing ``gap_grace`` after it was noticed is taken
as a rolled-back write and settled (logged).

**Exactly once.** The effect of a row, its ledger entry (``exchange_applied``, unique per source, table and
seq), the cursor and the lease renewal commit in ONE repository transaction:

- certificate versions that need a file — sealed by the repository (``file_maker``) or the agency's own
  sealed file (verified first) — go one at a time through ``certificates.issue`` / ``change`` exactly like an
  API push, with the ledger, cursor, lease and arrival (第十一条) written by their ``within`` hook;
- everything else (status changes, data-only versions when the worker runs without a file maker, rejected
  rows) is applied in batches: :class:`~certstore.services.certificates.CertificateBatch` writes many changes
  under the same rules in one transaction with their ledger rows;
- an idempotent repeat (the identical version already stored, an action already in effect) and a catalogue
  entry (``submit_entry`` is idempotent by code, version and content) have their effect already in place: the
  ledger and cursor are written in a transaction of their own, which is safe because applying them again
  changes nothing.

A worker killed at any instant leaves either the whole row (effect + ledger + cursor) or nothing; the next
cycle resumes from the cursor. Every commit re-checks the lease (a conditional UPDATE of its ``lease_until``
token), so a worker whose lease expired and was taken over cannot commit; and the ledger's unique key refuses a
second application even then. Receipts are written to the front-end after the repository commit, marked
``receipt_written``, and re-sent by the next cycle when the worker died in between (upsert by table and seq).

**One bad row never blocks the rest.** A row that cannot be applied is rejected with field-level reasons in
its receipt and never retried: the agency writes a corrected row. Only failures that are not the row's fault
(database down, sealing key unusable) abort the cycle, which then resumes from the last commit.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, Engine, Update, event, insert, or_, select, update
from sqlalchemy.dialects import postgresql as postgresql_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from certstore.access import AccessDeniedError, Principal, Role
from certstore.catalogue import CatalogueEntry
from certstore.checks import Indication
from certstore.crypto.sm3 import sm3
from certstore.crypto.trust import TrustStore
from certstore.exchange import metrics
from certstore.exchange.frontend import (
    CATALOGUE_TABLE,
    CERTIFICATE_TABLE,
    STATUS_TABLE,
    frontend_engine,
    write_receipts,
)
from certstore.identifiers import validate_credit_code
from certstore.lifecycle import Action, Status, TransitionError
from certstore.packaging.face import LayoutError
from certstore.records import CertificateDraft, PreparedVersion, RecordError, draft_from_json, prepare_version
from certstore.services import certificates, deadlines
from certstore.services.calendar import load_calendar
from certstore.services.catalogue import (
    CatalogueConflictError,
    UnknownCatalogueError,
    get_entry,
    submit_entry,
)
from certstore.services.certificate_batch import CertificateBatch
from certstore.services.certificates import (
    CertificateNotFoundError,
    DuplicateConflictError,
    FileMaker,
    NotLatestVersionError,
)
from certstore.store.models import (
    ArrivalRow,
    ExchangeAppliedRow,
    ExchangeCursorRow,
    ExchangeCycleRow,
    ExchangeLeaseRow,
)
from certstore.store.repository import Repository
from certstore.verify import verify_file
from certstore.workdays import WorkCalendar

__all__ = [
    "DEFAULT_INTERVAL",
    "DEFAULT_LEASE",
    "CycleStats",
    "ExchangeSource",
    "ExchangeWorker",
    "LeaseHeldError",
    "LeaseLostError",
    "run_cycle",
]

logger = logging.getLogger(__name__)

DEFAULT_INTERVAL = 120.0  # 规范§四: an exchange task every 2 minutes
DEFAULT_LEASE = timedelta(seconds=60)  # renewed with every commit; a dead worker's lease frees after this
ACCEPTED, REJECTED = "accepted", "rejected"
STATUS_ACTIONS = {
    a.value: a for a in (Action.SUSPEND, Action.RESUME, Action.REVOKE, Action.CANCEL, Action.ANNUL)
}
#: The status an action leaves a version in: an action whose result is already in place is a repeat (accepted).
ACTION_RESULT = {
    Action.SUSPEND: Status.SUSPENDED,
    Action.RESUME: Status.VALID,
    Action.REVOKE: Status.REVOKED,
    Action.CANCEL: Status.CANCELLED,
    Action.ANNUL: Status.ANNULLED,
}
_SOURCE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
_IN_CHUNK = 500  # numbers per IN (...) list


class LeaseHeldError(RuntimeError):
    """Another worker holds the source's lease (the message says who and until when)."""


class LeaseLostError(RuntimeError):
    """This worker's lease expired and another worker took the source over; nothing more is committed."""


@dataclass(frozen=True)
class ExchangeSource:
    """One agency's front-end database: ``name`` (letters, digits, ``._-``; names its cursors and ledger),
    the SQLAlchemy ``url``, and the ``issuer_code`` (颁发机构代码) of the agency that writes it — it may deliver
    only its own certificates and catalogue types."""

    name: str
    url: str
    issuer_code: str

    def __post_init__(self) -> None:
        if not _SOURCE_NAME.fullmatch(self.name):
            raise ValueError(f"source name {self.name!r}: 1-100 letters, digits, '.', '_' or '-'")
        validate_credit_code(self.issuer_code)
        if not self.url.strip():
            raise ValueError(f"source {self.name}: empty database URL")


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


def _rowcount(result: Any) -> int:
    return cast(CursorResult[Any], result).rowcount


def _on_commit(session: Session, callback: Callable[[], None]) -> None:
    """Run ``callback`` once the session's transaction has committed (never if it rolls back)."""

    def committed(_session: Session) -> None:
        callback()

    event.listen(session, "after_commit", committed, once=True)  # sessions are not reused after commit


# --- the lease -------------------------------------------------------------------------------------------


class _Lease:
    """``exchange_leases`` row of one source; the ``lease_until`` this worker wrote is its fencing token."""

    def __init__(self, repo: Repository, source: str, worker: str, duration: timedelta) -> None:
        if duration <= timedelta(0):
            raise ValueError("the lease must be positive")
        self.repo, self.source, self.worker, self.duration = repo, source, worker, duration
        self.token: datetime | None = None

    def acquire(self) -> None:
        now = self.repo.now()
        until = now + self.duration
        with self.repo.db.session() as session:
            taken = session.execute(
                update(ExchangeLeaseRow)
                .where(
                    ExchangeLeaseRow.source == self.source,
                    or_(ExchangeLeaseRow.lease_until.is_(None), ExchangeLeaseRow.lease_until <= now),
                )
                .values(holder=self.worker, lease_until=until)
                .execution_options(synchronize_session=False)
            )
            if _rowcount(taken) == 1:
                self.token = until
                return
            held = session.get(ExchangeLeaseRow, self.source)
        if held is not None:
            raise LeaseHeldError(
                f"source {self.source} is being exchanged by {held.holder} (lease until "
                f"{held.lease_until.isoformat() if held.lease_until else '?'})"
            )
        try:
            with self.repo.db.session() as session:
                session.add(ExchangeLeaseRow(source=self.source, holder=self.worker, lease_until=until))
        except IntegrityError:
            raise LeaseHeldError(f"source {self.source} was just taken by another worker") from None
        self.token = until

    def fence(self, session: Session) -> None:
        """Inside a repository transaction: renew the lease if it is still this worker's, else raise
        :class:`LeaseLostError` (the transaction must then roll back). The new token counts once committed."""
        until = self.repo.now() + self.duration
        if _rowcount(session.execute(self._set_own(until))) != 1:
            raise LeaseLostError(f"worker {self.worker} lost the lease of source {self.source}")

        def adopt() -> None:
            self.token = until

        _on_commit(session, adopt)

    def release(self) -> None:
        if self.token is None:
            return
        with self.repo.db.session() as session:
            session.execute(self._set_own(None))
        self.token = None

    def _set_own(self, until: datetime | None) -> Update:
        """UPDATE of ``lease_until`` to ``until``, matching only while the row still carries this worker's token."""
        return (
            update(ExchangeLeaseRow)
            .where(
                ExchangeLeaseRow.source == self.source,
                ExchangeLeaseRow.holder == self.worker,
                ExchangeLeaseRow.lease_until == self.token,
            )
            .values(lease_until=until)
            .execution_options(synchronize_session=False)
        )


# --- the cursor ------------------------------------------------------------------------------------------


@dataclass
class _Cursor:
    """In-memory copy of one ``exchange_cursors`` row (see the module docstring)."""

    table: str
    watermark: int = 0
    applied: set[int] = field(default_factory=set)
    gaps: dict[int, datetime] = field(default_factory=dict)

    @property
    def high(self) -> int:
        return max([self.watermark, *self.applied, *self.gaps])

    def copy(self) -> _Cursor:
        return _Cursor(self.table, self.watermark, set(self.applied), dict(self.gaps))

    def adopt(self, other: _Cursor) -> None:
        self.watermark, self.applied, self.gaps = other.watermark, other.applied, other.gaps

    def settled(self, seq: int) -> bool:
        return seq <= self.watermark or seq in self.applied

    def settle(self, seq: int) -> None:
        self.gaps.pop(seq, None)
        if seq > self.watermark:
            self.applied.add(seq)
        while self.watermark + 1 in self.applied:
            self.watermark += 1
            self.applied.discard(self.watermark)

    def wait(self, seq: int, now: datetime) -> None:
        """``seq`` is missing or deferred: re-read it next cycle."""
        if not self.settled(seq):
            self.gaps.setdefault(seq, now)

    def values(self, now: datetime) -> dict[str, Any]:
        return {
            "watermark": self.watermark,
            "applied_above": sorted(self.applied),
            "gaps": {str(seq): at.isoformat() for seq, at in sorted(self.gaps.items())},
            "updated_at": now,
        }


def _load_cursor(repo: Repository, source: str, table: str) -> _Cursor:
    with repo.db.session() as session:
        row = session.scalars(
            select(ExchangeCursorRow).where(
                ExchangeCursorRow.source == source, ExchangeCursorRow.table_name == table
            )
        ).first()
        if row is not None:
            return _Cursor(
                table,
                int(row.watermark),
                {int(s) for s in row.applied_above or []},
                {int(s): datetime.fromisoformat(at) for s, at in (row.gaps or {}).items()},
            )
    try:
        with repo.db.session() as session:
            session.add(
                ExchangeCursorRow(
                    source=source,
                    table_name=table,
                    watermark=0,
                    applied_above=[],
                    gaps={},
                    updated_at=repo.now(),
                )
            )
    except IntegrityError:  # created meanwhile by another worker: read it
        return _load_cursor(repo, source, table)
    return _Cursor(table)


# --- what a row becomes ----------------------------------------------------------------------------------

Problems = list[tuple[str, str]]


@dataclass
class _Reject:
    problems: Problems


@dataclass
class _Defer:
    why: str


@dataclass
class _Done:
    """The row's outcome, to be written to the ledger and the receipt."""

    seq: int
    outcome: str
    identifier: str | None = None
    problems: Problems | None = None
    created: bool = False  # a new certificate version (its arrival is recorded)


@dataclass
class _CertificatePlan:
    seq: int
    prepared: PreparedVersion
    draft: CertificateDraft
    channel: str
    completed_at: datetime
    file: bytes | None
    file_media_type: str | None

    @property
    def version(self) -> int:
        return self.prepared.identifier.version

    @property
    def number(self) -> str:
        return self.draft.certificate_number


@dataclass
class _StatusPlan:
    seq: int
    number: str
    version: int | None
    action: Action
    reason: str


def _prefixed(prefix: str, problems: Iterable[Any]) -> Problems:
    out: Problems = []
    for item in problems:
        path, message = (
            (item[0], item[1]) if isinstance(item, list | tuple) and len(item) == 2 else ("$", item)
        )
        path = str(path)
        out.append((f"{prefix}.{path}" if path not in ("$", "") else prefix, str(message)))
    return out


def _message(problems: Sequence[Sequence[str]] | None) -> str:
    if not problems:
        return "accepted"
    return "rejected: " + "; ".join(f"{p}: {m}" for p, m in problems)[:2000]


def _error_problems(exc: BaseException, path: str) -> Problems:
    listed = getattr(exc, "problems", None) or getattr(exc, "errors", None)
    if listed:
        return _prefixed(path, listed)
    return [(path, str(exc))]


# --- one cycle -------------------------------------------------------------------------------------------


class _Cycle:
    """The state of one cycle of one source (see :func:`run_cycle`)."""

    def __init__(
        self,
        repo: Repository,
        source: ExchangeSource,
        frontend: Engine,
        *,
        file_maker: FileMaker | None,
        trust: TrustStore | None,
        worker: str,
        batch_size: int,
        gap_grace: timedelta,
        lease: _Lease,
        stats: CycleStats,
    ) -> None:
        self.repo, self.source, self.frontend = repo, source, frontend
        self.file_maker, self.trust, self.worker = file_maker, trust, worker
        self.batch_size, self.gap_grace, self.lease, self.stats = batch_size, gap_grace, lease, stats
        self.actor = f"{source.issuer_code}/exchange:{source.name}"
        self.cursors: dict[str, _Cursor] = {}
        self.calendar: WorkCalendar = load_calendar(repo)
        self.entries: dict[str, CatalogueEntry | Exception] = {}
        self.receipts: list[dict[str, Any]] = []

    # -- ledger, cursor, lease: written in the transaction of the effect -------------------------------

    def _record(self, session: Session, table: str, done: Sequence[_Done], cursor: _Cursor) -> None:
        """Fence the lease, insert the ledger rows, write the cursor: in ``session``'s transaction."""
        now = self.repo.now()
        self.lease.fence(session)
        if done:
            session.execute(
                insert(ExchangeAppliedRow),
                [
                    {
                        "source": self.source.name,
                        "table_name": table,
                        "seq": d.seq,
                        "outcome": d.outcome,
                        "identifier": d.identifier,
                        "problems": None if d.problems is None else [list(p) for p in d.problems],
                        "receipt_written": False,
                        "applied_at": now,
                    }
                    for d in done
                ],
            )
        session.execute(
            update(ExchangeCursorRow)
            .where(ExchangeCursorRow.source == self.source.name, ExchangeCursorRow.table_name == table)
            .values(**cursor.values(now))
            .execution_options(synchronize_session=False)
        )

    def _committed(self, table: str, done: Sequence[_Done], candidate: _Cursor) -> None:
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
                    "message": _message(d.problems),
                    "problems": None if d.problems is None else [list(p) for p in d.problems],
                }
            )

    def _commit_alone(self, table: str, done: Sequence[_Done], waiting: Iterable[int] = ()) -> None:
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
                    "message": _message(p),
                    "problems": p,
                }
                for t, s, o, i, p in rows
            ]
            logger.info("source %s: re-sending %d receipts", self.source.name, len(rows))
            self.flush_receipts()

    # -- reading the front-end ----------------------------------------------------------------------------

    def _fetch(self, table: Any, condition: Any, limit: int | None = None) -> list[Any]:
        query = select(table).where(condition).order_by(table.c.seq)
        if limit is not None:
            query = query.limit(limit)
        with self.frontend.connect() as conn:
            return list(conn.execute(query).all())

    def process_table(self, table: Any) -> None:
        name = table.name
        cursor = self.cursors[name] = _load_cursor(self.repo, self.source.name, name)
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
        self.stats.seen += len(rows)
        if table is CATALOGUE_TABLE:
            for row in rows:
                self._apply_catalogue(row)
        elif table is CERTIFICATE_TABLE:
            self._apply_certificates(rows)
        else:
            self._apply_statuses(rows)
        self.flush_receipts()

    def _entry(self, code: str) -> CatalogueEntry:
        cached = self.entries.get(code)
        if cached is None:
            try:
                cached = get_entry(self.repo, code)
            except UnknownCatalogueError as exc:
                cached = exc
            self.entries[code] = cached
        if isinstance(cached, Exception):
            raise cached
        return cached

    def _apply_catalogue(self, row: Any) -> None:
        seq = int(row.seq)
        principal = Principal(
            id=0, name=f"exchange:{self.source.name}", role=Role.AGENCY,
            organisation_code=self.source.issuer_code, organisation_name=self.source.issuer_code,
        )  # fmt: skip
        try:
            document = json.loads(row.document)
            submission, _created = submit_entry(self.repo, document, principal=principal)
            done = _Done(seq, ACCEPTED, f"{submission.entry.code}/v{submission.entry.version}")
        except (json.JSONDecodeError, TypeError) as exc:
            done = _Done(seq, REJECTED, problems=[("document", f"not JSON: {exc}")])
        except AccessDeniedError as exc:
            done = _Done(seq, REJECTED, problems=[("document.issuer.credit_code", str(exc))])
        except CatalogueConflictError as exc:
            done = _Done(seq, REJECTED, problems=[("document.version", str(exc))])
        except ValueError as exc:
            done = _Done(seq, REJECTED, problems=_error_problems(exc, "document"))
        # submit_entry is idempotent (same code, version and content: no-op), so the ledger may follow it.
        self._commit_alone(CATALOGUE_TABLE.name, [done])
        self.entries.clear()

    # certificates

    def _plan_certificate(self, row: Any, now: datetime) -> _CertificatePlan | _Reject:
        problems: Problems = []
        if row.issuer_code != self.source.issuer_code:
            problems.append(
                (
                    "issuer_code",
                    f"this front-end delivers for {self.source.issuer_code}, not {row.issuer_code}",
                )
            )
        version = row.version
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            problems.append(("version", f"a whole number ≥ 1, got {version!r}"))
        if row.channel not in {c.value for c in deadlines.Channel}:
            problems.append(("channel", f"one of online, offline, bulk; got {row.channel!r}"))
        completed_at = row.completed_at
        if not isinstance(completed_at, datetime):
            problems.append(("completed_at", f"not an ISO 8601 time: {completed_at!r}"))
        else:
            try:
                completed_at = deadlines.check_completed_at(completed_at, now=now)
            except deadlines.ArrivalError as exc:
                problems.append(("completed_at", exc.message))
        if row.file is not None and not isinstance(row.file, bytes | bytearray | memoryview):
            problems.append(("file", "the file column holds bytes (BLOB / bytea)"))
        elif row.file is not None and not row.file_media_type:
            problems.append(("file_media_type", "required with a file (application/ofd or application/pdf)"))
        try:
            document = json.loads(row.data)
        except (json.JSONDecodeError, TypeError) as exc:
            return _Reject([*problems, ("data", f"not JSON: {exc}")])
        try:
            draft = draft_from_json(document)
        except RecordError as exc:
            return _Reject([*problems, *_prefixed("data", exc.problems)])
        if draft.certificate_number != row.certificate_number:
            problems.append(
                (
                    "data.certificate_number",
                    f"{draft.certificate_number!r} is not the row's {row.certificate_number!r}",
                )
            )
        try:
            entry = self._entry(draft.catalogue_code)
        except UnknownCatalogueError as exc:
            return _Reject([*problems, ("data.catalogue", str(exc))])
        if entry.issuer.credit_code != self.source.issuer_code:
            problems.append(
                (
                    "data.catalogue",
                    f"catalogue type {entry.code} ({entry.name}) is issued by {entry.issuer.credit_code}; "
                    f"agency {self.source.issuer_code} delivers only its own catalogue types",
                )
            )
        if problems:
            return _Reject(problems)
        file_key = sm3(row.file).hex() if row.file is not None else None
        try:
            prepared = prepare_version(
                entry, draft, version=version, holder_key=self.repo.holder_key, file_key=file_key
            )
        except RecordError as exc:
            return _Reject(_prefixed("data", exc.problems))
        if row.file is not None:
            problem = self._check_file(bytes(row.file), str(prepared.identifier))
            if problem is not None:
                return _Reject([("file", problem)])
        return _CertificatePlan(
            int(row.seq), prepared, draft, row.channel, completed_at, row.file, row.file_media_type
        )

    def _check_file(self, file: bytes, identifier: str) -> str | None:
        if self.trust is None:
            return "this exchange has no trust anchors to verify agency-sealed files with"
        report = verify_file(file, trust=self.trust)
        if report.indication is not Indication.VALID:
            reasons = "; ".join(report.problems) or "; ".join(
                f"{c.name}: {c.reason}" for s in report.signatures for c in s.checks if c.reason
            )
            return f"the sealed file is {report.indication.value}: {reasons or 'see certstore verify'}"[:1000]
        if report.certificate is None or report.certificate.identifier != identifier:
            claimed = None if report.certificate is None else report.certificate.identifier
            return f"the file is for certificate {claimed}, the data for {identifier}"
        return None

    def _pending_certificates(self, numbers: Iterable[str], exclude: set[int]) -> dict[str, set[int]]:
        """Certificate rows of these numbers waiting in the front-end (not settled, not being applied now):
        number → versions."""
        cursor = self.cursors.get(CERTIFICATE_TABLE.name) or _load_cursor(
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

    def _apply_certificates(self, rows: Sequence[Any]) -> None:
        now = self.repo.now()
        plans: list[_CertificatePlan | _Done] = []
        for row in rows:
            plan = self._plan_certificate(row, now)
            plans.append(
                _Done(int(row.seq), REJECTED, problems=plan.problems) if isinstance(plan, _Reject) else plan
            )
        in_chunk = {int(r.seq) for r in rows}
        batch: list[_CertificatePlan | _Done] = []
        for plan in plans:
            if isinstance(plan, _CertificatePlan) and (plan.file is not None or self.file_maker is not None):
                self._certificate_batch(batch, in_chunk)
                batch = []
                self._certificate_alone(plan, in_chunk)
            else:
                batch.append(plan)
        self._certificate_batch(batch, in_chunk)

    def _missing_predecessor(self, plan: _CertificatePlan, in_chunk: set[int]) -> _Defer | _Done:
        # rows of this chunk up to this one are being decided now; later ones still wait
        pending = self._pending_certificates([plan.number], {s for s in in_chunk if s <= plan.seq})
        if plan.version - 1 in pending.get(plan.number, set()):
            return _Defer(f"version {plan.version - 1} is still waiting in the front-end")
        return _Done(
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

    def _certificate_batch(self, plans: Sequence[_CertificatePlan | _Done], in_chunk: set[int]) -> None:
        if not plans:
            return
        table = CERTIFICATE_TABLE.name
        for attempt in (1, 2):
            candidate = self.cursors[table].copy()
            done: list[_Done] = []
            waiting: list[int] = []
            arrivals: list[tuple[_CertificatePlan, str]] = []
            try:
                with self.repo.db.session() as session:
                    at = self.repo.now()
                    numbers = [p.number for p in plans if isinstance(p, _CertificatePlan)]
                    batch = CertificateBatch(
                        self.repo, session, issuer_code=self.source.issuer_code, numbers=numbers, at=at
                    )
                    for plan in plans:
                        if isinstance(plan, _Done):
                            done.append(plan)
                            continue
                        outcome = self._batch_one(batch, plan, in_chunk)
                        if isinstance(outcome, _Defer):
                            waiting.append(plan.seq)
                            continue
                        done.append(outcome)
                        if outcome.created:
                            arrivals.append((plan, cast(str, outcome.identifier)))
                    batch.flush()
                    self._arrivals(session, arrivals, at)
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
            self._committed(table, done, candidate)
            self.stats.deferred += len(waiting)
            return

    def _batch_one(
        self, batch: CertificateBatch, plan: _CertificatePlan, in_chunk: set[int]
    ) -> _Done | _Defer:
        try:
            if plan.version == 1:
                identifier, created = batch.issue(plan.prepared, actor=self.actor)
            else:
                identifier, created = batch.change(
                    plan.prepared, reason=f"变更 (exchange {self.source.name} #{plan.seq})", actor=self.actor
                )
        except CertificateNotFoundError:
            return self._missing_predecessor(plan, in_chunk)
        except DuplicateConflictError as exc:
            return _Done(plan.seq, REJECTED, problems=[("version", str(exc))])
        except (NotLatestVersionError, TransitionError) as exc:
            return _Done(plan.seq, REJECTED, problems=[("version", str(exc))])
        except RecordError as exc:
            return _Done(plan.seq, REJECTED, problems=_prefixed("data", exc.problems))
        return _Done(plan.seq, ACCEPTED, identifier, created=created)

    def _arrival(self, session: Session, plan: _CertificatePlan, identifier: str, at: datetime) -> None:
        """The arrival of a new version against its deadline (第十一条), in the effect's transaction."""
        deadlines.record_arrival(
            session,
            identifier=identifier,
            issuer_code=self.source.issuer_code,
            source=self.source.name,
            channel=plan.channel,
            completed_at=plan.completed_at,
            arrived_at=at,
            calendar=self.calendar,
        )

    def _arrivals(
        self, session: Session, arrivals: Sequence[tuple[_CertificatePlan, str]], at: datetime
    ) -> None:
        """Many arrivals in one statement: the rows :func:`deadlines.record_arrival` writes (same deadline rule,
        same "a recorded arrival is kept" conflict handling), for the batch path."""
        if not arrivals:
            return
        name = session.get_bind().dialect.name
        if name not in ("sqlite", "postgresql"):
            for plan, identifier in arrivals:
                self._arrival(session, plan, identifier, at)
            return
        rows = []
        for plan, identifier in arrivals:
            deadline = deadlines.deadline_for(plan.channel, plan.completed_at, self.calendar)
            rows.append(
                {
                    "identifier": identifier, "issuer_code": self.source.issuer_code, "source": self.source.name,
                    "channel": plan.channel, "completed_at": plan.completed_at, "arrived_at": at,
                    "deadline_at": deadline, "late": at > deadline,
                }
            )  # fmt: skip
        dialect: Any = sqlite_dialect if name == "sqlite" else postgresql_dialect
        session.execute(
            dialect.insert(ArrivalRow).on_conflict_do_nothing(index_elements=["identifier"]), rows
        )

    def _certificate_alone(self, plan: _CertificatePlan, in_chunk: set[int]) -> None:
        """One version with a file: ``certificates.issue``/``change`` exactly like an API push, the ledger,
        cursor, lease and arrival written by the ``within`` hook in the same transaction."""
        table = CERTIFICATE_TABLE.name
        candidate = self.cursors[table].copy()
        candidate.settle(plan.seq)
        committed: list[str] = []

        def within(session: Session) -> None:
            identifier = str(plan.prepared.identifier)
            at = self.repo.now()
            self._arrival(session, plan, identifier, at)
            self._record(session, table, [_Done(plan.seq, ACCEPTED, identifier)], candidate)
            _on_commit(session, lambda: committed.append(identifier))

        file_options: dict[str, Any] = (
            {"file": bytes(plan.file), "file_media_type": plan.file_media_type}
            if plan.file is not None
            else {"file_maker": self.file_maker}
        )
        outcome: _Done | _Defer
        try:
            if plan.version == 1:
                result = certificates.issue(
                    self.repo, plan.draft, actor=self.actor, within=within,
                    catalogue_version=plan.prepared.entry.version, **file_options,
                )  # fmt: skip
                outcome = _Done(plan.seq, ACCEPTED, result.certificate.identifier)
            else:
                outcome = self._change_alone(plan, within, file_options, in_chunk)
        except DuplicateConflictError as exc:
            outcome = _Done(plan.seq, REJECTED, problems=[("version", str(exc))])
        except (NotLatestVersionError, TransitionError) as exc:
            outcome = _Done(plan.seq, REJECTED, problems=[("version", str(exc))])
        except RecordError as exc:
            outcome = _Done(plan.seq, REJECTED, problems=_prefixed("data", exc.problems))
        except LayoutError as exc:  # the face does not fit the certificate's layout: the row's fault
            outcome = _Done(plan.seq, REJECTED, problems=[("data.face", str(exc))])
        if committed:  # the within hook's transaction committed: ledger and cursor are in
            done = _Done(plan.seq, ACCEPTED, committed[0])
            self._committed(table, [done], candidate)
        elif isinstance(outcome, _Defer):
            self._commit_alone(table, [], waiting=[plan.seq])
            self.stats.deferred += 1
        else:  # refused, or an identical version already stored: nothing was written for this row
            self._commit_alone(table, [outcome])

    def _change_alone(
        self, plan: _CertificatePlan, within: certificates.Within, file_options: Mapping[str, Any],
        in_chunk: set[int],
    ) -> _Done | _Defer:  # fmt: skip
        identical = certificates.find_identical(self.repo, plan.prepared)
        if identical is not None:
            return _Done(plan.seq, ACCEPTED, identical.identifier)
        previous = certificates.stored_version(
            self.repo, self.source.issuer_code, plan.number, plan.version - 1
        )
        if previous is None:
            return self._missing_predecessor(plan, in_chunk)
        if previous.catalogue_code != plan.prepared.entry.code:
            return _Done(
                plan.seq, REJECTED,
                problems=[("data.catalogue", f"a new version keeps the catalogue type {previous.catalogue_code}")],
            )  # fmt: skip
        new = certificates.change(
            self.repo, previous.identifier, plan.draft, reason=f"变更 (exchange {self.source.name} #{plan.seq})",
            actor=self.actor, within=within, **file_options,
        )  # fmt: skip
        return _Done(plan.seq, ACCEPTED, new.identifier)

    # status changes

    def _plan_status(self, row: Any) -> _StatusPlan | _Reject:
        problems: Problems = []
        if row.issuer_code != self.source.issuer_code:
            problems.append(
                (
                    "issuer_code",
                    f"this front-end delivers for {self.source.issuer_code}, not {row.issuer_code}",
                )
            )
        action = STATUS_ACTIONS.get(row.action)
        if action is None:
            problems.append(("action", f"one of {', '.join(STATUS_ACTIONS)}; got {row.action!r}"))
        version = row.version
        if version is not None and (not isinstance(version, int) or version < 1):
            problems.append(("version", f"a whole number ≥ 1 or empty (the latest), got {version!r}"))
        if not isinstance(row.reason, str) or not row.reason.strip():
            problems.append(("reason", "required: why (every status change is explained)"))
        if problems or action is None:
            return _Reject(problems)
        return _StatusPlan(int(row.seq), row.certificate_number, version, action, row.reason)

    def _apply_statuses(self, rows: Sequence[Any]) -> None:
        plans: list[_StatusPlan | _Done] = []
        for row in rows:
            plan = self._plan_status(row)
            plans.append(
                _Done(int(row.seq), REJECTED, problems=plan.problems) if isinstance(plan, _Reject) else plan
            )
        numbers = [p.number for p in plans if isinstance(p, _StatusPlan)]
        # A certificate version still waiting in the front-end comes first: the status waits for it.
        pending = self._pending_certificates(numbers, set()) if numbers else {}
        table = STATUS_TABLE.name
        for attempt in (1, 2):
            candidate = self.cursors[table].copy()
            done: list[_Done] = []
            waiting: list[int] = []
            try:
                with self.repo.db.session() as session:
                    at = self.repo.now()
                    batch = CertificateBatch(
                        self.repo, session, issuer_code=self.source.issuer_code, numbers=numbers, at=at
                    )
                    for plan in plans:
                        if isinstance(plan, _Done):
                            done.append(plan)
                        elif plan.number in pending and (
                            plan.version is None or plan.version in pending[plan.number]
                        ):
                            waiting.append(plan.seq)
                        else:
                            done.append(self._act(batch, plan))
                    batch.flush()
                    for seq in waiting:
                        candidate.wait(seq, at)
                    for d in done:
                        candidate.settle(d.seq)
                    self._record(session, table, done, candidate)
            except IntegrityError:
                if attempt == 2:
                    raise
                continue
            self._committed(table, done, candidate)
            self.stats.deferred += len(waiting)
            return

    def _act(self, batch: CertificateBatch, plan: _StatusPlan) -> _Done:
        try:
            identifier = batch.act(
                plan.number, plan.version, plan.action, reason=plan.reason, actor=self.actor
            )
            return _Done(plan.seq, ACCEPTED, identifier)
        except CertificateNotFoundError as exc:
            return _Done(plan.seq, REJECTED, problems=[("certificate_number", str(exc))])
        except TransitionError as exc:
            found = batch.version(plan.number, plan.version)
            if found is not None and found[1] is ACTION_RESULT[plan.action]:
                return _Done(plan.seq, ACCEPTED, found[0])  # already in effect: a repeat
            return _Done(plan.seq, REJECTED, problems=[("action", str(exc))])
        except ValueError as exc:
            return _Done(plan.seq, REJECTED, problems=[("reason", str(exc))])

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


def run_cycle(
    repo: Repository,
    source: ExchangeSource,
    *,
    file_maker: FileMaker | None,
    worker: str,
    batch_size: int = 500,
    gap_grace: timedelta = timedelta(minutes=10),
    trust: TrustStore | None = None,
    lease: timedelta = DEFAULT_LEASE,
    frontend: Engine | None = None,
) -> CycleStats:
    """One exchange cycle of ``source`` (module docstring). ``file_maker`` seals versions sent without a file
    (None: they are stored without one); ``trust`` verifies files agencies sealed themselves (without it such
    rows are rejected). Raises :class:`LeaseHeldError` when another worker holds the source; any other failure
    is recorded in the cycle's row and the returned stats (``error``) after what was committed stays
    committed. ``frontend`` reuses an engine (else one is made and disposed)."""
    if batch_size < 1:
        raise ValueError("batch_size must be ≥ 1")
    started = repo.now()
    stats = CycleStats(source.name, worker, started)
    holder = _Lease(repo, source.name, worker, lease)
    holder.acquire()
    engine = frontend or frontend_engine(source.url)
    clock = time.perf_counter()
    cycle_id: int | None = None
    cycle: _Cycle | None = None
    try:
        with repo.db.session() as session:
            row = ExchangeCycleRow(
                source=source.name, worker=worker, started_at=started, seen=0, accepted=0, rejected=0
            )
            session.add(row)
            session.flush()
            cycle_id = row.id
        cycle = _Cycle(
            repo, source, engine, file_maker=file_maker, trust=trust, worker=worker, batch_size=batch_size,
            gap_grace=gap_grace, lease=holder, stats=stats,
        )  # fmt: skip
        cycle.resend_receipts()
        for table in (CATALOGUE_TABLE, CERTIFICATE_TABLE, STATUS_TABLE):
            cycle.process_table(table)
    except LeaseLostError as exc:
        stats.error = str(exc)
        logger.warning("source %s: %s", source.name, exc)
    except Exception as exc:
        stats.error = f"{type(exc).__name__}: {exc}"[:2000]
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


# --- the long-running worker -----------------------------------------------------------------------------


def default_worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class ExchangeWorker:
    """Runs :func:`run_cycle` for every source every ``interval`` seconds (``run_forever``) or once
    (``run_once``). A source whose lease another worker holds is skipped for that round. SIGTERM/SIGINT (or
    :meth:`stop`) end the loop after the source in hand."""

    def __init__(
        self,
        repo: Repository,
        sources: Sequence[ExchangeSource],
        *,
        file_maker: FileMaker | None,
        interval: float = DEFAULT_INTERVAL,
        trust: TrustStore | None = None,
        worker: str | None = None,
        batch_size: int = 500,
        gap_grace: timedelta = timedelta(minutes=10),
        lease: timedelta = DEFAULT_LEASE,
    ) -> None:
        names = [s.name for s in sources]
        if len(set(names)) != len(names):
            raise ValueError(f"source names must be unique: {names}")
        if interval <= 0:
            raise ValueError("the interval must be positive")
        self.repo, self.sources, self.file_maker, self.interval = repo, list(sources), file_maker, interval
        self.trust, self.worker = trust, worker or default_worker_name()
        self.batch_size, self.gap_grace, self.lease = batch_size, gap_grace, lease
        self._stop = threading.Event()
        self._engines: dict[str, Engine] = {}

    def stop(self) -> None:
        self._stop.set()

    def close(self) -> None:
        """Dispose of the front-end engines (``run_forever`` does it when it ends)."""
        for engine in self._engines.values():
            engine.dispose()
        self._engines.clear()

    def run_once(self) -> list[CycleStats]:
        """One cycle of every source; sources held by another worker are left out of the result."""
        results = []
        for source in self.sources:
            if self._stop.is_set():
                break
            engine = self._engines.get(source.name)
            if engine is None:
                engine = self._engines[source.name] = frontend_engine(source.url)
            try:
                results.append(
                    run_cycle(
                        self.repo,
                        source,
                        file_maker=self.file_maker,
                        worker=self.worker,
                        trust=self.trust,
                        batch_size=self.batch_size,
                        gap_grace=self.gap_grace,
                        lease=self.lease,
                        frontend=engine,
                    )
                )
            except LeaseHeldError as exc:
                metrics.observe_skip(source.name)
                logger.info("%s", exc)
            except Exception:  # the repository itself unreachable: try again next round
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
