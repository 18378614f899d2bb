"""Sealing a cycle's certificate versions on all cores: a pool of worker processes (:class:`SealingPool`).

Sealing (laying out the face, the OFD/PDF, the SM2 seal and its time-stamp token) is a pure function of the
prepared version and the keys: :data:`~certstore.services.certificates.FileMaker`. The cycle hands each version
to the pool as soon as its row is planned (:meth:`SealingPool.submit`: the workers seal while the rest of the
batch is planned) and commits the rows in ``seq`` order in its own process, a run of consecutive sealed versions
per transaction (:mod:`certstore.exchange.certificates`). Nothing is committed by a worker process, so the
exactly-once ledger and the commit order are unchanged.

The pool is the one ``certstore import`` uses (:mod:`certstore.services.imports`: ``concurrent.futures``
processes started by a fork server that ignores Ctrl-C, one per CPU by default); each worker builds its own
file maker once, from a picklable factory (:class:`ApplicationSealer`: the data directory's application, its
keys and public URL).

A file is sealed for the very version the cycle commits (the planned one, never prepared again). When a worker
fails (a row's own failure — a character no font has — or a lost worker), the cycle seals that version again in
its own process, so the row's outcome and its rejection reason are those of a run without the pool.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import multiprocessing
import os
import queue
import signal
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from certstore.records import PreparedVersion
from certstore.services.certificates import FileMaker
from certstore.services.imports import _start_forkserver_deaf_to_ctrl_c, default_workers
from certstore.store.blobs import BlobRef, BlobStore

__all__ = ["STORE_THREADS", "ApplicationSealer", "Sealed", "SealingPool", "fixed_sealer"]

#: Threads of the cycle's process that store the sealed files in the blob store while the workers seal (a
#: file's fsyncs wait on the disk, not the CPU: several at once share the device's flushes).
STORE_THREADS = 4

#: A picklable callable that returns the file maker a worker process seals with.
SealerFactory = Callable[[], FileMaker]


@dataclass(frozen=True)
class ApplicationSealer:
    """The file maker of the application of ``data_dir`` (what ``exchange run`` seals with), built in a worker."""

    data_dir: Path
    env: Mapping[str, str] = field(default_factory=dict)

    def __call__(self) -> FileMaker:
        from certstore.app import Application

        return Application.open(self.data_dir, {**os.environ, **self.env}).file_maker()


@dataclass(frozen=True)
class _Fixed:
    maker: FileMaker

    def __call__(self) -> FileMaker:
        return self.maker


def fixed_sealer(maker: FileMaker) -> SealerFactory:
    """A factory for a file maker that is itself picklable (a module-level function)."""
    return _Fixed(maker)


@dataclass(frozen=True)
class Sealed:
    """A file a worker sealed: its bytes (None once stored by the pool: let go) and media type, and where it is
    stored (None: not stored yet)."""

    data: bytes | None
    media_type: str
    blob: BlobRef | None = None


_MAKER: FileMaker | None = None


def _init_worker(factory: SealerFactory) -> None:
    global _MAKER
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the cycle's: the parent decides
    _MAKER = factory()


def _portable(prepared: PreparedVersion) -> tuple[type[Any], dict[str, Any], dict[str, Any]]:
    """``prepared`` as picklable parts: its catalogue entry's fields (the entry's compiled schema validator is
    rebuilt in the worker) and the rest of the version."""
    entry = prepared.entry
    fields = {f.name: getattr(entry, f.name) for f in dataclasses.fields(entry) if f.init}
    rest = {f.name: getattr(prepared, f.name) for f in dataclasses.fields(prepared) if f.name != "entry"}
    return type(entry), fields, rest


def _seal(portable: tuple[type[Any], dict[str, Any], dict[str, Any]]) -> Sealed:
    assert _MAKER is not None, "worker not initialised"
    entry_type, fields, rest = portable
    return Sealed(*_MAKER(PreparedVersion(entry=entry_type(**fields), **rest)))


class SealingPool:
    """``workers`` sealing processes (default: one per CPU), started on first use and kept across cycles.

    With ``blobs`` (the repository's blob store) each file is also stored as soon as its worker has sealed it, by
    :data:`STORE_THREADS` threads of this process — content-addressed, before its row can commit; a repeat or a
    crash leaves at most an orphan blob — so the files' fsyncs overlap the sealing instead of holding up the
    commits. Without, the cycle stores each run's files before its transaction."""

    def __init__(
        self, factory: SealerFactory, workers: int | None = None, *, blobs: BlobStore | None = None
    ) -> None:
        self.factory, self.blobs = factory, blobs
        self.workers = default_workers() if workers is None else max(1, workers)
        self._pool: concurrent.futures.ProcessPoolExecutor | None = None
        self._store: _Storer | None = None
        #: versions handed to the pool; of them, files used as a worker sealed them; sealed again in the cycle's
        #: process (the worker failed: the row's own failure, or a lost worker)
        self.submitted = self.used = self.resealed = 0

    def _executor(self) -> concurrent.futures.ProcessPoolExecutor:
        if self._pool is None:
            context = multiprocessing.get_context("forkserver" if os.name == "posix" else "spawn")
            _start_forkserver_deaf_to_ctrl_c(context)
            self._pool = concurrent.futures.ProcessPoolExecutor(
                max_workers=self.workers,
                mp_context=context,
                initializer=_init_worker,
                initargs=(self.factory,),
            )
        return self._pool

    def submit(self, prepared: PreparedVersion) -> Future[Sealed]:
        """Seal ``prepared`` in a worker (and store the file, with ``blobs``): the future of its file. A failure
        to store it fails the future; the cycle then seals and stores the version itself (and a store that is
        down ends the cycle there)."""
        portable = _portable(prepared)
        try:
            sealed = self._executor().submit(_seal, portable)
        except BrokenProcessPool:  # a worker died (killed, out of memory): a fresh pool for what follows
            self._close_workers()
            sealed = self._executor().submit(_seal, portable)
        self.submitted += 1
        if self.blobs is None:
            return sealed
        if self._store is None:
            self._store = _Storer(self.blobs, STORE_THREADS)
        return self._store.hand_on(sealed)

    def cpu_seconds(self) -> float:
        """CPU time the live worker processes have used so far (Linux ``/proc``; NaN elsewhere): with the cycle's
        own ``time.process_time()`` it tells how the work was split between the cores."""
        processes = dict(getattr(self._pool, "_processes", None) or {})
        total = 0.0
        ticks = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
        for pid in processes:
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                return float("nan")
            total += (int(fields[11]) + int(fields[12])) / ticks  # utime, stime
        return total

    def _close_workers(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def close(self) -> None:
        self._close_workers()
        if self._store is not None:
            self._store.close()
            self._store = None

    def __enter__(self) -> SealingPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Storer:
    """Threads that store sealed files as they come (``put_many`` of whatever has queued up: fewer flushes), each
    completing its file's future — with the worker's failure, or the store's."""

    def __init__(self, blobs: BlobStore, threads: int) -> None:
        self.blobs = blobs
        self.queue: queue.SimpleQueue[tuple[Future[Sealed], Future[Sealed]] | None] = queue.SimpleQueue()
        self.threads = [
            threading.Thread(target=self._run, name=f"seal-store-{i}", daemon=True) for i in range(threads)
        ]
        for thread in self.threads:
            thread.start()

    def hand_on(self, sealed: Future[Sealed]) -> Future[Sealed]:
        stored: Future[Sealed] = Future()
        sealed.add_done_callback(lambda done: self.queue.put((done, stored)))
        return stored

    def _run(self) -> None:
        while True:
            item = self.queue.get()
            if item is None:  # closing: pass it on to the next thread
                self.queue.put(None)
                return
            items = [item]
            while len(items) < 32:
                try:
                    more = self.queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    self.queue.put(None)  # for the next thread
                    break
                items.append(more)
            made: list[tuple[Sealed, Future[Sealed]]] = []
            for sealed, stored in items:
                try:
                    made.append((sealed.result(), stored))
                except BaseException as exc:
                    _settle(stored, exc)
            if not made:
                continue
            try:
                refs = self.blobs.put_many([(m.data, m.media_type) for m, _ in made])
            except BaseException as exc:
                for _, stored in made:
                    _settle(stored, exc)
                continue
            for (m, stored), ref in zip(made, refs, strict=True):
                _settle(stored, dataclasses.replace(m, data=None, blob=ref))  # stored: the bytes let go

    def close(self) -> None:
        self.queue.put(None)
        for thread in self.threads:
            thread.join()
        while True:  # whatever is left (the pool was shut down with it): nobody waits for it
            try:
                item = self.queue.get_nowait()
            except queue.Empty:
                break
            if item is not None:
                _settle(item[1], RuntimeError("the sealing pool was closed"))


def _settle(future: Future[Sealed], outcome: Sealed | BaseException) -> None:
    if future.done():  # cancelled by the cycle meanwhile
        return
    try:
        if isinstance(outcome, BaseException):
            future.set_exception(outcome)
        else:
            future.set_result(outcome)
    except concurrent.futures.InvalidStateError:  # cancelled between the check and now
        pass
