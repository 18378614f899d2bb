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
from typing import Any, cast

from certstore.records import PreparedVersion
from certstore.services.certificates import FileMaker
from certstore.services.imports import _start_forkserver_deaf_to_ctrl_c, default_workers
from certstore.store.blobs import BlobRef, BlobStore

__all__ = [
    "STORE_THREADS",
    "TASK_SIZE",
    "WORKER_NICENESS",
    "ApplicationSealer",
    "Sealed",
    "SealingPool",
    "default_sealing_workers",
    "fixed_sealer",
]

#: Threads of the cycle's process that store the sealed files in the blob store while the workers seal (a
#: file's fsyncs wait on the disk, not the CPU: several at once share the device's flushes).
STORE_THREADS = 4

#: A picklable callable that returns the file maker a worker process seals with.
SealerFactory = Callable[[], FileMaker]


#: Versions sealed by one task of a worker (and stored with one flush when the worker stores): fewer round trips
#: and pickled catalogue entries than a task per version. A task is sent when full or when the cycle waits
#: (:meth:`SealingPool.flush`).
TASK_SIZE = 8


#: How much lower the workers' scheduling priority is than the cycle's (``nice``): the cycle's process is the
#: serial part — it plans the rows the workers seal and commits what they sealed, in ``seq`` order — so when it
#: is ready to run it gets a core before a worker does, and the workers (as many as the cores, and one more)
#: keep the cores busy the rest of the time. Sealing also yields to the API's requests on a shared machine.
WORKER_NICENESS = 10


def default_sealing_workers() -> int:
    """Sealing processes of ``exchange run`` by default: one per CPU, and one more — a worker stores its task's
    files (their fsyncs wait on the disk, not the CPU) before it answers, and the extra process seals meanwhile."""
    return default_workers() + 1


_APPS: dict[tuple[Path, tuple[tuple[str, str], ...]], Any] = {}  # a worker's open application, per data dir


@dataclass(frozen=True)
class ApplicationSealer:
    """The file maker of the application of ``data_dir`` (what ``exchange run`` seals with), built in a worker,
    which also stores the files it seals in that application's blob store (:meth:`blob_store`)."""

    data_dir: Path
    env: Mapping[str, str] = field(default_factory=dict)

    def _application(self) -> Any:
        key = (self.data_dir, tuple(sorted(self.env.items())))
        if key not in _APPS:
            from certstore.app import Application

            _APPS[key] = Application.open(self.data_dir, {**os.environ, **self.env})
        return _APPS[key]

    def __call__(self) -> FileMaker:
        return cast(FileMaker, self._application().file_maker())

    #: the workers can store what they seal (:meth:`blob_store`)
    stores_files = True

    def blob_store(self) -> BlobStore:
        return cast(BlobStore, self._application().repo.blobs)


@dataclass(frozen=True)
class _Fixed:
    maker: FileMaker
    blobs: BlobStore | None = None

    def __call__(self) -> FileMaker:
        return self.maker

    @property
    def stores_files(self) -> bool:
        return self.blobs is not None

    def blob_store(self) -> BlobStore | None:
        return self.blobs


def fixed_sealer(maker: FileMaker, blobs: BlobStore | None = None) -> SealerFactory:
    """A factory for a file maker that is itself picklable (a module-level function); with ``blobs`` (a
    picklable blob store, e.g. a :class:`~certstore.store.blobs.files.FileBlobStore`) the workers store the
    files they seal there."""
    return _Fixed(maker, blobs)


@dataclass(frozen=True)
class Sealed:
    """A file a worker sealed: its bytes (None once stored by the pool: let go) and media type, and where it is
    stored (None: not stored yet)."""

    data: bytes | None
    media_type: str
    blob: BlobRef | None = None


@dataclass(frozen=True)
class _Failed:
    """One version of a task that failed in the worker (its row's own failure, or the store's): the cycle seals
    it again in its own process, for the outcome and the reason of a run without the pool."""

    why: str


_MAKER: FileMaker | None = None
_BLOBS: BlobStore | None = None

_Portable = tuple[type[Any], dict[str, Any], dict[str, Any]]


def _init_worker(factory: SealerFactory, store: bool) -> None:
    global _MAKER, _BLOBS
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the cycle's: the parent decides
    if hasattr(os, "nice"):
        os.nice(WORKER_NICENESS)
    _MAKER = factory()
    _BLOBS = getattr(factory, "blob_store", lambda: None)() if store else None


def _portable(prepared: PreparedVersion) -> _Portable:
    """``prepared`` as picklable parts: its catalogue entry's fields (the entry's compiled schema validator is
    rebuilt in the worker, once per task) and the rest of the version."""
    entry = prepared.entry
    fields = {f.name: getattr(entry, f.name) for f in dataclasses.fields(entry) if f.init}
    rest = {f.name: getattr(prepared, f.name) for f in dataclasses.fields(prepared) if f.name != "entry"}
    return type(entry), fields, rest


def _seal_many(portables: list[_Portable]) -> list[Sealed | _Failed]:
    """A task: seal each version (a failure is that version's alone) and, when this worker stores, store the
    files with one flush (:meth:`~certstore.store.blobs.contract.BlobStore.put_many`) and send back only where
    they are."""
    assert _MAKER is not None, "worker not initialised"
    entries: dict[tuple[str, int], Any] = {}
    made: list[Sealed | _Failed] = []
    for entry_type, fields, rest in portables:
        key = (fields["code"], fields["version"])
        if key not in entries:
            entries[key] = entry_type(**fields)
        try:
            made.append(Sealed(*_MAKER(PreparedVersion(entry=entries[key], **rest))))
        except Exception as exc:
            made.append(_Failed(f"{type(exc).__name__}: {exc}"))
    if _BLOBS is None:
        return made
    sealed = [(i, m) for i, m in enumerate(made) if isinstance(m, Sealed) and m.data is not None]
    try:
        refs = _BLOBS.put_many([(m.data or b"", m.media_type) for _, m in sealed])
    except (
        Exception
    ) as exc:  # the store's failure: the cycle's own store decides (a store down ends the cycle)
        return [
            m if isinstance(m, _Failed) else _Failed(f"storing: {type(exc).__name__}: {exc}") for m in made
        ]
    for (i, m), ref in zip(sealed, refs, strict=True):
        made[i] = dataclasses.replace(m, data=None, blob=ref)
    return made


class SealingPool:
    """``workers`` sealing processes (default: :func:`default_sealing_workers`), started on first use and kept
    across cycles.

    Versions go to the workers :data:`TASK_SIZE` at a time (:meth:`submit` queues, a full task or :meth:`flush`
    sends). With ``blobs`` (the repository's blob store) each file is stored before its row can commit —
    content-addressed, so a repeat or a crash leaves at most an orphan blob — and the commits never wait on a
    file's fsyncs: by the worker itself, with one flush per task, when the factory opens that same store
    (``blob_store()``: :class:`ApplicationSealer`, :func:`fixed_sealer` with ``blobs``), so only where each file
    is comes back; else by :data:`STORE_THREADS` threads of this process as the files arrive. Without ``blobs``
    the cycle stores each run's files before its transaction."""

    def __init__(
        self, factory: SealerFactory, workers: int | None = None, *, blobs: BlobStore | None = None
    ) -> None:
        self.factory, self.blobs = factory, blobs
        self.workers = default_sealing_workers() if workers is None else max(1, workers)
        #: the workers store the files (one flush per task) instead of threads of this process
        self.workers_store = blobs is not None and bool(getattr(factory, "stores_files", False))
        self._pool: concurrent.futures.ProcessPoolExecutor | None = None
        self._store: _Storer | None = None
        self._pending: list[tuple[_Portable, Future[Sealed]]] = []
        #: versions handed to the pool; of them, files used as a worker sealed them; sealed again in the cycle's
        #: process (the worker failed: the row's own failure, or a lost worker)
        self.submitted = self.used = self.resealed = 0
        self._lock = threading.Lock()
        self._finished = 0  # of the submitted: sealed or failed (counted as the tasks come back)

    def _executor(self) -> concurrent.futures.ProcessPoolExecutor:
        if self._pool is None:
            context = multiprocessing.get_context("forkserver" if os.name == "posix" else "spawn")
            _start_forkserver_deaf_to_ctrl_c(context)
            self._pool = concurrent.futures.ProcessPoolExecutor(
                max_workers=self.workers,
                mp_context=context,
                initializer=_init_worker,
                initargs=(self.factory, self.workers_store),
            )
        return self._pool

    def submit(self, prepared: PreparedVersion) -> Future[Sealed]:
        """Seal ``prepared`` in a worker (and store the file, with ``blobs``): the future of its file, sent with
        the next full task or :meth:`flush`. A failure to seal or store it fails the future; the cycle then seals
        and stores the version itself (and a store that is down ends the cycle there)."""
        sealed: Future[Sealed] = Future()
        self._pending.append((_portable(prepared), sealed))
        self.submitted += 1
        if len(self._pending) >= TASK_SIZE:
            self.flush()
        if self.blobs is None or self.workers_store:
            return sealed
        if self._store is None:
            self._store = _Storer(self.blobs, STORE_THREADS)
        return self._store.hand_on(sealed)

    def flush(self) -> None:
        """Send the versions queued by :meth:`submit` now (the cycle calls this before it waits for a file)."""
        if not self._pending:
            return
        items, self._pending = self._pending, []
        portables = [portable for portable, _ in items]
        try:
            task = self._executor().submit(_seal_many, portables)
        except BrokenProcessPool:  # a worker died (killed, out of memory): a fresh pool for what follows
            self._close_workers()
            task = self._executor().submit(_seal_many, portables)
        task.add_done_callback(lambda done: self._settle_task(done, [f for _, f in items]))

    def _settle_task(self, task: Future[list[Sealed | _Failed]], futures: list[Future[Sealed]]) -> None:
        with self._lock:
            self._finished += len(futures)
        try:
            outcomes: list[Sealed | _Failed] = task.result()
        except BaseException as exc:  # the task as a whole (a lost worker, the pool shut down)
            for future in futures:
                _settle(future, exc)
            return
        for future, outcome in zip(futures, outcomes, strict=True):
            _settle(future, RuntimeError(outcome.why) if isinstance(outcome, _Failed) else outcome)

    @property
    def backlog(self) -> int:
        """Versions handed to the pool and not yet sealed (or failed)."""
        return self.submitted - self._finished

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
        for _, future in self._pending:
            future.cancel()
        self._pending = []
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
