"""The compiled fast path for valid faces (certstore/catalogue/fastcheck.py) agrees with ``jsonschema``: it never
accepts a face the full validator refuses, and it accepts the valid ones (else it would buy nothing)."""

from __future__ import annotations

import random
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from certstore.catalogue import CatalogueEntry, FaceDataError
from certstore.catalogue.definitions import example_face, shipped_entries
from certstore.catalogue.fastcheck import fast_face_check
from certstore.catalogue.model import _formats

ENTRIES = shipped_entries()

#: Values of every JSON type and the edge cases where Python and JSON Schema disagree (bool vs 1, 1.0 vs 1).
ODD_VALUES: list[Any] = [
    None, True, False, 0, 1, -1, 1.0, 2.5, -0.0, 10**30, "", " ", "x", "1", "2024-02-30", "2024-02-29",
    "永久", "长期", "9" * 18, "91410100MA44XXXX0X", "410105199001011234", "𡈽𡈽", "a" * 201, "中" * 2001,
    [], ["x"], {}, {"a": 1},
]  # fmt: skip


def _mutations(entry: CatalogueEntry, rng: random.Random) -> list[dict[str, Any]]:
    """Faulty and borderline faces: each field replaced by each odd value, each field removed, an unknown
    field added, and random multi-field mixes."""
    base = example_face(entry)
    faces: list[dict[str, Any]] = [base]
    for name in entry.face_schema["properties"]:
        for value in ODD_VALUES:
            faces.append({**base, name: value})
        faces.append({k: v for k, v in base.items() if k != name})
    faces.append({**base, "not_a_field": "x"})
    names = list(entry.face_schema["properties"])
    for _ in range(200):
        face = dict(base)
        for name in rng.sample(names, k=min(3, len(names))):
            face[name] = rng.choice(ODD_VALUES)
        faces.append(face)
    return faces


@pytest.mark.parametrize("entry", ENTRIES, ids=lambda e: e.code)
def test_the_fast_path_accepts_exactly_what_jsonschema_accepts(entry: CatalogueEntry) -> None:
    """Over the shipped types and ~1,000 faces each (every field with values of every type, bool/int and
    1.0/1 edge cases, over-long and rare-character strings, invalid dates and ID numbers, missing and unknown
    fields), the compiled check accepts a face if and only if ``jsonschema`` does."""
    fast = fast_face_check(entry.face_schema, _formats())
    assert fast is not None, "the shipped face schemas use only keywords both drafts read alike"
    full = Draft202012Validator(entry.face_schema, format_checker=_formats())
    faces = _mutations(entry, random.Random(entry.code))
    disagreements = [f for f in faces if fast(f) != full.is_valid(f)]
    assert not disagreements, disagreements[:3]
    assert sum(map(fast, faces)) >= 1  # the example face at least


def test_validate_face_still_names_every_problem() -> None:
    """A faulty face still gets the full validator's problems, with their paths (the fast path only accepts)."""
    entry = ENTRIES[0]
    face = example_face(entry)
    first = next(iter(entry.face_schema["properties"]))
    with pytest.raises(FaceDataError) as caught:
        entry.validate_face({**face, first: True, "not_a_field": 1})
    paths = [path for path, _ in caught.value.errors]
    assert f"$.{first}" in paths and "$.not_a_field" in paths
    assert entry.validate_face(face) == face


@pytest.mark.parametrize(
    "extra",
    [
        {"properties": {"a": {"type": "array", "items": {"type": "string"}}}},
        {"properties": {"a": {"enum": [1, 2]}}},
        {"properties": {"a": {"const": 1}}},
        {"additionalProperties": {"type": "string"}},
        {"properties": {"a": {"type": "string", "if": {"minLength": 1}}}},
        {"$defs": {"x": {"type": "string"}}},
    ],
)
def test_schemas_read_differently_are_left_to_jsonschema(extra: dict[str, Any]) -> None:
    """A schema with a keyword outside the shared set (or an enum of numbers: ``1 == True`` in Python) gets no
    fast path."""
    schema = {"type": "object", "properties": {}, **extra}
    assert fast_face_check(schema, _formats()) is None
