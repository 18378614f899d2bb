"""The auditor's use cases (certstore.services.auditing), as the API, the auditor page and the command line use
them: searches see everything recorded before them, holders are found by ID without the ID being stored, exports
verify offline, and a missing repository key is said as such."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from certstore.app import Application
from certstore.audit.query import holder_reference, verify_export
from certstore.keystore import KeyStore
from certstore.services import auditing
from certstore.services.auditing import (
    AuditFilters,
    InvalidCursorError,
    InvalidHolderError,
    NoCheckpointKeyError,
)
from certstore.services.calls import Call, audit_in
from certstore.services.keys import init_dev_keys

HOLDER = ("001", "91410100MA44A1B2XW")


def _open(data_dir: Path) -> Application:
    return Application.open(data_dir, {}, upgrade_sqlite=True)


@pytest.fixture
def app(tmp_path: Path) -> Iterator[Application]:
    init_dev_keys(KeyStore(tmp_path / "data" / "keys"))
    application = _open(tmp_path / "data")
    yield application
    application.close()


def _mutation(app: Application, certificate: str) -> None:
    """An entry written as a use case writes it: in its own transaction, waiting in ``audit_pending``."""
    call = Call.operator(source="test")
    holder = holder_reference(app.repo.holder_key, *HOLDER)
    with app.repo.db.session() as session:
        audit_in(
            session, call, call.event("certificate.issue", certificate=certificate, holder_digest=holder)
        )


def test_a_search_sees_the_entries_committed_before_it(app: Application) -> None:
    _mutation(app, "ZZ-1")
    _mutation(app, "ZZ-2")
    page = auditing.search(app, AuditFilters(certificate_identifier="ZZ-2"))
    assert [e.event.certificate_identifier for e in page.entries] == ["ZZ-2"]
    assert page.entries[0].event.principal.startswith("operator:")


def test_a_holder_is_searched_by_id_type_and_number(app: Application) -> None:
    _mutation(app, "ZZ-1")
    found = auditing.search(app, AuditFilters(holder_id_type=HOLDER[0], holder_id=HOLDER[1]))
    assert [e.event.certificate_identifier for e in found.entries] == ["ZZ-1"]
    assert found.entries[0].event.holder_digest == holder_reference(app.repo.holder_key, *HOLDER)
    with pytest.raises(InvalidHolderError, match="go together"):
        auditing.search(app, AuditFilters(holder_id_type=HOLDER[0]))
    with pytest.raises(InvalidHolderError, match="not a valid holder ID"):
        auditing.search(app, AuditFilters(holder_id_type="001", holder_id="not-a-code"))


def test_pages_follow_the_cursor_and_a_bad_cursor_is_refused(app: Application) -> None:
    for n in range(3):
        _mutation(app, f"ZZ-{n}")
    first = auditing.search(app, AuditFilters(), limit=2)
    second = auditing.search(app, AuditFilters(), cursor=first.next_cursor, limit=2)
    seen = [e.event.certificate_identifier for e in [*first.entries, *second.entries]]
    assert seen == ["ZZ-0", "ZZ-1", "ZZ-2"] and second.next_cursor is None
    with pytest.raises(InvalidCursorError):
        auditing.search(app, AuditFilters(), cursor="garbage")


def test_an_export_is_covered_by_a_checkpoint_and_verifies_offline(app: Application) -> None:
    _mutation(app, "ZZ-1")
    _mutation(app, "ZZ-2")
    made = auditing.export(app, AuditFilters(certificate_identifier="ZZ-1"), "jsonl")
    assert made.checkpoint.tree_size == 2 and made.file_name == "audit-2.jsonl"
    result = verify_export(list(made.lines), trust=app.trust)
    assert result.intact and result.entries == 1
    again = auditing.export(app, AuditFilters(), "csv")  # the newest checkpoint still covers the whole log
    assert again.checkpoint.id == made.checkpoint.id and again.media_type.startswith("text/csv")


def test_without_a_repository_key_no_checkpoint_is_signed(app: Application, tmp_path: Path) -> None:
    _mutation(app, "ZZ-1")
    first = auditing.sign_checkpoint(app)
    _mutation(app, "ZZ-2")
    shutil.rmtree(tmp_path / "data" / "keys" / "signers" / "repository")
    keyless = _open(tmp_path / "data")
    try:
        with pytest.raises(NoCheckpointKeyError):
            auditing.sign_checkpoint(keyless)
        with pytest.raises(NoCheckpointKeyError):
            auditing.export(keyless, AuditFilters(), "jsonl")
        partial = auditing.export(keyless, AuditFilters(), "jsonl", newest_without_key=True)
        assert partial.checkpoint.id == first.id  # covers ZZ-1 only, as its header says
        assert verify_export(list(partial.lines)).entries == 1
    finally:
        keyless.close()


def test_proofs_and_the_summary(app: Application) -> None:
    for n in range(3):
        _mutation(app, f"ZZ-{n}")
    inclusion = auditing.inclusion_proof(app, 1)
    assert inclusion["tree_size"] >= 3
    assert auditing.consistency_proof(app, 1)["first"] == 1
    listed = auditing.checkpoints(app)
    assert listed.items and listed.next_after is None
    summary = auditing.summarise(app)
    assert summary
