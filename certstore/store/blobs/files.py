"""The filesystem backends: ``FileBlobStore`` (the embedded default) and ``FileArchive`` (retention enforced by
the application with a ``<key>.retain`` sidecar).

Layout ``root/ab/cd/<key>`` with a ``<key>.json`` metadata sidecar. Writes are spooled to ``root/.tmp`` while
hashing, fsynced, and renamed into place after their sidecars, then the directory is fsynced
(:func:`fsync_dir`, also used by the audit spool); publishing, deleting and changing retention hold an ``flock``
on the blob's directory.
"""

from __future__ import annotations

import contextlib
import fcntl
import io
import json
import os
import re
import tempfile
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO, cast

from ..private import make_private_dir
from .contract import (
    CHUNK,
    COMPLIANCE,
    DEFAULT_MEDIA_TYPE,
    KEY_RE,
    BlobInfo,
    BlobNotFoundError,
    BlobRef,
    BlobStoreError,
    RetentionError,
    RetentionInfo,
    Spool,
    VerifyingReader,
    blob_key,
    check_media_type,
    checked_content,
    format_utc,
    read_verified,
    retain_until_utc,
    validate_key,
)

__all__ = ["FileArchive", "FileBlobStore", "fsync_dir"]


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
    """Create missing directories owner-only (0700), fsyncing each parent so the new entries survive a crash.
    Blob files are 0600: written as ``mkstemp`` files, which are, and renamed."""
    missing: list[Path] = []
    p = path
    while not p.is_dir():
        missing.append(p)
        p = p.parent
    for d in reversed(missing):
        make_private_dir(d)
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
            return check_media_type(meta["media_type"])
        except FileNotFoundError:
            raise BlobStoreError(f"metadata sidecar of {path.name} is missing") from None
        except (ValueError, KeyError, TypeError) as exc:
            raise BlobStoreError(f"metadata sidecar of {path.name} is unreadable: {exc}") from exc

    def _spool(self, stream: BinaryIO) -> tuple[Path, Spool]:
        _makedirs_durable(self._tmp)
        fd, name = tempfile.mkstemp(dir=self._tmp, prefix="put-")
        tmp = Path(name)
        try:
            with os.fdopen(fd, "wb") as f:
                spool = Spool(stream, f)
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
        return checked_content(key, data)

    def open(self, key: str) -> BinaryIO:
        """A streaming reader; ``BlobIntegrityError`` is raised when the end is read if content mismatches."""
        path = self._path(key)
        with _file_errors(f"opening {self._kind} {key}"):
            try:
                raw = path.open("rb", buffering=0)
            except FileNotFoundError:
                raise self._missing(key) from None
        return cast(BinaryIO, io.BufferedReader(VerifyingReader(key, raw.read, raw.close), CHUNK))

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
        return read_verified(self.open(key))

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
                        if KEY_RE.fullmatch(name) and name[:2] == d1.name and name[2:4] == d2.name:
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
        check_media_type(media_type)
        with _file_errors(f"writing a blob under {self._root}"):
            return self._write(stream, media_type, lambda path, present: None)

    def put_many(self, items: Sequence[tuple[bytes, str]]) -> list[BlobRef]:
        """:meth:`put` for many blobs with one flush: every new blob and its sidecar are written to temporary
        files, all of those are fsynced, then each is published (sidecar first) under its directory's lock, and
        each touched directory is fsynced once. After a crash before the return, a blob is absent, or
        complete with its sidecar, as with :meth:`put`. Content already present is handled by :meth:`put`."""
        for _, media_type in items:
            check_media_type(media_type)
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
                            make_private_dir(parent)
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
        check_media_type(media_type)
        until = retain_until_utc(retain_until)

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
        until = retain_until_utc(retain_until)
        path = self._path(key)
        with _file_errors(f"extending retention of {key}"), _dir_lock(path.parent):
            if not path.is_file():
                raise self._missing(key)
            current = self._read_retention(path)
            if current is not None and until < current.retain_until:
                raise RetentionError(
                    f"archived record {key} is retained until {format_utc(current.retain_until)} (COMPLIANCE); "
                    f"the date cannot be moved earlier to {format_utc(until)}"
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
                    f"{format_utc(current.retain_until)}; it cannot be deleted before then"
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
