"""The local spool (本地暂存) of the audit write path: acknowledged events not yet in the database.

Each process appends to its own files (one per spool thread) ``spool-<pid>-<random>.jsonl``, one event per
line, and ``fdatasync``s before an event is acknowledged; it holds an exclusive ``flock`` on the file while it
lives. A line (spool format 2) is the JSON array ``[2, occurred_at, event_id, …, details_text]``: the version,
then exactly the event's part of the canonical encoding that its entry hash will cover
(:func:`certstore.audit.events.canonical_tail`) — written as is, and the writer hashes those same bytes, so an
event is encoded once. Lines of format 1 (a JSON object ``{"v": 1, …}``), left by an
older version (:func:`certstore.audit.events.event_to_payload`), are still read. Once every line is in the database the file is truncated. After a
crash the lock is gone with the process: the next process to start finds the file (:func:`orphans`), replays its
events — de-duplicated by ``event_id``, since some may have reached the database before the crash — and deletes
it. A torn last line (the crash hit mid-write) was never acknowledged and is skipped.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import uuid
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from pathlib import Path

from certstore.audit.events import AuditEvent, canonical_tail, event_from_payload, event_from_tail
from certstore.store.blobs import fsync_dir

__all__ = ["SPOOL_FORMAT", "OrphanSpool", "Spool", "event_from_line", "orphans", "spool_line"]

log = logging.getLogger("certstore.audit")

_PREFIX = "spool-"
_SUFFIX = ".jsonl"
SPOOL_FORMAT = 2
_LINE_START = b"[%d," % SPOOL_FORMAT


def spool_line(event: AuditEvent) -> bytes:
    """One spool line (format 2, newline included) for ``event``, normalised here if it is not yet."""
    return _LINE_START + canonical_tail(event.normalised()) + b"]\n"


def event_from_line(line: bytes) -> AuditEvent:
    """The event of a spool line of format 2, or of format 1 (``ValueError``/``KeyError``/``TypeError`` when
    unreadable). The event is rebuilt from the decoded fields and normalised again when chained: normalising is
    idempotent, so it hashes exactly as the line's bytes would have."""
    if line.startswith(b"{"):
        return event_from_payload(line)
    values = json.loads(line)
    if not isinstance(values, list) or not values or values[0] != SPOOL_FORMAT:
        raise ValueError(f"unknown audit spool line format {values[0] if values else None!r}")
    return event_from_tail(values[1:])


class Spool:
    """This process's spool file (created, locked and fsynced on construction)."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.path = directory / f"{_PREFIX}{os.getpid()}-{uuid.uuid4().hex[:12]}{_SUFFIX}"
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_EXCL, 0o600)
        fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        fsync_dir(directory)
        self.size = 0

    def append(self, events: list[AuditEvent]) -> None:
        """Write the events and fsync: when this returns they survive a crash of the process or the host."""
        data = b"".join([spool_line(event) for event in events])
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]
        os.fdatasync(self._fd)  # the data and the file's new size; the mtime may wait
        self.size += len(data)

    def truncate(self) -> None:
        """Empty the file (every line is in the database)."""
        if self.size:
            os.ftruncate(self._fd, 0)
            os.fdatasync(self._fd)
            self.size = 0

    def close(self, *, remove: bool) -> None:
        """Close the file; ``remove`` deletes it (only when everything in it is in the database)."""
        if self._fd < 0:
            return
        if remove:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()
        os.close(self._fd)
        self._fd = -1


@dataclass
class OrphanSpool:
    """A spool file left by a process that is gone, locked by us while we replay it."""

    path: Path
    events: list[AuditEvent]
    skipped: int
    _fd: int

    def remove(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        self.release()

    def release(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def orphans(directory: Path, *, exclude: Collection[Path] = ()) -> Iterator[OrphanSpool]:
    """Spool files in ``directory`` whose process is gone (their lock is free), with their events. The caller
    replays them, then calls ``remove()`` (or ``release()`` to leave the file for a later attempt)."""
    if not directory.is_dir():
        return
    for path in sorted(directory.glob(f"{_PREFIX}*{_SUFFIX}")):
        if path in exclude:
            continue
        try:
            fd = os.open(path, os.O_RDWR)
        except FileNotFoundError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)  # a live process owns it
            continue
        with os.fdopen(os.dup(fd), "rb") as reader:
            data = reader.read()
        events: list[AuditEvent] = []
        skipped = 0
        lines = data.split(b"\n")
        if lines and lines[-1] != b"":
            skipped += 1  # a torn last line: the crash hit mid-write, never acknowledged
        for line in lines[:-1]:
            if not line.strip():
                continue
            try:
                events.append(event_from_line(line))
            except (ValueError, KeyError, TypeError) as exc:
                skipped += 1
                log.warning("audit spool %s: unreadable line skipped (%s)", path.name, exc)
        yield OrphanSpool(path, events, skipped, fd)
