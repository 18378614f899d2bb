"""Upward aggregation, the receiving end (省级汇聚, 第六条): a provincial repository applies what a city delivers.

A city repository (:mod:`certstore.exchange.upward`) delivers its approved catalogue entries (证照目录) and its
certificate lifecycle events (签发, 变更, 延续, 挂起, 恢复, 吊销, 注销, 废止) in batches; an event that creates a
version carries the version's record (identifier, metadata, face, holder) and its sealed file. This module is
the wire format shared by both ends (:func:`delivery_to_json` / :func:`parse_delivery`) and
:func:`apply_batch`, which the province's API (``POST /api/v1/aggregate/batches``) calls.

Exactly once. Every delivered item is identified by (sender, kind, source id): the sender is the authenticated
organisation of the upstream principal (never a field of the request), the source id the city's
``certificate_events.id`` or ``catalogue_entries.id``. The ``upward_received`` row is inserted *first* in the
same transaction as the item's effect, so

- an item repeated after a lost acknowledgement finds its row and is answered ``already_applied`` (no effect);
- two deliveries of the same item racing (a retry while the first request is still running) serialise on the
  row's unique key: the loser's transaction rolls back whole and it answers ``already_applied`` too;
- a crash between the effect and the acknowledgement leaves both or neither.

Items are applied in the order given, each in its own transaction. Outcomes per item (:class:`Outcome`):
``applied``, ``already_applied``, ``refused`` (permanent — the reason says why; the sender records it and moves
on) and ``failed`` (the province itself failed, e.g. its database or blob store: retry later); items after a
failed one are ``not_processed``, because later events may depend on it.

What the province checks before storing a version (refused otherwise):

- the file's SM3 equals the key the city declared (transport integrity);
- :func:`certstore.verify.verify_file` with the **province's** trust store (which must hold the city's trust
  anchors) is VALID — package, seals, signer chain, signatures (offline: the status is the city's to report);
- the file names the delivered identifier (``ZZBS``) and carries, under its signature, exactly the delivered
  metadata (so a city cannot deliver one certificate's sealed file under another's record);
- the holder ID number is valid for its type; the identifier is not already held with other content, nor by
  another sender.

Certificate versions are written as :class:`CertificateRow` / :class:`CertificateEventRow` directly (aggregated
records were issued by the city, not by the province, so :func:`certstore.services.certificates.issue` does not
apply), with the same columns and meanings, so the province's sharing and verification services read them like
their own: the identifier, metadata, face, content digest and file key are the city's; the holder-ID digest is
recomputed with the **province's** holder key (一号查询 at the province). The file goes to the province's blob
store before the row is committed (the store's consistency rule). Events keep the city's action, statuses,
reason, actor, time and details, plus ``details.upward = {sender, event_id}``. A version without a file (the
city stored none) is kept without one: there is nothing to verify.

Catalogue entries arrive as approved (the city's bureau approved them): registered as ``approved`` with the city's
submitter and reviewer; the same (code, version) with the same document is a no-op, with another document a
refusal. An entry whose base image was uploaded (``asset:<SM3>``) arrives with the image, which the province
stores with the entry unless it holds it already — after checking that its SM3 is the named one and that it
passes the upload's checks; an entry naming an image the province neither holds nor receives is refused.

Audited like every entry point. The intake is made for a :class:`~certstore.services.calls.Call`: the sending
principal as actor (role ``upstream``; its organisation is the sender), the province as origin. Every applied
item records one audit entry ``province.intake`` in the item's own transaction — with the certificate identifier,
the holder reference (the province's digest) and the event's action for a certificate event, the entry's label
for a catalogue entry — so an item applied has its entry and an item not applied (refused, already applied,
failed) has none.
"""

from __future__ import annotations

import base64
import binascii
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from certstore.catalogue import CatalogueEntry, CatalogueError
from certstore.checks import Indication
from certstore.crypto.sm3 import sm3
from certstore.crypto.trust import TrustStore
from certstore.identifiers import HolderIdType, holder_id_digest, holder_ref, validate_holder_id
from certstore.lifecycle import Status
from certstore.packaging.ofd.reader import OfdFormatError, OfdReader
from certstore.records import Holder
from certstore.services.calls import Call, audit_in
from certstore.services.catalogue_assets import AssetError, add_asset, asset_digest, check_image, get_asset
from certstore.store.blobs import BlobRef
from certstore.store.models import (
    CatalogueEntryRow,
    CertificateEventRow,
    CertificateRow,
    UpwardReceivedRow,
)
from certstore.store.repository import Repository
from certstore.verify import UnreadableFileError, verify_file

__all__ = [
    "INTAKE_ACTION",
    "MAX_BATCH_ITEMS",
    "CatalogueDelivery",
    "CertificateDelivery",
    "DeliveredFile",
    "DeliveredVersion",
    "Delivery",
    "DeliveryFormatError",
    "DeliveryKind",
    "ItemResult",
    "Outcome",
    "apply_batch",
    "apply_delivery",
    "delivery_to_json",
    "parse_delivery",
]

log = logging.getLogger(__name__)

#: Most items one batch may carry.
MAX_BATCH_ITEMS = 1000
#: The audit action of an applied item.
INTAKE_ACTION = "province.intake"
_SM3_HEX = re.compile(r"[0-9a-f]{64}")


class DeliveryKind(StrEnum):
    CATALOGUE = "catalogue"  # a catalogue entry version (catalogue_entries.id)
    EVENT = "event"  # a certificate lifecycle event (certificate_events.id)


class Outcome(StrEnum):
    APPLIED = "applied"  # stored now
    ALREADY_APPLIED = "already_applied"  # stored by an earlier delivery: nothing done
    REFUSED = "refused"  # permanently refused; the reason says why
    FAILED = "failed"  # the province failed (database, blob store …): deliver again later
    NOT_PROCESSED = "not_processed"  # after a failed item: deliver again later

    @property
    def acknowledged(self) -> bool:
        """The sender may advance its cursor past this item."""
        return self in (Outcome.APPLIED, Outcome.ALREADY_APPLIED, Outcome.REFUSED)


class DeliveryFormatError(ValueError):
    """A delivered item that is not well-formed (a field missing or of the wrong type); refused."""


class _RefusedError(Exception):
    """An item the province permanently refuses (rolls back the item's transaction)."""


# --- the wire format ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DeliveredFile:
    """A sealed certificate file (OFD or PDF) as delivered: bytes, media type and the SM3 the city declared."""

    data: bytes
    media_type: str
    sm3: str


@dataclass(frozen=True)
class DeliveredVersion:
    """The record of one certificate version (电子证照数据), as stored by the city."""

    identifier: str
    type_code: str
    issuer_code: str
    issuer_name: str
    serial: str
    version: int
    certificate_number: str
    name: str
    catalogue_code: str
    catalogue_version: int
    holder: Holder
    issue_date: date
    valid_from: date
    valid_until: date | None
    face: Mapping[str, Any]
    metadata: Mapping[str, Any]
    content_digest: str
    created_at: datetime
    file: DeliveredFile | None = None


@dataclass(frozen=True)
class CertificateDelivery:
    """One lifecycle event of a certificate version; ``version`` is set when the event creates the version
    (签发, and the new version's event of 变更/延续)."""

    source_id: int
    identifier: str
    action: str
    from_status: str | None
    to_status: str
    reason: str
    actor: str
    at: datetime
    details: Mapping[str, Any] = field(default_factory=dict)
    version: DeliveredVersion | None = None

    kind = DeliveryKind.EVENT


@dataclass(frozen=True)
class CatalogueDelivery:
    """One approved catalogue entry version (the whole catalogue-entry document)."""

    source_id: int
    document: Mapping[str, Any]
    submitted_by: str | None = None
    reviewed_by: str | None = None
    reviewed_at: datetime | None = None
    #: the uploaded base image the document names (``base_image`` = ``asset:<SM3>``), so that the province can
    #: lay out and render the type's faces; None when the document names a shipped image
    base_image: DeliveredFile | None = None

    kind = DeliveryKind.CATALOGUE


Delivery = CertificateDelivery | CatalogueDelivery


def _iso(value: date | datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _file_json(file: DeliveredFile | None) -> dict[str, str] | None:
    if file is None:
        return None
    return {
        "media_type": file.media_type,
        "sm3": file.sm3,
        "data": base64.b64encode(file.data).decode("ascii"),
    }


def delivery_to_json(delivery: Delivery) -> dict[str, Any]:
    """The JSON form of ``delivery`` (files base64-encoded), as ``POST /api/v1/aggregate/batches`` takes it."""
    if isinstance(delivery, CatalogueDelivery):
        return {
            "kind": DeliveryKind.CATALOGUE.value,
            "source_id": delivery.source_id,
            "document": dict(delivery.document),
            "submitted_by": delivery.submitted_by,
            "reviewed_by": delivery.reviewed_by,
            "reviewed_at": _iso(delivery.reviewed_at),
            "base_image": _file_json(delivery.base_image),
        }
    version = delivery.version
    document: dict[str, Any] = {
        "kind": DeliveryKind.EVENT.value,
        "source_id": delivery.source_id,
        "identifier": delivery.identifier,
        "action": delivery.action,
        "from_status": delivery.from_status,
        "to_status": delivery.to_status,
        "reason": delivery.reason,
        "actor": delivery.actor,
        "at": delivery.at.isoformat(),
        "details": dict(delivery.details),
        "version": None,
    }
    if version is not None:
        file = version.file
        document["version"] = {
            "identifier": version.identifier,
            "type_code": version.type_code,
            "issuer_code": version.issuer_code,
            "issuer_name": version.issuer_name,
            "serial": version.serial,
            "version": version.version,
            "certificate_number": version.certificate_number,
            "name": version.name,
            "catalogue_code": version.catalogue_code,
            "catalogue_version": version.catalogue_version,
            "holder": {
                "name": version.holder.name,
                "id_type": str(version.holder.id_type),
                "id_number": version.holder.id_number,
            },
            "issue_date": version.issue_date.isoformat(),
            "valid_from": version.valid_from.isoformat(),
            "valid_until": _iso(version.valid_until),
            "face": dict(version.face),
            "metadata": dict(version.metadata),
            "content_digest": version.content_digest,
            "created_at": version.created_at.isoformat(),
            "file": _file_json(file),
        }
    return document


class _Reader:
    """Typed access to a JSON object, naming the field in every error."""

    def __init__(self, document: object, path: str) -> None:
        if not isinstance(document, Mapping):
            raise DeliveryFormatError(f"{path or 'item'}: expected an object")
        self.document, self.path = document, path

    def _where(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def get(self, key: str, kind: type | tuple[type, ...], *, optional: bool = False) -> Any:
        value = self.document.get(key)
        if value is None and optional:
            return None
        if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
            raise DeliveryFormatError(f"{self._where(key)}: missing or of the wrong type")
        return value

    def text(self, key: str, max_length: int, *, optional: bool = False) -> Any:
        value = self.get(key, str, optional=optional)
        if value is not None and (len(value) > max_length or "\x00" in value):
            raise DeliveryFormatError(f"{self._where(key)}: longer than {max_length} characters or has NUL")
        return value

    def integer(self, key: str) -> int:
        value = self.get(key, int)
        if not 1 <= value < 2**63:
            raise DeliveryFormatError(f"{self._where(key)}: out of range")
        return int(value)

    def day(self, key: str, *, optional: bool = False) -> date | None:
        value = self.get(key, str, optional=optional)
        if value is None:
            return None
        try:
            return date.fromisoformat(value)
        except ValueError:
            raise DeliveryFormatError(f"{self._where(key)}: not a date YYYY-MM-DD") from None

    def time(self, key: str, *, optional: bool = False) -> datetime | None:
        value = self.get(key, str, optional=optional)
        if value is None:
            return None
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise DeliveryFormatError(f"{self._where(key)}: not an ISO 8601 time") from None
        if parsed.tzinfo is None:
            raise DeliveryFormatError(f"{self._where(key)}: the time needs an offset")
        return parsed

    def child(self, key: str) -> _Reader:
        return _Reader(self.document.get(key), self._where(key))


def _parse_file(reader: _Reader) -> DeliveredFile:
    declared = reader.text("sm3", 64)
    if not _SM3_HEX.fullmatch(declared):
        raise DeliveryFormatError(f"{reader.path}.sm3: expected 64 lower-case hex digits")
    try:
        data = base64.b64decode(reader.get("data", str), validate=True)
    except (binascii.Error, ValueError):
        raise DeliveryFormatError(f"{reader.path}.data: not base64") from None
    return DeliveredFile(data=data, media_type=reader.text("media_type", 64), sm3=declared)


def _parse_version(reader: _Reader) -> DeliveredVersion:
    holder = reader.child("holder")
    try:
        id_type = HolderIdType(holder.text("id_type", 8))
    except ValueError:
        raise DeliveryFormatError("version.holder.id_type: unknown holder ID type") from None
    file = None if reader.document.get("file") is None else _parse_file(reader.child("file"))
    issue_date, valid_from = reader.day("issue_date"), reader.day("valid_from")
    created_at = reader.time("created_at")
    assert issue_date is not None and valid_from is not None and created_at is not None
    return DeliveredVersion(
        identifier=reader.text("identifier", 128),
        type_code=reader.text("type_code", 32),
        issuer_code=reader.text("issuer_code", 18),
        issuer_name=reader.text("issuer_name", 200),
        serial=reader.text("serial", 64),
        version=reader.integer("version"),
        certificate_number=reader.text("certificate_number", 128),
        name=reader.text("name", 200),
        catalogue_code=reader.text("catalogue_code", 32),
        catalogue_version=reader.integer("catalogue_version"),
        holder=Holder(holder.text("name", 200), id_type, holder.text("id_number", 64)),
        issue_date=issue_date,
        valid_from=valid_from,
        valid_until=reader.day("valid_until", optional=True),
        face=reader.get("face", Mapping),
        metadata=reader.get("metadata", Mapping),
        content_digest=reader.text("content_digest", 64),
        created_at=created_at,
        file=file,
    )


def parse_delivery(document: Mapping[str, Any]) -> Delivery:
    """Read one delivered item from its JSON form (:class:`DeliveryFormatError` naming the field)."""
    reader = _Reader(document, "")
    kind = reader.get("kind", str)
    source_id = reader.integer("source_id")
    if kind == DeliveryKind.CATALOGUE:
        return CatalogueDelivery(
            source_id=source_id,
            document=reader.get("document", Mapping),
            submitted_by=reader.text("submitted_by", 200, optional=True),
            reviewed_by=reader.text("reviewed_by", 200, optional=True),
            reviewed_at=reader.time("reviewed_at", optional=True),
            base_image=None
            if document.get("base_image") is None
            else _parse_file(reader.child("base_image")),
        )
    if kind != DeliveryKind.EVENT:
        raise DeliveryFormatError(f"kind: expected 'catalogue' or 'event', got {kind!r}")
    at = reader.time("at")
    assert at is not None
    version = None if document.get("version") is None else _parse_version(reader.child("version"))
    delivery = CertificateDelivery(
        source_id=source_id,
        identifier=reader.text("identifier", 128),
        action=reader.text("action", 16),
        from_status=reader.text("from_status", 16, optional=True),
        to_status=reader.text("to_status", 16),
        reason=reader.text("reason", 10_000),
        actor=reader.text("actor", 200),
        at=at,
        details=reader.get("details", Mapping, optional=True) or {},
        version=version,
    )
    if version is not None and version.identifier != delivery.identifier:
        raise DeliveryFormatError("version.identifier: differs from the event's identifier")
    return delivery


# --- results ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ItemResult:
    """What became of one delivered item."""

    kind: str
    source_id: int
    outcome: Outcome
    identifier: str | None = None
    reason: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "source_id": self.source_id,
            "outcome": self.outcome.value,
            "identifier": self.identifier,
            "reason": self.reason,
        }

    @classmethod
    def from_json(cls, document: Mapping[str, Any]) -> ItemResult:
        return cls(
            kind=str(document["kind"]),
            source_id=int(document["source_id"]),
            outcome=Outcome(document["outcome"]),
            identifier=document.get("identifier"),
            reason=document.get("reason"),
        )


# --- applying -----------------------------------------------------------------------------------------------


def _received(session: Session, sender: str, kind: DeliveryKind, source_id: int) -> UpwardReceivedRow | None:
    return session.scalars(
        select(UpwardReceivedRow).where(
            UpwardReceivedRow.sender == sender,
            UpwardReceivedRow.kind == kind.value,
            UpwardReceivedRow.source_id == source_id,
        )
    ).first()


def _claim(
    session: Session,
    repo: Repository,
    sender: str,
    kind: DeliveryKind,
    source_id: int,
    identifier: str | None,
) -> None:
    """Insert the dedupe row first: a concurrent delivery of the same item waits here and then fails on the
    unique key (IntegrityError), which the caller answers as ``already_applied``."""
    session.add(
        UpwardReceivedRow(
            sender=sender, kind=kind.value, source_id=source_id, identifier=identifier, received_at=repo.now()
        )
    )
    session.flush()


def _already(repo: Repository, sender: str, kind: DeliveryKind, source_id: int) -> ItemResult | None:
    with repo.db.session(readonly=True) as session:
        row = _received(session, sender, kind, source_id)
        if row is None:
            return None
        return ItemResult(kind.value, source_id, Outcome.ALREADY_APPLIED, row.identifier, "applied before")


def _signed_metadata(data: bytes) -> dict[str, str]:
    """The metadata the file carries under its signature (OFD CustomDatas; PDF Info of the signed revision)."""
    if data.startswith(b"%PDF-") or b"%PDF-" in data[:1024]:
        from certstore.verify.pdf import signed_metadata  # pyHanko: imported only for PDF files

        return signed_metadata(data)
    try:
        return dict(OfdReader.open(data).doc_info.custom_datas)
    except OfdFormatError:
        return {}


def _verify_file(version: DeliveredVersion, trust: TrustStore, max_file_bytes: int) -> None:
    """Refuse unless the file is intact, VALID under the province's trust store, and the delivered record's."""
    file = version.file
    assert file is not None
    if len(file.data) > max_file_bytes:
        raise _RefusedError(
            f"file of {len(file.data)} bytes exceeds the province's limit of {max_file_bytes}"
        )
    if sm3(file.data).hex() != file.sm3:
        raise _RefusedError("file corrupted in transit: its SM3 differs from the declared one")
    try:
        report = verify_file(file.data, trust=trust)
    except UnreadableFileError as exc:
        raise _RefusedError(f"unreadable certificate file: {exc}") from None
    if report.indication is not Indication.VALID:
        failed = [
            f"{signature.id}: {check.name}: {check.reason}"
            for signature in report.signatures
            for check in signature.checks
            if check.result.value in ("FAILED", "UNKNOWN")
        ]
        detail = "; ".join([*report.problems, *failed][:3]) or "no valid signature"
        raise _RefusedError(f"the file does not verify at the province ({report.indication.value}): {detail}")
    named = report.certificate.identifier if report.certificate else None
    if named != version.identifier:
        raise _RefusedError(f"the file is certificate {named}, not {version.identifier}")
    carried = _signed_metadata(file.data)
    differing = sorted(
        name
        for name, value in version.metadata.items()
        if carried.get(name) != (value if isinstance(value, str) else str(value))
    )
    if not carried or differing:
        raise _RefusedError(
            "the file's signed metadata differ from the delivered record: " + ", ".join(differing or ["all"])
        )


def _aggregated_sender(row: CertificateRow) -> str | None:
    """The sender a province row came from (its first event's ``details.upward.sender``); None: not aggregated."""
    first = row.events[0] if row.events else None
    upward = (first.details or {}).get("upward") if first is not None else None
    return upward.get("sender") if isinstance(upward, Mapping) else None


def _row_by_identifier(session: Session, identifier: str, *, lock: bool = False) -> CertificateRow | None:
    query = select(CertificateRow).where(CertificateRow.identifier == identifier)
    if lock:
        query = query.with_for_update()
    return session.scalars(query).first()


def _event_row(delivery: CertificateDelivery, sender: str) -> CertificateEventRow:
    return CertificateEventRow(
        action=delivery.action,
        from_status=delivery.from_status,
        to_status=delivery.to_status,
        reason=delivery.reason,
        actor=delivery.actor,
        at=delivery.at,
        details={**delivery.details, "upward": {"sender": sender, "event_id": delivery.source_id}},
    )


def _intake(
    session: Session,
    call: Call,
    delivery: Delivery,
    *,
    certificate: str | None = None,
    holder_digest: bytes | None = None,
    **details: Any,
) -> None:
    """The applied item's one audit entry, in its transaction."""
    if isinstance(delivery, CertificateDelivery):
        details = {"action": delivery.action, "to_status": delivery.to_status, **details}
    audit_in(session, call, call.event(
        INTAKE_ACTION, certificate=certificate, holder_digest=None if holder_digest is None else holder_ref(holder_digest),
        details={"sender": call.actor.organisation_code, "kind": delivery.kind.value, "source_id": delivery.source_id,
                 **details},
    ))  # fmt: skip


def _store_version(
    repo: Repository,
    call: Call,
    sender: str,
    delivery: CertificateDelivery,
    trust: TrustStore,
    max_file_bytes: int,
) -> ItemResult:
    version = delivery.version
    assert version is not None
    kind, identifier = DeliveryKind.EVENT, version.identifier
    try:
        holder_id = validate_holder_id(version.holder.id_type, version.holder.id_number)
    except ValueError as exc:
        raise _RefusedError(f"holder.id_number: {exc}") from None
    if version.file is not None:
        _verify_file(version, trust, max_file_bytes)
    # The blob before the row (a crash in between leaves an orphan blob, never a row without its file).
    blob: BlobRef | None = None
    if version.file is not None:
        blob = repo.blobs.put(version.file.data, media_type=version.file.media_type)
    with repo.db.session() as session:
        _claim(session, repo, sender, kind, delivery.source_id, identifier)
        existing = _row_by_identifier(session, identifier)
        if existing is not None:
            same = existing.content_digest == version.content_digest and existing.file_key == (
                blob.key if blob else None
            )
            if not same or _aggregated_sender(existing) != sender:
                raise _RefusedError(
                    f"{identifier} is already held at the province with other content or from another sender"
                )
            _intake(session, call, delivery, certificate=identifier, holder_digest=existing.holder_id_digest,
                    held=True)  # fmt: skip
            return ItemResult(
                kind.value, delivery.source_id, Outcome.APPLIED, identifier, "identical version held"
            )
        row = CertificateRow(
            identifier=identifier,
            type_code=version.type_code,
            issuer_code=version.issuer_code,
            issuer_name=version.issuer_name,
            serial=version.serial,
            version=version.version,
            certificate_number=version.certificate_number,
            name=version.name,
            catalogue_code=version.catalogue_code,
            catalogue_version=version.catalogue_version,
            holder_name=version.holder.name,
            holder_id_type=str(version.holder.id_type),
            holder_id=holder_id,
            holder_id_digest=holder_id_digest(repo.holder_key, version.holder.id_type, holder_id),
            issue_date=version.issue_date,
            valid_from=version.valid_from,
            valid_until=version.valid_until,
            face=dict(version.face),
            meta=dict(version.metadata),
            content_digest=version.content_digest,
            file_key=blob.key if blob else None,
            file_media_type=blob.media_type if blob else None,
            status=_status(delivery.to_status),
            status_changed_at=delivery.at,
            created_at=version.created_at,
        )
        row.events.append(_event_row(delivery, sender))
        session.add(row)
        session.flush()
        _intake(session, call, delivery, certificate=identifier, holder_digest=row.holder_id_digest)
    if blob is not None and version.file is not None and not repo.blobs.exists(blob.key):
        repo.blobs.put(version.file.data, media_type=blob.media_type)  # a concurrent orphan sweep took it
    return ItemResult(kind.value, delivery.source_id, Outcome.APPLIED, identifier)


def _status(value: str) -> str:
    try:
        status = Status(value)
    except ValueError:
        raise _RefusedError(f"to_status: unknown status {value!r}") from None
    if status is Status.EXPIRED:
        raise _RefusedError("to_status: 'expired' is computed, never stored")
    return status.value


def _store_event(repo: Repository, call: Call, sender: str, delivery: CertificateDelivery) -> ItemResult:
    kind, identifier = DeliveryKind.EVENT, delivery.identifier
    to_status = _status(delivery.to_status)
    with repo.db.session() as session:
        _claim(session, repo, sender, kind, delivery.source_id, identifier)
        row = _row_by_identifier(session, identifier, lock=True)
        if row is None:
            raise _RefusedError(
                f"{identifier} is not held at the province (its version was never delivered or refused)"
            )
        if _aggregated_sender(row) != sender:
            raise _RefusedError(f"{identifier} was not delivered by {sender}")
        if delivery.from_status is not None and row.status != delivery.from_status:
            log.warning(
                "aggregation: %s is %s at the province but %s at %s before event %s; the city's state wins",
                identifier, row.status, delivery.from_status, sender, delivery.source_id,
            )  # fmt: skip
        row.status = to_status
        row.status_changed_at = delivery.at
        successor = delivery.details.get("replaced_by")
        if isinstance(successor, str):
            new = _row_by_identifier(session, successor)
            if new is not None:
                row.superseded_by_id = new.id
        row.events.append(_event_row(delivery, sender))
        session.flush()
        _intake(session, call, delivery, certificate=identifier, holder_digest=row.holder_id_digest)
    return ItemResult(kind.value, delivery.source_id, Outcome.APPLIED, identifier)


def _store_catalogue(repo: Repository, call: Call, sender: str, delivery: CatalogueDelivery) -> ItemResult:
    kind = DeliveryKind.CATALOGUE
    try:
        entry = CatalogueEntry.from_document(dict(delivery.document), source="delivered catalogue entry")
    except CatalogueError as exc:
        raise _RefusedError(str(exc)) from None
    document = entry.to_document()
    label = f"{entry.code} v{entry.version}"
    with repo.db.session() as session:
        _claim(session, repo, sender, kind, delivery.source_id, label)
        _store_base_image(session, repo, entry, delivery, sender)
        existing = session.scalars(
            select(CatalogueEntryRow).where(
                CatalogueEntryRow.code == entry.code, CatalogueEntryRow.version == entry.version
            )
        ).first()
        if existing is not None:
            if existing.definition != document:
                raise _RefusedError(f"catalogue {label} is held at the province with a different definition")
            if existing.status != "approved":  # approved in the city: the province's copy follows
                existing.status = "approved"
                existing.reviewed_by = delivery.reviewed_by
                existing.reviewed_at = delivery.reviewed_at
                existing.review_note = f"approved in the city repository {sender}"
            _intake(session, call, delivery, catalogue=label, held=True)
            return ItemResult(kind.value, delivery.source_id, Outcome.APPLIED, label, "identical entry held")
        session.add(
            CatalogueEntryRow(
                code=entry.code,
                version=entry.version,
                name=entry.name,
                category=str(entry.category),
                issuer_code=entry.issuer.credit_code,
                holder_type=str(entry.holder_type),
                status="approved",
                definition=document,
                created_at=repo.now(),
                submitted_by=delivery.submitted_by,
                reviewed_by=delivery.reviewed_by,
                reviewed_at=delivery.reviewed_at,
                review_note=f"approved in the city repository {sender}",
            )
        )
        _intake(session, call, delivery, catalogue=label)
    return ItemResult(kind.value, delivery.source_id, Outcome.APPLIED, label)


def _store_base_image(
    session: Session, repo: Repository, entry: CatalogueEntry, delivery: CatalogueDelivery, sender: str
) -> None:
    """The uploaded base image an entry names (``asset:<SM3>``), stored with the entry in its transaction: the
    delivered bytes, when their SM3 is the named one and they pass the upload's checks
    (:func:`~certstore.services.catalogue_assets.check_image`); nothing to do when the province holds it."""
    digest = asset_digest(entry.base_image)
    if digest is None or get_asset(session, digest) is not None:
        return
    image = delivery.base_image
    if image is None:
        raise _RefusedError(
            f"the entry names the uploaded base image {entry.base_image}, which the province does not hold and "
            "the delivery does not carry"
        )
    if image.sm3 != digest or sm3(image.data).hex() != digest:
        raise _RefusedError(f"the delivered base image is not {entry.base_image} (its SM3 differs)")
    try:
        checked = check_image(image.data)
    except AssetError as exc:
        raise _RefusedError(f"the delivered base image {entry.base_image}: {exc}") from None
    add_asset(
        session, checked, image.data, issuer_code=entry.issuer.credit_code, uploaded_by=f"upward:{sender}",
        at=repo.now(),
    )  # fmt: skip


def _sender(call: Call) -> str:
    sender = call.actor.organisation_code
    if not sender:
        raise ValueError("a delivery is sent by an organisation: the call's actor names none")
    return sender


def apply_delivery(
    repo: Repository,
    call: Call,
    delivery: Delivery,
    *,
    trust: TrustStore,
    max_file_bytes: int = 20 * 1024 * 1024,
) -> ItemResult:
    """Apply one delivered item exactly once, for ``call``: its actor is the authenticated sender (the sending
    organisation's code is the sender), and an applied item records its audit entry with its effect.

    Returns ``applied``, ``already_applied`` or ``refused``; the province's own failures (database, blob store)
    raise, and nothing of the item is stored."""
    sender = _sender(call)
    kind, source_id = delivery.kind, delivery.source_id
    identifier = delivery.identifier if isinstance(delivery, CertificateDelivery) else None
    for _ in range(2):  # a unique-key race is decided on the second pass
        done = _already(repo, sender, kind, source_id)
        if done is not None:
            return done
        try:
            if isinstance(delivery, CatalogueDelivery):
                return _store_catalogue(repo, call, sender, delivery)
            if delivery.version is not None:
                return _store_version(repo, call, sender, delivery, trust, max_file_bytes)
            return _store_event(repo, call, sender, delivery)
        except _RefusedError as exc:
            log.warning("aggregation: refused %s %s of %s: %s", kind.value, source_id, sender, exc)
            return ItemResult(kind.value, source_id, Outcome.REFUSED, identifier, str(exc))
        except IntegrityError:
            continue  # a concurrent delivery of the same item (or version) committed first
    done = _already(repo, sender, kind, source_id)
    if done is not None:
        return done
    reason = f"{identifier or kind.value} conflicts with a record stored concurrently"
    return ItemResult(kind.value, source_id, Outcome.REFUSED, identifier, reason)


def apply_batch(
    repo: Repository,
    call: Call,
    items: Sequence[Mapping[str, Any]],
    *,
    trust: TrustStore,
    max_file_bytes: int = 20 * 1024 * 1024,
) -> list[ItemResult]:
    """Apply a delivered batch (JSON items, :func:`delivery_to_json`) in order, each item exactly once, for
    ``call`` (the sending principal; see :func:`apply_delivery`).

    One result per item, in order. A malformed item is refused on its own; when the province itself fails on
    an item, that item is ``failed`` and the rest ``not_processed`` (later events may depend on it)."""
    if len(items) > MAX_BATCH_ITEMS:
        raise ValueError(f"items: at most {MAX_BATCH_ITEMS} per batch")
    sender = _sender(call)
    results: list[ItemResult] = []
    failed = False
    for document in items:
        kind = str(document.get("kind", "?"))[:16] if isinstance(document, Mapping) else "?"
        raw_id = document.get("source_id") if isinstance(document, Mapping) else None
        source_id = raw_id if isinstance(raw_id, int) and not isinstance(raw_id, bool) else 0
        if failed:
            results.append(ItemResult(kind, source_id, Outcome.NOT_PROCESSED, None, "after a failed item"))
            continue
        try:
            delivery = parse_delivery(document)
        except DeliveryFormatError as exc:
            results.append(ItemResult(kind, source_id, Outcome.REFUSED, None, f"malformed item: {exc}"))
            continue
        try:
            results.append(apply_delivery(repo, call, delivery, trust=trust, max_file_bytes=max_file_bytes))
        except Exception as exc:  # the province's own failure: retry later, in order
            log.exception("aggregation: %s %s of %s failed", kind, source_id, sender)
            reason = f"the province failed: {type(exc).__name__}: {exc}"[:500]
            identifier = getattr(delivery, "identifier", None)
            results.append(ItemResult(kind, source_id, Outcome.FAILED, identifier, reason))
            failed = True
    return results
