"""Compact JSON text with the encoder built once: :func:`compact_dumps`.

``json.dumps(value, ensure_ascii=False, separators=(",", ":"))`` builds a ``JSONEncoder`` (and its C encoder) on
every call, ~5 µs — more than encoding a small document takes. The JSON columns (faces, metadata, details) and
the audit log write millions of small documents, so they encode through one C encoder built at import.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from json import encoder as _json_encoder
from typing import Any

__all__ = ["compact_dumps"]


def _unserialisable(value: Any) -> Any:
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def compact_dumps(*, sort_keys: bool) -> Callable[[Any], str]:
    """A function with the output of ``json.dumps(value, ensure_ascii=False, separators=(",", ":"),
    sort_keys=sort_keys)`` (non-ASCII kept: 中文 stays readable; ``NaN`` written as ``json.dumps`` writes it), the
    encoder built once: the same C encoder ``json.dumps`` uses. No circular-reference check (a cycle ends in
    ``RecursionError`` instead of ``ValueError``); a value JSON has no type for raises ``TypeError`` as there."""
    make = getattr(_json_encoder, "c_make_encoder", None)
    if make is None:  # no C accelerator: the pure-Python encoder, still built once
        return json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), sort_keys=sort_keys).encode
    encode = make(
        None, _unserialisable, _json_encoder.encode_basestring, None, ":", ",", sort_keys, False, True
    )
    return _Dumps(encode)


class _Dumps:
    """The function :func:`compact_dumps` returns: an object, not a closure, because psycopg keys its per-dumper
    cache by the function and logs a "resource leak" warning (and caches nothing) for a closure."""

    __slots__ = ("_encode",)

    def __init__(self, encode: Callable[[Any, int], Any]) -> None:
        self._encode = encode

    def __call__(self, value: Any) -> str:
        return "".join(self._encode(value, 0))
