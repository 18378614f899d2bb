"""Audit events (审计事件) and log entries: the record, its canonical encoding and its entry hash.

An :class:`AuditEvent` is what happened: who (principal, organisation, role), what (action, resource,
certificate identifier, holder reference, matter, grant), when (``at``), from where (client address, user agent)
and the outcome. Once chained it becomes an :class:`AuditEntry`: position ``seq``, the time it was chained
(``logged_at``), the previous entry's hash and its own ``entry_hash``::

    entry_hash = SM3(canonical_entry(seq, logged_at, prev_hash, event))

The canonical encoding is a JSON array in a fixed field order (UTF-8, no spaces, ``details`` as its own canonical
JSON text with sorted keys), prefixed by a version tag, so the hash is reproducible from the stored row by anyone
(``docs/audit.md`` spells it out). Personal ID numbers never enter an event: holders appear only as their keyed
reference (:func:`certstore.identifiers.holder_ref`).
"""

from __future__ import annotations

import itertools
import json
import math
import os
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from certstore.crypto.sm3 import sm3
from certstore.store.jsontext import compact_dumps
from certstore.store.models import AuditEventRow

__all__ = [
    "ENCODING_VERSION",
    "TAIL_FIELDS",
    "ZERO_HASH",
    "AuditEntry",
    "AuditEvent",
    "Outcome",
    "canonical_details",
    "canonical_entry",
    "canonical_tail",
    "compute_entry_hash",
    "entry_from_row",
    "entry_prefix",
    "event_from_payload",
    "event_from_tail",
    "event_to_payload",
    "format_time",
    "new_event_id",
    "outcome_text",
    "parse_time",
]

ENCODING_VERSION = "certstore.audit/1"
ZERO_HASH = bytes(32)

#: Column widths of ``audit_events``: longer values are cut (and marked) before hashing, never refused.
_LIMITS = {
    "request_id": 64,
    "principal": 200,
    "organisation_code": 32,
    "role": 16,
    "action": 100,
    "resource": 300,
    "matter": 100,
    "holder_digest": 64,
    "certificate_identifier": 128,
    "outcome": 8,
    "client": 100,
    "user_agent": 300,
    "reason": 4000,
}
_LIMIT_ITEMS = tuple(_LIMITS.items())
_MAX_GRANT = 2**63 - 1


_ID_PREFIX = os.urandom(8).hex()
_ID_COUNTER = itertools.count()


def _new_id_prefix() -> None:
    global _ID_PREFIX, _ID_COUNTER
    _ID_PREFIX, _ID_COUNTER = os.urandom(8).hex(), itertools.count()


os.register_at_fork(after_in_child=_new_id_prefix)


def new_event_id() -> str:
    """32 hex digits, unique: a random per-process prefix and a counter (no system call per event, which
    ``uuid4`` costs; a forked child draws a new prefix)."""
    return f"{_ID_PREFIX}{next(_ID_COUNTER):016x}"


class Outcome(StrEnum):
    ALLOW = "allow"  # the operation was permitted (it may still have failed on bad input: see status_code)
    DENY = "deny"  # refused by authentication or authorization
    ERROR = "error"  # the server failed


_dumps = compact_dumps(sort_keys=False)
_dumps_sorted = compact_dumps(sort_keys=True)


def format_time(value: datetime) -> str:
    """UTC, microseconds, ``Z``: the one time format of the canonical encoding and the exports
    (``%Y-%m-%dT%H:%M:%S.%fZ``; built from ``isoformat``, which is several times faster than ``strftime``). The
    text of the last time formatted is kept: a batch's events share one time object."""
    global _last_time
    last = _last_time
    if value is last[0]:  # datetimes are immutable: the same object, the same text
        return last[1]
    utc = value.astimezone(UTC)
    if utc.year < 1000:  # strftime does not pad the year to four digits, isoformat does: keep strftime's text
        text = utc.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    else:
        text = utc.isoformat(timespec="microseconds")[:-6] + "Z"  # "+00:00" → "Z"
    _last_time = (value, text)  # one tuple, replaced whole: safe across threads
    return text


_last_time: tuple[datetime | None, str] = (None, "")


def parse_time(value: str) -> datetime:
    """Inverse of :func:`format_time` (any ISO 8601 with offset is accepted)."""
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _clean_text(value: str) -> str:
    """No NUL (PostgreSQL text refuses it), no lone surrogates (not UTF-8)."""
    if "\x00" in value:
        value = value.replace("\x00", "\ufffd")
    if value.isascii():
        return value
    try:
        value.encode("utf-8")
        return value
    except UnicodeEncodeError:
        return value.encode("utf-8", "replace").decode("utf-8")


_JSON_SCALARS = frozenset({int, bool, type(None)})


def _json_safe(value: Any, depth: int = 0) -> Any:
    if depth > 20:
        return str(value)
    kind = value.__class__
    # Exact built-in types first (what details hold in practice), without the slower isinstance checks.
    if kind is str:
        return value if value.isascii() and "\x00" not in value else _clean_text(value)
    if kind in _JSON_SCALARS:
        return value
    if kind is float:
        return value if math.isfinite(value) else str(value)
    if kind is dict:
        return {
            (
                k if k.__class__ is str and k.isascii() and "\x00" not in k else _clean_text(str(k))
            ): _json_safe(v, depth + 1)
            for k, v in value.items()
        }
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, str):
        return _clean_text(value)
    if isinstance(value, Mapping):
        return {_clean_text(str(k)): _json_safe(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v, depth + 1) for v in value]
    if isinstance(value, datetime):
        return format_time(value) if value.tzinfo else value.isoformat()
    return _clean_text(str(value))


def outcome_text(outcome: Outcome | str) -> str:
    """The stored text of an outcome (a tampered row may hold any text: it is hashed as it is)."""
    return outcome.value if isinstance(outcome, Outcome) else str(outcome)


def canonical_details(details: Mapping[str, Any], *, safe: bool = False) -> str:
    """The ``details`` column: JSON with sorted keys, no spaces, non-ASCII kept (``safe``: already JSON-safe,
    as :meth:`AuditEvent.normalised` makes it)."""
    document = details if safe else _json_safe(dict(details))
    return _dumps_sorted(document)


@dataclass(frozen=True)
class AuditEvent:
    """One audited operation. ``principal`` is ``ORGCODE/name`` (None for anonymous calls); ``at`` is when it
    happened; ``holder_digest`` the holder's keyed reference, never an ID number; ``event_id`` is unique (random)."""

    at: datetime
    request_id: str
    action: str
    outcome: Outcome
    status_code: int
    principal: str | None = None
    organisation_code: str | None = None
    role: str | None = None
    resource: str | None = None
    matter: str | None = None
    holder_digest: str | None = None
    certificate_identifier: str | None = None
    grant_id: int | None = None
    reason: str | None = None
    client: str | None = None
    user_agent: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict, hash=False)
    event_id: str = field(default_factory=lambda: new_event_id())

    def normalised(self) -> AuditEvent:
        """The event as it will be stored: UTC time, strings cleaned and cut to their column, details JSON-safe
        (their canonical text computed once, when first asked: :attr:`details_text`). Normalising a normalised
        event returns it unchanged."""
        values = self.__dict__
        if values.get("_normalised"):
            return self
        changes: dict[str, Any] = {}
        for name, limit in _LIMIT_ITEMS:
            value = values[name]
            if value is None:
                continue
            if isinstance(value, str):
                if len(value) <= limit and value.isascii() and "\x00" not in value:
                    continue  # the common case: already clean and short enough
                cleaned = _clean_text(value)
                if len(cleaned) > limit:
                    cleaned = cleaned[: limit - 1] + "…"
                if cleaned is not value:
                    changes[name] = cleaned
            elif name != "outcome":
                changes[name] = _clean_text(str(value))[:limit]
        at = self.at if self.at.tzinfo else self.at.replace(tzinfo=UTC)
        at = changes["at"] = at.astimezone(UTC)
        grant = self.grant_id
        if grant is not None and not (isinstance(grant, int) and 0 <= grant <= _MAX_GRANT):
            changes["grant_id"] = None
        outcome = self.outcome
        changes["outcome"] = outcome if outcome.__class__ is Outcome else Outcome(outcome)
        status = self.status_code
        if status.__class__ is not int:
            changes["status_code"] = int(status)
        details = _json_safe(dict(self.details))
        changes["details"] = details
        if len(self.event_id) != 32:
            changes["event_id"] = uuid.uuid5(uuid.NAMESPACE_OID, self.event_id).hex
        copy = object.__new__(AuditEvent)
        copy.__dict__.update(values)
        copy.__dict__.update(changes)
        copy.__dict__["_normalised"] = True
        copy.__dict__["_occurred_text"] = format_time(at)
        return copy

    @property
    def details_text(self) -> str:
        """The canonical JSON text of ``details`` (as stored and hashed; computed once for a normalised event,
        when first asked: the write-ahead rows of a batch store the event's payload, not this text)."""
        values = self.__dict__
        cached = values.get("_details_text")
        if cached is not None:
            return cached
        if not values.get("_normalised"):
            return canonical_details(self.details)
        text = values["_details_text"] = canonical_details(self.details, safe=True)
        return text

    def to_dict(self) -> dict[str, Any]:
        return {
            "event_id": self.event_id,
            "occurred_at": self.__dict__.get("_occurred_text") or format_time(self.at),
            "request_id": self.request_id,
            "principal": self.principal,
            "organisation_code": self.organisation_code,
            "role": self.role,
            "action": self.action,
            "resource": self.resource,
            "matter": self.matter,
            "holder_digest": self.holder_digest,
            "certificate_identifier": self.certificate_identifier,
            "grant_id": self.grant_id,
            "outcome": outcome_text(self.outcome),
            "status_code": self.status_code,
            "reason": self.reason,
            "client": self.client,
            "user_agent": self.user_agent,
            "details": dict(self.details),
        }


_PAYLOAD_FIELDS = tuple(f.name for f in fields(AuditEvent) if f.name != "at")


def event_to_payload(event: AuditEvent) -> str:
    """The event as one line of JSON (version 1): the ``audit_pending`` format (and the spool's before
    spool format 2)."""
    # json.dumps(document, ensure_ascii=False, separators=(",", ":")), the encoder built once
    return _dumps({"v": 1, **event.to_dict()})


def event_from_payload(payload: str | bytes) -> AuditEvent:
    """Inverse of :func:`event_to_payload`."""
    document = json.loads(payload)
    if document.get("v") != 1:
        raise ValueError(f"unknown audit payload version {document.get('v')!r}")
    values = {name: document.get(name) for name in _PAYLOAD_FIELDS}
    values["details"] = values["details"] or {}
    values["outcome"] = Outcome(values["outcome"])
    return AuditEvent(at=parse_time(document["occurred_at"]), **values)


def canonical_tail(event: AuditEvent, details: str | None = None) -> bytes:
    """The canonical encoding from ``occurred_at`` on — the event's own 18 fields, ``details`` last, comma-separated,
    without brackets: ``canonical_entry(...) == b'["certstore.audit/1",' + seq, logged_at, prev_hash + b"," +
    canonical_tail(...) + b"]"`` (JSON arrays join their elements' encodings with commas). It depends on the event
    alone, so it is computed once per event (cached on a normalised event), outside the chain head's lock, and
    is what the spool stores. ``details`` defaults to the event's canonical details text."""
    cached_details = event.details_text if event.__dict__.get("_normalised") else None
    if details is None:
        details = cached_details if cached_details is not None else canonical_details(event.details)
    elif details != cached_details:
        cached_details = None  # another text than the event's own (a stored row being re-checked)
    if cached_details is not None:
        tail = event.__dict__.get("_tail")
        if tail is not None:
            return tail
    occurred = event.__dict__.get("_occurred_text") or format_time(event.at)
    tail = _dumps(
        [
            occurred,
            event.event_id,
            event.request_id,
            event.principal,
            event.organisation_code,
            event.role,
            event.action,
            event.resource,
            event.matter,
            event.holder_digest,
            event.certificate_identifier,
            event.grant_id,
            outcome_text(event.outcome),
            event.status_code,
            event.reason,
            event.client,
            event.user_agent,
            details,
        ]
    )[1:-1].encode("utf-8")
    if cached_details is not None:
        event.__dict__["_tail"] = tail
    return tail


#: The fields of :func:`canonical_tail` between ``occurred_at`` and ``details``, in order.
TAIL_FIELDS = (
    "event_id",
    "request_id",
    "principal",
    "organisation_code",
    "role",
    "action",
    "resource",
    "matter",
    "holder_digest",
    "certificate_identifier",
    "grant_id",
    "outcome",
    "status_code",
    "reason",
    "client",
    "user_agent",
)


def event_from_tail(values: Sequence[Any]) -> AuditEvent:
    """The event whose :func:`canonical_tail` is ``values`` (the decoded JSON elements): inverse of the tail."""
    if len(values) != len(TAIL_FIELDS) + 2:
        raise ValueError(f"a canonical tail has {len(TAIL_FIELDS) + 2} elements, not {len(values)}")
    occurred, *middle, details_text = values
    document = dict(zip(TAIL_FIELDS, middle, strict=True))
    document["outcome"] = Outcome(document["outcome"])
    details = json.loads(details_text)
    if not isinstance(details, dict):
        raise ValueError("details must be a JSON object")
    return AuditEvent(at=parse_time(occurred), details=details, **document)


def entry_prefix(seq: int, logged_text: str, prev_hash_hex: str) -> bytes:
    """The canonical encoding up to the event's fields: ``["certstore.audit/1",seq,"logged_at","prev_hash",``
    (``logged_text`` from :func:`format_time`, ``prev_hash_hex`` lower-case hex: neither needs JSON escaping)."""
    return b'["%s",%d,"%s","%s",' % (
        ENCODING_VERSION.encode(),
        seq,
        logged_text.encode("ascii"),
        prev_hash_hex.encode("ascii"),
    )


def canonical_entry(
    seq: int, logged_at: datetime | str, prev_hash: bytes, event: AuditEvent, details: str
) -> bytes:
    """The bytes an entry hash covers (``details`` is the stored canonical text; ``logged_at`` may be given
    already formatted by :func:`format_time`): the UTF-8 JSON array of ``docs/audit.md``."""
    head = _dumps(
        [
            ENCODING_VERSION,
            seq,
            logged_at if isinstance(logged_at, str) else format_time(logged_at),
            prev_hash.hex(),
        ]
    )
    return head[:-1].encode("utf-8") + b"," + canonical_tail(event, details) + b"]"


def compute_entry_hash(
    seq: int, logged_at: datetime | str, prev_hash: bytes, event: AuditEvent, details: str
) -> bytes:
    return sm3(canonical_entry(seq, logged_at, prev_hash, event, details))


@dataclass(frozen=True)
class AuditEntry:
    """A chained event: its position, when it was chained, the previous entry's hash and its own."""

    seq: int
    logged_at: datetime
    prev_hash: bytes
    entry_hash: bytes
    event: AuditEvent
    details_text: str

    def computed_hash(self) -> bytes:
        """The entry hash recomputed from the fields (differs from ``entry_hash`` when a field was changed)."""
        return compute_entry_hash(self.seq, self.logged_at, self.prev_hash, self.event, self.details_text)

    def to_dict(self) -> dict[str, Any]:
        """Every field, hashes in hex: one line of an export, verifiable on its own."""
        document = self.event.to_dict()
        document["details"] = dict(self.event.details)
        return {
            "seq": self.seq,
            "logged_at": format_time(self.logged_at),
            **document,
            "prev_hash": self.prev_hash.hex(),
            "entry_hash": self.entry_hash.hex(),
        }

    def to_record(self) -> dict[str, Any]:
        """The exact stored form (``details`` as its canonical text): what exports and archives carry."""
        document = self.to_dict()
        document["details"] = self.details_text
        return document

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> AuditEntry:
        """Inverse of :meth:`to_record` (``ValueError``/``KeyError`` on malformed input)."""
        details_text = record["details"]
        if not isinstance(details_text, str):
            raise ValueError("details must be the canonical JSON text")
        values = {name: record.get(name) for name in _PAYLOAD_FIELDS}
        values["details"] = json.loads(details_text)
        outcome = values["outcome"]
        values["outcome"] = Outcome(outcome) if outcome in Outcome._value2member_map_ else str(outcome)
        event = AuditEvent(at=parse_time(record["occurred_at"]), **values)
        return cls(
            seq=int(record["seq"]),
            logged_at=parse_time(record["logged_at"]),
            prev_hash=bytes.fromhex(record["prev_hash"]),
            entry_hash=bytes.fromhex(record["entry_hash"]),
            event=event,
            details_text=details_text,
        )


def entry_from_row(row: AuditEventRow | Any) -> AuditEntry:
    """An entry from an ``audit_events`` row (ORM object or Core row with the same attribute names)."""
    details_text = row.details
    try:
        details = json.loads(details_text)
    except (TypeError, ValueError):
        details = {"_unparseable": str(details_text)[:200]}
    event = AuditEvent(
        at=row.occurred_at,
        request_id=row.request_id,
        action=row.action,
        outcome=Outcome(row.outcome) if row.outcome in Outcome._value2member_map_ else row.outcome,
        status_code=row.status_code,
        principal=row.principal,
        organisation_code=row.organisation_code,
        role=row.role,
        resource=row.resource,
        matter=row.matter,
        holder_digest=row.holder_digest,
        certificate_identifier=row.certificate_identifier,
        grant_id=row.grant_id,
        reason=row.reason,
        client=row.client,
        user_agent=row.user_agent,
        details=details if isinstance(details, dict) else {"_value": details},
        event_id=row.event_id,
    )
    return AuditEntry(
        seq=row.seq,
        logged_at=row.at,
        prev_hash=bytes(row.prev_hash),
        entry_hash=bytes(row.entry_hash),
        event=event,
        details_text=details_text if isinstance(details_text, str) else str(details_text),
    )
