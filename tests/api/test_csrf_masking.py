"""The CSRF token a page carries is masked afresh for every answer (BREACH: gzip-compressed pages must not
carry the same secret bytes twice), and any of its masks is accepted back; a changed one is not."""

from __future__ import annotations

import secrets

from api import csrf


def test_each_mask_differs_and_every_mask_matches() -> None:
    """Two masks of one token differ; each unmasks to the token; one flipped digit, a truncated mask, the
    token unmasked, non-hex and non-strings are refused."""
    token = secrets.token_hex(32)
    first, second = csrf.mask(token), csrf.mask(token)
    assert first != second and len(first) == len(second) == 4 * 32
    assert csrf.matches(first, token) and csrf.matches(second, token)
    flipped = first[:-1] + ("0" if first[-1] != "0" else "1")
    other = secrets.token_hex(32)
    for bad in (flipped, first[:-2], token, "zz" * 64, None, 42, csrf.mask(other)):
        assert not csrf.matches(bad, token)
