"""The exchange task (certstore.exchange.worker): one cycle end to end with an independent writer process,
receipts, poison rows, idempotent re-delivery, deferral, gaps, out-of-order commits on a PostgreSQL front-end,
leases, exactly-once under injected failures, observability. Runs with the repository on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import delete, func, select

from certstore.app import Application
from certstore.exchange import cycle as cycle_module
from certstore.exchange import frontend as frontend_module
from certstore.exchange import worker as worker_module
from certstore.exchange.cycle import Cycle
from certstore.exchange.frontend import CERTIFICATE_TABLE, FrontendWriter, frontend_engine, init_frontend
from certstore.exchange.lease import SourceLease
from certstore.exchange.worker import ExchangeSource, ExchangeWorker, LeaseHeldError, run_cycle
from certstore.lifecycle import Status
from certstore.services import certificates
from certstore.services.catalogue import list_submissions
from certstore.services.exchange_metrics import exchange_status, metrics_text
from certstore.store.models import (
    ArrivalRow,
    CertificateEventRow,
    CertificateRow,
    ExchangeAppliedRow,
    ExchangeCursorRow,
)
from certstore.store.repository import Repository
from tests.exchange.support import (
    CATALOGUE,
    ISSUER,
    OTHER_CATALOGUE,
    Clock,
    assert_repository_equals,
    document,
    exchange_audit_events,
    number,
)

ROOT = Path(__file__).resolve().parents[2]


def _cycle(app: Application, source: ExchangeSource, **options: object) -> worker_module.CycleStats:
    options.setdefault("file_maker", None)
    options.setdefault("worker", "test-worker")
    stats = run_cycle(app, source, **options)  # type: ignore[arg-type]
    assert stats.error is None, stats.error
    return stats


def test_one_cycle_from_an_independent_writer(
    app: Application, repo: Repository, source: ExchangeSource
) -> None:
    """Rows written by another process appear after one cycle; receipts come back (accepted with the
    identifier, rejected with field-level reasons)."""
    out = subprocess.run(
        [sys.executable, "-m", "tests.exchange.fe_writer", source.url, "integration"],
        cwd=ROOT, capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    seqs = json.loads(out.stdout.strip().splitlines()[-1])
    stats = _cycle(app, source)
    assert (stats.seen, stats.accepted, stats.rejected) == (10, 5, 5)
    assert stats.lag_seconds == 0.0

    with FrontendWriter(source.url, create=False) as writer:
        receipts = {(r.table_name, r.seq): r for r in writer.receipts()}
    cert = {
        name: receipts[("fe_certificates", seq)]
        for name, seq in seqs.items()
        if name not in ("suspend", "unknown")
    }
    v1, v2 = cert["v1"], cert["v2"]
    assert v1.accepted and v2.accepted and cert["second"].accepted
    assert certificates.get(repo, v1.identifier).stored_status is Status.SUPERSEDED
    assert certificates.get(repo, v2.identifier).superseded_by is None
    assert certificates.get(repo, v2.identifier).metadata["KZ_note"] == "version 2"
    # idempotent re-delivery: the same version again is accepted with the same identifier, stored once
    assert cert["repeat"].accepted and cert["repeat"].identifier == cert["second"].identifier
    # poison rows, each with the field that is wrong
    assert cert["bad_json"].status == "rejected" and cert["bad_json"].problems[0][0] == "data"
    assert tuple({p for p, _ in cert["bad_holder"].problems}) == ("data.holder.id_number",)
    assert cert["other_type"].problems[0][0] == "data.catalogue"
    assert "agencies issue only their own catalogue types" in cert["other_type"].problems[0][1]
    assert {p for p, _ in cert["other_issuer"].problems} >= {"issuer_code"}
    suspend = receipts[("fe_status_changes", seqs["suspend"])]
    assert suspend.accepted and suspend.identifier == cert["second"].identifier
    assert certificates.get(repo, suspend.identifier).stored_status is Status.SUSPENDED
    unknown = receipts[("fe_status_changes", seqs["unknown"])]
    assert unknown.status == "rejected" and unknown.problems[0][0] == "certificate_number"

    with repo.db.session() as session:
        assert session.scalar(select(func.count()).select_from(CertificateRow)) == 3  # v1, v2, second
        arrivals = {a.identifier: a for a in session.scalars(select(ArrivalRow))}
        unsent = session.scalar(select(func.count()).where(ExchangeAppliedRow.receipt_written.is_(False)))
    assert set(arrivals) == {v1.identifier, v2.identifier, cert["second"].identifier}
    assert arrivals[cert["second"].identifier].channel == "offline"
    assert {a.source for a in arrivals.values()} == {source.name}
    assert unsent == 0

    # nothing new: the next cycle reads nothing and changes nothing
    again = _cycle(app, source)
    assert (again.seen, again.accepted, again.rejected) == (0, 0, 0)


def test_catalogue_rows_are_submitted_for_approval(
    app: Application, repo: Repository, source: ExchangeSource
) -> None:
    from certstore.catalogue.definitions import shipped_entries

    own = next(e for e in shipped_entries() if e.code == CATALOGUE).to_document()
    own = {**own, "version": own["version"] + 1, "name": own["name"]}
    foreign = next(e for e in shipped_entries() if e.issuer.credit_code != ISSUER).to_document()
    foreign = {**foreign, "version": foreign["version"] + 1}
    with FrontendWriter(source.url) as writer:
        ok = writer.catalogue_entry(own)
        denied = writer.catalogue_entry(foreign)
        broken = writer.catalogue_entry({"code": "nonsense"})
        _cycle(app, source)
        receipts = {r.seq: r for r in writer.receipts("fe_catalogue_entries")}
    assert receipts[ok].accepted and receipts[ok].identifier == f"{CATALOGUE}/v{own['version']}"
    assert (
        receipts[denied].status == "rejected"
        and receipts[denied].problems[0][0] == "document.issuer.credit_code"
    )
    assert receipts[broken].status == "rejected" and all(
        p.startswith("document") for p, _ in receipts[broken].problems
    )
    pending = [s for s in list_submissions(repo, status="pending")]
    assert [(s.entry.code, s.entry.version) for s in pending] == [(CATALOGUE, own["version"])]


def test_a_version_waits_for_its_predecessor(
    app: Application, repo: Repository, source: ExchangeSource
) -> None:
    """Version 2 written before version 1 (or a status before its certificate) is deferred, not rejected."""
    with FrontendWriter(source.url) as writer:
        v2 = writer.certificate(ISSUER, number(7), 2, document(7, 2))
        status = writer.status_change(ISSUER, number(7), "suspend", "核查", version=2)
        v1 = writer.certificate(ISSUER, number(7), 1, document(7, 1))
        orphan = writer.certificate(ISSUER, number(8), 2, document(8, 2))  # version 1 never comes
        first = _cycle(app, source)
        assert first.deferred == 2 and first.open_gaps == 2
        assert writer.receipt("fe_certificates", v1).accepted
        assert writer.receipt("fe_certificates", v2) is None
        assert writer.receipt("fe_certificates", orphan).status == "rejected"
        second = _cycle(app, source)
        assert (second.seen, second.accepted, second.deferred, second.open_gaps) == (2, 2, 0, 0)
        assert writer.receipt("fe_certificates", v2).accepted
        assert writer.receipt("fe_status_changes", status).accepted
    latest = certificates.stored_version(repo, ISSUER, number(7))
    assert latest is not None and latest.version == 2 and latest.stored_status is Status.SUSPENDED


def test_a_gap_is_waited_for_then_given_up(
    app: Application, repo: Repository, source: ExchangeSource, clock: Clock
) -> None:
    with FrontendWriter(source.url) as writer:
        seqs = [writer.certificate(ISSUER, number(i), 1, document(i)) for i in (10, 11, 12)]
        with writer.transaction() as conn:  # a write that is not visible yet (as if uncommitted)
            conn.execute(delete(CERTIFICATE_TABLE).where(CERTIFICATE_TABLE.c.seq == seqs[1]))
        first = _cycle(app, source, gap_grace=timedelta(minutes=10))
        assert (first.accepted, first.open_gaps) == (2, 1)
        with repo.db.session() as session:
            cursor = session.scalars(
                select(ExchangeCursorRow).where(ExchangeCursorRow.table_name == "fe_certificates")
            ).one()
            assert (cursor.watermark, cursor.applied_above, list(cursor.gaps)) == (
                seqs[0],
                [seqs[2]],
                [str(seqs[1])],
            )
        clock.advance(minutes=11)
        second = _cycle(app, source, gap_grace=timedelta(minutes=10))
        assert second.abandoned == 1 and second.open_gaps == 0
    with repo.db.session() as session:
        cursor = session.scalars(
            select(ExchangeCursorRow).where(ExchangeCursorRow.table_name == "fe_certificates")
        ).one()
        assert (cursor.watermark, cursor.applied_above, cursor.gaps) == (seqs[2], [], {})


@pytest.mark.postgres
def test_out_of_order_commits_on_a_postgres_frontend(
    app: Application, repo: Repository, postgres_server: object, tmp_path: Path
) -> None:
    """Two writers: the transaction holding the lower seq commits after the higher one was read. Nothing is
    skipped: the lower number is a gap until it commits."""
    name = postgres_server.create_database()  # type: ignore[attr-defined]
    url = postgres_server.url(name)  # type: ignore[attr-defined]
    try:
        source = ExchangeSource("pg-frontend", url, ISSUER)
        with FrontendWriter(url) as first, FrontendWriter(url, create=False) as second:
            with first.transaction() as slow:
                low = first.certificate(ISSUER, number(20), 1, document(20), conn=slow)
                high = second.certificate(ISSUER, number(21), 1, document(21))
                assert high > low
                stats = _cycle(app, source)
                assert (stats.accepted, stats.open_gaps) == (1, 1)
            stats = _cycle(app, source)
            assert (stats.seen, stats.accepted, stats.open_gaps) == (1, 1, 0)
            assert first.receipt("fe_certificates", low).accepted
            assert first.receipt("fe_certificates", high).accepted
    finally:
        postgres_server.drop_database(name)  # type: ignore[attr-defined]
    assert certificates.stored_version(repo, ISSUER, number(20)) is not None


def test_a_second_worker_is_refused_while_the_lease_is_held(
    app: Application, repo: Repository, source: ExchangeSource
) -> None:
    init_frontend(source.url)
    holder = SourceLease(repo, source.name, "worker-a", timedelta(minutes=1))
    holder.acquire()
    with pytest.raises(LeaseHeldError, match="worker-a"):
        run_cycle(app, source, file_maker=None, worker="worker-b")
    holder.release()
    _cycle(app, source, worker="worker-b")


def test_an_expired_lease_taken_over_fences_the_old_worker(
    app: Application, repo: Repository, source: ExchangeSource, clock: Clock
) -> None:
    with FrontendWriter(source.url) as writer:
        writer.certificate(ISSUER, number(30), 1, document(30))
    old = SourceLease(repo, source.name, "worker-a", timedelta(seconds=30))
    old.acquire()
    clock.advance(seconds=31)
    stats = _cycle(app, source, worker="worker-b")  # takes the expired lease
    assert stats.accepted == 1
    with repo.db.session() as session, pytest.raises(worker_module.LeaseLostError):
        old.fence(session)


def test_two_workers_at_once_never_double_apply(
    app: Application, repo: Repository, source: ExchangeSource
) -> None:
    """Two workers loop over the same source while rows arrive: every row is applied once."""
    stop = threading.Event()
    errors: list[BaseException] = []

    def loop(name: str) -> None:
        while not stop.is_set():
            try:
                run_cycle(app, source, file_maker=None, worker=name, batch_size=3)
            except LeaseHeldError:
                pass
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)
                return

    with FrontendWriter(source.url) as writer:
        threads = [threading.Thread(target=loop, args=(f"w{i}",)) for i in range(2)]
        for thread in threads:
            thread.start()
        for i in range(40):
            writer.certificate(ISSUER, number(100 + i), 1, document(100 + i))
            if i % 3 == 0:
                writer.status_change(ISSUER, number(100 + i), "suspend", "并发")
        stop.set()
        for thread in threads:
            thread.join(60)
    assert not errors, errors
    _cycle(app, source)  # whatever arrived after the last loop
    assert_repository_equals(repo, source.url, source.name)


def test_a_failure_before_commit_applies_nothing_and_the_retry_applies_once(
    app: Application, repo: Repository, source: ExchangeSource, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The ledger, cursor and effect are one transaction: failing inside it (here: the cursor write of the
    second batch) leaves the rows of that batch unapplied, and the next cycle applies them exactly once."""
    with FrontendWriter(source.url) as writer:
        for i in range(6):
            writer.certificate(ISSUER, number(40 + i), 1, document(40 + i))
        writer.status_change(ISSUER, number(40), "suspend", "检查")
    calls = {"n": 0}
    original = Cycle._record

    def failing(self, session, table, done, cursor):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("power cut")
        return original(self, session, table, done, cursor)

    monkeypatch.setattr(Cycle, "_record", failing)
    broken = run_cycle(app, source, file_maker=None, worker="w", batch_size=3)
    assert broken.error and "power cut" in broken.error and broken.accepted == 3
    monkeypatch.setattr(Cycle, "_record", original)
    with repo.db.session() as session:
        assert session.scalar(select(func.count()).select_from(CertificateRow)) == 3
        assert session.scalar(select(func.count()).select_from(ArrivalRow)) == 3
    assert len(exchange_audit_events(repo, source.name)) == 3  # the failed batch left no entry either
    _cycle(app, source, batch_size=3)
    assert_repository_equals(repo, source.url, source.name)
    events = exchange_audit_events(repo, source.name)
    assert len(events) == 7  # six issues and one suspension, once each
    assert len({e.request_id for e in events}) == 7


def test_receipts_lost_in_a_crash_are_sent_again(
    app: Application, repo: Repository, source: ExchangeSource, monkeypatch: pytest.MonkeyPatch
) -> None:
    with FrontendWriter(source.url) as writer:
        seq = writer.certificate(ISSUER, number(50), 1, document(50))

        def down(*args: object, **kwargs: object) -> None:
            raise OSError("front-end unreachable")

        monkeypatch.setattr(cycle_module, "write_receipts", down)
        broken = run_cycle(app, source, file_maker=None, worker="w")
        assert broken.error and broken.accepted == 1
        assert writer.receipt("fe_certificates", seq) is None
        monkeypatch.setattr(cycle_module, "write_receipts", frontend_module.write_receipts)
        stats = _cycle(app, source)
        assert stats.receipts == 1 and stats.seen == 0
        assert writer.receipt("fe_certificates", seq).accepted
        _cycle(app, source)  # re-sending is idempotent: nothing left to send
        assert len(writer.receipts()) == 1


def test_status_and_metrics(app: Application, repo: Repository, source: ExchangeSource) -> None:
    with FrontendWriter(source.url) as writer:
        writer.certificate(ISSUER, number(60), 1, document(60))
        writer.certificate(ISSUER, number(61), 1, "[]")
    ExchangeWorker(app, [source], file_maker=None, worker="status-test").run_once()
    [status] = exchange_status(repo)
    assert (status.source, status.last_seen, status.last_accepted, status.last_rejected) == (
        source.name,
        2,
        1,
        1,
    )
    assert (status.accepted_total, status.rejected_total, status.receipts_unsent) == (1, 1, 0)
    assert status.last_error is None and status.last_lag_seconds == 0.0
    assert {t.table: t.watermark for t in status.tables}["fe_certificates"] == 2
    text = metrics_text(repo).decode()
    assert f'certstore_exchange_rows_total{{outcome="accepted",source="{source.name}"}}' in text
    assert f'certstore_exchange_last_cycle_rows{{outcome="rejected",source="{source.name}"}} 1.0' in text
    assert f'certstore_exchange_lag_seconds{{source="{source.name}"}} 0.0' in text


def test_sealed_by_the_repository_and_by_the_agency(
    app: Application, repo: Repository, source: ExchangeSource, tmp_path: Path
) -> None:
    """With a file maker, a version is sealed like an API push (one transaction per version, via
    certificates.issue/change with the within hook). A file the agency sealed itself is verified and stored;
    a tampered one is rejected."""
    from certstore.keystore import KeyStore
    from certstore.packaging.layout import FaceData
    from certstore.records import draft_from_json, prepare_version
    from certstore.services.catalogue import get_entry
    from certstore.services.issuance import file_maker, make_ofd, sealing_key
    from certstore.services.keys import init_dev_keys
    from certstore.verify import verify_file

    store = KeyStore(tmp_path / "keys")
    init_dev_keys(store)
    key = sealing_key(store, issuer=ISSUER)
    trust = store.trust_store()
    entry = get_entry(repo, CATALOGUE)
    own_doc = document(71)
    prepared = prepare_version(
        entry, draft_from_json(own_doc), version=1, holder_key=repo.holder_key, serial_key=repo.serial_key
    )
    own_file = make_ofd(FaceData.from_prepared(prepared), key)
    with FrontendWriter(source.url) as writer:
        sealed_here = writer.certificate(ISSUER, number(70), 1, document(70))
        changed = writer.certificate(ISSUER, number(70), 2, document(70, 2))
        agency = writer.certificate(
            ISSUER, number(71), 1, own_doc, file=own_file, file_media_type="application/ofd"
        )
        tampered = writer.certificate(
            ISSUER,
            number(72),
            1,
            document(72),
            file=own_file[:-10] + b"0" * 10,
            file_media_type="application/ofd",
        )
        wrong = writer.certificate(
            ISSUER, number(73), 1, document(73), file=own_file, file_media_type="application/ofd"
        )
        _cycle(app, source, file_maker=file_maker(key), trust=trust)
        receipts = {r.seq: r for r in writer.receipts("fe_certificates")}
    for seq in (sealed_here, changed):
        cert = certificates.get(repo, receipts[seq].identifier)
        assert cert.file_key is not None
        report = verify_file(repo.blobs.get(cert.file_key), trust=trust)
        assert report.indication.value == "VALID" and report.certificate.identifier == cert.identifier
    stored = certificates.get(repo, receipts[agency].identifier)
    assert repo.blobs.get(stored.file_key) == own_file
    assert receipts[tampered].status == "rejected" and receipts[tampered].problems[0][0] == "file"
    assert receipts[wrong].status == "rejected" and "is for certificate" in receipts[wrong].problems[0][1]
    with repo.db.session() as session:
        assert session.scalar(select(func.count()).select_from(ArrivalRow)) == 3
        assert (
            session.scalar(select(func.count()).select_from(CertificateEventRow)) == 4
        )  # issue, change×2, issue


def test_frontend_engine_reads_any_url(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'fe.db'}"
    assert set(init_frontend(url)) == {
        "fe_catalogue_entries",
        "fe_certificates",
        "fe_status_changes",
        "fe_receipts",
    }
    assert init_frontend(url) == []
    engine = frontend_engine(url)
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    engine.dispose()


def test_rows_written_with_plain_sql(app: Application, repo: Repository, source: ExchangeSource) -> None:
    """An agency writing its SQLite front-end with its own tools: ISO 8601 times with an offset are read as
    such; a time that is not one rejects only that row."""
    init_frontend(source.url)
    engine = frontend_engine(source.url)
    insert_sql = (
        "INSERT INTO fe_certificates (issuer_code, certificate_number, version, data, channel, completed_at, "
        "written_at) VALUES (?, ?, 1, ?, 'offline', ?, '2026-11-26 10:00:00')"
    )
    with engine.begin() as conn:
        for i, completed in (
            (80, "2026-11-26T10:00:00+08:00"),
            (81, "yesterday"),
            (82, "2026-11-26 02:00:00Z"),
        ):
            conn.exec_driver_sql(insert_sql, (ISSUER, number(i), json.dumps(document(i)), completed))
    engine.dispose()
    _cycle(app, source)
    with FrontendWriter(source.url, create=False) as writer:
        receipts = writer.receipts()
    assert [r.status for r in receipts] == ["accepted", "rejected", "accepted"]
    assert receipts[1].problems == (("completed_at", "not an ISO 8601 time: 'yesterday'"),)
    with repo.db.session() as session:
        completed = {a.identifier: a.completed_at for a in session.scalars(select(ArrivalRow))}
    assert set(completed.values()) == {datetime(2026, 11, 26, 2, 0, tzinfo=UTC)}


def test_each_applied_change_has_one_audit_entry(
    app: Application, repo: Repository, source: ExchangeSource
) -> None:
    """Five certificate changes (three issues, a change, a suspension) → exactly five audit entries, each naming
    the source's agency system, the certificate and its holder, in the transaction of the change (with its
    arrival); repeats and rejected rows change nothing and record nothing; a second cycle adds nothing."""
    with FrontendWriter(source.url) as writer:
        for i in range(3):
            writer.certificate(ISSUER, number(80 + i), 1, document(80 + i))
        writer.certificate(ISSUER, number(80), 2, document(80, 2))
        suspend = writer.status_change(ISSUER, number(81), "suspend", "核查")
        writer.certificate(ISSUER, number(82), 1, document(82))  # an identical re-delivery
        writer.status_change(ISSUER, number(99), "revoke", "不存在")  # rejected
        stats = _cycle(app, source, batch_size=3)
    assert (stats.accepted, stats.rejected) == (6, 1)
    events = exchange_audit_events(repo, source.name)
    assert sorted(e.action for e in events) == [
        "certificate.act", "certificate.change", "certificate.issue", "certificate.issue", "certificate.issue",
    ]  # fmt: skip
    with repo.db.session() as session:
        arrivals = set(session.scalars(select(ArrivalRow.identifier)))
    for event in events:
        stored = certificates.get(repo, event.certificate_identifier)
        assert event.principal == f"{ISSUER}/exchange:{source.name}" and event.role == "agency"
        assert event.organisation_code == ISSUER and event.outcome.value == "allow"
        assert event.holder_digest == stored.holder_ref
        assert event.details["via"] == "exchange" and event.details["source"] == source.name
        assert event.request_id == f"{source.name}/{event.details['table']}/{event.details['seq']}"
    versions = {e.certificate_identifier for e in events if e.action != "certificate.act"}
    assert arrivals == versions and len(versions) == 4  # each new version's arrival (第十一条)
    [act] = [e for e in events if e.action == "certificate.act"]
    assert act.details["seq"] == suspend and act.details["action"] == "suspend"
    _cycle(app, source)
    assert len(exchange_audit_events(repo, source.name)) == 5


def test_sealed_one_at_a_time_with_one_audit_entry(
    app: Application, repo: Repository, source: ExchangeSource
) -> None:
    """A version sealed by the repository goes through certificates.issue/change: one entry each, too."""

    def stand_in(prepared):  # type: ignore[no-untyped-def]
        return f"file of {prepared.identifier}".encode(), "application/octet-stream"

    with FrontendWriter(source.url) as writer:
        writer.certificate(ISSUER, number(90), 1, document(90))
        writer.certificate(ISSUER, number(90), 2, document(90, 2))
        writer.certificate(ISSUER, number(90), 2, document(90, 2))  # repeat
        _cycle(app, source, file_maker=stand_in)
    events = exchange_audit_events(repo, source.name)
    assert [e.action for e in events] == ["certificate.issue", "certificate.change"]
    assert all(e.principal == f"{ISSUER}/exchange:{source.name}" and e.holder_digest for e in events)


def test_another_agencys_catalogue_type_is_refused_by_the_shared_rule(
    app: Application, repo: Repository, source: ExchangeSource
) -> None:
    """The exchange asks services.authorization.require_issuer_of_type, as every entry point does."""
    from certstore.access import AccessDeniedError
    from certstore.services.authorization import require_issuer_of_type
    from certstore.services.catalogue import get_entry

    entry = get_entry(repo, OTHER_CATALOGUE)
    with pytest.raises(AccessDeniedError) as denied:
        require_issuer_of_type(source.actor, entry)
    other = document(0, catalogue=OTHER_CATALOGUE)
    with FrontendWriter(source.url) as writer:
        seq = writer.certificate(ISSUER, other["certificate_number"], 1, other)
        _cycle(app, source)
        receipt = writer.receipt("fe_certificates", seq)
    assert receipt.status == "rejected"
    assert [tuple(p) for p in receipt.problems] == [("data.catalogue", f"{entry.name}: {denied.value}")]
    assert exchange_audit_events(repo, source.name) == []
