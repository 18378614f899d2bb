"""The signed status snapshot (状态快照), format 2: the certificate versions *not in force* and the withdrawn seals,
for verifiers without a network.

In the spirit of an X.509 CRL: the repository lists every version it holds that is not in force (suspended,
revoked, cancelled, annulled, superseded) with its status and the time that status took effect, the suspensions
that have ended (so that a question about the past is answered as it stood), and the seals (电子印章) that are
suspended or revoked; signs the list with its SM2 key; states ``thisUpdate`` / ``nextUpdate`` and a sequence
number. A version the list does not name was in force *as of thisUpdate* — provided it existed then: the caller
passes the file's signing time and a file signed after ``thisUpdate`` is "status unknown" (the snapshot predates
it), never "in force".

Scope: the snapshot speaks for the versions the repository (``issuer``) holds. The header names the issuer codes
(颁发机构代码) of those versions (``scope``); an identifier of another issuer is "status unknown". A version of a
covered issuer that the repository does not hold (issued by another system) cannot be told from one in force.

Binary layout (all integers big-endian)::

    magic        6 bytes   b"CSSL2\\n"
    header_len   u32       then the header: JSON, UTF-8, keys sorted, no spaces: format, issuer, key_id,
                           sequence, this_update, next_update (ISO 8601 UTC, seconds), count (versions listed),
                           suspensions, seals (entries of those sections), versions (versions the repository
                           holds), scope (issuer codes covered), fingerprint ("sm3-64"), epoch
    body_len     u32       then the body, zlib of:
      buckets    65536 × u32   versions listed per fingerprint bucket (the fingerprint's first two bytes)
      low        count × 6     the fingerprints' other six bytes, sorted ascending within each bucket
      codes      count × u8    status (:data:`STATUS_CODES`; 255: two listed identifiers share the fingerprint)
      since      4 × count     when the status took effect: u32 seconds after ``epoch`` (2000-01-01T00:00:00Z),
                               stored as four byte planes (all most significant bytes first …: zlib packs the
                               slowly varying high bytes)
      ended      suspensions × (8-byte fingerprint, u32 start, u32 end): suspensions that ended, sorted
      seals      seals × (u8 length, ES ID UTF-8, u8 status code, u32 since), sorted by ES ID
    --- the signed part ends here: magic … body ---
    cert_count   u16       then per certificate: u32 length + DER — the signer certificate first, then its chain
    sig_len      u16       then the DER SM2-with-SM3 signature (default identity) over the signed part

The fingerprint is the first 8 bytes of SM3(identifier as UTF-8); bucketing by its first two bytes stores 6
bytes per listed version (the information content of 500 k sorted 64-bit values is ≈ 5.8 bytes each) and keeps
reading free of per-entry work: the counter inflates, sums 65 536 counts and binary-searches one bucket.
Expiry (过期) is not listed: it follows from the validity end the file carries and the time asked.

:func:`read_status_list` refuses (:class:`StatusListError`) a list that is malformed, whose signature does not
verify (altered), whose signer does not chain to the trust anchors at ``thisUpdate``, or whose signer is not one
of the ``expected`` certificates when those are given; and a format 1 snapshot (every version listed, no
effective times), which must be rebuilt.
"""

from __future__ import annotations

import json
import struct
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import accumulate

from certstore.crypto.sm2 import Signer
from certstore.crypto.sm3 import new as new_sm3
from certstore.crypto.trust import TrustStore, validate_chain
from certstore.crypto.x509 import Certificate, CertificateError
from certstore.identifiers import IDENTIFIER_ROOT
from certstore.lifecycle import Status

__all__ = [
    "EPOCH",
    "FORMAT",
    "MAGIC",
    "SEAL_STATUSES",
    "STATUS_CODES",
    "SealState",
    "StatusAnswer",
    "StatusList",
    "StatusListError",
    "StatusListHeader",
    "build_status_list",
    "fingerprint",
    "read_status_list",
]

MAGIC = b"CSSL2\n"
FORMAT = "certstore-status-list/2"
_FORMAT_1_MAGIC = b"CSSL1\n"
FINGERPRINT_SIZE = 8
EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
MAX_COUNT = 200_000_000  # a sanity bound for decompression
_BUCKETS = 1 << 16
_LOW = FINGERPRINT_SIZE - 2
_COLLISION = 255
_MAX_SECONDS = (1 << 32) - 1
_MAX_ES_ID = 255  # bytes
_SECOND = timedelta(seconds=1)
_ROOT = IDENTIFIER_ROOT + "."

#: Statuses of versions not in force and their 1-byte codes (valid is never listed; expired is computed).
STATUS_CODES: dict[Status, int] = {
    Status.SUSPENDED: 2,
    Status.REVOKED: 3,
    Status.CANCELLED: 4,
    Status.ANNULLED: 5,
    Status.SUPERSEDED: 6,
}
_BY_CODE = {code: status for status, code in STATUS_CODES.items()}
#: Seal states listed (a valid seal is not) and their codes.
SEAL_STATUSES: dict[str, int] = {"suspended": 2, "revoked": 3}
_SEAL_BY_CODE = {code: status for status, code in SEAL_STATUSES.items()}
_SM3 = new_sm3()


class StatusListError(ValueError):
    """A status snapshot that is malformed, altered, not signed by a trusted (expected) key, or of format 1."""


def fingerprint(identifier: str) -> bytes:
    """The 8-byte fingerprint of a certificate identifier: the first 8 bytes of its SM3."""
    state = _SM3.copy()
    state.update(identifier.encode("utf-8"))
    return state.digest()[:FINGERPRINT_SIZE]


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def _seconds(at: datetime, what: str) -> int:
    try:
        value = (at - EPOCH) // _SECOND
    except TypeError:
        raise ValueError(f"{what}: the time must be timezone-aware") from None
    if not 0 <= value <= _MAX_SECONDS:
        raise ValueError(f"{what}: {at.isoformat()} is outside 2000-01-01 … 2136")
    return value


def _time(seconds: int) -> datetime:
    return EPOCH + timedelta(seconds=seconds)


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
    (``sequence``, monotonic), for when (``this_update`` … ``next_update``), what: ``count`` versions not in
    force, ``suspensions`` ended suspensions, ``seals`` withdrawn seals, out of ``versions`` versions held (None:
    not stated), for the issuer codes in ``scope`` (empty: not stated)."""

    issuer: str
    key_id: str
    sequence: int
    this_update: datetime
    next_update: datetime
    count: int
    suspensions: int = 0
    seals: int = 0
    versions: int | None = None
    scope: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, object]:
        return {
            "format": FORMAT,
            "issuer": self.issuer,
            "key_id": self.key_id,
            "sequence": self.sequence,
            "this_update": _iso(self.this_update),
            "next_update": _iso(self.next_update),
            "count": self.count,
            "suspensions": self.suspensions,
            "seals": self.seals,
            "versions": self.versions,
            "scope": list(self.scope),
            "fingerprint": "sm3-64",
            "epoch": _iso(EPOCH),
        }


@dataclass(frozen=True)
class SealState:
    """A withdrawn seal (电子印章) as the snapshot lists it: ``status`` "suspended" or "revoked", since
    ``effective_at``."""

    status: str
    effective_at: datetime


@dataclass(frozen=True)
class StatusAnswer:
    """What a snapshot says of one certificate version at the time asked.

    ``status``: :attr:`Status.VALID` when in force (not listed at that time), the listed status otherwise; None
    when it cannot be told — ``unknown`` says why (signed after thisUpdate, fingerprint collision, out of
    scope, asked about a time before the file was signed). ``since``: when a listed status took effect;
    ``until``: when a suspension that has ended ended. ``later``: in force at the time asked, but listed with
    this status from this later time on (e.g. revoked after the time asked)."""

    status: Status | None
    since: datetime | None = None
    until: datetime | None = None
    later: tuple[Status, datetime] | None = None
    unknown: str | None = None

    @property
    def in_force(self) -> bool:
        return self.status is Status.VALID

    @property
    def listed(self) -> bool:
        return self.since is not None


def build_status_list(
    entries: Iterable[tuple[str, Status, datetime]],
    *,
    issuer: str,
    sequence: int,
    this_update: datetime,
    next_update: datetime,
    signer: Signer,
    certificate: Certificate,
    chain: Sequence[Certificate] = (),
    suspensions: Iterable[tuple[str, datetime, datetime]] = (),
    seals: Iterable[tuple[str, str, datetime]] = (),
    scope: Iterable[str] = (),
    versions: int | None = None,
    level: int = 6,
) -> bytes:
    """The signed snapshot (see the module documentation). ``entries``: (identifier, stored status, since when)
    of every version not in force; ``suspensions``: (identifier, start, end) of suspensions that have ended;
    ``seals``: (GB/T 38540 ES ID, "suspended" | "revoked", since when) of withdrawn seals; ``scope``: the
    issuer codes covered; ``versions``: how many versions the repository holds (stated, not checked)."""
    if this_update.tzinfo is None or next_update.tzinfo is None:
        raise ValueError("thisUpdate and nextUpdate must be timezone-aware")
    if next_update <= this_update:
        raise ValueError("nextUpdate must be after thisUpdate")
    state, size, by_status = _SM3, FINGERPRINT_SIZE, STATUS_CODES
    listed: dict[bytes, tuple[int, int, str]] = {}  # fingerprint → (code, since, identifier)
    collided: set[bytes] = set()
    for identifier, status, since in entries:
        code = by_status.get(status)
        if code is None:
            raise ValueError(
                f"{identifier}: status {status.value} is not listed (only versions not in force are)"
            )
        digest = state.copy()
        digest.update(identifier.encode("utf-8"))
        value = digest.digest()[:size]
        previous = listed.get(value)
        if previous is not None:
            if previous[2] == identifier:
                raise ValueError(f"{identifier} is listed twice")
            collided.add(value)
        listed[value] = (code, _seconds(since, identifier), identifier)
    ended: list[tuple[bytes, int, int]] = []
    suspended: dict[bytes, str] = {}
    for identifier, start, end in suspensions:
        if end <= start:
            raise ValueError(f"{identifier}: a suspension must end after it starts")
        value = fingerprint(identifier)
        owner = listed[value][2] if value in listed else suspended.setdefault(value, identifier)
        if owner != identifier:
            collided.add(value)
        ended.append((value, _seconds(start, identifier), _seconds(end, identifier)))
    for value in collided:  # not decidable: the look-up answers "unknown", never another version's status
        listed[value] = (_COLLISION, 0, "")
    ended = sorted(e for e in ended if e[0] not in collided)
    ordered = sorted(listed)
    counts = [0] * _BUCKETS
    for value in ordered:
        counts[(value[0] << 8) | value[1]] += 1
    records = [listed[value] for value in ordered]
    big_endian = struct.pack(f">{len(records)}I", *(seconds for _, seconds, _ in records))
    planes = [big_endian[i::4] for i in range(4)]
    low = b"".join(value[2:] for value in ordered)
    codes = bytes(code for code, _, _ in records)
    seal_part, seal_count = _seal_section(seals)
    body = b"".join(
        [
            struct.pack(f">{_BUCKETS}I", *counts),
            low,
            codes,
            *planes,
            b"".join(value + struct.pack(">II", start, end) for value, start, end in ended),
            seal_part,
        ]
    )
    header = StatusListHeader(
        issuer,
        new_sm3(certificate.der).hexdigest(),
        sequence,
        this_update.replace(microsecond=0),
        next_update.replace(microsecond=0),
        len(listed),
        len(ended),
        seal_count,
        versions,
        tuple(sorted(set(scope))),
    )
    header_bytes = json.dumps(header.to_dict(), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    encoded_header = header_bytes.encode("utf-8")
    compressed = zlib.compress(body, level)
    signed = (
        MAGIC
        + struct.pack(">I", len(encoded_header))
        + encoded_header
        + struct.pack(">I", len(compressed))
        + compressed
    )
    certificates = (certificate, *chain)
    parts = [signed, struct.pack(">H", len(certificates))]
    for cert in certificates:
        parts += [struct.pack(">I", len(cert.der)), cert.der]
    signature = signer.sign(signed)
    parts += [struct.pack(">H", len(signature)), signature]
    return b"".join(parts)


def _seal_section(seals: Iterable[tuple[str, str, datetime]]) -> tuple[bytes, int]:
    states: dict[bytes, tuple[int, int]] = {}
    for es_id, status, since in seals:
        encoded = es_id.encode("utf-8")
        if not 0 < len(encoded) <= _MAX_ES_ID:
            raise ValueError(f"seal ES ID {es_id!r}: 1 to {_MAX_ES_ID} bytes")
        if status not in SEAL_STATUSES:
            raise ValueError(f"seal {es_id}: status {status!r} is not listed (only suspended or revoked)")
        if encoded in states:
            raise ValueError(f"seal {es_id} is listed twice")
        states[encoded] = (SEAL_STATUSES[status], _seconds(since, f"seal {es_id}"))
    part = b"".join(
        bytes([len(es_id)]) + es_id + struct.pack(">BI", *states[es_id]) for es_id in sorted(states)
    )
    return part, len(states)


@dataclass(frozen=True)
class StatusList:
    """A verified snapshot: its header, signer, and the look-ups (:meth:`lookup`, :meth:`seal_state`)."""

    header: StatusListHeader
    signer: Certificate
    _offsets: tuple[int, ...] = field(repr=False)
    _low: bytes = field(repr=False)
    _codes: bytes = field(repr=False)
    _since: bytes = field(repr=False)
    _ended: dict[bytes, tuple[tuple[int, int], ...]] = field(repr=False)
    _seals: dict[str, SealState] = field(repr=False)
    _issuers: frozenset[str] = field(repr=False)

    def lookup(
        self, identifier: str, signed_at: datetime | None = None, at: datetime | None = None
    ) -> StatusAnswer:
        """What the snapshot says of the version ``identifier`` in a file signed at ``signed_at`` (None: not
        compared — the caller's responsibility), at ``at`` (None or from ``thisUpdate`` on: as of
        ``thisUpdate``; earlier: as it stood then)."""
        header = self.header
        if signed_at is not None:
            signed = signed_at.replace(microsecond=0)
            if signed > header.this_update:
                return StatusAnswer(
                    None,
                    unknown=f"the file was signed at {_iso(signed)}, after the snapshot's thisUpdate "
                    f"{_iso(header.this_update)}: the snapshot predates it",
                )
            if at is not None and at < signed:
                return StatusAnswer(
                    None, unknown=f"asked about {_iso(at)}, before the file was signed ({_iso(signed)})"
                )
        outside = self._outside_scope(identifier)
        if outside is not None:
            return StatusAnswer(None, unknown=outside)
        value = fingerprint(identifier)
        record = self._record(value)
        if record is not None and record[0] == _COLLISION:
            return StatusAnswer(
                None, unknown="fingerprint collision: two listed versions share this identifier's fingerprint"
            )
        listed = None if record is None else (_BY_CODE[record[0]], _time(record[1]))
        if at is None or at >= header.this_update:  # as of thisUpdate
            return StatusAnswer(Status.VALID) if listed is None else StatusAnswer(listed[0], since=listed[1])
        if listed is not None and listed[1] <= at:
            return StatusAnswer(listed[0], since=listed[1])
        for start, end in self._ended.get(value, ()):
            if _time(start) <= at < _time(end):
                return StatusAnswer(Status.SUSPENDED, since=_time(start), until=_time(end), later=listed)
        return StatusAnswer(Status.VALID, later=listed)

    def seal_state(self, es_id: str) -> SealState | None:
        """The listed state of the seal ``es_id`` (GB/T 38540 ES ID); None when it is not listed (valid as of
        ``thisUpdate``, as far as the repository knows)."""
        return self._seals.get(es_id)

    def _outside_scope(self, identifier: str) -> str | None:
        scope = self._issuers
        if not scope:
            return None
        segments = identifier.removeprefix(_ROOT).split(".")
        if not identifier.startswith(_ROOT) or len(segments) != 5:  # type, issuer, serial, version, check
            return f"{identifier} is not a certificate identifier the snapshot can cover"
        issuer_code = segments[1]
        if issuer_code not in scope:
            return f"issuer {issuer_code} is outside the snapshot's scope ({len(scope)} issuer(s))"
        return None

    def _record(self, value: bytes) -> tuple[int, int] | None:
        bucket = (value[0] << 8) | value[1]
        lo, hi = self._offsets[bucket], self._offsets[bucket + 1]
        target, low, size = value[2:], self._low, _LOW
        while lo < hi:
            mid = (lo + hi) // 2
            if low[mid * size : mid * size + size] < target:
                lo = mid + 1
            else:
                hi = mid
        if lo < self._offsets[bucket + 1] and low[lo * size : lo * size + size] == target:
            count, since = self.header.count, self._since
            seconds = (since[lo] << 24) | (since[count + lo] << 16) | (since[2 * count + lo] << 8)
            return self._codes[lo], seconds | since[3 * count + lo]
        return None


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
    magic = reader.take(len(MAGIC))
    if magic == _FORMAT_1_MAGIC:
        raise StatusListError(
            "format 1 snapshot (every version listed, no effective times): rebuild it with this version "
            "(certstore status snapshot)"
        )
    if magic != MAGIC:
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
    header = _header(header_bytes)
    if header.key_id != new_sm3(signer.der).hexdigest():
        raise StatusListError("the header's key id does not name the signer certificate")
    if expected and signer not in expected:
        raise StatusListError(f"signed by {signer.subject!r}, not by the repository key")
    validation = validate_chain(signer, trust=trust, at=header.this_update, intermediates=certificates[1:])
    if not validation.ok:
        raise StatusListError(f"its signer is not trusted: {validation.reason}")
    return _body(header, signer, body)


def _header(header_bytes: bytes) -> StatusListHeader:
    try:
        fields = json.loads(header_bytes.decode("utf-8"))
        if fields.get("format") != FORMAT or fields.get("fingerprint") != "sm3-64":
            raise StatusListError(f"unsupported format {fields.get('format')!r}")
        if fields.get("epoch") != _iso(EPOCH):
            raise StatusListError(f"unsupported epoch {fields.get('epoch')!r}")
        versions = fields.get("versions")
        header = StatusListHeader(
            issuer=str(fields["issuer"]),
            key_id=str(fields["key_id"]),
            sequence=int(fields["sequence"]),
            this_update=_parse_time(fields["this_update"]),
            next_update=_parse_time(fields["next_update"]),
            count=int(fields["count"]),
            suspensions=int(fields["suspensions"]),
            seals=int(fields["seals"]),
            versions=None if versions is None else int(versions),
            scope=tuple(str(code) for code in fields["scope"]),
        )
    except StatusListError:
        raise
    except (ValueError, KeyError, TypeError, AttributeError, UnicodeDecodeError) as exc:
        raise StatusListError(f"unreadable header: {exc}") from None
    for name in ("count", "suspensions", "seals"):
        if not 0 <= getattr(header, name) <= MAX_COUNT:
            raise StatusListError(f"implausible {name} {getattr(header, name)}")
    return header


def _body(header: StatusListHeader, signer: Certificate, body: bytes) -> StatusList:
    count = header.count
    fixed = _BUCKETS * 4 + count * (_LOW + 1 + 4) + header.suspensions * (FINGERPRINT_SIZE + 8)
    bound = fixed + header.seals * (1 + _MAX_ES_ID + 5)
    try:
        inflater = zlib.decompressobj()
        plain = inflater.decompress(body, bound + 1)
    except zlib.error as exc:
        raise StatusListError(f"unreadable body: {exc}") from None
    if not inflater.eof or not fixed <= len(plain) <= bound:
        raise StatusListError(f"the body does not hold the {count} entries its header states")
    offsets = tuple(accumulate(struct.unpack_from(f">{_BUCKETS}I", plain), initial=0))
    if offsets[-1] != count:
        raise StatusListError(f"the buckets hold {offsets[-1]} entries, the header states {count}")
    at = _BUCKETS * 4
    low = plain[at : at + count * _LOW]
    at += count * _LOW
    codes = plain[at : at + count]
    at += count
    since = plain[at : at + count * 4]
    at += count * 4
    if any(code != _COLLISION and code not in _BY_CODE for code in set(codes)):
        raise StatusListError("unknown status code in the body")
    ended: dict[bytes, tuple[tuple[int, int], ...]] = {}
    for value, start, end in struct.iter_unpack(">8sII", plain[at : at + header.suspensions * 16]):
        ended[value] = (*ended.get(value, ()), (start, end))
    at += header.suspensions * 16
    seals = _seals(plain, at, header.seals)
    return StatusList(header, signer, offsets, low, codes, since, ended, seals, frozenset(header.scope))


def _seals(plain: bytes, at: int, count: int) -> dict[str, SealState]:
    seals: dict[str, SealState] = {}
    try:
        for _ in range(count):
            size = plain[at]
            es_id = plain[at + 1 : at + 1 + size].decode("utf-8")
            code, seconds = struct.unpack_from(">BI", plain, at + 1 + size)
            seals[es_id] = SealState(_SEAL_BY_CODE[code], _time(seconds))
            at += 1 + size + 5
    except (IndexError, UnicodeDecodeError, struct.error, KeyError):
        raise StatusListError("unreadable seals section") from None
    if at != len(plain):
        raise StatusListError("trailing bytes after the seals section")
    return seals
