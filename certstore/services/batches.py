"""Batch pushes (批量推送): an issuing agency (发证机构) submits many certificates at once; a background worker
issues them one by one, each sealed like a single push; the caller polls the job for progress and per-item
results.

Each item is one call of the use case :func:`~certstore.services.certificates.issue` in the name of the agency
principal that submitted the job (:class:`~certstore.access.Actor` rebuilt from the job's organisation and
submitter), entry point ``batch`` (:class:`~certstore.services.calls.Via`), the job id as source and
``<job id>:<position>`` as request id: it is authorised (an agency pushes only its own catalogue types,
:mod:`certstore.services.authorization`), and its arrival (第十一条) and its one audit entry are written in the
item's own transaction. An item may state ``completed_at`` and ``channel`` like a single push; by default it
was completed when the job was submitted, channel ``bulk`` (批量, 3 working days). The submission itself is
audited (``batch.submit``) in the transaction that stores the job.

Crash safety. Every item's result is committed right after its :func:`~certstore.services.certificates.issue`
call, so a crash loses at most the item in flight; that item stays ``pending`` and is issued again by the next
worker, which :func:`~certstore.services.certificates.issue` makes idempotent (same issuer + certificate number +
version → same record; the retried item then reports ``existing``, audited as a repeat).

Leases. A worker owns a job while ``batch_jobs.lease_until`` lies in the future. It takes the job with one
conditional UPDATE (``... WHERE status <> 'done' AND (lease_until IS NULL OR lease_until <= now)``), which the
database applies atomically on SQLite (one writer at a time) and PostgreSQL (the row lock re-checks the WHERE
clause), so two workers cannot both hold an unexpired lease. The ``lease_until`` value it wrote is its fencing
token: every renewal, and the final "done", is ``... WHERE lease_until = <token>``, so a worker whose lease
expired and was taken over notices at its next item and stops (:class:`BatchLeaseError`). Item results are
written only while the item is still ``pending`` and the job counters move in the same transaction, so even a
worker that lost its lease mid-item cannot count an item twice.

Rules per item: the document is read with :func:`~certstore.records.draft_from_json`; the use case refuses a
catalogue type whose issuer credit code (颁证单位统一社会信用代码) is not the agency's own. A bad item is
``rejected`` with an error document ``{"title", "detail", "problems": [[path, message], ...]}``; it never stops
the batch. Unexpected failures (database down, sealing key unusable) propagate and leave the item ``pending``.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import socket
import threading
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import CursorResult, func, insert, or_, select, update
from sqlalchemy.orm import Session

from certstore.access import AccessDeniedError, Actor, Role
from certstore.audit import Outcome
from certstore.packaging.face import LayoutError
from certstore.records import PreparedVersion, RecordError, draft_from_json
from certstore.services import calls
from certstore.services.access import principal_disabled
from certstore.services.calls import Call, Origin, Via
from certstore.services.catalogue import UnknownCatalogueError
from certstore.services.certificates import NO_FILE, DuplicateConflictError, FileMaker, issue
from certstore.services.deadlines import ArrivalError, Channel
from certstore.store.models import BatchItemRow, BatchJobRow
from certstore.store.repository import Repository

if TYPE_CHECKING:
    from certstore.app import Application

__all__ = [
    "DEFAULT_LEASE",
    "MAX_BATCH_ITEMS",
    "BatchError",
    "BatchItem",
    "BatchJob",
    "BatchLeaseError",
    "BatchNotFoundError",
    "BatchRunner",
    "get_batch",
    "process_batch",
    "resumable_jobs",
    "submit_batch",
]

MAX_BATCH_ITEMS = 1000
DEFAULT_LEASE = timedelta(minutes=2)

# job statuses
QUEUED, RUNNING, DONE = "queued", "running", "done"
# item statuses
PENDING, ISSUED, EXISTING, REJECTED = "pending", "issued", "existing", "rejected"

logger = logging.getLogger(__name__)


class BatchError(ValueError):
    """A batch that cannot be accepted as a whole (no items, too many, an item that is not JSON)."""


class BatchNotFoundError(LookupError):
    """No batch job with that id (or not one of the caller's organisation)."""


class BatchLeaseError(RuntimeError):
    """Another worker holds the job's lease, or took it over after this worker's lease expired."""


@dataclass(frozen=True)
class BatchItem:
    """One certificate of a batch: ``status`` pending | issued | existing | rejected; ``identifier`` (证照标识)
    once issued or found; ``error`` {"title", "detail", "problems"} when rejected."""

    position: int
    status: str
    identifier: str | None
    error: Mapping[str, Any] | None


@dataclass(frozen=True)
class BatchJob:
    """A batch push (批量推送任务): ``status`` queued | running | done; ``succeeded`` counts issued and existing
    items, ``failed`` rejected ones. ``items`` is filled only when asked for (:func:`get_batch`)."""

    id: str
    organisation_code: str
    submitted_by: str
    status: str
    total: int
    succeeded: int
    failed: int
    pending: int
    created_at: datetime
    updated_at: datetime
    items: tuple[BatchItem, ...] = ()


# --- reading ---------------------------------------------------------------------------------------------


def _job_view(row: BatchJobRow, items: Sequence[BatchItemRow] = ()) -> BatchJob:
    return BatchJob(
        id=row.id,
        organisation_code=row.organisation_code,
        submitted_by=row.submitted_by,
        status=row.status,
        total=row.total,
        succeeded=row.succeeded,
        failed=row.failed,
        pending=row.total - row.succeeded - row.failed,
        created_at=row.created_at,
        updated_at=row.updated_at,
        items=tuple(BatchItem(i.position, i.status, i.identifier, i.error) for i in items),
    )


def get_batch(
    repo: Repository, job_id: str, *, organisation_code: str | None = None, with_items: bool = False
) -> BatchJob:
    """The job ``job_id`` (with its items in position order when ``with_items``). With ``organisation_code``,
    another organisation's job is reported as not found, so job ids of other agencies do not leak."""
    with repo.db.session(readonly=True) as session:
        row = session.get(BatchJobRow, job_id)
        if row is None or (organisation_code is not None and row.organisation_code != organisation_code):
            raise BatchNotFoundError(f"no batch job {job_id}")
        items: Sequence[BatchItemRow] = ()
        if with_items:
            items = session.scalars(
                select(BatchItemRow).where(BatchItemRow.job_id == job_id).order_by(BatchItemRow.position)
            ).all()
        return _job_view(row, items)


def resumable_jobs(repo: Repository) -> list[str]:
    """Ids of the jobs not done whose lease is empty or expired (queued, or left by a worker that died), oldest
    first: what a worker started with the API picks up."""
    now = repo.now()
    with repo.db.session(readonly=True) as session:
        return list(
            session.scalars(
                select(BatchJobRow.id)
                .where(BatchJobRow.status != DONE, _lease_free(now))
                .order_by(BatchJobRow.created_at, BatchJobRow.id)
            )
        )


# --- submitting ------------------------------------------------------------------------------------------


def submit_batch(app: Application, call: Call, documents: Sequence[Mapping[str, Any]]) -> BatchJob:
    """Store a batch of DATA.json documents (the body of a single push, each) as a queued job for ``call``'s
    agency, with the call's audit entry (``batch.submit``), in one transaction. Only agencies push; which
    catalogue types they may push is checked per item when processed. The repository seals every item, so
    without a public URL the batch is refused before it is stored (:meth:`Application.sealing_base_url`)."""
    actor = call.actor
    if actor.role is not Role.AGENCY or actor.organisation_code is None:
        denied = AccessDeniedError(
            f"role {actor.role.value} does not push batches; allowed: agency (发证机构)"
        )
        assert app.audit is not None
        calls.audit_now(app.audit, call, call.event(
            "batch.submit", outcome=Outcome.DENY, status_code=403, reason=str(denied),
        ))  # fmt: skip
        raise denied
    app.sealing_base_url()
    repo = app.repo
    if isinstance(documents, str | bytes | Mapping) or not isinstance(documents, Sequence):
        raise BatchError("a batch is a list of certificate documents")
    if not 1 <= len(documents) <= MAX_BATCH_ITEMS:
        raise BatchError(f"a batch holds 1 to {MAX_BATCH_ITEMS} certificates, not {len(documents)}")
    for position, document in enumerate(documents):
        try:
            json.dumps(document, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise BatchError(f"item {position} is not a JSON document: {exc}") from None
    now = repo.now()
    job_id = str(uuid.uuid4())
    with repo.db.session() as session:
        row = BatchJobRow(
            id=job_id,
            organisation_code=actor.organisation_code,
            submitted_by=actor.ref,
            status=QUEUED,
            total=len(documents),
            succeeded=0,
            failed=0,
            created_at=now,
            updated_at=now,
            lease_until=None,
        )
        session.add(row)
        session.flush()
        session.execute(
            insert(BatchItemRow),
            [
                {"job_id": job_id, "position": position, "payload": document, "status": PENDING}
                for position, document in enumerate(documents)
            ],
        )
        calls.audit_in(session, call, call.event(
            "batch.submit", status_code=202, details={"batch": job_id, "items": len(documents)},
        ))  # fmt: skip
        job = _job_view(row)
    logger.info("batch %s submitted by %s: %d items", job_id, actor.ref, len(documents))
    return job


# --- processing ------------------------------------------------------------------------------------------


def _lease_free(now: datetime) -> Any:
    return or_(BatchJobRow.lease_until.is_(None), BatchJobRow.lease_until <= now)


def _rowcount(result: Any) -> int:
    return cast(CursorResult[Any], result).rowcount


def _claim(repo: Repository, job_id: str, lease: timedelta) -> datetime | None:
    """Take the job's lease if it is free; returns the new ``lease_until`` (this worker's token) or None."""
    now = repo.now()
    until = now + lease
    with repo.db.session() as session:
        result = session.execute(
            update(BatchJobRow)
            .where(BatchJobRow.id == job_id, BatchJobRow.status != DONE, _lease_free(now))
            .values(lease_until=until, status=RUNNING, updated_at=now)
            .execution_options(synchronize_session=False)
        )
        return until if _rowcount(result) == 1 else None


def _release(repo: Repository, job_id: str, token: datetime) -> None:
    """Give the lease up (if still ours), so another worker may resume the job at once."""
    with repo.db.session() as session:
        session.execute(
            update(BatchJobRow)
            .where(BatchJobRow.id == job_id, BatchJobRow.lease_until == token)
            .values(lease_until=None, updated_at=repo.now())
            .execution_options(synchronize_session=False)
        )


@dataclass(frozen=True)
class _Outcome:
    status: str
    identifier: str | None = None
    error: dict[str, Any] | None = None


def _rejected(title: str, detail: str, problems: Sequence[tuple[str, str]] = ()) -> _Outcome:
    return _Outcome(
        REJECTED,
        error={"title": title, "detail": detail, "problems": [[str(p), str(m)] for p, m in problems]},
    )


class _GuardedMaker:
    """Wraps the file maker to remember what it raised: a failure to seal (key store, signing) is not the
    item's fault even when it is a ValueError, so it must propagate rather than reject the item. A face that
    does not fit the layout is the item's fault (:class:`LayoutError`) and rejects it."""

    def __init__(self, inner: FileMaker) -> None:
        self.inner = inner
        self.failure: BaseException | None = None

    def __call__(self, prepared: PreparedVersion) -> tuple[bytes, str]:
        try:
            return self.inner(prepared)
        except (LayoutError, RecordError):
            raise
        except BaseException as exc:
            self.failure = exc
            raise


@dataclass(frozen=True)
class _Job:
    """What every item of a job is issued with: the submitter (as the actor of each item's call) and when."""

    id: str
    actor: Actor
    submitted_at: datetime

    def call(self, position: int, stated: Mapping[str, Any]) -> Call:
        """The call of item ``position``: entry point batch, the job as source, its completion time and channel
        as the item states them (default: submitted with the job, channel bulk)."""
        completed_at = stated.get("completed_at", self.submitted_at)
        if isinstance(completed_at, str):
            try:
                completed_at = datetime.fromisoformat(completed_at)
            except ValueError:
                raise ArrivalError(
                    "completed_at", f"not an ISO 8601 date and time: {completed_at!r}"
                ) from None
        if not isinstance(completed_at, datetime):
            raise ArrivalError("completed_at", "an ISO 8601 date and time with its UTC offset")
        channel = stated.get("channel", Channel.BULK.value)
        origin = Origin(Via.BATCH, request_id=f"{self.id}:{position}", source=self.id, completed_at=completed_at,
                        channel=str(channel))  # fmt: skip
        return Call(self.actor, origin)


def _submitter(organisation_code: str, submitted_by: str) -> Actor:
    """The agency principal that submitted a job, as the actor of its items (``submitted_by`` is its ref,
    ``ORGCODE/name``)."""
    name = submitted_by.removeprefix(f"{organisation_code}/")
    return Actor(name, Role.AGENCY, organisation_code)


_ARRIVAL_KEYS = ("completed_at", "channel")


def _process_item(
    app: Application, job: _Job, position: int, payload: Any, *, maker: FileMaker | None
) -> _Outcome:
    organisation = job.actor.organisation_code or ""
    if principal_disabled(app.repo, organisation, job.actor.name):
        return _rejected(
            "submitter disabled",
            f"{organisation}/{job.actor.name} was disabled after submitting this batch: nothing more is issued in "
            "its name",
        )
    stated: dict[str, Any] = {}
    if isinstance(payload, Mapping):
        stated = {key: payload[key] for key in _ARRIVAL_KEYS if key in payload}
        payload = {key: value for key, value in payload.items() if key not in _ARRIVAL_KEYS}
    try:
        draft = draft_from_json(payload)
        result = issue(app, job.call(position, stated), draft, file_maker=maker)
    except AccessDeniedError as exc:
        organisation = job.actor.organisation_code
        return _rejected(
            "not this agency's catalogue type",
            f"{exc}; organisation {organisation} may not push it",
            [("catalogue", str(exc))],
        )
    except ArrivalError as exc:
        return _rejected("invalid completion time", str(exc), [(exc.field, exc.message)])
    except RecordError as exc:
        return _rejected("invalid certificate data", str(exc), exc.problems)
    except UnknownCatalogueError as exc:
        return _rejected("unknown catalogue type", str(exc), [("catalogue", str(exc))])
    except DuplicateConflictError as exc:
        return _rejected("conflicts with an earlier push", str(exc), [("certificate_number", str(exc))])
    except ValueError as exc:
        if isinstance(maker, _GuardedMaker) and exc is maker.failure:
            raise
        problems = getattr(exc, "problems", None) or getattr(exc, "errors", None) or []
        return _rejected("invalid certificate data", str(exc), problems)
    return _Outcome(ISSUED if result.created else EXISTING, result.certificate.identifier)


def _record(
    repo: Repository, job_id: str, item_id: int, outcome: _Outcome, token: datetime, lease: timedelta
) -> datetime | None:
    """Commit one item's result and renew the lease; returns the new token, or None when the lease was taken
    over (the result is still stored if no other worker stored one first, and counted once)."""
    now = repo.now()
    renewed = now + lease
    with repo.db.session() as session:
        values: dict[str, Any] = {"status": outcome.status, "identifier": outcome.identifier}
        if outcome.error is not None:
            values["error"] = outcome.error
        stored = session.execute(
            update(BatchItemRow)
            .where(BatchItemRow.id == item_id, BatchItemRow.status == PENDING)
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        if _rowcount(stored) == 1:
            counter = BatchJobRow.failed if outcome.status == REJECTED else BatchJobRow.succeeded
            session.execute(
                update(BatchJobRow)
                .where(BatchJobRow.id == job_id)
                .values({counter: counter + 1, BatchJobRow.updated_at: now})
                .execution_options(synchronize_session=False)
            )
        held = session.execute(
            update(BatchJobRow)
            .where(BatchJobRow.id == job_id, BatchJobRow.lease_until == token)
            .values(lease_until=renewed)
            .execution_options(synchronize_session=False)
        )
        return renewed if _rowcount(held) == 1 else None


def _finish(session: Session, job_id: str, token: datetime, now: datetime) -> bool:
    left = session.scalar(
        select(func.count())
        .select_from(BatchItemRow)
        .where(BatchItemRow.job_id == job_id, BatchItemRow.status == PENDING)
    )
    if left:
        return False
    done = session.execute(
        update(BatchJobRow)
        .where(BatchJobRow.id == job_id, BatchJobRow.lease_until == token)
        .values(status=DONE, lease_until=None, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    return _rowcount(done) == 1


def process_batch(
    app: Application,
    job_id: str,
    *,
    file_maker: FileMaker | None = None,
    worker: str,
    lease: timedelta = DEFAULT_LEASE,
) -> BatchJob:
    """Process the pending items of ``job_id`` in position order and return the job. ``file_maker``: how items
    are sealed (default: the application's keys; :data:`~certstore.services.certificates.NO_FILE`: records
    only).

    Takes the job's lease first (:class:`BatchLeaseError` if another worker holds it; a job already done is
    returned as it is), commits each item's result as soon as it is known, renews the lease with every item,
    and at the end marks the job done and clears the lease. ``worker`` names this worker in the logs.
    Unexpected exceptions propagate: the item in flight stays pending and the lease is given up, so the job is
    listed by :func:`resumable_jobs` again."""
    return _process(app, job_id, file_maker=file_maker, worker=worker, lease=lease, should_stop=None)


def _process(
    app: Application,
    job_id: str,
    *,
    file_maker: FileMaker | None,
    worker: str,
    lease: timedelta,
    should_stop: Callable[[], bool] | None,
) -> BatchJob:
    if lease <= timedelta(0):
        raise ValueError("the lease must be positive")
    repo = app.repo
    # the maker first: without a public URL (PublicUrlNotConfiguredError) the job is left unclaimed, for later
    maker: FileMaker = NO_FILE if file_maker is NO_FILE else _GuardedMaker(file_maker or app.file_maker())
    token = _claim(repo, job_id, lease)
    if token is None:
        job = get_batch(repo, job_id)
        if job.status == DONE:
            return job
        raise BatchLeaseError(f"batch {job_id} is being processed by another worker")
    logger.info("worker %s took batch %s", worker, job_id)
    try:
        with repo.db.session(readonly=True) as session:
            row = session.get(BatchJobRow, job_id)
            assert row is not None  # just claimed; jobs are never deleted
            job = _Job(job_id, _submitter(row.organisation_code, row.submitted_by), row.created_at)
            items = session.execute(
                select(BatchItemRow.id, BatchItemRow.position, BatchItemRow.payload)
                .where(BatchItemRow.job_id == job_id, BatchItemRow.status == PENDING)
                .order_by(BatchItemRow.position)
            ).all()
        for item_id, position, payload in items:
            if should_stop is not None and should_stop():
                logger.info("worker %s stops batch %s before item %d", worker, job_id, position)
                _release(repo, job_id, token)
                return get_batch(repo, job_id)
            if isinstance(maker, _GuardedMaker):
                maker.failure = None
            outcome = _process_item(app, job, position, payload, maker=maker)
            renewed = _record(repo, job_id, item_id, outcome, token, lease)
            if renewed is None:
                raise BatchLeaseError(f"worker {worker} lost the lease of batch {job_id} at item {position}")
            token = renewed
        with repo.db.session() as session:
            if not _finish(session, job_id, token, repo.now()):
                raise BatchLeaseError(
                    f"worker {worker} could not finish batch {job_id}: lease lost or items left pending"
                )
    except BatchLeaseError:
        raise
    except BaseException as exc:  # logged with its traceback by whoever catches it (BatchRunner does)
        logger.warning("worker %s: batch %s interrupted (%r); its lease is given up", worker, job_id, exc)
        try:
            _release(repo, job_id, token)
        except Exception:  # the database may be what failed; the lease then simply expires
            logger.warning(
                "worker %s: could not release the lease of batch %s", worker, job_id, exc_info=True
            )
        raise
    job_view = get_batch(repo, job_id)
    logger.info(
        "worker %s finished batch %s: %d succeeded, %d failed",
        worker,
        job_id,
        job_view.succeeded,
        job_view.failed,
    )
    return job_view


# --- the background runner -------------------------------------------------------------------------------


def _default_worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class BatchRunner:
    """Processes batch jobs in one background daemon thread; an API process owns one.

    :meth:`submit` enqueues a job; :meth:`start` starts the thread, which first enqueues every resumable job
    (queued, or left behind by a worker that died) and, every ``poll_interval`` seconds of idleness, looks for
    such jobs again (None: only at start). :meth:`stop` asks the thread to end after the current item; the job
    in hand gives its lease up, so any worker may resume it."""

    def __init__(
        self,
        app: Application,
        *,
        file_maker: FileMaker | None = None,
        worker: str | None = None,
        lease: timedelta = DEFAULT_LEASE,
        poll_interval: float | None = 60.0,
    ) -> None:
        if lease <= timedelta(0):
            raise ValueError("the lease must be positive")
        self.app = app
        self.repo = app.repo
        self.file_maker = file_maker
        self.worker = worker or _default_worker_name()
        self.lease = lease
        self.poll_interval = poll_interval
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._queued: set[str] = set()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the thread (once); it begins by enqueueing :func:`resumable_jobs`."""
        if self._thread is not None:
            raise RuntimeError("the batch runner was started already")
        self._thread = threading.Thread(target=self._run, name=f"batch-runner {self.worker}", daemon=True)
        self._thread.start()

    def submit(self, job_id: str) -> None:
        """Enqueue ``job_id`` (a job already waiting in the queue is not added twice)."""
        if self._stopping.is_set():
            logger.warning(
                "batch runner %s is stopping; batch %s is left for another worker", self.worker, job_id
            )
            return
        with self._lock:
            if job_id in self._queued:
                return
            self._queued.add(job_id)
        self._queue.put(job_id)

    def stop(self, timeout: float | None = 10.0) -> bool:
        """Ask the thread to end after the item in flight and wait up to ``timeout`` seconds; True if it ended."""
        self._stopping.set()
        self._queue.put(None)
        if self._thread is None:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()

    @property
    def running(self) -> bool:
        """The thread is alive."""
        return self._thread is not None and self._thread.is_alive()

    @property
    def stopping(self) -> bool:
        """:meth:`stop` was called."""
        return self._stopping.is_set()

    def _rescan(self) -> None:
        try:
            for job_id in resumable_jobs(self.repo):
                self.submit(job_id)
        except Exception:
            logger.exception("batch runner %s could not list resumable batches", self.worker)

    def _run(self) -> None:
        self._rescan()
        while not self._stopping.is_set():
            try:
                job_id = self._queue.get(timeout=self.poll_interval)
            except queue.Empty:
                self._rescan()
                continue
            if job_id is None:
                break
            with self._lock:
                self._queued.discard(job_id)
            self._run_one(job_id)

    def _run_one(self, job_id: str) -> None:
        try:
            _process(
                self.app, job_id, file_maker=self.file_maker, worker=self.worker, lease=self.lease,
                should_stop=self._stopping.is_set,
            )  # fmt: skip
        except BatchLeaseError as exc:
            logger.info("batch runner %s skips batch %s: %s", self.worker, job_id, exc)
        except BatchNotFoundError:
            logger.warning("batch runner %s: no batch %s", self.worker, job_id)
        except Exception:
            logger.exception(
                "batch runner %s: batch %s failed; it will be resumed later", self.worker, job_id
            )
