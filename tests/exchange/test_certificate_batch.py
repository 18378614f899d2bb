"""CertificateBatch (many writes in one transaction, used by the exchange) follows the rules of
certificates.issue/change/act: the same rows, the same lifecycle events, the same errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from certstore.lifecycle import Action, Status, TransitionError
from certstore.records import draft_from_json, prepare_version
from certstore.services import certificates
from certstore.services.catalogue import get_entry
from certstore.services.certificate_batch import CertificateBatch
from certstore.services.certificates import (
    CertificateNotFoundError,
    DuplicateConflictError,
)
from certstore.store.db import Database
from certstore.store.models import CertificateEventRow, CertificateRow
from certstore.store.repository import Repository
from tests.exchange.support import CATALOGUE, ISSUER, document, make_repo, number

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
    actor = f"{ISSUER}/exchange:test"
    v1, v2 = draft_from_json(document(1, 1)), draft_from_json(document(1, 2))
    other = draft_from_json(document(2, 1))

    first = certificates.issue(single, v1, actor=actor).certificate
    second = certificates.change(single, first.identifier, v2, reason="变更", actor=actor)
    certificates.act(single, second.identifier, Action.SUSPEND, reason="核查", actor=actor)
    third = certificates.issue(single, other, actor=actor).certificate
    certificates.act(single, third.identifier, Action.REVOKE, reason="吊销", actor=actor)

    entry = get_entry(batched, CATALOGUE)

    def prepared(draft, version):  # type: ignore[no-untyped-def]
        return prepare_version(entry, draft, version=version, holder_key=batched.holder_key)

    with batched.db.session() as session:
        batch = CertificateBatch(batched, session, issuer_code=ISSUER, numbers=[number(1), number(2)])
        assert batch.issue(prepared(v1, 1), actor=actor) == (first.identifier, True)
        assert batch.change(prepared(v2, 2), reason="变更", actor=actor) == (second.identifier, True)
        batch.act(number(1), None, Action.SUSPEND, reason="核查", actor=actor)
        batch.flush()
    with batched.db.session() as session:  # a second batch sees the first one's rows
        batch = CertificateBatch(batched, session, issuer_code=ISSUER, numbers=[number(1), number(2)])
        assert batch.issue(prepared(v1, 1), actor=actor) == (first.identifier, False)  # identical repeat
        batch.issue(prepared(other, 1), actor=actor)
        batch.act(number(2), 1, Action.REVOKE, reason="吊销", actor=actor)
        batch.flush()
    assert _snapshot(batched) == _snapshot(single)
    batched_db.dispose()


def test_batch_refuses_like_the_service_functions(repo: Repository) -> None:
    actor = f"{ISSUER}/exchange:test"
    entry = get_entry(repo, CATALOGUE)

    def prepared(i: int, version: int, **changes: object):  # type: ignore[no-untyped-def]
        return prepare_version(entry, draft_from_json(document(i, version, **changes)), version=version,
                               holder_key=repo.holder_key)  # fmt: skip

    with repo.db.session() as session:
        batch = CertificateBatch(repo, session, issuer_code=ISSUER, numbers=[number(1), number(2)])
        batch.issue(prepared(1, 1), actor=actor)
        with pytest.raises(DuplicateConflictError):
            batch.issue(prepared(1, 1, metadata={"other": "content"}), actor=actor)
        with pytest.raises(CertificateNotFoundError):
            batch.change(prepared(2, 2), reason="变更", actor=actor)
        with pytest.raises(CertificateNotFoundError):
            batch.act(number(2), None, Action.SUSPEND, reason="x", actor=actor)
        batch.change(prepared(1, 2), reason="变更", actor=actor)
        with pytest.raises(TransitionError):
            batch.act(number(1), 1, Action.SUSPEND, reason="x", actor=actor)  # superseded
        batch.act(number(1), 2, Action.REVOKE, reason="吊销", actor=actor)
        with pytest.raises(TransitionError):
            batch.change(prepared(1, 3), reason="变更", actor=actor)  # revoked
        batch.flush()
    with repo.db.session() as session:  # what the batch wrote is what it reads next time
        batch = CertificateBatch(repo, session, issuer_code=ISSUER, numbers=[number(1)])
        assert batch.version(number(1)) == (str(prepared(1, 2).identifier), Status.REVOKED)
        assert batch.version(number(1), 1) == (str(prepared(1, 1).identifier), Status.SUPERSEDED)
