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
from datetime import datetime

from certstore.crypto.der import (
    BIT_STRING,
    GENERALIZED_TIME,
    IA5_STRING,
    INTEGER,
    OCTET_STRING,
    OID,
    SEQUENCE,
    bit_string_octets,
    children,
    dotted_oid,
    generalized_time,
    tlv,
)

__all__ = ["SignatureParts", "walk_signature_v4"]

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


def walk_signature_v4(data: bytes) -> SignatureParts | None:
    """The parts of ``data`` when it is a canonical GB/T 38540 (or v5) SES_Signature without extDatas; None
    whenever anything differs (the full parser then decides)."""
    top = tlv(data, 0, len(data))
    if top is None or top[0] != SEQUENCE or top[2] != len(data):
        return None
    outer = children(data, top[1], top[2], 5)
    if outer is None or len(outer) < 4:
        return None
    tbs, cert, algorithm, signature = outer[:4]
    if (tbs[0], cert[0], algorithm[0], signature[0]) != (SEQUENCE, OCTET_STRING, OID, BIT_STRING):
        return None
    timestamp: bytes | None = None
    if len(outer) == 5:
        tag, _header, start, end = outer[4]
        if tag != _EXPLICIT_0:
            return None
        inner = children(data, start, end, 1)
        if not inner or inner[0][0] != BIT_STRING:
            return None
        timestamp = bit_string_octets(data, inner[0][2], inner[0][3])
        if timestamp is None:
            return None
    fields = children(data, tbs[2], tbs[3], 5)
    if fields is None or len(fields) != 5:
        return None
    version, eseal, time_info, data_hash, property_info = fields
    tags = (version[0], eseal[0], time_info[0], data_hash[0], property_info[0])
    if tags != (INTEGER, SEQUENCE, GENERALIZED_TIME, BIT_STRING, IA5_STRING):
        return None
    if not 1 <= version[3] - version[2] <= 8:
        return None
    signing_time = generalized_time(data[time_info[2] : time_info[3]])
    hashed = bit_string_octets(data, data_hash[2], data_hash[3])
    signature_value = bit_string_octets(data, signature[2], signature[3])
    dotted = dotted_oid(data[algorithm[1] : algorithm[3]])
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
