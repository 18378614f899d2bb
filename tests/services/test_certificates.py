"""Certificate use cases on SQLite and PostgreSQL: issue, idempotency, change, renew, status actions, look-ups,
orphan sweep."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from certstore.catalogue.definitions import shipped_entries
from certstore.crypto.sm3 import sm3
from certstore.identifiers import CertificateIdentifier, HolderIdType
from certstore.lifecycle import Action, Status, TransitionError
from certstore.records import Holder, RecordError
from certstore.services import certificates
from certstore.services.certificates import DuplicateConflictError, NotLatestVersionError
from certstore.store.repository import Repository
from tests.services.conftest import RESIDENT_IDS, Clock, DraftMaker

FILE = b"%OFD placeholder bytes are not what this test is about; any file content will do"


@pytest.mark.parametrize("code", [e.code for e in shipped_entries()])
def test_issue_every_shipped_type(repo: Repository, draft: DraftMaker, code: str) -> None:
    result = certificates.issue(
        repo, draft(code), actor="agency:test", file=FILE, file_media_type="application/ofd"
    )
    cert = result.certificate
    assert result.created
    identifier = CertificateIdentifier.parse(cert.identifier)  # strict: our own check character must be right
    assert identifier.version == 1 and identifier.type_code == code
    assert cert.stored_status is Status.VALID
    assert [e.action for e in cert.events] == ["issue"]
    assert cert.file_key == sm3(FILE).hex()
    assert repo.blobs.get(cert.file_key) == FILE
    assert cert.metadata["ZZBS"] == cert.identifier
    assert certificates.get(repo, cert.identifier) == cert


def test_same_push_twice_is_one_record(repo: Repository, draft: DraftMaker) -> None:
    first = certificates.issue(repo, draft(), actor="a", file=FILE)
    second = certificates.issue(repo, draft(), actor="a", file=FILE)
    assert first.created and not second.created
    assert second.certificate.identifier == first.certificate.identifier
    assert len(certificates.history(repo, first.certificate.identifier)) == 1


def test_conflicting_push_is_refused(repo: Repository, draft: DraftMaker) -> None:
    certificates.issue(repo, draft(), actor="a")
    other_holder = Holder("李四", HolderIdType.RESIDENT_ID, RESIDENT_IDS[1])
    with pytest.raises(DuplicateConflictError, match="different content"):
        certificates.issue(repo, draft(holder=other_holder), actor="a")


def test_invalid_draft_lists_every_problem(repo: Repository, draft: DraftMaker) -> None:
    bad_holder = Holder("", HolderIdType.RESIDENT_ID, "110105194912310021")  # wrong check character
    with pytest.raises(RecordError) as refused:
        certificates.issue(repo, draft(holder=bad_holder, face={}), actor="a")
    paths = {path for path, _ in refused.value.problems}
    assert "holder.id_number" in paths and "holder.name" in paths
    assert any(path.startswith("face") for path in paths)


def test_change_makes_a_new_version(repo: Repository, draft: DraftMaker, clock: Clock) -> None:
    v1 = certificates.issue(repo, draft(), actor="a", file=FILE).certificate
    clock.advance(days=3)
    changed_face = {**v1.face}
    first_text_field = next(
        k for k, v in changed_face.items() if isinstance(v, str) and not k.startswith("_")
    )
    changed_face[first_text_field] = changed_face[first_text_field] + "（变更）"
    v2 = certificates.change(repo, v1.identifier, draft(face=changed_face), reason="名称变更", actor="a",
                             file=FILE + b" v2")  # fmt: skip
    assert CertificateIdentifier.parse(v2.identifier).version == 2
    assert v2.serial == v1.serial and v2.stored_status is Status.VALID
    old = certificates.get(repo, v1.identifier)
    assert old.stored_status is Status.SUPERSEDED and old.superseded_by == v2.identifier
    assert [e.action for e in old.events] == ["issue", "change"]
    assert old.events[-1].reason == "名称变更" and old.events[-1].at == clock.now
    assert [c.version for c in certificates.history(repo, v2.identifier)] == [1, 2]
    with pytest.raises(NotLatestVersionError):
        certificates.change(repo, v1.identifier, draft(face=changed_face), reason="again", actor="a")
    assert [
        c.identifier for c in certificates.list_by_holder(repo, v1.holder.id_type, v1.holder.id_number)
    ] == [v2.identifier]


def test_renew_extends_validity(repo: Repository, draft: DraftMaker, clock: Clock) -> None:
    v1 = certificates.issue(repo, draft(valid_until=date(2027, 1, 31)), actor="a").certificate
    with pytest.raises(RecordError, match="extend"):
        certificates.renew(repo, v1.identifier, valid_until=date(2027, 1, 1), reason="延续", actor="a")
    clock.advance(days=80)  # now expired: renewal is still allowed
    assert certificates.get(repo, v1.identifier).status_at(clock.now) is Status.EXPIRED
    v2 = certificates.renew(repo, v1.identifier, valid_until=date(2032, 1, 31), reason="到期延续", actor="a")
    assert v2.valid_until == date(2032, 1, 31) and v2.valid_from == v1.valid_from
    assert v2.status_at(clock.now) is Status.VALID
    assert certificates.get(repo, v1.identifier).stored_status is Status.SUPERSEDED


def test_status_actions_are_immediate_and_recorded(repo: Repository, draft: DraftMaker) -> None:
    cert = certificates.issue(repo, draft(), actor="a").certificate
    suspended = certificates.act(
        repo, cert.identifier, Action.SUSPEND, reason="涉嫌违规，调查中", actor="bureau"
    )
    assert (
        certificates.get(repo, cert.identifier).stored_status is Status.SUSPENDED == suspended.stored_status
    )
    with pytest.raises(TransitionError):
        certificates.act(repo, cert.identifier, Action.SUSPEND, reason="again", actor="bureau")
    certificates.act(repo, cert.identifier, Action.RESUME, reason="调查结束", actor="bureau")
    revoked = certificates.act(repo, cert.identifier, Action.REVOKE, reason="行政处罚", actor="bureau")
    assert revoked.stored_status is Status.REVOKED
    with pytest.raises(TransitionError, match="final"):
        certificates.act(repo, cert.identifier, Action.RESUME, reason="x", actor="bureau")
    assert [(e.action, e.to_status) for e in revoked.events] == [
        ("issue", "valid"), ("suspend", "suspended"), ("resume", "valid"), ("revoke", "revoked"),
    ]  # fmt: skip
    with pytest.raises(ValueError, match="new version"):
        certificates.act(repo, cert.identifier, Action.CHANGE, reason="x", actor="a")


def test_unknown_identifier(repo: Repository) -> None:
    with pytest.raises(certificates.CertificateNotFoundError):
        certificates.get(repo, "1.2.156.3005.2.X.Y.Z.001.0")


def test_holder_lookup_uses_the_digest_only(repo: Repository, draft: DraftMaker) -> None:
    cert = certificates.issue(repo, draft(), actor="a").certificate
    found = certificates.list_by_holder(repo, cert.holder.id_type, cert.holder.id_number.lower())
    assert [c.identifier for c in found] == [cert.identifier]
    assert cert.holder.id_number not in cert.holder_ref and len(cert.holder_ref) >= 16
    assert certificates.list_by_holder(repo, HolderIdType.RESIDENT_ID, RESIDENT_IDS[2]) == []


def test_sweep_removes_only_old_orphans(repo: Repository, draft: DraftMaker, clock: Clock) -> None:
    cert = certificates.issue(repo, draft(), actor="a", file=FILE).certificate
    orphan = repo.blobs.put(b"written before a crash, never committed")
    assert certificates.sweep_orphan_blobs(repo, older_than=timedelta(hours=1)) == []  # too young to judge
    clock.advance(hours=2)
    assert certificates.sweep_orphan_blobs(repo, older_than=timedelta(hours=1)) == [orphan.key]
    assert not repo.blobs.exists(orphan.key)
    assert repo.blobs.exists(cert.file_key or "")


def test_sweep_walks_the_store_in_batches(repo: Repository, draft: DraftMaker, clock: Clock) -> None:
    kept = [
        certificates.issue(repo, draft(number=f"选字第41010020240{n:04d}号"), actor="a", file=FILE + bytes([n]))
        .certificate.file_key
        for n in range(5)
    ]  # fmt: skip
    orphans = {repo.blobs.put(b"orphan %d" % n).key for n in range(7)}
    clock.advance(hours=2)
    assert set(certificates.sweep_orphan_blobs(repo, older_than=timedelta(hours=1), batch=3)) == orphans
    assert sorted(repo.blobs.iter_keys()) == sorted(k for k in kept if k)


def test_push_survives_a_racing_sweep(repo: Repository, draft: DraftMaker) -> None:
    """A sweep that deletes the blob between the push's put and its commit (it saw an identical old orphan)
    must not leave the committed row without its file."""
    inner = repo.blobs

    class SweptRightAfterPut:
        def __init__(self) -> None:
            self.swept = False

        def put(self, data: bytes, *, media_type: str = "application/octet-stream"):
            ref = inner.put(data, media_type=media_type)
            if not self.swept:
                self.swept = True
                inner.delete(ref.key)  # what a racing sweep does
            return ref

        def __getattr__(self, name: str) -> object:
            return getattr(inner, name)

    repo.blobs = SweptRightAfterPut()  # type: ignore[assignment]
    cert = certificates.issue(repo, draft(), actor="a", file=FILE).certificate
    assert cert.file_key is not None and inner.get(cert.file_key) == FILE


def test_an_orphan_is_adopted_by_the_push_it_belongs_to(
    repo: Repository, draft: DraftMaker, clock: Clock
) -> None:
    orphan = repo.blobs.put(FILE)  # e.g. left by a crashed earlier push of the same certificate
    clock.advance(hours=2)
    cert = certificates.issue(repo, draft(), actor="a", file=FILE).certificate  # adopts it
    assert cert.file_key == orphan.key
    assert certificates.sweep_orphan_blobs(repo, older_than=timedelta(hours=1)) == []
    assert repo.blobs.exists(orphan.key)
