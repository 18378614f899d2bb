"""Building the signed status snapshot (状态快照) from the repository: ``certstore status snapshot`` and
``GET /api/v1/status/snapshot``.

The snapshot lists the stored status of every certificate version (:mod:`certstore.verify.status_list` has the
format) and is signed with the repository key (:meth:`certstore.app.Application.repository_sealing_key`). Its
sequence number is the id of the newest certificate event it reflects, so it never goes down and changes with
every lifecycle event. :func:`build_snapshot` is the operator's use case (audited ``status.snapshot``);
:class:`SnapshotCache` serves the public endpoint: a snapshot is rebuilt when the repository has a newer event
or the cached one is older than its ``refresh`` interval.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import func, select

from certstore.lifecycle import Status
from certstore.services import calls
from certstore.services.calls import Call
from certstore.store.models import CertificateEventRow, CertificateRow
from certstore.store.repository import Repository
from certstore.verify.status_list import build_status_list, read_status_list

if TYPE_CHECKING:
    from certstore.app import Application

__all__ = ["DEFAULT_VALIDITY", "Snapshot", "SnapshotCache", "build_snapshot", "make_snapshot", "sequence_of"]

DEFAULT_VALIDITY = timedelta(hours=24)


@dataclass(frozen=True)
class Snapshot:
    """A built snapshot: the signed bytes and what its header says."""

    data: bytes
    sequence: int
    this_update: datetime
    next_update: datetime
    count: int


def sequence_of(repo: Repository) -> int:
    """The snapshot sequence number: the id of the newest certificate event (0 for an empty repository)."""
    with repo.db.session(readonly=True) as session:
        return int(session.scalar(select(func.max(CertificateEventRow.id))) or 0)


def _entries(repo: Repository) -> Iterator[tuple[str, Status]]:
    with repo.db.session(readonly=True) as session:
        rows = session.execute(
            select(CertificateRow.identifier, CertificateRow.status).execution_options(yield_per=10_000)
        )
        for identifier, status in rows:
            yield identifier, Status(status)


def make_snapshot(app: Application, *, valid_for: timedelta = DEFAULT_VALIDITY) -> Snapshot:
    """Build and sign a snapshot of every version's stored status (not audited: :func:`build_snapshot` is the
    operator's use case; the public endpoint serves what anyone may know)."""
    if valid_for <= timedelta(0):
        raise ValueError("the snapshot must be valid for a positive time")
    key = app.repository_sealing_key()
    sequence = sequence_of(app.repo)  # read first: the list reflects at least this event
    this_update = app.now().replace(microsecond=0)
    next_update = this_update + valid_for
    entries = list(_entries(app.repo))
    issuer = key.certificate.common_name or key.certificate.subject
    data = build_status_list(
        entries,
        issuer=issuer,
        sequence=sequence,
        this_update=this_update,
        next_update=next_update,
        signer=key.signer,
        certificate=key.certificate,
        chain=[c for c in key.chain if c != key.certificate],
    )
    return Snapshot(data, sequence, this_update, next_update, len(entries))


def build_snapshot(app: Application, call: Call, *, valid_for: timedelta = DEFAULT_VALIDITY) -> Snapshot:
    """The operator builds a snapshot (``certstore status snapshot``); audited ``status.snapshot``. The result is
    read back and verified against the application's trust anchors before it is handed out."""
    snapshot = make_snapshot(app, valid_for=valid_for)
    read_status_list(snapshot.data, trust=app.trust, expected=[app.repository_sealing_key().certificate])
    assert app.audit is not None
    calls.audit_now(
        app.audit,
        call,
        call.event(
            "status.snapshot",
            details={
                "sequence": snapshot.sequence,
                "count": snapshot.count,
                "this_update": snapshot.this_update.isoformat(),
                "next_update": snapshot.next_update.isoformat(),
                "bytes": len(snapshot.data),
            },
        ),
    )
    return snapshot


class SnapshotCache:
    """The latest snapshot for the public endpoint, rebuilt on request when a newer event exists or the cached
    one is older than ``refresh`` (thread-safe; one per process)."""

    def __init__(self, *, refresh: timedelta = timedelta(minutes=5), valid_for: timedelta = DEFAULT_VALIDITY):
        self.refresh, self.valid_for = refresh, valid_for
        self._lock = threading.Lock()
        self._snapshot: Snapshot | None = None

    def latest(self, app: Application) -> Snapshot:
        sequence = sequence_of(app.repo)
        with self._lock:
            cached = self._snapshot
            now = app.now()
            if cached is None or cached.sequence != sequence or now - cached.this_update >= self.refresh:
                cached = self._snapshot = make_snapshot(app, valid_for=self.valid_for)
            return cached
