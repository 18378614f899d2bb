"""Sealing a cycle's certificate versions on all cores: a pool of worker processes (:class:`SealingPool`).

Sealing (laying out the face, the OFD/PDF, the SM2 seal and its time-stamp token) is a pure function of the
prepared version and the keys: :data:`~certstore.services.certificates.FileMaker`. The cycle plans a batch of
front-end rows, hands the versions to be sealed to the pool at once (:meth:`SealingPool.submit`) and then
applies the rows in ``seq`` order in this process, exactly as without the pool — each version's
``certificates.issue`` / ``change`` with its ledger row, cursor and lease in one repository transaction — taking
the file the pool sealed for it (:class:`Presealed`). Nothing is committed by a worker process, so the
exactly-once ledger and the commit order are unchanged.

The pool is the one ``certstore import`` uses (:mod:`certstore.services.imports`: ``concurrent.futures``
processes started by a fork server that ignores Ctrl-C, one per CPU by default); each worker builds its own
file maker once, from a picklable factory (:class:`ApplicationSealer`: the data directory's application, its
keys and public URL).

A file the pool sealed is used only for the very version it was sealed for: when the version the use case
prepares differs (a predecessor changed since the plan) or the worker failed (a row's own failure — a character
no font has — or a lost worker), the version is sealed again in this process, so the row's outcome and its
rejection reason are those of a run without the pool.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import multiprocessing
import os
import signal
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from certstore.records import PreparedVersion
from certstore.services.certificates import FileMaker
from certstore.services.imports import _start_forkserver_deaf_to_ctrl_c, default_workers

__all__ = ["ApplicationSealer", "Presealed", "SealingPool", "fixed_sealer"]

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


def _seal(portable: tuple[type[Any], dict[str, Any], dict[str, Any]]) -> tuple[bytes, str]:
    assert _MAKER is not None, "worker not initialised"
    entry_type, fields, rest = portable
    return _MAKER(PreparedVersion(entry=entry_type(**fields), **rest))


class SealingPool:
    """``workers`` sealing processes (default: one per CPU), started on first use and kept across cycles."""

    def __init__(self, factory: SealerFactory, workers: int | None = None) -> None:
        self.factory = factory
        self.workers = default_workers() if workers is None else max(1, workers)
        self._pool: concurrent.futures.ProcessPoolExecutor | None = None
        #: versions handed to the pool; of them, files used as sealed by a worker; sealed again in this process
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

    def submit(self, maker: FileMaker, prepared: PreparedVersion) -> Presealed:
        """Seal ``prepared`` in a worker; the result is the file maker to hand the use case (``maker`` seals
        here what the worker's file cannot serve)."""
        self.submitted += 1
        return Presealed(self, maker, prepared, self._executor().submit(_seal, _portable(prepared)))

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def __enter__(self) -> SealingPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Presealed:
    """The file maker handed to ``certificates.issue`` / ``change`` for one planned version: the pool's file
    when the use case prepares that very version, else ``maker`` in this process (module docstring)."""

    def __init__(
        self, pool: SealingPool, maker: FileMaker, planned: PreparedVersion, future: Future[tuple[bytes, str]]
    ) -> None:
        self.pool, self.maker, self.planned, self.future = pool, maker, planned, future

    def __call__(self, prepared: PreparedVersion) -> tuple[bytes, str]:
        if prepared == self.planned:
            try:
                result = self.future.result()
            except Exception:  # the row's own failure (or a lost worker): seal here, for the same outcome
                self.pool.resealed += 1
                return self.maker(prepared)
            self.pool.used += 1
            return result
        self.future.cancel()
        self.pool.resealed += 1
        return self.maker(prepared)
