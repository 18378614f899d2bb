"""A purpose-built DER walker for the RFC 3161 TimeStampToken layout this repository's TSA writes (the fast path of
:func:`certstore.tsa.tokens.read_token`; a presented file's seal carries one, so every verification reads one).

It reads only the canonical shape (:mod:`certstore.tsa.authority`): ContentInfo {signedData, [0] SignedData};
SignedData {version, digestAlgorithms SET, encapContentInfo {id-ct-TSTInfo, [0] OCTET STRING}, optional
certificates [0] of plain certificates, no crls, exactly one SignerInfo}; SignerInfo {version,
IssuerAndSerialNumber, digestAlgorithm, optional signedAttrs [0], signatureAlgorithm, signature OCTET STRING, no
unsignedAttrs}; AlgorithmIdentifiers without parameters or with NULL; TSTInfo {1, policy, messageImprint,
serialNumber, genTime ``YYYYMMDDHHMMSSZ``, optional accuracy, nonce and tsa [0], no ordering, no extensions} —
definite, minimally encoded lengths, no trailing bytes. It answers :data:`None` for anything else and never
names an error: the full asn1crypto reader then decides, as it did for every token before. Tests hold the two to
the same result on tokens of this TSA and of a foreign layout, and on hundreds of mutations
(``tests/tsa/test_der_walker.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from certstore.crypto import oids
from certstore.crypto.der import (
    GENERALIZED_TIME,
    INTEGER,
    NULL,
    OCTET_STRING,
    OID,
    SEQUENCE,
    SET,
    Element,
    children,
    dotted_oid,
    generalized_time,
    tlv,
)

__all__ = ["TokenParts", "walk_token"]

_CONTEXT_0 = 0xA0  # [0], constructed: explicit content, certificates, signedAttrs, the TSA's name
_MAX_ATTRIBUTES = 16
_MAX_CERTIFICATES = 16


@dataclass(frozen=True, slots=True)
class TokenParts:
    """What :func:`~certstore.tsa.tokens.read_token` reads from a token, as byte slices and decoded values."""

    tst_bytes: bytes  # DER of the TSTInfo (the encapsulated OCTET STRING's contents)
    policy: str
    hash_algorithm: str
    hashed_message: bytes
    serial_number: int
    gen_time: datetime  # UTC
    nonce: int | None
    certificates: tuple[bytes, ...]  # DER of each certificate the token carries
    sid_issuer: bytes  # DER of the issuer Name of the SignerInfo's IssuerAndSerialNumber
    sid_serial: int
    digest_algorithm: str
    signed_attributes: bytes | None  # DER as signed: SET OF tag in place of [0] (None: no attributes)
    message_digest: tuple[bytes, ...] | None
    content_type: tuple[str, ...] | None
    signature_algorithm: str
    signature: bytes


def _integer(data: bytes, element: Element) -> int | None:
    tag, _header, start, end = element
    if tag != INTEGER or end == start:
        return None
    return int.from_bytes(data[start:end], "big", signed=True)


def _oid(data: bytes, element: Element) -> str | None:
    return dotted_oid(data[element[1] : element[3]]) if element[0] == OID else None


def _algorithm(data: bytes, element: Element) -> str | None:
    """The OID of an AlgorithmIdentifier without parameters or with NULL ones."""
    if element[0] != SEQUENCE:
        return None
    fields = children(data, element[2], element[3], 2)
    if not fields:
        return None
    if len(fields) == 2 and (fields[1][0] != NULL or fields[1][3] != fields[1][2]):
        return None
    return _oid(data, fields[0])


def _only(data: bytes, tag: int, start: int, end: int) -> Element | None:
    """The one element of tag ``tag`` that fills ``data[start:end]``."""
    found = children(data, start, end, 1)
    return found[0] if found and found[0][0] == tag else None


def _tst_info(data: bytes) -> tuple[str, str, bytes, int, datetime, int | None] | None:
    """policy, hash algorithm, hashed message, serial number, genTime and nonce of a canonical TSTInfo."""
    top = tlv(data, 0, len(data))
    if top is None or top[0] != SEQUENCE or top[2] != len(data):
        return None
    fields = children(data, top[1], top[2], 9)
    if fields is None or len(fields) < 5 or _integer(data, fields[0]) != 1:
        return None
    policy = _oid(data, fields[1])
    imprint, serial_element, time_element = fields[2], fields[3], fields[4]
    serial = _integer(data, serial_element)
    if policy is None or imprint[0] != SEQUENCE or serial is None or time_element[0] != GENERALIZED_TIME:
        return None
    gen_time = generalized_time(data[time_element[2] : time_element[3]])
    parts = children(data, imprint[2], imprint[3], 2)
    if gen_time is None or parts is None or len(parts) != 2 or parts[1][0] != OCTET_STRING:
        return None
    hash_algorithm = _algorithm(data, parts[0])
    if hash_algorithm is None:
        return None
    nonce: int | None = None
    rest = [tag for tag, *_ in fields[5:]]  # accuracy, nonce, tsa [0]: each at most once, in this order
    if rest not in ([], [SEQUENCE], [INTEGER], [_CONTEXT_0], [SEQUENCE, INTEGER], [SEQUENCE, _CONTEXT_0],
                    [INTEGER, _CONTEXT_0], [SEQUENCE, INTEGER, _CONTEXT_0]):  # fmt: skip
        return None
    for element in fields[5:]:
        if element[0] == INTEGER:
            nonce = _integer(data, element)
            if nonce is None:
                return None
    hashed = data[parts[1][2] : parts[1][3]]
    return policy, hash_algorithm, hashed, serial, gen_time, nonce


def _attributes(
    data: bytes, element: Element
) -> tuple[bytes | None, tuple[bytes, ...] | None, tuple[str, ...] | None] | None:
    """The signed attributes as signed, and the values of messageDigest and contentType (the last of each)."""
    items = children(data, element[2], element[3], _MAX_ATTRIBUTES)
    if items is None:
        return None
    if not items:
        return None, None, None
    digests: tuple[bytes, ...] | None = None
    types: tuple[str, ...] | None = None
    for item in items:
        if item[0] != SEQUENCE:
            return None
        pair = children(data, item[2], item[3], 2)
        if pair is None or len(pair) != 2 or pair[1][0] != SET:
            return None
        kind = _oid(data, pair[0])
        if kind is None:
            return None
        if kind in (oids.MESSAGE_DIGEST, oids.CONTENT_TYPE):
            values = children(data, pair[1][2], pair[1][3], 4)
            if values is None:
                return None
            if kind == oids.MESSAGE_DIGEST:
                if any(v[0] != OCTET_STRING for v in values):
                    return None
                digests = tuple(data[v[2] : v[3]] for v in values)
            else:
                found = tuple(_oid(data, v) for v in values)
                if None in found:
                    return None
                types = found  # type: ignore[assignment]
    signed = b"\x31" + data[element[1] + 1 : element[3]]
    return signed, digests, types


def walk_token(data: bytes) -> TokenParts | None:
    """The parts of ``data`` when it is a TimeStampToken of the canonical layout; None whenever anything differs
    (the full reader then decides)."""
    top = tlv(data, 0, len(data))
    if top is None or top[0] != SEQUENCE or top[2] != len(data):
        return None
    info = children(data, top[1], top[2], 2)
    if info is None or len(info) != 2 or info[1][0] != _CONTEXT_0 or _oid(data, info[0]) != oids.SIGNED_DATA:
        return None
    signed = _only(data, SEQUENCE, info[1][2], info[1][3])
    if signed is None:
        return None
    fields = children(data, signed[2], signed[3], 5)
    if fields is None or len(fields) not in (4, 5) or _integer(data, fields[0]) is None:
        return None
    if fields[1][0] != SET or fields[2][0] != SEQUENCE or fields[-1][0] != SET:
        return None
    certificates: tuple[bytes, ...] = ()
    if len(fields) == 5:
        if fields[3][0] != _CONTEXT_0:
            return None
        found = children(data, fields[3][2], fields[3][3], _MAX_CERTIFICATES)
        if found is None or any(c[0] != SEQUENCE for c in found):
            return None
        certificates = tuple(data[c[1] : c[3]] for c in found)
    encap = children(data, fields[2][2], fields[2][3], 2)
    if encap is None or len(encap) != 2 or encap[1][0] != _CONTEXT_0 or _oid(data, encap[0]) != oids.TST_INFO:
        return None
    content = _only(data, OCTET_STRING, encap[1][2], encap[1][3])
    signer = _only(data, SEQUENCE, fields[-1][2], fields[-1][3])
    if content is None or signer is None:
        return None
    tst_bytes = data[content[2] : content[3]]
    tst = _tst_info(tst_bytes)
    parts = children(data, signer[2], signer[3], 6)
    if tst is None or parts is None or len(parts) not in (5, 6) or _integer(data, parts[0]) is None:
        return None
    sid, digest_element = parts[1], parts[2]
    attributes: tuple[bytes | None, tuple[bytes, ...] | None, tuple[str, ...] | None] | None = (
        None,
        None,
        None,
    )
    if len(parts) == 6:
        if parts[3][0] != _CONTEXT_0:
            return None
        attributes = _attributes(data, parts[3])
    algorithm_element, signature = parts[-2], parts[-1]
    if attributes is None or sid[0] != SEQUENCE or signature[0] != OCTET_STRING:
        return None
    issuer_serial = children(data, sid[2], sid[3], 2)
    if issuer_serial is None or len(issuer_serial) != 2 or issuer_serial[0][0] != SEQUENCE:
        return None
    sid_serial = _integer(data, issuer_serial[1])
    digest_algorithm = _algorithm(data, digest_element)
    signature_algorithm = _algorithm(data, algorithm_element)
    if sid_serial is None or digest_algorithm is None or signature_algorithm is None:
        return None
    policy, hash_algorithm, hashed, serial, gen_time, nonce = tst
    signed_attributes, message_digest, content_type = attributes
    return TokenParts(
        tst_bytes=tst_bytes,
        policy=policy,
        hash_algorithm=hash_algorithm,
        hashed_message=hashed,
        serial_number=serial,
        gen_time=gen_time,
        nonce=nonce,
        certificates=certificates,
        sid_issuer=data[issuer_serial[0][1] : issuer_serial[0][3]],
        sid_serial=sid_serial,
        digest_algorithm=digest_algorithm,
        signed_attributes=signed_attributes,
        message_digest=message_digest,
        content_type=content_type,
        signature_algorithm=signature_algorithm,
        signature=data[signature[2] : signature[3]],
    )
