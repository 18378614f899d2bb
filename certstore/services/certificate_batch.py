"""Many certificate writes in one transaction of the caller (the exchange's chunks, the import's chunks), under
the rules of :func:`certstore.services.certificates.issue`, ``change`` and ``act`` — and with their guarantees:
every write is made for a :class:`~certstore.services.calls.Call` and records, in the same transaction, its one
audit entry (actor, action, certificate, holder digest, outcome) and, where the call's entry point has a deadline
(第十一条), the new version's arrival."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime
from typing import Any

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy import event as orm_event
from sqlalchemy.dialects import postgresql as postgresql_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.orm import Session

from certstore.audit.events import AuditEvent, event_to_payload
from certstore.identifiers import holder_ref
from certstore.lifecycle import Action, Status, transition
from certstore.records import PreparedVersion, RecordError
from certstore.services import deadlines
from certstore.services.calendar import load_calendar
from certstore.services.calls import Call
from certstore.services.certificates import (
    CertificateNotFoundError,
    DuplicateConflictError,
    NotLatestVersionError,
    event_values,
    row_values,
)
from certstore.services.notifications import events as notification_events
from certstore.store.blobs import BlobRef
from certstore.store.bulk import insert_many
from certstore.store.models import ArrivalRow, AuditPendingRow, CertificateEventRow, CertificateRow
from certstore.store.repository import Repository
from certstore.workdays import WorkCalendar

__all__ = ["ACT_ACTION", "CHANGE_ACTION", "ISSUE_ACTION", "CertificateBatch", "append_events"]

#: The audit actions of the batch's writes (the use cases' names, as :mod:`certstore.services.certificates`).
ISSUE_ACTION, CHANGE_ACTION, ACT_ACTION = "certificate.issue", "certificate.change", "certificate.act"


def append_events(session: Session, events: Iterable[AuditEvent]) -> list[AuditEvent]:
    """Append many audit events in ``session``'s transaction with one multi-row INSERT — what
    :func:`certstore.audit.append_in_transaction` does for one (write-ahead into ``audit_pending``, chained by
    the next append of any writer). Returns the events as stored (normalised)."""
    stored = [event.normalised() for event in events]
    if stored:
        insert_many(
            session,
            insert(AuditPendingRow.__table__),
            [{"occurred_at": e.at, "payload": event_to_payload(e)} for e in stored],
        )
    return stored


#: The certificate columns named unlike their attribute (``row_values`` gives attribute names).
_RENAMED = {
    attr.key: attr.columns[0].key
    for attr in CertificateRow.__mapper__.column_attrs
    if attr.key != attr.columns[0].key
}


class _Version:
    """A version as :class:`CertificateBatch` sees it: a stored row (``id`` set) or one it will insert."""

    __slots__ = ("catalogue_code", "changed", "digest", "holder", "id", "identifier", "number", "status",
                 "successor", "valid_until", "values", "version")  # fmt: skip

    def __init__(self, id: int | None, identifier: str, number: str, version: int, status: str,
                 valid_until: date | None, catalogue_code: str, digest: str, holder: str,
                 values: dict[str, Any] | None = None) -> None:  # fmt: skip
        self.id, self.identifier, self.number, self.version = id, identifier, number, version
        self.status, self.valid_until, self.catalogue_code, self.digest = (
            status,
            valid_until,
            catalogue_code,
            digest,
        )
        self.holder = holder  # the holder reference the audit entry names (identifiers.holder_ref)
        self.values = values  # the new row's columns; None for a stored row
        self.successor: _Version | None = None
        self.changed = False  # a stored row whose status changed


class _Record:
    """What one write records besides its rows: its audit entry, and its arrival where the call has a deadline."""

    __slots__ = ("action", "arrival", "call", "details", "status_code", "version")

    def __init__(
        self, call: Call, action: str, version: _Version, details: dict[str, Any], *, arrival: bool = True,
        status_code: int = 201,
    ) -> None:  # fmt: skip
        self.call, self.action, self.version, self.details = call, action, version, details
        self.arrival, self.status_code = arrival, status_code


class CertificateBatch:
    """Many certificate writes in the caller's transaction, under the rules of :func:`issue`, :func:`change` and
    :func:`act` — the same rows, lifecycle events and errors — for versions without a file, or whose file the
    caller has already stored (a file is made and stored before its row). The exchange applies a chunk of
    front-end rows with its ledger this way, the import a chunk of sealed legacy certificates: one commit for
    hundreds of changes.

    **Every write has its call** (``call`` per write, or the batch's): the actor (named in the lifecycle
    events, too) and the origin. :meth:`flush` records, with the rows, one audit entry per write that changed
    something — ``certificate.issue`` / ``certificate.change`` / ``certificate.act`` (or the ``audit_action``
    given, e.g. ``certificate.import``) with the certificate identifier, the holder reference and outcome ALLOW
    — and, where ``call.origin.via.has_deadline``, the new version's arrival against its deadline (the call's
    ``completed_at`` and ``channel``; :func:`certstore.services.deadlines.record_arrival`'s rows). An identical
    repeat records nothing. The call's ``recorded`` lists the entries once the transaction has committed.

    Every stored version of the certificate numbers named up front is loaded (``FOR UPDATE`` on PostgreSQL, so
    concurrent API calls on them wait); the methods decide in memory, in call order (a version issued earlier
    in the batch can be changed or suspended later in it); :meth:`flush` writes everything with a few
    multi-row statements. A version inserted meanwhile by someone else makes the flush fail with
    ``IntegrityError``: roll the transaction back and run the batch again (it then sees that version).

    Errors are raised before anything is recorded for the call, so a refused call leaves the batch usable:
    :class:`DuplicateConflictError`, :class:`CertificateNotFoundError` (the version to change or act on is not
    stored), :class:`NotLatestVersionError`, :class:`~certstore.lifecycle.TransitionError`, ``RecordError``;
    ``ValueError`` for a write without a call, or through an entry point with a deadline without
    ``completed_at``/``channel``."""

    def __init__(
        self,
        repo: Repository,
        session: Session,
        *,
        issuer_code: str,
        numbers: Iterable[str],
        call: Call | None = None,
        at: datetime | None = None,
        calendar: WorkCalendar | None = None,
    ) -> None:
        self.repo = repo
        self.session = session
        self.issuer_code = issuer_code
        self.call = call
        self.at = at or repo.now()
        self._calendar = calendar
        self._versions: dict[str, dict[int, _Version]] = {}
        self._new: list[_Version] = []
        self._events: list[tuple[_Version, dict[str, Any]]] = []
        self._records: list[_Record] = []
        wanted = sorted(set(numbers))
        c = CertificateRow
        connection = session.connection()  # Core statements: the batch keeps no ORM objects
        for start in range(0, len(wanted), 500):
            query = select(
                c.id, c.identifier, c.certificate_number, c.version, c.status, c.valid_until, c.catalogue_code,
                c.content_digest, c.superseded_by_id, c.holder_id_digest,
            ).where(c.issuer_code == issuer_code, c.certificate_number.in_(wanted[start : start + 500]))  # fmt: skip
            if session.get_bind().dialect.name == "postgresql":
                query = query.order_by(c.id).with_for_update()  # one lock order: no deadlock between batches
            for row in connection.execute(query):
                version = _Version(
                    row[0], row[1], row[2], row[3], row[4], row[5], row[6], row[7], holder_ref(row[9])
                )
                if row[8] is not None:
                    version.successor = version  # replaced by a stored version (its id is not needed)
                self._versions.setdefault(version.number, {})[version.version] = version

    def _call_of(self, call: Call | None, *, arrival: bool) -> Call:
        call = call or self.call
        if call is None:
            raise ValueError(
                "every write of a CertificateBatch is made for a call: give call= (or the batch's)"
            )
        origin = call.origin
        if arrival and origin.via.has_deadline and (origin.completed_at is None or origin.channel is None):
            raise ValueError(
                f"a certificate arriving through {origin.via.value} states completed_at and channel (第十一条)"
            )
        return call

    def _key_check(self, prepared: PreparedVersion) -> _Version | None:
        if prepared.identifier.issuer_code != self.issuer_code:
            raise ValueError(f"this batch writes certificates of issuer {self.issuer_code} only")
        existing = self._versions.get(prepared.draft.certificate_number, {}).get(prepared.identifier.version)
        if existing is not None and existing.digest != prepared.digest:
            raise DuplicateConflictError(
                f"certificate {existing.number!r} version {existing.version} of issuer "
                f"{self.issuer_code} was already pushed with different content ({existing.identifier})"
            )
        return existing

    def _add(self, prepared: PreparedVersion, event: dict[str, Any], blob: BlobRef | None = None) -> _Version:
        values = row_values(prepared, blob, at=self.at)
        version = _Version(
            None, values["identifier"], values["certificate_number"], values["version"], values["status"],
            values["valid_until"], values["catalogue_code"], values["content_digest"], prepared.holder_ref, values,
        )  # fmt: skip
        self._new.append(version)
        self._events.append((version, event))
        self._versions.setdefault(version.number, {})[version.version] = version
        return version

    def _set_status(self, version: _Version, status: Status, event: dict[str, Any]) -> None:
        version.status = status.value
        if version.values is not None:
            version.values["status"] = status.value
            version.values["status_changed_at"] = self.at
        else:
            version.changed = True
        self._events.append((version, event))

    def issue(
        self,
        prepared: PreparedVersion,
        *,
        call: Call | None = None,
        blob: BlobRef | None = None,
        audit_action: str = ISSUE_ACTION,
    ) -> tuple[str, bool]:
        """签发 version 1; returns (identifier, created) — created False for an identical earlier version.

        ``blob``: the certificate file, already in the blob store (file before row, as :func:`issue` does) —
        the bulk import seals and stores files in worker processes, then commits their rows here."""
        if prepared.identifier.version != 1:
            raise ValueError("issue makes version 1; later versions are changes")
        call = self._call_of(call, arrival=True)
        existing = self._key_check(prepared)
        if existing is not None:
            return existing.identifier, False
        event = event_values(Action.ISSUE, None, Status.VALID, "签发", call.actor.ref, self.at)
        version = self._add(prepared, event, blob)
        self._records.append(_Record(call, audit_action, version, {"version": 1}))
        return version.identifier, True

    def change(
        self, prepared: PreparedVersion, *, reason: str, call: Call | None = None, blob: BlobRef | None = None
    ) -> tuple[str, bool]:
        """变更: version N of ``prepared`` replaces version N-1; returns (identifier, created). ``blob``: its file,
        already in the blob store (as for :meth:`issue`)."""
        call = self._call_of(call, arrival=True)
        actor = call.actor.ref
        existing = self._key_check(prepared)
        if existing is not None:
            return existing.identifier, False
        number, version = prepared.draft.certificate_number, prepared.identifier.version
        old = self._versions.get(number, {}).get(version - 1)
        if old is None:
            raise CertificateNotFoundError(
                f"version {version - 1} of certificate {number!r} of issuer {self.issuer_code} is not stored"
            )
        if old.successor is not None:
            raise NotLatestVersionError(f"{old.identifier} was already replaced; change the latest version")
        if prepared.entry.code != old.catalogue_code:
            raise RecordError(
                f"a new version keeps the catalogue type {old.catalogue_code}",
                [("catalogue_code", f"{prepared.entry.code} is not {old.catalogue_code}")],
            )
        event = transition(
            Status(old.status), Action.CHANGE, valid_until=old.valid_until, reason=reason, actor=actor,
            at=self.at,
        )  # fmt: skip
        new = self._add(
            prepared,
            event_values(
                Action.CHANGE, None, Status.VALID, event.reason, actor, self.at, replaces=old.identifier
            ),
            blob,
        )
        old.successor = new
        self._set_status(
            old, event.to_status,
            event_values(Action.CHANGE, event.from_status, event.to_status, event.reason, actor, self.at,
                          replaced_by=new.identifier),
        )  # fmt: skip
        details: dict[str, Any] = {"version": new.version, "replaces": old.identifier}
        if new.holder != old.holder:  # searchable by the former holder too
            details["replaces_holder"] = old.holder
        self._records.append(_Record(call, CHANGE_ACTION, new, details))
        return new.identifier, True

    def version(self, number: str, version: int | None = None) -> tuple[str, Status] | None:
        """(identifier, stored status) of that version (None: the latest) as this batch sees it, or None."""
        versions = self._versions.get(number)
        if not versions:
            return None
        found = versions[max(versions)] if version is None else versions.get(version)
        return None if found is None else (found.identifier, Status(found.status))

    def act(
        self, number: str, version: int | None, action: Action, *, reason: str, call: Call | None = None
    ) -> str:
        """挂起 / 恢复 / 吊销 / 注销 / 废止 on version ``version`` (None: the latest); returns its identifier."""
        if action.creates_version or action is Action.ISSUE:
            raise ValueError(f"{action.value} makes a new version: use issue/change")
        call = self._call_of(call, arrival=False)
        versions = self._versions.get(number, {})
        target = (versions[max(versions)] if versions else None) if version is None else versions.get(version)
        if target is None:
            which = "any version" if version is None else f"version {version}"
            raise CertificateNotFoundError(
                f"{which} of certificate {number!r} of issuer {self.issuer_code} is not stored"
            )
        event = transition(
            Status(target.status),
            action,
            valid_until=target.valid_until,
            reason=reason,
            actor=call.actor.ref,
            at=self.at,
        )
        self._set_status(
            target, event.to_status,
            event_values(action, event.from_status, event.to_status, event.reason, call.actor.ref, self.at),
        )  # fmt: skip
        details = {
            "action": action.value,
            "from_status": event.from_status.value,
            "to_status": event.to_status.value,
        }
        self._records.append(_Record(call, ACT_ACTION, target, details, arrival=False, status_code=200))
        return target.identifier

    def flush(self) -> None:
        """Write everything: new versions, status changes of stored ones, links to successors, lifecycle events,
        the writes' audit entries and arrivals."""
        session, c, table = self.session, CertificateRow, CertificateRow.__table__
        connection = session.connection()  # Core statements: the batch keeps no ORM objects
        if self._new:
            # Core executemany, then the ids by identifier (unique): RETURNING in parameter order would make
            # SQLite insert one row per statement.
            insert_many(session, insert(table), [n.values for n in self._new], renamed=_RENAMED)
            by_identifier = {n.identifier: n for n in self._new}
            wanted = list(by_identifier)
            for start in range(0, len(wanted), 500):
                for id_, identifier in connection.execute(
                    select(c.id, c.identifier).where(c.identifier.in_(wanted[start : start + 500]))
                ):
                    by_identifier[identifier].id = id_
        # the stored versions whose status changed and those replaced by a new version (a change does both to
        # the version it replaces): one UPDATE each, whatever it sets
        statuses: list[dict[str, Any]] = []
        links: list[dict[str, Any]] = []
        both: list[dict[str, Any]] = []
        for versions in self._versions.values():
            for v in versions.values():
                successor = None if v.successor is v else v.successor  # itself: linked already
                if v.changed and successor is not None:
                    both.append({"_id": v.id, "status": v.status, "successor": successor.id})
                elif v.changed:
                    statuses.append({"_id": v.id, "status": v.status})
                elif successor is not None:
                    links.append({"_id": v.id, "successor": successor.id})
        key = table.c.id == bindparam("_id")
        status = {"status": bindparam("status"), "status_changed_at": self.at}
        for rows, values in (
            (both, {**status, "superseded_by_id": bindparam("successor")}),
            (statuses, status),
            (links, {"superseded_by_id": bindparam("successor")}),
        ):
            if rows:
                connection.execute(update(table).where(key).values(values), rows)
        if self._events:
            insert_many(
                session,
                insert(CertificateEventRow.__table__),
                [{**event, "certificate_id": v.id} for v, event in self._events],
            )
        self._record_calls()
        self._new, self._events, self._records = [], [], []
        for versions in self._versions.values():
            for v in versions.values():
                v.changed = False
                if v.successor is not None:
                    v.successor = v  # linked now: stored

    # -- the guarantees: audit entries and arrivals -------------------------------------------------------

    def _record_calls(self) -> None:
        records = self._records
        if not records:
            return
        events = append_events(
            self.session,
            (
                r.call.event(r.action, certificate=r.version.identifier, holder_digest=r.version.holder,
                             status_code=r.status_code, details=r.details, at=self.at)
                for r in records
            ),
        )  # fmt: skip
        entered = [(r.call, e.event_id) for r, e in zip(records, events, strict=True)]
        notification_events.batch_written(  # the holders are told, in this transaction (outbox)
            self.session, [(r.action, r.version.identifier, r.version.holder) for r in records]
        )

        def committed(_session: Session) -> None:
            for call, event_id in entered:
                call.recorded.append(event_id)

        orm_event.listen(self.session, "after_commit", committed, once=True)
        arrivals = [r for r in records if r.arrival and r.call.origin.via.has_deadline]
        if arrivals:
            self._arrivals(arrivals)

    def _arrivals(self, records: list[_Record]) -> None:
        """The arrivals of new versions against their deadlines (第十一条): the rows
        :func:`deadlines.record_arrival` writes (same deadline rule, same "a recorded arrival is kept"), in one
        statement."""
        if self._calendar is None:
            self._calendar = load_calendar(self.repo)
        calendar, session = self._calendar, self.session
        name = session.get_bind().dialect.name
        if name not in ("sqlite", "postgresql"):
            for r in records:
                origin = r.call.origin
                assert origin.completed_at is not None and origin.channel is not None
                deadlines.record_arrival(
                    session, identifier=r.version.identifier, issuer_code=self.issuer_code,
                    source=origin.source or origin.via.value, channel=origin.channel,
                    completed_at=origin.completed_at, arrived_at=self.at, calendar=calendar,
                )  # fmt: skip
            return
        rows = []
        for r in records:
            origin = r.call.origin
            assert origin.completed_at is not None and origin.channel is not None
            deadline = deadlines.deadline_for(origin.channel, origin.completed_at, calendar)
            rows.append(
                {
                    "identifier": r.version.identifier, "issuer_code": self.issuer_code,
                    "source": origin.source or origin.via.value, "channel": origin.channel,
                    "completed_at": origin.completed_at, "arrived_at": self.at, "deadline_at": deadline,
                    "late": self.at > deadline,
                }
            )  # fmt: skip
        dialect: Any = sqlite_dialect if name == "sqlite" else postgresql_dialect
        insert_many(
            session,
            dialect.insert(ArrivalRow.__table__).on_conflict_do_nothing(index_elements=["identifier"]),
            rows,
        )
