"""Upward aggregation, the sending end (省级汇聚, 第六条): the city pushes to the provincial repository.

:func:`push_upward` delivers, in order, two feeds of this repository to a target (the province, another certstore
instance in ``province`` mode, :mod:`certstore.services.aggregation`) over its API
(``POST /api/v1/aggregate/batches``, as a principal with role ``upstream``):

1. **catalogue entries** (证照目录) in ``catalogue_entries.id`` order — the approved versions, each with the base
   image it names when the image was uploaded (``asset:<SM3>``), so that the province can render its faces;
2. **certificate events** in ``certificate_events.id`` order — every lifecycle event (签发, 变更, 延续, 挂起,
   恢复, 吊销, 注销, 废止); the event that creates a version carries the version's record and its sealed file
   (base64 in the JSON batch).

One HTTP request per batch (``batch`` items, and at most ``max_batch_bytes`` of files). Where each feed stands is
``upward_targets.catalogue_cursor`` / ``event_cursor`` (the last id the target acknowledged).

Exactly once, sender side:

- a cursor moves only after the target answered for the items it passes, in the same transaction as the records
  of the refused ones, and only forwards (``UPDATE … WHERE cursor < new``); anything not acknowledged is sent
  again, and the province applies every (sender, kind, id) once, answering ``already_applied`` to a repeat — so
  a lost acknowledgement, a crash of the pusher or two pushers at once cost a resend, never a duplicate;
- ids are not committed in order on PostgreSQL (a sequence value is taken before commit): a hole in the ids
  after the cursor is not passed while the row after it is younger than ``hole_grace`` (default 5 minutes), so
  an event committed late is not skipped; an older hole is a rolled-back write;
- catalogue entries are created pending and approved later: the catalogue cursor never passes a pending entry
  (approved entries beyond it are sent anyway, and answered ``already_applied`` until it passes them);
  rejected entries are passed without being sent;
- one pusher per target at a time: a short lease in ``exchange_leases`` (source ``upward:<name>``, ``lease_ttl``,
  default 60 s) renewed before every request, so a killed pusher holds it at most that long; a pusher that finds
  its lease taken over (a request outlasted the lease) stops — the other one resends what was not acknowledged,
  which the province answers ``already_applied``. A push that finds the lease held is skipped, reporting until
  when (the lease's end).

The retry queue: on a connection error, a timeout, a 5xx, 401/403/404/408/429, a malformed answer or an item the
target could not process (``failed``), the push stops, the cursors stay, and ``upward_targets`` records
``attempts``, ``last_error`` and ``next_attempt_at`` (exponential backoff: 30 s doubling to at most 1 h); a
push before that time does nothing unless forced. A success resets them.

Permanently refused items do not block the feed: the province answers per item, and an item it refuses (its
file does not verify against the province's trust store, its identifier is held with other content …) is
passed by the cursor, logged at WARNING, and recorded as an audit event ``upward.refused`` (reason, target,
kind, source id, identifier; :func:`list_refusals`) in the transaction that moves the cursor past it — built by
:meth:`~certstore.services.calls.Call.event` for the push's call (the operator or the repository's own system
pushing, through the upward entry point). A whole
batch answered 400/413/422 (the batch itself could not be read) is split in halves until the offending item is
alone; that item is then refused in the same way — provided the target read other items of the batch (if it read
none, the target is more likely at fault than the items: the push stops and retries instead).
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, lazyload

from certstore.access import Actor, Role
from certstore.audit import AuditEntry, AuditEvent, AuditQuery, chain_pending
from certstore.audit import Outcome as AuditOutcome
from certstore.audit.query import iter_entries
from certstore.identifiers import HolderIdType
from certstore.records import Holder
from certstore.services.aggregation import (
    CatalogueDelivery,
    CertificateDelivery,
    DeliveredFile,
    DeliveredVersion,
    Delivery,
    ItemResult,
    Outcome,
    delivery_to_json,
)
from certstore.services.calls import Call, Origin, Via, audit_in
from certstore.services.catalogue_assets import asset_data, asset_digest
from certstore.store.models import (
    CatalogueEntryRow,
    CertificateEventRow,
    CertificateRow,
    ExchangeLeaseRow,
    UpwardTargetRow,
)
from certstore.store.repository import Repository

__all__ = [
    "BATCH_PATH",
    "LEASE_LOST",
    "REFUSED_ACTION",
    "Backoff",
    "PushStats",
    "TargetState",
    "UpwardTarget",
    "list_refusals",
    "push_upward",
    "system_call",
    "target_state",
]

log = logging.getLogger(__name__)

BATCH_PATH = "/api/v1/aggregate/batches"
#: The audit action of an item the target permanently refused.
REFUSED_ACTION = "upward.refused"
LEASE_LOST = "lost the lease to another pusher"
_SPLIT_STATUSES = frozenset({400, 413, 422})  # the batch could not be read: isolate the item
_LEASE_TTL = timedelta(seconds=60)  # renewed before every request
_MAX_NAME = 90  # exchange_leases.source is 100 characters, "upward:" included


@dataclass(frozen=True)
class UpwardTarget:
    """A repository this one aggregates into: a name (the ``upward_targets`` key), its API base URL and the
    bearer token of this city's ``upstream`` principal there."""

    name: str
    base_url: str
    token: str = field(repr=False)

    def __post_init__(self) -> None:
        if not self.name or len(self.name) > _MAX_NAME or not self.name.isprintable():
            raise ValueError(f"target name: 1 to {_MAX_NAME} printable characters")
        if not self.base_url.startswith(("http://", "https://")):
            raise ValueError(f"target {self.name}: the base URL must start with http:// or https://")

    @property
    def batch_url(self) -> str:
        return self.base_url.rstrip("/") + BATCH_PATH


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff of a target that is down: ``base`` seconds after the first failure, doubling, at most
    ``cap``."""

    base: float = 30.0
    cap: float = 3600.0

    def delay(self, attempts: int) -> timedelta:
        return timedelta(seconds=min(self.cap, self.base * 2 ** max(0, min(attempts - 1, 30))))


@dataclass
class PushStats:
    """What one :func:`push_upward` did."""

    target: str
    batches: int = 0  # requests the target answered
    catalogue_applied: int = 0
    events_applied: int = 0
    already_applied: int = 0  # repeats the target had applied before (after a lost acknowledgement)
    refused: int = 0  # permanently refused, recorded and passed
    catalogue_cursor: int = 0
    event_cursor: int = 0
    caught_up: bool = False  # nothing left to send (a pending catalogue entry or a young id hole may wait)
    skipped: bool = False  # not attempted: backing off or the lease held, until next_attempt_at
    error: str | None = None  # why the push stopped (the target is down …); the cursors stayed
    attempts: int = 0  # consecutive failed attempts
    next_attempt_at: datetime | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and not self.skipped

    def summary(self) -> str:
        if self.skipped:
            until = "-" if self.next_attempt_at is None else self.next_attempt_at.isoformat()
            return f"{self.target}: skipped ({self.error or 'backing off'}) until {until}"
        text = (
            f"{self.target}: {self.batches} batch(es), {self.catalogue_applied} catalogue + "
            f"{self.events_applied} event(s) applied, {self.already_applied} already applied, "
            f"{self.refused} refused; cursors catalogue={self.catalogue_cursor} events={self.event_cursor}"
        )
        if self.error:
            text += f"; FAILED (attempt {self.attempts}, next at {self.next_attempt_at}): {self.error}"
        return text


@dataclass(frozen=True)
class TargetState:
    """Where a target stands (``certstore exchange status``): cursors, retry state, and what waits."""

    name: str
    catalogue_cursor: int
    event_cursor: int
    attempts: int
    next_attempt_at: datetime | None
    last_error: str | None
    last_success_at: datetime | None
    events_waiting: int
    oldest_waiting_at: datetime | None  # lag: the time of the oldest event not yet delivered


# --- state --------------------------------------------------------------------------------------------------


def _target_row(session: Session, name: str) -> UpwardTargetRow:
    row = session.get(UpwardTargetRow, name)
    if row is None:
        raise LookupError(f"no upward target {name!r}")
    return row


def _ensure_target(repo: Repository, name: str) -> None:
    with repo.db.session() as session:
        if session.get(UpwardTargetRow, name) is not None:
            return
    try:
        with repo.db.session() as session:
            session.add(UpwardTargetRow(name=name, event_cursor=0, catalogue_cursor=0, attempts=0))
    except IntegrityError:
        pass  # created concurrently


def _take_lease(
    repo: Repository, source: str, holder: str, now: datetime, ttl: timedelta = _LEASE_TTL
) -> bool:
    """Take or renew the lease of ``source`` for ``ttl`` (a conditional UPDATE, atomic on every backend)."""
    until = now + ttl
    with repo.db.session() as session:
        taken = session.execute(
            update(ExchangeLeaseRow)
            .where(
                ExchangeLeaseRow.source == source,
                (ExchangeLeaseRow.holder.is_(None))
                | (ExchangeLeaseRow.holder == holder)
                | (ExchangeLeaseRow.lease_until < now),
            )
            .values(holder=holder, lease_until=until)
            .execution_options(synchronize_session=False)
        ).rowcount
        if taken:
            return True
        if session.get(ExchangeLeaseRow, source) is not None:
            return False
    try:
        with repo.db.session() as session:
            session.execute(insert(ExchangeLeaseRow).values(source=source, holder=holder, lease_until=until))
        return True
    except IntegrityError:
        return False


def _release_lease(repo: Repository, source: str, holder: str) -> None:
    with repo.db.session() as session:
        session.execute(
            update(ExchangeLeaseRow)
            .where(ExchangeLeaseRow.source == source, ExchangeLeaseRow.holder == holder)
            .values(holder=None, lease_until=None)
            .execution_options(synchronize_session=False)
        )


def _contiguous(rows: Sequence[tuple[int, datetime]], cursor: int, now: datetime, grace: timedelta) -> int:
    """How many of ``rows`` (id, time; by id) may be passed: up to a hole in the ids whose next row is younger
    than ``grace`` (a write holding the missing id may still commit)."""
    expected = cursor + 1
    for index, (row_id, at) in enumerate(rows):
        if row_id != expected and at > now - grace:
            return index
        expected = row_id + 1
    return len(rows)


# --- reading the feeds --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _CatalogueEntryRef:
    id: int
    status: str
    delivery: CatalogueDelivery | None  # None: not sent (pending or rejected)


def _catalogue_page(
    repo: Repository, cursor: int, limit: int, max_bytes: int, now: datetime, grace: timedelta
) -> list[_CatalogueEntryRef]:
    """The next entries after ``cursor``; an approved one with its uploaded base image. Stops before a young id
    hole and once ``max_bytes`` of images are taken (at least one entry), as :func:`_event_page` does."""
    with repo.db.session(readonly=True) as session:
        rows = session.scalars(
            select(CatalogueEntryRow)
            .where(CatalogueEntryRow.id > cursor)
            .order_by(CatalogueEntryRow.id)
            .limit(limit)
        ).all()
        rows = rows[: _contiguous([(r.id, r.created_at) for r in rows], cursor, now, grace)]
        page: list[_CatalogueEntryRef] = []
        taken = 0
        for row in rows:
            delivery = None
            if row.status == "approved":
                image = _base_image(session, row.definition.get("base_image"))
                if image is not None:
                    if page and taken + len(image.data) > max_bytes:
                        break
                    taken += len(image.data)
                delivery = CatalogueDelivery(
                    source_id=row.id,
                    document=dict(row.definition),
                    submitted_by=row.submitted_by,
                    reviewed_by=row.reviewed_by,
                    reviewed_at=row.reviewed_at,
                    base_image=image,
                )
            page.append(_CatalogueEntryRef(row.id, row.status, delivery))
        return page


def _base_image(session: Session, name: object) -> DeliveredFile | None:
    """The uploaded base image an entry names (``asset:<SM3>``), delivered with it; None for a shipped image
    (and for an asset this repository does not hold, which the province then refuses with the reason)."""
    digest = asset_digest(name) if isinstance(name, str) else None
    if digest is None:
        return None
    data = asset_data(session, digest)
    return None if data is None else DeliveredFile(data=data, media_type="image/png", sm3=digest)


def _version(row: CertificateRow, file: DeliveredFile | None) -> DeliveredVersion:
    return DeliveredVersion(
        identifier=row.identifier,
        type_code=row.type_code,
        issuer_code=row.issuer_code,
        issuer_name=row.issuer_name,
        serial=row.serial,
        version=row.version,
        certificate_number=row.certificate_number,
        name=row.name,
        catalogue_code=row.catalogue_code,
        catalogue_version=row.catalogue_version,
        holder=Holder(row.holder_name, HolderIdType(row.holder_id_type), row.holder_id),
        issue_date=row.issue_date,
        valid_from=row.valid_from,
        valid_until=row.valid_until,
        face=dict(row.face),
        metadata=dict(row.meta),
        content_digest=row.content_digest,
        created_at=row.created_at,
        file=file,
    )


def _event_page(
    repo: Repository, cursor: int, limit: int, max_bytes: int, now: datetime, grace: timedelta
) -> list[CertificateDelivery]:
    """The next events after ``cursor``; a version-creating event (its version's first) with the version's
    record and file. Stops before a young id hole and once ``max_bytes`` of files are taken (at least one)."""
    with repo.db.session(readonly=True) as session:
        pairs = session.execute(
            select(CertificateEventRow, CertificateRow)
            .join(CertificateRow, CertificateEventRow.certificate_id == CertificateRow.id)
            .where(CertificateEventRow.id > cursor)
            .order_by(CertificateEventRow.id)
            .limit(limit)
            .options(lazyload(CertificateRow.events))
        ).all()
        pairs = pairs[: _contiguous([(e.id, e.at) for e, _ in pairs], cursor, now, grace)]
        certificate_ids = {row.id for _, row in pairs}
        first_events = set(
            session.scalars(
                select(func.min(CertificateEventRow.id))
                .where(CertificateEventRow.certificate_id.in_(certificate_ids))
                .group_by(CertificateEventRow.certificate_id)
            ).all()
        ) if certificate_ids else set()  # fmt: skip
        deliveries: list[CertificateDelivery] = []
        taken = 0
        for event, row in pairs:
            version = None
            if event.id in first_events:
                file = None
                if row.file_key is not None:
                    data = repo.blobs.get(row.file_key)  # raises when the blob is missing: stop, retry
                    if deliveries and taken + len(data) > max_bytes:
                        break
                    taken += len(data)
                    file = DeliveredFile(
                        data, row.file_media_type or "application/octet-stream", row.file_key
                    )
                version = _version(row, file)
            deliveries.append(
                CertificateDelivery(
                    source_id=event.id,
                    identifier=row.identifier,
                    action=event.action,
                    from_status=event.from_status,
                    to_status=event.to_status,
                    reason=event.reason,
                    actor=event.actor,
                    at=event.at,
                    details=dict(event.details or {}),
                    version=version,
                )
            )
        return deliveries


# --- sending ------------------------------------------------------------------------------------------------


def _problem_detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:300]
    if isinstance(body, dict):
        return str(body.get("detail") or body.get("title") or body)[:300]
    return str(body)[:300]


def _identifier(delivery: Delivery) -> str | None:
    return delivery.identifier if isinstance(delivery, CertificateDelivery) else None


class _Sender:
    def __init__(
        self, target: UpwardTarget, http: httpx.Client, renew: Callable[[], bool] | None = None
    ) -> None:
        self.target, self.http, self.renew = target, http, renew
        self.requests = 0

    def send(self, deliveries: Sequence[Delivery]) -> tuple[list[ItemResult], str | None]:
        """Results for a prefix of ``deliveries`` (all of them unless the target stopped us: then the reason).

        A batch the target cannot read (400/413/422) is split until the unreadable items are alone; they are
        refused only when the target read other items of the batch — when it reads none, the cause is more
        likely the target (another protocol version …) than the items, and the push stops instead."""
        unreadable: set[int] = set()
        results, stopped = self._send(deliveries, unreadable)
        if results and len(unreadable) == len(results) and stopped is None:
            return [], f"the target could read no item of the batch: {results[0].reason}"
        return results, stopped

    def _send(
        self, deliveries: Sequence[Delivery], unreadable: set[int]
    ) -> tuple[list[ItemResult], str | None]:
        if self.renew is not None and not self.renew():  # the lease, renewed before every request
            return [], LEASE_LOST
        try:
            response = self.http.post(
                self.target.batch_url,
                json={"items": [delivery_to_json(d) for d in deliveries]},
                headers={"Authorization": f"Bearer {self.target.token}"},
            )
        except httpx.HTTPError as exc:
            return [], f"{self.target.batch_url}: {type(exc).__name__}: {exc}"
        if response.status_code in _SPLIT_STATUSES:
            detail = f"HTTP {response.status_code}: {_problem_detail(response)}"
            if len(deliveries) == 1:
                only = deliveries[0]
                unreadable.add(only.source_id)
                return [
                    ItemResult(only.kind.value, only.source_id, Outcome.REFUSED, _identifier(only), detail)
                ], None
            half = len(deliveries) // 2
            first, stopped = self._send(deliveries[:half], unreadable)
            if stopped or len(first) < half or not all(r.outcome.acknowledged for r in first):
                return first, stopped
            second, stopped = self._send(deliveries[half:], unreadable)
            return first + second, stopped
        if response.status_code != 200:
            return [], f"HTTP {response.status_code}: {_problem_detail(response)}"
        self.requests += 1
        try:
            results = [ItemResult.from_json(r) for r in response.json()["results"]]
        except (ValueError, KeyError, TypeError) as exc:
            return [], f"malformed answer from the target: {type(exc).__name__}: {exc}"
        expected = [(d.kind.value, d.source_id) for d in deliveries]
        if [(r.kind, r.source_id) for r in results] != expected:
            return [], "malformed answer from the target: the results do not match the batch"
        return results, None


def _first_stop(results: Sequence[ItemResult], stopped: str | None) -> str | None:
    for result in results:
        if not result.outcome.acknowledged:
            return f"{result.kind} {result.source_id}: {result.outcome.value}: {result.reason}"
    return stopped


def system_call(target: str) -> Call:
    """The call of this repository's own system pushing to ``target`` (the scheduled push; role operator)."""
    return Call(Actor("upward", Role.OPERATOR), Origin(Via.UPWARD, source=target))


def _refusal_event(call: Call, target: str, result: ItemResult, at: datetime) -> AuditEvent:
    return call.event(
        REFUSED_ACTION,
        outcome=AuditOutcome.ERROR,
        status_code=422,
        certificate=result.identifier if result.kind == "event" else None,
        reason=result.reason or "refused",
        details={
            "target": target,
            "kind": result.kind,
            "source_id": result.source_id,
            "identifier": result.identifier,
        },
        at=at,
    )


def _commit(
    repo: Repository,
    call: Call,
    stats: PushStats,
    *,
    catalogue_cursor: int | None = None,
    event_cursor: int | None = None,
    refused: Sequence[ItemResult] = (),
    error: str | None = None,
    backoff: Backoff,
) -> None:
    """Move the cursors forward, record the refusals passed and the attempt's outcome, in one transaction."""
    now = repo.now()
    with repo.db.session() as session:
        for column, value in (("catalogue_cursor", catalogue_cursor), ("event_cursor", event_cursor)):
            if value is not None:
                session.execute(
                    update(UpwardTargetRow)
                    .where(UpwardTargetRow.name == stats.target, getattr(UpwardTargetRow, column) < value)
                    .values({column: value})
                    .execution_options(synchronize_session=False)
                )
        for result in refused:
            log.warning(
                "upward %s: %s %s (%s) refused: %s",
                stats.target, result.kind, result.source_id, result.identifier, result.reason,
            )  # fmt: skip
            audit_in(session, call, _refusal_event(call, stats.target, result, now))
        row = _target_row(session, stats.target)
        session.refresh(row)
        if error is None:
            row.attempts, row.next_attempt_at, row.last_error, row.last_success_at = 0, None, None, now
        elif error == LEASE_LOST:  # not the target's failure: no backoff (the other pusher goes on)
            log.warning("upward %s: %s", stats.target, error)
        else:
            row.attempts += 1
            row.next_attempt_at = now + backoff.delay(row.attempts)
            row.last_error = error[:2000]
            log.warning("upward %s: attempt %d failed: %s", stats.target, row.attempts, error)
        stats.catalogue_cursor, stats.event_cursor = row.catalogue_cursor, row.event_cursor
        stats.attempts, stats.next_attempt_at, stats.error = row.attempts, row.next_attempt_at, error
    stats.refused += len(refused)


def _count(stats: PushStats, results: Sequence[ItemResult]) -> None:
    for result in results:
        if result.outcome is Outcome.ALREADY_APPLIED:
            stats.already_applied += 1
        elif result.outcome is Outcome.APPLIED:
            if result.kind == "catalogue":
                stats.catalogue_applied += 1
            else:
                stats.events_applied += 1


def _push_catalogue(
    repo: Repository,
    call: Call,
    sender: _Sender,
    stats: PushStats,
    *,
    batch: int,
    max_bytes: int,
    grace: timedelta,
    backoff: Backoff,
) -> bool:
    """Deliver the catalogue feed; False when the push must stop (failure recorded). A request carries at most
    ``max_bytes`` of base images (always at least one entry); the rest of the page goes in the next one."""
    while True:
        cursor = stats.catalogue_cursor
        page = _catalogue_page(repo, cursor, batch, max_bytes, repo.now(), grace)
        if not page:
            return True
        deliveries = [ref.delivery for ref in page if ref.delivery is not None]
        results, stopped = sender.send(deliveries) if deliveries else ([], None)
        by_id = {r.source_id: r for r in results}
        new_cursor, passed, blocked = cursor, [], False
        for ref in page:
            if ref.status == "pending":
                blocked = True
                break
            if ref.status == "approved":
                result = by_id.get(ref.id)
                if result is None or not result.outcome.acknowledged:
                    break
                passed.append(result)
            new_cursor = ref.id
        _count(stats, [r for r in results if r.outcome.acknowledged])
        error = _first_stop(results, stopped)
        _commit(
            repo,
            call,
            stats,
            catalogue_cursor=new_cursor,
            refused=[r for r in passed if r.outcome is Outcome.REFUSED],
            error=error,
            backoff=backoff,
        )
        if error is not None:
            return False
        if blocked or new_cursor == cursor:
            return True


def _push_events(
    repo: Repository,
    call: Call,
    sender: _Sender,
    stats: PushStats,
    *,
    batch: int,
    max_bytes: int,
    grace: timedelta,
    backoff: Backoff,
    renew: Any,
) -> bool:
    """Deliver the event feed until caught up; False when the push must stop (failure recorded)."""
    while True:
        cursor = stats.event_cursor
        try:
            page = _event_page(repo, cursor, batch, max_bytes, repo.now(), grace)
        except Exception as exc:  # this repository's own trouble (a missing blob …): retry later
            _commit(repo, call, stats, error=f"reading the feed after event {cursor}: {type(exc).__name__}: {exc}",
                    backoff=backoff)  # fmt: skip
            return False
        if not page:
            stats.caught_up = True
            return True
        results, stopped = sender.send(page)
        acknowledged: list[ItemResult] = []
        for result in results:
            if not result.outcome.acknowledged:
                break
            acknowledged.append(result)
        _count(stats, acknowledged)
        error = _first_stop(results, stopped)
        _commit(
            repo,
            call,
            stats,
            event_cursor=acknowledged[-1].source_id if acknowledged else None,
            refused=[r for r in acknowledged if r.outcome is Outcome.REFUSED],
            error=error,
            backoff=backoff,
        )
        if error is not None:
            return False
        if not renew():
            stats.error = LEASE_LOST
            return False


def push_upward(
    repo: Repository,
    target: UpwardTarget,
    *,
    batch: int = 100,
    http: httpx.Client | None = None,
    force: bool = False,
    max_batch_bytes: int = 8 * 1024 * 1024,
    timeout: float = 120.0,
    backoff: Backoff | None = None,
    hole_grace: timedelta = timedelta(minutes=5),
    worker: str | None = None,
    call: Call | None = None,
    lease_ttl: timedelta = _LEASE_TTL,
) -> PushStats:
    """Deliver what ``target`` has not acknowledged yet: the catalogue feed, then the event feed, until caught
    up or the target fails (then the retry state is recorded and the cursors stay). Does nothing while the
    target is backing off (``next_attempt_at`` in the future) unless ``force``, or while another pusher holds
    the target's lease. ``http``: the client to use, with its own timeouts (default: a new one per call, with
    ``timeout`` seconds per request). ``call``: who pushes, for the audit entries of refused items — the operator
    at the command line (``Call.operator(via=Via.UPWARD, source=target.name)``); default the repository's own
    system (:func:`system_call`). ``lease_ttl``: how long the pusher's lease lasts; it is renewed before every
    request (module docstring)."""
    if not 1 <= batch <= 1000:
        raise ValueError("batch: 1 to 1000 items")
    backoff = backoff or Backoff()
    call = call or system_call(target.name)
    stats = PushStats(target=target.name)
    _ensure_target(repo, target.name)
    with repo.db.session(readonly=True) as session:
        row = _target_row(session, target.name)
        stats.catalogue_cursor, stats.event_cursor = row.catalogue_cursor, row.event_cursor
        stats.attempts, stats.next_attempt_at = row.attempts, row.next_attempt_at
    if not force and stats.next_attempt_at is not None and stats.next_attempt_at > repo.now():
        stats.skipped = True
        return stats
    source = f"upward:{target.name}"
    holder = worker or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
    if not _take_lease(repo, source, holder, repo.now(), lease_ttl):
        stats.skipped, stats.error = True, "another pusher holds the lease"
        with repo.db.session(readonly=True) as session:
            lease = session.get(ExchangeLeaseRow, source)
            if lease is not None and lease.lease_until is not None:
                stats.next_attempt_at = lease.lease_until  # when the holder's lease ends unless renewed
        return stats

    def renew() -> bool:
        return _take_lease(repo, source, holder, repo.now(), lease_ttl)

    client = http or httpx.Client(timeout=timeout)
    try:
        sender = _Sender(target, client, renew)
        try:
            if _push_catalogue(
                repo,
                call,
                sender,
                stats,
                batch=batch,
                max_bytes=max_batch_bytes,
                grace=hole_grace,
                backoff=backoff,
            ):
                _push_events(
                    repo, call, sender, stats, batch=batch, max_bytes=max_batch_bytes, grace=hole_grace,
                    backoff=backoff, renew=renew,
                )  # fmt: skip
        finally:
            stats.batches = sender.requests
    finally:
        if http is None:
            client.close()
        _release_lease(repo, source, holder)
    return stats


# --- reading the state --------------------------------------------------------------------------------------


def target_state(repo: Repository, name: str) -> TargetState:
    """The cursors, retry state and backlog of target ``name`` (LookupError when it was never pushed to)."""
    with repo.db.session(readonly=True) as session:
        row = _target_row(session, name)
        waiting, oldest = session.execute(
            select(func.count(CertificateEventRow.id), func.min(CertificateEventRow.at)).where(
                CertificateEventRow.id > row.event_cursor
            )
        ).one()
        return TargetState(
            name=row.name,
            catalogue_cursor=row.catalogue_cursor,
            event_cursor=row.event_cursor,
            attempts=row.attempts,
            next_attempt_at=row.next_attempt_at,
            last_error=row.last_error,
            last_success_at=row.last_success_at,
            events_waiting=int(waiting or 0),
            oldest_waiting_at=oldest,
        )


def list_refusals(repo: Repository, *, target: str | None = None) -> list[AuditEntry]:
    """Items a target permanently refused (audit events ``upward.refused``, chained first), oldest first."""
    chain_pending(repo.db)
    entries = iter_entries(repo.db, AuditQuery(action=REFUSED_ACTION))
    return [e for e in entries if target is None or e.event.details.get("target") == target]
