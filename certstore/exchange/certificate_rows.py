"""Certificate versions from ``fe_certificates`` (:class:`CertificateRows`): planned, sealed and committed."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from certstore.access import AccessDeniedError
from certstore.exchange.core import (
    NOT_THE_ROWS_FAULT,
    Infrastructure,
    RowFault,
    advanced,
    logger,
    rows_fault,
    unexpected,
)
from certstore.exchange.cursor import (
    ACCEPTED,
    REJECTED,
    Done,
    load_cursor,
)
from certstore.exchange.frontend import (
    CERTIFICATE_TABLE,
)
from certstore.exchange.lease import on_commit
from certstore.exchange.plan import (
    AheadPlan,
    CertificatePlan,
    Defer,
    Reject,
    prefixed,
)
from certstore.exchange.reading import HAS_FILE, FileRow, FrontendReading, Later, Unreadable
from certstore.exchange.sealing import Sealed
from certstore.lifecycle import TransitionError
from certstore.packaging.face import LayoutError
from certstore.records import RecordError
from certstore.services import certificates
from certstore.services.certificate_batch import CertificateBatch
from certstore.services.certificates import (
    NO_FILE,
    CertificateNotFoundError,
    DuplicateConflictError,
    NotLatestVersionError,
    written_version,
)
from certstore.store.blobs import BlobRef

__all__ = ["FEED_LOW", "FEED_SLICE", "SEALED_RUN", "SEAL_AHEAD", "CertificateRows"]

#: Versions this repository sealed committed in one transaction at most (their files are in memory until then).
SEALED_RUN = 50
#: Most certificate versions handed to the sealing pool ahead of their commit (:meth:`CertificateRows.feed_pool`).
SEAL_AHEAD = 10_000
#: The pool is fed when fewer versions than this are still being sealed ...
FEED_LOW = 1_000
#: ... with the versions of this many more new certificate rows.
FEED_SLICE = 500


class CertificateRows(FrontendReading):
    """The certificate versions of a cycle (module docstring)."""

    def _plan_certificate(self, row: Any, now: datetime) -> CertificatePlan | Reject | Defer:
        try:
            return self.planner.certificate(CERTIFICATE_TABLE.name, row, now)
        except NOT_THE_ROWS_FAULT:
            raise
        except Exception as exc:
            return Reject(unexpected(exc, "data"))

    def _apply_certificates(self, rows: Sequence[Any]) -> None:
        now = self.repo.now()
        plans: list[CertificatePlan | Done | Later] = []
        waits: dict[str, list[int]] = {}  # why → rows
        try:
            self.planner.prefetch_serials(rows)
            ahead = self._take_ahead(rows)
            for row in rows:
                if getattr(row, HAS_FILE, False):  # planned (file read) and applied when its turn comes
                    plans.append(Later(row))
                    continue
                plan = (
                    self._planned.pop(int(row.seq), None)
                    or self._adopt(ahead.get(int(row.seq)), row, now)
                    or self._plan_certificate(FileRow(row, None), now)
                )
                if isinstance(plan, Defer):
                    waits.setdefault(plan.why, []).append(int(row.seq))
                    continue
                if isinstance(plan, Reject):
                    plans.append(Done(int(row.seq), REJECTED, problems=plan.problems))
                    continue
                if self.sealer is not None and self._to_seal(plan) and plan.seq not in self._ahead:
                    self._seal_ahead(plan)  # the workers seal while the rest of the batch is planned
                plans.append(plan)
            for why, seqs in waits.items():
                self._wait(CERTIFICATE_TABLE.name, seqs, why)
            if self.sealer is not None:
                self.sealer.flush()
            if self._ahead_high is not None and rows:  # read ahead from here on: never planned twice
                self._ahead_high = max(self._ahead_high, *(int(r.seq) for r in rows))
            self._apply_planned(plans, now, {int(r.seq) for r in rows})
        finally:  # a file not taken (the chunk failed): nobody waits for it
            for seq in (int(r.seq) for r in rows):
                if (future := self._ahead.pop(seq, None)) is not None:
                    future.cancel()

    # -- planning ahead (a cycle that seals nothing) ------------------------------------------------------

    def _take_ahead(self, rows: Sequence[Any]) -> dict[int, AheadPlan]:
        """The plans the planning process made of ``rows`` (:mod:`certstore.exchange.planning`)."""
        if self._planning_ahead is None or not rows:
            return {}
        return self._planning_ahead.take(max(int(r.seq) for r in rows))

    def _adopt(self, ahead: AheadPlan | None, row: Any, now: datetime) -> CertificatePlan | None:
        if ahead is None:
            return None
        plan = self.planner.adopt(CERTIFICATE_TABLE.name, ahead, row, now)
        assert self._planning_ahead is not None
        self._planning_ahead.count(plan is not None)
        if plan is not None:
            self.stats.planned_ahead += 1
        return plan

    # -- sealing ahead ----------------------------------------------------------------------------------

    def seal_ahead_of_statuses(self) -> None:
        """Before the first status pass: start feeding the pool (:meth:`feed_pool`), so the workers seal while the
        status changes are applied. Only with a pool that stores the files itself
        (:attr:`SealingPool.blobs <certstore.exchange.sealing.SealingPool>`): the sealed files then wait as blob
        references, not bytes."""
        if self.sealer is None or self.sealer.blobs is None or self.file_maker is None:
            return
        self._ahead_high = load_cursor(self.repo, self.source.name, CERTIFICATE_TABLE.name).high
        self._ahead_more = True
        self.feed_pool()

    def feed_pool(self) -> None:
        """Keep the workers busy from the first status pass to the last certificate: whenever fewer than
        :data:`FEED_LOW` versions are still being sealed, plan the next :data:`FEED_SLICE` new certificate rows
        (after the last one read ahead) and hand their versions to the pool — at most :data:`SEAL_AHEAD` planned
        and not yet committed (their plans wait in memory, ~10 KB each). Called between chunks and committed runs.

        The plans are used as they are when the rows' turn comes: nothing a status change does alters a
        version's plan. Rows that are not sealed here (rejected, deferred, carrying the agency's file) are
        planned again in their turn."""
        if self._ahead_high is None or self.sealer is None:
            return
        table = CERTIFICATE_TABLE
        while self._ahead_more and self.sealer.backlog < FEED_LOW and len(self._ahead) < SEAL_AHEAD:
            fetched = self._fetch(table, table.c.seq > self._ahead_high, FEED_SLICE)
            self._ahead_more = len(fetched) == FEED_SLICE
            if not fetched:
                return
            self._ahead_high = int(fetched[-1].seq)
            rows = [
                row
                for row in fetched
                if not isinstance(row, Unreadable)
                and not getattr(row, HAS_FILE, False)
                and int(row.seq) not in self._ahead
            ]
            now = self.repo.now()
            self.planner.prefetch_serials(rows)
            for row in rows:
                plan = self._plan_certificate(FileRow(row, None), now)
                if isinstance(plan, CertificatePlan) and self._to_seal(plan):
                    self._planned[plan.seq] = plan
                    self._seal_ahead(plan)
            self.sealer.flush()

    def drop_ahead(self) -> None:
        """The end of the cycle: files sealed ahead and not used are not waited for (their blobs are orphans)."""
        for future in self._ahead.values():
            future.cancel()
        self._ahead.clear()
        self._planned.clear()

    def _seals(self, plan: CertificatePlan) -> bool:
        """Whether the repository seals this version's file (no agency file, not a renewal: those go alone)."""
        return self.file_maker is not None and plan.file is None and not plan.renewal

    def _to_seal(self, plan: CertificatePlan) -> bool:
        """Whether ``plan``'s version is sealed here: the repository seals it (:meth:`_seals`) and it is new — not
        stored already, and not claimed by an earlier row of this cycle for the same number and version. A repeat
        (or a conflict) is never sealed: it goes alone, where the use case finds it identical (accepted, no file
        made) or conflicting (rejected) — so no orphan file is stored for it."""
        if not self._seals(plan):
            return False
        key = (plan.number, plan.version)
        if self.planner.stored(*key):
            return False
        return self._claims.setdefault(key, plan.seq) == plan.seq

    def _seal_ahead(self, plan: CertificatePlan) -> None:
        assert self.sealer is not None
        try:
            self._ahead[plan.seq] = self.sealer.submit(plan.prepared)
        except Exception:  # the pool cannot take it (shut down, broken): sealed here when its turn comes
            logger.warning(
                "source %s: the sealing pool refused row %d", self.source.name, plan.seq, exc_info=True
            )

    def _sealed_file(self, plan: CertificatePlan) -> Sealed | None:
        """The file of ``plan``'s version: the one a pool worker sealed, or sealed now in this process. None: the
        row's own failure while sealing (the row then goes alone, for the outcome of a run without the pool)."""
        future = self._ahead.pop(plan.seq, None)
        if future is not None:
            assert self.sealer is not None
            self.sealer.flush()  # a task not yet full: sent now, never waited for unsent
            try:
                made = future.result()
            except Exception:  # the row's own failure, or a lost worker: sealed again here
                self.sealer.resealed += 1
            else:
                self.sealer.used += 1
                return made
        assert self.file_maker is not None
        try:
            return Sealed(*self.file_maker(plan.prepared))
        except NOT_THE_ROWS_FAULT:
            raise
        except Exception:
            return None

    # -- committing -------------------------------------------------------------------------------------

    def _apply_planned(
        self, plans: Sequence[CertificatePlan | Done | Later], now: datetime, in_chunk: set[int]
    ) -> None:
        """Commit in ``seq`` order: runs of consecutive rows in one transaction each (data-only versions,
        rejections, and versions this repository seals — at most :data:`SEALED_RUN` of those per run, their
        files stored first); a row with the agency's file, a renewal, or a version that failed to seal, alone."""
        run: list[CertificatePlan | Done] = []
        files: dict[int, Sealed] = {}
        for item in plans:
            if isinstance(item, Later):
                self._certificate_batch(run, in_chunk, files)
                run, files = [], {}
                self._certificate_with_file(item.row, now, in_chunk)
                continue
            if isinstance(item, CertificatePlan) and (
                item.file is not None or item.renewal or (self._seals(item) and not self._to_seal(item))
            ):
                self._certificate_batch(run, in_chunk, files)
                run, files = [], {}
                self._certificate_alone(item, in_chunk)
                continue
            if isinstance(item, CertificatePlan) and self._to_seal(item):
                made = self._sealed_file(item)
                if made is None:
                    self._certificate_batch(run, in_chunk, files)
                    run, files = [], {}
                    self._certificate_alone(item, in_chunk)
                    continue
                files[item.seq] = made
            run.append(item)
            if len(files) >= SEALED_RUN:
                self._certificate_batch(run, in_chunk, files)
                run, files = [], {}
                self.feed_pool()
        self._certificate_batch(run, in_chunk, files)

    def _certificate_with_file(self, row: Any, now: datetime, in_chunk: set[int]) -> None:
        """A row that carries the agency's sealed file: its file read, planned and applied alone — the bytes are
        dropped before the next row's are read."""
        table = CERTIFICATE_TABLE.name
        full = self._with_file(row)
        if isinstance(full, Unreadable):
            self._commit_alone(
                table, [Done(full.seq, REJECTED, problems=[(full.field, f"cannot be read: {full.why}")])]
            )
            return
        plan = self._plan_certificate(full, now)
        del full
        if isinstance(plan, Defer):
            self._wait(table, [int(row.seq)], plan.why)
        elif isinstance(plan, Reject):
            self._commit_alone(table, [Done(int(row.seq), REJECTED, problems=plan.problems)])
        else:
            self._certificate_alone(plan, in_chunk)

    def _missing_predecessor(self, plan: CertificatePlan, in_chunk: set[int]) -> Defer | Done:
        # rows of this chunk up to this one are being decided now; later ones still wait
        pending = self._pending_certificates([plan.number], {s for s in in_chunk if s <= plan.seq})
        if plan.version - 1 in pending.get(plan.number, set()):
            return Defer(f"version {plan.version - 1} is still waiting in the front-end")
        return Done(
            plan.seq,
            REJECTED,
            problems=[
                (
                    "version",
                    f"version {plan.version - 1} of certificate {plan.number!r} is not in the repository: "
                    "deliver versions in order (a correction of a rejected version is a new row)",
                )
            ],
        )

    def _certificate_batch(
        self, plans: Sequence[CertificatePlan | Done], in_chunk: set[int],
        files: Mapping[int, Sealed] | None = None,
    ) -> None:  # fmt: skip
        """``plans`` in one transaction: their effects (with audit entries and arrivals), ledger rows, cursor and
        lease — all or nothing. ``files``: the sealed files of versions among them, stored in the blob store
        before the transaction (content-addressed: storing one again is harmless; a crash leaves at most orphan
        blobs, swept later). On a row's own failure the run is split: one row per transaction."""
        if not plans:
            return
        files = files or {}
        blobs = self._store_files(files)
        table = CERTIFICATE_TABLE.name
        for attempt in (1, 2):
            candidate = self.cursors[table].copy()
            done: list[Done] = []
            waiting: list[int] = []
            try:
                with self.repo.db.session() as session:
                    at = self.repo.now()
                    numbers = [p.number for p in plans if isinstance(p, CertificatePlan)]
                    batch = CertificateBatch(
                        self.repo, session, issuer_code=self.source.issuer_code, numbers=numbers, at=at,
                        calendar=self.calendar,
                    )  # fmt: skip
                    for plan in plans:
                        if isinstance(plan, Done):
                            done.append(plan)
                            continue
                        with rows_fault():
                            outcome = self._batch_one(batch, plan, in_chunk, blobs.get(plan.seq))
                        if isinstance(outcome, Defer):
                            waiting.append(plan.seq)
                            continue
                        done.append(outcome)
                    with rows_fault():
                        batch.flush()  # the effects with their audit entries and arrivals
                    self._record(session, table, done, advanced(candidate, done, waiting, at))
            except IntegrityError:
                if attempt == 2:
                    raise
                logger.info(
                    "source %s: a concurrent write touched this batch; running it again", self.source.name
                )
                continue
            except RowFault as fault:  # one row's failure: find it, reject it, apply the rest
                self._split_batch(plans, in_chunk, fault.error, files)
                return
            self._ensure_files(blobs, files)
            self._committed(table, done, candidate)
            self.stats.deferred += len(waiting)
            return

    def _store_files(self, files: Mapping[int, Sealed]) -> dict[int, BlobRef]:
        """The sealed files of a run, durable in the blob store before any of their rows commits: those a pool
        worker stored already, the others here (one flush)."""
        blobs = {seq: f.blob for seq, f in files.items() if f.blob is not None}
        if todo := [seq for seq, f in files.items() if f.blob is None]:
            refs = self.repo.blobs.put_many([(files[s].data or b"", files[s].media_type) for s in todo])
            blobs.update(zip(todo, refs, strict=True))
        return blobs

    def _ensure_files(self, blobs: Mapping[int, BlobRef], files: Mapping[int, Sealed]) -> None:
        """After the commit, as the use cases do: a blob an orphan sweep removed meanwhile is put back."""
        for seq, blob in blobs.items():
            if not self.repo.blobs.exists(blob.key):
                data = files[seq].data
                if data is None:  # stored by the pool, bytes let go: a sweep removed a blob only just stored
                    raise OSError(
                        f"blob {blob.key} of row {seq} vanished from the blob store after its commit"
                    )
                self.repo.blobs.put(data, media_type=files[seq].media_type)

    def _split_batch(
        self, plans: Sequence[CertificatePlan | Done], in_chunk: set[int], exc: Exception,
        files: Mapping[int, Sealed],
    ) -> None:  # fmt: skip
        """A batch failed on a row: run its rows one per batch; the failing one alone is rejected."""
        if len(plans) == 1:
            plan = plans[0]
            logger.warning("source %s: certificate row %d failed: %r", self.source.name, plan.seq, exc)
            self._commit_alone(
                CERTIFICATE_TABLE.name, [Done(plan.seq, REJECTED, problems=unexpected(exc, "data"))]
            )
            return
        for plan in plans:
            self._certificate_batch(
                [plan], in_chunk, {plan.seq: files[plan.seq]} if plan.seq in files else None
            )

    def _batch_one(
        self, batch: CertificateBatch, plan: CertificatePlan, in_chunk: set[int], blob: BlobRef | None
    ) -> Done | Defer:
        try:
            if plan.version == 1:
                identifier, created = batch.issue(plan.prepared, call=plan.call, blob=blob)
            else:
                identifier, created = batch.change(
                    plan.prepared, reason=self._change_reason(plan), call=plan.call, blob=blob
                )
        except CertificateNotFoundError:
            return self._missing_predecessor(plan, in_chunk)
        except DuplicateConflictError as exc:
            return Done(plan.seq, REJECTED, problems=[("version", str(exc))])
        except (NotLatestVersionError, TransitionError) as exc:
            return Done(plan.seq, REJECTED, problems=[("version", str(exc))])
        except RecordError as exc:
            return Done(plan.seq, REJECTED, problems=prefixed("data", exc.problems))
        return Done(plan.seq, ACCEPTED, identifier, created=created)

    def _change_reason(self, plan: CertificatePlan) -> str:
        return f"变更 (exchange {self.source.name} #{plan.seq})"

    def _certificate_alone(self, plan: CertificatePlan, in_chunk: set[int]) -> None:
        """One version with a file: ``certificates.issue``/``change`` for the row's call, exactly like an API push
        (authorised, arrival and audit entry in its transaction); the ledger, cursor and lease written by the
        ``within`` hook in that same transaction."""
        table = CERTIFICATE_TABLE.name
        candidate = self.cursors[table].copy()
        candidate.settle(plan.seq)
        committed: list[str] = []

        def within(session: Session) -> None:
            identifier = (
                written_version(session).identifier if plan.renewal else str(plan.prepared.identifier)
            )
            try:
                self._record(session, table, [Done(plan.seq, ACCEPTED, identifier)], candidate)
            except NOT_THE_ROWS_FAULT:
                raise
            except Exception as exc:  # the ledger, cursor or lease: never the row's fault
                raise Infrastructure(exc) from exc
            on_commit(session, lambda: committed.append(identifier))

        file_options: dict[str, Any] = (
            {"file": bytes(plan.file), "file_media_type": plan.file_media_type}
            if plan.file is not None
            else {"file_maker": self.file_maker if self.file_maker is not None else NO_FILE}
        )
        outcome: Done | Defer
        try:
            identical = None if plan.renewal else certificates.find_identical(self.repo, plan.prepared)
            if identical is not None:  # a repeat: accepted, nothing to apply (and nothing to audit)
                outcome = Done(plan.seq, ACCEPTED, identical.identifier)
            elif plan.renewal:
                outcome = self._renew_alone(plan, within, file_options, in_chunk)
            elif plan.version == 1:
                result = certificates.issue(
                    self.app, plan.call, plan.draft, within=within, catalogue_version=plan.prepared.entry.version,
                    **file_options,
                )  # fmt: skip
                outcome = Done(plan.seq, ACCEPTED, result.certificate.identifier)
            else:
                outcome = self._change_alone(plan, within, file_options, in_chunk)
        except DuplicateConflictError as exc:
            outcome = Done(plan.seq, REJECTED, problems=[("version", str(exc))])
        except (NotLatestVersionError, TransitionError) as exc:
            outcome = Done(plan.seq, REJECTED, problems=[("version", str(exc))])
        except RecordError as exc:
            outcome = Done(plan.seq, REJECTED, problems=prefixed("data", exc.problems))
        except (
            LayoutError
        ) as exc:  # the face cannot be laid out (too long, a character no font has): the row's
            outcome = Done(plan.seq, REJECTED, problems=unexpected(exc, "data.face"))
        except AccessDeniedError as exc:  # the issuer rules, checked again by the use case (planned already)
            outcome = Done(plan.seq, REJECTED, problems=[("data.catalogue", str(exc))])
        except NOT_THE_ROWS_FAULT:
            raise
        except Exception as exc:
            if committed:
                raise  # after the commit: not the row's doing
            logger.warning("source %s: certificate row %d failed: %r", self.source.name, plan.seq, exc)
            outcome = Done(plan.seq, REJECTED, problems=unexpected(exc, "data"))
        if committed:  # the within hook's transaction committed: ledger and cursor are in
            done = Done(plan.seq, ACCEPTED, committed[0])
            self._committed(table, [done], candidate)
        elif isinstance(outcome, Defer):
            self._commit_alone(table, [], waiting=[plan.seq])
            self.stats.deferred += 1
        else:  # refused, or an identical version already stored: nothing was written for this row
            self._commit_alone(table, [outcome])

    def _renew_alone(
        self, plan: CertificatePlan, within: certificates.Within, file_options: Mapping[str, Any],
        in_chunk: set[int],
    ) -> Done | Defer:  # fmt: skip
        """延续 (operation ``renew``): version N renews version N-1 — the same content, a later end of validity. A
        version N already stored with that content and end of validity is this renewal delivered again (a repeat:
        accepted, nothing applied), as an identical issue or change is."""
        previous = certificates.stored_version(
            self.repo, self.source.issuer_code, plan.number, plan.version - 1
        )
        if previous is None:
            return self._missing_predecessor(plan, in_chunk)

        def content(catalogue: str, face: Any, holder: Any) -> tuple[tuple[str, Any], ...]:
            """What a renewal keeps, each with the field a difference is reported under."""
            return ("data.catalogue", catalogue), ("data.face", dict(face)), ("data.holder", holder)

        kept = content(previous.catalogue_code, previous.face, previous.holder)
        renewed = content(plan.prepared.entry.code, plan.draft.face, plan.draft.holder)
        differs = [name for (name, old), (_, new) in zip(kept, renewed, strict=True) if old != new]
        if differs:
            return Done(
                plan.seq, REJECTED,
                problems=[(name, "a renewal (延续) keeps the content and extends the validity; deliver other "
                                 "content as a change (变更: operation empty or change)") for name in differs],
            )  # fmt: skip
        stored = certificates.stored_version(self.repo, self.source.issuer_code, plan.number, plan.version)
        if (
            stored is not None
            and stored.valid_until == plan.prepared.valid_until
            and content(stored.catalogue_code, stored.face, stored.holder) == kept
        ):
            return Done(plan.seq, ACCEPTED, stored.identifier)
        new = certificates.renew(
            self.app, plan.call, previous.identifier, valid_until=plan.prepared.valid_until,
            reason=f"延续 (exchange {self.source.name} #{plan.seq})", within=within, **file_options,
        )  # fmt: skip
        return Done(plan.seq, ACCEPTED, new.identifier)

    def _change_alone(
        self, plan: CertificatePlan, within: certificates.Within, file_options: Mapping[str, Any],
        in_chunk: set[int],
    ) -> Done | Defer:  # fmt: skip
        previous = certificates.stored_version(
            self.repo, self.source.issuer_code, plan.number, plan.version - 1
        )
        if previous is None:
            return self._missing_predecessor(plan, in_chunk)
        if previous.catalogue_code != plan.prepared.entry.code:
            return Done(
                plan.seq, REJECTED,
                problems=[("data.catalogue", f"a new version keeps the catalogue type {previous.catalogue_code}")],
            )  # fmt: skip
        new = certificates.change(
            self.app, plan.call, previous.identifier, plan.draft, reason=self._change_reason(plan),
            within=within, **file_options,
        )  # fmt: skip
        return Done(plan.seq, ACCEPTED, new.identifier)
