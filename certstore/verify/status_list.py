"""The signed status snapshot (状态快照): every certificate version's status, for verifiers without a network.

In the spirit of an X.509 CRL or the W3C Bitstring Status List: the repository lists the stored status of every
certificate version it holds, with ``thisUpdate`` / ``nextUpdate`` and a sequence number, and signs the list with
its SM2 key. A counter carries the file and ``certstore verify --offline --status FILE`` decides status from it.

Binary layout (all integers big-endian)::

    magic        6 bytes   b"CSSL1\\n"
    header_len   u32       length of the header
    header       JSON      UTF-8, keys sorted, no spaces: format, issuer, key_id, sequence, this_update,
                           next_update (ISO 8601 UTC, seconds), count, fingerprint ("sm3-64")
    body_len     u32       length of the body
    body         zlib      zlib(fingerprints ‖ codes): ``count`` 8-byte fingerprints (the first 8 bytes of
                           SM3(identifier as UTF-8)), sorted ascending, then ``count`` 1-byte status codes in the
                           same order (:data:`STATUS_CODES`)
    --- the signed part ends here: magic … body ---
    cert_count   u16       then per certificate: u32 length + DER — the signer certificate first, then its chain
    sig_len      u16       then the DER SM2-with-SM3 signature (default identity) over the signed part

Expiry (过期) is not listed: it follows from the validity end the file itself carries (``ZZYXQJZRQ``) and the time
asked. A look-up is a binary search over the fingerprints (:meth:`StatusList.lookup`); two versions whose
fingerprints collide with different statuses answer None (not decidable) rather than guess.

:func:`read_status_list` refuses (:class:`StatusListError`) a list that is malformed, whose signature does not
verify (altered), whose signer does not chain to the trust anchors at ``thisUpdate``, or whose signer is not one
of the ``expected`` certificates when those are given.
"""

from __future__ import annotations

import json
import struct
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from certstore.crypto.sm2 import Signer
from certstore.crypto.sm3 import new as new_sm3
from certstore.crypto.trust import TrustStore, validate_chain
from certstore.crypto.x509 import Certificate, CertificateError
from certstore.lifecycle import Status

__all__ = [
    "FORMAT",
    "MAGIC",
    "STATUS_CODES",
    "StatusList",
    "StatusListError",
    "StatusListHeader",
    "build_status_list",
    "fingerprint",
    "read_status_list",
]

MAGIC = b"CSSL1\n"
FORMAT = "certstore-status-list/1"
FINGERPRINT_SIZE = 8
MAX_COUNT = 200_000_000  # a sanity bound for decompression

#: Stored statuses and their 1-byte codes (expired is computed, never listed).
STATUS_CODES: dict[Status, int] = {
    Status.VALID: 1,
    Status.SUSPENDED: 2,
    Status.REVOKED: 3,
    Status.CANCELLED: 4,
    Status.ANNULLED: 5,
    Status.SUPERSEDED: 6,
}
_BY_CODE = {code: status for status, code in STATUS_CODES.items()}
_SM3 = new_sm3()
_CODE_BYTES = {code: bytes([code]) for code in _BY_CODE}


class StatusListError(ValueError):
    """A status snapshot that is malformed, altered, or not signed by a trusted (expected) key."""


def fingerprint(identifier: str) -> bytes:
    """The 8-byte fingerprint of a certificate identifier: the first 8 bytes of its SM3."""
    state = _SM3.copy()
    state.update(identifier.encode("utf-8"))
    return state.digest()[:FINGERPRINT_SIZE]


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def _parse_time(value: object) -> datetime:
    if not isinstance(value, str):
        raise StatusListError(f"header time {value!r} is not a string")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise StatusListError(f"header time {value!r}: {exc}") from None
    if parsed.tzinfo is None:
        raise StatusListError(f"header time {value!r} has no offset")
    return parsed


@dataclass(frozen=True)
class StatusListHeader:
    """Who lists (``issuer``: the repository's name; ``key_id``: SM3 of its signer certificate, hex), which list
    (``sequence``, monotonic), for when (``this_update`` … ``next_update``) and how many versions (``count``)."""

    issuer: str
    key_id: str
    sequence: int
    this_update: datetime
    next_update: datetime
    count: int

    def to_dict(self) -> dict[str, object]:
        return {
            "format": FORMAT,
            "issuer": self.issuer,
            "key_id": self.key_id,
            "sequence": self.sequence,
            "this_update": _iso(self.this_update),
            "next_update": _iso(self.next_update),
            "count": self.count,
            "fingerprint": "sm3-64",
        }


def build_status_list(
    entries: Iterable[tuple[str, Status]],
    *,
    issuer: str,
    sequence: int,
    this_update: datetime,
    next_update: datetime,
    signer: Signer,
    certificate: Certificate,
    chain: Sequence[Certificate] = (),
    level: int = 6,
) -> bytes:
    """The signed snapshot of ``entries`` (identifier, stored status); see the module documentation."""
    if this_update.tzinfo is None or next_update.tzinfo is None:
        raise ValueError("thisUpdate and nextUpdate must be timezone-aware")
    if next_update <= this_update:
        raise ValueError("nextUpdate must be after thisUpdate")
    records = []  # fingerprint ‖ code: one sort of 9-byte strings, then split into the two arrays
    append, state, size = records.append, _SM3, FINGERPRINT_SIZE
    for identifier, status in entries:
        code = STATUS_CODES.get(status)
        if code is None:
            raise ValueError(f"{identifier}: status {status.value} is not listed (only stored statuses are)")
        digest = state.copy()
        digest.update(identifier.encode("utf-8"))
        append(digest.digest()[:size] + _CODE_BYTES[code])
    records.sort()
    joined = b"".join(records)
    stride = size + 1
    prints = b"".join(joined[i : i + size] for i in range(0, len(joined), stride))
    codes = joined[size::stride]
    header = StatusListHeader(
        issuer,
        new_sm3(certificate.der).hexdigest(),
        sequence,
        this_update.replace(microsecond=0),
        next_update.replace(microsecond=0),
        len(records),
    )
    header_bytes = json.dumps(header.to_dict(), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    encoded_header = header_bytes.encode("utf-8")
    body = zlib.compress(prints + codes, level)
    signed = (
        MAGIC + struct.pack(">I", len(encoded_header)) + encoded_header + struct.pack(">I", len(body)) + body
    )
    certificates = (certificate, *chain)
    parts = [signed, struct.pack(">H", len(certificates))]
    for cert in certificates:
        parts += [struct.pack(">I", len(cert.der)), cert.der]
    signature = signer.sign(signed)
    parts += [struct.pack(">H", len(signature)), signature]
    return b"".join(parts)


@dataclass(frozen=True)
class StatusList:
    """A verified snapshot: its header, signer, and the look-up."""

    header: StatusListHeader
    signer: Certificate
    _fingerprints: bytes
    _codes: bytes

    def lookup(self, identifier: str) -> Status | None:
        """The stored status listed for ``identifier``; None when it is not listed (or its fingerprint collides
        with another version of a different status)."""
        target = fingerprint(identifier)
        prints, size = self._fingerprints, FINGERPRINT_SIZE
        lo, hi = 0, self.header.count
        while lo < hi:
            mid = (lo + hi) // 2
            if prints[mid * size : mid * size + size] < target:
                lo = mid + 1
            else:
                hi = mid
        found = set()
        index = lo
        while index < self.header.count and prints[index * size : index * size + size] == target:
            found.add(self._codes[index])
            index += 1
        if len(found) != 1:
            return None
        return _BY_CODE.get(found.pop())


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data, self.offset = data, 0

    def take(self, size: int) -> bytes:
        if size < 0 or self.offset + size > len(self.data):
            raise StatusListError("truncated status snapshot")
        chunk = self.data[self.offset : self.offset + size]
        self.offset += size
        return chunk

    def number(self, fmt: str) -> int:
        return int(struct.unpack(fmt, self.take(struct.calcsize(fmt)))[0])


def read_status_list(data: bytes, *, trust: TrustStore, expected: Sequence[Certificate] = ()) -> StatusList:
    """Read and verify a snapshot (signature, signer chain at ``thisUpdate``, expected signer); raises
    :class:`StatusListError` saying why it is refused. Freshness is the caller's question (``header``)."""
    reader = _Reader(bytes(data))
    if reader.take(len(MAGIC)) != MAGIC:
        raise StatusListError("not a certstore status snapshot (bad magic)")
    header_bytes = reader.take(reader.number(">I"))
    body = reader.take(reader.number(">I"))
    signed = reader.data[: reader.offset]
    certificates = []
    for _ in range(reader.number(">H")):
        try:
            certificates.append(Certificate.from_der(reader.take(reader.number(">I"))))
        except CertificateError as exc:
            raise StatusListError(f"unreadable signer certificate: {exc}") from None
    signature = reader.take(reader.number(">H"))
    if reader.offset != len(reader.data):
        raise StatusListError("trailing bytes after the signature")
    if not certificates:
        raise StatusListError("no signer certificate")
    signer = certificates[0]
    try:
        intact = signer.public_key.verify(signed, signature)
    except Exception:  # a key the SM2 verifier cannot use: the signature cannot be trusted
        intact = False
    if not intact:
        raise StatusListError("its signature does not verify: the snapshot was altered or forged")
    try:
        fields = json.loads(header_bytes.decode("utf-8"))
        header = StatusListHeader(
            issuer=str(fields["issuer"]),
            key_id=str(fields["key_id"]),
            sequence=int(fields["sequence"]),
            this_update=_parse_time(fields["this_update"]),
            next_update=_parse_time(fields["next_update"]),
            count=int(fields["count"]),
        )
        if fields.get("format") != FORMAT or fields.get("fingerprint") != "sm3-64":
            raise StatusListError(f"unsupported format {fields.get('format')!r}")
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
        raise StatusListError(f"unreadable header: {exc}") from None
    if header.key_id != new_sm3(signer.der).hexdigest():
        raise StatusListError("the header's key id does not name the signer certificate")
    if expected and signer not in expected:
        raise StatusListError(f"signed by {signer.subject!r}, not by the repository key")
    validation = validate_chain(signer, trust=trust, at=header.this_update, intermediates=certificates[1:])
    if not validation.ok:
        raise StatusListError(f"its signer is not trusted: {validation.reason}")
    if not 0 <= header.count <= MAX_COUNT:
        raise StatusListError(f"implausible count {header.count}")
    size = header.count * (FINGERPRINT_SIZE + 1)
    try:
        inflater = zlib.decompressobj()
        plain = inflater.decompress(body, size + 1)
    except zlib.error as exc:
        raise StatusListError(f"unreadable body: {exc}") from None
    if len(plain) != size or not inflater.eof:
        raise StatusListError(f"the body does not hold {header.count} entries")
    split = header.count * FINGERPRINT_SIZE
    return StatusList(header, signer, plain[:split], plain[split:])
