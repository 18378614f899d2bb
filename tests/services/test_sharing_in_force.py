"""Window cards (issue 21 item 5), what the core gives them: since when a certificate is not in force
(:func:`certstore.services.sharing.not_in_force_since`; the refusal to attach one is tested with the other sharing
use cases, tests/services/test_sharing.py), and each type's distinguishing field (区分字段) — named by the catalogue
entry, or its first required string field."""

from __future__ import annotations

import copy
import json
from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest

from certstore.catalogue import CatalogueEntry, CatalogueError
from certstore.lifecycle import Status
from certstore.records import Certificate, Holder
from certstore.services import sharing
from tests.services import test_sharing as sharing_tests
from tests.services.test_sharing import (
    AGENCY_ORG,
    CONSTRUCTION,
    H1,
)

# the sharing tests' fixtures: an application recording its audit entries, and certificates of two holders
app, dev_keystore, world = sharing_tests.app, sharing_tests.dev_keystore, sharing_tests.world

SHIPPED = Path(__file__).resolve().parents[2] / "schemas" / "catalogue"


def test_since_when_each_state_began() -> None:
    """Expired: the day after the last valid day; the others: the day (Beijing time) their status changed."""
    changed = datetime(2026, 3, 1, 17, 30, tzinfo=UTC)  # 01:30 on 2 March in Beijing
    certificate = _certificate(valid_until=date(2026, 5, 31), status_changed_at=changed)
    assert sharing.not_in_force_since(certificate, Status.EXPIRED) == date(2026, 6, 1)
    assert sharing.not_in_force_since(certificate, Status.SUSPENDED) == date(2026, 3, 2)
    assert sharing.not_in_force_since(certificate, Status.VALID) is None


def _certificate(**changes: Any) -> Certificate:
    base = Certificate(
        identifier="x", version=1, serial="s", certificate_number="n", name="证", catalogue_code=CONSTRUCTION,
        catalogue_version=1, issuer_code=AGENCY_ORG, issuer_name="局", holder=Holder("甲", H1.id_type, "1"),
        holder_ref="r", issue_date=date(2026, 1, 1), valid_from=date(2026, 1, 1), valid_until=None, face={},
        metadata={}, stored_status=Status.VALID, status_changed_at=datetime(2026, 1, 1, tzinfo=UTC),
        file_key=None, file_media_type=None, superseded_by=None, created_at=datetime(2026, 1, 1, tzinfo=UTC),
    )  # fmt: skip
    return replace(base, **changes)


def test_each_shipped_type_names_its_distinguishing_field() -> None:
    """The six shipped entries name a project or entity name; round trip through the document keeps it."""
    found = {}
    for path in sorted(SHIPPED.glob("*.json")):
        entry = CatalogueEntry.from_document(json.loads(path.read_text("utf-8")), source=path.name)
        field = entry.distinguishing_face_field()
        assert field is not None and field.name == entry.distinguishing_field
        assert CatalogueEntry.from_document(entry.to_document()) == entry
        found[entry.name] = field.title
    assert found["建筑工程施工许可证"] == "工程名称" and found["营业执照"] == "名称"
    assert len(found) == 6


def test_the_distinguishing_field_must_be_a_face_field_and_falls_back() -> None:
    """A name that is not a face field is refused with its path; without one, the first required string field."""
    document = json.loads((SHIPPED / "construction-permit.json").read_text("utf-8"))
    wrong = copy.deepcopy(document) | {"distinguishing_field": "no_such_field"}
    with pytest.raises(CatalogueError) as caught:
        CatalogueEntry.from_document(wrong)
    assert ("$.distinguishing_field", "'no_such_field' is not a face field") in caught.value.errors
    del document["distinguishing_field"]
    fallback = CatalogueEntry.from_document(document).distinguishing_face_field()
    assert fallback is not None and fallback.name == "builder"  # x-order 1, required, a string
