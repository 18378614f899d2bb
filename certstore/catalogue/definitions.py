"""The catalogue definitions shipped with certstore (``schemas/catalogue/*.json``) and example face data.

The six shipped types are those of the Zhengzhou construction-project approval reform (see
``docs/catalogue.md``). Their issuers' credit codes are *fictional* sample codes (check-digit valid, of the
government-body form ``11410100…``): replace them with the real codes before production use.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from .model import PERMANENT, CatalogueEntry, CatalogueError, schemas_dir

__all__ = ["base_image_path", "catalogue_dir", "example_face", "shipped_entries", "shipped_entry"]

#: Deterministic fallbacks for face fields that give no ``examples`` (all shipped fields do).
_FALLBACK_BY_FORMAT: dict[str, str] = {
    "date": "2024-06-18",
    "date-or-permanent": PERMANENT,
    "uscc": "91410100MA00000311",  # fictional, check-digit valid
    "resident-id": "11010519491231002X",  # the GB 11643-1999 example number
}


def catalogue_dir() -> Path:
    """``schemas/catalogue``: one JSON document per shipped catalogue entry (version)."""
    return schemas_dir() / "catalogue"


def base_image_path(entry: CatalogueEntry) -> Path | None:
    """The base image (证照底图) file of ``entry``, or None when it has none."""
    if entry.base_image is None:
        return None
    return catalogue_dir() / "base-images" / entry.base_image


@cache
def _load() -> tuple[CatalogueEntry, ...]:
    directory = catalogue_dir()
    entries: list[CatalogueEntry] = []
    seen: dict[tuple[str, int], str] = {}
    for path in sorted(directory.glob("*.json")):
        source = f"{directory.name}/{path.name}"
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise CatalogueError([("$", f"is not valid JSON: {exc}")], source=source) from exc
        entry = CatalogueEntry.from_document(document, source=source)
        image = base_image_path(entry)
        if image is not None and not image.is_file():
            raise CatalogueError([("$.base_image", f"{image} does not exist")], source=source)
        key = (entry.code, entry.version)
        if key in seen:
            raise CatalogueError(
                [("$.code", f"{entry.code} version {entry.version} is also defined in {seen[key]}")],
                source=source,
            )
        seen[key] = path.name
        entries.append(entry)
    return tuple(sorted(entries, key=lambda e: (e.code, e.version)))


def shipped_entries() -> list[CatalogueEntry]:
    """Every shipped catalogue entry, validated, ordered by (code, version); :class:`CatalogueError` names the
    file and JSON path of the first bad document."""
    return list(_load())


def shipped_entry(code: str, version: int | None = None) -> CatalogueEntry:
    """The shipped entry ``code`` in ``version`` (the highest version when None); KeyError if unknown."""
    matches = [e for e in _load() if e.code == code and (version is None or e.version == version)]
    if not matches:
        what = code if version is None else f"{code} version {version}"
        raise KeyError(f"no shipped catalogue entry {what}")
    return matches[-1]


def _fallback(spec: dict[str, Any]) -> Any:
    if "enum" in spec:
        return spec["enum"][0]
    kind = spec["type"]
    if kind == "boolean":
        return False
    if kind in ("integer", "number"):
        low = spec.get("minimum", spec.get("exclusiveMinimum", 0) + 1)
        return int(low) if kind == "integer" else float(low)
    if spec.get("format") in _FALLBACK_BY_FORMAT:
        return _FALLBACK_BY_FORMAT[spec["format"]]
    return f"示例{spec['title']}"


def example_face(entry: CatalogueEntry) -> dict[str, Any]:
    """A realistic, valid example of ``entry``'s face data (照面数据), every field filled, in layout order.

    Deterministic: each field's first ``examples`` value from the face schema (Chinese sample values, all
    fictional), else a value derived from its type and format. Usable as DATA.json for ``certstore issue``.
    """
    properties = entry.face_schema["properties"]
    face = {}
    for field in entry.face_fields():
        spec = properties[field.name]
        face[field.name] = spec["examples"][0] if spec.get("examples") else _fallback(spec)
    return entry.validate_face(face)
