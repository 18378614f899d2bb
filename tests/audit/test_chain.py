"""Appending to the chain: entry hashes anyone can recompute, one total order under concurrent writers, mutation
events that commit and roll back with their transaction, checkpoints when due, and events logged before the
chain existed carried over by the migration."""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import threading
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy import func, select

from certstore.audit import (
    AuditEvent,
    CheckpointPolicy,
    Outcome,
    append_events,
    append_in_transaction,
    chain_pending,
    record_event,
    verify_log,
)
from certstore.audit.checkpoints import CheckpointKey
from certstore.audit.events import format_time
from certstore.audit.query import AuditQuery, query_entries
from certstore.crypto.trust import TrustStore
from certstore.crypto.x509 import Certificate
from certstore.store.db import Database
from certstore.store.models import AuditChainRow, AuditCheckpointRow, AuditEventRow, AuditTreeNodeRow
from tests.audit.conftest import event, fill


def test_entry_hash_is_sm3_of_the_documented_canonical_encoding(database: Database) -> None:
    seq = record_event(database, event(1, details={"b": 2, "a": "证照"}))
    assert seq == 0
    with database.session(readonly=True) as session:
        row = session.scalars(select(AuditEventRow)).one()
    canonical = json.dumps(
        [
            "certstore.audit/1",
            row.seq,
            format_time(row.at),
            row.prev_hash.hex(),
            format_time(row.occurred_at),
            row.event_id,
            row.request_id,
            row.principal,
            row.organisation_code,
            row.role,
            row.action,
            row.resource,
            row.matter,
            row.holder_digest,
            row.certificate_identifier,
            row.grant_id,
            row.outcome,
            row.status_code,
            row.reason,
            row.client,
            row.user_agent,
            row.details,
        ],
        ensure_ascii=False,
        separators=(",", ":"),
    ).encode()
    assert row.details == '{"a":"证照","b":2}'
    assert row.prev_hash == bytes(32)
    assert row.entry_hash == hashlib.new("sm3", canonical).digest()


def test_appends_chain_entries_and_sign_checkpoints_when_due(
    database: Database, key: CheckpointKey, trust: TrustStore, pinned: list[Certificate]
) -> None:
    policy = CheckpointPolicy(every_entries=500, every_seconds=3600)
    for start in range(0, 1300, 100):
        with database.session() as session:
            append_events(session, [event(start + i) for i in range(100)], key=key, policy=policy)
    with database.session(readonly=True) as session:
        sizes = list(session.scalars(select(AuditCheckpointRow.tree_size).order_by(AuditCheckpointRow.id)))
        head = session.get(AuditChainRow, 1)
        nodes = session.scalar(select(func.count()).select_from(AuditTreeNodeRow))
    assert sizes == [100, 600, 1100]  # the first append, then every 500 entries
    assert head is not None and head.size == 1300 and head.checkpoint_size == 1100
    assert nodes == 1300 // 256 + 1300 // 512 + 1300 // 1024  # complete subtrees of 256+ leaves
    result = verify_log(database, trust=trust, pinned=pinned)
    assert result.intact, result.findings
    assert (result.entries, result.size, result.checkpoints) == (1300, 1300, 3)


def test_concurrent_writers_extend_one_chain(database: Database) -> None:
    """Writers in several threads, each with its own connection, interleave whole batches of one total order."""
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        try:
            for b in range(10):
                with database.session() as session:
                    append_events(session, [event(n * 1000 + b * 10 + i) for i in range(10)])
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    with database.session(readonly=True) as session:
        seqs = list(session.scalars(select(AuditEventRow.seq).order_by(AuditEventRow.seq)))
        times = list(session.scalars(select(AuditEventRow.at).order_by(AuditEventRow.seq)))
    assert seqs == list(range(600))
    assert times == sorted(times)  # ``at`` never goes backwards: a month is one run of positions
    assert verify_log(database).intact


def test_mutation_events_commit_and_roll_back_with_their_transaction(database: Database) -> None:
    committed = event(1, action="change_certificate", certificate_identifier="ZZ-1")
    rolled_back = event(2, action="change_certificate", certificate_identifier="ZZ-2")
    with database.session() as session:
        session.execute(sa.text("SELECT 1"))
        append_in_transaction(session, committed)
    try:
        with database.session() as session:
            append_in_transaction(session, rolled_back)
            raise RuntimeError("the change failed")
    except RuntimeError:
        pass
    assert chain_pending(database) == 1
    entries = query_entries(database, AuditQuery(action="change_certificate")).entries
    assert [e.event.certificate_identifier for e in entries] == ["ZZ-1"]
    assert entries[0].event.event_id == committed.event_id
    # A later append of any writer also chains what is pending, before its own events.
    with database.session() as session:
        append_in_transaction(session, event(3, action="revoke_certificate"))
    assert record_event(database, event(4)) == 2
    with database.session(readonly=True) as session:
        actions = list(session.scalars(select(AuditEventRow.action).order_by(AuditEventRow.seq)))
    assert actions[1:] == ["revoke_certificate", "holder_certificates"]
    assert verify_log(database).intact


def test_long_and_odd_values_are_stored_as_they_are_hashed(database: Database) -> None:
    odd = AuditEvent(
        at=datetime(2026, 1, 1, 8, tzinfo=UTC),
        request_id="r" * 100,
        action="x\x00y",
        outcome=Outcome.ERROR,
        status_code=500,
        user_agent="ua" * 400,
        reason="\ud800 lone surrogate",
        details={"nan": float("nan"), "when": datetime(2026, 1, 1, tzinfo=UTC), 3: (1, 2)},
    )
    record_event(database, odd)
    fill(database, 3)
    (entry,) = query_entries(database, AuditQuery(outcome="error")).entries
    assert len(entry.event.request_id) == 64 and entry.event.request_id.endswith("…")
    assert "\x00" not in entry.event.action
    assert len(entry.event.user_agent or "") == 300
    assert entry.event.details == {"3": [1, 2], "nan": "nan", "when": "2026-01-01T00:00:00.000000Z"}
    assert verify_log(database).intact


def test_events_logged_before_the_chain_are_carried_over(empty_database_url: str) -> None:
    with Database(empty_database_url) as db:
        db.upgrade("0004_credentials")
        with db.engine.begin() as conn:
            for i in range(3):
                conn.execute(
                    sa.text(
                        "INSERT INTO audit_events (at, request_id, principal, action, outcome, status_code, details) "
                        "VALUES (:at, :r, 'ORG/p', 'list_events', 'allow', 200, :d)"
                    ),
                    {
                        "at": datetime(2026, 11, 1, 8, i, tzinfo=UTC),
                        "r": f"old-{i}",
                        "d": json.dumps({"i": i}),
                    },
                )
        db.upgrade()
        assert chain_pending(db) == 3
        entries = query_entries(db, AuditQuery()).entries
        assert [e.event.request_id for e in entries] == ["old-0", "old-1", "old-2"]
        assert entries[2].event.at == datetime(2026, 11, 1, 8, 2, tzinfo=UTC)
        assert entries[2].event.details == {"i": 2}
        assert verify_log(db).intact


def _append_from_another_process(url: str, first: int) -> None:
    with Database(url) as db:
        for batch in range(10):
            with db.session() as session:
                append_events(session, [event(first + batch * 20 + i) for i in range(20)])


def test_several_processes_extend_one_chain(database: Database) -> None:
    """API workers are processes: each appends under the chain-head lock of the shared database."""
    context = multiprocessing.get_context("fork")  # the children open their own connections
    workers = [
        context.Process(target=_append_from_another_process, args=(database.url, n * 1000)) for n in range(3)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
        assert worker.exitcode == 0
    result = verify_log(database)
    assert result.intact, result.findings
    assert result.entries == 600
