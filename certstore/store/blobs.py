"""Content-addressed blob stores (对象存储) and the retention archive (归档库).

A blob's key is the SM3 digest of its bytes as 64 lower-case hex digits, so the same bytes always get the
same key and a reader can check what it got (``get`` re-hashes and raises ``BlobIntegrityError``).

Two backends behind one ``BlobStore`` protocol:

- ``FileBlobStore`` — the embedded default, ``root/ab/cd/<key>`` with a ``<key>.json`` metadata sidecar;
- ``S3BlobStore`` — any S3 server through the ``minio`` client (production: MinIO or SeaweedFS).

and two behind the ``Archive`` protocol, for records that must not be deleted before a date:

- ``S3Archive`` — an Object Lock bucket; every object version carries COMPLIANCE retention that the server
  enforces (no delete, no shortening, no downgrade until the date);
- ``FileArchive`` — the same contract enforced by the application with a ``<key>.retain`` sidecar.

Consistency with the database (write the blob, then commit the row): a crash in between leaves an orphan blob,
never a row without its blob. An orphan sweep lists ``iter_infos()``, skips blobs whose ``created`` time is
within a grace period (a ``put`` of content that is already present refreshes that time, so a deduplicated
put is protected like a new one), and deletes the unreferenced rest.

``blob_store_from_url`` and ``archive_from_url`` build a store from ``CERTSTORE_BLOB_URL`` /
``CERTSTORE_ARCHIVE_URL`` values (``file:///path`` or ``s3://HOST:PORT/BUCKET[/prefix]``).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import fcntl
import io
import json
import os
import re
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import BinaryIO, Protocol, cast, runtime_checkable
from urllib.parse import unquote, urlsplit

import certifi
import urllib3
from minio import Minio
from minio.commonconfig import REPLACE, CopySource
from minio.datatypes import Object
from minio.error import MinioException, S3Error
from minio.retention import Retention

from certstore.crypto.sm3 import new as new_sm3
from certstore.crypto.sm3 import sm3_hex

__all__ = [
    "ARCHIVE_URL_ENV",
    "BLOB_URL_ENV",
    "COMPLIANCE",
    "DEFAULT_MEDIA_TYPE",
    "S3_ACCESS_KEY_ENV",
    "S3_SECRET_KEY_ENV",
    "S3_SECURE_ENV",
    "Archive",
    "BlobInfo",
    "BlobIntegrityError",
    "BlobNotFoundError",
    "BlobRef",
    "BlobStore",
    "BlobStoreError",
    "FileArchive",
    "FileBlobStore",
    "RetentionError",
    "RetentionInfo",
    "S3Archive",
    "S3BlobStore",
    "archive_from_url",
    "blob_key",
    "blob_store_from_url",
    "fsync_dir",
    "validate_key",
]

BLOB_URL_ENV = "CERTSTORE_BLOB_URL"
ARCHIVE_URL_ENV = "CERTSTORE_ARCHIVE_URL"
S3_ACCESS_KEY_ENV = "CERTSTORE_S3_ACCESS_KEY"
S3_SECRET_KEY_ENV = "CERTSTORE_S3_SECRET_KEY"
S3_SECURE_ENV = "CERTSTORE_S3_SECURE"

DEFAULT_MEDIA_TYPE = "application/octet-stream"
COMPLIANCE = "COMPLIANCE"  # the only retention mode used: nobody, not even an administrator, can lift it
_CHUNK = 1024 * 1024
_SPOOL_IN_MEMORY = 8 * 1024 * 1024
_KEY_RE = re.compile(r"[0-9a-f]{64}")
_MEDIA_TYPE_RE = re.compile(r"[A-Za-z0-9][\w!#$&^.+-]*/[A-Za-z0-9][\w!#$&^.+-]*(?:[ \t]*;[ -~]*)?", re.ASCII)
_BUCKET_RE = re.compile(r"(?!\d+\.\d+\.\d+\.\d+$)[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_SM3_META = "x-amz-meta-sm3"


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
    if not isinstance(key, str) or not _KEY_RE.fullmatch(key):
        shown = repr(key)
        if len(shown) > 80:
            shown = shown[:77] + "..."
        raise ValueError(f"invalid blob key {shown}: expected 64 lower-case hex digits (an SM3 digest)")
    return key


def _check_media_type(media_type: str) -> str:
    if not isinstance(media_type, str) or not _MEDIA_TYPE_RE.fullmatch(media_type):
        raise ValueError(f"invalid media type {media_type!r}: expected type/subtype, e.g. application/ofd")
    return media_type


def _retain_until(value: datetime) -> datetime:
    """UTC, rounded up to a whole second (S3 keeps seconds), and in the future."""
    if not isinstance(value, datetime) or value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("retain_until must be a timezone-aware datetime")
    value = value.astimezone(UTC)
    if value.microsecond:
        value = value.replace(microsecond=0) + timedelta(seconds=1)
    if value <= datetime.now(UTC):
        raise ValueError(f"retain_until {value.isoformat()} is not in the future")
    return value


def _fmt(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class _Spool:
    """Copy a stream into a temporary file while hashing it with SM3."""

    def __init__(self, stream: BinaryIO, sink: BinaryIO) -> None:
        hasher = new_sm3()
        size = 0
        while chunk := stream.read(_CHUNK):
            if not isinstance(chunk, bytes | bytearray | memoryview):
                raise TypeError("put_stream needs a binary stream")
            hasher.update(chunk)
            sink.write(chunk)
            size += len(chunk)
        sink.flush()
        self.key = hasher.hexdigest()
        self.size = size


class _VerifyingReader(io.RawIOBase):
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
        except (OSError, urllib3.exceptions.HTTPError) as exc:
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


def _verify(reader: BinaryIO) -> bool:
    try:
        with reader:
            while reader.read(_CHUNK):
                pass
    except BlobIntegrityError:
        return False
    return True


def _check_content(key: str, data: bytes) -> bytes:
    actual = blob_key(data)
    if actual != key:
        raise BlobIntegrityError(f"blob {key} is corrupted: its content hashes to {actual}")
    return data


# ---------------------------------------------------------------------------------------------------------
# Filesystem backend


def fsync_dir(path: Path) -> None:
    """Make the entries of directory ``path`` durable (new, renamed or removed files survive a crash)."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _makedirs_durable(path: Path) -> None:
    """Create missing directories, fsyncing each parent so the new entries survive a crash."""
    missing: list[Path] = []
    p = path
    while not p.is_dir():
        missing.append(p)
        p = p.parent
    for d in reversed(missing):
        with contextlib.suppress(FileExistsError):
            d.mkdir()
        fsync_dir(d.parent)


def _atomic_write(path: Path, data: bytes) -> None:
    """Write ``path`` as temp file + fsync + rename + directory fsync."""
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    tmp = Path(name)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


@contextlib.contextmanager
def _dir_lock(directory: Path) -> Iterator[bool]:
    """Hold an exclusive ``flock`` on a fan-out directory (yields False if the directory does not exist).

    Publishing a blob with its sidecars, deleting it, and changing retention happen under this lock, so a
    put racing a delete of the same content (another process, e.g. an orphan sweep) cannot leave a blob
    without its sidecars. Spooling, the slow part, happens outside it.
    """
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    except FileNotFoundError:
        yield False
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield True
    finally:
        os.close(fd)  # also releases the lock


@contextlib.contextmanager
def _file_errors(what: str) -> Iterator[None]:
    try:
        yield
    except BlobStoreError:
        raise
    except OSError as exc:
        raise BlobStoreError(f"{what} failed: {exc.strerror or exc} ({exc.filename or ''})") from exc


class _FileObjects:
    """Shared layout and reads of the file backends: ``root/ab/cd/<key>`` plus sidecars."""

    _kind = "blob"

    def __init__(self, root: Path) -> None:
        self._root = Path(root)
        self._tmp = self._root / ".tmp"

    @property
    def root(self) -> Path:
        """The directory holding the blobs."""
        return self._root

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self._root)!r})"

    def _path(self, key: str) -> Path:
        key = validate_key(key)
        return self._root / key[:2] / key[2:4] / key

    @staticmethod
    def _sidecar(path: Path, suffix: str) -> Path:
        return path.with_name(path.name + suffix)

    def _missing(self, key: str) -> BlobNotFoundError:
        return BlobNotFoundError(f"{self._kind} {key} not found in {self._root}")

    def _media_type(self, path: Path) -> str:
        try:
            meta = json.loads(self._sidecar(path, ".json").read_bytes())
            return _check_media_type(meta["media_type"])
        except FileNotFoundError:
            raise BlobStoreError(f"metadata sidecar of {path.name} is missing") from None
        except (ValueError, KeyError, TypeError) as exc:
            raise BlobStoreError(f"metadata sidecar of {path.name} is unreadable: {exc}") from exc

    def _spool(self, stream: BinaryIO) -> tuple[Path, _Spool]:
        _makedirs_durable(self._tmp)
        fd, name = tempfile.mkstemp(dir=self._tmp, prefix="put-")
        tmp = Path(name)
        try:
            with os.fdopen(fd, "wb") as f:
                spool = _Spool(stream, f)
                os.fsync(f.fileno())
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return tmp, spool

    def _write(self, stream: BinaryIO, media_type: str, sidecars: Callable[[Path, bool], None]) -> BlobRef:
        """Spool, then either refresh the present blob or publish the new one after its sidecars.

        ``sidecars(path, present)`` writes the extra sidecars (retention) before a new blob is published,
        or updates them when the content is already present.
        """
        tmp, spool = self._spool(stream)
        try:
            path = self._path(spool.key)
            _makedirs_durable(path.parent)
            with _dir_lock(path.parent):
                try:
                    os.utime(path)  # present: refresh "created" so an orphan sweep's grace period applies
                except FileNotFoundError:
                    pass
                else:
                    try:
                        stored_type = self._media_type(path)
                    except BlobStoreError:  # repair a lost sidecar rather than fail every later put
                        stored_type = media_type
                        _atomic_write(self._sidecar(path, ".json"), _meta_json(spool.key, media_type))
                    sidecars(path, True)
                    return BlobRef(spool.key, path.stat().st_size, stored_type)
                _atomic_write(self._sidecar(path, ".json"), _meta_json(spool.key, media_type))
                sidecars(path, False)
                tmp.replace(path)
                fsync_dir(path.parent)
                return BlobRef(spool.key, spool.size, media_type)
        finally:
            tmp.unlink(missing_ok=True)

    def get(self, key: str) -> bytes:
        """The content, checked against the key."""
        path = self._path(key)
        with _file_errors(f"reading {self._kind} {key}"):
            try:
                data = path.read_bytes()
            except FileNotFoundError:
                raise self._missing(key) from None
        return _check_content(key, data)

    def open(self, key: str) -> BinaryIO:
        """A streaming reader; ``BlobIntegrityError`` is raised when the end is read if content mismatches."""
        path = self._path(key)
        with _file_errors(f"opening {self._kind} {key}"):
            try:
                raw = path.open("rb", buffering=0)
            except FileNotFoundError:
                raise self._missing(key) from None
        return cast(BinaryIO, io.BufferedReader(_VerifyingReader(key, raw.read, raw.close), _CHUNK))

    def stat(self, key: str) -> BlobInfo | None:
        """Size, media type and time stored, or ``None`` if absent."""
        path = self._path(key)
        with _file_errors(f"stat of {self._kind} {key}"):
            try:
                st = path.stat()
            except FileNotFoundError:
                return None
            try:
                media_type = self._media_type(path)
            except BlobStoreError:
                if not path.exists():  # deleted between the two reads (a delete removes the blob first)
                    return None
                raise
            return BlobInfo(key, st.st_size, media_type, datetime.fromtimestamp(st.st_mtime, UTC))

    def exists(self, key: str) -> bool:
        """Whether a blob is stored under ``key``."""
        return self._path(key).is_file()

    def verify(self, key: str) -> bool:
        """Re-hash the stored content: True if it still matches the key."""
        return _verify(self.open(key))

    def iter_infos(self) -> Iterator[BlobInfo]:
        """Every stored blob with its size and time stored (``media_type`` is ``None``)."""
        hex2 = re.compile(r"[0-9a-f]{2}")
        with _file_errors(f"listing {self._root}"):
            if not self._root.is_dir():
                return
            for d1 in sorted(p for p in self._root.iterdir() if hex2.fullmatch(p.name) and p.is_dir()):
                for d2 in sorted(p for p in d1.iterdir() if hex2.fullmatch(p.name) and p.is_dir()):
                    for entry in sorted(os.scandir(d2), key=lambda e: e.name):
                        name = entry.name
                        if _KEY_RE.fullmatch(name) and name[:2] == d1.name and name[2:4] == d2.name:
                            try:
                                st = entry.stat()
                            except FileNotFoundError:  # deleted while listing
                                continue
                            yield BlobInfo(name, st.st_size, None, datetime.fromtimestamp(st.st_mtime, UTC))

    def iter_keys(self) -> Iterator[str]:
        """Every stored key, in sorted order."""
        return (info.key for info in self.iter_infos())

    @staticmethod
    def _remove(path: Path, sidecars: tuple[str, ...]) -> None:
        """Remove the blob first, then its sidecars (caller holds the directory lock)."""
        for p in (path, *(path.with_name(path.name + s) for s in sidecars)):
            with contextlib.suppress(FileNotFoundError):
                p.unlink()
        fsync_dir(path.parent)


def _meta_json(key: str, media_type: str) -> bytes:
    return json.dumps({"sm3": key, "media_type": media_type}, sort_keys=True).encode()


class FileBlobStore(_FileObjects):
    """Blobs as files under ``root``: ``root/ab/cd/<key>`` and a ``<key>.json`` media-type sidecar.

    Writes go to ``root/.tmp`` (hashing while writing), are fsynced, and are renamed into place after the
    sidecar, then the directory is fsynced: after a crash a blob is either absent or complete with its
    metadata. Publishing and deleting hold an ``flock`` on the blob's directory, so processes putting and
    deleting the same content at once stay consistent. Leftover ``root/.tmp/put-*`` files after a crash are
    never listed as blobs (a maintenance job may remove old ones).
    """

    def put(self, data: bytes, *, media_type: str = DEFAULT_MEDIA_TYPE) -> BlobRef:
        """Store ``data`` under its SM3 key; present content is not rewritten (its time is refreshed)."""
        return self.put_stream(io.BytesIO(data), media_type=media_type)

    def put_stream(self, stream: BinaryIO, *, media_type: str = DEFAULT_MEDIA_TYPE) -> BlobRef:
        """Store a stream's content, hashed while spooling to a temporary file in the store."""
        _check_media_type(media_type)
        with _file_errors(f"writing a blob under {self._root}"):
            return self._write(stream, media_type, lambda path, present: None)

    def put_many(self, items: Sequence[tuple[bytes, str]]) -> list[BlobRef]:
        """:meth:`put` for many blobs with one flush: every new blob and its sidecar are written to temporary
        files, all of those are fsynced, then each is published (sidecar first) under its directory's lock, and
        each touched directory is fsynced once. After a crash before the return, a blob is absent, or
        complete with its sidecar, as with :meth:`put`. Content already present is handled by :meth:`put`."""
        for _, media_type in items:
            _check_media_type(media_type)
        refs: list[BlobRef | None] = [None] * len(items)
        staged: list[tuple[int, str, Path, Path]] = []  # index, key, blob tmp, sidecar tmp
        staged_keys: set[str] = set()
        with _file_errors(f"writing blobs under {self._root}"):
            _makedirs_durable(self._tmp)
            try:
                files: list[Path] = []
                for index, (data, media_type) in enumerate(items):
                    key = blob_key(data)
                    if key in staged_keys or self._path(key).exists():
                        continue  # present (or twice in this call): put() refreshes it, below
                    staged_keys.add(key)
                    blob_tmp = self._unsynced_tmp(data)
                    files.append(blob_tmp)
                    sidecar_tmp = self._unsynced_tmp(_meta_json(key, media_type))
                    files.append(sidecar_tmp)
                    staged.append((index, key, blob_tmp, sidecar_tmp))
                for path in files:  # one after another: the first flush carries most of the rest
                    fd = os.open(path, os.O_RDONLY)
                    try:
                        os.fsync(fd)
                    finally:
                        os.close(fd)
                directories: set[Path] = set()
                for index, key, blob_tmp, sidecar_tmp in staged:
                    path = self._path(key)
                    for parent in (path.parent.parent, path.parent):
                        if not parent.is_dir():
                            with contextlib.suppress(FileExistsError):
                                parent.mkdir()
                            directories.add(parent.parent)
                    with _dir_lock(path.parent):
                        if not path.exists():
                            sidecar_tmp.replace(self._sidecar(path, ".json"))
                            blob_tmp.replace(path)
                            refs[index] = BlobRef(key, len(items[index][0]), items[index][1])
                    directories.add(path.parent)
                for directory in sorted(directories, key=lambda d: len(d.parts), reverse=True):
                    fsync_dir(directory)
            finally:
                for _, _, blob_tmp, sidecar_tmp in staged:
                    blob_tmp.unlink(missing_ok=True)
                    sidecar_tmp.unlink(missing_ok=True)
        return [ref if ref is not None else self.put(data, media_type=media_type)
                for ref, (data, media_type) in zip(refs, items, strict=True)]  # fmt: skip

    def _unsynced_tmp(self, data: bytes) -> Path:
        fd, name = tempfile.mkstemp(dir=self._tmp, prefix="put-")
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        return Path(name)

    def delete(self, key: str) -> None:
        """Remove the blob and its sidecar; missing is not an error."""
        path = self._path(key)
        with _file_errors(f"deleting blob {key}"), _dir_lock(path.parent) as present:
            if present:
                self._remove(path, (".json",))


class FileArchive(_FileObjects):
    """The embedded archive: a file store whose records carry a ``<key>.retain`` sidecar.

    The sidecar (``{"mode": "COMPLIANCE", "retain_until": ...}``) is written before the record is renamed
    into place, and the application refuses deletes before the date and any shortening — the same contract
    ``S3Archive`` gets from the server's Object Lock. Anyone with filesystem access can still remove files;
    use the S3 archive where that matters.
    """

    _kind = "archived record"

    def put(self, data: bytes, *, retain_until: datetime, media_type: str = DEFAULT_MEDIA_TYPE) -> BlobRef:
        """Archive ``data`` until ``retain_until``; present content keeps the later of the two dates."""
        _check_media_type(media_type)
        until = _retain_until(retain_until)

        def sidecars(path: Path, present: bool) -> None:
            current = self._read_retention(path) if present else None
            if current is None or until > current.retain_until:
                self._write_retention(path, until)

        with _file_errors(f"archiving under {self._root}"):
            return self._write(io.BytesIO(data), media_type, sidecars)

    def retention(self, key: str) -> RetentionInfo | None:
        """The record's retention, or ``None`` if it has none."""
        path = self._path(key)
        with _file_errors(f"reading retention of {key}"):
            if not path.is_file():
                raise self._missing(key)
            return self._read_retention(path)

    def extend_retention(self, key: str, retain_until: datetime) -> RetentionInfo:
        """Move the retain-until date later; an earlier date raises ``RetentionError``."""
        until = _retain_until(retain_until)
        path = self._path(key)
        with _file_errors(f"extending retention of {key}"), _dir_lock(path.parent):
            if not path.is_file():
                raise self._missing(key)
            current = self._read_retention(path)
            if current is not None and until < current.retain_until:
                raise RetentionError(
                    f"archived record {key} is retained until {_fmt(current.retain_until)} (COMPLIANCE); "
                    f"the date cannot be moved earlier to {_fmt(until)}"
                )
            self._write_retention(path, until)
        return RetentionInfo(COMPLIANCE, until)

    def delete(self, key: str) -> None:
        """Remove the record once its retention has passed; missing is not an error."""
        path = self._path(key)
        with _file_errors(f"deleting archived record {key}"), _dir_lock(path.parent) as present:
            if not present:
                return
            current = self._read_retention(path) if path.is_file() else None
            if current is not None and current.active():
                raise RetentionError(
                    f"archived record {key} is under COMPLIANCE retention until "
                    f"{_fmt(current.retain_until)}; it cannot be deleted before then"
                )
            # The retention sidecar goes last: a crash mid-delete never leaves an unprotected record.
            self._remove(path, (".json", ".retain"))

    def _read_retention(self, path: Path) -> RetentionInfo | None:
        try:
            raw = json.loads(self._sidecar(path, ".retain").read_bytes())
            return RetentionInfo(raw["mode"], datetime.fromisoformat(raw["retain_until"]).astimezone(UTC))
        except FileNotFoundError:
            return None
        except (ValueError, KeyError, TypeError) as exc:
            # Unreadable retention must not make a record deletable.
            raise BlobStoreError(f"retention sidecar of {path.name} is unreadable: {exc}") from exc

    def _write_retention(self, path: Path, until: datetime) -> None:
        body = {"mode": COMPLIANCE, "retain_until": until.isoformat()}
        _atomic_write(self._sidecar(path, ".retain"), json.dumps(body, sort_keys=True).encode())


# ---------------------------------------------------------------------------------------------------------
# S3 backend

_BUCKET_EXISTS_CODES = frozenset({"BucketAlreadyOwnedByYou", "BucketAlreadyExists"})


def _no_lock_config(exc: S3Error) -> bool:
    # AWS answers NoSuchObjectLockConfiguration, SeaweedFS ObjectLockConfigurationNotFoundError.
    return "ObjectLockConfiguration" in (exc.code or "")


class _S3Objects:
    """Shared object naming, reads and error translation of the S3 backends."""

    _kind = "blob"

    def __init__(self, client: Minio, bucket: str, *, prefix: str) -> None:
        if not _BUCKET_RE.fullmatch(bucket) or ".." in bucket:
            raise ValueError(f"invalid S3 bucket name {bucket!r}")
        if prefix and not prefix.endswith("/"):
            prefix += "/"
        self._client = client
        self._bucket = bucket
        self._prefix = prefix

    @property
    def client(self) -> Minio:
        """The minio client."""
        return self._client

    @property
    def bucket(self) -> str:
        """The bucket name."""
        return self._bucket

    @property
    def prefix(self) -> str:
        """The object-name prefix (empty or ending in ``/``)."""
        return self._prefix

    def __repr__(self) -> str:
        return f"{type(self).__name__}(bucket={self._bucket!r}, prefix={self._prefix!r})"

    def object_name(self, key: str) -> str:
        """The S3 object name of ``key``."""
        return self._prefix + validate_key(key)

    @contextlib.contextmanager
    def _errors(self, op: str, key: str | None = None) -> Iterator[None]:
        """Translate minio/urllib3 failures into the blob errors, with messages fit for a user."""
        where = f"{self._kind} {key}" if key else f"bucket {self._bucket}"
        try:
            yield
        except S3Error as exc:
            if key is not None and exc.code in {"NoSuchKey", "NoSuchVersion", "NoSuchBucket"}:
                raise BlobNotFoundError(f"{where} not found in S3 bucket {self._bucket}") from exc
            raise BlobStoreError(f"S3 {op} of {where} failed: {exc.code}: {exc.message}") from exc
        except MinioException as exc:
            raise BlobStoreError(f"S3 {op} of {where} failed: {exc}") from exc
        except urllib3.exceptions.HTTPError as exc:
            reason = getattr(exc, "reason", None) or exc
            raise BlobStoreError(
                f"S3 {op} of {where} failed: cannot reach the S3 endpoint ({reason})"
            ) from exc

    def _missing(self, key: str) -> BlobNotFoundError:
        return BlobNotFoundError(f"{self._kind} {key} not found in S3 bucket {self._bucket}")

    def _stat(self, key: str) -> Object | None:
        """``stat_object`` of the current version, or ``None`` when absent (or the bucket is)."""
        name = self.object_name(key)
        with self._errors("stat", key):
            try:
                return self._client.stat_object(self._bucket, name)
            except S3Error as exc:
                if exc.code in {"NoSuchKey", "NoSuchVersion", "NoSuchBucket"}:
                    return None
                raise

    def _create_bucket(self, *, object_lock: bool) -> None:
        with self._errors("bucket creation"):
            if self._client.bucket_exists(self._bucket):
                return
            try:
                self._client.make_bucket(self._bucket, object_lock=object_lock)
            except S3Error as exc:
                if exc.code not in _BUCKET_EXISTS_CODES:
                    raise

    def get(self, key: str) -> bytes:
        """The content, checked against the key."""
        name = self.object_name(key)
        with self._errors("get", key):
            resp = self._client.get_object(self._bucket, name)
            try:
                data = resp.read()
            finally:
                resp.close()
                resp.release_conn()
        return _check_content(key, data)

    def open(self, key: str) -> BinaryIO:
        """A streaming reader; ``BlobIntegrityError`` is raised when the end is read if content mismatches."""
        name = self.object_name(key)
        with self._errors("get", key):
            resp = self._client.get_object(self._bucket, name)

        def close() -> None:
            resp.close()
            resp.release_conn()

        return cast(BinaryIO, io.BufferedReader(_VerifyingReader(key, resp.read, close), _CHUNK))

    def stat(self, key: str) -> BlobInfo | None:
        """Size, media type and time stored, or ``None`` if absent."""
        st = self._stat(key)
        if st is None:
            return None
        created = st.last_modified or datetime.now(UTC)
        return BlobInfo(key, st.size or 0, st.content_type or DEFAULT_MEDIA_TYPE, created)

    def exists(self, key: str) -> bool:
        """Whether an object is stored under ``key``."""
        return self._stat(key) is not None

    def verify(self, key: str) -> bool:
        """Re-hash the stored content: True if it still matches the key."""
        return _verify(self.open(key))

    def iter_infos(self) -> Iterator[BlobInfo]:
        """Every stored object under the prefix whose name is a key (``media_type`` is ``None``)."""
        with self._errors("listing"):
            try:
                for obj in self._client.list_objects(self._bucket, prefix=self._prefix, recursive=True):
                    name = obj.object_name or ""
                    key = name[len(self._prefix) :]
                    if name.startswith(self._prefix) and _KEY_RE.fullmatch(key):
                        yield BlobInfo(key, obj.size or 0, None, obj.last_modified or datetime.now(UTC))
            except S3Error as exc:
                if exc.code != "NoSuchBucket":
                    raise

    def iter_keys(self) -> Iterator[str]:
        """Every stored key."""
        return (info.key for info in self.iter_infos())

    def _spool_put(
        self,
        stream: BinaryIO,
        media_type: str,
        present: Callable[[str, Object], BlobRef],
        upload: Callable[[str, BinaryIO, int], None],
    ) -> BlobRef:
        """Hash while spooling to a temporary file, then either handle the present object or upload."""
        _check_media_type(media_type)
        with tempfile.SpooledTemporaryFile(max_size=_SPOOL_IN_MEMORY) as sink:
            spool = _Spool(stream, cast(BinaryIO, sink))
            st = self._stat(spool.key)
            if st is not None:
                return present(spool.key, st)
            sink.seek(0)
            upload(spool.key, cast(BinaryIO, sink), spool.size)
        return BlobRef(spool.key, spool.size, media_type)


class S3BlobStore(_S3Objects):
    """Blobs as S3 objects ``<prefix><key>`` with the media type as Content-Type and ``x-amz-meta-sm3``.

    The bucket is created on the first put if missing (or explicitly with ``ensure_bucket``). A put of
    content that is already present does not upload it again; it refreshes the object's time with a
    server-side metadata copy so an orphan sweep's grace period applies to it.
    """

    def __init__(self, client: Minio, bucket: str, *, prefix: str = "blobs/") -> None:
        super().__init__(client, bucket, prefix=prefix)

    def ensure_bucket(self) -> None:
        """Create the bucket if it does not exist."""
        self._create_bucket(object_lock=False)

    def put(self, data: bytes, *, media_type: str = DEFAULT_MEDIA_TYPE) -> BlobRef:
        """Store ``data`` under its SM3 key; present content is not uploaded again."""
        _check_media_type(media_type)
        key = blob_key(data)
        st = self._stat(key)
        if st is not None:
            return self._refresh(key, st)
        self._upload(key, io.BytesIO(data), len(data), media_type)
        return BlobRef(key, len(data), media_type)

    def put_many(self, items: Sequence[tuple[bytes, str]]) -> list[BlobRef]:
        """:meth:`put` for many blobs, eight uploads at a time (each is a HEAD and a PUT: latency, not
        bandwidth, bounds a loop of small objects)."""
        if len(items) <= 1:
            return [self.put(data, media_type=media_type) for data, media_type in items]
        with concurrent.futures.ThreadPoolExecutor(max_workers=min(8, len(items))) as pool:
            return list(pool.map(lambda item: self.put(item[0], media_type=item[1]), items))

    def put_stream(self, stream: BinaryIO, *, media_type: str = DEFAULT_MEDIA_TYPE) -> BlobRef:
        """Store a large stream: spooled to a temporary file while hashing, then uploaded (multipart)."""

        def upload(key: str, body: BinaryIO, size: int) -> None:
            self._upload(key, body, size, media_type)

        return self._spool_put(stream, media_type, self._refresh, upload)

    def delete(self, key: str) -> None:
        """Remove the object; missing is not an error."""
        name = self.object_name(key)
        with self._errors("delete", key):
            try:
                self._client.remove_object(self._bucket, name)
            except S3Error as exc:
                if exc.code not in {"NoSuchKey", "NoSuchBucket"}:
                    raise

    def _upload(self, key: str, body: BinaryIO, size: int, media_type: str) -> None:
        name = self.object_name(key)
        with self._errors("put", key):
            for attempt in (1, 2):
                try:
                    self._client.put_object(
                        self._bucket, name, body, size, content_type=media_type, metadata={_SM3_META: key}
                    )
                    return
                except S3Error as exc:
                    if exc.code != "NoSuchBucket" or attempt == 2:
                        raise
                self.ensure_bucket()  # first put into a new deployment: create the bucket, then retry
                body.seek(0)

    def _refresh(self, key: str, st: Object) -> BlobRef:
        name = self.object_name(key)
        media_type = st.content_type or DEFAULT_MEDIA_TYPE
        with self._errors("refresh", key):
            self._client.copy_object(
                self._bucket,
                name,
                CopySource(self._bucket, name),
                metadata={"Content-Type": media_type, _SM3_META: key},
                metadata_directive=REPLACE,
            )
        return BlobRef(key, st.size or 0, media_type)


class S3Archive(_S3Objects):
    """The archive as an S3 bucket with Object Lock: each object version has COMPLIANCE retention.

    The server enforces the retention: deleting a locked *version* and shortening or downgrading its
    retention are refused (SeaweedFS and AWS answer 403 AccessDenied), so this holds even against a client
    that bypasses this class. An Object Lock bucket is always versioned; a DELETE *without* a version id
    is accepted and only adds a delete marker (the object looks gone while the locked version stays
    readable by its version id). ``delete`` here therefore removes each version explicitly, so it either
    really deletes or raises ``RetentionError``.

    ``ensure_bucket`` (run before the first put) creates the bucket with Object Lock and refuses an existing
    bucket without it: some servers accept retention there without enforcing it.
    """

    _kind = "archived record"

    def __init__(self, client: Minio, bucket: str, *, prefix: str = "archive/") -> None:
        super().__init__(client, bucket, prefix=prefix)
        self._lock_checked = False

    def ensure_bucket(self) -> None:
        """Create the bucket with Object Lock if missing; check an existing one has Object Lock."""
        self._create_bucket(object_lock=True)
        with self._errors("Object Lock check"):
            try:
                self._client.get_object_lock_config(self._bucket)
            except S3Error as exc:
                if not _no_lock_config(exc):
                    raise
                raise BlobStoreError(
                    f"S3 bucket {self._bucket} exists without Object Lock; an archive bucket must be "
                    "created with Object Lock enabled, or retention is not enforced"
                ) from None
        self._lock_checked = True

    def put(self, data: bytes, *, retain_until: datetime, media_type: str = DEFAULT_MEDIA_TYPE) -> BlobRef:
        """Archive ``data`` with COMPLIANCE retention until ``retain_until``; present content keeps the later."""
        until = _retain_until(retain_until)
        _check_media_type(media_type)
        if not self._lock_checked:
            self.ensure_bucket()

        def present(key: str, st: Object) -> BlobRef:
            current = self._retention(key, st.version_id)
            if current is None or until > current.retain_until:
                self._set_retention(key, st.version_id, until)
            return BlobRef(key, st.size or 0, st.content_type or DEFAULT_MEDIA_TYPE)

        def upload(key: str, body: BinaryIO, size: int) -> None:
            with self._errors("put", key):
                self._client.put_object(
                    self._bucket,
                    self.object_name(key),
                    body,
                    size,
                    content_type=media_type,
                    metadata={_SM3_META: key},
                    retention=Retention(COMPLIANCE, until),
                )

        return self._spool_put(io.BytesIO(data), media_type, present, upload)

    def retention(self, key: str) -> RetentionInfo | None:
        """The current version's retention, or ``None`` if it has none."""
        st = self._stat(key)
        if st is None:
            raise self._missing(key)
        return self._retention(key, st.version_id)

    def extend_retention(self, key: str, retain_until: datetime) -> RetentionInfo:
        """Move the current version's retain-until date later; an earlier date raises ``RetentionError``."""
        until = _retain_until(retain_until)
        st = self._stat(key)
        if st is None:
            raise self._missing(key)
        current = self._retention(key, st.version_id)
        if current is not None and until < current.retain_until:
            raise RetentionError(
                f"archived record {key} is retained until {_fmt(current.retain_until)} (COMPLIANCE); "
                f"the date cannot be moved earlier to {_fmt(until)}"
            )
        self._set_retention(key, st.version_id, until)
        return RetentionInfo(COMPLIANCE, until)

    def delete(self, key: str) -> None:
        """Delete every version of the record; ``RetentionError`` while one is retained; missing is fine."""
        name = self.object_name(key)
        with self._errors("version listing", key):
            try:
                listing = self._client.list_objects(self._bucket, prefix=name, include_version=True)
                versions = [o for o in listing if o.object_name == name]
            except S3Error as exc:
                if exc.code != "NoSuchBucket":
                    raise
                return
        # Data versions first (the ones that may be locked), then delete markers.
        for obj in sorted(versions, key=lambda o: o.is_delete_marker):
            with self._errors("delete", key):
                try:
                    self._client.remove_object(self._bucket, name, version_id=obj.version_id)
                except S3Error as exc:
                    if exc.code in {"NoSuchKey", "NoSuchVersion"}:
                        continue
                    if exc.code in {"AccessDenied", "InvalidRequest"} and not obj.is_delete_marker:
                        current = self._retention(key, obj.version_id)
                        if current is not None and current.active():
                            raise RetentionError(
                                f"archived record {key} is under COMPLIANCE retention until "
                                f"{_fmt(current.retain_until)}; the S3 server refused to delete it "
                                f"(version {obj.version_id}: {exc.code})"
                            ) from None
                    raise

    def _retention(self, key: str, version_id: str | None) -> RetentionInfo | None:
        name = self.object_name(key)
        with self._errors("retention lookup", key):
            try:
                ret = self._client.get_object_retention(self._bucket, name, version_id=version_id)
            except S3Error as exc:
                if _no_lock_config(exc):
                    return None
                raise
        if ret is None or ret.retain_until_date is None:
            return None
        return RetentionInfo(ret.mode or COMPLIANCE, ret.retain_until_date.astimezone(UTC))

    def _set_retention(self, key: str, version_id: str | None, until: datetime) -> None:
        name = self.object_name(key)
        with self._errors("retention update", key):
            try:
                self._client.set_object_retention(
                    self._bucket, name, Retention(COMPLIANCE, until), version_id=version_id
                )
            except S3Error as exc:
                if exc.code != "AccessDenied":
                    raise
                raise RetentionError(
                    f"the S3 server refused to set the retention of archived record {key} to {_fmt(until)} "
                    "(COMPLIANCE retention can only be extended)"
                ) from None


# ---------------------------------------------------------------------------------------------------------
# Construction from URLs


@dataclass(frozen=True)
class _S3Url:
    endpoint: str
    bucket: str
    prefix: str | None


def _parse_file_url(url: str) -> Path:
    parts = urlsplit(url)
    if parts.netloc not in ("", "localhost") or parts.query or parts.fragment:
        raise ValueError(f"bad file URL {url!r}: expected file:///absolute/path")
    path = unquote(parts.path)
    if not path.startswith("/") or "\x00" in path:
        raise ValueError(f"bad file URL {url!r}: expected file:///absolute/path")
    return Path(path)


def _parse_s3_url(url: str) -> _S3Url:
    parts = urlsplit(url)
    shown = (
        url
        if "@" not in parts.netloc
        else url.replace(parts.netloc, "***@" + parts.netloc.rpartition("@")[2])
    )
    bad = f"bad S3 URL {shown!r}: expected s3://HOST:PORT/BUCKET[/prefix]"
    if parts.query or parts.fragment:
        raise ValueError(f"{bad} (no query or fragment)")
    if "@" in parts.netloc:
        raise ValueError(f"{bad} (credentials go in {S3_ACCESS_KEY_ENV} / {S3_SECRET_KEY_ENV}, not the URL)")
    try:
        host, port = parts.hostname, parts.port
    except ValueError:
        raise ValueError(f"{bad} (invalid port)") from None
    if not host:
        raise ValueError(f"{bad} (no host)")
    if port == 0:
        raise ValueError(f"{bad} (invalid port)")
    bucket, _, prefix = parts.path.lstrip("/").partition("/")
    if not bucket:
        raise ValueError(f"{bad} (no bucket)")
    if not _BUCKET_RE.fullmatch(bucket) or ".." in bucket:
        raise ValueError(f"{bad} (invalid bucket name {bucket!r})")
    prefix = unquote(prefix)
    if prefix and any(seg in ("", ".", "..") for seg in prefix.rstrip("/").split("/")):
        raise ValueError(f"{bad} (invalid prefix {prefix!r})")
    host_part = f"[{host}]" if ":" in host else host
    endpoint = f"{host_part}:{port}" if port else host_part
    return _S3Url(endpoint, bucket, prefix or None)


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"", "0", "false", "no", "off"}


def _s3_client(env: Mapping[str, str], endpoint: str) -> Minio:
    access_key = env.get(S3_ACCESS_KEY_ENV, "")
    secret_key = env.get(S3_SECRET_KEY_ENV, "")
    missing = [
        name
        for name, value in ((S3_ACCESS_KEY_ENV, access_key), (S3_SECRET_KEY_ENV, secret_key))
        if not value
    ]
    if missing:
        raise ValueError(f"S3 storage at {endpoint} needs credentials: set {' and '.join(missing)}")
    secure_raw = env.get(S3_SECURE_ENV, "").strip().lower()
    if secure_raw not in _TRUE | _FALSE:
        raise ValueError(f"{S3_SECURE_ENV} must be true or false, not {env.get(S3_SECURE_ENV)!r}")
    secure = secure_raw in _TRUE
    http = urllib3.PoolManager(
        timeout=urllib3.Timeout(connect=10, read=120),
        maxsize=10,
        cert_reqs="CERT_REQUIRED",
        ca_certs=env.get("SSL_CERT_FILE") or certifi.where(),
        retries=urllib3.Retry(total=3, backoff_factor=0.2, status_forcelist=[500, 502, 503, 504]),
    )
    return Minio(endpoint, access_key=access_key, secret_key=secret_key, secure=secure, http_client=http)


def blob_store_from_url(
    url: str | None, *, data_dir: Path, env: Mapping[str, str] = os.environ
) -> FileBlobStore | S3BlobStore:
    """The blob store named by a ``CERTSTORE_BLOB_URL`` value.

    ``None``/empty: ``FileBlobStore(data_dir / "blobs")``; ``file:///abs/path``: a ``FileBlobStore`` there;
    ``s3://HOST:PORT/BUCKET[/prefix]``: an ``S3BlobStore`` (prefix default ``blobs/``) with credentials from
    ``CERTSTORE_S3_ACCESS_KEY`` / ``CERTSTORE_S3_SECRET_KEY`` and TLS from ``CERTSTORE_S3_SECURE``
    (true/false, default false). No network access happens here; the bucket is created on first put.
    """
    if not url:
        return FileBlobStore(Path(data_dir) / "blobs")
    scheme = urlsplit(url).scheme.lower()
    if scheme == "file":
        return FileBlobStore(_parse_file_url(url))
    if scheme == "s3":
        loc = _parse_s3_url(url)
        prefix = "blobs/" if loc.prefix is None else loc.prefix
        return S3BlobStore(_s3_client(env, loc.endpoint), loc.bucket, prefix=prefix)
    raise ValueError(f"unsupported blob store URL {url!r}: use file:///path or s3://HOST:PORT/BUCKET")


def archive_from_url(
    url: str | None, *, data_dir: Path, env: Mapping[str, str] = os.environ
) -> FileArchive | S3Archive:
    """The archive named by a ``CERTSTORE_ARCHIVE_URL`` value (same forms as ``blob_store_from_url``).

    ``None``/empty: ``FileArchive(data_dir / "archive")``; ``s3://...``: an ``S3Archive`` (prefix default
    ``archive/``) whose bucket is created with Object Lock on first put.
    """
    if not url:
        return FileArchive(Path(data_dir) / "archive")
    scheme = urlsplit(url).scheme.lower()
    if scheme == "file":
        return FileArchive(_parse_file_url(url))
    if scheme == "s3":
        loc = _parse_s3_url(url)
        prefix = "archive/" if loc.prefix is None else loc.prefix
        return S3Archive(_s3_client(env, loc.endpoint), loc.bucket, prefix=prefix)
    raise ValueError(f"unsupported archive URL {url!r}: use file:///path or s3://HOST:PORT/BUCKET")
