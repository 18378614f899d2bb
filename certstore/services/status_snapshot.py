"""Building the signed status snapshot (状态快照) from the repository: ``certstore status snapshot`` and
``GET /api/v1/status/snapshot``.

The snapshot (:mod:`certstore.verify.status_list` has the format) lists the versions not in force with the time
their status took effect (``status_changed_at``), the suspensions that have ended (from the lifecycle events, so
that ``--at`` is answered as it stood), the withdrawn seals (``seal_states``: by default the seal registry's,
:func:`certstore.services.seals.withdrawn_seals`) and the issuer codes it covers, and is signed with the repository key
(:meth:`certstore.app.Application.repository_sealing_key`). Its sequence number is the id of the newest
certificate event it reflects, so it never goes down and changes with every lifecycle event.
:func:`build_snapshot` is the operator's use case (audited ``status.snapshot``); :class:`SnapshotCache` serves
the public endpoint: a snapshot is rebuilt when the repository has a newer event or the cached one is older than
its ``refresh`` interval.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import func, select

from certstore.lifecycle import Action, Status
from certstore.services import calls
from certstore.services.calls import Call
from certstore.store.models import CertificateEventRow, CertificateRow
from certstore.store.repository import Repository
from certstore.verify.status_list import STATUS_CODES, build_status_list, read_status_list

if TYPE_CHECKING:
    from certstore.app import Application

__all__ = [
    "DEFAULT_VALIDITY",
    "SealStates",
    "Snapshot",
    "SnapshotCache",
    "build_snapshot",
    "ended_suspensions",
    "make_snapshot",
    "no_seals",
    "not_in_force",
    "registry_seals",
    "sequence_of",
]

DEFAULT_VALIDITY = timedelta(hours=24)

#: Where the withdrawn seals come from: (ES ID, "suspended" | "revoked", since when) for the application.
SealStates = Callable[["Application"], Iterable[tuple[str, str, datetime]]]


def no_seals(app: Application) -> Iterable[tuple[str, str, datetime]]:
    """A seal source that lists no withdrawn seals."""
    return ()


def registry_seals(app: Application) -> Iterable[tuple[str, str, datetime]]:
    """The default seal source: the seals the registry holds suspended or revoked now."""
    from certstore.services.seals import (
        withdrawn_seals,  # the registry builds on issuance; imported when used
    )

    return withdrawn_seals(app)


@dataclass(frozen=True)
class Snapshot:
    """A built snapshot: the signed bytes and what its header says (``count``: versions listed as not in force,
    ``versions``: versions the repository holds, ``seals``: withdrawn seals listed)."""

    data: bytes
    sequence: int
    this_update: datetime
    next_update: datetime
    count: int
    versions: int = 0
    seals: int = 0


def sequence_of(repo: Repository) -> int:
    """The snapshot sequence number: the id of the newest certificate event (0 for an empty repository)."""
    with repo.db.session(readonly=True) as session:
        return int(session.scalar(select(func.max(CertificateEventRow.id))) or 0)


def not_in_force(repo: Repository) -> Iterator[tuple[str, Status, datetime]]:
    """(identifier, stored status, since when) of every version not in force (through the status index: the
    versions in force are never read)."""
    with repo.db.session(readonly=True) as session:
        rows = session.execute(
            select(CertificateRow.identifier, CertificateRow.status, CertificateRow.status_changed_at)
            .where(CertificateRow.status.in_([status.value for status in STATUS_CODES]))
            .execution_options(yield_per=10_000)
        )
        for identifier, status, since in rows:
            yield identifier, Status(status), since


def ended_suspensions(repo: Repository) -> Iterator[tuple[str, datetime, datetime]]:
    """(identifier, start, end) of every suspension (挂起) that has ended — by a resumption or a later terminal
    action — from the lifecycle events of the versions ever suspended."""
    suspended = select(CertificateEventRow.certificate_id).where(
        CertificateEventRow.action == Action.SUSPEND.value
    )
    with repo.db.session(readonly=True) as session:
        rows = session.execute(
            select(CertificateRow.identifier, CertificateEventRow.action, CertificateEventRow.at)
            .join(CertificateRow, CertificateRow.id == CertificateEventRow.certificate_id)
            .where(CertificateEventRow.certificate_id.in_(suspended))
            .order_by(CertificateEventRow.certificate_id, CertificateEventRow.id)
        )
        previous: str | None = None
        start: datetime | None = None
        for identifier, action, at in rows:
            if identifier != previous:
                previous, start = identifier, None
            if start is not None:
                if at > start:  # a clock that stepped back makes no period: the events are kept as recorded
                    yield identifier, start, at
                start = None
            if action == Action.SUSPEND.value:
                start = at


def _scope(repo: Repository) -> tuple[int, list[str]]:
    with repo.db.session(readonly=True) as session:
        versions = int(session.scalar(select(func.count(CertificateRow.id))) or 0)
        issuers = [code for (code,) in session.execute(select(CertificateRow.issuer_code).distinct())]
    return versions, issuers


def make_snapshot(
    app: Application, *, valid_for: timedelta = DEFAULT_VALIDITY, seal_states: SealStates = registry_seals
) -> Snapshot:
    """Build and sign a snapshot of the versions not in force and the withdrawn seals (not audited:
    :func:`build_snapshot` is the operator's use case; the public endpoint serves what anyone may know)."""
    if valid_for <= timedelta(0):
        raise ValueError("the snapshot must be valid for a positive time")
    key = app.repository_sealing_key()
    sequence = sequence_of(app.repo)  # read first: the list reflects at least this event
    this_update = app.now().replace(microsecond=0)
    next_update = this_update + valid_for
    entries = list(not_in_force(app.repo))
    seals = list(seal_states(app))
    versions, scope = _scope(app.repo)
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
        suspensions=ended_suspensions(app.repo),
        seals=seals,
        scope=scope,
        versions=versions,
    )
    return Snapshot(data, sequence, this_update, next_update, len(entries), versions, len(seals))


def build_snapshot(
    app: Application,
    call: Call,
    *,
    valid_for: timedelta = DEFAULT_VALIDITY,
    seal_states: SealStates = registry_seals,
) -> Snapshot:
    """The operator builds a snapshot (``certstore status snapshot``); audited ``status.snapshot``. The result is
    read back and verified against the application's trust anchors before it is handed out."""
    snapshot = make_snapshot(app, valid_for=valid_for, seal_states=seal_states)
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
                "versions": snapshot.versions,
                "seals": snapshot.seals,
                "this_update": snapshot.this_update.isoformat(),
                "next_update": snapshot.next_update.isoformat(),
                "bytes": len(snapshot.data),
            },
        ),
    )
    return snapshot


class SnapshotCache:
    """The latest snapshot for the public endpoint, rebuilt on request when a newer event exists or the cached
    one is older than ``refresh`` (thread-safe; one per process). ``seal_states``: see :func:`make_snapshot`."""

    def __init__(
        self,
        *,
        refresh: timedelta = timedelta(minutes=5),
        valid_for: timedelta = DEFAULT_VALIDITY,
        seal_states: SealStates = registry_seals,
    ):
        self.refresh, self.valid_for, self.seal_states = refresh, valid_for, seal_states
        self._lock = threading.Lock()
        self._snapshot: Snapshot | None = None

    def latest(self, app: Application) -> Snapshot:
        sequence = sequence_of(app.repo)
        with self._lock:
            cached = self._snapshot
            now = app.now()
            if cached is None or cached.sequence != sequence or now - cached.this_update >= self.refresh:
                cached = self._snapshot = make_snapshot(
                    app, valid_for=self.valid_for, seal_states=self.seal_states
                )
            return cached
