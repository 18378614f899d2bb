"""A compiled fast path for face data (照面数据) that is valid: :func:`fast_face_check`.

Every version a repository takes in — API, pages, batch, import, and the exchange's 100k-row cycles — has its
face checked against its catalogue type's JSON Schema. ``jsonschema`` interprets the schema anew for every
instance (about a fifth of a data-only exchange cycle); ``fastjsonschema`` compiles it to Python once. The
compiled check only ever *accepts*: when it finds any fault, the full ``jsonschema`` validator runs and names
every problem with its path, exactly as before. So a verdict of "invalid" and its reasons never come from here.

That is sound only where both read the schema alike. ``fastjsonschema`` implements draft-07, the face schemas
are 2020-12; for the keywords in :data:`SAME_IN_BOTH` the two drafts agree, and the compiled check is used only
for a schema made of those alone (annotations such as ``title`` and ``x-label`` aside), with the repository's own
format checks (``date``, ``uscc``, ``resident-id``, …). ``enum`` and ``const`` must list strings only: Python's
``1 == True`` would let the compiled check accept a boolean where ``jsonschema`` does not. Any other schema is
checked by ``jsonschema`` alone. ``tests/catalogue/test_fastcheck.py`` holds the two to agreement over the
shipped types and a corpus of faulty faces.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from functools import lru_cache
from typing import Any

import fastjsonschema
from jsonschema import FormatChecker

__all__ = ["SAME_IN_BOTH", "fast_face_check"]

#: Validation keywords that mean the same in draft-07 and 2020-12 (on the value types they apply to).
SAME_IN_BOTH = frozenset({
    "type", "properties", "required", "additionalProperties", "minLength", "maxLength", "pattern", "format",
    "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "enum", "const",
})  # fmt: skip
#: Keywords that annotate and never validate.
ANNOTATIONS = frozenset({"$schema", "title", "description", "examples", "default", "$comment"})

FaceCheck = Callable[[Any], bool]


def _plain(schema: Any, *, top: bool) -> bool:
    """Whether ``schema`` uses only :data:`SAME_IN_BOTH` (strings-only ``enum``/``const``, boolean
    ``additionalProperties``) and annotations, its ``properties`` likewise."""
    if not isinstance(schema, Mapping):
        return False
    for key, value in schema.items():
        if key.startswith("x-") or key in ANNOTATIONS:
            continue
        if key not in SAME_IN_BOTH:
            return False
        if key == "properties":
            if not isinstance(value, Mapping) or not all(_plain(v, top=False) for v in value.values()):
                return False
        elif (
            (key == "additionalProperties" and not isinstance(value, bool))
            or (key == "enum" and not (isinstance(value, list) and all(isinstance(v, str) for v in value)))
            or (key == "const" and not isinstance(value, str))
        ):
            return False
    return not top or schema.get("type") == "object"


@lru_cache(maxsize=128)
def _compiled(schema_json: str, formats: FormatChecker) -> Callable[[Any], Any] | None:
    schema = json.loads(schema_json)
    if not _plain(schema, top=True):
        return None
    draft7 = {key: value for key, value in schema.items() if not key.startswith("x-")}
    draft7["$schema"] = "http://json-schema.org/draft-07/schema#"
    checks = {name: (lambda value, name=name: formats.conforms(value, name)) for name in formats.checkers}
    try:
        return fastjsonschema.compile(draft7, formats=checks, use_default=False, detailed_exceptions=False)
    except fastjsonschema.JsonSchemaDefinitionException:  # e.g. a format it does not know: jsonschema alone
        return None


def fast_face_check(schema: Mapping[str, Any], formats: FormatChecker) -> FaceCheck | None:
    """The compiled check of face schema ``schema`` (cached per schema): True when the face is valid, False when
    the full validator must look (it names the problems); None when the schema is not one it can read alike."""
    compiled = _compiled(json.dumps(schema, sort_keys=True, ensure_ascii=False), formats)
    if compiled is None:
        return None

    def check(face: Any) -> bool:
        try:
            compiled(face)
        except fastjsonschema.JsonSchemaValueException:
            return False
        return True

    return check
