"""Certificate records (电子证照数据): what an agency pushes, and what the repository keeps per version.

Pure domain logic, no I/O: :func:`prepare_version` validates a :class:`CertificateDraft` against its catalogue
entry (face schema, number format, the holder's ID type against the type's holder type, holder ID check
digits), derives the identifier, the validity and the GB/T 36903-style metadata (the holder's ID number
included, ``CZZTDM``), and computes the content digest that makes repeated pushes idempotent. The service layer
(``certstore.services.certificates``) persists the result.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from certstore.catalogue import CatalogueEntry, HolderType, example_face
from certstore.crypto.sm3 import sm3_hex
from certstore.identifiers import (
    CertificateIdentifier,
    HolderIdType,
    holder_id_digest,
    holder_ref,
    serial_for,
    validate_holder_id,
)
from certstore.lifecycle import Status, effective_status

__all__ = [
    "Certificate",
    "CertificateDraft",
    "CertificateEvent",
    "Holder",
    "PreparedVersion",
    "RecordError",
    "content_digest",
    "draft_from_json",
    "draft_to_json",
    "example_draft",
    "prepare_version",
]


class RecordError(ValueError):
    """A draft that cannot become a certificate. ``problems`` lists (field path, message) pairs."""

    def __init__(self, message: str, problems: list[tuple[str, str]] | None = None) -> None:
        super().__init__(message)
        self.problems = problems or []


@dataclass(frozen=True)
class Holder:
    """持证主体: name, ID type (GB/T 36903 code) and ID number."""

    name: str
    id_type: HolderIdType
    id_number: str


@dataclass(frozen=True)
class CertificateDraft:
    """What an issuing agency submits for one certificate (one version).

    ``valid_until`` overrides the catalogue's validity rule only when the rule says the end date comes from a
    face field or when the catalogue allows it; ``file`` is the already-made certificate file, if any."""

    catalogue_code: str
    certificate_number: str
    holder: Holder
    face: Mapping[str, Any]
    issue_date: date
    valid_from: date | None = None
    valid_until: date | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class PreparedVersion:
    """A validated version, ready to store."""

    identifier: CertificateIdentifier
    entry: CatalogueEntry
    draft: CertificateDraft
    holder_id: str  # normalised
    holder_digest: bytes
    valid_from: date
    valid_until: date | None
    face: dict[str, Any]
    metadata: dict[str, Any]
    digest: str

    @property
    def holder_ref(self) -> str:
        return holder_ref(self.holder_digest)


@dataclass(frozen=True)
class CertificateEvent:
    """One entry of a version's change record (证照变更记录): what happened (签发, 变更, 延续, 挂起 …), the reason,
    who (``actor``: the :attr:`~certstore.access.Actor.ref`, ``ORGCODE/name`` for an agency's staff or system)
    and when."""

    action: str
    from_status: str | None
    to_status: str
    reason: str
    actor: str
    at: datetime
    details: Mapping[str, Any] = field(default_factory=dict)

    @property
    def organisation_code(self) -> str | None:
        """The organisation that acted (机构): the code of an ``ORGCODE/name`` actor; None for the operator at the
        command line (``operator:…``) or another actor without an organisation."""
        head, slash, _ = self.actor.partition("/")
        return head if slash and ":" not in head else None


@dataclass(frozen=True)
class Certificate:
    """One stored certificate version as readers see it (never an ORM object)."""

    identifier: str
    version: int
    serial: str
    certificate_number: str
    name: str
    catalogue_code: str
    catalogue_version: int
    issuer_code: str
    issuer_name: str
    holder: Holder
    holder_ref: str
    issue_date: date
    valid_from: date
    valid_until: date | None
    face: Mapping[str, Any]
    metadata: Mapping[str, Any]
    stored_status: Status
    status_changed_at: datetime
    file_key: str | None
    file_media_type: str | None
    superseded_by: str | None
    created_at: datetime
    events: tuple[CertificateEvent, ...] = ()

    def status_at(self, at: datetime) -> Status:
        """The status a reader sees at ``at`` (expiry computed, never stored)."""
        return effective_status(self.stored_status, self.valid_until, at)


def _face_path(json_path: str) -> str:
    """``$.field`` (a JSON path inside the face) → ``face.field`` (a path inside the draft)."""
    return "face" + json_path[1:] if json_path.startswith("$") else f"face.{json_path}"


def _canonical(value: Any) -> Any:
    """``value`` with dates and times in ISO 8601 and every mapping a dict with string keys (JSON data)."""
    if isinstance(value, date | datetime):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): _canonical(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_canonical(v) for v in value]
    return value


def _json_default(value: Any) -> Any:
    """The values JSON has no form for, as :func:`content_digest` writes them: dates and times in ISO 8601,
    other mappings as objects (string keys)."""
    if isinstance(value, date | datetime):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): v for k, v in value.items()}
    raise TypeError(f"{type(value).__name__} has no canonical JSON form")


def content_digest(content: Mapping[str, Any]) -> str:
    """SM3 hex of the canonical JSON (sorted keys, UTF-8, no spaces) of ``content``: dates and times in ISO 8601,
    tuples as arrays, every mapping as an object. The keys are strings (the content is JSON data: faces and
    metadata come from JSON documents). The stored digests depend on these exact bytes
    (``tests/test_records.py`` holds a vector)."""
    canonical = json.dumps(
        content, ensure_ascii=False, sort_keys=True, separators=(",", ":"), default=_json_default
    )
    return sm3_hex(canonical.encode())


def prepare_version(
    entry: CatalogueEntry,
    draft: CertificateDraft,
    *,
    version: int,
    holder_key: bytes,
    serial_key: bytes,
    serial: str | None = None,
    file_key: str | None = None,
) -> PreparedVersion:
    """Validate ``draft`` against ``entry`` and derive everything stored for version ``version``.

    The identifier's serial (流水号) is ``serial`` when given — the stored serial of the certificate's earlier
    versions, which a new version keeps (certificates issued before the serial key was introduced keep their
    unkeyed one) — else the keyed :func:`~certstore.identifiers.serial_for` of issuer and number.

    Raises :class:`RecordError` listing every problem found (not just the first)."""
    problems: list[tuple[str, str]] = []
    if draft.catalogue_code != entry.code:
        problems.append(("catalogue_code", f"draft is for {draft.catalogue_code}, entry is {entry.code}"))
    try:
        entry.check_number(draft.certificate_number)
    except ValueError as exc:
        problems.append(("certificate_number", str(exc)))
    try:
        face = entry.validate_face(dict(draft.face))
    except ValueError as exc:
        face = dict(draft.face)
        errors = getattr(exc, "errors", None) or [("$", str(exc))]
        problems.extend((_face_path(path), message) for path, message in errors)
    holder_type_problem = entry.holder_type.id_type_problem(draft.holder.id_type)
    if holder_type_problem is not None:  # 证照主体: the type decides whose certificate it can be
        problems.append(("holder.id_type", holder_type_problem))
    try:
        holder_id = validate_holder_id(draft.holder.id_type, draft.holder.id_number)
    except ValueError as exc:
        holder_id = draft.holder.id_number
        problems.append(("holder.id_number", str(exc)))
    if not draft.holder.name.strip():
        problems.append(("holder.name", "the holder's name is empty"))
    valid_from = draft.valid_from or draft.issue_date
    try:
        valid_until = draft.valid_until or entry.validity_until(valid_from, face)
    except ValueError as exc:
        valid_until = None
        problems.append(("valid_until", str(exc)))
    if valid_until is not None and valid_until < valid_from:
        problems.append(("valid_until", f"{valid_until} is before the start of validity {valid_from}"))
    if problems:
        summary = "; ".join(f"{path}: {message}" for path, message in problems)
        raise RecordError(f"certificate {draft.certificate_number!r} is invalid: {summary}", problems)

    identifier = CertificateIdentifier.build(
        entry.code,
        entry.issuer.credit_code,
        serial or serial_for(entry.issuer.credit_code, draft.certificate_number, key=serial_key),
        version,
    )
    digest = holder_id_digest(holder_key, draft.holder.id_type, holder_id)
    metadata = {
        # GB/T 36903-style elements (names as used by public implementations; see docs/glossary.md)
        "ZZBS": str(identifier),  # 证照标识
        "ZZMC": entry.name,  # 证照名称
        "ZZLXDM": entry.code,  # 证照类型代码
        "ZZBH": draft.certificate_number,  # 证照编号
        "ZZBFJG": entry.issuer.name,  # 证照颁发机构
        "ZZBFJGDM": entry.issuer.credit_code,  # 证照颁发机构代码
        "ZZBFRQ": draft.issue_date.isoformat(),  # 证照颁发日期
        "ZZYXQQSRQ": valid_from.isoformat(),  # 证照有效期起始日期
        "ZZYXQJZRQ": valid_until.isoformat() if valid_until else "长期",  # 证照有效期截止日期
        "CZZT": draft.holder.name,  # 持证主体
        "CZZTDM": holder_id,  # 持证主体代码 (规范§二(二); normalised)
        "CZZTDMLXDM": str(draft.holder.id_type),  # 持证主体代码类型代码
        **{f"KZ_{k}": v for k, v in draft.metadata.items()},  # extensions
    }
    content = {
        "catalogue": [entry.code, entry.version],
        "number": draft.certificate_number,
        "version": version,
        "holder": [draft.holder.name, str(draft.holder.id_type), holder_id],
        "face": face,
        "issue_date": draft.issue_date,
        "valid": [valid_from, valid_until],
        "metadata": dict(draft.metadata),
        "file": file_key,
    }
    return PreparedVersion(
        identifier=identifier,
        entry=entry,
        draft=draft,
        holder_id=holder_id,
        holder_digest=digest,
        valid_from=valid_from,
        valid_until=valid_until,
        face=face,
        metadata=metadata,
        digest=content_digest(content),
    )


# --- the DATA.json form of a draft (CLI ``certstore issue --data``, the generation API, bulk import) ---------

_DRAFT_KEYS = {"catalogue", "certificate_number", "holder", "face", "issue_date", "valid_from", "valid_until",
               "metadata"}  # fmt: skip


def _parse_date(value: object, path: str, problems: list[tuple[str, str]]) -> date | None:
    if value is None:
        return None
    if isinstance(value, str):
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass
    problems.append((path, f"expected a date YYYY-MM-DD, got {value!r}"))
    return None


def _nul_paths(value: Any, path: str) -> list[str]:
    """Paths of strings (keys included) holding a NUL character, which no database column can store. The JSON
    text (where a NUL is always the escape ``\\u0000``) is looked through first: the walk that names the paths
    runs only when it may find one."""
    try:
        if "\\u0000" not in json.dumps(value, ensure_ascii=False, default=_nul_default):
            return []
    except (TypeError, ValueError, RecursionError):  # keys JSON cannot hold, a cycle, too deep: walk
        pass
    return _nul_walk(value, path)


def _nul_default(value: Any) -> Any:
    return dict(value) if isinstance(value, Mapping) else None  # the walk looks at nothing else either


def _nul_walk(value: Any, path: str) -> list[str]:
    if isinstance(value, str):
        return [path or "$"] if "\x00" in value else []
    found: list[str] = []
    if isinstance(value, Mapping):
        for key, item in value.items():
            child = f"{path}.{key}" if path else str(key)
            if isinstance(key, str) and "\x00" in key:
                found.append(child)
            found.extend(_nul_walk(item, child))
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            found.extend(_nul_walk(item, f"{path}[{index}]"))
    return found


def draft_from_json(document: Mapping[str, Any]) -> CertificateDraft:
    """Read a draft from its JSON form; every structural problem is reported, with its path."""
    problems: list[tuple[str, str]] = []
    if not isinstance(document, Mapping):
        raise RecordError("certificate data must be a JSON object", [("$", "not an object")])
    problems.extend((path, "NUL characters are not allowed") for path in _nul_paths(document, ""))
    problems.extend((key, "unknown field") for key in sorted(set(document) - _DRAFT_KEYS))
    for key in ("catalogue", "certificate_number"):
        if not isinstance(document.get(key), str) or not document[key].strip():
            problems.append((key, "required: a non-empty string"))
    holder = document.get("holder")
    holder_value = None
    if not isinstance(holder, Mapping):
        problems.append(("holder", "required: an object with name, id_type and id_number"))
    else:
        try:
            id_type = HolderIdType(str(holder.get("id_type", "")))
        except ValueError:
            id_type = None
            allowed = ", ".join(f"{t.value} ({t.name.lower()})" for t in HolderIdType)
            problems.append(("holder.id_type", f"one of {allowed}"))
        for key in ("name", "id_number"):
            if not isinstance(holder.get(key), str):
                problems.append((f"holder.{key}", "required: a string"))
        if (
            id_type is not None
            and isinstance(holder.get("name"), str)
            and isinstance(holder.get("id_number"), str)
        ):
            holder_value = Holder(holder["name"], id_type, holder["id_number"])
    face = document.get("face")
    if not isinstance(face, Mapping):
        problems.append(("face", "required: an object of face fields"))
    metadata = document.get("metadata", {})
    if not isinstance(metadata, Mapping):
        problems.append(("metadata", "must be an object"))
    issue_date = _parse_date(document.get("issue_date"), "issue_date", problems)
    if "issue_date" not in document:
        problems.append(("issue_date", "required"))
    valid_from = _parse_date(document.get("valid_from"), "valid_from", problems)
    valid_until = _parse_date(document.get("valid_until"), "valid_until", problems)
    if problems or holder_value is None or issue_date is None or not isinstance(face, Mapping):
        summary = "; ".join(f"{path}: {message}" for path, message in problems)
        raise RecordError(f"certificate data is malformed: {summary}", problems)
    return CertificateDraft(
        catalogue_code=document["catalogue"],
        certificate_number=document["certificate_number"],
        holder=holder_value,
        face=dict(face),
        issue_date=issue_date,
        valid_from=valid_from,
        valid_until=valid_until,
        metadata=dict(metadata),
    )


def submission_schema(entry: CatalogueEntry) -> dict[str, Any]:
    """JSON Schema of the JSON form :func:`draft_from_json` reads, for one catalogue type (face fields from the
    catalogue's face schema) — what an agency's form or CSV template is built from."""
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": f"{entry.name} — 证照数据",
        "type": "object",
        "required": ["catalogue", "certificate_number", "holder", "issue_date", "face"],
        "properties": {
            "catalogue": {"const": entry.code},
            "certificate_number": {
                "type": "string",
                "pattern": entry.number_format.pattern,
                "examples": [entry.number_format.example],
            },
            "holder": {
                "type": "object",
                "required": ["name", "id_type", "id_number"],
                "properties": {
                    "name": {"type": "string"},
                    "id_type": {
                        "enum": [t.value for t in entry.holder_type.id_types],
                        "description": f"持证主体代码类型: a {entry.holder_type.label} holder's ID type",
                    },
                    "id_number": {"type": "string"},
                },
            },
            "issue_date": {"type": "string", "format": "date"},
            "valid_from": {"type": "string", "format": "date"},
            "valid_until": {"type": "string", "format": "date"},
            "face": entry.face_schema,
            "metadata": {"type": "object"},
        },
    }


def draft_to_json(draft: CertificateDraft) -> dict[str, Any]:
    document: dict[str, Any] = {
        "catalogue": draft.catalogue_code,
        "certificate_number": draft.certificate_number,
        "holder": {
            "name": draft.holder.name,
            "id_type": str(draft.holder.id_type),
            "id_number": draft.holder.id_number,
        },
        "issue_date": draft.issue_date.isoformat(),
        "face": _canonical(dict(draft.face)),
    }
    if draft.valid_from:
        document["valid_from"] = draft.valid_from.isoformat()
    if draft.valid_until:
        document["valid_until"] = draft.valid_until.isoformat()
    if draft.metadata:
        document["metadata"] = _canonical(dict(draft.metadata))
    return document


#: Fictional sample holders for examples (the resident ID is the GB 11643-1999 example number).
EXAMPLE_HOLDERS = {
    HolderType.NATURAL_PERSON: Holder("张三", HolderIdType.RESIDENT_ID, "11010519491231002X"),
    HolderType.LEGAL_PERSON: Holder("郑州示例置业有限公司", HolderIdType.CREDIT_CODE, "91410100MA44A1B2XW"),
    HolderType.OTHER: Holder("郑州市示例业主委员会", HolderIdType.CREDIT_CODE, "91410100MA44A1B2XW"),
}


def example_draft(entry: CatalogueEntry, *, issue_date: date | None = None) -> CertificateDraft:
    """A valid draft for ``entry`` with fictional sample data (``certstore catalogue example CODE``)."""
    return CertificateDraft(
        catalogue_code=entry.code,
        certificate_number=entry.number_example,
        holder=EXAMPLE_HOLDERS[entry.holder_type],
        face=example_face(entry),
        issue_date=issue_date or date.today(),
    )
