"""CertificateBatch (many writes in one transaction, used by the exchange and the import) follows the rules of
certificates.issue/change/act: the same rows, the same lifecycle events, the same errors — and records each
write's audit entry and arrival in the caller's transaction."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from certstore.access import Actor
from certstore.app import Application
from certstore.keystore import KeyStore
from certstore.lifecycle import Action, Status, TransitionError
from certstore.records import draft_from_json, prepare_version
from certstore.services import certificates
from certstore.services.calls import Call, Origin, Via
from certstore.services.catalogue import get_entry
from certstore.services.certificate_batch import CertificateBatch
from certstore.services.certificates import (
    NO_FILE,
    CertificateNotFoundError,
    DuplicateConflictError,
)
from certstore.store.db import Database
from certstore.store.models import ArrivalRow, CertificateEventRow, CertificateRow
from certstore.store.repository import Repository
from tests.exchange.support import CATALOGUE, ISSUER, audit_events, document, make_repo, number


def exchange_call(seq: int = 1) -> Call:
    """A call of an agency's exchange source (a deadline channel: completion time and channel stated)."""
    origin = Origin(Via.EXCHANGE, request_id=f"test/fe_certificates/{seq}", source="test",
                    completed_at=datetime.now(UTC) - timedelta(hours=1), channel="offline")  # fmt: skip
    return Call(Actor.agency_system(ISSUER, "exchange:test"), origin)


COLUMNS = ("identifier", "version", "status", "content_digest", "face", "meta", "valid_until", "holder_id_digest",
           "catalogue_version", "file_key")  # fmt: skip


def _snapshot(repo: Repository) -> dict[str, object]:
    with repo.db.session() as session:
        rows = session.scalars(select(CertificateRow).order_by(CertificateRow.identifier)).all()
        by_id = {r.id: r.identifier for r in rows}
        return {
            r.identifier: (
                tuple(getattr(r, c) for c in COLUMNS),
                by_id.get(r.superseded_by_id),
                [
                    (e.action, e.from_status, e.to_status, e.reason, e.actor, e.details)
                    for e in session.scalars(
                        select(CertificateEventRow)
                        .where(CertificateEventRow.certificate_id == r.id)
                        .order_by(CertificateEventRow.id)
                    )
                ],
            )
            for r in rows
        }


def test_batch_writes_what_the_service_functions_write(database: Database, tmp_path: Path) -> None:
    single = make_repo(database, tmp_path / "a")
    batched_db = Database(f"sqlite:///{tmp_path / 'b.db'}")
    batched_db.upgrade()
    batched = make_repo(batched_db, tmp_path / "b")
    batched.holder_key = single.holder_key
    batched.serial_key = single.serial_key
    app = Application(single, KeyStore(tmp_path / "keys"))
    call = exchange_call()
    v1, v2 = draft_from_json(document(1, 1)), draft_from_json(document(1, 2))
    other = draft_from_json(document(2, 1))

    first = certificates.issue(app, call, v1, file_maker=NO_FILE).certificate
    second = certificates.change(app, call, first.identifier, v2, reason="变更", file_maker=NO_FILE)
    certificates.act(app, call, second.identifier, Action.SUSPEND, reason="核查")
    third = certificates.issue(app, call, other, file_maker=NO_FILE).certificate
    certificates.act(app, call, third.identifier, Action.REVOKE, reason="吊销")

    entry = get_entry(batched, CATALOGUE)

    def prepared(draft, version):  # type: ignore[no-untyped-def]
        return prepare_version(
            entry, draft, version=version, holder_key=batched.holder_key, serial_key=batched.serial_key
        )

    with batched.db.session() as session:
        batch = CertificateBatch(
            batched, session, issuer_code=ISSUER, numbers=[number(1), number(2)], call=call
        )
        assert batch.issue(prepared(v1, 1)) == (first.identifier, True)
        assert batch.change(prepared(v2, 2), reason="变更") == (second.identifier, True)
        batch.act(number(1), None, Action.SUSPEND, reason="核查")
        batch.flush()
    with batched.db.session() as session:  # a second batch sees the first one's rows
        batch = CertificateBatch(
            batched, session, issuer_code=ISSUER, numbers=[number(1), number(2)], call=call
        )
        assert batch.issue(prepared(v1, 1)) == (first.identifier, False)  # identical repeat
        batch.issue(prepared(other, 1))
        batch.act(number(2), 1, Action.REVOKE, reason="吊销")
        batch.flush()
    assert _snapshot(batched) == _snapshot(single)
    # the same audit entries as the service functions (a repeat records none here), and the same arrivals
    fields = ("action", "principal", "role", "organisation_code", "certificate_identifier", "holder_digest",
              "outcome", "status_code")  # fmt: skip

    def entries(repo: Repository) -> list[tuple[object, ...]]:
        return sorted(
            (*(getattr(e, f) for f in fields), e.details.get("action"), e.details.get("replaces"))
            for e in audit_events(repo) if not e.details.get("repeat")
        )  # fmt: skip

    assert len(entries(batched)) == 5 and entries(batched) == entries(single)
    with single.db.session() as one, batched.db.session() as other_session:
        assert sorted(one.scalars(select(ArrivalRow.identifier))) == sorted(
            other_session.scalars(select(ArrivalRow.identifier))
        )
    batched_db.dispose()


def test_batch_refuses_like_the_service_functions(repo: Repository) -> None:
    entry = get_entry(repo, CATALOGUE)

    def prepared(i: int, version: int, **changes: object):  # type: ignore[no-untyped-def]
        return prepare_version(entry, draft_from_json(document(i, version, **changes)), version=version,
                               holder_key=repo.holder_key, serial_key=repo.serial_key)  # fmt: skip

    with repo.db.session() as session:
        batch = CertificateBatch(repo, session, issuer_code=ISSUER, numbers=[number(1), number(2)],
                                 call=exchange_call())  # fmt: skip
        batch.issue(prepared(1, 1))
        with pytest.raises(DuplicateConflictError):
            batch.issue(prepared(1, 1, metadata={"other": "content"}))
        with pytest.raises(CertificateNotFoundError):
            batch.change(prepared(2, 2), reason="变更")
        with pytest.raises(CertificateNotFoundError):
            batch.act(number(2), None, Action.SUSPEND, reason="x")
        batch.change(prepared(1, 2), reason="变更")
        with pytest.raises(TransitionError):
            batch.act(number(1), 1, Action.SUSPEND, reason="x")  # superseded
        batch.act(number(1), 2, Action.REVOKE, reason="吊销")
        with pytest.raises(TransitionError):
            batch.change(prepared(1, 3), reason="变更")  # revoked
        batch.flush()
    with repo.db.session() as session:  # what the batch wrote is what it reads next time
        batch = CertificateBatch(repo, session, issuer_code=ISSUER, numbers=[number(1)])
        assert batch.version(number(1)) == (str(prepared(1, 2).identifier), Status.REVOKED)
        assert batch.version(number(1), 1) == (str(prepared(1, 1).identifier), Status.SUPERSEDED)
    # three writes recorded (issue, change, revoke); the refused ones recorded nothing
    assert [e.action for e in audit_events(repo)] == [
        "certificate.issue",
        "certificate.change",
        "certificate.act",
    ]


def test_entries_and_arrivals_commit_with_the_writes_or_not_at_all(repo: Repository) -> None:
    entry = get_entry(repo, CATALOGUE)
    prepared = prepare_version(
        entry,
        draft_from_json(document(5, 1)),
        version=1,
        holder_key=repo.holder_key,
        serial_key=repo.serial_key,
    )
    call = exchange_call(5)
    with pytest.raises(RuntimeError), repo.db.session() as session:
        batch = CertificateBatch(repo, session, issuer_code=ISSUER, numbers=[number(5)], call=call)
        batch.issue(prepared)
        batch.flush()
        raise RuntimeError("killed before the commit")
    assert audit_events(repo) == [] and call.recorded == []
    with repo.db.session() as session:
        assert session.scalars(select(ArrivalRow)).all() == []
        batch = CertificateBatch(repo, session, issuer_code=ISSUER, numbers=[number(5)])
        batch.issue(prepared, call=call)  # a call per write
        batch.flush()
    [event] = audit_events(repo)
    assert call.recorded == [event.event_id]
    assert (event.action, event.certificate_identifier, event.holder_digest, event.request_id) == (
        "certificate.issue", str(prepared.identifier), prepared.holder_ref, "test/fe_certificates/5",
    )  # fmt: skip
    with repo.db.session() as session:
        [arrival] = session.scalars(select(ArrivalRow)).all()
        assert (arrival.identifier, arrival.source, arrival.channel) == (
            str(prepared.identifier),
            "test",
            "offline",
        )


def test_every_write_needs_a_call(repo: Repository) -> None:
    entry = get_entry(repo, CATALOGUE)
    prepared = prepare_version(
        entry,
        draft_from_json(document(6, 1)),
        version=1,
        holder_key=repo.holder_key,
        serial_key=repo.serial_key,
    )
    no_deadline = Call(Actor.agency_system(ISSUER, "exchange:test"), Origin(Via.EXCHANGE, source="test"))
    with repo.db.session() as session:
        batch = CertificateBatch(repo, session, issuer_code=ISSUER, numbers=[number(6)])
        with pytest.raises(ValueError, match="call"):
            batch.issue(prepared)
        with pytest.raises(ValueError, match="completed_at"):
            batch.issue(prepared, call=no_deadline)
        batch.issue(prepared, call=Call(Actor.operator(), Origin(Via.IMPORT, source="legacy.csv")))
        batch.flush()
    with repo.db.session() as session:
        assert session.scalars(select(ArrivalRow)).all() == []  # an import has no deadline
