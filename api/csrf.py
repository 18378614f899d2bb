"""A CSRF token as the pages send it: masked afresh for every response (BREACH).

The pages' answers are gzip-compressed (``api/app.py``), and a compressed page that carries a secret next to text
the requester controls leaks the secret byte by byte through the answer's size (BREACH). The token a session's
forms carry is therefore never sent as is: each page gets ``pad ‖ (token XOR pad)`` with a fresh random pad, so
no two answers carry the same bytes, and :func:`unmask` recovers the token a form posts back. The token itself —
an HMAC of the session under the session key — is made by the pages (``api/pages/common.py`` for staff,
``api/pages/holder.py`` for holders); this module only hides it in transit.
"""

from __future__ import annotations

import hmac
import secrets

__all__ = ["mask", "matches"]


def mask(token: str) -> str:
    """``token`` (hex) as a page carries it: a fresh pad and the token XOR that pad, hex, twice as long."""
    raw = bytes.fromhex(token)
    pad = secrets.token_bytes(len(raw))
    return (pad + bytes(a ^ b for a, b in zip(raw, pad, strict=True))).hex()


def matches(submitted: object, token: str) -> bool:
    """Whether a form's ``submitted`` value is ``token`` masked by :func:`mask` (compared in constant time)."""
    expected = bytes.fromhex(token)
    if not isinstance(submitted, str) or len(submitted) != 4 * len(expected):
        return False
    try:
        both = bytes.fromhex(submitted)
    except ValueError:
        return False
    pad, masked = both[: len(expected)], both[len(expected) :]
    return hmac.compare_digest(bytes(a ^ b for a, b in zip(masked, pad, strict=True)), expected)
