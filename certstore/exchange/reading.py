"""Reading a source's front-end (:class:`FrontendReading`): the rows after the cursor a batch at a time, the open
gaps re-read every cycle and given up after the grace, numbers given up re-read for a late commit, the ``file``
column read one row at a time, rows the driver cannot convert, and the lag.

**Gaps.** A number below the highest seen that has no row yet is a gap: a concurrent writer has not committed
(PostgreSQL sequences are allocated at INSERT and commit out of order), a write was rolled back, or a row waits.
Gaps are re-read every cycle; one still missing ``gap_grace`` after it was noticed is taken as a rolled-back
write and given up (logged, and recorded in the ledger as ``given_up``). For :data:`~certstore.exchange.cursor.
LATE_WINDOW` the numbers given up are re-read each cycle: a row that committed after all is applied once and
reported late (:mod:`certstore.exchange.cursor`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, inspect, literal, select
from sqlalchemy.exc import DataError, DBAPIError

from certstore.exchange.core import (
    CycleCore,
    logger,
)
from certstore.exchange.cursor import (
    IN_CHUNK,
    LATE_WINDOW,
    Cursor,
    late_candidates,
    load_cursor,
)
from certstore.exchange.frontend import (
    CATALOGUE_TABLE,
    CERTIFICATE_TABLE,
    STATUS_TABLE,
)

__all__ = ["HAS_FILE", "FileRow", "FrontendReading", "Later", "Unreadable", "frontend_columns"]

HAS_FILE = "has_file"  # the label of ``file IS NOT NULL`` in batch reads of the certificate table


class FileRow:
    """A certificate row read without its ``file`` column, with the file read for it alone (or None)."""

    __slots__ = ("_row", "file")

    def __init__(self, row: Any, file: bytes | None) -> None:
        self._row, self.file = row, file

    def __getattr__(self, name: str) -> Any:
        return getattr(self._row, name)


@dataclass
class Later:
    """A certificate row with a file: planned when its turn to be applied comes."""

    row: Any


@dataclass
class Unreadable:
    """A front-end row the driver cannot read (a value out of its range): rejected, naming the column."""

    seq: int
    field: str
    why: str


def frontend_columns(frontend: Engine, table: Any) -> list[Any]:
    """The columns a batch read of ``table`` selects: a column the contract added later that this front-end lacks
    reads as NULL, and the certificate table's ``file`` as :data:`HAS_FILE` (the agency's file is read one row at
    a time: :meth:`FrontendReading._with_file`)."""
    present = {c["name"] for c in inspect(frontend).get_columns(table.name)}
    columns = [c if c.name in present else literal(None).label(c.name) for c in table.c]
    if table is CERTIFICATE_TABLE:
        columns = [
            (table.c.file.is_not(None) if "file" in present else literal(False)).label(HAS_FILE)
            if c.name == "file"
            else c
            for c in columns
        ]
    return columns


def _row_data_error(exc: Exception) -> bool:
    """A failure converting one row's values (not the database being unreachable)."""
    if isinstance(exc, DataError | ValueError | OverflowError):
        return True
    cause = exc.orig if isinstance(exc, DBAPIError) else exc.__cause__
    return isinstance(cause, ValueError | OverflowError)


class FrontendReading(CycleCore):
    """The front-end side of a cycle (module docstring); ``_apply_chunk`` is the cycle's."""

    def _columns(self, table: Any) -> list[Any]:
        columns = self._column_cache.get(table.name)
        if columns is None:
            columns = self._column_cache[table.name] = frontend_columns(self.frontend, table)
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
                rows.append(Unreadable(seq, self._unreadable_field(table, seq), str(exc).splitlines()[0]))
        return rows

    def _with_file(self, row: Any) -> Any:
        """A certificate row with its ``file`` column: read now, for this row alone (batches are read without it,
        so a batch of 1 MiB agency files never sits in memory at once)."""
        if not getattr(row, HAS_FILE, False):
            return FileRow(row, None)
        table = CERTIFICATE_TABLE
        try:
            with self.frontend.connect() as conn:
                file = conn.execute(select(table.c.file).where(table.c.seq == int(row.seq))).scalar()
        except Exception as exc:
            if not _row_data_error(exc):
                raise
            return Unreadable(int(row.seq), "file", str(exc).splitlines()[0])
        return FileRow(row, file)

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
        try:
            self._process_table(table, cursor)
        finally:
            if self._planning_ahead is not None:
                self._planning_ahead.cancel()
                self._planning_ahead = None

    def _process_table(self, table: Any, cursor: Cursor) -> None:
        name = table.name
        # 1. open gaps: filled now, still missing, or given up
        waiting = sorted(cursor.gaps)
        for start in range(0, len(waiting), IN_CHUNK):
            wanted = waiting[start : start + IN_CHUNK]
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
        for start in range(0, len(late), IN_CHUNK):
            if rows := self._fetch(table, table.c.seq.in_(late[start : start + IN_CHUNK])):
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
            if len(rows) == self.batch_size and table is CERTIFICATE_TABLE:
                self._plan_ahead(int(rows[-1].seq))
            self._apply_chunk(table, rows)
            if len(rows) < self.batch_size:
                break

    def _plan_ahead(self, after: int) -> None:
        """A backlog of certificate rows (a full batch read): with a planning process, the rows after ``after`` are
        planned there from now on, while this process applies the batches before them
        (:mod:`certstore.exchange.planning`; a delivery of less than a batch starts no process)."""
        if self.planning is not None and self._planning_ahead is None:
            self._planning_ahead = self.planning.ahead(self.source, after, self.batch_size)

    def _pending_certificates(self, numbers: Iterable[str], exclude: set[int]) -> dict[str, set[int]]:
        """Certificate rows of these numbers waiting in the front-end (not settled, not being applied now):
        number → versions."""
        cursor = self.cursors.get(CERTIFICATE_TABLE.name) or load_cursor(
            self.repo, self.source.name, CERTIFICATE_TABLE.name
        )
        wanted = sorted(set(numbers))
        pending: dict[str, set[int]] = {}
        table = CERTIFICATE_TABLE
        for start in range(0, len(wanted), IN_CHUNK):
            query = select(table.c.seq, table.c.certificate_number, table.c.version).where(
                table.c.issuer_code == self.source.issuer_code,
                table.c.certificate_number.in_(wanted[start : start + IN_CHUNK]),
                table.c.seq > cursor.watermark,
            )
            with self.frontend.connect() as conn:
                for seq, number, version in conn.execute(query):
                    if int(seq) not in cursor.applied and int(seq) not in exclude:
                        pending.setdefault(number, set()).add(version)
        return pending

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
