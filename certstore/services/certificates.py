"""Certificate use cases: issue (签发), change (变更), renew (延续), status actions (挂起/恢复/吊销/注销/废止), the
issuing agency's own files (OFD, PDF rendition, face preview), look-ups, and the orphan-blob sweep.

Every use case that changes certificate data takes the application and the :class:`~certstore.services.calls.Call`
(who, through which entry point) and does the whole job in **one transaction**:

1. authorises — an agency issues only its own catalogue types and manages only the certificates it issued
   (:mod:`certstore.services.authorization`; checked again on the locked row inside the transaction);
2. applies the change (the rules below);
3. records the arrival against its deadline (第十一条, :func:`certstore.services.deadlines.record_arrival`) when
   the entry point has one (:attr:`~certstore.services.calls.Via.has_deadline`: API, pages, batches, exchange),
   with the completion time and channel the origin states (default: now, online);
4. runs the caller's ``within`` hook (its own records: the exchange's ledger and cursor);
5. appends the call's one audit entry (:func:`certstore.services.calls.audit_in`: actor, action
   ``certificate.issue`` / ``.change`` / ``.renew`` / ``.act``, certificate, holder digest, outcome).

All of it commits together or not at all. An idempotent repeat (nothing changed) still yields exactly one audit
entry (``details.repeat``, through the application's durable sink) and no arrival; a denial yields one entry with
outcome ``deny``. Entry points only build the call: there is no public way to write a certificate without one.

Consistency rule (issue 3 §6): a certificate file is written to the blob store *before* the row that
points at it is committed, so a crash leaves at most an orphan blob (removed by
:func:`sweep_orphan_blobs`), never a row pointing at a missing blob. Pushes are idempotent on
(issuer code, certificate number, version): the same content twice gives one record; different content
under the same key is refused with :class:`DuplicateConflictError`.

:class:`~certstore.services.certificate_batch.CertificateBatch` applies many file-less writes in one transaction
of the caller under the same rules (the exchange's and the import's chunks), using :func:`row_values` and
:func:`event_values`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from sqlalchemy import bindparam, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from certstore.access import AccessDeniedError
from certstore.audit import Outcome
from certstore.catalogue import CatalogueEntry
from certstore.crypto.sm3 import sm3
from certstore.identifiers import (
    CertificateIdentifier,
    HolderIdType,
    holder_id_digest,
    holder_ref,
    serial_for,
    validate_holder_id,
)
from certstore.lifecycle import Action, Status, transition
from certstore.records import (
    Certificate,
    CertificateDraft,
    CertificateEvent,
    Holder,
    PreparedVersion,
    RecordError,
    prepare_version,
)
from certstore.services import authorization, calls, deadlines, transaction
from certstore.services.calendar import load_calendar
from certstore.services.calls import Call
from certstore.services.catalogue import get_entry
from certstore.services.notifications import events as notification_events
from certstore.store.blobs import BlobRef
from certstore.store.models import CertificateEventRow, CertificateRow
from certstore.store.repository import Repository
from certstore.workdays import WorkCalendar

if TYPE_CHECKING:
    from certstore.app import Application

__all__ = [
    "NO_FILE",
    "CertificateFile",
    "CertificateNotFoundError",
    "DuplicateConflictError",
    "FileMaker",
    "IssueResult",
    "NoFileError",
    "NotLatestVersionError",
    "Within",
    "act",
    "act_in",
    "change",
    "change_feed",
    "event_values",
    "file",
    "find_identical",
    "get",
    "history",
    "identifier_for",
    "issue",
    "list_by_holder",
    "list_page",
    "renew",
    "row_values",
    "stored_serial",
    "stored_version",
    "stored_versions",
    "sweep_orphan_blobs",
    "written_version",
]

#: Makes the certificate file for a prepared version (face + metadata + seal), returning (bytes, media type).
FileMaker = Callable[[PreparedVersion], tuple[bytes, str]]


def _no_file(prepared: PreparedVersion) -> tuple[bytes, str]:
    raise AssertionError("NO_FILE is a marker, never called")


#: ``file_maker=NO_FILE``: store the record without a sealed file (a record-only push; tests, and batches run
#: without sealing keys). The default (``file_maker=None``) seals with the application's keys.
NO_FILE: FileMaker = _no_file

#: ``within`` (:mod:`certstore.services.transaction`) of issue/change/renew/act: called with the session inside
#: the transaction that writes a certificate change, after the change and its arrival are written and before the
#: call's audit entry and the commit: the caller's own records (an exchange ledger entry and cursor) then commit
#: together with the change or not at all; :func:`written_version` tells the hook which version was written.
#: Whatever it raises rolls the change back and propagates (an ``IntegrityError`` it raises is treated like the
#: change's own: the function looks for an identical stored version and returns it, or re-raises).
Within = transaction.Within

#: ``Session.info`` key: the row a change wrote, for :func:`written_version` (set just before ``within`` runs).
_WRITTEN = "certstore.certificates.written"

ISSUE, CHANGE, RENEW, ACT = "certificate.issue", "certificate.change", "certificate.renew", "certificate.act"
FILE, PREVIEW = "certificate.file", "certificate.preview"


class CertificateNotFoundError(LookupError):
    """No certificate with that identifier."""


class NoFileError(CertificateNotFoundError):
    """The certificate was stored without a file (a record-only push)."""


class DuplicateConflictError(ValueError):
    """The same (issuer, certificate number, version) was pushed before with different content."""


class NotLatestVersionError(ValueError):
    """A change or renewal aimed at a version that a newer one already replaced."""


@dataclass(frozen=True)
class IssueResult:
    certificate: Certificate
    created: bool  # False when an identical push had already been stored


@dataclass(frozen=True)
class CertificateFile:
    """What :func:`file` hands the issuing agency: the bytes, their media type and a file name."""

    data: bytes
    media_type: str
    name: str


# --- reading ---------------------------------------------------------------------------------------------


def _to_certificate(row: CertificateRow, successor: str | None = None) -> Certificate:
    return Certificate(
        identifier=row.identifier,
        version=row.version,
        serial=row.serial,
        certificate_number=row.certificate_number,
        name=row.name,
        catalogue_code=row.catalogue_code,
        catalogue_version=row.catalogue_version,
        issuer_code=row.issuer_code,
        issuer_name=row.issuer_name,
        holder=Holder(row.holder_name, HolderIdType(row.holder_id_type), row.holder_id),
        holder_ref=holder_ref(row.holder_id_digest),
        issue_date=row.issue_date,
        valid_from=row.valid_from,
        valid_until=row.valid_until,
        face=row.face,
        metadata=row.meta,
        stored_status=Status(row.status),
        status_changed_at=row.status_changed_at,
        file_key=row.file_key,
        file_media_type=row.file_media_type,
        superseded_by=successor,
        created_at=row.created_at,
        events=tuple(
            CertificateEvent(e.action, e.from_status, e.to_status, e.reason, e.actor, e.at, e.details or {})
            for e in row.events
        ),
    )


def _view(session: Session, row: CertificateRow) -> Certificate:
    successor = None
    if row.superseded_by_id is not None:
        successor = session.get(CertificateRow, row.superseded_by_id)
    return _to_certificate(row, successor.identifier if successor else None)


def _row_by_identifier(session: Session, identifier: str, *, lock: bool = False) -> CertificateRow:
    query = select(CertificateRow).where(CertificateRow.identifier == identifier)
    if lock:
        query = query.with_for_update()
    row = session.scalars(query).first()
    if row is None:
        raise CertificateNotFoundError(f"no certificate {identifier}")
    return row


#: A version by (issuer, certificate number, version), built once with bound parameters (every issuance asks).
_BY_KEY = select(CertificateRow).where(
    CertificateRow.issuer_code == bindparam("issuer_code"),
    CertificateRow.certificate_number == bindparam("number"),
    CertificateRow.version == bindparam("version"),
)


def _row_by_key(session: Session, issuer_code: str, number: str, version: int) -> CertificateRow | None:
    params = {"issuer_code": issuer_code, "number": number, "version": version}
    return session.scalars(_BY_KEY, params).first()


def stored_version(
    repo: Repository, issuer_code: str, certificate_number: str, version: int | None = None
) -> Certificate | None:
    """Version ``version`` of the certificate (issuer, number), or its latest version when None; None if absent."""
    with repo.db.session(readonly=True) as session:
        if version is not None:
            row = _row_by_key(session, issuer_code, certificate_number, version)
        else:
            row = session.scalars(
                select(CertificateRow)
                .where(
                    CertificateRow.issuer_code == issuer_code,
                    CertificateRow.certificate_number == certificate_number,
                )
                .order_by(CertificateRow.version.desc())
                .limit(1)
            ).first()
        return _view(session, row) if row is not None else None


def stored_serial(repo: Repository, issuer_code: str, certificate_number: str) -> str | None:
    """The serial (流水号) the certificate (issuer, number) was stored with — every version shares it — or None
    when no version is stored: what a new version must keep, read without building the stored version's view
    (one indexed column instead of the row, its events and files; the exchange plans every new version by it)."""
    with repo.db.session(readonly=True) as session:
        return session.scalars(
            select(CertificateRow.serial)
            .where(
                CertificateRow.issuer_code == issuer_code,
                CertificateRow.certificate_number == certificate_number,
            )
            .limit(1)
        ).first()


def stored_versions(
    repo: Repository, issuer_code: str, certificate_numbers: Iterable[str]
) -> dict[str, tuple[str, frozenset[int]]]:
    """:func:`stored_serial` of many certificates of one issuer, with the versions stored of each, in one query per
    500 numbers: number → (serial, versions) for those stored (the exchange asks once per chunk of rows: the
    serial a later version keeps, and whether a version is already stored — a repeat is never sealed again)."""
    wanted = sorted(set(certificate_numbers))
    found: dict[str, tuple[str, set[int]]] = {}
    with repo.db.session(readonly=True) as session:
        for start in range(0, len(wanted), 500):
            rows = session.execute(
                select(
                    CertificateRow.certificate_number, CertificateRow.serial, CertificateRow.version
                ).where(
                    CertificateRow.issuer_code == issuer_code,
                    CertificateRow.certificate_number.in_(wanted[start : start + 500]),
                )
            )
            for number, serial, version in rows:
                found.setdefault(number, (serial, set()))[1].add(int(version))
    return {number: (serial, frozenset(versions)) for number, (serial, versions) in found.items()}


def identifier_for(
    app: Application, call: Call, catalogue_code: str, certificate_number: str, version: int = 1
) -> str:
    """The identifier (证照标识) the repository gives version ``version`` of certificate ``certificate_number`` of
    catalogue type ``catalogue_code`` — for an agency that seals its own files and must name the identifier in
    their metadata (ZZBS) before pushing them (API, exchange). Serials are keyed (issue 15), so only the
    repository can compute them: the certificate's stored serial when a version of it exists (certificates issued
    before the serial key keep theirs), else the keyed serial of issuer and number. Only the issuer of the type
    may ask; each answer is audited (``certificate.identifier``). Nothing is stored: asking twice gives the same
    identifier, and pushing the version later gives exactly this one."""
    repo = app.repo
    entry = get_entry(repo, catalogue_code)
    guard = _Guard(app, call, "certificate.identifier")
    with guard.denials():
        authorization.require_issuer_of_type(call.actor, entry)
    issuer = entry.issuer.credit_code
    stored = stored_version(repo, issuer, certificate_number)
    serial = (
        stored.serial if stored is not None else serial_for(issuer, certificate_number, key=repo.serial_key)
    )
    identifier = str(CertificateIdentifier.build(entry.code, issuer, serial, version))
    assert app.audit is not None
    calls.audit_now(app.audit, call, call.event(
        "certificate.identifier", certificate=identifier,
        details={"catalogue_code": entry.code, "version": version},
    ))  # fmt: skip
    return identifier


def find_identical(repo: Repository, prepared: PreparedVersion) -> Certificate | None:
    """The stored version with the key of ``prepared`` (issuer, certificate number, version) when its content is
    the same (an idempotent repeat); None when there is none; :class:`DuplicateConflictError` when it was stored
    with other content."""
    with repo.db.session(readonly=True) as session:
        existing = _row_by_key(
            session,
            prepared.identifier.issuer_code,
            prepared.draft.certificate_number,
            prepared.identifier.version,
        )
        return None if existing is None else _same_or_conflict(session, existing, prepared).certificate


def get(repo: Repository, identifier: str) -> Certificate:
    with repo.db.session() as session:
        return _view(session, _row_by_identifier(session, identifier))


def history(repo: Repository, identifier: str) -> list[Certificate]:
    """Every version of the certificate ``identifier`` belongs to, oldest first."""
    with repo.db.session() as session:
        row = _row_by_identifier(session, identifier)
        rows = session.scalars(
            select(CertificateRow)
            .where(CertificateRow.issuer_code == row.issuer_code, CertificateRow.serial == row.serial)
            .order_by(CertificateRow.version)
        ).all()
        return [_view(session, r) for r in rows]


def list_by_holder(
    repo: Repository, id_type: HolderIdType, id_number: str, *, current_only: bool = True
) -> list[Certificate]:
    """A holder's certificates (一号查询), found through the keyed digest of the ID number. With
    ``current_only`` superseded versions are left out."""
    digest = holder_id_digest(repo.holder_key, id_type, validate_holder_id(id_type, id_number))
    with repo.db.session() as session:
        query = select(CertificateRow).where(CertificateRow.holder_id_digest == digest)
        if current_only:
            query = query.where(CertificateRow.superseded_by_id.is_(None))
        rows = session.scalars(
            query.order_by(CertificateRow.issue_date.desc(), CertificateRow.id.desc())
        ).all()
        return [_view(session, r) for r in rows]


def list_page(
    repo: Repository,
    *,
    catalogue_code: str | None = None,
    issuer_code: str | None = None,
    after: int = 0,
    limit: int = 100,
) -> tuple[list[Certificate], int | None]:
    """Current certificate versions in storage order (for bulk access under a grant), ``limit`` after cursor
    ``after``; returns (page, cursor of the next page or None at the end)."""
    query = select(CertificateRow).where(CertificateRow.superseded_by_id.is_(None), CertificateRow.id > after)
    if catalogue_code is not None:
        query = query.where(CertificateRow.catalogue_code == catalogue_code)
    if issuer_code is not None:
        query = query.where(CertificateRow.issuer_code == issuer_code)
    with repo.db.session(readonly=True) as session:
        rows = session.scalars(query.order_by(CertificateRow.id).limit(limit + 1)).all()
        page = [_view(session, r) for r in rows[:limit]]
        return page, (rows[limit - 1].id if len(rows) > limit else None)


def change_feed(
    repo: Repository, *, after: int = 0, limit: int = 200
) -> tuple[list[dict[str, Any]], int | None]:
    """Lifecycle events after event id ``after``, each with its change record (reason, actor, time: 证照变更记录) and
    the metadata of the version it concerns — what the province aggregates (汇聚). Returns (items, cursor of the
    next page or None when caught up)."""
    query = (
        select(CertificateEventRow, CertificateRow)
        .join(CertificateRow, CertificateEventRow.certificate_id == CertificateRow.id)
        .where(CertificateEventRow.id > after)
        .order_by(CertificateEventRow.id)
        .limit(limit + 1)
    )
    with repo.db.session(readonly=True) as session:
        rows = session.execute(query).all()
        items = [
            {
                "event_id": event.id,
                "action": event.action,
                "from_status": event.from_status,
                "to_status": event.to_status,
                "reason": event.reason,
                "actor": event.actor,
                "at": event.at.isoformat(),
                "identifier": row.identifier,
                "version": row.version,
                "catalogue_code": row.catalogue_code,
                "issuer_code": row.issuer_code,
                "metadata": dict(row.meta),
            }
            for event, row in rows[:limit]
        ]
    return items, (items[-1]["event_id"] if len(rows) > limit else None)


# --- the guarantees every change carries -------------------------------------------------------------------


class _Guard:
    """Turns an :class:`AccessDeniedError` of a use case into its one audit entry (outcome ``deny``, through the
    application's durable sink — the transaction, if any, has rolled back) and lets it propagate. ``certificate``
    and ``holder_digest`` are filled in as the use case learns them."""

    def __init__(self, app: Application, call: Call, action: str, certificate: str | None = None) -> None:
        self.app, self.call, self.action = app, call, action
        self.certificate = certificate
        self.holder_digest: str | None = None

    def saw(self, certificate: Certificate) -> None:
        self.certificate, self.holder_digest = certificate.identifier, certificate.holder_ref

    @contextmanager
    def denials(self) -> Iterator[None]:
        try:
            yield
        except AccessDeniedError as exc:
            assert self.app.audit is not None
            calls.audit_now(self.app.audit, self.call, self.call.event(
                self.action, outcome=Outcome.DENY, status_code=403, certificate=self.certificate,
                holder_digest=self.holder_digest, reason=str(exc),
            ))  # fmt: skip
            raise


@dataclass(frozen=True)
class _Arrival:
    """The arrival a change records in its transaction (第十一条), prepared before the transaction starts."""

    source: str
    channel: deadlines.Channel
    completed_at: datetime
    calendar: WorkCalendar

    def record(self, session: Session, row: CertificateRow) -> None:
        deadlines.record_arrival(
            session, identifier=row.identifier, issuer_code=row.issuer_code, source=self.source,
            channel=self.channel, completed_at=self.completed_at, arrived_at=row.created_at,
            calendar=self.calendar,
        )  # fmt: skip


def _arrival(app: Application, call: Call) -> _Arrival | None:
    """The arrival of a new version coming in through ``call`` — None when its entry point has no deadline —
    with the completion time checked now, before anything is stored (:class:`~deadlines.ArrivalError`)."""
    origin = call.origin
    if origin.completed_at is None and not origin.via.has_deadline:
        return None
    now = app.now()
    completed = deadlines.check_completed_at(origin.completed_at or now, now=now)
    if not origin.via.has_deadline:
        return None
    try:
        channel = deadlines.Channel(origin.channel or deadlines.Channel.ONLINE)
    except ValueError:
        allowed = ", ".join(c.value for c in deadlines.Channel)
        raise deadlines.ArrivalError("channel", f"one of {allowed}, got {origin.channel!r}") from None
    source = origin.source or origin.via.value
    return _Arrival(source, channel, completed, load_calendar(app.repo))  # read before the write transaction


def _effects(
    session: Session,
    call: Call,
    row: CertificateRow,
    *,
    arrival: _Arrival | None,
    within: Within | None,
    action: str,
    status_code: int,
    details: dict[str, Any],
) -> Certificate:
    """What every change writes after its rows, in its transaction: the arrival, the caller's hook, the call's
    audit entry. Returns the version written, as the use case returns it."""
    if arrival is not None:
        arrival.record(session, row)
    _run_within(session, row, within)
    written = _view(session, row)
    calls.audit_in(session, call, call.event(
        action, certificate=written.identifier, holder_digest=written.holder_ref, status_code=status_code,
        details=details,
    ))  # fmt: skip
    notification_events.certificate_written(session, row)  # the holder is told, in this transaction (outbox)
    return written


def _repeat(app: Application, call: Call, action: str, stored: Certificate) -> Certificate:
    """An idempotent repeat changed nothing: its one audit entry, through the durable sink; no arrival."""
    assert app.audit is not None
    calls.audit_now(app.audit, call, call.event(
        action, certificate=stored.identifier, holder_digest=stored.holder_ref, details={"repeat": True},
    ))  # fmt: skip
    return stored


# --- writing -----------------------------------------------------------------------------------------------


def _store_file(repo: Repository, file: bytes | None, media_type: str | None) -> BlobRef | None:
    if file is None:
        return None
    return repo.blobs.put(file, media_type=media_type or "application/octet-stream")


def _ensure_file(repo: Repository, blob: BlobRef | None, file: bytes | None) -> None:
    """After the commit: the blob must still be there. A concurrent orphan sweep may have judged an identical
    old blob unreferenced just before this push adopted it; the push still holds the bytes, so it puts them
    back. With this, no reader ever finds a committed row without its file for longer than this call."""
    if blob is not None and file is not None and not repo.blobs.exists(blob.key):
        repo.blobs.put(file, media_type=blob.media_type or "application/octet-stream")


def _new_row(prepared: PreparedVersion, blob: BlobRef | None, *, at: datetime) -> CertificateRow:
    return CertificateRow(**row_values(prepared, blob, at=at))


def row_values(prepared: PreparedVersion, blob: BlobRef | None, *, at: datetime) -> dict[str, Any]:
    """The columns of a new version's row (attribute names of :class:`CertificateRow`)."""
    entry, draft = prepared.entry, prepared.draft
    return dict(
        identifier=str(prepared.identifier),
        type_code=prepared.identifier.type_code,
        issuer_code=prepared.identifier.issuer_code,
        issuer_name=entry.issuer.name,
        serial=prepared.identifier.serial,
        version=prepared.identifier.version,
        certificate_number=draft.certificate_number,
        name=entry.name,
        catalogue_code=entry.code,
        catalogue_version=entry.version,
        holder_name=draft.holder.name,
        holder_id_type=str(draft.holder.id_type),
        holder_id=prepared.holder_id,
        holder_id_digest=prepared.holder_digest,
        issue_date=draft.issue_date,
        valid_from=prepared.valid_from,
        valid_until=prepared.valid_until,
        face=prepared.face,
        meta=prepared.metadata,
        content_digest=prepared.digest,
        file_key=blob.key if blob else None,
        file_media_type=blob.media_type if blob else None,
        status=Status.VALID.value,
        status_changed_at=at,
        created_at=at,
    )


def _event(action: Action, from_status: Status | None, to_status: Status, reason: str, actor: str, at: datetime,
           **details: object) -> CertificateEventRow:  # fmt: skip
    return CertificateEventRow(**event_values(action, from_status, to_status, reason, actor, at, **details))


def event_values(action: Action, from_status: Status | None, to_status: Status, reason: str, actor: str,
                  at: datetime, **details: object) -> dict[str, Any]:  # fmt: skip
    """The columns of a lifecycle event row (``actor``: the :attr:`~certstore.access.Actor.ref` of the call)."""
    return dict(
        action=action.value,
        from_status=from_status.value if from_status else None,
        to_status=to_status.value,
        reason=reason,
        actor=actor,
        at=at,
        details=details,
    )


def _same_or_conflict(session: Session, existing: CertificateRow, prepared: PreparedVersion) -> IssueResult:
    if existing.content_digest != prepared.digest:
        raise DuplicateConflictError(
            f"certificate {existing.certificate_number!r} version {existing.version} of issuer "
            f"{existing.issuer_code} was already pushed with different content ({existing.identifier})"
        )
    return IssueResult(_view(session, existing), created=False)


def _make_file(
    app: Application,
    prepared: PreparedVersion,
    file: bytes | None,
    media_type: str | None,
    file_maker: FileMaker | None,
) -> tuple[bytes | None, str | None]:
    if file is not None:
        if file_maker is not None:
            raise ValueError("give either a file or a file maker, not both")
        return file, media_type
    if file_maker is NO_FILE:
        return None, None
    return (file_maker or app.file_maker())(prepared)


def _prepare(
    repo: Repository,
    entry: CatalogueEntry,
    draft: CertificateDraft,
    version: int,
    file: bytes | None,
    serial: str | None = None,
) -> PreparedVersion:
    file_key = sm3(file).hex() if file is not None else None
    return prepare_version(entry, draft, version=version, holder_key=repo.holder_key,
                           serial_key=repo.serial_key, serial=serial, file_key=file_key)  # fmt: skip


def issue(
    app: Application,
    call: Call,
    draft: CertificateDraft,
    *,
    within: Within | None = None,
    file: bytes | None = None,
    file_media_type: str | None = None,
    file_maker: FileMaker | None = None,
    catalogue_version: int | None = None,
) -> IssueResult:
    """Issue version 1 of a certificate (签发) for ``call`` — authorised, stored, arrival and audit entry in one
    transaction (module docstring). The file: sealed by the application (default), by ``file_maker``, or
    ``file`` as presented (a file the agency sealed itself); ``NO_FILE`` stores the record only.

    Idempotent: an identical earlier push is returned unchanged (``created`` False; ``within`` is then not
    called, no arrival is recorded, the audit entry says ``repeat``)."""
    repo = app.repo
    guard = _Guard(app, call, ISSUE)
    entry = get_entry(repo, draft.catalogue_code, catalogue_version)
    with guard.denials():
        authorization.require_issuer_of_type(call.actor, entry)
    arrival = _arrival(app, call)
    prepared = _prepare(repo, entry, draft, 1, file)
    key = (prepared.identifier.issuer_code, draft.certificate_number, 1)
    with repo.db.session(readonly=True) as session:  # a repeat is found without the writer's lock
        existing = _row_by_key(session, *key)
        stored = None if existing is None else _same_or_conflict(session, existing, prepared)
    if stored is not None:
        _repeat(app, call, ISSUE, stored.certificate)
        return stored
    data, media_type = _make_file(app, prepared, file, file_media_type, file_maker)
    blob = _store_file(repo, data, media_type)  # the blob first: a crash after this leaves only an orphan
    at = repo.now()
    try:
        with repo.db.session() as session:
            row = _new_row(prepared, blob, at=at)
            row.events.append(_event(Action.ISSUE, None, Status.VALID, "签发", call.actor.ref, at))
            session.add(row)
            session.flush()
            new = _effects(session, call, row, arrival=arrival, within=within, action=ISSUE, status_code=201,
                           details={"version": 1})  # fmt: skip
        _ensure_file(repo, blob, data)
        return IssueResult(new, created=True)
    except IntegrityError:  # a concurrent identical push won the race
        with repo.db.session() as session:
            existing = _row_by_key(session, *key)
            if existing is None:
                raise
            stored = _same_or_conflict(session, existing, prepared)
        _repeat(app, call, ISSUE, stored.certificate)
        return stored


def _new_version(
    app: Application,
    call: Call,
    guard: _Guard,
    identifier: str,
    action: Action,
    make_draft: Callable[[Certificate, CatalogueEntry], CertificateDraft],
    *,
    reason: str,
    file: bytes | None,
    file_media_type: str | None,
    file_maker: FileMaker | None,
    within: Within | None,
) -> Certificate:
    repo = app.repo
    with repo.db.session() as session:
        current = _view(session, _row_by_identifier(session, identifier))
    guard.saw(current)
    authorization.require_issuer_of(call.actor, current.issuer_code)  # early: nothing is sealed for nothing
    if current.superseded_by is not None:
        raise NotLatestVersionError(
            f"{identifier} was already replaced by {current.superseded_by}; {action.label} the latest version"
        )
    at = repo.now()
    actor = call.actor.ref
    event = transition(
        current.stored_status, action, valid_until=current.valid_until, reason=reason, actor=actor, at=at
    )
    entry = get_entry(repo, current.catalogue_code)
    draft = make_draft(current, entry)
    if draft.certificate_number != current.certificate_number:
        raise RecordError("a new version keeps the certificate number", [("certificate_number", "changed")])
    arrival = _arrival(app, call)
    prepared = _prepare(repo, entry, draft, current.version + 1, file, serial=current.serial)
    data, media_type = _make_file(app, prepared, file, file_media_type, file_maker)
    blob = _store_file(repo, data, media_type)
    name = guard.action
    try:
        with repo.db.session() as session:
            old = _row_by_identifier(session, identifier, lock=True)
            authorization.require_issuer_of(call.actor, old.issuer_code)  # on the locked row
            if old.superseded_by_id is not None or old.status != current.stored_status.value:
                raise NotLatestVersionError(f"{identifier} changed while the new version was prepared; retry")
            new = _new_row(prepared, blob, at=at)
            new.events.append(
                _event(action, None, Status.VALID, event.reason, actor, at, replaces=identifier)
            )
            session.add(new)
            session.flush()
            old.status = event.to_status.value
            old.status_changed_at = at
            old.superseded_by_id = new.id
            old.events.append(
                _event(
                    action,
                    event.from_status,
                    event.to_status,
                    event.reason,
                    actor,
                    at,
                    replaced_by=new.identifier,
                )
            )
            session.flush()
            details: dict[str, Any] = {"version": new.version, "replaces": identifier}
            if new.holder_id_digest != old.holder_id_digest:  # searchable by the former holder too
                details["replaces_holder"] = current.holder_ref
            created = _effects(session, call, new, arrival=arrival, within=within, action=name, status_code=201,
                               details=details)  # fmt: skip
        _ensure_file(repo, blob, data)
        return created
    except IntegrityError:
        with repo.db.session() as session:
            existing = _row_by_key(
                session,
                prepared.identifier.issuer_code,
                draft.certificate_number,
                prepared.identifier.version,
            )
            if existing is None:
                raise
            stored = _same_or_conflict(session, existing, prepared).certificate
        return _repeat(app, call, name, stored)


def change(
    app: Application,
    call: Call,
    identifier: str,
    draft: CertificateDraft,
    *,
    reason: str,
    within: Within | None = None,
    file: bytes | None = None,
    file_media_type: str | None = None,
    file_maker: FileMaker | None = None,
) -> Certificate:
    """变更: a new version with new content replaces ``identifier`` (which becomes SUPERSEDED) — for the
    issuer of the certificate, with a draft of a catalogue type it issues; arrival and audit entry in the same
    transaction. ``within`` runs in that transaction (not when an identical version was already stored)."""

    def changed(_current: Certificate, _entry: CatalogueEntry) -> CertificateDraft:
        authorization.require_issuer_of_type(call.actor, get_entry(app.repo, draft.catalogue_code))
        return draft

    guard = _Guard(app, call, CHANGE, identifier)
    with guard.denials():
        return _new_version(
            app, call, guard, identifier, Action.CHANGE, changed, reason=reason,
            file=file, file_media_type=file_media_type, file_maker=file_maker, within=within,
        )  # fmt: skip


def renew(
    app: Application,
    call: Call,
    identifier: str,
    *,
    valid_until: date | None,
    reason: str,
    within: Within | None = None,
    file: bytes | None = None,
    file_media_type: str | None = None,
    file_maker: FileMaker | None = None,
) -> Certificate:
    """延续: a new version with the same content and a later end of validity (None: long-term), for the issuer
    of the certificate. ``within`` as for :func:`change`."""

    def renewed(current: Certificate, entry: CatalogueEntry) -> CertificateDraft:
        if valid_until is not None and current.valid_until is not None and valid_until <= current.valid_until:
            raise RecordError(
                f"renewal must extend validity beyond {current.valid_until}",
                [("valid_until", str(valid_until))],
            )
        return CertificateDraft(
            catalogue_code=entry.code,
            certificate_number=current.certificate_number,
            holder=current.holder,
            face=current.face,
            issue_date=app.now().date(),
            valid_from=current.valid_from,
            valid_until=valid_until,
            metadata={k[3:]: v for k, v in current.metadata.items() if k.startswith("KZ_")},
        )

    guard = _Guard(app, call, RENEW, identifier)
    with guard.denials():
        return _new_version(
            app, call, guard, identifier, Action.RENEW, renewed, reason=reason,
            file=file, file_media_type=file_media_type, file_maker=file_maker, within=within,
        )  # fmt: skip


def act(
    app: Application,
    call: Call,
    identifier: str,
    action: Action,
    *,
    reason: str,
    within: Within | None = None,
) -> Certificate:
    """挂起 / 恢复 / 吊销 / 注销 / 废止 — effective immediately for every reader; for the issuer of the
    certificate (checked on the locked row). ``within`` and the audit entry run in the transaction that changes
    the status (no arrival: no new version arrives)."""
    guard = _Guard(app, call, ACT, identifier)
    with guard.denials(), app.repo.db.session() as session:
        return _act(session, app.repo, call, identifier, action, reason=reason, within=within, guard=guard)


def act_in(
    session: Session,
    app: Application,
    call: Call,
    identifier: str,
    action: Action,
    *,
    reason: str,
    cause: Mapping[str, Any],
) -> Certificate:
    """:func:`act` inside the transaction of another use case whose consequence it is — a failed 年检 suspends, a
    later passed one resumes (:mod:`certstore.services.inspections`): the same locked row, issuer check,
    transition, lifecycle event, audit entry (``certificate.act``) and holder notification, committed or rolled
    back with the caller's change. ``cause`` (plain JSON values) goes into the event's and the audit entry's
    details, so the record says why. The caller runs its own ``within`` hook."""
    return _act(session, app.repo, call, identifier, action, reason=reason, within=None, cause=cause)


def _act(
    session: Session,
    repo: Repository,
    call: Call,
    identifier: str,
    action: Action,
    *,
    reason: str,
    within: Within | None,
    guard: _Guard | None = None,
    cause: Mapping[str, Any] | None = None,
) -> Certificate:
    if action.creates_version or action is Action.ISSUE:
        raise ValueError(f"{action.value} makes a new version: use issue/change/renew")
    row = _row_by_identifier(session, identifier, lock=True)
    if guard is not None:
        guard.holder_digest = holder_ref(row.holder_id_digest)
    authorization.require_issuer_of(call.actor, row.issuer_code)
    at = repo.now()
    actor = call.actor.ref
    event = transition(
        Status(row.status), action, valid_until=row.valid_until, reason=reason, actor=actor, at=at
    )
    row.status = event.to_status.value
    row.status_changed_at = at
    row.events.append(
        _event(action, event.from_status, event.to_status, event.reason, actor, at, **dict(cause or {}))
    )
    session.flush()
    details = {
        "action": action.value,
        "from_status": event.from_status.value,
        "to_status": event.to_status.value,
        **dict(cause or {}),
    }
    return _effects(session, call, row, arrival=None, within=within, action=ACT, status_code=200,
                    details=details)  # fmt: skip


def _run_within(session: Session, row: CertificateRow, within: Within | None) -> None:
    """Run the caller's hook in the change's transaction, telling it (:func:`written_version`) what was written."""
    if within is not None:
        session.info[_WRITTEN] = row
        transaction.run_within(session, within)


def written_version(session: Session) -> Certificate:
    """Inside a ``within`` hook of :func:`issue`, :func:`change`, :func:`renew` or :func:`act`: the version the
    transaction wrote — the new version (issue, change, renew) or the one whose status changed (act), as the
    function will return it. ``LookupError`` outside such a hook."""
    row = session.info.get(_WRITTEN)
    if not isinstance(row, CertificateRow):
        raise LookupError("no certificate version was written in this transaction")
    return _view(session, row)


# --- the issuing agency's own files ------------------------------------------------------------------------


def file(
    app: Application,
    call: Call,
    identifier: str,
    format: Literal["ofd", "pdf", "png"] = "ofd",
    *,
    dpi: int = 96,
) -> CertificateFile:
    """The issuing agency's file of its certificate: the sealed OFD as stored, the PDF rendition signed with its
    type's key, or the face as a PNG (``dpi``) — authorised (the issuer only) and audited
    (``certificate.file`` / ``certificate.preview``, durable before the bytes are returned).
    :class:`NoFileError` for the OFD of a record stored without a file."""
    from certstore.services import renditions
    from certstore.services.issuance import OFD_MEDIA_TYPE, PDF_MEDIA_TYPE

    if format not in ("ofd", "pdf", "png"):
        raise ValueError(f"format: ofd, pdf or png, not {format!r}")
    action = PREVIEW if format == "png" else FILE
    guard = _Guard(app, call, action, identifier)
    certificate = get(app.repo, identifier)
    guard.saw(certificate)
    with guard.denials():
        authorization.require_issuer_of(call.actor, certificate.issuer_code)
    name = f"{certificate.certificate_number}-v{certificate.version}"
    if format == "pdf":
        made = CertificateFile(renditions.pdf_rendition(app, certificate), PDF_MEDIA_TYPE, f"{name}.pdf")
    elif format == "png":
        made = CertificateFile(renditions.preview_png(app, certificate, dpi=dpi), "image/png", f"{name}.png")
    elif certificate.file_key is None:
        raise NoFileError(f"certificate {identifier} was stored without a file")
    else:
        data = app.repo.blobs.get(certificate.file_key)
        made = CertificateFile(data, certificate.file_media_type or OFD_MEDIA_TYPE, f"{name}.ofd")
    assert app.audit is not None
    calls.audit_now(app.audit, call, call.event(
        action, certificate=certificate.identifier, holder_digest=certificate.holder_ref,
        details={"format": format},
    ))  # fmt: skip
    return made


# --- maintenance -----------------------------------------------------------------------------------------


def sweep_orphan_blobs(
    repo: Repository, *, older_than: timedelta = timedelta(hours=1), batch: int = 1000
) -> list[str]:
    """Delete blobs no certificate row references and that are older than ``older_than`` (young blobs may
    belong to a push whose row is being committed right now). Returns the deleted keys.

    The store is walked once, ``batch`` keys at a time, each batch checked against the rows with one indexed
    query (``ix_certificates_file_key``): memory stays flat whatever the number of certificates."""
    cutoff = repo.now() - older_than
    deleted: list[str] = []
    pending: list[str] = []

    def sweep(keys: list[str]) -> None:
        with repo.db.session(readonly=True) as session:
            referenced = set(
                session.scalars(select(CertificateRow.file_key).where(CertificateRow.file_key.in_(keys)))
            )
        for key in keys:
            if key in referenced:
                continue
            current = repo.blobs.stat(key)  # a put of identical content since the listing refreshes it
            if current is None or current.created > cutoff:
                continue
            repo.blobs.delete(key)
            deleted.append(key)

    for info in repo.blobs.iter_infos():
        if info.created > cutoff:
            continue
        pending.append(info.key)
        if len(pending) >= batch:
            sweep(pending)
            pending = []
    if pending:
        sweep(pending)
    return deleted
