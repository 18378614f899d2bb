"""Gap-safe cursors and the exactly-once ledger of the exchange (``exchange_cursors``, ``exchange_applied``).

**Incremental by sequence, never by time.** Each (source, front-end table) has a cursor: every ``seq`` ≤
``watermark`` is settled, ``applied_above`` lists the settled numbers above it, ``gaps`` the numbers below the
highest seen that are not settled yet, with the time each was first noticed. A gap is a number a concurrent
writer has not committed yet (PostgreSQL sequences are allocated at INSERT and commit out of order), a
rolled-back write, or a row *deferred* because the certificate it refers to is still waiting in the front-end.

**The ledger.** Every settled row has one ``exchange_applied`` entry (unique per source, table and seq) with its
outcome, identifier and problems (what its receipt says). :func:`record` fences the lease, inserts the ledger
entries and writes the cursor in the caller's transaction — the one holding the rows' effect — so effect,
ledger, cursor and lease renewal commit together or not at all.

**Late commits.** A gap still missing after the grace period is given up (taken as a rolled-back write) and the
ledger records it: an entry with outcome ``given_up`` (no receipt). But a front-end transaction may simply be
held longer than the grace: every cycle re-reads the numbers given up in the last :data:`LATE_WINDOW`
(:func:`late_candidates`); a row found there is applied as any other — exactly once, the ledger's unique key
still holds — and reported late: in the same transaction its ``given_up`` entry becomes a ``late`` marker
(stored under the negated sequence number, ``problems`` naming when the number was given up) next to the row's
own entry, counted by ``exchange status`` and the metrics (``certstore_exchange_late_commits``).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from certstore.exchange.lease import SourceLease
from certstore.store.bulk import insert_many
from certstore.store.models import ExchangeAppliedRow, ExchangeCursorRow
from certstore.store.repository import Repository

__all__ = [
    "ACCEPTED",
    "GIVEN_UP",
    "IN_CHUNK",
    "LATE",
    "LATE_WINDOW",
    "REJECTED",
    "Cursor",
    "Done",
    "Problems",
    "late_candidates",
    "load_cursor",
    "mark_receipts_written",
    "message",
    "record",
    "safe_text",
]

log = logging.getLogger(__name__)

ACCEPTED, REJECTED = "accepted", "rejected"
#: Ledger outcomes that are not a row's: a number given up as a rolled-back write, and the marker (negated seq)
#: of a given-up number whose row committed late and was applied after all.
GIVEN_UP, LATE = "given_up", "late"
#: How long numbers given up are still re-read each cycle for a late commit.
LATE_WINDOW = timedelta(days=1)

#: Sequence numbers per ``IN (...)`` list (the exchange's look-ups by number).
IN_CHUNK = 500

#: Field-level problems of a row: (field path, message).
Problems = list[tuple[str, str]]

#: Characters a receipt never carries as they are (they are what made the row odd): shown as \\uXXXX.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
_MAX_PROBLEM = 1000  # characters of one problem's path or message


def safe_text(text: str) -> str:
    """``text`` with control, bidi and surrogate characters escaped (``\\uXXXX``) and at most 1,000
    characters: a receipt and a ledger entry can always be stored, whatever the row held."""
    text = _UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)
    return text if len(text) <= _MAX_PROBLEM else text[: _MAX_PROBLEM - 1] + "…"


@dataclass
class Done:
    """A settled row's outcome, as its ledger entry and its receipt (回执) say."""

    seq: int
    outcome: str
    identifier: str | None = None
    problems: Problems | None = None
    created: bool = False  # a new certificate version (its arrival is recorded)

    def __post_init__(self) -> None:
        if self.problems:
            self.problems = [(safe_text(str(p)), safe_text(str(m))) for p, m in self.problems]


def message(problems: Sequence[Sequence[str]] | None) -> str:
    """The receipt's message: ``accepted``, or ``rejected: field: reason; …``."""
    if not problems:
        return "accepted"
    return "rejected: " + "; ".join(f"{p}: {m}" for p, m in problems)[:2000]


@dataclass
class Cursor:
    """In-memory copy of one ``exchange_cursors`` row (see the module docstring)."""

    table: str
    watermark: int = 0
    applied: set[int] = field(default_factory=set)
    gaps: dict[int, datetime] = field(default_factory=dict)
    #: gaps settled since this copy was made (those without a row of their own are given up; not stored)
    released: set[int] = field(default_factory=set)
    #: numbers settled again (rows below the watermark: late commits of numbers given up; not stored)
    resettled: set[int] = field(default_factory=set)

    @property
    def high(self) -> int:
        return max([self.watermark, *self.applied, *self.gaps])

    def copy(self) -> Cursor:
        return Cursor(self.table, self.watermark, set(self.applied), dict(self.gaps))

    def adopt(self, other: Cursor) -> None:
        self.watermark, self.applied, self.gaps = other.watermark, other.applied, other.gaps

    def settled(self, seq: int) -> bool:
        return seq <= self.watermark or seq in self.applied

    def settle(self, seq: int) -> None:
        if self.gaps.pop(seq, None) is not None:
            self.released.add(seq)
        elif self.settled(seq):
            self.resettled.add(seq)
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


def load_cursor(repo: Repository, source: str, table: str) -> Cursor:
    """The stored cursor of (``source``, ``table``), created empty on first use."""
    with repo.db.session() as session:
        row = session.scalars(
            select(ExchangeCursorRow).where(
                ExchangeCursorRow.source == source, ExchangeCursorRow.table_name == table
            )
        ).first()
        if row is not None:
            return Cursor(
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
        return load_cursor(repo, source, table)
    return Cursor(table)


def record(
    session: Session,
    lease: SourceLease,
    table: str,
    done: Sequence[Done],
    cursor: Cursor,
    now: datetime,
) -> None:
    """Fence the lease, insert the ledger entries of ``done``, write ``cursor``: in ``session``'s transaction.
    Gaps ``cursor`` settled without a row in ``done`` are recorded as given up; a row of ``done`` whose number
    was given up before is a late commit: its ``given_up`` entry becomes the ``late`` marker."""
    source = lease.source
    lease.fence(session)
    seqs = {d.seq for d in done}
    given_up = sorted(cursor.released - seqs)
    asked = sorted(cursor.released | cursor.resettled)  # the ledger knows nothing of the others yet
    existing = _entries(session, source, table, asked) if asked else {}
    known = {seq: at for seq, (outcome, at) in existing.items() if outcome == GIVEN_UP}
    if given_up := [seq for seq in given_up if seq not in existing]:
        insert_many(
            session,
            insert(ExchangeAppliedRow.__table__),
            [
                {
                    "source": source, "table_name": table, "seq": seq, "outcome": GIVEN_UP,
                    "identifier": None, "problems": None, "receipt_written": True, "applied_at": now,
                }
                for seq in given_up
            ],
        )  # fmt: skip
    for seq in sorted(seqs & known.keys()):
        log.warning(
            "source %s table %s: sequence number %d committed after it was given up at %s: applied late",
            source, table, seq, known[seq].isoformat(),
        )  # fmt: skip
        session.execute(
            update(ExchangeAppliedRow)
            .where(
                ExchangeAppliedRow.source == source,
                ExchangeAppliedRow.table_name == table,
                ExchangeAppliedRow.seq == seq,
                ExchangeAppliedRow.outcome == GIVEN_UP,
            )
            .values(
                seq=-seq, outcome=LATE, problems=[["given_up_at", known[seq].isoformat()]], applied_at=now
            )
            .execution_options(synchronize_session=False)
        )
    if done:
        insert_many(
            session,
            insert(ExchangeAppliedRow.__table__),
            [
                {
                    "source": source,
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
    cursors = ExchangeCursorRow.__table__
    session.connection().execute(  # Core: no ORM object of these rows is in the session
        update(cursors)
        .where(cursors.c.source == source, cursors.c.table_name == table)
        .values(**cursor.values(now))
    )


def mark_receipts_written(session: Session, source: str, written: Mapping[str, Iterable[int]]) -> None:
    """Mark the ledger rows of ``written`` (table → seqs) as receipted, in ``session``'s transaction: their
    receipts are in the front-end (a row left unmarked by a crash has its receipt written again by the next
    cycle, which replaces it with the same content). One statement per run of consecutive numbers (a batch's
    receipts are usually one run): ``seq BETWEEN first AND last`` is exactly the run's rows."""
    ledger = ExchangeAppliedRow.__table__
    connection = session.connection()  # Core: no ORM object of these rows is in the session
    for table, seqs in written.items():
        for first, last in _runs(sorted(seqs)):
            connection.execute(
                update(ledger)
                .where(
                    ledger.c.source == source, ledger.c.table_name == table, ledger.c.seq.between(first, last)
                )
                .values(receipt_written=True)
            )


def _runs(numbers: Sequence[int]) -> Iterator[tuple[int, int]]:
    """The runs of consecutive integers in sorted, distinct ``numbers``, as (first, last)."""
    if not numbers:
        return
    first = last = numbers[0]
    for n in numbers[1:]:
        if n != last + 1:
            yield first, last
            first = n
        last = n
    yield first, last


def _entries(
    session: Session, source: str, table: str, seqs: Sequence[int]
) -> dict[int, tuple[str, datetime]]:
    """The ledger entries of ``seqs`` already stored: outcome and time."""
    found: dict[int, tuple[str, datetime]] = {}
    for start in range(0, len(seqs), 500):
        found.update(
            (int(seq), (outcome, at))
            for seq, outcome, at in session.execute(
                select(
                    ExchangeAppliedRow.seq, ExchangeAppliedRow.outcome, ExchangeAppliedRow.applied_at
                ).where(
                    ExchangeAppliedRow.source == source,
                    ExchangeAppliedRow.table_name == table,
                    ExchangeAppliedRow.seq.in_(seqs[start : start + 500]),
                )
            )
        )
    return found


def late_candidates(repo: Repository, source: str, table: str, since: datetime) -> list[int]:
    """The numbers of (``source``, ``table``) given up since ``since``: re-read each cycle for a late commit."""
    with repo.db.session(readonly=True) as session:
        return sorted(
            int(seq)
            for seq in session.scalars(
                select(ExchangeAppliedRow.seq).where(
                    ExchangeAppliedRow.source == source,
                    ExchangeAppliedRow.table_name == table,
                    ExchangeAppliedRow.outcome == GIVEN_UP,
                    ExchangeAppliedRow.applied_at >= since,
                )
            )
        )
