"""The catalogue entry (电子证照目录): one certificate type in one version, with its face schema (照面).

A catalogue entry carries what 《郑州市电子证照管理实施暂行办法》 第九条 and 建设规范 二(一) list: name (证照名称),
category (证照类别: 证照 or 批文), number format (证照编号格式), validity (有效期限), issuing agency (颁证单位),
providing unit (提供单位), holder subject type (证照主体), level (证照级别), base image (证照底图) and bound seal
(证照签章) — plus the JSON Schema of the face fields. Documents are validated against
``schemas/catalogue-entry.schema.json``; every error names its JSON path.

Entries are versioned: a certificate records the (code, version) it was issued under, so a later catalogue
version never changes how an existing certificate is read.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from enum import StrEnum
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from certstore.identifiers import (
    HOLDER_ID_TYPE_LABELS,
    HolderIdError,
    HolderIdType,
    validate_credit_code,
    validate_resident_id,
)

if TYPE_CHECKING:  # jsonschema is imported when the first entry is made: ``certstore verify`` makes none
    from jsonschema import Draft202012Validator, FormatChecker, ValidationError

__all__ = [
    "PERMANENT",
    "CatalogueEntry",
    "CatalogueError",
    "Category",
    "CertificateNumberError",
    "FaceDataError",
    "FaceField",
    "HolderType",
    "InspectionFailure",
    "Issuer",
    "Level",
    "NumberFormat",
    "ValidityKind",
    "ValidityRule",
    "schemas_dir",
]

#: The face value meaning "no end date" (长期) in ``date-or-permanent`` fields.
PERMANENT = "长期"

Problems = list[tuple[str, str]]


class CatalogueError(ValueError):
    """An invalid catalogue entry document. :attr:`errors` lists (JSON path, message) pairs, all of them."""

    def __init__(self, errors: Problems, *, source: str = "catalogue entry") -> None:
        self.errors = list(errors)
        self.source = source
        lines = "\n".join(f"  {path}: {message}" for path, message in self.errors)
        super().__init__(f"{source} is invalid ({len(self.errors)} problem(s)):\n{lines}")


class FaceDataError(ValueError):
    """Face data (照面数据) that does not satisfy the entry's face schema. :attr:`errors` lists every problem
    as (JSON path, message), ordered by the face layout."""

    def __init__(self, errors: Problems) -> None:
        self.errors = list(errors)
        super().__init__(
            "invalid face data: " + "; ".join(f"{path}: {message}" for path, message in self.errors)
        )


class CertificateNumberError(ValueError):
    """A certificate number (证照编号) that does not match the entry's number format."""


class Category(StrEnum):
    """证照类别."""

    LICENCE = "licence"  # 证照 (证件、执照、许可证)
    APPROVAL = "approval"  # 批文

    @property
    def label(self) -> str:
        return {"licence": "证照", "approval": "批文"}[self.value]


class HolderType(StrEnum):
    """证照持有主体类型."""

    NATURAL_PERSON = "natural_person"  # 自然人
    LEGAL_PERSON = "legal_person"  # 法人
    OTHER = "other"  # 其他组织

    @property
    def label(self) -> str:
        return {"natural_person": "自然人", "legal_person": "法人", "other": "其他组织"}[self.value]

    @property
    def id_types(self) -> tuple[HolderIdType, ...]:
        """The holder ID types (持证主体代码类型) a certificate of this holder type may name: 法人 a 统一社会信用代码;
        自然人 a 公民身份号码 or the person IDs of docs/holders.md (护照, 来往通行证, 永久居留身份证); 其他组织 a
        统一社会信用代码 or, for an organisation that has none, 其他 (999)."""
        return _HOLDER_ID_TYPES[self]

    def id_type_problem(self, id_type: HolderIdType | str) -> str | None:
        """Why a holder with ID type ``id_type`` cannot hold a certificate of this holder type, or None."""
        if id_type in self.id_types:
            return None
        named = HOLDER_ID_TYPE_LABELS.get(str(id_type), str(id_type))
        allowed = "、".join(f"{HOLDER_ID_TYPE_LABELS[t.value]} ({t.value})" for t in self.id_types)
        return (
            f"a {named} ({id_type}) holder cannot hold a certificate whose holder is a {self.value} "
            f"({self.label}): allowed ID types are {allowed}"
        )


_HOLDER_ID_TYPES: dict[HolderType, tuple[HolderIdType, ...]] = {
    HolderType.NATURAL_PERSON: (
        HolderIdType.RESIDENT_ID,
        HolderIdType.PASSPORT,
        HolderIdType.TAIWAN_PERMIT,
        HolderIdType.HK_MACAO_PERMIT,
        HolderIdType.FOREIGN_PERMANENT_RESIDENCE,
    ),
    HolderType.LEGAL_PERSON: (HolderIdType.CREDIT_CODE,),
    HolderType.OTHER: (HolderIdType.CREDIT_CODE, HolderIdType.OTHER),
}


class Level(StrEnum):
    """证照级别."""

    NATIONAL = "national"
    PROVINCIAL = "provincial"
    CITY = "city"
    COUNTY = "county"

    @property
    def label(self) -> str:
        return {"national": "国家级", "provincial": "省级", "city": "市级", "county": "县级"}[self.value]


class InspectionFailure(StrEnum):
    """What a failed annual inspection (年检不合格) does to a certificate of the type (``inspection.on_failure``)."""

    NONE = "none"  # recorded only
    SUSPEND = "suspend"  # 挂起 until a passed inspection of a later year resumes (恢复) it

    @property
    def label(self) -> str:
        return {"none": "仅记录", "suspend": "挂起至年检合格"}[self.value]


class ValidityKind(StrEnum):
    FIXED = "fixed"  # N years from the issue date
    PERMANENT = "permanent"  # 长期有效
    FIELD = "field"  # end date given in a face field


@dataclass(frozen=True)
class Issuer:
    """颁证单位: name and unified social credit code."""

    name: str
    credit_code: str


@dataclass(frozen=True)
class NumberFormat:
    """证照编号格式: ``pattern`` must match the whole number; ``example`` is shown to users."""

    pattern: str
    example: str
    description: str | None = None

    def matches(self, number: str) -> bool:
        return re.fullmatch(self.pattern, number) is not None


@dataclass(frozen=True)
class ValidityRule:
    """有效期限 rule: ``fixed`` (``years``), ``permanent``, or ``field`` (``field`` holds the end date)."""

    kind: ValidityKind
    years: int | None = None
    field: str | None = None
    description: str | None = None


@dataclass(frozen=True)
class FaceField:
    """One face field in layout order: key, title (名称), label printed on the face, order, unit."""

    name: str
    title: str
    label: str
    order: int
    required: bool
    type: str
    unit: str | None = None
    multiline: bool = False


# --- schema files ----------------------------------------------------------------------------------------


def schemas_dir() -> Path:
    """The repository's ``schemas/`` folder (JSON Schemas and shipped catalogue definitions).

    The project is installed editable, so the folder sits two levels above this package. A non-editable
    install does not carry it (see docs/catalogue.md); that fails here with a clear message.
    """
    path = Path(__file__).resolve().parents[2] / "schemas"
    if not (path / "catalogue-entry.schema.json").is_file():
        raise FileNotFoundError(
            f"certstore's JSON Schemas were not found at {path}: certstore reads them from the source tree's "
            "schemas/ folder, so install it editable (pip install -e .) from a checkout"
        )
    return path


def _is_uscc(value: object) -> bool:
    if not isinstance(value, str):
        return True
    try:
        validate_credit_code(value)
    except HolderIdError:
        return False
    return True


def _is_resident_id(value: object) -> bool:
    if not isinstance(value, str):
        return True
    try:
        validate_resident_id(value)
    except HolderIdError:
        return False
    return True


def _iso_date(value: str) -> date | None:
    """The date written ``YYYY-MM-DD`` (nothing else: no week dates or basic format), or None."""
    if not re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", value):
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        return None


def _is_date_or_permanent(value: object) -> bool:
    return not isinstance(value, str) or value == PERMANENT or _iso_date(value) is not None


@cache
def _formats() -> FormatChecker:
    """The format checker of every catalogue schema: JSON Schema's (date, regex) and ours."""
    from jsonschema import FormatChecker

    checker = FormatChecker()  # includes date (ISO 8601 YYYY-MM-DD) and regex
    checker.checks("uscc")(_is_uscc)
    checker.checks("resident-id")(_is_resident_id)
    checker.checks("date-or-permanent")(_is_date_or_permanent)
    return checker


_FORMAT_HINTS = {
    "date": "must be a date written YYYY-MM-DD",
    "date-or-permanent": f"must be a date written YYYY-MM-DD, or {PERMANENT}",
    "uscc": "is not a valid unified social credit code (统一社会信用代码)",
    "resident-id": "is not a valid citizen ID number (公民身份号码)",
    "regex": "is not a valid regular expression",
}


@cache
def _entry_validator() -> Draft202012Validator:
    from jsonschema import Draft202012Validator
    from referencing import Registry, Resource

    path = schemas_dir() / "catalogue-entry.schema.json"
    schema = json.loads(path.read_text(encoding="utf-8"))
    Draft202012Validator.check_schema(schema)
    # face_template $refs schemas/face-template.schema.json (照面模板) by its $id
    template = json.loads((schemas_dir() / "face-template.schema.json").read_text(encoding="utf-8"))
    registry = Registry().with_resource(template["$id"], Resource.from_contents(template))
    return Draft202012Validator(schema, format_checker=_formats(), registry=registry)


def _child(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
        return f"{path}.{key}"
    return f"{path}[{json.dumps(key, ensure_ascii=False)}]"


def _path(base: str, parts: Iterable[str | int]) -> str:
    for part in parts:
        base = _child(base, part)
    return base


def _schema_problems(
    validator: Draft202012Validator,
    instance: object,
    base: str = "$",
    titles: Mapping[str, str] | None = None,
) -> Problems:
    """Every validation error as (JSON path, message); a missing or unexpected property is reported at its
    own path, and face fields are named by their Chinese title."""
    titles = titles or {}
    problems: Problems = []

    def named(key: str) -> str:
        return f"{titles[key]} ({key})" if key in titles else repr(key)

    for error in validator.iter_errors(instance):
        problems.extend(_describe(error, base, titles, named))
    return sorted(set(problems))


def _describe(error: ValidationError, base: str, titles: Mapping[str, str], named: Any) -> Problems:
    at = list(error.absolute_path)
    path = _path(base, at)
    if (
        error.validator == "required"
        and isinstance(error.validator_value, list)
        and isinstance(error.instance, dict)
    ):
        missing = [key for key in error.validator_value if key not in error.instance]
        return [(_child(path, key), f"{named(key)} is required") for key in missing]
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        allowed = set(error.schema.get("properties", {}))
        patterns = list(error.schema.get("patternProperties", {}))
        extra = [k for k in error.instance if k not in allowed and not any(re.search(p, k) for p in patterns)]
        if extra:
            return [(_child(path, key), "is not an allowed property") for key in extra]
    if error.validator == "format":
        hint = _FORMAT_HINTS.get(str(error.validator_value), f"is not a valid {error.validator_value}")
        message = f"{error.instance!r} {hint}"
    else:
        message = error.message
    if len(at) == 1 and isinstance(at[0], str) and at[0] in titles:
        message = f"{titles[at[0]]}: {message}"
    return [(path, message)]


# --- the entry ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CatalogueEntry:
    """证照目录 entry. Build it with :meth:`from_document`; ``face_schema`` is a private copy, read-only by
    convention (it does not take part in hashing)."""

    code: str
    version: int
    name: str
    category: Category
    issuer: Issuer
    holder_type: HolderType
    base_image: str | None
    seal: str
    number_format: NumberFormat
    validity: ValidityRule
    providing_unit: str
    level: Level
    annual_inspection: bool
    face_schema: dict[str, Any] = dataclasses.field(hash=False)
    description: str | None = None
    #: 到期提醒: days before ``valid_until`` the holder is reminded (None: the notifications' default).
    expiry_reminder_days: tuple[int, ...] | None = None
    #: 年检不合格的后果 (``inspection.on_failure``); only meaningful with ``annual_inspection``.
    inspection_on_failure: InspectionFailure = InspectionFailure.NONE
    #: 区分字段 (``distinguishing_field``): the face field that tells certificates of this type apart on lists;
    #: None: the first required string field (:meth:`distinguishing_face_field`).
    distinguishing_field: str | None = None
    #: The bytes of an uploaded base image (底图) named by ``base_image`` (``asset:…``), set by the catalogue
    #: service when it reads the entry from the repository; None for shipped base images (read from
    #: ``schemas/catalogue/base-images/``) and entries without one. Not part of the document.
    base_image_data: bytes | None = dataclasses.field(default=None, repr=False, compare=False, hash=False)
    #: 照面模板 (``face_template``): the raw template document as validated against
    #: ``schemas/face-template.schema.json`` (read-only by convention); ``certstore.packaging.template`` compiles
    #: it. None: the generic label/value layout. Part of the version, so a certificate keeps its template.
    face_template: dict[str, Any] | None = dataclasses.field(default=None, repr=False, hash=False)
    _face_validator: Draft202012Validator = dataclasses.field(
        init=False, repr=False, compare=False, hash=False
    )

    def __post_init__(self) -> None:
        from jsonschema import Draft202012Validator

        object.__setattr__(
            self, "_face_validator", Draft202012Validator(self.face_schema, format_checker=_formats())
        )

    # --- documents --------------------------------------------------------------------------------------

    @classmethod
    def from_document(cls, document: object, *, source: str = "catalogue entry") -> CatalogueEntry:
        """Validate a catalogue-entry document and build the entry; :class:`CatalogueError` lists every
        problem with its JSON path (``source`` names the document in the message, e.g. its file)."""
        problems = _schema_problems(_entry_validator(), document)
        if problems:
            raise CatalogueError(problems, source=source)
        assert isinstance(document, dict)
        problems = _semantic_problems(document)
        if problems:
            raise CatalogueError(problems, source=source)
        validity = document["validity"]
        number_format = document["number_format"]
        return cls(
            code=document["code"],
            version=document["version"],
            name=document["name"],
            category=Category(document["category"]),
            issuer=Issuer(document["issuer"]["name"], document["issuer"]["credit_code"]),
            holder_type=HolderType(document["holder_type"]),
            base_image=document["base_image"],
            seal=document["seal"],
            number_format=NumberFormat(
                number_format["pattern"], number_format["example"], number_format.get("description")
            ),
            validity=ValidityRule(
                ValidityKind(validity["kind"]),
                validity.get("years"),
                validity.get("field"),
                validity.get("description"),
            ),
            providing_unit=document["providing_unit"],
            level=Level(document["level"]),
            annual_inspection=document["annual_inspection"],
            face_schema=copy.deepcopy(document["face_schema"]),
            description=document.get("description"),
            expiry_reminder_days=(
                tuple(document["expiry_reminder_days"]) if "expiry_reminder_days" in document else None
            ),
            inspection_on_failure=InspectionFailure(document.get("inspection", {}).get("on_failure", "none")),
            distinguishing_field=document.get("distinguishing_field"),
            face_template=copy.deepcopy(document.get("face_template")),
        )

    def to_document(self) -> dict[str, Any]:
        """The JSON document of this entry (plain JSON types); ``from_document`` of it gives an equal entry."""
        number_format: dict[str, Any] = {
            "pattern": self.number_format.pattern,
            "example": self.number_format.example,
        }
        if self.number_format.description is not None:
            number_format["description"] = self.number_format.description
        validity: dict[str, Any] = {"kind": self.validity.kind.value}
        if self.validity.years is not None:
            validity["years"] = self.validity.years
        if self.validity.field is not None:
            validity["field"] = self.validity.field
        if self.validity.description is not None:
            validity["description"] = self.validity.description
        document: dict[str, Any] = {
            "code": self.code,
            "version": self.version,
            "name": self.name,
        }
        if self.description is not None:
            document["description"] = self.description
        document |= {
            "category": self.category.value,
            "issuer": {"name": self.issuer.name, "credit_code": self.issuer.credit_code},
            "holder_type": self.holder_type.value,
            "base_image": self.base_image,
            "seal": self.seal,
            "number_format": number_format,
            "validity": validity,
            "providing_unit": self.providing_unit,
            "level": self.level.value,
            "annual_inspection": self.annual_inspection,
            "face_schema": copy.deepcopy(self.face_schema),
        }
        if self.inspection_on_failure is not InspectionFailure.NONE:
            document["inspection"] = {"on_failure": self.inspection_on_failure.value}
        if self.expiry_reminder_days is not None:
            document["expiry_reminder_days"] = list(self.expiry_reminder_days)
        if self.distinguishing_field is not None:
            document["distinguishing_field"] = self.distinguishing_field
        if self.face_template is not None:
            document["face_template"] = copy.deepcopy(self.face_template)
        return document

    # --- face -------------------------------------------------------------------------------------------

    def face_fields(self) -> list[FaceField]:
        """The face fields in layout order (``x-order``); worked out once per entry (the face schema is
        read-only), a new list each call."""
        cached: tuple[FaceField, ...] | None = self.__dict__.get("_face_fields_cache")
        if cached is None:
            cached = tuple(self._face_fields())
            object.__setattr__(self, "_face_fields_cache", cached)
        return list(cached)

    def _face_fields(self) -> list[FaceField]:
        required = set(self.face_schema["required"])
        fields = [
            FaceField(
                name=name,
                title=spec["title"],
                label=spec["x-label"],
                order=spec["x-order"],
                required=name in required,
                type=spec["type"],
                unit=spec.get("x-unit"),
                multiline=spec.get("x-multiline", False),
            )
            for name, spec in self.face_schema["properties"].items()
        ]
        return sorted(fields, key=lambda f: f.order)

    def distinguishing_face_field(self) -> FaceField | None:
        """The face field that tells certificates of this type apart (区分字段, e.g. 工程名称): the entry's
        ``distinguishing_field``, else the first required string field in layout order; None if there is none."""
        fields = self.face_fields()
        if self.distinguishing_field is not None:
            return next(f for f in fields if f.name == self.distinguishing_field)
        return next((f for f in fields if f.required and f.type == "string"), None)

    def validate_face(self, face: Mapping[str, Any]) -> dict[str, Any]:
        """Check face data against the face schema; return it as a new dict. :class:`FaceDataError` lists
        *all* problems (missing, unexpected and malformed fields), each with its JSON path."""
        instance = dict(face) if isinstance(face, Mapping) else face
        if "_fast_face_check" not in self.__dict__:  # compiled once per schema (and looked up once per entry)
            from certstore.catalogue.fastcheck import fast_face_check

            object.__setattr__(self, "_fast_face_check", fast_face_check(self.face_schema, _formats()))
        fast = self.__dict__["_fast_face_check"]  # accepts valid faces only; jsonschema names the problems
        if fast is not None and fast(instance):
            assert isinstance(instance, dict)
            return instance
        properties = self.face_schema["properties"]
        titles = {name: spec["title"] for name, spec in properties.items()}
        problems = _schema_problems(self._face_validator, instance, titles=titles)
        if problems:
            prefixes = [(_child("$", name), spec["x-order"]) for name, spec in properties.items()]

            def layout_order(problem: tuple[str, str]) -> tuple[int, str, str]:
                path = problem[0]
                for prefix, order in prefixes:
                    if path == prefix or path.startswith((prefix + ".", prefix + "[")):
                        return (order, *problem)
                return (0 if path == "$" else 1 << 30, *problem)  # the whole face first, unknown fields last

            problems.sort(key=layout_order)
            raise FaceDataError(problems)
        assert isinstance(instance, dict)
        return instance

    # --- number and validity ----------------------------------------------------------------------------

    @property
    def number_example(self) -> str:
        """An example certificate number (证照编号示例) of this type."""
        return self.number_format.example

    def check_number(self, certificate_number: str) -> str:
        """Return ``certificate_number`` if it matches the number format (证照编号格式), else raise
        :class:`CertificateNumberError` quoting the example."""
        if not isinstance(certificate_number, str) or not self.number_format.matches(certificate_number):
            raise CertificateNumberError(
                f"certificate number {certificate_number!r} does not have the format of {self.name} "
                f"(e.g. {self.number_format.example!r})"
            )
        return certificate_number

    def validity_until(self, issue_date: date, face: Mapping[str, Any]) -> date | None:
        """Last day of validity (有效期截止日期) of a certificate issued on ``issue_date``; None = permanent.

        ``fixed``: the day before the N-th anniversary (issued 2024-03-15 for 3 years → 2027-03-14; a
        29 February anniversary in a common year falls on 1 March). ``field``: the face field's date, or
        None for 长期; an end before the issue date is a :class:`FaceDataError`.
        """
        rule = self.validity
        if rule.kind is ValidityKind.PERMANENT:
            return None
        if rule.kind is ValidityKind.FIXED:
            assert rule.years is not None
            year = issue_date.year + rule.years
            try:
                anniversary = issue_date.replace(year=year)
            except ValueError:  # 29 February → 1 March
                anniversary = date(year, 3, 1)
            return anniversary - timedelta(days=1)
        assert rule.field is not None
        path = _child("$", rule.field)
        title = self.face_schema["properties"][rule.field]["title"]
        value = face.get(rule.field)
        if value == PERMANENT:
            return None
        if not isinstance(value, str):
            raise FaceDataError([(path, f"{title}: the end of validity is required")])
        end = _iso_date(value)
        if end is None:
            raise FaceDataError([(path, f"{title}: {value!r} {_FORMAT_HINTS['date-or-permanent']}")])
        if end < issue_date:
            raise FaceDataError(
                [(path, f"{title}: {value} is before the issue date {issue_date.isoformat()}")]
            )
        return end


# --- checks beyond JSON Schema ---------------------------------------------------------------------------


@cache
def _meta_validator() -> Draft202012Validator:
    from jsonschema import Draft202012Validator

    return Draft202012Validator(Draft202012Validator.META_SCHEMA)


def _semantic_problems(document: dict[str, Any]) -> Problems:
    from jsonschema import Draft202012Validator

    problems: Problems = []
    try:
        validate_credit_code(document["code"][:18])
    except HolderIdError as exc:
        problems.append(("$.code", f"characters 1-18 must be the defining authority's credit code: {exc}"))
    try:
        validate_credit_code(document["issuer"]["credit_code"])
    except HolderIdError as exc:
        problems.append(("$.issuer.credit_code", str(exc)))

    number_format = document["number_format"]
    try:
        if re.fullmatch(number_format["pattern"], number_format["example"]) is None:
            problems.append(("$.number_format.example", "does not match $.number_format.pattern"))
    except re.error as exc:
        problems.append(("$.number_format.pattern", f"is not a valid regular expression: {exc}"))

    face_schema = document["face_schema"]
    problems.extend(_schema_problems(_meta_validator(), face_schema, "$.face_schema"))
    properties: dict[str, Any] = face_schema["properties"]
    for index, name in enumerate(face_schema["required"]):
        if name not in properties:
            problems.append((f"$.face_schema.required[{index}]", f"{name!r} is not a face field"))
    seen: dict[int, str] = {}
    for name, spec in properties.items():
        base = _path("$.face_schema.properties", [name])
        order = spec["x-order"]
        if order in seen:
            problems.append((_child(base, "x-order"), f"{order} is already used by {seen[order]!r}"))
        seen.setdefault(order, name)
        if "pattern" in spec:
            try:
                re.compile(spec["pattern"])
            except re.error as exc:
                problems.append((_child(base, "pattern"), f"is not a valid regular expression: {exc}"))
                continue
        field_schema = {key: value for key, value in spec.items() if key != "examples"}
        field_validator = Draft202012Validator(field_schema, format_checker=_formats())
        for i, example in enumerate(spec.get("examples", [])):
            for error in field_validator.iter_errors(example):
                problems.extend(
                    (_path(base, ["examples", i]), message) for _, message in _describe(error, "$", {}, repr)
                )

    on_failure = document.get("inspection", {}).get("on_failure", InspectionFailure.NONE)
    if on_failure != InspectionFailure.NONE and not document["annual_inspection"]:
        problems.append(
            (
                "$.inspection.on_failure",
                f"{on_failure!r} needs annual_inspection true: the type has no 年检 to fail",
            )
        )

    distinguishing = document.get("distinguishing_field")
    if distinguishing is not None and distinguishing not in properties:
        problems.append(("$.distinguishing_field", f"{distinguishing!r} is not a face field"))

    validity = document["validity"]
    if validity["kind"] == ValidityKind.FIELD:
        name = validity["field"]
        spec = properties.get(name)
        if spec is None:
            problems.append(("$.validity.field", f"{name!r} is not a face field"))
        else:
            if spec.get("format") not in ("date", "date-or-permanent"):
                problems.append(("$.validity.field", f"{name!r} must have format date or date-or-permanent"))
            if name not in face_schema["required"]:
                problems.append(("$.validity.field", f"{name!r} must be a required face field"))
    return problems
