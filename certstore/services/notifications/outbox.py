"""The outbox's delivery side (通知发件箱): claim due rows with a lease, record what each attempt did, report.

A row is *due* while it is ``pending``, its ``next_attempt_at`` has come and no live lease holds it. A worker claims
a row by one conditional UPDATE (due, lease free → its name, lease end, attempts + 1), so two workers never hold
one row and a crash counts as an attempt; the lease ends by itself if the worker dies, and the row is due again.
Just before sending, the worker renews its lease (:func:`renew`: the lease, 60 s, outlasts the channels' timeouts,
so a row is never sent by two live workers); after sending, :func:`mark_sent` (only by the lease holder); after a failure, :func:`mark_failed` sets the next
attempt ``backoff(attempts)`` later (exponential, capped) or, after ``max_attempts``, the final ``failed``.

"Never sent twice for one key in the normal path": only the lease holder sends; a second delivery can only follow
a crash (or a lease that ran out) between the send and :func:`mark_sent` — the receiver de-duplicates it on the key.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, or_, select, update

from certstore.store.models import NotificationOutboxRow, WebhookSubscriptionRow
from certstore.store.repository import Repository

__all__ = [
    "DEFAULT_LEASE",
    "DEFAULT_MAX_ATTEMPTS",
    "Claimed",
    "OutboxRow",
    "OutboxStatus",
    "backoff",
    "claim",
    "mark_failed",
    "mark_sent",
    "outbox_status",
    "release",
    "renew",
]

PENDING, SENT, FAILED = "pending", "sent", "failed"

DEFAULT_LEASE = timedelta(seconds=60)
DEFAULT_MAX_ATTEMPTS = 8
BACKOFF_BASE = timedelta(seconds=30)
BACKOFF_CAP = timedelta(hours=6)


def backoff(attempts: int, *, base: timedelta = BACKOFF_BASE, cap: timedelta = BACKOFF_CAP) -> timedelta:
    """The wait after the ``attempts``-th failed attempt: ``base`` × 2^(attempts − 1), at most ``cap``."""
    return min(base * (2 ** max(attempts - 1, 0)), cap)


@dataclass(frozen=True)
class Claimed:
    """A row this worker holds: what the channel needs."""

    id: int
    idempotency_key: str
    kind: str
    channel: str
    address: str
    payload: dict[str, Any]
    attempts: int
    created_at: datetime
    secret: bytes | None


def _due(now: datetime) -> Any:
    return (
        (NotificationOutboxRow.status == PENDING)
        & (NotificationOutboxRow.next_attempt_at <= now)
        & or_(NotificationOutboxRow.lease_until.is_(None), NotificationOutboxRow.lease_until < now)
    )


def _channel_filter(channels: Iterable[str]) -> Any:
    """Rows of the channels named: ``email``, or ``webhook`` (rows say ``webhook:<subscription id>``), …"""
    conditions = []
    for name in channels:
        conditions += [NotificationOutboxRow.channel == name, NotificationOutboxRow.channel.like(f"{name}:%")]
    return or_(*conditions) if conditions else NotificationOutboxRow.id.is_(None)


def claim(
    repo: Repository,
    worker: str,
    *,
    channels: Iterable[str],
    limit: int = 20,
    lease: timedelta = DEFAULT_LEASE,
) -> list[Claimed]:
    """Claim up to ``limit`` due rows of ``channels`` (oldest first) for ``worker`` until now + ``lease``."""
    now = repo.now()
    names = list(channels)
    with repo.db.session() as session:
        ids = session.scalars(
            select(NotificationOutboxRow.id)
            .where(_due(now), _channel_filter(names))
            .order_by(NotificationOutboxRow.next_attempt_at, NotificationOutboxRow.id)
            .limit(limit)
        ).all()
    claimed: list[Claimed] = []
    for row_id in ids:
        with repo.db.session() as session:
            taken = session.execute(
                update(NotificationOutboxRow)
                .where(NotificationOutboxRow.id == row_id, _due(now))
                .values(
                    lease_owner=worker, lease_until=now + lease, attempts=NotificationOutboxRow.attempts + 1
                )
                .execution_options(synchronize_session=False)
            ).rowcount
            if taken != 1:
                continue  # another worker took it
            row = session.get(NotificationOutboxRow, row_id)
            assert row is not None
            secret = None
            if row.subscription_id is not None:
                sub = session.get(WebhookSubscriptionRow, row.subscription_id)
                secret = sub.secret if sub is not None else None
            claimed.append(Claimed(
                id=row.id, idempotency_key=row.idempotency_key, kind=row.kind, channel=row.channel,
                address=row.address, payload=dict(row.payload), attempts=row.attempts, created_at=row.created_at,
                secret=secret,
            ))  # fmt: skip
    return claimed


def renew(repo: Repository, row_id: int, worker: str, *, lease: timedelta = DEFAULT_LEASE) -> bool:
    """Extend ``worker``'s lease on a claimed row to now + ``lease`` just before sending it, so that no row of a
    batch is sent after its lease ran out; False when the row is no longer this worker's (then it is not sent)."""
    now = repo.now()
    with repo.db.session() as session:
        kept = session.execute(
            update(NotificationOutboxRow)
            .where(NotificationOutboxRow.id == row_id, NotificationOutboxRow.lease_owner == worker,
                   NotificationOutboxRow.status == PENDING)
            .values(lease_until=now + lease)
            .execution_options(synchronize_session=False)
        ).rowcount  # fmt: skip
    return kept == 1


def release(repo: Repository, row_id: int, worker: str) -> bool:
    """Give a claimed row back unsent (a worker stopping): due again at once, its claim not counted."""
    with repo.db.session() as session:
        done = session.execute(
            update(NotificationOutboxRow)
            .where(NotificationOutboxRow.id == row_id, NotificationOutboxRow.lease_owner == worker,
                   NotificationOutboxRow.status == PENDING)
            .values(lease_owner=None, lease_until=None, attempts=NotificationOutboxRow.attempts - 1)
            .execution_options(synchronize_session=False)
        ).rowcount  # fmt: skip
    return done == 1


def mark_sent(repo: Repository, row_id: int, worker: str) -> bool:
    """Record a delivery (only while ``worker`` holds the row); False when the lease was lost meanwhile."""
    now = repo.now()
    with repo.db.session() as session:
        done = session.execute(
            update(NotificationOutboxRow)
            .where(NotificationOutboxRow.id == row_id, NotificationOutboxRow.lease_owner == worker,
                   NotificationOutboxRow.status == PENDING)
            .values(status=SENT, sent_at=now, lease_owner=None, lease_until=None, last_error=None)
            .execution_options(synchronize_session=False)
        ).rowcount  # fmt: skip
    return done == 1


def mark_failed(
    repo: Repository,
    row_id: int,
    worker: str,
    error: str,
    *,
    attempts: int,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    base: timedelta = BACKOFF_BASE,
) -> str:
    """Record a failed attempt: retried after :func:`backoff`, or ``failed`` once ``attempts`` reached
    ``max_attempts``. Returns the row's new status."""
    now = repo.now()
    final = attempts >= max_attempts
    status = FAILED if final else PENDING
    with repo.db.session() as session:
        session.execute(
            update(NotificationOutboxRow)
            .where(NotificationOutboxRow.id == row_id, NotificationOutboxRow.lease_owner == worker)
            .values(status=status, last_error=error[:2000], lease_owner=None, lease_until=None,
                    next_attempt_at=now if final else now + backoff(attempts, base=base))
            .execution_options(synchronize_session=False)
        )  # fmt: skip
    return status


@dataclass(frozen=True)
class OutboxRow:
    """A row as ``notify status`` lists it (the address shown, never the payload)."""

    id: int
    idempotency_key: str
    kind: str
    channel: str
    address: str
    status: str
    attempts: int
    next_attempt_at: datetime
    last_error: str | None
    created_at: datetime
    sent_at: datetime | None


@dataclass(frozen=True)
class OutboxStatus:
    """Counts per status, how many are due now, and the rows that need a look: retrying and failed."""

    counts: dict[str, int]
    due: int
    retrying: list[OutboxRow]
    failed: list[OutboxRow]

    def to_dict(self) -> dict[str, Any]:
        def row(r: OutboxRow) -> dict[str, Any]:
            return {
                "id": r.id, "key": r.idempotency_key, "kind": r.kind, "channel": r.channel, "address": r.address,
                "status": r.status, "attempts": r.attempts, "next_attempt_at": r.next_attempt_at.isoformat(),
                "last_error": r.last_error,
            }  # fmt: skip

        return {
            "counts": self.counts,
            "due": self.due,
            "retrying": [row(r) for r in self.retrying],
            "failed": [row(r) for r in self.failed],
        }


def _row(r: NotificationOutboxRow) -> OutboxRow:
    return OutboxRow(
        id=r.id, idempotency_key=r.idempotency_key, kind=r.kind, channel=r.channel, address=r.address,
        status=r.status, attempts=r.attempts, next_attempt_at=r.next_attempt_at, last_error=r.last_error,
        created_at=r.created_at, sent_at=r.sent_at,
    )  # fmt: skip


def outbox_status(repo: Repository, *, limit: int = 50) -> OutboxStatus:
    """What ``certstore notify status`` shows."""
    now = repo.now()
    with repo.db.session(readonly=True) as session:
        counts = {PENDING: 0, SENT: 0, FAILED: 0}
        for status, count in session.execute(
            select(NotificationOutboxRow.status, func.count()).group_by(NotificationOutboxRow.status)
        ):
            counts[status] = count
        due = session.scalar(select(func.count()).select_from(NotificationOutboxRow).where(_due(now))) or 0
        retrying = session.scalars(
            select(NotificationOutboxRow)
            .where(NotificationOutboxRow.status == PENDING, NotificationOutboxRow.last_error.is_not(None))
            .order_by(NotificationOutboxRow.id)
            .limit(limit)
        ).all()
        failed = session.scalars(
            select(NotificationOutboxRow)
            .where(NotificationOutboxRow.status == FAILED)
            .order_by(NotificationOutboxRow.id.desc())
            .limit(limit)
        ).all()
        return OutboxStatus(counts, due, [_row(r) for r in retrying], [_row(r) for r in failed])
