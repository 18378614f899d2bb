"""Downloads: the one place that writes ``Content-Disposition`` (RFC 6266).

A certificate's file name carries its number, and four of the six shipped types number in Chinese (选字第…,
地字第…, 建字第…, 郑人防审字…). HTTP header values are Latin-1 at most, so the name goes out twice: an ASCII
``filename="…"`` fallback for old clients and ``filename*=UTF-8''…`` (RFC 8187 percent-encoding), which every
current browser and HTTP client prefers.
"""

from __future__ import annotations

import re
import unicodedata
from urllib.parse import quote

from fastapi import Response

__all__ = ["ascii_fallback", "attachment", "attachment_headers", "content_disposition"]

_UNSAFE = re.compile(r'[^\x20-\x7e]+|["\\%;]')
_FALLBACK = "download"


def ascii_fallback(file_name: str) -> str:
    """``file_name`` in printable ASCII for the plain ``filename`` parameter: accents dropped, every other run
    of non-ASCII (and ``"``, ``\\``, ``%``, ``;``) one ``_``; the extension kept. Never empty."""
    decomposed = unicodedata.normalize("NFKD", file_name)
    stripped = "".join(c for c in decomposed if not unicodedata.combining(c))
    fallback = _UNSAFE.sub("_", stripped).strip(" .") or _FALLBACK
    if fallback.startswith("_.") or fallback == "_":
        fallback = _FALLBACK + fallback[1:]
    return fallback


def content_disposition(file_name: str) -> str:
    """``attachment; filename="<ascii>"; filename*=UTF-8''<percent-encoded>`` (RFC 6266 §4.3, RFC 8187)."""
    encoded = quote(file_name, safe="")
    return f"attachment; filename=\"{ascii_fallback(file_name)}\"; filename*=UTF-8''{encoded}"


def attachment_headers(file_name: str) -> dict[str, str]:
    """The headers offering a download named ``file_name``."""
    return {"Content-Disposition": content_disposition(file_name)}


def attachment(data: bytes, media_type: str, file_name: str) -> Response:
    """``data`` as a download named ``file_name``."""
    return Response(data, media_type=media_type, headers=attachment_headers(file_name))
