"""The catalogue (证照目录): entry documents, face schemas, shipped definitions, base images."""

from __future__ import annotations

import copy
import importlib.util
import json
import re
import sys
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from PIL import Image, ImageChops, ImageStat

from certstore.catalogue import (
    PERMANENT,
    CatalogueEntry,
    CatalogueError,
    Category,
    CertificateNumberError,
    FaceDataError,
    HolderType,
    InspectionFailure,
    Level,
    ValidityKind,
    base_image_path,
    example_face,
    schemas_dir,
    shipped_entries,
    shipped_entry,
)
from certstore.identifiers import CertificateIdentifier, HolderIdType, serial_for, validate_credit_code

CONSTRUCTION = "11410100990000025A001"
BUSINESS = "114101009900000410001"
SITE = "11410100990000017F001"

SHIPPED = {
    "建设项目选址意见书": ("11410100990000017F001", "郑州市自然资源和规划局", Category.LICENCE),
    "建设用地规划许可证": ("11410100990000017F002", "郑州市自然资源和规划局", Category.LICENCE),
    "建设工程规划许可证": ("11410100990000017F003", "郑州市自然资源和规划局", Category.LICENCE),
    "建筑工程施工许可证": ("11410100990000025A001", "郑州市城乡建设局", Category.LICENCE),
    "防空地下室建设审查批准书": ("114101009900000335001", "郑州市人民防空办公室", Category.APPROVAL),
    "营业执照": ("114101009900000410001", "郑州市市场监督管理局", Category.LICENCE),
}


def _document(code: str = CONSTRUCTION) -> dict[str, Any]:
    return shipped_entry(code).to_document()


def _has_cjk(text: str) -> bool:
    return re.search(r"[\u4e00-\u9fff]", text) is not None


# --- shipped definitions --------------------------------------------------------------------------------


def test_the_six_reform_types_are_shipped() -> None:
    entries = shipped_entries()
    assert {e.name: (e.code, e.issuer.name, e.category) for e in entries} == SHIPPED
    assert len({(e.code, e.version) for e in entries}) == len(entries) == 6
    assert [e.code for e in entries] == sorted(e.code for e in entries)


@pytest.mark.parametrize("entry", shipped_entries(), ids=lambda e: e.name)
def test_shipped_entry_is_complete_and_consistent(entry: CatalogueEntry) -> None:
    assert entry.version == 2  # version 2: the face template and the distinguishing field (docs/catalogue.md)
    assert entry.face_template is not None and entry.distinguishing_field is not None
    assert entry.level is Level.CITY
    assert entry.holder_type is HolderType.LEGAL_PERSON
    assert entry.seal == "default"
    assert entry.providing_unit == entry.issuer.name
    assert validate_credit_code(entry.issuer.credit_code) == entry.issuer.credit_code
    assert entry.code[:18] == entry.issuer.credit_code  # defined by the issuing bureau itself
    assert entry.issuer.credit_code.startswith("11410100")  # 机构编制 · 机关 · 郑州市
    assert entry.description is not None and "FICTIONAL" in entry.description
    assert entry.check_number(entry.number_format.example) == entry.number_format.example
    fields = entry.face_fields()
    assert [f.order for f in fields] == sorted({f.order for f in fields})
    assert all(_has_cjk(f.title) and _has_cjk(f.label) for f in fields)
    assert set(entry.face_schema["required"]) <= {f.name for f in fields}
    assert entry.face_schema["additionalProperties"] is False
    for spec in entry.face_schema["properties"].values():
        assert spec.get("examples"), "every shipped face field carries a realistic example"


def test_shipped_files_equal_their_round_trip() -> None:
    for path in sorted((schemas_dir() / "catalogue").glob("*.json")):
        document = json.loads(path.read_text(encoding="utf-8"))
        assert document.pop("$schema") == "../catalogue-entry.schema.json"
        entry = CatalogueEntry.from_document(document)
        assert entry.to_document() == document, path.name
        assert json.loads(json.dumps(entry.to_document())) == document
        assert CatalogueEntry.from_document(entry.to_document()) == entry


@pytest.mark.parametrize("entry", shipped_entries(), ids=lambda e: e.name)
def test_example_face_is_valid_realistic_and_deterministic(entry: CatalogueEntry) -> None:
    face = example_face(entry)
    assert entry.validate_face(face) == face
    assert list(face) == [f.name for f in entry.face_fields()]  # every field, in layout order
    assert example_face(entry) == face
    properties = entry.face_schema["properties"]
    free_text = [
        v for k, v in face.items() if isinstance(v, str) and not {"format", "pattern"} & set(properties[k])
    ]
    assert free_text and all(_has_cjk(v) for v in free_text)  # Chinese sample values (codes, dates excepted)
    assert not any("示例" + f.title == face[f.name] for f in entry.face_fields())  # no generated fallbacks
    json.dumps(face, ensure_ascii=False)  # usable as DATA.json


def test_shipped_entry_lookup() -> None:
    assert shipped_entry(CONSTRUCTION).name == "建筑工程施工许可证"
    assert shipped_entry(CONSTRUCTION, 2) == shipped_entry(CONSTRUCTION)
    with pytest.raises(KeyError, match="no shipped catalogue entry"):
        shipped_entry("11100000000013338W999")
    with pytest.raises(KeyError, match="version 1"):  # no longer shipped (a repository keeps what it stored)
        shipped_entry(CONSTRUCTION, 1)


def test_entry_codes_make_identifiers() -> None:
    entry = shipped_entry(CONSTRUCTION)
    serial = serial_for(entry.issuer.credit_code, entry.number_format.example, key=bytes(32))
    identifier = CertificateIdentifier.build(entry.code, entry.issuer.credit_code, serial, 1)
    assert str(identifier).startswith(f"1.2.156.3005.2.{entry.code}.{entry.issuer.credit_code}.")
    assert CertificateIdentifier.parse(str(identifier)).check_ok


def test_entry_schema_is_valid_draft_2020_12() -> None:
    schema = json.loads((schemas_dir() / "catalogue-entry.schema.json").read_text(encoding="utf-8"))
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"


def test_entries_are_versioned_values() -> None:
    document = _document()
    document["version"] = 2
    document["face_schema"]["properties"]["remarks"]["maxLength"] = 1000
    v2 = CatalogueEntry.from_document(document)
    v1 = shipped_entry(CONSTRUCTION)
    assert (v2.code, v2.version) == (v1.code, 2) and v2 != v1
    assert len({v1, v2, shipped_entry(CONSTRUCTION)}) == 2
    with pytest.raises(AttributeError):
        v1.version = 3  # type: ignore[misc]


# --- bad entry documents ----------------------------------------------------------------------------------


DELETE = object()
BUILDER = ("face_schema", "properties", "builder")
FACE = ("face_schema",)

PROP = "$.face_schema.properties"
CODE = ("issuer", "credit_code")
FIELD_RULE = {"kind": "field", "field": "builder"}

#: (case, keys to the value, new value or DELETE, JSON path the error must name, words of its message)
BAD_ENTRIES: list[tuple[str, tuple[str, ...], Any, str, str]] = [
    ("missing name", ("name",), DELETE, "$.name", "is required"),
    ("unknown key", ("colour",), "red", "$.colour", "not an allowed property"),
    ("short code", ("code",), "11410100990000025A01", "$.code", "does not match"),
    ("code check", ("code",), "11410100990000025B001", "$.code", "GB 32100 MOD 31 gives A"),
    ("version 0", ("version",), 0, "$.version", "less than the minimum"),
    ("version text", ("version",), "1", "$.version", "not of type 'integer'"),
    ("category", ("category",), "permit", "$.category", "is not one of"),
    ("holder type", ("holder_type",), "company", "$.holder_type", "is not one of"),
    ("level", ("level",), "district", "$.level", "is not one of"),
    ("inspection", ("annual_inspection",), "no", "$.annual_inspection", "not of type 'boolean'"),
    ("on failure", ("inspection",), {"on_failure": "revoke"}, "$.inspection.on_failure", "is not one of"),
    (
        "no 年检",
        ("inspection",),
        {"on_failure": "suspend"},
        "$.inspection.on_failure",
        "needs annual_inspection",
    ),
    ("inspection typo", ("inspection",), {"on_fail": "none"}, "$.inspection.on_fail", "not an allowed"),
    ("issuer charset", CODE, "1141010099000002IA", "$.issuer.credit_code", "does not match"),
    ("issuer check", CODE, "11410100990000025B", "$.issuer.credit_code", "gives A"),
    ("issuer name", ("issuer", "name"), DELETE, "$.issuer.name", "is required"),
    ("base image", ("base_image",), "../x.png", "$.base_image", "does not match"),
    ("seal name", ("seal",), "my seal", "$.seal", "does not match"),
    ("number regex", ("number_format", "pattern"), "^(4101", "$.number_format.pattern", "regular expression"),
    ("number example", ("number_format", "example"), "4101", "$.number_format.example", "does not match"),
    ("validity kind", ("validity",), {"kind": "yearly"}, "$.validity.kind", "is not one of"),
    ("fixed, no years", ("validity",), {"kind": "fixed"}, "$.validity.years", "is required"),
    ("field, no field", ("validity",), {"kind": "field"}, "$.validity.field", "is required"),
    ("field unknown", ("validity",), {**FIELD_RULE, "field": "nope"}, "$.validity.field", "not a face field"),
    ("field not date", ("validity",), FIELD_RULE, "$.validity.field", "format date"),
    ("face type", (*FACE, "type"), "array", "$.face_schema.type", "'object' was expected"),
    ("face open", (*FACE, "additionalProperties"), True, "$.face_schema.additionalProperties", "False was"),
    ("face required", (*FACE, "required"), ["builder", "nope"], "$.face_schema.required[1]", "not a face"),
    ("field name", (*FACE, "properties", "Builder"), {}, PROP, "does not match"),
    ("field title", (*BUILDER, "title"), "builder", f"{PROP}.builder.title", "does not match"),
    ("field label", (*BUILDER, "x-label"), DELETE, f'{PROP}.builder["x-label"]', "is required"),
    ("field order", (*BUILDER, "x-order"), "1", f'{PROP}.builder["x-order"]', "integer"),
    ("order reused", (*BUILDER, "x-order"), 2, f'{PROP}.project_name["x-order"]', "already used"),
    ("field type", (*BUILDER, "type"), "object", f"{PROP}.builder.type", "is not one of"),
    ("field typo", (*BUILDER, "maxLenght"), 5, f"{PROP}.builder.maxLenght", "not an allowed"),
    ("field format", (*BUILDER, "format"), "email", f"{PROP}.builder.format", "is not one of"),
    ("field example", (*BUILDER, "examples"), [42], f"{PROP}.builder.examples[0]", "not of type"),
]


@pytest.mark.parametrize(
    ("keys", "value", "path", "message"), [c[1:] for c in BAD_ENTRIES], ids=[c[0] for c in BAD_ENTRIES]
)
def test_bad_entries_are_refused_naming_the_json_path(
    keys: tuple[str, ...], value: Any, path: str, message: str
) -> None:
    document = _document()
    target = document
    for key in keys[:-1]:
        target = target[key]
    if value is DELETE:
        del target[keys[-1]]
    else:
        target[keys[-1]] = value
    with pytest.raises(CatalogueError) as raised:
        CatalogueEntry.from_document(document, source="test.json")
    matching = [m for p, m in raised.value.errors if p == path]
    assert matching, raised.value.errors
    assert any(message in m for m in matching), matching
    assert str(raised.value).startswith("test.json is invalid")
    assert path in str(raised.value)


def test_all_problems_of_a_document_are_reported() -> None:
    document = _document()
    document["name"] = 7
    document["level"] = "district"
    del document["seal"]
    with pytest.raises(CatalogueError) as raised:
        CatalogueEntry.from_document(document)
    assert {p for p, _ in raised.value.errors} == {"$.name", "$.level", "$.seal"}


def test_non_object_documents_are_refused() -> None:
    with pytest.raises(CatalogueError) as raised:
        CatalogueEntry.from_document(["not", "an", "object"])
    assert raised.value.errors[0][0] == "$"


def test_from_document_copies_the_face_schema() -> None:
    document = _document()
    entry = CatalogueEntry.from_document(document)
    document["face_schema"]["properties"]["builder"]["maxLength"] = 3
    assert entry.validate_face(example_face(entry))["builder"] == "郑州示例置业有限公司"


# --- face data ------------------------------------------------------------------------------------------


def test_face_errors_are_all_reported_in_layout_order() -> None:
    entry = shipped_entry(CONSTRUCTION)
    face = example_face(entry)
    face["builder"] = ""  # too short
    del face["project_name"]  # missing
    face["contract_price"] = -5  # not positive
    face["contract_duration"] = 912.5  # not an integer
    face["seal_colour"] = "red"  # unknown field
    with pytest.raises(FaceDataError) as raised:
        entry.validate_face(face)
    errors = raised.value.errors
    assert [p for p, _ in errors] == [
        "$.builder",
        "$.project_name",
        "$.contract_price",
        "$.contract_duration",
        "$.seal_colour",
    ]
    messages = dict(errors)
    assert messages["$.builder"].startswith("建设单位:")
    assert messages["$.project_name"] == "工程名称 (project_name) is required"
    assert messages["$.contract_price"].startswith("合同价格:")
    assert "integer" in messages["$.contract_duration"]
    assert messages["$.seal_colour"] == "is not an allowed property"
    assert isinstance(raised.value, ValueError) and "$.contract_price" in str(raised.value)


def test_face_must_be_an_object() -> None:
    with pytest.raises(FaceDataError) as raised:
        shipped_entry(CONSTRUCTION).validate_face(["a"])  # type: ignore[arg-type]
    assert raised.value.errors[0][0] == "$"


def test_face_formats_and_enums() -> None:
    licence = shipped_entry(BUSINESS)
    face = example_face(licence)
    face["credit_code"] = "91410100MA00000312"  # wrong check character
    face["established_on"] = "2019-02-30"
    face["business_term_end"] = "2039/03/11"
    with pytest.raises(FaceDataError) as raised:
        licence.validate_face(face)
    messages = dict(raised.value.errors)
    assert "统一社会信用代码" in messages["$.credit_code"]
    assert "YYYY-MM-DD" in messages["$.established_on"]
    assert PERMANENT in messages["$.business_term_end"]

    approval = shipped_entry("114101009900000335001")
    face = example_face(approval)
    face["protection_class"] = "丙类"
    with pytest.raises(FaceDataError) as raised:
        approval.validate_face(face)
    assert raised.value.errors == [("$.protection_class", "防护类别: '丙类' is not one of ['甲类', '乙类']")]


def test_optional_fields_may_be_left_out() -> None:
    entry = shipped_entry(CONSTRUCTION)
    face = {k: v for k, v in example_face(entry).items() if k in entry.face_schema["required"]}
    assert entry.validate_face(face) == face


def test_face_fields_for_layout() -> None:
    fields = shipped_entry(CONSTRUCTION).face_fields()
    assert [f.label for f in fields][:2] == ["建设单位", "工程名称"]
    price = next(f for f in fields if f.name == "contract_price")
    assert (price.unit, price.type, price.required) == ("万元", "number", True)
    remarks = next(f for f in fields if f.name == "remarks")
    assert remarks.multiline and not remarks.required


# --- certificate numbers --------------------------------------------------------------------------------

NUMBERS: list[tuple[str, str, bool]] = [
    (SITE, "选字第410100202400036号", True),
    (SITE, "选字第410105202400036号", True),
    (SITE, "选字第420100202400036号", False),  # not a Zhengzhou division
    (SITE, "建字第410100202400036号", False),
    (SITE, "选字第41010020240036号", False),
    ("11410100990000017F002", "地字第410100202400045号", True),
    ("11410100990000017F003", "建字第410100202400123号", True),
    ("11410100990000017F003", "建字第410100202400123", False),
    (CONSTRUCTION, "410100202406180101", True),
    (CONSTRUCTION, "410100202413180101", False),  # month 13
    (CONSTRUCTION, "41010020240618010", False),
    ("114101009900000335001", "郑人防审字〔2024〕第0087号", True),
    ("114101009900000335001", "郑人防审字[2024]第0087号", False),
    (BUSINESS, "91410100MA00000311", True),
    (BUSINESS, "91410100MA0000031I", False),
    (BUSINESS, "91410100MA0000031", False),
]


@pytest.mark.parametrize(("code", "number", "ok"), NUMBERS)
def test_number_formats(code: str, number: str, ok: bool) -> None:
    entry = shipped_entry(code)
    if ok:
        assert entry.check_number(number) == number
    else:
        with pytest.raises(CertificateNumberError, match=re.escape(entry.number_format.example)):
            entry.check_number(number)


def test_number_must_match_whole() -> None:
    entry = shipped_entry(CONSTRUCTION)
    with pytest.raises(CertificateNumberError):
        entry.check_number("410100202406180101\n")
    with pytest.raises(CertificateNumberError):
        entry.check_number(410100202406180101)  # type: ignore[arg-type]


# --- validity -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("issued", "until"),
    [
        (date(2024, 3, 15), date(2027, 3, 14)),
        (date(2024, 1, 1), date(2026, 12, 31)),
        (date(2024, 2, 29), date(2027, 2, 28)),  # anniversary 1 March in a common year
        (date(2025, 3, 1), date(2028, 2, 29)),
    ],
)
def test_fixed_validity(issued: date, until: date) -> None:
    entry = shipped_entry(SITE)
    assert (entry.validity.kind, entry.validity.years) == (ValidityKind.FIXED, 3)
    assert entry.validity_until(issued, example_face(entry)) == until


def test_permanent_validity() -> None:
    entry = shipped_entry(CONSTRUCTION)
    assert entry.validity.kind is ValidityKind.PERMANENT
    assert entry.validity_until(date(2024, 6, 18), example_face(entry)) is None


def test_validity_from_a_face_field() -> None:
    entry = shipped_entry(BUSINESS)
    assert (entry.validity.kind, entry.validity.field) == (ValidityKind.FIELD, "business_term_end")
    face = example_face(entry)
    assert face["business_term_end"] == PERMANENT
    assert entry.validity_until(date(2019, 3, 12), face) is None
    face["business_term_end"] = "2039-03-11"
    assert entry.validity_until(date(2019, 3, 12), entry.validate_face(face)) == date(2039, 3, 11)
    face["business_term_end"] = "2018-12-31"
    with pytest.raises(FaceDataError) as raised:
        entry.validity_until(date(2019, 3, 12), face)
    assert raised.value.errors[0][0] == "$.business_term_end"
    assert "before the issue date" in raised.value.errors[0][1]
    for bad in ("20390311", "2039-02-30", None):
        face["business_term_end"] = bad
        with pytest.raises(FaceDataError, match=r"\$\.business_term_end"):
            entry.validity_until(date(2019, 3, 12), face)


def test_validity_rule_documents() -> None:
    document = _document()
    document["validity"] = {"kind": "fixed", "years": 5}
    entry = CatalogueEntry.from_document(document)
    assert entry.validity_until(date(2024, 6, 18), {}) == date(2029, 6, 17)
    assert entry.to_document()["validity"] == {"kind": "fixed", "years": 5}
    document["validity"] = {"kind": "permanent", "years": 5}
    with pytest.raises(CatalogueError, match=r"\$\.validity"):
        CatalogueEntry.from_document(document)


# --- base images ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("entry", shipped_entries(), ids=lambda e: e.name)
def test_base_images(entry: CatalogueEntry) -> None:
    path = base_image_path(entry)
    assert path is not None and path.is_file()
    assert path.stat().st_size < 200_000
    with Image.open(path) as image:
        assert image.format == "PNG"
        layout = json.loads(image.info["certstore-layout"])
        assert layout["dpi"] == 150
        width_mm, height_mm = layout["page_mm"]
        assert sorted((width_mm, height_mm)) == [210.0, 297.0]  # A4
        assert image.size == (round(width_mm / 25.4 * 150), round(height_mm / 25.4 * 150))
        x, y, w, h = (round(v / 25.4 * 150) for v in layout["emblem_mm"])
        emblem = image.convert("RGB").crop((x, y, x + w, y + h))
        assert len(set(emblem.get_flattened_data())) == 1  # the national-emblem area is left empty
        assert entry.name in image.info["Title"]


def _load_script(monkeypatch: pytest.MonkeyPatch) -> Any:
    path = schemas_dir() / "catalogue" / "make_base_images.py"
    spec = importlib.util.spec_from_file_location("make_base_images", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("code", [CONSTRUCTION, "114101009900000335001"])
def test_base_images_are_what_the_script_draws(code: str, monkeypatch: pytest.MonkeyPatch) -> None:
    entry = shipped_entry(code)
    assert entry.base_image is not None
    drawn, layout = _load_script(monkeypatch).render(entry.base_image, entry.name, entry.category.value)
    path = base_image_path(entry)
    assert path is not None
    with Image.open(path) as stored:
        assert json.loads(stored.info["certstore-layout"]) == layout
        difference = ImageChops.difference(drawn.convert("RGB"), stored.convert("RGB"))
    assert max(ImageStat.Stat(difference).mean) < 0.5  # regenerate with make_base_images.py if this fails


def test_missing_base_image_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from certstore.catalogue import definitions

    (tmp_path / "catalogue").mkdir()
    document = copy.deepcopy(_document())
    (tmp_path / "catalogue" / "x.json").write_text(json.dumps(document, ensure_ascii=False), encoding="utf-8")
    monkeypatch.setattr(definitions, "schemas_dir", lambda: tmp_path)
    definitions._load.cache_clear()
    try:
        with pytest.raises(CatalogueError) as raised:
            definitions.shipped_entries()
        assert raised.value.source == "catalogue/x.json"
        assert raised.value.errors[0][0] == "$.base_image"
    finally:
        definitions._load.cache_clear()


# --- 年检的后果 and 证照主体 (issue 20) ----------------------------------------------------------------------------


def test_a_declared_inspection_consequence_round_trips() -> None:
    """``inspection.on_failure`` is read into :attr:`CatalogueEntry.inspection_on_failure`, written back by
    ``to_document`` and absent (``none``) for the shipped types, whose files therefore stay as they are."""
    document = _document() | {"annual_inspection": True, "inspection": {"on_failure": "suspend"}}
    entry = CatalogueEntry.from_document(document)
    assert entry.inspection_on_failure is InspectionFailure.SUSPEND
    assert entry.to_document()["inspection"] == {"on_failure": "suspend"}
    assert CatalogueEntry.from_document(entry.to_document()) == entry
    explicit_none = CatalogueEntry.from_document(_document() | {"inspection": {"on_failure": "none"}})
    assert explicit_none.inspection_on_failure is InspectionFailure.NONE and explicit_none == shipped_entry(
        CONSTRUCTION
    )
    assert all(e.inspection_on_failure is InspectionFailure.NONE for e in shipped_entries())


def test_the_shipped_types_holder_types_and_their_id_types() -> None:
    """Every shipped type is for 法人 (its holder is a company or another legal person), so each takes a
    统一社会信用代码 holder and no 公民身份号码; a 自然人 type takes the person IDs and no credit code."""
    assert {e.holder_type for e in shipped_entries()} == {HolderType.LEGAL_PERSON}
    assert HolderType.LEGAL_PERSON.id_types == (HolderIdType.CREDIT_CODE,)
    assert HolderType.LEGAL_PERSON.id_type_problem(HolderIdType.CREDIT_CODE) is None
    assert "法人" in (HolderType.LEGAL_PERSON.id_type_problem(HolderIdType.RESIDENT_ID) or "")
    assert HolderIdType.RESIDENT_ID in HolderType.NATURAL_PERSON.id_types
    assert HolderIdType.PASSPORT in HolderType.NATURAL_PERSON.id_types
    assert HolderType.NATURAL_PERSON.id_type_problem(HolderIdType.CREDIT_CODE) is not None
