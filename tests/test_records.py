"""Certificate drafts: the DATA.json form, validation against the catalogue, identifiers, metadata, digests."""

from __future__ import annotations

import os
from datetime import date

import pytest

from certstore.catalogue import shipped_entries
from certstore.identifiers import CertificateIdentifier, HolderIdType
from certstore.records import (
    CertificateDraft,
    Holder,
    RecordError,
    draft_from_json,
    draft_to_json,
    example_draft,
    prepare_version,
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
