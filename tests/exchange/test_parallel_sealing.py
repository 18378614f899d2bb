"""Issue 18 item 5: status changes before the sealing backlog, sealing on a pool of processes with commits in
``seq`` order, and the agency's ``file`` column read one row at a time."""

from __future__ import annotations

import os
import re
from typing import Any

import pytest
from sqlalchemy import event, select

from certstore.app import Application
from certstore.exchange.cycle import run_cycle
from certstore.exchange.frontend import CERTIFICATE_TABLE, STATUS_TABLE, FrontendWriter, frontend_engine
from certstore.exchange.sealing import SealingPool, fixed_sealer
from certstore.exchange.worker import ExchangeSource
from certstore.records import PreparedVersion
from certstore.services.certificate_batch import CertificateBatch
from certstore.store.blobs.files import FileBlobStore
from certstore.store.models import CertificateRow, ExchangeAppliedRow
from certstore.store.repository import Repository
from tests.exchange.support import ISSUER, assert_repository_equals, document, number


def pid_file(prepared: PreparedVersion) -> tuple[bytes, str]:
    """A stand-in sealed file: the version's identifier and the process that sealed it."""
    return f"file of {prepared.identifier} sealed by {os.getpid()}\n".encode(), "application/octet-stream"


def _ledger(repo: Repository, source: str) -> list[tuple[int, str, int, str]]:
    """(id, table, seq, outcome) in commit order."""
    with repo.db.session(readonly=True) as session:
        rows = session.execute(
            select(
                ExchangeAppliedRow.id, ExchangeAppliedRow.table_name, ExchangeAppliedRow.seq,
                ExchangeAppliedRow.outcome,
            ).where(ExchangeAppliedRow.source == source).order_by(ExchangeAppliedRow.id)
        ).all()  # fmt: skip
    return [(int(i), t, int(s), o) for i, t, s, o in rows]


def test_a_status_change_behind_a_sealing_backlog_is_applied_first(
    app: Application, repo: Repository, source: ExchangeSource
) -> None:
    """A revocation of a stored certificate written after a backlog of versions to seal commits before any of
    them; a status change of a version in that backlog waits for it and is applied in the same cycle."""
    with FrontendWriter(source.url) as writer:
        writer.certificate(ISSUER, number(0), 1, document(0))
        assert run_cycle(app, source, file_maker=pid_file, worker="w").error is None
        backlog = [writer.certificate(ISSUER, number(i), 1, document(i)) for i in range(1, 13)]
        revoke = writer.status_change(ISSUER, number(0), "revoke", "吊销: 违法")
        suspend_new = writer.status_change(ISSUER, number(5), "suspend", "挂起: 核查")
        stats = run_cycle(app, source, file_maker=pid_file, worker="w", batch_size=4)
        assert stats.error is None and stats.seen == 14 and stats.accepted == 14
        receipts = {(r.table_name, r.seq): r.status for r in writer.receipts()}
    ledger = _ledger(repo, source.name)
    order = [(t, s) for _i, t, s, _o in ledger]
    first_backlog = order.index((CERTIFICATE_TABLE.name, backlog[0]))
    assert order.index((STATUS_TABLE.name, revoke)) < first_backlog
    assert order.index((STATUS_TABLE.name, suspend_new)) > order.index((CERTIFICATE_TABLE.name, backlog[4]))
    assert [s for t, s in order if t == CERTIFICATE_TABLE.name][1:] == backlog  # seq order
    assert all(receipts[(STATUS_TABLE.name, s)] == "accepted" for s in (revoke, suspend_new))
    with repo.db.session(readonly=True) as session:
        status = dict(session.execute(select(CertificateRow.certificate_number, CertificateRow.status)).all())
    assert status[number(0)] == "revoked" and status[number(5)] == "suspended"


def _deliver(writer: FrontendWriter) -> None:
    """Versions 1 and 2 of 16 certificates (interleaved), a repeat, a bad row, and status changes."""
    for i in range(16):
        writer.certificate(ISSUER, number(i), 1, document(i))
        if i % 2:
            writer.certificate(ISSUER, number(i - 1), 2, document(i - 1, 2))
    writer.certificate(ISSUER, number(3), 1, document(3))  # a repeat
    writer.status_change(ISSUER, number(2), "suspend", "挂起")
    writer.status_change(ISSUER, number(3), "revoke", "吊销")


def test_the_pool_gives_the_results_of_one_process_in_seq_order(
    app: Application, repo: Repository, source: ExchangeSource, tmp_path: Any
) -> None:
    """With two sealing processes the repository, the receipts and the ledger equal a run in one process:
    every row receipted exactly once, certificate rows committed in seq order, the files the workers sealed and
    stored in the repository's blob store."""
    with FrontendWriter(source.url) as writer:
        _deliver(writer)
    with SealingPool(fixed_sealer(pid_file), workers=2, blobs=repo.blobs) as pool:
        stats = run_cycle(app, source, file_maker=pid_file, worker="w", batch_size=10, sealer=pool)
        assert stats.error is None
        # every new version went to the pool, every file was used; the repeat was not sealed (no orphan file)
        assert (pool.submitted, pool.used, pool.resealed) == (24, 24, 0)
    assert (stats.seen, stats.accepted, stats.rejected) == (27, 27, 0)
    assert_repository_equals(repo, source.url, source.name)
    ledger = _ledger(repo, source.name)
    keys = [(t, s) for _i, t, s, _o in ledger]
    assert len(keys) == len(set(keys)) == 27
    certs = [s for t, s in keys if t == CERTIFICATE_TABLE.name]
    assert certs == sorted(certs)
    with FrontendWriter(source.url, create=False) as writer:
        receipts = writer.receipts()
    assert len(receipts) == 27 and {r.status for r in receipts} == {"accepted"}
    with repo.db.session(readonly=True) as session:
        keys_ = session.scalars(select(CertificateRow.file_key)).all()
    sealers = {repo.blobs.get(k).decode().split(" sealed by ")[1].strip() for k in keys_}
    assert str(os.getpid()) not in sealers and len(sealers) >= 1  # sealed in the workers

    # the same delivery in one process, into a second source of the same repository's twin front-end
    other = ExchangeSource("zz-one-process", f"sqlite:///{tmp_path / 'other.db'}", ISSUER)
    with FrontendWriter(other.url) as writer:
        _deliver(writer)
    single = run_cycle(app, other, file_maker=pid_file, worker="w", batch_size=10)
    assert (single.seen, single.rejected, single.error) == (stats.seen, stats.rejected, None)
    with FrontendWriter(other.url, create=False) as writer:  # every version found identical to the pool's
        alone = writer.receipts()
    assert [(r.table_name, r.seq, r.status, r.identifier) for r in alone] == [
        (r.table_name, r.seq, r.status, r.identifier) for r in receipts
    ]


def test_the_file_column_is_read_one_row_at_a_time(
    app: Application, repo: Repository, source: ExchangeSource
) -> None:
    """Batches are read without the ``file`` column; a row that carries a file has it read alone (so a batch
    of 1 MiB agency files never sits in memory at once) and is still checked (an unreadable file: rejected)."""
    with FrontendWriter(source.url) as writer:
        plain = [writer.certificate(ISSUER, number(i), 1, document(i)) for i in range(3)]
        filed = [
            writer.certificate(ISSUER, number(i), 1, document(i), file=b"x" * (1 << 20),
                               file_media_type="application/pdf")
            for i in range(3, 6)
        ]  # fmt: skip
    engine = frontend_engine(source.url)
    statements: list[str] = []
    event.listen(engine, "before_cursor_execute", lambda *a: statements.append(str(a[2])))
    try:
        stats = run_cycle(app, source, file_maker=None, worker="w", frontend=engine)
    finally:
        engine.dispose()
    assert stats.error is None and (stats.accepted, stats.rejected) == (3, 3)
    reads = [
        s for s in statements
        if "FROM fe_certificates" in s and re.search(r"fe_certificates\.file(?!_| IS)", s.split("FROM")[0])
    ]  # fmt: skip
    assert len(reads) == len(filed)  # one read of the file per row that has one
    assert all("fe_certificates.seq = " in s for s in reads)
    with FrontendWriter(source.url, create=False) as writer:
        assert all(writer.receipt("fe_certificates", s).status == "accepted" for s in plain)
        problems = [writer.receipt("fe_certificates", s).problems for s in filed]
    assert all(p and p[0][0] == "file" for p in problems)


def test_sealed_versions_commit_a_run_per_transaction_and_a_bad_row_alone(
    app: Application, repo: Repository, source: ExchangeSource, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Versions sealed ahead commit as one run (one transaction with their ledger rows and cursor, files stored
    first); when one row of the run fails as it is written, the run is split into one transaction per row: only
    that row is rejected, the others are applied in seq order with their files."""
    ledger_writes: list[str] = []  # INSERTs into the ledger: one per transaction that applies rows

    def on_execute(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.startswith("INSERT INTO exchange_applied"):
            ledger_writes.append(statement)

    event.listen(repo.db.engine, "before_cursor_execute", on_execute)
    with FrontendWriter(source.url) as writer:
        first = [writer.certificate(ISSUER, number(i), 1, document(i)) for i in range(6)]
    stats = run_cycle(app, source, file_maker=pid_file, worker="w")
    assert stats.error is None and stats.accepted == 6
    assert len(ledger_writes) == 1  # the six versions: one run, one transaction
    assert [s for _i, _t, s, _o in _ledger(repo, source.name)] == first

    original = CertificateBatch.issue

    def failing(self: CertificateBatch, prepared: PreparedVersion, **kwargs: Any) -> tuple[str, bool]:
        if prepared.draft.certificate_number == number(9):
            raise RuntimeError("disk quota of the row's own making")
        return original(self, prepared, **kwargs)

    monkeypatch.setattr(CertificateBatch, "issue", failing)
    with FrontendWriter(source.url, create=False) as writer:
        second = [writer.certificate(ISSUER, number(i), 1, document(i)) for i in range(6, 12)]
    del ledger_writes[:]
    stats = run_cycle(app, source, file_maker=pid_file, worker="w")
    assert (stats.error, stats.accepted, stats.rejected) == (None, 5, 1)
    assert len(ledger_writes) == 6  # the run failed before its ledger write (rolled back), then one per row
    assert [s for _i, t, s, _o in _ledger(repo, source.name) if t == CERTIFICATE_TABLE.name] == first + second
    with FrontendWriter(source.url, create=False) as writer:
        bad = writer.receipt(CERTIFICATE_TABLE.name, second[3])
    assert bad is not None and bad.status == "rejected" and "disk quota" in (bad.message or "")
    with repo.db.session(readonly=True) as session:
        keys = session.scalars(select(CertificateRow.file_key)).all()
    assert len(keys) == 11 and all(k is not None and repo.blobs.exists(k) for k in keys)


def picky_file(prepared: PreparedVersion) -> tuple[bytes, str]:
    """:func:`pid_file`, except for certificate 4, which cannot be sealed (as a character no font has)."""
    if prepared.draft.certificate_number == number(4):
        raise ValueError("no font has the character U+2A6D6")
    return pid_file(prepared)


def test_workers_store_their_files_and_a_failing_version_fails_alone(
    app: Application, repo: Repository, source: ExchangeSource
) -> None:
    """When the factory opens the repository's store, the workers store the files they seal (a task of several
    versions with one flush) and send back only where they are; a version that fails in a task fails alone: it
    is sealed again in the cycle's process (and rejected there, for its own reason), the others of its task are
    used as the workers stored them."""
    if not isinstance(repo.blobs, FileBlobStore):
        pytest.skip("the workers open the store themselves here: a picklable file store")
    with FrontendWriter(source.url) as writer:
        rows = [writer.certificate(ISSUER, number(i), 1, document(i)) for i in range(10)]
    with SealingPool(fixed_sealer(picky_file, blobs=repo.blobs), workers=2, blobs=repo.blobs) as pool:
        assert pool.workers_store
        stats = run_cycle(app, source, file_maker=picky_file, worker="w", sealer=pool)
        assert (pool.submitted, pool.used, pool.resealed) == (10, 9, 1)
    assert (stats.error, stats.accepted, stats.rejected) == (None, 9, 1)
    with FrontendWriter(source.url, create=False) as writer:
        statuses = [writer.receipt(CERTIFICATE_TABLE.name, s).status for s in rows]
    assert statuses == ["accepted"] * 4 + ["rejected"] + ["accepted"] * 5
    with repo.db.session(readonly=True) as session:
        keys = session.scalars(select(CertificateRow.file_key)).all()
    assert len(keys) == 9
    sealers = {repo.blobs.get(k).decode().split(" sealed by ")[1].strip() for k in keys}
    assert str(os.getpid()) not in sealers  # sealed, and stored, by the workers


def fresh_file(prepared: PreparedVersion) -> tuple[bytes, str]:
    """A stand-in sealed file that differs each time it is made, as a real one does (signing time, nonce)."""
    return (
        f"file of {prepared.identifier}, nonce {os.urandom(8).hex()}\n".encode(),
        "application/octet-stream",
    )


def test_a_repeat_is_never_sealed(app: Application, repo: Repository, source: ExchangeSource) -> None:
    """A row repeating a version already stored, or repeating an earlier row of the same cycle, is accepted as a
    repeat without a file being made for it: the blob store holds one file per stored version, no orphan."""
    with FrontendWriter(source.url) as writer:
        writer.certificate(ISSUER, number(0), 1, document(0))
        writer.certificate(ISSUER, number(0), 1, document(0))  # the same cycle
    assert run_cycle(app, source, file_maker=fresh_file, worker="w").accepted == 2
    with FrontendWriter(source.url, create=False) as writer:
        writer.certificate(ISSUER, number(0), 1, document(0))  # a later cycle
        writer.certificate(ISSUER, number(1), 1, document(1))
    stats = run_cycle(app, source, file_maker=fresh_file, worker="w")
    assert (stats.error, stats.accepted, stats.rejected) == (None, 2, 0)
    with repo.db.session(readonly=True) as session:
        keys = set(session.scalars(select(CertificateRow.file_key)).all())
    assert len(keys) == 2 and set(repo.blobs.iter_keys()) == keys
