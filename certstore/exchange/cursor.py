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
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from certstore.exchange.lease import SourceLease
from certstore.store.models import ExchangeAppliedRow, ExchangeCursorRow
from certstore.store.repository import Repository

__all__ = [
    "ACCEPTED",
    "REJECTED",
    "Cursor",
    "Done",
    "Problems",
    "load_cursor",
    "message",
    "record",
    "safe_text",
]

ACCEPTED, REJECTED = "accepted", "rejected"

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
    """Fence the lease, insert the ledger entries of ``done``, write ``cursor``: in ``session``'s transaction."""
    source = lease.source
    lease.fence(session)
    if done:
        session.execute(
            insert(ExchangeAppliedRow),
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
    session.execute(
        update(ExchangeCursorRow)
        .where(ExchangeCursorRow.source == source, ExchangeCursorRow.table_name == table)
        .values(**cursor.values(now))
        .execution_options(synchronize_session=False)
    )
