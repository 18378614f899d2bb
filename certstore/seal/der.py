"""A purpose-built DER walker for the fixed GB/T 38540 SES_Signature layout (the fast path of
:func:`certstore.seal.model.parse_seal_signature`).

It reads only the canonical shape this repository and GB/T 38540 producers write — definite, minimally encoded
lengths, the exact tags of §7.1 (toSign SEQUENCE of version INTEGER, eseal SEQUENCE, timeInfo GeneralizedTime
``YYYYMMDDHHMMSSZ``, dataHash BIT STRING, propertyInfo IA5String, no extDatas; cert OCTET STRING, signatureAlgID
OBJECT IDENTIFIER, signature BIT STRING, optional timeStamp ``[0] EXPLICIT BIT STRING``), no extra elements,
no trailing bytes — and answers :data:`None` for anything else. It never refuses and never names an error:
whatever it does not accept goes to the full asn1crypto parser, which accepts the tolerated deviations (with
their warnings) and names the field of an error. Tests hold the two to the same result on every vector and on
hundreds of mutations of them (``tests/seal/test_der_walker.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache

from asn1crypto import core

__all__ = ["SignatureParts", "walk_signature_v4"]

_SEQUENCE = 0x30
_INTEGER = 0x02
_BIT_STRING = 0x03
_OCTET_STRING = 0x04
_OID = 0x06
_IA5_STRING = 0x16
_GENERALIZED_TIME = 0x18
_EXPLICIT_0 = 0xA0


@dataclass(frozen=True, slots=True)
class SignatureParts:
    """The fields of a canonical GB/T 38540 SES_Signature as byte slices and decoded values."""

    version: int
    eseal: bytes  # DER of the embedded SESeal (header and contents)
    signing_time: datetime  # timeInfo, UTC
    data_hash: bytes  # the BIT STRING's octets (0 unused bits)
    property_info: str
    cert: bytes  # the signer certificate's DER (the OCTET STRING's contents)
    signature_algorithm: str  # dotted OID
    signature_value: bytes
    timestamp: bytes | None
    signed_bytes: bytes  # DER(TBS_Sign) as received


def _tlv(data: bytes, offset: int, end: int) -> tuple[int, int, int] | None:
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


def _children(data: bytes, start: int, end: int, limit: int) -> list[tuple[int, int, int, int]] | None:
    """The elements (tag, header start, contents start, contents end) filling ``data[start:end]`` exactly, at
    most ``limit`` of them; None otherwise."""
    found: list[tuple[int, int, int, int]] = []
    offset = start
    while offset < end:
        if len(found) == limit:
            return None
        element = _tlv(data, offset, end)
        if element is None:
            return None
        tag, content_start, content_end = element
        found.append((tag, offset, content_start, content_end))
        offset = content_end
    return found


def _octets(data: bytes, start: int, end: int) -> bytes | None:
    """A BIT STRING of whole octets (first contents octet 0 and at least one octet after it)."""
    if end - start < 2 or data[start] != 0:
        return None
    return data[start + 1 : end]


@lru_cache(maxsize=64)
def _dotted(der: bytes) -> str | None:
    try:
        value = core.ObjectIdentifier.load(der, strict=True)
        return value.dotted
    except (ValueError, TypeError):
        return None


def _generalized_time(text: bytes) -> datetime | None:
    """``YYYYMMDDHHMMSSZ`` (the form GB/T 38540 signers and this repository write); None for any other."""
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


def walk_signature_v4(data: bytes) -> SignatureParts | None:
    """The parts of ``data`` when it is a canonical GB/T 38540 (or v5) SES_Signature without extDatas; None
    whenever anything differs (the full parser then decides)."""
    top = _tlv(data, 0, len(data))
    if top is None or top[0] != _SEQUENCE or top[2] != len(data):
        return None
    outer = _children(data, top[1], top[2], 5)
    if outer is None or len(outer) < 4:
        return None
    tbs, cert, algorithm, signature = outer[:4]
    if (tbs[0], cert[0], algorithm[0], signature[0]) != (_SEQUENCE, _OCTET_STRING, _OID, _BIT_STRING):
        return None
    timestamp: bytes | None = None
    if len(outer) == 5:
        tag, _header, start, end = outer[4]
        if tag != _EXPLICIT_0:
            return None
        inner = _children(data, start, end, 1)
        if not inner or inner[0][0] != _BIT_STRING:
            return None
        timestamp = _octets(data, inner[0][2], inner[0][3])
        if timestamp is None:
            return None
    fields = _children(data, tbs[2], tbs[3], 5)
    if fields is None or len(fields) != 5:
        return None
    version, eseal, time_info, data_hash, property_info = fields
    tags = (version[0], eseal[0], time_info[0], data_hash[0], property_info[0])
    if tags != (_INTEGER, _SEQUENCE, _GENERALIZED_TIME, _BIT_STRING, _IA5_STRING):
        return None
    if not 1 <= version[3] - version[2] <= 8:
        return None
    signing_time = _generalized_time(data[time_info[2] : time_info[3]])
    hashed = _octets(data, data_hash[2], data_hash[3])
    signature_value = _octets(data, signature[2], signature[3])
    dotted = _dotted(data[algorithm[1] : algorithm[3]])
    if signing_time is None or hashed is None or signature_value is None or dotted is None:
        return None
    try:
        text = data[property_info[2] : property_info[3]].decode("ascii")
    except UnicodeDecodeError:
        return None
    return SignatureParts(
        version=int.from_bytes(data[version[2] : version[3]], "big", signed=True),
        eseal=data[eseal[1] : eseal[3]],
        signing_time=signing_time,
        data_hash=hashed,
        property_info=text,
        cert=data[cert[2] : cert[3]],
        signature_algorithm=dotted,
        signature_value=signature_value,
        timestamp=timestamp,
        signed_bytes=data[tbs[1] : tbs[3]],
    )
