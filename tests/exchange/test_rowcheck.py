"""The up-front checks of a front-end row's JSON (:mod:`certstore.exchange.rowcheck`): every problem named with
its path, clean documents passed untouched (``test_odd_rows.py`` drives whole rows through a cycle)."""

from __future__ import annotations

import json

import pytest

from certstore.exchange import rowcheck


def test_a_clean_document_has_no_problems() -> None:
    document = {"face": {"名称": "𡈽 䶮 𠮷", "地址": "多行\n文本", "n": [1, 2.5, None, True]}, "metadata": {}}
    assert rowcheck.check_tree(document, "data", newline_ok=["data.face.地址"]) == []


def test_each_problem_is_named_with_its_path() -> None:
    document = json.loads(
        '{"face": {"a": "x\\ty", "b\\u0001": "ok", "list": ["ok", {"deep": "\\u202e"}], "f": 1e999},'
        ' "metadata": {"note": "line\\nbreak", "bad": "\\ud800"}}'
    )
    problems = rowcheck.check_tree(document, "data")
    assert sorted(problems) == sorted(
        [
            ("data.face.a", "control character U+0009 is not allowed (line breaks only in multi-line face "
                            "fields and metadata)"),
            ("data.face", "control character U+0001 is not allowed (line breaks only in multi-line face fields "
                          "and metadata)"),
            ("data.face.list[1].deep", "bidirectional control character U+202E is not allowed (U+202A–U+202E, "
                                       "U+2066–U+2069)"),
            ("data.face.f", rowcheck.NOT_FINITE),
            ("data.metadata.bad", "a lone surrogate U+D800 (not a character; send UTF-8 text)"),
        ]
    )  # fmt: skip


def test_line_feeds_only_where_allowed() -> None:
    document = {"face": {"地址": "一\n二", "名称": "一\n二"}}
    problems = rowcheck.check_tree(document, "data", newline_ok=["data.face.地址"])
    assert [path for path, _ in problems] == ["data.face.名称"]


@pytest.mark.parametrize("depth", [rowcheck.MAX_JSON_DEPTH - 1, rowcheck.MAX_JSON_DEPTH])
def test_nesting_is_limited(depth: int) -> None:
    document: object = "leaf"
    for _ in range(depth + 1):
        document = [document]
    problems = rowcheck.check_tree(document, "data")
    if depth < rowcheck.MAX_JSON_DEPTH:
        assert problems == []
    else:
        path = "data" + "[0]" * rowcheck.MAX_JSON_DEPTH
        assert problems == [(path, f"nested deeper than {rowcheck.MAX_JSON_DEPTH} levels (MAX_JSON_DEPTH)")]
