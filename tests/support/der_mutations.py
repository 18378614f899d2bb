"""Mutations of DER structures for the walker tests (``tests/seal/test_der_walker.py``,
``tests/tsa/test_der_walker.py``): bytes changed, flipped, inserted, deleted, truncated or appended — mostly at the
tag and length octets of the elements a walker reads, where a purpose-built reader and asn1crypto could part."""

from __future__ import annotations

import random
from collections.abc import Iterator

from asn1crypto import parser

__all__ = ["header_offsets", "mutations"]


def header_offsets(data: bytes, max_depth: int, start: int = 0, depth: int = 0) -> list[int]:
    """Offsets of the tag and length octets of the elements down to ``max_depth``, and the first contents octets
    of the elements not entered."""
    offsets: list[int] = []
    offset = start
    end = len(data)
    while offset < end:
        try:
            _class, method, _tag, header, contents, trailer = parser.parse(data[offset:])
        except ValueError:
            break
        offsets.extend(range(offset, offset + len(header)))
        if method == 1 and depth < max_depth and contents and len(contents) < 200_000:
            inner = header_offsets(contents, max_depth, 0, depth + 1)
            offsets.extend(o + offset + len(header) for o in inner)
        elif contents:
            offsets.extend(range(offset + len(header), offset + len(header) + min(len(contents), 3)))
        offset += len(header) + len(contents) + len(trailer)
        if depth == 0:
            break
    return offsets


def mutations(data: bytes, rng: random.Random, count: int, *, max_depth: int) -> Iterator[bytes]:
    """``count`` mutations of ``data``; 85 % of them at :func:`header_offsets`."""
    offsets = header_offsets(data, max_depth)
    for _ in range(count):
        kind = rng.randrange(6)
        at = rng.choice(offsets) if rng.random() < 0.85 else rng.randrange(len(data))
        if kind == 0:
            yield data[:at] + bytes([rng.randrange(256)]) + data[at + 1 :]
        elif kind == 1:
            yield data[:at] + bytes([data[at] ^ (1 << rng.randrange(8))]) + data[at + 1 :]
        elif kind == 2:
            yield data[:at] + bytes([rng.randrange(256)]) + data[at:]
        elif kind == 3:
            yield data[:at] + data[at + 1 :]
        elif kind == 4:
            yield data[: rng.randrange(len(data))]
        else:
            yield data + bytes(rng.randrange(256) for _ in range(rng.randrange(1, 4)))
