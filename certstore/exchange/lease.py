"""Source leases of the exchange (``exchange_leases``): one worker per source at a time.

A worker takes a source's lease before its cycle (:meth:`SourceLease.acquire`); a second worker started by
mistake gets :class:`LeaseHeldError` and skips the source while the lease is held. The ``lease_until`` a worker
wrote is its fencing token: every repository commit of the cycle renews the lease with a conditional UPDATE that
matches only that token (:meth:`SourceLease.fence`), so a worker whose lease expired and was taken over cannot
commit (:class:`LeaseLostError`, the transaction rolls back). A dead worker's lease frees itself after its
duration.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, Update, event, or_, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from certstore.store.models import ExchangeLeaseRow
from certstore.store.repository import Repository

__all__ = ["DEFAULT_LEASE", "LeaseHeldError", "LeaseLostError", "SourceLease", "on_commit"]

DEFAULT_LEASE = timedelta(seconds=60)  # renewed with every commit; a dead worker's lease frees after this


class LeaseHeldError(RuntimeError):
    """Another worker holds the source's lease (the message says who and until when)."""


class LeaseLostError(RuntimeError):
    """This worker's lease expired and another worker took the source over; nothing more is committed."""


def rowcount(result: Any) -> int:
    return cast(CursorResult[Any], result).rowcount


def on_commit(session: Session, callback: Callable[[], None]) -> None:
    """Run ``callback`` once the session's transaction has committed (never if it rolls back)."""

    def committed(_session: Session) -> None:
        callback()

    event.listen(session, "after_commit", committed, once=True)  # sessions are not reused after commit


class SourceLease:
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
            if rowcount(taken) == 1:
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
        if rowcount(session.execute(self._set_own(until))) != 1:
            raise LeaseLostError(f"worker {self.worker} lost the lease of source {self.source}")

        def adopt() -> None:
            self.token = until

        on_commit(session, adopt)

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
