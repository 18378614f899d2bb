"""One message catalogue (消息目录) for the verification report's check reasons and the pages' texts, English and
Chinese (zh-CN).

* :class:`Message` is a text with a stable **key** and **parameters**; it *is* a ``str`` whose value is the English
  text, so a report's JSON ``reason`` stays byte-identical for clients, while the pages and the CLI translate it
  by its key (:func:`translate`).
* Texts built outside the keyed code (reasons of the crypto and seal layers, reports read back from JSON, audit
  reasons stored as text) are translated by the same catalogue: :func:`translate` matches a plain string against
  the catalogue's English templates (``{name}`` placeholders), recovers the parameters and translates them in
  turn; ``"a; b"`` lists are translated part by part. A text no entry matches has no translation (``None``) — the
  caller shows its own Chinese fallback, never the English sentence.
* :func:`text` is a page or CLI text by key; :func:`language` reads the locale (``LC_ALL``, ``LC_MESSAGES``,
  ``LANG``: ``zh…`` → Chinese).

Why a keyed table and not gettext: the English side here is not a translation but the wire format — ``str()`` of a
:class:`Message` must reproduce today's reason exactly, from the key, and a stored English text must be turned
back into key and parameters, which needs the English templates as data next to the Chinese ones. gettext (a
``.po`` compiled to ``.mo``) maps finished strings and has no reverse parse; it would add a build step (Babel, not
installed today) and a catalogue file per language for two fixed languages, while this table is checked by
``tests/test_messages.py`` (the Chinese uses only the English's placeholders, every template parses back) and
costs the CLI's start little (:mod:`certstore.messages.catalogue` is loaded on first use, the regular
expressions of the reverse parse only when something is translated).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from datetime import datetime
from functools import cache, lru_cache
from typing import Any, NamedTuple

from certstore.timezones import beijing_time

__all__ = ["Entry", "Message", "entries", "entry", "language", "text", "translate", "translate_or"]

_PLACEHOLDER = re.compile(r"\{(\w+)\}")
_ISO = r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:\d{2})?"
_ISO_FULL = re.compile(_ISO)
_LATIN = re.compile(r"[A-Za-z]")
_QUOTED = r"'[^']*'|\"[^\"]*\""
#: What a placeholder matches when a plain text is parsed back, by its name (digits at the end ignored).
_PARAM_PATTERNS = {
    "time": _ISO,
    "start": _ISO,
    "end": _ISO,
    "since": _ISO,
    "until": _ISO,
    "count": r"\d+",
    "total": r"\d+",
    "size": r"\d+",
    "index": r"\d+",
    "version": r"\d+",
    "status_code": r"\d{3}",
    "where": r"[^\s:;]+",
    "ref": r"[^\s;]+",
    "path": r"[^\s;]+",
    "id": r"[^\s();]+",
    "method": r"[A-Z][A-Z0-9-]*",
    "indication": r"VALID|INVALID|INDETERMINATE",
    "whose": r"the issuer|the repository",
    "subject": _QUOTED,
    "quoted": _QUOTED,
    "value": _QUOTED,
    "seal": _QUOTED,
    "field": r"[A-Za-z_][\w.]*",
    "extension": r"\w+",
    "serial": r"[0-9A-F]+",
    "digest": r"[0-9a-f]+",
    # free texts that may hold "; " themselves (every other placeholder stops at "; ", where lists split)
    "detail": r".+?",
    "refs": r".+?",
    "why": r".+?",
    "error": r".+?",
    "note": r".+?",
    "problems": r".+?",
    "source": r".+?",
    "age": r"\d+h\d{2}m",
    "chinese": r"[^\x00-\x7f][^()]*?",  # a Chinese text before its English gloss: "请先登录 (login required)"
    "english": r"[A-Za-z][\x20-\x7e]*",
}
#: Any other placeholder: a non-empty text without "; ".
_DEFAULT_PATTERN = r"(?:(?!; ).)+?"
#: The entries a plain text is parsed back with: reasons and the audit log's texts (not names, verdicts, pages).
_PARSED = ("reason.", "audit.")
#: Parameters that must themselves translate for an entry to match (a generic frame around a known text).
_MUST_TRANSLATE = frozenset({"detail", "title", "why"})


class Entry(NamedTuple):
    """One catalogue entry: its key, the English template (the wire text) and the Chinese one."""

    key: str
    en: str
    zh: str

    @property
    def params(self) -> frozenset[str]:
        return frozenset(_PLACEHOLDER.findall(self.en))


@cache
def _catalogue() -> dict[str, Entry]:
    from certstore.messages.catalogue import ENTRIES

    table: dict[str, Entry] = {}
    for key, en, zh in ENTRIES:
        if key in table:
            raise ValueError(f"duplicate message key {key!r}")
        table[key] = Entry(key, en, zh)
    return table


def entries() -> tuple[Entry, ...]:
    """Every entry of the catalogue."""
    return tuple(_catalogue().values())


def entry(key: str) -> Entry:
    """The entry with ``key`` (KeyError when unknown)."""
    return _catalogue()[key]


class Message(str):
    """A text with a stable key and parameters; as a ``str`` it is the English text (what JSON carries)."""

    key: str
    params: Mapping[str, Any]

    def __new__(cls, key: str, /, **params: Any) -> Message:
        made = super().__new__(cls, _fill(entry(key).en, params, "en"))
        made.key = key
        made.params = params
        return made

    def __reduce__(self) -> tuple[Any, ...]:  # pickling and copying keep the key
        return (_message, (self.key, dict(self.params)))

    def zh(self) -> str:
        """The Chinese text."""
        return _fill(entry(self.key).zh, self.params, "zh")


def _message(key: str, params: dict[str, Any]) -> Message:
    return Message(key, **params)


def _localised_param(value: Any) -> str:
    if isinstance(value, Message):
        return value.zh()
    if isinstance(value, datetime):
        return beijing_time(value)
    rendered = str(value)
    if _ISO_FULL.fullmatch(rendered):
        return beijing_time(rendered)
    translated = _parse(rendered) if rendered else None
    return rendered if translated is None else translated


def _fill(template: str, params: Mapping[str, Any], lang: str) -> str:
    def value(match: re.Match[str]) -> str:
        found = params[match.group(1)]
        return _localised_param(found) if lang == "zh" else str(found)

    return _PLACEHOLDER.sub(value, template)


def _pattern(name: str) -> str:
    base = name.rstrip("0123456789")
    if base.endswith("_time"):
        base = "time"
    return _PARAM_PATTERNS.get(base, _DEFAULT_PATTERN)


@cache
def _matchers() -> tuple[tuple[Entry, re.Pattern[str]], ...]:
    """Every entry with literal text, as a regular expression over its English template: the most specific
    (longest literal text) first."""
    found = []
    for item in _catalogue().values():
        literal = _PLACEHOLDER.sub("", item.en)
        if not literal.strip() or not item.key.startswith(_PARSED):
            continue
        parts: list[str] = []
        position = 0
        seen: set[str] = set()
        for match in _PLACEHOLDER.finditer(item.en):
            parts.append(re.escape(item.en[position : match.start()]))
            name = match.group(1)
            parts.append(f"(?P={name})" if name in seen else f"(?P<{name}>{_pattern(name)})")
            seen.add(name)
            position = match.end()
        parts.append(re.escape(item.en[position:]))
        found.append((len(literal), item, re.compile("".join(parts), re.DOTALL)))
    found.sort(key=lambda f: -f[0])
    return tuple((item, pattern) for _, item, pattern in found)


@lru_cache(maxsize=4096)
def _parse(text: str) -> str | None:
    """The Chinese of a plain English text, by the catalogue's templates (None when nothing matches); a text
    without a Latin letter (Chinese already, or a number) is its own translation."""
    if not _LATIN.search(text):
        return text
    for item, pattern in _matchers():
        match = pattern.fullmatch(text)
        if match is None:
            continue
        params = match.groupdict()
        if any(
            name.rstrip("0123456789") in _MUST_TRANSLATE and _parse(value) is None
            for name, value in params.items()
        ):
            continue
        return _fill(item.zh, params, "zh")
    if "; " in text:
        parts = [_parse(part) for part in text.split("; ")]
        if all(part is not None for part in parts):
            return "；".join(part for part in parts if part is not None)
    return None


def translate(message: str | None, lang: str = "zh") -> str | None:
    """``message`` in ``lang``: English is the text itself; Chinese by the key of a :class:`Message`, else by
    matching the English text against the catalogue (None when no entry matches)."""
    if message is None:
        return None
    if lang != "zh":
        return str(message)
    if isinstance(message, Message):
        return message.zh()
    return _parse(str(message))


def translate_or(message: str | None, fallback: str, lang: str = "zh") -> str:
    """:func:`translate`, or ``fallback`` when there is no translation."""
    translated = translate(message, lang)
    return fallback if translated is None else translated


def text(key: str, lang: str = "zh", /, **params: Any) -> str:
    """A page or CLI text by key, in ``lang``."""
    item = entry(key)
    return _fill(item.zh if lang == "zh" else item.en, params, lang)


def language(environ: Mapping[str, str] | None = None) -> str:
    """``"zh"`` when the locale asks for Chinese (the first of ``LC_ALL``, ``LC_MESSAGES``, ``LANG`` that is set
    starts with ``zh``), else ``"en"``."""
    env = os.environ if environ is None else environ
    for name in ("LC_ALL", "LC_MESSAGES", "LANG"):
        value = env.get(name)
        if value:
            return "zh" if value.lower().startswith("zh") else "en"
    return "en"
