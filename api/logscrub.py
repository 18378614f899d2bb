"""Personal data out of the server's access log (issue 17).

``certstore serve`` runs uvicorn with its access log on: one line per request, ``client - "GET /path?query
HTTP/1.1" 200``. The API no longer takes holder ID numbers in URLs (:mod:`api.scope`), but a client can still
send one — an old integration calling ``/api/v1/holders/{type}/{id}/certificates``, a ``holder_id=`` it was never
told to drop — and the line is written before anybody answers 410. :class:`AccessLogScrubber` is a
:class:`logging.Filter` that rewrites each record before it is formatted:

- every 18-character resident ID number (17 digits and a check digit ``0-9``/``X``) and unified social credit
  code (GB 32100: 18 characters of ``0-9A-HJ-NPQRTUWXY``), standing alone or after a percent-escape, becomes
  ``******************``;
- the value of every ``holder_id`` / ``id_number`` parameter (also percent-encoded, any case) becomes ``***``;
- the ID segment of ``/holders/{type}/{id}`` becomes ``***``;
- a request line whose percent-decoded form still holds an ID number is withheld as a whole.

Uvicorn's access records keep their shape (``args`` = client, method, path, HTTP version, status), so its
formatter still works; the filter rewrites string arguments and the message, and never drops a record.
:func:`logging_config` is uvicorn's default configuration with the filter on the access (and error) logger —
``certstore serve`` hands it to uvicorn, whose worker processes then install the filter themselves.
"""

from __future__ import annotations

import copy
import logging
import re
from typing import Any
from urllib.parse import unquote_plus

__all__ = ["MASK", "WITHHELD", "AccessLogScrubber", "logging_config", "scrub"]

MASK = "*" * 18
_HIDDEN = "***"
WITHHELD = "[request line withheld: it holds an ID number]"

_ID_CHARS = "0-9A-HJ-NPQRTUWXYa-hj-npqrtuwxy"  # GB 32100 (credit codes); resident IDs are 0-9 with X
# standing alone: not inside a longer run of letters and digits; a percent-escape just before it counts as a
# separator (``%2F410105…``)
_ID_NUMBER = re.compile(
    rf"(?:(?<![0-9A-Za-z])|(?<=%[0-9A-Fa-f][0-9A-Fa-f]))[{_ID_CHARS}]{{18}}(?![0-9A-Za-z])"
)
_ID_PARAMETER = re.compile(r"(?i)((?:^|[?&;\s])(?:holder(?:_|%5f)id|id(?:_|%5f)number)=)[^&;#\s\"]*")
_HOLDER_PATH = re.compile(r"(?i)(/holders/[^/?#\s]*/)[^/?#\s\"]+")


def _mask(text: str) -> str:
    text = _HOLDER_PATH.sub(rf"\1{_HIDDEN}", text)
    text = _ID_PARAMETER.sub(rf"\1{_HIDDEN}", text)
    return _ID_NUMBER.sub(MASK, text)


def scrub(text: str) -> str:
    """``text`` with ID numbers, holder ID parameters and holder path segments masked; withheld as a whole
    when its percent-decoded form would still show one."""
    if not text:
        return text
    masked = _mask(text)
    if "%" in masked or "+" in masked:
        decoded = unquote_plus(masked)
        if _mask(decoded) != decoded:
            return WITHHELD
    return masked


class AccessLogScrubber(logging.Filter):
    """Masks ID numbers in a log record's message and string arguments (see the module docstring)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = scrub(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(scrub(a) if isinstance(a, str) else a for a in record.args)
        elif isinstance(record.args, dict):
            record.args = {k: scrub(v) if isinstance(v, str) else v for k, v in record.args.items()}
        return True


def logging_config(base: dict[str, Any] | None = None) -> dict[str, Any]:
    """uvicorn's logging configuration (``base``, by default its ``LOGGING_CONFIG``) with
    :class:`AccessLogScrubber` on the ``uvicorn.access`` and ``uvicorn.error`` loggers and their handlers."""
    if base is None:
        from uvicorn.config import LOGGING_CONFIG as base  # noqa: N811 — uvicorn's own default
    config = copy.deepcopy(base)
    config.setdefault("filters", {})["scrub_ids"] = {"()": f"{__name__}.AccessLogScrubber"}
    for name in ("uvicorn.access", "uvicorn.error"):
        logger = config.setdefault("loggers", {}).setdefault(name, {})
        logger["filters"] = [*logger.get("filters", []), "scrub_ids"]
    for handler in config.get("handlers", {}).values():
        handler["filters"] = [*handler.get("filters", []), "scrub_ids"]
    return config
