"""Bulk import of legacy certificates (存量证照导入, 第十三条): a CSV/XLSX table of one catalogue type → sealed
OFD files and certificate records, in parallel, resumable.

The table is the agency template of :mod:`certstore.forms` (headers ``*标签(field.name)``, one certificate per
row). The importing process streams it and hands chunks of rows to worker processes; each worker, for its chunk:

1. reads every row into a draft and validates it (:func:`~certstore.records.prepare_version`) — a bad row is
   *rejected* with its problems and never stops the import;
2. looks the chunk's certificate numbers up: a row already stored with the same content is *existing* and is not
   sealed again (this is what makes an interrupted import resumable: run the same command again), one stored with
   different content is rejected as a conflict;
3. lays out, packages and seals the others (the catalogue type's seal, as an API push) and puts each file in the
   blob store — files before rows, so a crash leaves at most orphan blobs (``sweep_orphan_blobs``);
4. commits the chunk's rows, their 签发 events and their audit entries in **one** transaction
   (:class:`~certstore.services.certificate_batch.CertificateBatch`). If another worker committed one of the
   same numbers meanwhile (a number twice in the table), the transaction is retried once and then sees it.

Workers open the repository themselves from the data directory and ``CERTSTORE_*`` settings
(:meth:`Repository.open`), so the import works the same on SQLite + files and on PostgreSQL + S3, and needs
nothing from the importing process but rows. ``workers=0`` runs everything in the calling process.

Audited per certificate. The import is made for a :class:`~certstore.services.calls.Call` — the operator at the
command line (``Actor.operator()``: OS user and host) through the import entry point, the file's name as source.
Every certificate imported now has one audit entry ``certificate.import`` (actor, certificate, holder reference,
outcome ALLOW) written in its chunk's transaction, so a certificate is never stored without its entry; a row
already stored (a resumed run) records none. Legacy certificates record no arrival (the deadlines of 第十一条
are for matters handled now: :attr:`~certstore.services.calls.Via.has_deadline` is false for imports). Besides,
each run leaves one summary entry ``import.run`` with its counts (imported, existing, rejected, interrupted).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from certstore.audit import AuditSink, DirectSink, Outcome
from certstore.catalogue import CatalogueEntry
from certstore.forms import (
    FormField,
    TableError,
    column_names,
    document_from_values,
    form_fields,
    read_table,
    row_values,
)
from certstore.keystore import KeyStore
from certstore.packaging.face import LayoutError
from certstore.packaging.layout import FaceData
from certstore.records import PreparedVersion, RecordError, draft_from_json, prepare_version
from certstore.services.calls import Call, Via, audit_now
from certstore.services.catalogue import get_entry
from certstore.services.certificate_batch import CertificateBatch
from certstore.services.certificates import DuplicateConflictError
from certstore.services.issuance import (
    OFD_MEDIA_TYPE,
    SealingKey,
    make_ofd,
    sealing_key_for_entry,
)
from certstore.store.blobs import BlobRef
from certstore.store.config import PublicUrlNotConfiguredError
from certstore.store.models import CertificateRow
from certstore.store.repository import Repository
from certstore.tsa import time_stamper

__all__ = [
    "DEFAULT_CHUNK_ROWS",
    "IMPORT_ACTION",
    "RUN_ACTION",
    "ImportProgress",
    "ImportReport",
    "ImportSettings",
    "RowRejection",
    "TableError",
    "default_workers",
    "import_table",
]

#: Rows per worker task and per commit: large enough that a commit and a look-up serve many rows, small enough
#: that an interruption re-seals little and the progress bar moves.
DEFAULT_CHUNK_ROWS = 200
#: The audit action of each certificate imported, and of the run's summary.
IMPORT_ACTION, RUN_ACTION = "certificate.import", "import.run"


def default_workers() -> int:
    """One sealing worker per CPU this process may use."""
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)


@dataclass(frozen=True)
class RowRejection:
    """A row not imported: its line in the table (the header is line 1), the certificate number if it had one,
    and (field, message) problems — field names as in the template (``face.contract_price``)."""

    line: int
    certificate_number: str | None
    problems: tuple[tuple[str, str], ...]


@dataclass
class ImportProgress:
    """Counts so far. ``total`` is the number of data rows (None when unknown)."""

    total: int | None
    imported: int = 0
    existing: int = 0
    rejected: int = 0
    started: float = field(default_factory=time.monotonic)

    @property
    def done(self) -> int:
        return self.imported + self.existing + self.rejected

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    @property
    def rate(self) -> float:
        """Rows per second so far."""
        return self.done / self.elapsed if self.elapsed > 0 else 0.0


@dataclass(frozen=True)
class ImportReport:
    """The outcome of one run: rows imported now, already stored (identical), rejected (with the rows)."""

    catalogue_code: str
    imported: int
    existing: int
    rejections: tuple[RowRejection, ...]
    seconds: float
    interrupted: bool = False

    @property
    def rejected(self) -> int:
        return len(self.rejections)

    @property
    def rows(self) -> int:
        return self.imported + self.existing + self.rejected


@dataclass(frozen=True)
class ImportSettings:
    """Where the repository is (what :meth:`Repository.open` reads) and how to seal — everything a worker
    process needs besides rows and the call. ``seal``: a key-store seal name to use instead of the catalogue
    type's own."""

    data_dir: Path
    catalogue_code: str
    env: Mapping[str, str] = field(default_factory=dict)
    #: The public URL the files print in their QR code (the application's ``sealing_base_url()``); None:
    #: not configured, and :func:`import_table` refuses to run.
    verify_base_url: str | None = None
    seal: str | None = None

    def open_repository(self) -> Repository:
        return Repository.open(self.data_dir, {**os.environ, **self.env})


# --- one chunk (in a worker process) ---------------------------------------------------------------------


@dataclass(frozen=True)
class _ChunkResult:
    imported: int
    existing: int
    rejections: tuple[RowRejection, ...]


class _Importer:
    """What a worker holds between chunks: the repository, the catalogue type, its form fields, the sealing
    key (the font and key caches warm up on the first chunk)."""

    def __init__(self, settings: ImportSettings, repo: Repository | None = None) -> None:
        if not settings.verify_base_url:
            raise PublicUrlNotConfiguredError()
        self.settings, self.base_url = settings, settings.verify_base_url
        self.repo = repo or settings.open_repository()
        self.entry: CatalogueEntry = get_entry(self.repo, settings.catalogue_code)
        self.fields: list[FormField] = form_fields(self.entry)
        self.names: list[str] | None = None
        keystore = KeyStore(settings.data_dir / "keys")
        # every file gets the time-stamp token the application's seals get (可信时间戳; certstore.tsa)
        stamper = time_stamper(keystore, {**os.environ, **settings.env})
        self.key: SealingKey = replace(
            sealing_key_for_entry(keystore, self.entry, settings.seal), timestamper=stamper
        )

    def run(self, call: Call, names: Sequence[str], rows: Sequence[tuple[int, list[str]]]) -> _ChunkResult:
        rejections: list[RowRejection] = []
        prepared: list[tuple[int, PreparedVersion]] = []
        for line, cells in rows:
            number: str | None = None
            try:
                document = document_from_values(self.entry, row_values(names, cells), fields=self.fields)
                number = str(document.get("certificate_number") or "") or None
                draft = draft_from_json(document)
                version = prepare_version(
                    self.entry,
                    draft,
                    version=1,
                    holder_key=self.repo.holder_key,
                    serial_key=self.repo.serial_key,
                )
            except ValueError as exc:  # a RecordError names its problems
                problems = tuple(exc.problems) if isinstance(exc, RecordError) else ()
                rejections.append(RowRejection(line, number, problems or (("", str(exc)),)))
                continue
            prepared.append((line, version))
        stored = self._stored_numbers([p.draft.certificate_number for _, p in prepared])
        made: list[tuple[int, bytes]] = []
        for line, version in prepared:
            if version.draft.certificate_number in stored:
                continue  # already imported (identical: existing) or a conflict, decided in the batch
            try:
                data = make_ofd(FaceData.from_prepared(version), self.key, verify_base_url=self.base_url)
            except (LayoutError, ValueError) as exc:
                rejections.append(RowRejection(line, version.draft.certificate_number, (("", str(exc)),)))
                continue
            made.append((line, data))
        # the files of the chunk, durable before any of their rows commits (one flush for all of them)
        refs = self.repo.blobs.put_many([(data, OFD_MEDIA_TYPE) for _, data in made])
        files = {line: ref for (line, _), ref in zip(made, refs, strict=True)}
        sealed = [(line, v) for line, v in prepared if line in files or v.draft.certificate_number in stored]
        for attempt in (1, 2):
            try:
                imported, existing, conflicts = self._commit(call, sealed, files)
                break
            except IntegrityError:  # a number of this chunk committed meanwhile by another worker
                if attempt == 2:
                    raise
        return _ChunkResult(imported, existing, (*rejections, *conflicts))

    def _stored_numbers(self, numbers: Sequence[str]) -> set[str]:
        """Those of ``numbers`` this issuer has a version 1 of (identical or not: the batch tells)."""
        issuer = self.entry.issuer.credit_code
        found: set[str] = set()
        wanted = sorted(set(numbers))
        c = CertificateRow
        with self.repo.db.session() as session:
            for start in range(0, len(wanted), 500):
                query = select(c.certificate_number).where(
                    c.issuer_code == issuer,
                    c.version == 1,
                    c.certificate_number.in_(wanted[start : start + 500]),
                )
                found.update(session.scalars(query))
        return found

    def _commit(
        self, call: Call, sealed: Sequence[tuple[int, PreparedVersion]], files: Mapping[int, BlobRef]
    ) -> tuple[int, int, list[RowRejection]]:
        """The chunk's rows, lifecycle events and audit entries (one per certificate imported now), one commit (a
        bulk writer's: :meth:`~certstore.store.db.Database.bulk_writes`)."""
        imported = existing = 0
        conflicts: list[RowRejection] = []
        if not sealed:
            return 0, 0, conflicts
        with self.repo.db.bulk_writes(), self.repo.db.session() as session:
            batch = CertificateBatch(
                self.repo,
                session,
                issuer_code=self.entry.issuer.credit_code,
                numbers=[version.draft.certificate_number for _, version in sealed],
                call=call,
            )
            for line, version in sealed:
                try:
                    _, created = batch.issue(version, blob=files.get(line), audit_action=IMPORT_ACTION)
                except DuplicateConflictError as exc:
                    number = version.draft.certificate_number
                    conflicts.append(RowRejection(line, number, (("certificate_number", str(exc)),)))
                    continue
                # stored when looked up, then changed? never issue without a file
                if created and line not in files:
                    raise RuntimeError(f"line {line}: no sealed file for a new certificate")
                imported += created
                existing += not created
            batch.flush()
        return imported, existing, conflicts


_WORKER: _Importer | None = None


def _init_worker(settings: ImportSettings) -> None:
    global _WORKER
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the importing process's: it lets chunks finish
    _WORKER = _Importer(settings)


def _run_chunk(call: Call, names: Sequence[str], rows: Sequence[tuple[int, list[str]]]) -> _ChunkResult:
    assert _WORKER is not None, "worker not initialised"
    return _WORKER.run(call, names, rows)


# --- the run ---------------------------------------------------------------------------------------------


def _chunks(rows: Iterator[tuple[int, list[str]]], size: int) -> Iterator[list[tuple[int, list[str]]]]:
    chunk: list[tuple[int, list[str]]] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def import_table(
    path: Path,
    settings: ImportSettings,
    *,
    workers: int | None = None,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    on_progress: Callable[[ImportProgress], None] | None = None,
    repo: Repository | None = None,
    call: Call | None = None,
    audit: AuditSink | None = None,
) -> ImportReport:
    """Import the table at ``path`` into the repository ``settings`` names, for ``call``; see the module text.

    ``call``: who imports, through the import entry point (default: the operator at this host's command line,
    the file's name as source). ``audit``: where the run's summary entry goes (the application's sink; default
    one append to ``repo``'s log). ``workers``: sealing processes (default: one per CPU; 0 = in this process,
    with ``repo`` if given; the entries they write are not listed in ``call.recorded`` of this process).
    ``on_progress`` is called after every chunk. Raises :class:`~certstore.forms.TableError` when the table as
    a whole does not fit (unreadable, unknown or missing columns), and
    :class:`~certstore.store.config.PublicUrlNotConfiguredError` when ``settings`` names no public URL to seal
    with — both before anything is imported. On Ctrl-C (SIGINT, when called in the main thread) no new chunk
    starts, the chunks in flight finish (each commits whole or not at all) and are counted, and the report says
    ``interrupted``: run the same import again to continue."""
    if chunk_rows < 1:
        raise ValueError("chunk_rows must be at least 1")
    if not settings.verify_base_url:
        raise PublicUrlNotConfiguredError()
    workers = default_workers() if workers is None else workers
    call = call or Call.operator(source=path.name, via=Via.IMPORT)
    if call.origin.via is not Via.IMPORT:
        raise ValueError(f"an import is a call through the import entry point, not {call.origin.via.value}")
    table = read_table(path)
    rejections: list[RowRejection] = []
    interrupted = False
    progress = ImportProgress(total=table.total)
    try:
        repo = repo or settings.open_repository()
        local = _Importer(settings, repo) if workers == 0 else None
        entry = local.entry if local is not None else get_entry(repo, settings.catalogue_code)
        names = column_names(form_fields(entry), table.header)
        progress.started = time.monotonic()

        def account(result: _ChunkResult) -> None:
            progress.imported += result.imported
            progress.existing += result.existing
            progress.rejected += len(result.rejections)
            rejections.extend(result.rejections)
            if on_progress is not None:
                on_progress(progress)

        chunks = _chunks(table.rows(), chunk_rows)
        with _ctrl_c_between_chunks() as asked:
            if local is not None:
                for chunk in chunks:
                    if asked.is_set():
                        interrupted = True
                        break
                    account(local.run(call, names, chunk))
            else:
                interrupted = _run_pool(settings, call, names, chunks, workers, account, asked)
    finally:
        table.close()
    report = ImportReport(
        settings.catalogue_code,
        progress.imported,
        progress.existing,
        tuple(sorted(rejections, key=lambda r: r.line)),
        progress.elapsed,
        interrupted,
    )
    _summary(audit or DirectSink(repo.db), call, settings, path, report)
    return report


@contextlib.contextmanager
def _ctrl_c_between_chunks() -> Iterator[threading.Event]:
    """Ctrl-C (SIGINT) during an import sets the event it yields, which the import checks between chunks: no new
    chunk starts, the ones in flight finish and are counted. A chunk's commit and its count are never split by
    the signal (an exception raised at any bytecode could fall between them: committed, not counted). Outside
    the main thread, where no handler can be installed, the event stays unset."""
    asked = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield asked
        return
    previous = signal.signal(signal.SIGINT, lambda _signum, _frame: asked.set())
    try:
        yield asked
    finally:
        signal.signal(signal.SIGINT, previous)


def _start_forkserver_deaf_to_ctrl_c(context: multiprocessing.context.BaseContext) -> None:
    """Start the fork server with SIGINT ignored (it keeps that disposition): Ctrl-C reaches the whole process
    group, and a fork server killed by it could start no worker the pool still needs — the chunks in flight
    would then never finish. The workers ignore SIGINT too (:func:`_init_worker`); only this process acts on it."""
    if (
        context.get_start_method() != "forkserver"
        or threading.current_thread() is not threading.main_thread()
    ):
        return
    from multiprocessing import forkserver

    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        forkserver.ensure_running()
    finally:
        signal.signal(signal.SIGINT, previous)


def _run_pool(
    settings: ImportSettings,
    call: Call,
    names: Sequence[str],
    chunks: Iterator[list[tuple[int, list[str]]]],
    workers: int,
    account: Callable[[_ChunkResult], None],
    asked: threading.Event,
) -> bool:
    """Feed ``chunks`` to ``workers`` processes, at most two chunks per worker in flight (memory stays flat on
    any table size); returns True when interrupted — ``asked`` set by Ctrl-C: no chunk is sent after it, the
    queued ones never start, the started ones finish and each is counted once."""
    context = multiprocessing.get_context("forkserver" if os.name == "posix" else "spawn")
    _start_forkserver_deaf_to_ctrl_c(context)
    pool = concurrent.futures.ProcessPoolExecutor(
        max_workers=workers, mp_context=context, initializer=_init_worker, initargs=(settings,)
    )
    in_flight: set[concurrent.futures.Future[_ChunkResult]] = set()

    def settle(finished: Iterable[concurrent.futures.Future[_ChunkResult]]) -> None:
        for future in finished:
            in_flight.discard(future)
            if not future.cancelled():
                account(future.result())

    interrupted = False
    try:
        for chunk in chunks:
            if asked.is_set():  # a chunk is left: interrupted (a Ctrl-C after the last one changes nothing)
                interrupted = True
                break
            in_flight.add(pool.submit(_run_chunk, call, names, chunk))
            while len(in_flight) >= 2 * workers and not asked.is_set():
                finished, _ = concurrent.futures.wait(
                    in_flight, timeout=_ASKED_POLL_S, return_when=concurrent.futures.FIRST_COMPLETED
                )
                settle(finished)
        if interrupted:
            for future in in_flight:  # the queued ones never start; the started ones finish
                future.cancel()
        settle(concurrent.futures.wait(in_flight).done)
        return interrupted
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


#: How often the import looks at Ctrl-C while it waits for a chunk (seconds).
_ASKED_POLL_S = 0.5


def _summary(sink: AuditSink, call: Call, settings: ImportSettings, path: Path, report: ImportReport) -> None:
    """The run's summary entry (``import.run``: who imported which file, how many) — besides the one entry per
    certificate imported, which its chunk's transaction wrote."""
    audit_now(sink, call, call.event(
        RUN_ACTION, outcome=Outcome.ALLOW, status_code=0 if not report.rejected else 1,
        details={
            "catalogue": settings.catalogue_code, "file": path.name, "imported": report.imported,
            "existing": report.existing, "rejected": report.rejected, "interrupted": report.interrupted,
            "seconds": round(report.seconds, 3),
        },
    ))  # fmt: skip
