"""Certificate drafts: the DATA.json form, validation against the catalogue, identifiers, metadata, digests."""

from __future__ import annotations

import os
from dataclasses import replace
from datetime import UTC, date, datetime
from types import MappingProxyType

import pytest

from certstore.catalogue import CatalogueEntry, HolderType, shipped_entries
from certstore.identifiers import CertificateIdentifier, HolderIdType
from certstore.records import (
    CertificateDraft,
    Holder,
    RecordError,
    content_digest,
    draft_from_json,
    draft_to_json,
    example_draft,
    prepare_version,
    submission_schema,
)

ENTRIES = {e.code: e for e in shipped_entries()}
KEY = os.urandom(32)


@pytest.mark.parametrize("code", sorted(ENTRIES))
def test_example_drafts_round_trip_and_prepare(code: str) -> None:
    draft = example_draft(ENTRIES[code], issue_date=date(2026, 11, 26))
    assert draft_from_json(draft_to_json(draft)) == draft
    prepared = prepare_version(ENTRIES[code], draft, version=1, holder_key=KEY, serial_key=KEY)
    identifier = CertificateIdentifier.parse(str(prepared.identifier))
    assert identifier.check_ok and identifier.type_code == code
    assert identifier.issuer_code == ENTRIES[code].issuer.credit_code
    assert (
        prepared.metadata["ZZBS"] == str(identifier) and prepared.metadata["ZZBH"] == draft.certificate_number
    )


def test_same_content_same_identifier_and_digest() -> None:
    entry = next(iter(ENTRIES.values()))
    draft = example_draft(entry, issue_date=date(2026, 11, 26))
    a = prepare_version(entry, draft, version=1, holder_key=KEY, serial_key=KEY)
    b = prepare_version(
        entry, draft_from_json(draft_to_json(draft)), version=1, holder_key=KEY, serial_key=KEY
    )
    assert (a.identifier, a.digest) == (b.identifier, b.digest)
    c = prepare_version(entry, draft, version=2, holder_key=KEY, serial_key=KEY)
    assert c.identifier.serial == a.identifier.serial and c.identifier.version == 2 and c.digest != a.digest


def test_problems_are_all_reported_with_paths() -> None:
    entry = next(iter(ENTRIES.values()))
    draft = CertificateDraft(
        catalogue_code=entry.code,
        certificate_number="not a number",
        holder=Holder(" ", HolderIdType.CREDIT_CODE, "91410100MA44A1B2X0"),
        face={},
        issue_date=date(2026, 11, 26),
        valid_from=date(2026, 12, 1),
        valid_until=date(2026, 11, 30),
    )
    with pytest.raises(RecordError) as refused:
        prepare_version(entry, draft, version=1, holder_key=KEY, serial_key=KEY)
    paths = {path for path, _ in refused.value.problems}
    assert {"certificate_number", "holder.id_number", "holder.name", "valid_until"} <= paths
    assert any(p.startswith("face") for p in paths)


@pytest.mark.parametrize(
    ("change", "path"),
    [
        ({"holder": None}, "holder"),
        ({"holder": {"name": "x", "id_type": "42", "id_number": "1"}}, "holder.id_type"),
        ({"issue_date": "26/11/2026"}, "issue_date"),
        ({"face": []}, "face"),
        ({"catalogue": ""}, "catalogue"),
        ({"surprise": 1}, "surprise"),
    ],
)
def test_malformed_json_names_the_field(change: dict, path: str) -> None:
    document = draft_to_json(example_draft(next(iter(ENTRIES.values()))))
    document.update(change)
    with pytest.raises(RecordError) as refused:
        draft_from_json(document)
    assert path in {p for p, _ in refused.value.problems}


def test_nul_characters_are_refused_with_their_path() -> None:
    from certstore.records import RecordError, draft_from_json

    document = {
        "catalogue": "X",
        "certificate_number": "1",
        "holder": {"name": "张\x00三", "id_type": "111", "id_number": "11010519491231002X"},
        "issue_date": "2026-11-26",
        "face": {"items": ["ok", "b\x00d"]},
    }
    with pytest.raises(RecordError) as caught:
        draft_from_json(document)
    paths = [path for path, message in caught.value.problems if "NUL" in message]
    assert paths == ["holder.name", "face.items[1]"]


def test_nul_in_keys_and_mappings_is_found_and_its_escape_as_text_is_not() -> None:
    base = {"catalogue": "X", "certificate_number": "1", "issue_date": "2026-11-26",
            "holder": {"name": "张三", "id_type": "111", "id_number": "11010519491231002X"}}  # fmt: skip
    document = {**base, "face": MappingProxyType({"k\x00": "v", "text": "\\u0000 is six characters"})}
    with pytest.raises(RecordError) as caught:
        draft_from_json(document)
    assert [p for p, m in caught.value.problems if "NUL" in m] == ["face.k\x00"]
    clean = {**base, "face": {"text": "\\u0000 is six characters"}}
    assert not [p for p, m in _problems(clean) if "NUL" in m]


def _problems(document: dict) -> list[tuple[str, str]]:
    try:
        draft_from_json(document)
    except RecordError as exc:
        return exc.problems
    return []


# --- 证照主体: the holder type decides the holder's ID type (issue 20) ------------------------------------------

LEGAL = next(e for e in ENTRIES.values() if e.holder_type is HolderType.LEGAL_PERSON)


def _entry_for(holder_type: HolderType):
    return CatalogueEntry.from_document({**LEGAL.to_document(), "holder_type": holder_type.value})


@pytest.mark.parametrize(
    ("holder_type", "holder", "accepted"),
    [
        (
            HolderType.LEGAL_PERSON,
            Holder("郑州示例置业有限公司", HolderIdType.CREDIT_CODE, "91410100MA44A1B2XW"),
            True,
        ),
        (HolderType.LEGAL_PERSON, Holder("张三", HolderIdType.RESIDENT_ID, "11010519491231002X"), False),
        (HolderType.LEGAL_PERSON, Holder("John Smith", HolderIdType.PASSPORT, "E12345678"), False),
        (HolderType.NATURAL_PERSON, Holder("张三", HolderIdType.RESIDENT_ID, "11010519491231002X"), True),
        (HolderType.NATURAL_PERSON, Holder("John Smith", HolderIdType.PASSPORT, "E12345678"), True),
        (HolderType.NATURAL_PERSON, Holder("陈大文", HolderIdType.HK_MACAO_PERMIT, "H12345678"), True),
        (
            HolderType.NATURAL_PERSON,
            Holder("郑州示例置业有限公司", HolderIdType.CREDIT_CODE, "91410100MA44A1B2XW"),
            False,
        ),
        (
            HolderType.OTHER,
            Holder("郑州市示例业主委员会", HolderIdType.CREDIT_CODE, "91410100MA44A1B2XW"),
            True,
        ),
        (HolderType.OTHER, Holder("张三", HolderIdType.RESIDENT_ID, "11010519491231002X"), False),
    ],
)
def test_the_holder_type_decides_which_holder_id_types_are_accepted(
    holder_type: HolderType, holder: Holder, accepted: bool
) -> None:
    """A 法人 type takes a 统一社会信用代码 only; a 自然人 type a 公民身份号码 or a documented person ID (护照,
    来往通行证); 其他组织 a credit code. A wrong ID type is a field-level problem at ``holder.id_type`` naming the
    allowed types — the one check every entry point (API, pages, batch, import, exchange) goes through."""
    entry = _entry_for(holder_type)
    draft = replace(example_draft(entry, issue_date=date(2026, 11, 26)), holder=holder)
    if accepted:
        prepared = prepare_version(entry, draft, version=1, holder_key=KEY, serial_key=KEY)
        assert prepared.metadata["CZZTDMLXDM"] == holder.id_type.value
        return
    with pytest.raises(RecordError) as refused:
        prepare_version(entry, draft, version=1, holder_key=KEY, serial_key=KEY)
    [(path, message)] = refused.value.problems
    assert path == "holder.id_type"
    assert holder_type.label in message and all(t.value in message for t in holder_type.id_types)


def test_the_example_holder_of_every_holder_type_is_accepted() -> None:
    """``certstore catalogue example`` prints a draft that its own type accepts, whatever the holder type."""
    for holder_type in HolderType:
        entry = _entry_for(holder_type)
        prepare_version(entry, example_draft(entry), version=1, holder_key=KEY, serial_key=KEY)


def test_the_holder_id_number_is_in_the_metadata_under_its_spec_name() -> None:
    """规范§二(二) lists the holder (持证者) among a certificate's content: the metadata carry 持证主体 (CZZT), its
    code (CZZTDM, the normalised ID number — a lower-case check character is stored upper-case) and the code's type
    (CZZTDMLXDM)."""
    entry = _entry_for(HolderType.NATURAL_PERSON)
    holder = Holder("张三", HolderIdType.RESIDENT_ID, "11010519491231002x")
    draft = replace(example_draft(entry, issue_date=date(2026, 11, 26)), holder=holder)
    metadata = prepare_version(entry, draft, version=1, holder_key=KEY, serial_key=KEY).metadata
    assert (metadata["CZZT"], metadata["CZZTDM"], metadata["CZZTDMLXDM"]) == (
        "张三",
        "11010519491231002X",
        "111",
    )


def test_the_submission_schema_names_the_accepted_holder_id_types() -> None:
    """The form schema an agency builds its forms from lists only the ID types the type's holder may have, and the
    type's example draft validates against it."""
    import jsonschema

    for holder_type in HolderType:
        entry = _entry_for(holder_type)
        schema = submission_schema(entry)
        accepted = schema["properties"]["holder"]["properties"]["id_type"]["enum"]
        assert accepted == [t.value for t in holder_type.id_types]
        jsonschema.Draft202012Validator(schema).validate(
            draft_to_json(example_draft(entry, issue_date=date(2026, 11, 26)))
        )


def test_the_content_digest_is_sm3_of_fixed_canonical_json() -> None:
    """A vector: the stored digests depend on these exact bytes (sorted keys, no spaces, UTF-8, dates in ISO
    8601, tuples as arrays, any mapping as an object)."""
    content = {
        "catalogue": ["X", 2],
        "number": "No.1",
        "version": 3,
        "holder": ["张三", "111", "110"],
        "face": {"b": "乙", "a": [1, 2.5, None, True], "z": {"y": "𡈽", "x": date(2020, 1, 2)}},
        "issue_date": date(2024, 2, 29),
        "valid": [date(2024, 3, 1), None],
        "metadata": MappingProxyType({"k": ("t", datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC))}),
        "file": None,
    }
    assert content_digest(content) == "b678b05aae0c1b6fcf37b401ef44284c49e32b6ab1306d4be9ed9a6c4994d1ce"
    with pytest.raises(TypeError, match="set has no canonical JSON form"):
        content_digest({"face": {1, 2}})
