"""A commit fault for the entry-point tests: the commit of any transaction that wrote *both* an audit entry and a
certificate change fails, as if the process were killed between writing them and committing.

:class:`CommitFault` listens on every SQLAlchemy engine of this process (class-level ``Engine`` events, so also the
engines a command or an application opens after it was armed). Per connection it notes, between BEGIN and
COMMIT/ROLLBACK, whether an ``INSERT INTO audit_pending`` / ``audit_events`` (the entry) and an ``INSERT INTO`` /
``UPDATE certificates`` (the effect) were executed; a COMMIT of a connection that saw both raises
:class:`InjectedCommitError` before the database commits, so the transaction rolls back.

If an entry point wrote its entry and its effect in *separate* transactions, no single commit would see both and
the fault would never fire: :attr:`CommitFault.fired` is the proof that the two were one transaction.
"""

from __future__ import annotations

import re
from types import TracebackType
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine

__all__ = ["CommitFault", "InjectedCommitError"]

_AUDIT = re.compile(r'\s*INSERT\s+INTO\s+"?(audit_pending|audit_events)"?[\s(]', re.IGNORECASE)
_EFFECT = re.compile(r'\s*(INSERT\s+INTO|UPDATE)\s+"?certificates"?[\s(]', re.IGNORECASE)
_MARKS = "tests.entry_points.marks"


class InjectedCommitError(RuntimeError):
    """Raised instead of committing a transaction that holds an audit entry and a certificate change."""


class CommitFault:
    """``with CommitFault() as fault: ...`` — listening inside the block (see the module docstring). ``together``
    counts the commits that held both an entry and a certificate change; when ``armed``, each of them fails
    instead (``fired``)."""

    def __init__(self, *, armed: bool = True) -> None:
        self.armed = armed
        self.together = 0
        self.fired = 0

    # --- listeners ------------------------------------------------------------------------------------

    def _statement(
        self, conn: Connection, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool
    ) -> None:
        if _AUDIT.match(statement):
            conn.info.setdefault(_MARKS, set()).add("entry")
        elif _EFFECT.match(statement):
            conn.info.setdefault(_MARKS, set()).add("effect")

    def _begin(self, conn: Connection) -> None:
        conn.info.pop(_MARKS, None)

    def _commit(self, conn: Connection) -> None:
        marks = conn.info.pop(_MARKS, set())
        if {"entry", "effect"} <= marks:
            self.together += 1
            if not self.armed:
                return
            self.fired += 1
            raise InjectedCommitError("injected: the process died before this commit (entry + effect)")

    def _rollback(self, conn: Connection) -> None:
        conn.info.pop(_MARKS, None)

    _EVENTS = (
        ("before_cursor_execute", "_statement"),
        ("begin", "_begin"),
        ("commit", "_commit"),
        ("rollback", "_rollback"),
    )

    def __enter__(self) -> CommitFault:
        for name, method in self._EVENTS:
            event.listen(Engine, name, getattr(self, method))
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        for name, method in self._EVENTS:
            event.remove(Engine, name, getattr(self, method))
