"""The ledger's "receipt written" marks: set in the next transaction that records ledger rows (no commit of its
own per batch of receipts) and at the end of the cycle; marks lost to a crash mean the next cycle writes those
receipts again, with the same content."""

from __future__ import annotations

import pytest
from sqlalchemy import event, select

from certstore.app import Application
from certstore.exchange.core import CycleCore
from certstore.exchange.cursor import ACCEPTED, mark_receipts_written
from certstore.exchange.cycle import run_cycle
from certstore.exchange.frontend import FrontendWriter
from certstore.exchange.worker import ExchangeSource
from certstore.store.models import ExchangeAppliedRow
from certstore.store.repository import Repository
from tests.exchange.support import ISSUER, document, number


def _unmarked(repo: Repository, source: str) -> list[int]:
    with repo.db.session(readonly=True) as session:
        return list(
            session.scalars(
                select(ExchangeAppliedRow.seq).where(
                    ExchangeAppliedRow.source == source, ExchangeAppliedRow.receipt_written.is_(False)
                )
            )
        )


def _deliver(writer: FrontendWriter, first: int, count: int) -> None:
    for i in range(first, first + count):
        writer.certificate(ISSUER, number(i), 1, document(i))


def test_every_receipt_is_marked_by_the_end_of_the_cycle_with_one_commit_per_batch(
    app: Application, repo: Repository, source: ExchangeSource
) -> None:
    with FrontendWriter(source.url) as writer:
        _deliver(writer, 0, 1)
        assert run_cycle(app, source, file_maker=None, worker="w").accepted == 1  # cursors and lease exist
        _deliver(writer, 1, 12)
    writes: list[str] = []  # statements that write, since the last commit
    commits: list[list[str]] = []  # the writes of each transaction that wrote

    def executed(conn: object, cursor: object, statement: str, *rest: object) -> None:
        if statement.lstrip().split(" ", 1)[0].upper() in ("INSERT", "UPDATE", "DELETE"):
            writes.append(statement.split("(", 1)[0][:40])

    def committed(conn: object) -> None:
        if writes:
            commits.append(list(writes))
        writes.clear()

    event.listen(repo.db.engine, "before_cursor_execute", executed)
    event.listen(repo.db.engine, "commit", committed)
    stats = run_cycle(app, source, file_maker=None, worker="w", batch_size=4)
    assert (stats.accepted, stats.receipts) == (12, 12)
    assert _unmarked(repo, source.name) == []
    with FrontendWriter(source.url, create=False) as writer:
        assert len(writer.receipts()) == 13
    # taking and leaving the lease, the cycle's row (start, end), one per batch of 4 (the batch before's marks
    # with it) and the last batch's marks: not a second transaction per batch
    marks_alone = [c for c in commits if all(w.startswith("UPDATE exchange_applied") for w in c)]
    assert len(commits) == 2 + 2 + 3 + 1 and len(marks_alone) == 1, commits


def test_receipts_whose_marks_were_lost_are_written_again(
    app: Application, repo: Repository, source: ExchangeSource, monkeypatch: pytest.MonkeyPatch
) -> None:
    with FrontendWriter(source.url) as writer:
        _deliver(writer, 0, 6)
    with monkeypatch.context() as patch:  # the process dies before the last marks commit
        patch.setattr(CycleCore, "mark_receipts_sent", lambda self: None)
        patch.setattr(CycleCore, "_mark_sent", lambda self, session: None)
        assert run_cycle(app, source, file_maker=None, worker="w", batch_size=4).accepted == 6
    assert sorted(_unmarked(repo, source.name)) == [1, 2, 3, 4, 5, 6]
    with FrontendWriter(source.url, create=False) as writer:
        before = {(r.seq, r.status, r.identifier) for r in writer.receipts()}
        writer.certificate(ISSUER, number(6), 1, document(6))
    stats = run_cycle(app, source, file_maker=None, worker="w", batch_size=4)
    assert (stats.seen, stats.accepted, stats.receipts) == (1, 1, 7)  # 6 written again, 1 new
    assert _unmarked(repo, source.name) == []
    with FrontendWriter(source.url, create=False) as writer:
        after = {(r.seq, r.status, r.identifier) for r in writer.receipts()}
    assert before < after and len(after) == 7


def test_marks_set_exactly_the_receipts_written(repo: Repository) -> None:
    """Runs of consecutive numbers are marked by range: the numbers between two runs, the same numbers of
    another table or source stay unmarked."""
    with repo.db.session() as session:
        session.add_all(
            ExchangeAppliedRow(
                source=source,
                table_name=table,
                seq=seq,
                outcome=ACCEPTED,
                identifier=None,
                problems=None,
                receipt_written=False,
                applied_at=repo.now(),
            )
            for source in ("a", "b")
            for table in ("fe_certificates", "fe_status_changes")
            for seq in range(1, 11)
        )
    with repo.db.session() as session:
        mark_receipts_written(session, "a", {"fe_certificates": {9, 2, 3, 4, 7}, "fe_status_changes": {10}})
    with repo.db.session(readonly=True) as session:
        query = select(ExchangeAppliedRow.source, ExchangeAppliedRow.table_name, ExchangeAppliedRow.seq)
        marked = {
            tuple(row) for row in session.execute(query.where(ExchangeAppliedRow.receipt_written.is_(True)))
        }
    assert marked == {("a", "fe_certificates", s) for s in (2, 3, 4, 7, 9)} | {("a", "fe_status_changes", 10)}
