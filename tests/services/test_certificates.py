"""Certificate use cases on SQLite and PostgreSQL: issue, idempotency, change, renew, status actions, look-ups,
orphan sweep — each mutation authorised, with its arrival and its one audit entry in its own transaction."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from certstore.access import AccessDeniedError, Actor, Role
from certstore.audit import AuditEvent, Outcome
from certstore.catalogue.definitions import shipped_entries
from certstore.crypto.sm3 import sm3
from certstore.identifiers import CertificateIdentifier, HolderIdType
from certstore.lifecycle import Action, Status, TransitionError
from certstore.records import Holder, RecordError
from certstore.services import certificates
from certstore.services.calls import Via
from certstore.services.certificates import NO_FILE, DuplicateConflictError, NotLatestVersionError
from certstore.services.deadlines import ArrivalError, Channel, get_arrival
from certstore.store.models import ArrivalRow, CertificateRow
from certstore.store.repository import Repository
from tests.services.conftest import CREDIT_CODES, RESIDENT_IDS, Clock, DraftMaker
from tests.support import issuing

FILE = b"%OFD placeholder bytes are not what this test is about; any file content will do"


@pytest.mark.parametrize("code", [e.code for e in shipped_entries()])
def test_issue_every_shipped_type(repo: Repository, draft: DraftMaker, code: str) -> None:
    result = issuing.issue(repo, draft(code), file=FILE, file_media_type="application/ofd")
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
    first = issuing.issue(repo, draft(), file=FILE)
    second = issuing.issue(repo, draft(), file=FILE)
    assert first.created and not second.created
    assert second.certificate.identifier == first.certificate.identifier
    assert len(certificates.history(repo, first.certificate.identifier)) == 1


def test_conflicting_push_is_refused(repo: Repository, draft: DraftMaker) -> None:
    issuing.issue(repo, draft())
    other_holder = Holder("郑州另一置业有限公司", HolderIdType.CREDIT_CODE, CREDIT_CODES[1])  # a 法人 type
    with pytest.raises(DuplicateConflictError, match="different content"):
        issuing.issue(repo, draft(holder=other_holder))


def test_invalid_draft_lists_every_problem(repo: Repository, draft: DraftMaker) -> None:
    bad_holder = Holder("", HolderIdType.CREDIT_CODE, "91410100MA44A1B2X0")  # wrong check character
    with pytest.raises(RecordError) as refused:
        issuing.issue(repo, draft(holder=bad_holder, face={}))
    paths = {path for path, _ in refused.value.problems}
    assert "holder.id_number" in paths and "holder.name" in paths
    assert any(path.startswith("face") for path in paths)


def test_change_makes_a_new_version(repo: Repository, draft: DraftMaker, clock: Clock) -> None:
    v1 = issuing.issue(repo, draft(), file=FILE).certificate
    clock.advance(days=3)
    changed_face = {**v1.face}
    first_text_field = next(
        k for k, v in changed_face.items() if isinstance(v, str) and not k.startswith("_")
    )
    changed_face[first_text_field] = changed_face[first_text_field] + "（变更）"
    v2 = issuing.change(repo, v1.identifier, draft(face=changed_face), reason="名称变更",
                             file=FILE + b" v2")  # fmt: skip
    assert CertificateIdentifier.parse(v2.identifier).version == 2
    assert v2.serial == v1.serial and v2.stored_status is Status.VALID
    old = certificates.get(repo, v1.identifier)
    assert old.stored_status is Status.SUPERSEDED and old.superseded_by == v2.identifier
    assert [e.action for e in old.events] == ["issue", "change"]
    assert old.events[-1].reason == "名称变更" and old.events[-1].at == clock.now
    assert [c.version for c in certificates.history(repo, v2.identifier)] == [1, 2]
    with pytest.raises(NotLatestVersionError):
        issuing.change(repo, v1.identifier, draft(face=changed_face), reason="again")
    assert [
        c.identifier for c in certificates.list_by_holder(repo, v1.holder.id_type, v1.holder.id_number)
    ] == [v2.identifier]


def test_renew_extends_validity(repo: Repository, draft: DraftMaker, clock: Clock) -> None:
    v1 = issuing.issue(repo, draft(valid_until=date(2027, 1, 31))).certificate
    with pytest.raises(RecordError, match="extend"):
        issuing.renew(repo, v1.identifier, valid_until=date(2027, 1, 1), reason="延续")
    clock.advance(days=80)  # now expired: renewal is still allowed
    assert certificates.get(repo, v1.identifier).status_at(clock.now) is Status.EXPIRED
    v2 = issuing.renew(repo, v1.identifier, valid_until=date(2032, 1, 31), reason="到期延续")
    assert v2.valid_until == date(2032, 1, 31) and v2.valid_from == v1.valid_from
    assert v2.status_at(clock.now) is Status.VALID
    assert certificates.get(repo, v1.identifier).stored_status is Status.SUPERSEDED


def test_status_actions_are_immediate_and_recorded(repo: Repository, draft: DraftMaker) -> None:
    cert = issuing.issue(repo, draft()).certificate
    suspended = issuing.act(repo, cert.identifier, Action.SUSPEND, reason="涉嫌违规，调查中")
    assert (
        certificates.get(repo, cert.identifier).stored_status is Status.SUSPENDED == suspended.stored_status
    )
    with pytest.raises(TransitionError):
        issuing.act(repo, cert.identifier, Action.SUSPEND, reason="again")
    issuing.act(repo, cert.identifier, Action.RESUME, reason="调查结束")
    revoked = issuing.act(repo, cert.identifier, Action.REVOKE, reason="行政处罚")
    assert revoked.stored_status is Status.REVOKED
    with pytest.raises(TransitionError, match="final"):
        issuing.act(repo, cert.identifier, Action.RESUME, reason="x")
    assert [(e.action, e.to_status) for e in revoked.events] == [
        ("issue", "valid"), ("suspend", "suspended"), ("resume", "valid"), ("revoke", "revoked"),
    ]  # fmt: skip
    with pytest.raises(ValueError, match="new version"):
        issuing.act(repo, cert.identifier, Action.CHANGE, reason="x")


def test_unknown_identifier(repo: Repository) -> None:
    with pytest.raises(certificates.CertificateNotFoundError):
        certificates.get(repo, "1.2.156.3005.2.X.Y.Z.001.0")


def test_holder_lookup_uses_the_digest_only(repo: Repository, draft: DraftMaker) -> None:
    cert = issuing.issue(repo, draft()).certificate
    found = certificates.list_by_holder(repo, cert.holder.id_type, cert.holder.id_number.lower())
    assert [c.identifier for c in found] == [cert.identifier]
    assert cert.holder.id_number not in cert.holder_ref and len(cert.holder_ref) >= 16
    assert certificates.list_by_holder(repo, HolderIdType.RESIDENT_ID, RESIDENT_IDS[2]) == []


def test_sweep_removes_only_old_orphans(repo: Repository, draft: DraftMaker, clock: Clock) -> None:
    cert = issuing.issue(repo, draft(), file=FILE).certificate
    orphan = repo.blobs.put(b"written before a crash, never committed")
    assert certificates.sweep_orphan_blobs(repo, older_than=timedelta(hours=1)) == []  # too young to judge
    clock.advance(hours=2)
    assert certificates.sweep_orphan_blobs(repo, older_than=timedelta(hours=1)) == [orphan.key]
    assert not repo.blobs.exists(orphan.key)
    assert repo.blobs.exists(cert.file_key or "")


def test_sweep_walks_the_store_in_batches(repo: Repository, draft: DraftMaker, clock: Clock) -> None:
    kept = [
        issuing.issue(repo, draft(number=f"选字第41010020240{n:04d}号"), file=FILE + bytes([n]))
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
    cert = issuing.issue(repo, draft(), file=FILE).certificate
    assert cert.file_key is not None and inner.get(cert.file_key) == FILE


def test_an_orphan_is_adopted_by_the_push_it_belongs_to(
    repo: Repository, draft: DraftMaker, clock: Clock
) -> None:
    orphan = repo.blobs.put(FILE)  # e.g. left by a crashed earlier push of the same certificate
    clock.advance(hours=2)
    cert = issuing.issue(repo, draft(), file=FILE).certificate  # adopts it
    assert cert.file_key == orphan.key
    assert certificates.sweep_orphan_blobs(repo, older_than=timedelta(hours=1)) == []
    assert repo.blobs.exists(orphan.key)


# --- the guarantees each use case carries (issue 14) ------------------------------------------------------------

PLANNING = Actor("zhou.jiu", Role.AGENCY, "11410100990000017F")  # issues the planning types …17F001-3
CONSTRUCTION = Actor("li.si", Role.AGENCY, "11410100990000025A")  # issues the construction permit …25A001
SITE_SELECTION = "11410100990000017F001"


def _entries(repo: Repository, certificate: str) -> list[AuditEvent]:
    return [e for e in issuing.audit_entries(repo) if e.certificate_identifier == certificate]


def _count(repo: Repository, table: type) -> int:
    with repo.db.session(readonly=True) as session:
        return session.scalar(select(func.count()).select_from(table)) or 0


def test_each_mutation_leaves_one_audit_entry_with_actor_holder_and_outcome(
    repo: Repository, draft: DraftMaker
) -> None:
    app = issuing.application(repo)
    issued = certificates.issue(app, issuing.call(PLANNING), draft(SITE_SELECTION), file_maker=NO_FILE)
    v1 = issued.certificate
    [entry] = _entries(repo, v1.identifier)
    assert (entry.action, entry.outcome, entry.status_code) == ("certificate.issue", Outcome.ALLOW, 201)
    assert (entry.principal, entry.role, entry.organisation_code) == (
        "11410100990000017F/zhou.jiu", "agency", "11410100990000017F",
    )  # fmt: skip
    assert entry.holder_digest == v1.holder_ref and entry.details["via"] == "cli"
    assert v1.events[0].actor == "11410100990000017F/zhou.jiu"  # the lifecycle names the same actor

    suspended = certificates.act(app, issuing.call(PLANNING), v1.identifier, Action.SUSPEND, reason="核查")
    resumed = certificates.act(app, issuing.call(PLANNING), v1.identifier, Action.RESUME, reason="核查结束")
    other = Holder("郑州另一置业有限公司", HolderIdType.CREDIT_CODE, CREDIT_CODES[1])  # a 法人 type
    v2 = certificates.change(app, issuing.call(PLANNING), v1.identifier, draft(SITE_SELECTION, holder=other),
                             reason="更正持证主体", file_maker=NO_FILE)  # fmt: skip
    v3 = certificates.renew(app, issuing.call(PLANNING), v2.identifier, valid_until=None, reason="延续",
                            file_maker=NO_FILE)  # fmt: skip
    assert suspended.stored_status is Status.SUSPENDED and resumed.stored_status is Status.VALID
    acts = [e for e in _entries(repo, v1.identifier) if e.action == "certificate.act"]
    assert [e.details["action"] for e in acts] == ["suspend", "resume"]
    [changed] = _entries(repo, v2.identifier)
    assert (changed.action, changed.holder_digest) == ("certificate.change", v2.holder_ref)
    assert (
        changed.details["replaces"] == v1.identifier and changed.details["replaces_holder"] == v1.holder_ref
    )
    [renewed] = _entries(repo, v3.identifier)
    assert (renewed.action, renewed.holder_digest, renewed.details["version"]) == ("certificate.renew",
                                                                                  v3.holder_ref, 3)  # fmt: skip
    assert len(issuing.audit_entries(repo)) == 5  # one per call, nothing else
    assert _count(repo, ArrivalRow) == 0  # the command line has no deadline


def test_a_repeat_leaves_one_entry_marked_repeat_and_no_arrival(repo: Repository, draft: DraftMaker) -> None:
    app = issuing.application(repo)
    first = certificates.issue(
        app, issuing.call(PLANNING, via=Via.API), draft(SITE_SELECTION), file_maker=NO_FILE
    )
    again = certificates.issue(
        app, issuing.call(PLANNING, via=Via.API), draft(SITE_SELECTION), file_maker=NO_FILE
    )
    assert first.created and not again.created
    entries = _entries(repo, first.certificate.identifier)
    assert [(e.action, e.details.get("repeat")) for e in entries] == [
        ("certificate.issue", None), ("certificate.issue", True),
    ]  # fmt: skip
    assert all(e.holder_digest == first.certificate.holder_ref for e in entries)
    assert _count(repo, ArrivalRow) == 1  # the first push's only


def test_an_entry_point_with_a_deadline_records_the_arrival_with_the_change(
    repo: Repository, draft: DraftMaker, clock: Clock
) -> None:
    app = issuing.application(repo)
    completed = clock.now - timedelta(days=10)
    call = issuing.call(PLANNING, via=Via.API, source=None, completed_at=completed, channel="offline")
    cert = certificates.issue(app, call, draft(SITE_SELECTION), file_maker=NO_FILE).certificate
    arrival = get_arrival(repo, cert.identifier)
    assert arrival is not None and (arrival.source, arrival.channel, arrival.late) == (
        "api",
        Channel.OFFLINE,
        True,
    )
    assert arrival.completed_at == completed and arrival.arrived_at == cert.created_at
    assert call.recorded == [_entries(repo, cert.identifier)[0].event_id]  # noted once committed

    future = issuing.call(PLANNING, via=Via.API, completed_at=clock.now + timedelta(hours=1))
    with pytest.raises(ArrivalError, match="future"):
        certificates.issue(app, future, draft(SITE_SELECTION, number(2)), file_maker=NO_FILE)
    assert certificates.stored_version(repo, PLANNING.organisation_code or "", number(2)) is None


def number(n: int) -> str:
    return f"选字第4101002026{n:05d}号"


def test_a_failure_after_the_change_leaves_neither_change_nor_arrival_nor_entry(
    repo: Repository, draft: DraftMaker
) -> None:
    app = issuing.application(repo)
    call = issuing.call(PLANNING, via=Via.API)

    def fail(session: Session) -> None:
        session.flush()  # the row and the arrival are in the transaction
        raise RuntimeError("injected failure before the commit")

    with pytest.raises(RuntimeError, match="injected"):
        certificates.issue(app, call, draft(SITE_SELECTION), file_maker=NO_FILE, within=fail)
    assert (_count(repo, CertificateRow), _count(repo, ArrivalRow), issuing.audit_entries(repo)) == (0, 0, [])
    assert call.recorded == []

    cert = certificates.issue(app, call, draft(SITE_SELECTION), file_maker=NO_FILE).certificate
    with pytest.raises(RuntimeError, match="injected"):
        certificates.act(app, call, cert.identifier, Action.SUSPEND, reason="核查", within=fail)
    assert certificates.get(repo, cert.identifier).stored_status is Status.VALID
    assert [e.action for e in _entries(repo, cert.identifier)] == ["certificate.issue"]


def test_an_agency_issues_and_manages_only_its_own_types_and_certificates(
    repo: Repository, draft: DraftMaker
) -> None:
    """The rule is the use case's own: called directly, with no API in front."""
    app = issuing.application(repo)
    with pytest.raises(AccessDeniedError, match="agencies issue only their own catalogue types"):
        certificates.issue(app, issuing.call(CONSTRUCTION), draft(SITE_SELECTION), file_maker=NO_FILE)
    assert _count(repo, CertificateRow) == 0
    [denied] = issuing.audit_entries(repo)
    assert (denied.action, denied.outcome, denied.status_code) == ("certificate.issue", Outcome.DENY, 403)
    assert denied.principal == "11410100990000025A/li.si" and "own catalogue types" in (denied.reason or "")

    cert = certificates.issue(
        app, issuing.call(PLANNING), draft(SITE_SELECTION), file_maker=NO_FILE
    ).certificate
    window = Actor("clerk", Role.WINDOW, "12410100MB0000001X")
    for actor in (CONSTRUCTION, window):
        with pytest.raises(AccessDeniedError):
            certificates.act(app, issuing.call(actor), cert.identifier, Action.REVOKE, reason="x")
        with pytest.raises(AccessDeniedError):
            certificates.renew(app, issuing.call(actor), cert.identifier, valid_until=None, reason="x",
                               file_maker=NO_FILE)  # fmt: skip
        with pytest.raises(AccessDeniedError):
            certificates.change(app, issuing.call(actor), cert.identifier, draft(SITE_SELECTION), reason="x",
                                file_maker=NO_FILE)  # fmt: skip
        with pytest.raises(AccessDeniedError):
            certificates.file(app, issuing.call(actor), cert.identifier, "pdf")
    assert certificates.history(repo, cert.identifier) == [certificates.get(repo, cert.identifier)]
    assert certificates.get(repo, cert.identifier).stored_status is Status.VALID
    denials = [e for e in _entries(repo, cert.identifier) if e.outcome is Outcome.DENY]
    assert len(denials) == 8 and all(e.holder_digest == cert.holder_ref for e in denials)
    # the operator acts for the repository
    certificates.act(app, issuing.call(), cert.identifier, Action.SUSPEND, reason="运维核查")


def test_the_issuer_reads_its_own_file_audited(repo: Repository, draft: DraftMaker) -> None:
    app = issuing.application(repo)
    cert = certificates.issue(app, issuing.call(PLANNING), draft(SITE_SELECTION), file=FILE).certificate
    made = certificates.file(app, issuing.call(PLANNING), cert.identifier)
    assert (made.data, made.name) == (FILE, f"{cert.certificate_number}-v1.ofd")
    read = _entries(repo, cert.identifier)[-1]
    assert (read.action, read.holder_digest, read.details["format"]) == (
        "certificate.file",
        cert.holder_ref,
        "ofd",
    )
    bare = certificates.issue(
        app, issuing.call(PLANNING), draft(SITE_SELECTION, number(3)), file_maker=NO_FILE
    )
    with pytest.raises(certificates.NoFileError):
        certificates.file(app, issuing.call(PLANNING), bare.certificate.identifier)
