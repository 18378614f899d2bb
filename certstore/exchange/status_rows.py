"""Status changes (挂起 / 恢复 / 吊销 / 注销 / 废止) from ``fe_status_changes`` (:class:`StatusRows`).

They are applied in batches (:class:`~certstore.services.certificate_batch.CertificateBatch`: each change with
its audit entry, the ledger rows, cursor and lease in one transaction), twice per cycle: first those of
certificates already stored, BEFORE the cycle's certificate backlog — a revocation never waits behind sealing —
and again after the certificates, for a change whose certificate version arrived in this cycle (it waits, kept
in the gaps, until then). A batch that fails on one row is run again row by row: only that row is rejected.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy.exc import IntegrityError

from certstore.exchange.core import (
    NOT_THE_ROWS_FAULT,
    RowFault,
    advanced,
    rows_fault,
    unexpected,
)
from certstore.exchange.cursor import (
    ACCEPTED,
    REJECTED,
    Done,
)
from certstore.exchange.frontend import (
    STATUS_TABLE,
)
from certstore.exchange.plan import (
    ACTION_RESULT,
    Reject,
    StatusPlan,
)
from certstore.exchange.reading import FrontendReading
from certstore.lifecycle import TransitionError
from certstore.services.certificate_batch import CertificateBatch
from certstore.services.certificates import (
    CertificateNotFoundError,
)

if TYPE_CHECKING:
    pass

__all__ = ["StatusRows"]


class _Postponed(Exception):  # noqa: N818 - control flow, not an error
    """The first status pass stops: the rest waits for the pass after the certificates."""


class StatusRows(FrontendReading):
    """The status changes of a cycle (module docstring)."""

    def _apply_statuses(self, rows: Sequence[Any]) -> None:
        plans: list[StatusPlan | Done] = []
        if not rows:
            return
        for row in rows:
            try:
                plan = self.planner.status(STATUS_TABLE.name, row)
            except NOT_THE_ROWS_FAULT:
                raise
            except Exception as exc:
                plan = Reject(unexpected(exc, "$"))
            plans.append(
                Done(int(row.seq), REJECTED, problems=plan.problems) if isinstance(plan, Reject) else plan
            )
        numbers = [p.number for p in plans if isinstance(p, StatusPlan)]
        # A certificate version still waiting in the front-end comes first: the status waits for it.
        pending = self._pending_certificates(numbers, set()) if numbers else {}
        table = STATUS_TABLE.name
        if self.status_first and all(isinstance(p, StatusPlan) and p.number in pending for p in plans):
            raise _Postponed()  # nothing of this batch is for a certificate already settled: the second pass
        for attempt in (1, 2):
            candidate = self.cursors[table].copy()
            done: list[Done] = []
            waiting: list[int] = []
            try:
                with self.repo.db.session() as session:
                    at = self.repo.now()
                    batch = CertificateBatch(
                        self.repo, session, issuer_code=self.source.issuer_code, numbers=numbers, at=at,
                        calendar=self.calendar,
                    )  # fmt: skip
                    for plan in plans:
                        if isinstance(plan, Done):
                            done.append(plan)
                        elif plan.number in pending and (
                            self.status_first or plan.version is None or plan.version in pending[plan.number]
                        ):  # before the backlog: any version of it still waiting in the front-end comes first
                            waiting.append(plan.seq)
                        else:
                            with rows_fault():
                                done.append(self._act(batch, plan))
                    with rows_fault():
                        batch.flush()  # the status changes with their audit entries
                    self._record(session, table, done, advanced(candidate, done, waiting, at))
            except IntegrityError:
                if attempt == 2:
                    raise
                continue
            except RowFault as fault:  # one row's failure: find it, reject it, apply the rest
                if len(rows) == 1:
                    problems = unexpected(fault.error, "$")
                    self._commit_alone(table, [Done(int(rows[0].seq), REJECTED, problems=problems)])
                else:
                    for row in rows:
                        self._apply_statuses([row])
                return
            self._committed(table, done, candidate)
            self.stats.deferred += len(waiting)
            return

    def statuses_first(self) -> None:
        """The status changes of certificates already stored (nothing of theirs waiting in the front-end), applied
        before the cycle's certificate backlog — a revocation never waits behind sealing. The others wait (kept in
        the gaps) for the second pass after the certificates; a batch with nothing to apply now stops this pass
        without writing anything. Rows deferred here are counted once, by the second pass."""
        deferred = self.stats.deferred
        self.status_first = True
        try:
            self.process_table(STATUS_TABLE)
        except _Postponed:
            pass
        finally:
            self.status_first = False
            self.stats.deferred = deferred

    def _act(self, batch: CertificateBatch, plan: StatusPlan) -> Done:
        try:
            identifier = batch.act(plan.number, plan.version, plan.action, reason=plan.reason, call=plan.call)
            return Done(plan.seq, ACCEPTED, identifier)
        except CertificateNotFoundError as exc:
            # the certificate exists but not that version: the version is what is wrong
            field = (
                "version"
                if plan.version is not None and batch.version(plan.number, None) is not None
                else "certificate_number"
            )
            return Done(plan.seq, REJECTED, problems=[(field, str(exc))])
        except TransitionError as exc:
            found = batch.version(plan.number, plan.version)
            if found is not None and found[1] is ACTION_RESULT[plan.action]:
                return Done(plan.seq, ACCEPTED, found[0])  # already in effect: a repeat
            return Done(plan.seq, REJECTED, problems=[("action", str(exc))])
        except ValueError as exc:
            return Done(plan.seq, REJECTED, problems=[("reason", str(exc))])
