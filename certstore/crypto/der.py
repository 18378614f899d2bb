"""DER primitives for the purpose-built walkers (:mod:`certstore.seal.der`, :mod:`certstore.tsa.der`), and
:func:`encode` for the writers that assemble fixed layouts from pre-encoded parts (time-stamp tokens, seal
signatures).

Each walker reads only the canonical shape of one structure and answers ``None`` for anything else, so that the
full asn1crypto parser decides (and names the error). These helpers share that rule: they accept definite,
minimally encoded lengths of at most four octets and low tag numbers, and return ``None`` instead of raising.
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import lru_cache

from asn1crypto import core

__all__ = [
    "BIT_STRING",
    "BOOLEAN",
    "GENERALIZED_TIME",
    "IA5_STRING",
    "INTEGER",
    "NULL",
    "OCTET_STRING",
    "OID",
    "SEQUENCE",
    "SET",
    "Element",
    "bit_string_octets",
    "children",
    "dotted_oid",
    "encode",
    "generalized_time",
    "tlv",
]

BOOLEAN = 0x01
INTEGER = 0x02
BIT_STRING = 0x03
OCTET_STRING = 0x04
NULL = 0x05
OID = 0x06
IA5_STRING = 0x16
GENERALIZED_TIME = 0x18
SEQUENCE = 0x30
SET = 0x31
#: ``[0]`` constructed (context-specific): EXPLICIT tags, and IMPLICIT ones over a constructed type
CONTEXT_0 = 0xA0

#: (tag byte, header start, contents start, contents end) of one element
Element = tuple[int, int, int, int]


def encode(tag: int, contents: bytes) -> bytes:
    """One DER element: ``tag`` (a low tag number), the definite minimal length, ``contents``."""
    length = len(contents)
    if length < 0x80:
        return bytes((tag, length)) + contents
    octets = length.to_bytes((length.bit_length() + 7) // 8, "big")
    return bytes((tag, 0x80 | len(octets))) + octets + contents


def tlv(data: bytes, offset: int, end: int) -> tuple[int, int, int] | None:
    """(tag byte, contents start, contents end) of the element at ``offset``: low tag numbers only, definite
    and minimally encoded lengths of at most four octets, inside ``end``; None otherwise."""
    if offset + 2 > end:
        return None
    tag = data[offset]
    if tag & 0x1F == 0x1F:  # high tag number form
        return None
    first = data[offset + 1]
    start = offset + 2
    if first < 0x80:
        length = first
    else:
        count = first & 0x7F
        if count == 0 or count > 4 or start + count > end:  # indefinite, or absurd
            return None
        length = int.from_bytes(data[start : start + count], "big")
        if length < 0x80 or data[start] == 0:  # not minimal
            return None
        start += count
    stop = start + length
    if stop > end:
        return None
    return tag, start, stop


def children(data: bytes, start: int, end: int, limit: int) -> list[Element] | None:
    """The elements (tag, header start, contents start, contents end) filling ``data[start:end]`` exactly, at
    most ``limit`` of them; None otherwise."""
    found: list[Element] = []
    offset = start
    while offset < end:
        if len(found) == limit:
            return None
        element = tlv(data, offset, end)
        if element is None:
            return None
        tag, content_start, content_end = element
        found.append((tag, offset, content_start, content_end))
        offset = content_end
    return found


def bit_string_octets(data: bytes, start: int, end: int) -> bytes | None:
    """A BIT STRING of whole octets (first contents octet 0 and at least one octet after it)."""
    if end - start < 2 or data[start] != 0:
        return None
    return data[start + 1 : end]


@lru_cache(maxsize=128)
def dotted_oid(der: bytes) -> str | None:
    """The dotted form of a whole OBJECT IDENTIFIER element (tag, length, contents); None when it is not one."""
    try:
        value = core.ObjectIdentifier.load(der, strict=True)
        return value.dotted
    except (ValueError, TypeError):
        return None


def generalized_time(text: bytes) -> datetime | None:
    """``YYYYMMDDHHMMSSZ`` (the form GB/T 38540 signers, this repository and its TSA write); None for any
    other."""
    if len(text) != 15 or text[14] != 0x5A or not text[:14].isdigit():
        return None
    year = int(text[0:4])
    if year == 0:
        return None
    try:
        return datetime(
            year,
            int(text[4:6]),
            int(text[6:8]),
            int(text[8:10]),
            int(text[10:12]),
            int(text[12:14]),
            tzinfo=UTC,
        )
    except ValueError:
        return None
