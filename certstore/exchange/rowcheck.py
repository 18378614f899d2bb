"""Up-front checks of a front-end row, with NAMED limits (documented in ``docs/exchange.md``, "Limits").

Every check here turns an odd value into field-level problems ``[(path, message), …]`` before anything is
parsed further, prepared, rendered or sealed — so one odd row is rejected with a receipt and never stops its
source's exchange:

- JSON text (``data``, ``document``): at most :data:`MAX_JSON_CHARS` characters, nesting at most
  :data:`MAX_JSON_DEPTH` levels (a document nested deeper than Python's recursion limit is refused by the parser
  with a ``RecursionError``, caught here; shallower excess is measured after parsing), numbers finite (``NaN``,
  ``Infinity`` and overflowing literals such as ``1e400`` are refused);
- strings: no lone surrogates (U+D800–U+DFFF, which no database can store as UTF-8), no bidirectional
  embedding/override/isolate characters (U+202A–U+202E, U+2066–U+2069: they make a face read differently than
  it is stored), no control characters (U+0000–U+001F, U+007F–U+009F) — except a line feed (and CR LF) in
  multi-line face fields and in ``metadata`` values;
- versions: whole numbers 1 … :data:`MAX_VERSION`;
- dates of a certificate: ``issue_date``, ``valid_from`` and ``valid_until`` not before :data:`EARLIEST_DATE`
  nor after :data:`LATEST_DATE`; ``valid_until`` at most the type's validity after ``issue_date`` (a ``fixed``
  type: its ``years``; any other: :data:`MAX_VALIDITY_YEARS`);
- an agency-sealed ``file``: at most :data:`MAX_FILE_BYTES`, and an OFD (a ZIP: ``PK\\x03\\x04``) or a PDF
  (``%PDF-``) whose kind matches ``file_media_type``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from datetime import date
from typing import Any

from certstore.catalogue import CatalogueEntry
from certstore.catalogue.model import ValidityKind
from certstore.exchange.cursor import Problems

__all__ = [
    "EARLIEST_DATE",
    "LATEST_DATE",
    "MAX_FILE_BYTES",
    "MAX_JSON_CHARS",
    "MAX_JSON_DEPTH",
    "MAX_VALIDITY_YEARS",
    "MAX_VERSION",
    "RowCheckError",
    "check_dates",
    "check_file",
    "check_text",
    "check_tree",
    "load_json",
    "parse_json",
]

#: The highest certificate version a row may carry (versions are 1, 2, …; 999 changes are far beyond practice).
MAX_VERSION = 999
#: The deepest nesting of a JSON document (objects and arrays; DATA.json needs 3, a catalogue entry 4).
MAX_JSON_DEPTH = 32
#: The longest JSON text of one row (characters).
MAX_JSON_CHARS = 1_000_000
#: The earliest certificate date (issue_date, valid_from, valid_until): the founding of the People's Republic.
EARLIEST_DATE = date(1949, 10, 1)
#: The latest certificate date accepted at all.
LATEST_DATE = date(2199, 12, 31)
#: The longest validity of a type that does not fix one (``permanent`` or ``field`` validity rules).
MAX_VALIDITY_YEARS = 100
#: The largest agency-sealed file (bytes).
MAX_FILE_BYTES = 64 * 1024 * 1024

_BIDI = re.compile("[\u202a-\u202e\u2066-\u2069]")
_SURROGATE = re.compile("[\ud800-\udfff]")
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")
_CONTROL_BUT_NEWLINE = re.compile("[\x00-\x09\x0b\x0c\x0e-\x1f\x7f-\x9f]|\r(?!\n)")
_MAGIC = {"application/ofd": b"PK\x03\x04", "application/pdf": b"%PDF-"}
_INFINITIES = (float("inf"), float("-inf"))
NOT_FINITE = "numbers must be finite (no NaN, Infinity or overflowing literals)"


class RowCheckError(ValueError):
    """A JSON column that cannot be taken: ``problems`` say where and why."""

    def __init__(self, problems: Problems) -> None:
        super().__init__("; ".join(f"{p}: {m}" for p, m in problems))
        self.problems = problems


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number (numbers must be finite)")


def load_json(text: Any, path: str) -> Any:
    """Parse a JSON column within the limits and check its tree (:class:`RowCheckError` naming ``path``)."""
    value = parse_json(text, path)
    problems = check_tree(value, path)
    if problems:
        raise RowCheckError(problems)
    return value


def parse_json(text: Any, path: str) -> Any:
    """Parse a JSON column: UTF-8 text within :data:`MAX_JSON_CHARS`, finite numbers, not nested beyond the
    parser's recursion limit (:class:`RowCheckError` naming ``path``); :func:`check_tree` checks the rest."""
    if isinstance(text, bytes | bytearray | memoryview):
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise RowCheckError([(path, f"not UTF-8 JSON text: {exc}")]) from None
    if not isinstance(text, str):
        raise RowCheckError([(path, f"not JSON text: {type(text).__name__}")])
    if len(text) > MAX_JSON_CHARS:
        raise RowCheckError([(path, f"longer than {MAX_JSON_CHARS} characters (MAX_JSON_CHARS)")])
    try:
        value = json.loads(text, parse_constant=_no_constant)
    except RecursionError:
        raise RowCheckError(
            [(path, f"nested deeper than {MAX_JSON_DEPTH} levels (MAX_JSON_DEPTH)")]
        ) from None
    except (ValueError, TypeError) as exc:  # JSONDecodeError, NaN/Infinity, over-long integers
        raise RowCheckError([(path, f"not JSON: {exc}")]) from None
    return value


def check_tree(value: Any, path: str, *, newline_ok: Iterable[str] = ()) -> Problems:
    """Depth, finite numbers and the characters of every string (keys too) of a parsed JSON value (exactly the
    types :func:`json.loads` makes). Strings at paths in ``newline_ok`` (and under ``<path>.metadata``) may hold
    line feeds. A node's path is spelled out only when a problem is found there or it holds a non-printable
    character (the rows of a cycle are almost all clean)."""
    allowed = set(newline_ok)
    metadata = f"{path}.metadata."
    problems: Problems = []
    stack: list[tuple[Any, str, str | int | None, int]] = [(value, path, None, 0)]
    while stack:
        item, parent, step, depth = stack.pop()
        kind = type(item)
        if kind is str:
            if not item.isprintable():
                where = _spelled(parent, step)
                multiline = where in allowed or where.startswith(metadata)
                problems += check_text(item, where, newline=multiline)
        elif kind is dict or kind is list:
            where = _spelled(parent, step)
            if depth >= MAX_JSON_DEPTH:
                return [(where, f"nested deeper than {MAX_JSON_DEPTH} levels (MAX_JSON_DEPTH)")]
            if kind is dict:
                for key, child in item.items():
                    if not key.isprintable():
                        problems += check_text(key, where)
                    stack.append((child, where, key, depth + 1))
            else:
                stack.extend((child, where, index, depth + 1) for index, child in enumerate(item))
        elif kind is float and (item != item or item in _INFINITIES):
            problems.append((_spelled(parent, step), NOT_FINITE))
    return problems


def _spelled(parent: str, step: str | int | None) -> str:
    """The path of a node: its parent's path and its key (``.key``) or index (``[i]``)."""
    if step is None:
        return parent
    return f"{parent}[{step}]" if type(step) is int else f"{parent}.{step}"


def _char(ch: str) -> str:
    return f"U+{ord(ch):04X}"


def check_text(value: str, path: str, *, newline: bool = False) -> Problems:
    """Lone surrogates, bidi controls and control characters (a line feed only where ``newline``)."""
    if value.isprintable():
        return []  # the common case, fast (a string with any of the characters below is not printable)
    problems: Problems = []
    found = _SURROGATE.search(value)
    if found:
        problems.append((path, f"a lone surrogate {_char(found.group())} (not a character; send UTF-8 text)"))
    found = _BIDI.search(value)
    if found:
        problems.append(
            (path, f"bidirectional control character {_char(found.group())} is not allowed (U+202A–U+202E, "
                   "U+2066–U+2069)")
        )  # fmt: skip
    found = (_CONTROL_BUT_NEWLINE if newline else _CONTROL).search(value)
    if found:
        where = "" if newline else " (line breaks only in multi-line face fields and metadata)"
        problems.append((path, f"control character {_char(found.group())} is not allowed{where}"))
    return problems


def _add_years(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year + years)
    except ValueError:  # 29 February
        return day.replace(year=day.year + years, day=28)


def check_dates(
    entry: CatalogueEntry, issue_date: date | None, valid_from: date | None, valid_until: date | None
) -> Problems:
    """The certificate's dates within :data:`EARLIEST_DATE` … :data:`LATEST_DATE`, and ``valid_until`` within
    the type's validity after the issue date."""
    problems: Problems = []
    for name, day in (("issue_date", issue_date), ("valid_from", valid_from), ("valid_until", valid_until)):
        if day is not None and not EARLIEST_DATE <= day <= LATEST_DATE:
            problems.append((f"data.{name}", f"{day} is outside {EARLIEST_DATE} … {LATEST_DATE}"))
    if problems or issue_date is None or valid_until is None:
        return problems
    rule = entry.validity
    years = rule.years if rule.kind is ValidityKind.FIXED and rule.years else MAX_VALIDITY_YEARS
    latest = _add_years(issue_date, years)
    if valid_until > latest:
        problems.append(
            ("data.valid_until", f"{valid_until} is more than {years} years after the issue date {issue_date} "
                                 f"(the longest validity of {entry.code})")
        )  # fmt: skip
    return problems


def check_file(file: bytes, media_type: Any) -> str | None:
    """Why an agency's ``file`` is not an OFD or PDF of its ``file_media_type`` (None: it looks like one)."""
    if len(file) > MAX_FILE_BYTES:
        return f"larger than {MAX_FILE_BYTES} bytes (MAX_FILE_BYTES)"
    kind = next((t for t, magic in _MAGIC.items() if file.startswith(magic)), None)
    if kind is None:
        return "neither an OFD (a ZIP package) nor a PDF file"
    if media_type != kind:
        return f"the file is {kind}, but file_media_type says {media_type!r}"
    return None
