"""The contract every blob store and archive keeps (对象存储/归档库的约定): keys, value types, errors, the
``BlobStore`` and ``Archive`` protocols, and the content checks both backends share.

A blob's key is the SM3 digest of its bytes as 64 lower-case hex digits, so the same bytes always get the same
key and a reader can check what it got: :func:`checked_content` for whole reads, :class:`VerifyingReader` for
streams (it raises :class:`BlobIntegrityError` at the end of a stream whose content does not hash to its key),
:class:`Spool` to hash a stream while it is written somewhere. The names without a leading underscore that are
not in :mod:`certstore.store.blobs`'s ``__all__`` serve the two backends (:mod:`.files`, :mod:`.s3`) only.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import BinaryIO, Protocol, runtime_checkable

from certstore.crypto.sm3 import new as new_sm3
from certstore.crypto.sm3 import sm3_hex

__all__ = [
    "COMPLIANCE",
    "DEFAULT_MEDIA_TYPE",
    "Archive",
    "BlobInfo",
    "BlobIntegrityError",
    "BlobNotFoundError",
    "BlobRef",
    "BlobStore",
    "BlobStoreError",
    "RetentionError",
    "RetentionInfo",
    "blob_key",
    "validate_key",
]

DEFAULT_MEDIA_TYPE = "application/octet-stream"
COMPLIANCE = "COMPLIANCE"  # the only retention mode used: nobody, not even an administrator, can lift it
CHUNK = 1024 * 1024
SPOOL_IN_MEMORY = 8 * 1024 * 1024
KEY_RE = re.compile(r"[0-9a-f]{64}")
_MEDIA_TYPE_RE = re.compile(r"[A-Za-z0-9][\w!#$&^.+-]*/[A-Za-z0-9][\w!#$&^.+-]*(?:[ \t]*;[ -~]*)?", re.ASCII)


# ---------------------------------------------------------------------------------------------------------
# Errors and value types


class BlobStoreError(Exception):
    """A blob store failed (I/O error, S3 server error, unreachable endpoint); base of the other blob errors."""


class BlobNotFoundError(BlobStoreError, KeyError):
    """No blob is stored under this key."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "blob not found"


class BlobIntegrityError(BlobStoreError):
    """The stored content no longer hashes to its key (corrupted or replaced behind the store's back)."""


class RetentionError(BlobStoreError):
    """An archived record is under retention (保存期限): it cannot be deleted, nor its retention shortened."""


@dataclass(frozen=True)
class BlobRef:
    """What a put returns: the key (SM3 hex) to keep in the database row, the size and the media type."""

    key: str
    size: int
    media_type: str


@dataclass(frozen=True)
class BlobInfo:
    """A stored blob's metadata.

    ``created`` is when this content was last stored (a put of content already present refreshes it).
    ``media_type`` is ``None`` in listings (``iter_infos``), which do not carry it on S3; ``stat`` fills it.
    """

    key: str
    size: int
    media_type: str | None
    created: datetime


@dataclass(frozen=True)
class RetentionInfo:
    """An archived record's retention: the mode (always ``"COMPLIANCE"`` here) and the retain-until date."""

    mode: str
    retain_until: datetime

    def active(self, now: datetime | None = None) -> bool:
        """True while deletes are refused."""
        return self.retain_until > (now or datetime.now(UTC))


# ---------------------------------------------------------------------------------------------------------
# Protocols


@runtime_checkable
class BlobStore(Protocol):
    """A content-addressed blob store: keys are SM3 hex digests of the content."""

    def put(self, data: bytes, *, media_type: str = DEFAULT_MEDIA_TYPE) -> BlobRef:
        """Store ``data`` under its SM3 key; idempotent (present content is not rewritten)."""
        ...

    def put_stream(self, stream: BinaryIO, *, media_type: str = DEFAULT_MEDIA_TYPE) -> BlobRef:
        """Store a large file read from ``stream`` (hashed while spooling, never whole in memory)."""
        ...

    def put_many(self, items: Sequence[tuple[bytes, str]]) -> list[BlobRef]:
        """Store several ``(data, media type)`` blobs, each as :meth:`put` would, in one go: when it returns,
        all are durable; the refs come back in the order given. Faster than ``put`` in a loop (the bulk
        import stores a chunk of sealed files this way before committing their rows)."""
        ...

    def get(self, key: str) -> bytes:
        """The content, checked against the key (``BlobIntegrityError`` on mismatch)."""
        ...

    def open(self, key: str) -> BinaryIO:
        """A streaming reader; it raises ``BlobIntegrityError`` at the end if the content does not match."""
        ...

    def stat(self, key: str) -> BlobInfo | None:
        """Size, media type and time stored, or ``None`` if absent."""
        ...

    def exists(self, key: str) -> bool:
        """Whether a blob is stored under ``key``."""
        ...

    def delete(self, key: str) -> None:
        """Remove the blob; removing a missing blob is not an error."""
        ...

    def iter_keys(self) -> Iterator[str]:
        """Every stored key."""
        ...

    def iter_infos(self) -> Iterator[BlobInfo]:
        """Every stored blob with size and time stored (for orphan sweeps)."""
        ...

    def verify(self, key: str) -> bool:
        """Re-hash the stored content: True if it still matches the key."""
        ...


@runtime_checkable
class Archive(Protocol):
    """A content-addressed store whose objects carry COMPLIANCE retention until a date."""

    def put(self, data: bytes, *, retain_until: datetime, media_type: str = DEFAULT_MEDIA_TYPE) -> BlobRef:
        """Archive ``data`` under retention until ``retain_until`` (future, timezone-aware).

        Archiving content that is already there keeps one copy and extends its retention if the new date
        is later; it never shortens it.
        """
        ...

    def get(self, key: str) -> bytes:
        """The content, checked against the key."""
        ...

    def open(self, key: str) -> BinaryIO:
        """A streaming reader, checked against the key at the end."""
        ...

    def stat(self, key: str) -> BlobInfo | None:
        """Size, media type and time stored, or ``None`` if absent."""
        ...

    def exists(self, key: str) -> bool:
        """Whether a record is archived under ``key``."""
        ...

    def iter_keys(self) -> Iterator[str]:
        """Every archived key."""
        ...

    def iter_infos(self) -> Iterator[BlobInfo]:
        """Every archived record with size and time stored."""
        ...

    def verify(self, key: str) -> bool:
        """Re-hash the stored content: True if it still matches the key."""
        ...

    def retention(self, key: str) -> RetentionInfo | None:
        """The record's retention, or ``None`` if it has none."""
        ...

    def extend_retention(self, key: str, retain_until: datetime) -> RetentionInfo:
        """Move the retain-until date later; an earlier date raises ``RetentionError``."""
        ...

    def delete(self, key: str) -> None:
        """Remove the record; ``RetentionError`` while retention is active; missing is not an error."""
        ...


# ---------------------------------------------------------------------------------------------------------
# Keys, media types, dates


def blob_key(data: bytes) -> str:
    """The key of ``data``: its SM3 digest as 64 lower-case hex digits."""
    return sm3_hex(data)


def validate_key(key: object) -> str:
    """Return ``key`` if it is 64 lower-case hex digits, else raise ``ValueError`` (checked before any I/O)."""
    if not isinstance(key, str) or not KEY_RE.fullmatch(key):
        shown = repr(key)
        if len(shown) > 80:
            shown = shown[:77] + "..."
        raise ValueError(f"invalid blob key {shown}: expected 64 lower-case hex digits (an SM3 digest)")
    return key


def check_media_type(media_type: str) -> str:
    if not isinstance(media_type, str) or not _MEDIA_TYPE_RE.fullmatch(media_type):
        raise ValueError(f"invalid media type {media_type!r}: expected type/subtype, e.g. application/ofd")
    return media_type


def retain_until_utc(value: datetime) -> datetime:
    """UTC, rounded up to a whole second (S3 keeps seconds), and in the future."""
    if not isinstance(value, datetime) or value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("retain_until must be a timezone-aware datetime")
    value = value.astimezone(UTC)
    if value.microsecond:
        value = value.replace(microsecond=0) + timedelta(seconds=1)
    if value <= datetime.now(UTC):
        raise ValueError(f"retain_until {value.isoformat()} is not in the future")
    return value


def format_utc(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Spool:
    """Copy a stream into a temporary file while hashing it with SM3."""

    def __init__(self, stream: BinaryIO, sink: BinaryIO) -> None:
        hasher = new_sm3()
        size = 0
        while chunk := stream.read(CHUNK):
            if not isinstance(chunk, bytes | bytearray | memoryview):
                raise TypeError("put_stream needs a binary stream")
            hasher.update(chunk)
            sink.write(chunk)
            size += len(chunk)
        sink.flush()
        self.key = hasher.hexdigest()
        self.size = size


def _http_error() -> type[Exception]:
    """urllib3's transport error (an S3 stream's), imported only when a read fails: a repository on files never
    loads the HTTP client."""
    import urllib3

    return urllib3.exceptions.HTTPError


class VerifyingReader(io.RawIOBase):
    """Pass a stream through while hashing it; at end of stream compare with the key."""

    def __init__(self, key: str, read: Callable[[int], bytes], close: Callable[[], None]) -> None:
        super().__init__()
        self._key = key
        self._read = read
        self._close = close
        self._hasher = new_sm3()
        self._done = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]  # Buffer in 3.12
        if self._done:
            return 0
        try:
            chunk = self._read(len(buffer))
        except (OSError, _http_error()) as exc:
            raise BlobStoreError(f"reading blob {self._key} failed: {exc}") from exc
        if not chunk:
            self._done = True
            actual = self._hasher.hexdigest()
            if actual != self._key:
                raise BlobIntegrityError(f"blob {self._key} is corrupted: its content hashes to {actual}")
            return 0
        self._hasher.update(chunk)
        n = len(chunk)
        buffer[:n] = chunk
        return n

    def close(self) -> None:
        if not self.closed:
            try:
                self._close()
            finally:
                super().close()


def read_verified(reader: BinaryIO) -> bool:
    try:
        with reader:
            while reader.read(CHUNK):
                pass
    except BlobIntegrityError:
        return False
    return True


def checked_content(key: str, data: bytes) -> bytes:
    actual = blob_key(data)
    if actual != key:
        raise BlobIntegrityError(f"blob {key} is corrupted: its content hashes to {actual}")
    return data
