"""SM3 (GB/T 32905) — the one home of the hash: digests, hex digests, incremental states and HMAC-SM3.

Everything goes through OpenSSL's provider via :mod:`hashlib`. Hot paths that hash many small messages copy a
prepared state (:func:`new`) instead of looking the algorithm up by name each time.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

__all__ = ["DIGEST_SIZE", "hmac_sm3", "new", "sm3", "sm3_hex"]

DIGEST_SIZE = 32

_EMPTY = hashlib.new("sm3")


def new(data: bytes = b"") -> Any:
    """A fresh SM3 state (``hashlib`` object), optionally fed ``data``."""
    state = _EMPTY.copy()
    if data:
        state.update(data)
    return state


def sm3(data: bytes) -> bytes:
    """SM3 digest (32 bytes)."""
    return hashlib.new("sm3", data).digest()


def sm3_hex(data: bytes) -> str:
    """SM3 digest as 64 lowercase hex digits."""
    return hashlib.new("sm3", data).hexdigest()


def hmac_sm3(key: bytes, message: bytes) -> bytes:
    """HMAC-SM3 (32 bytes)."""
    return hmac.new(key, message, "sm3").digest()
