"""compact_dumps: the text json.dumps(ensure_ascii=False, separators=(",", ":")) writes, encoder built once."""

from __future__ import annotations

import json
import logging
import math
from datetime import date
from typing import Any

import pytest

from certstore.store.jsontext import compact_dumps

VALUES: list[Any] = [
    {"land_user": "郑州示例置业有限公司", "land_area": 35218.6, "n": 3, "ok": True, "none": None},
    {"b": [1, 2.5, "三", {"z": '\u202e\t\x01"\\', "a": []}], "a": {}},
    ["𡈽䶮𠮷", -0.0, 1e300, 10**30, float("inf"), float("nan")],
    "a string",
    12,
    None,
]


@pytest.mark.parametrize("sort_keys", [False, True])
@pytest.mark.parametrize("value", VALUES)
def test_the_same_text_as_json_dumps(value: Any, sort_keys: bool) -> None:
    expected = json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=sort_keys)
    assert compact_dumps(sort_keys=sort_keys)(value) == expected


def test_values_json_has_no_type_for_are_refused_as_by_json_dumps() -> None:
    dumps = compact_dumps(sort_keys=False)
    with pytest.raises(TypeError, match="date is not JSON serializable"):
        dumps({"issued": date(2026, 12, 7)})
    assert math.isnan(json.loads(dumps([float("nan")]))[0])  # written as json.dumps writes it


def test_psycopg_caches_the_dumper_without_a_leak_warning(caplog: pytest.LogCaptureFixture) -> None:
    """psycopg keys its JSON dumper classes by the dumps function and logs "resource leak" (caching nothing)
    for a closure: the database's serialiser is an object it can key."""
    from psycopg.types import json as psycopg_json

    dumps = compact_dumps(sort_keys=False)
    with caplog.at_level(logging.WARNING, logger="psycopg"):
        first = psycopg_json._make_dumper(psycopg_json.JsonbDumper, dumps)
        assert psycopg_json._make_dumper(psycopg_json.JsonbDumper, dumps) is first
    assert not [r for r in caplog.records if "leak" in r.getMessage()]
