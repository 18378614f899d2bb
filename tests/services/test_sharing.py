"""The sharing use cases (certstore.services.sharing) on each database backend: who reads what (an agency its own
certificates, window staff the holder they serve under a matter registered for that holder), the history/copy leak of issue 14, a
certificate of another holder answering as one that does not exist, and exactly one audit entry per call —
written before anything is returned."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from api.problems import domain_status
from certstore.access import AccessDeniedError, Actor, Principal, Role
from certstore.app import Application
from certstore.audit import AuditEvent, DirectSink, query_events
from certstore.identifiers import HolderIdType, holder_id_digest, holder_ref
from certstore.keystore import KeyStore
from certstore.lifecycle import Action, Status
from certstore.records import Certificate, Holder
from certstore.services import certificates, sharing
from certstore.services.calls import Call, Origin, Via
from certstore.services.certificates import CertificateNotFoundError
from certstore.services.keys import init_dev_keys
from certstore.services.scope import Serving, UnregisteredMatterError
from certstore.store.repository import Repository
from certstore.timezones import CHINA_STANDARD_TIME
from certstore.verify import verify_file
from tests.services.conftest import CREDIT_CODES, DraftMaker
from tests.support.issuing import PUBLIC_URL
from tests.support.matters import register_matter

CONSTRUCTION = "11410100990000025A001"  # 建筑工程施工许可证
AGENCY_ORG = "11410100990000025A"
PLANNING_ORG = "11410100990000017F"
WINDOW_ORG = "12410100MB0000001X"
H1 = Holder("郑州示例置业有限公司", HolderIdType.CREDIT_CODE, CREDIT_CODES[0])
H2 = Holder("郑州另一置业有限公司", HolderIdType.CREDIT_CODE, CREDIT_CODES[1])


class RecordingSink:
    """The application's durable sink, keeping what it was given (in order) for the test to read."""

    def __init__(self, inner: DirectSink) -> None:
        self.inner = inner
        self.events: list[AuditEvent] = []
        self.lock = threading.Lock()

    def submit(self, event: AuditEvent) -> None:
        self.inner.submit(event)
        with self.lock:
            self.events.append(event)


class BrokenSink:
    def submit(self, event: AuditEvent) -> None:
        raise OSError("the audit log is unavailable")


@pytest.fixture(scope="module")
def dev_keystore(tmp_path_factory: pytest.TempPathFactory) -> KeyStore:
    store = KeyStore(tmp_path_factory.mktemp("sharing-keys") / "keys")
    init_dev_keys(store)
    return store


@pytest.fixture
def app(repo: Repository, dev_keystore: KeyStore) -> Application:
    return Application(repo, dev_keystore, audit=RecordingSink(DirectSink(repo.db)), public_url=PUBLIC_URL)


def _principal(role: Role, organisation: str, name: str) -> Principal:
    return Principal(
        abs(hash((role, organisation, name))) % 10_000, name, role, organisation, f"{organisation} 单位"
    )


def call_of(role: Role, organisation: str, name: str = "staff", via: Via = Via.API) -> Call:
    return Call(Actor.of(_principal(role, organisation, name)), Origin(via))


def agency() -> Call:
    return call_of(Role.AGENCY, AGENCY_ORG, "agency")


def window(name: str = "clerk") -> Call:
    return call_of(Role.WINDOW, WINDOW_ORG, name)


def serving(matter: str, holder: Holder = H1) -> Serving:
    return Serving(matter, holder.id_type.value, holder.id_number)


def recorded(app: Application) -> list[AuditEvent]:
    assert isinstance(app.audit, RecordingSink)
    return app.audit.events


def ref(app: Application, holder: Holder) -> str:
    return holder_ref(holder_id_digest(app.repo.holder_key, holder.id_type, holder.id_number))


@dataclass
class World:
    mine: Certificate  # H1's construction permit
    theirs: Certificate  # H2's


@pytest.fixture
def world(app: Application, draft: DraftMaker) -> World:
    issuing = call_of(Role.AGENCY, AGENCY_ORG, "issuer", via=Via.CLI)
    mine = certificates.issue(app, issuing, draft(CONSTRUCTION, "410100202406100001", holder=H1)).certificate
    theirs = certificates.issue(
        app, issuing, draft(CONSTRUCTION, "410100202406100002", holder=H2)
    ).certificate
    for matter in (
        "ZZ-W-1",
        "ZZ-W-2",
        "ZZ-NF-1",
        "ZZ-LEAK-1",
        "ZZ-COPY-1",
        "ZZ-ONE",
        "ZZ-SUP",
        "ZZ-PARALLEL",
    ):
        register_matter(app, WINDOW_ORG, matter, H1.id_type.value, H1.id_number)
    recorded(app).clear()
    return World(mine, theirs)


# --- who reads what ----------------------------------------------------------------------------------------


def test_an_agency_reads_only_what_it_issued(app: Application, world: World) -> None:
    assert sharing.read(app, agency(), world.mine.identifier, Serving()).identifier == world.mine.identifier
    planning = call_of(Role.AGENCY, PLANNING_ORG)
    with pytest.raises(AccessDeniedError, match="agencies read only their own certificates"):
        sharing.read(app, planning, world.mine.identifier, Serving())
    assert sharing.holder_certificates(app, planning, "001", H1.id_number, Serving()) == []
    allowed, denied, lookup = recorded(app)
    assert (allowed.outcome, allowed.certificate_identifier, allowed.holder_digest) == (
        "allow",
        world.mine.identifier,
        ref(app, H1),
    )
    assert (denied.outcome, denied.status_code, denied.holder_digest) == ("deny", 403, ref(app, H1))
    assert (lookup.action, lookup.holder_digest, lookup.details["identifiers"]) == (
        "holder.lookup", ref(app, H1), [])  # fmt: skip


def test_an_agencys_holder_look_up_is_audited_with_the_holder_digest(app: Application, world: World) -> None:
    found = sharing.holder_certificates(app, agency(), "001", H1.id_number.lower(), Serving("ZZ-AG-1"))
    assert [c.identifier for c in found] == [world.mine.identifier]
    (entry,) = recorded(app)
    assert (entry.action, entry.role, entry.organisation_code, entry.matter) == (
        "holder.lookup", "agency", AGENCY_ORG, "ZZ-AG-1")  # fmt: skip
    assert entry.holder_digest == ref(app, H1)
    assert entry.details["identifiers"] == [world.mine.identifier]
    assert H1.id_number not in str(entry.to_dict())
    # an auditor searching by holder finds it in the log
    stored = query_events(app.repo.db, holder_digest=ref(app, H1), action="holder.lookup")
    assert [e.event.event_id for e in stored] == [entry.event_id]


def test_window_staff_read_only_the_holder_they_serve(app: Application, world: World) -> None:
    call = window()
    assert sharing.read(app, call, world.mine.identifier, serving("ZZ-W-1")).holder == H1
    assert sharing.status(app, call, world.mine.identifier, serving("ZZ-W-1")).status is Status.VALID
    found = sharing.holder_certificates(app, call, "001", H1.id_number, Serving("ZZ-W-1"))
    assert [c.identifier for c in found] == [world.mine.identifier]
    with pytest.raises(UnregisteredMatterError, match="registered for another holder"):
        sharing.holder_certificates(app, call, "001", H2.id_number, Serving("ZZ-W-1"))
    refused = recorded(app)[-1]  # the attempt is findable by its matter and by the holder asked for
    assert (refused.outcome, refused.matter, refused.holder_digest) == ("deny", "ZZ-W-1", ref(app, H2))
    with pytest.raises(AccessDeniedError, match="only the holder they are serving"):
        sharing.holder_certificates(app, call, "001", H2.id_number, serving("ZZ-W-2"))
    with pytest.raises(AccessDeniedError, match="must state the matter"):
        sharing.read(app, call, world.mine.identifier, Serving(None, "001", H1.id_number))


def test_a_certificate_of_another_holder_answers_as_one_that_does_not_exist(
    app: Application, world: World
) -> None:
    answers = []
    for identifier in (world.theirs.identifier, world.theirs.identifier[:-3] + "999"):
        for use in (sharing.read, sharing.history, sharing.status, sharing.preview):
            with pytest.raises(CertificateNotFoundError) as caught:
                use(app, window(), identifier, serving("ZZ-NF-1"))
            answers.append((type(caught.value), str(caught.value).replace(identifier, "<id>")))
        with pytest.raises(CertificateNotFoundError) as caught:
            sharing.attach(app, window(), [identifier], serving("ZZ-NF-1"))
        answers.append((type(caught.value), str(caught.value).replace(identifier, "<id>")))
    assert set(answers) == {(CertificateNotFoundError, "no certificate <id>")}
    # the auditor can tell them apart: the other holder's is a denial
    entries = recorded(app)
    assert [(e.outcome, e.status_code) for e in entries[:5]] == [("deny", 404)] * 5
    assert [(e.outcome, e.status_code) for e in entries[5:]] == [("allow", 404)] * 5
    assert all(e.holder_digest == ref(app, H1) and e.matter == "ZZ-NF-1" for e in entries)
    assert "not held by the holder being served" in (entries[0].reason or "")


def test_other_roles_read_nothing(app: Application, world: World) -> None:
    for role, org in ((Role.AUDITOR, "11410100MB1700001X"), (Role.BUREAU, "11410100MB1700000X"),
                      (Role.UPSTREAM, "11410000MB0000000X")):  # fmt: skip
        with pytest.raises(AccessDeniedError, match="does not read certificates"):
            sharing.read(app, call_of(role, org), world.mine.identifier, serving("ZZ-X"))
        with pytest.raises(AccessDeniedError):
            sharing.holder_certificates(app, call_of(role, org), "001", H1.id_number, Serving())
    with pytest.raises(AccessDeniedError):
        sharing.history(app, Call.operator(), world.mine.identifier, Serving())
    with pytest.raises(AccessDeniedError, match="window staff and holders only"):
        sharing.copy(app, agency(), world.mine.identifier, "办理业务", Serving())
    assert [e.outcome for e in recorded(app)] == ["deny"] * 8


# --- the leak of issue 14: history and copies of a certificate whose holder changed ------------------------


def test_history_and_copies_show_only_the_served_holders_versions(
    app: Application, world: World, draft: DraftMaker
) -> None:
    """A clerk serving H1 asks for the history of v1 after the agency changed the holder to H2 (v2): H2's name,
    ID number and face must not come back; v2 itself is not found; a copy of v2 cannot be made."""
    v1 = world.mine
    changed = draft(CONSTRUCTION, v1.certificate_number, holder=H2, face={**v1.face, "builder": H2.name})
    v2 = certificates.change(
        app,
        call_of(Role.AGENCY, AGENCY_ORG, "issuer", via=Via.CLI),
        v1.identifier,
        changed,
        reason="持证主体变更",
    )
    assert v2.holder == H2
    recorded(app).clear()
    clerk = window()
    versions = sharing.history(app, clerk, v1.identifier, serving("ZZ-LEAK-1"))
    assert [v.identifier for v in versions] == [v1.identifier]
    assert H2.name not in repr(versions) and H2.id_number not in repr(versions)
    assert all(v.holder == H1 for v in versions)
    for use in (sharing.read, sharing.history, sharing.preview):
        with pytest.raises(CertificateNotFoundError):
            use(app, clerk, v2.identifier, serving("ZZ-LEAK-1"))
    with pytest.raises(CertificateNotFoundError):
        sharing.copy(app, clerk, v2.identifier, "办理业务", serving("ZZ-LEAK-1"))
    superseded = sharing.status(app, clerk, v1.identifier, serving("ZZ-LEAK-1"))
    assert (superseded.status, superseded.superseded_by) == (Status.SUPERSEDED, v2.identifier)
    # the issuer sees every version
    assert [v.identifier for v in sharing.history(app, agency(), v1.identifier, Serving())] == [
        v1.identifier, v2.identifier]  # fmt: skip
    history_entry = recorded(app)[0]
    assert history_entry.details["versions"] == [v1.identifier]


def test_a_copy_is_made_sealed_and_recorded_for_the_served_holders_version(
    app: Application, world: World
) -> None:
    made = sharing.copy(app, window(), world.mine.identifier, "办理不动产登记", serving("ZZ-COPY-1"))
    assert made.file_name == f"{world.mine.certificate_number}-副本.ofd"
    report = verify_file(made.data, trust=app.trust, repository=app.repository_check())
    assert report.indication.value == "VALID", report.to_dict()
    (entry,) = recorded(app)
    assert (entry.action, entry.certificate_identifier, entry.matter, entry.holder_digest) == (
        "certificate.copy", world.mine.identifier, "ZZ-COPY-1", ref(app, H1))  # fmt: skip
    assert entry.details["purpose"] == "办理不动产登记"


# --- exactly one entry per call, before the data -----------------------------------------------------------

READS: dict[str, Callable[[Application, Call, World], Any]] = {
    "certificate.read": lambda app, call, w: sharing.read(app, call, w.mine.identifier, serving("ZZ-ONE")),
    "certificate.history": lambda app, call, w: sharing.history(app, call, w.mine.identifier, serving("ZZ-ONE")),
    "certificate.status": lambda app, call, w: sharing.status(app, call, w.mine.identifier, serving("ZZ-ONE")),
    "certificate.preview": lambda app, call, w: sharing.preview(app, call, w.mine.identifier, serving("ZZ-ONE"),
                                                                max_px=120),
    "holder.lookup": lambda app, call, w: sharing.holder_certificates(app, call, "001", H1.id_number,
                                                                      Serving("ZZ-ONE")),
    "matter.attach_certificates": lambda app, call, w: sharing.attach(app, call, [w.mine.identifier] * 2,
                                                                      serving("ZZ-ONE")),
}  # fmt: skip


@pytest.mark.parametrize("action", sorted(READS))
def test_each_read_yields_exactly_one_audit_entry(app: Application, world: World, action: str) -> None:
    call = window()
    assert READS[action](app, call, world)
    (entry,) = recorded(app)
    assert call.recorded == [entry.event_id]
    assert (entry.action, entry.outcome, entry.status_code) == (action, "allow", 200)
    assert (entry.principal, entry.role, entry.organisation_code) == (
        f"{WINDOW_ORG}/clerk",
        "window",
        WINDOW_ORG,
    )
    assert (entry.matter, entry.holder_digest) == ("ZZ-ONE", ref(app, H1))
    if action not in ("holder.lookup", "matter.attach_certificates"):
        assert entry.certificate_identifier == world.mine.identifier
    else:
        assert entry.details["identifiers"] == [world.mine.identifier]
    assert entry.details["via"] == "api"
    stored = query_events(app.repo.db, action=action)
    assert [e.event.event_id for e in stored] == [entry.event_id]
    assert H1.id_number not in str(stored[0].event.to_dict())


def test_nothing_is_returned_when_the_entry_cannot_be_written(app: Application, world: World) -> None:
    app.audit = BrokenSink()
    call = window()
    for action in sorted(READS):
        with pytest.raises(OSError, match="audit log is unavailable"):
            READS[action](app, call, world)
    assert call.recorded == []  # the adapter logs the failure (its middleware), once


# --- a registered matter serves its holder, under load --------------------------------------------------------


def test_twenty_parallel_look_ups_of_two_holders_under_one_registered_matter_serve_only_its_holder(
    app: Application, world: World
) -> None:
    """ZZ-PARALLEL is registered for H1: of 20 parallel look-ups alternating H1 and H2, the ten of H1 are
    served and the ten of H2 refused (and audited as denials)."""
    start = threading.Barrier(20)

    def look_up(position: int) -> str | None:
        holder = (H1, H2)[position % 2]
        start.wait()
        try:
            found = sharing.holder_certificates(app, window(f"clerk{position}"), "001", holder.id_number,
                                                Serving("ZZ-PARALLEL"))  # fmt: skip
        except UnregisteredMatterError:
            return None
        assert [c.holder for c in found] == [holder]
        return holder.id_number

    with ThreadPoolExecutor(max_workers=20) as pool:
        results = list(pool.map(look_up, range(20)))
    served = {r for r in results if r is not None}
    assert served == {H1.id_number} and results.count(None) == 10, results
    entries = recorded(app)
    assert len(entries) == 20
    allowed = {e.holder_digest for e in entries if e.outcome == "allow"}
    assert allowed == {ref(app, H1)} and len([e for e in entries if e.outcome == "deny"]) == 10


def test_a_holder_id_that_is_not_valid_is_a_value_error(app: Application, world: World) -> None:
    for id_type, number in (("123", H1.id_number), ("001", "91410100MA44A1B2XX")):
        with pytest.raises(ValueError):
            sharing.holder_certificates(app, agency(), id_type, number, Serving())
    assert [(e.status_code, e.outcome) for e in recorded(app)] == [(422, "allow")] * 2


def test_window_staff_see_superseded_versions_of_their_holder_on_request(
    app: Application, world: World, draft: DraftMaker, tmp_path: Path
) -> None:
    v1 = world.mine
    v2 = certificates.change(
        app, call_of(Role.AGENCY, AGENCY_ORG, "issuer", via=Via.CLI), v1.identifier,
        draft(CONSTRUCTION, v1.certificate_number, holder=H1, face={**v1.face, "project_name": "示例·锦华园二期"}),
        reason="项目名称变更",
    )  # fmt: skip
    current = sharing.holder_certificates(app, window(), "001", H1.id_number, Serving("ZZ-SUP"))
    every = sharing.holder_certificates(app, window(), "001", H1.id_number, Serving("ZZ-SUP"), True)
    assert [c.identifier for c in current] == [v2.identifier]
    assert {c.identifier for c in every} == {v1.identifier, v2.identifier}


# --- certificates not in force (issue 21 item 5) ---------------------------------------------------------


def test_attaching_a_revoked_certificate_is_refused_with_its_state_and_date(
    app: Application, world: World
) -> None:
    """The core refuses, names the state and the day it began, attaches nothing and records one denial."""
    issuer = call_of(Role.AGENCY, AGENCY_ORG, "issuer", via=Via.CLI)
    certificates.act(app, issuer, world.mine.identifier, Action.REVOKE, reason="以欺骗手段取得")
    with pytest.raises(sharing.NotInForceError) as caught:
        sharing.attach(app, window(), [world.mine.identifier], serving("ZZ-W-1"))
    refusal = caught.value
    today = app.now().astimezone(CHINA_STANDARD_TIME).date()
    assert (refusal.status, refusal.since) == (Status.REVOKED, today)
    assert f"revoked since {today.isoformat()}" in str(refusal)
    (entry,) = [e for e in recorded(app) if e.action == "matter.attach_certificates"]
    assert (entry.outcome, entry.status_code, entry.matter) == ("deny", 422, "ZZ-W-1")
    assert entry.certificate_identifier == world.mine.identifier and "not in force" in (entry.reason or "")
    assert domain_status(refusal) == (422, "Invalid request")  # the API's problem for it


def test_a_valid_certificate_is_still_attached(app: Application, world: World) -> None:
    """The refusal is for certificates not in force only."""
    assert sharing.attach(app, window(), [world.mine.identifier], serving("ZZ-W-2")) == [
        world.mine.identifier
    ]
    assert recorded(app)[-1].outcome == "allow"
