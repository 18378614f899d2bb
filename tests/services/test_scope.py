"""Knowledge scope (知悉范围) as a service rule decided from the repository's state, on each database backend: a
window look-up is allowed only under a matter the clerk's unit's case system registered for that holder (active:
open, within its validity) or under the holder's active authorisation for the unit; invented, closed, expired
and foreign matters are refused; the holder reads their own certificates; 20 concurrent look-ups under a
registered matter serve only its holder; and the migration of revision 0007 still carries the old log state."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from certstore.access import AccessDeniedError, Actor, Principal, Role
from certstore.app import Application
from certstore.audit import AuditEvent, Outcome, chain, record_event
from certstore.identifiers import HolderIdType, holder_id_digest, holder_ref
from certstore.keystore import KeyStore
from certstore.records import Certificate, Holder
from certstore.services import access, authorisations, matters, scope
from certstore.services.calls import Call, Origin, Via
from certstore.services.keys import init_dev_keys
from certstore.services.scope import NotAuthorisedError, NotHeldError, Serving, UnregisteredMatterError
from certstore.store.db import Database
from certstore.store.models import MatterBindingRow
from certstore.store.repository import Repository
from tests.services.conftest import CREDIT_CODES, RESIDENT_IDS, DraftMaker
from tests.support import issuing
from tests.support.clock import Clock
from tests.support.matters import case_system_call, register_matter

WINDOW_ORG = "12410100MB0000001X"
OTHER_WINDOW_ORG = "12410100MB0000002X"
CONSTRUCTION = "11410100990000025A001"
SITE = "11410100990000017F001"  # 建设项目选址意见书, another type
H1 = Holder("郑州示例置业有限公司", HolderIdType.CREDIT_CODE, CREDIT_CODES[0])
H2 = Holder("郑州另一置业有限公司", HolderIdType.CREDIT_CODE, CREDIT_CODES[1])


def window_call(organisation: str = WINDOW_ORG, name: str = "clerk") -> Call:
    principal = Principal(1, name, Role.WINDOW, organisation, "郑州市政务服务中心")
    return Call(Actor.of(principal), Origin(Via.API))


def serving(matter: str, number: str = CREDIT_CODES[0], id_type: str = "001") -> Serving:
    return Serving(matter, id_type, number)


def ref_of(repo: Repository, number: str, id_type: str = "001") -> str:
    return holder_ref(holder_id_digest(repo.holder_key, id_type, number))


def holder_call(repo: Repository, holder: Holder = H1) -> Call:
    return Call(
        Actor.holder(ref_of(repo, holder.id_number, holder.id_type.value), holder.name), Origin(Via.API)
    )


@pytest.fixture(scope="module")
def dev_keystore(tmp_path_factory: pytest.TempPathFactory) -> KeyStore:
    store = KeyStore(tmp_path_factory.mktemp("scope-keys") / "keys")
    init_dev_keys(store)
    return store


@pytest.fixture
def app(repo: Repository, dev_keystore: KeyStore) -> Application:
    for code in (WINDOW_ORG, OTHER_WINDOW_ORG):  # the using units holders may authorise
        access.ensure_organisation(repo, code, f"{code} 政务服务中心")
    return Application(repo, dev_keystore, public_url=issuing.PUBLIC_URL)


def _issue(app: Application, draft: DraftMaker, code: str, number: str | None, holder: Holder) -> Certificate:
    return issuing.issue(app, draft(code, number, holder=holder), file_maker=None).certificate


# --- registered matters ---------------------------------------------------------------------------------------


def test_a_registered_matter_serves_its_holder_and_no_other(app: Application, repo: Repository) -> None:
    """Registered for H1 at the clerk's unit: H1 is served (any clerk of the unit, an ID typed differently);
    H2 under the same matter is refused; the same number at another unit is another, unregistered matter."""
    register_matter(app, WINDOW_ORG, "ZZ-1", "001", CREDIT_CODES[0])
    served = scope.serve(app, window_call(), serving(" ZZ-1 "))
    assert served == scope.Served("ZZ-1", ref_of(repo, CREDIT_CODES[0]))
    assert scope.serve(app, window_call(name="colleague"), serving("ZZ-1", CREDIT_CODES[0].lower())) == served
    with pytest.raises(UnregisteredMatterError, match="registered for another holder"):
        scope.serve(app, window_call(), serving("ZZ-1", CREDIT_CODES[1]))
    with pytest.raises(
        UnregisteredMatterError, match="not an active matter registered for 12410100MB0000002X"
    ):
        scope.serve(app, window_call(OTHER_WINDOW_ORG), serving("ZZ-1"))


def test_an_invented_matter_opens_nothing_and_writes_nothing(app: Application, repo: Repository) -> None:
    """The old rule bound an unknown matter to the first holder looked up; now it is refused and nothing is
    stored (the old table stays empty)."""
    for number in ("ANYTHING-I-INVENT", "ZZ-2"):
        with pytest.raises(UnregisteredMatterError, match="not an active matter"):
            scope.serve(app, window_call(), serving(number))
    with repo.db.session(readonly=True) as session:
        assert list(session.scalars(select(MatterBindingRow))) == []


def test_a_matter_serves_only_while_it_is_active(app: Application, repo: Repository, clock: Clock) -> None:
    """Before ``valid_from``, from ``valid_until`` on, and once closed or withdrawn: refused."""
    now = clock.now
    register_matter(app, WINDOW_ORG, "ZZ-LATER", "001", CREDIT_CODES[0], valid_from=now + timedelta(days=1))
    with pytest.raises(UnregisteredMatterError):
        scope.serve(app, window_call(), serving("ZZ-LATER"))
    clock.advance(days=2)
    assert scope.serve(app, window_call(), serving("ZZ-LATER")).matter == "ZZ-LATER"
    register_matter(app, WINDOW_ORG, "ZZ-SHORT", "001", CREDIT_CODES[0], days=1)
    clock.advance(days=1)
    with pytest.raises(UnregisteredMatterError):
        scope.serve(app, window_call(), serving("ZZ-SHORT"))
    register_matter(app, WINDOW_ORG, "ZZ-DONE", "001", CREDIT_CODES[0])
    scope.serve(app, window_call(), serving("ZZ-DONE"))
    matters.close(app, case_system_call(WINDOW_ORG), "ZZ-DONE")
    with pytest.raises(UnregisteredMatterError):
        scope.serve(app, window_call(), serving("ZZ-DONE"))


@pytest.mark.parametrize(
    ("declared", "message"),
    [
        (Serving(None, "001", CREDIT_CODES[0]), "must state the matter"),
        (Serving("  ", "001", CREDIT_CODES[0]), "must state the matter"),
        (Serving("M" * 101, "001", CREDIT_CODES[0]), "longer than"),
        (Serving("ZZ-3", None, None), "must state the holder"),
        (Serving("ZZ-3", "001", None), "must state the holder"),
    ],
)
def test_an_incomplete_declaration_is_refused(app: Application, declared: Serving, message: str) -> None:
    register_matter(app, WINDOW_ORG, "ZZ-3", "001", CREDIT_CODES[0])
    with pytest.raises(AccessDeniedError, match=message):
        scope.serve(app, window_call(), declared)


@pytest.mark.parametrize(
    "declared", [Serving("ZZ-3", "123", CREDIT_CODES[0]), Serving("ZZ-3", "001", "91410100MA44A1B2XX")]
)
def test_an_invalid_holder_id_is_bad_input_not_a_refusal(app: Application, declared: Serving) -> None:
    """A holder ID that is not valid (unknown type, wrong check character) is InvalidHolderIdError — a ValueError,
    answered 422 — not a refusal (403)."""
    register_matter(app, WINDOW_ORG, "ZZ-3", "001", CREDIT_CODES[0])
    with pytest.raises(scope.InvalidHolderIdError, match="not a valid ID") as raised:
        scope.serve(app, window_call(), declared)
    assert not isinstance(raised.value, AccessDeniedError)


def test_only_window_staff_serve_holders(app: Application, repo: Repository) -> None:
    register_matter(app, WINDOW_ORG, "ZZ-4", "001", CREDIT_CODES[0])
    agency = Call(Actor.agency_system("11410100990000025A", "system"), Origin(Via.EXCHANGE))
    for call in (agency, Call.operator(), case_system_call(WINDOW_ORG), holder_call(repo)):
        with pytest.raises(AccessDeniedError, match="does not serve holders"):
            scope.serve(app, call, serving("ZZ-4"))


def test_twenty_concurrent_look_ups_under_a_registered_matter_serve_only_its_holder(
    app: Application, repo: Repository
) -> None:
    """20 threads at once, alternating H1 (the matter's holder) and H2, clerks of the unit and of another unit:
    exactly the ten look-ups of H1 by the unit's clerks are served."""
    register_matter(app, WINDOW_ORG, "ZZ-RACE", "001", CREDIT_CODES[0])
    start = threading.Barrier(20)

    def look_up(position: int) -> tuple[str, str, bool]:
        number = CREDIT_CODES[position % 2]
        unit = WINDOW_ORG if position % 4 < 2 else OTHER_WINDOW_ORG
        start.wait()
        try:
            scope.serve(app, window_call(unit, f"clerk{position}"), serving("ZZ-RACE", number))
        except UnregisteredMatterError:
            return unit, number, False
        return unit, number, True

    with ThreadPoolExecutor(max_workers=20) as pool:
        results = list(pool.map(look_up, range(20)))
    served = [(unit, number) for unit, number, ok in results if ok]
    assert served == [(WINDOW_ORG, CREDIT_CODES[0])] * 5, results
    assert len([r for r in results if not r[2]]) == 15


# --- the holder's authorisation ------------------------------------------------------------------------------


def test_an_authorisation_for_a_matter_opens_only_what_it_names(
    app: Application, repo: Repository, draft: DraftMaker, clock: Clock
) -> None:
    """H1 authorises the unit for matter ZZ-AUTH (not registered) to use one certificate: the clerk is served
    under ZZ-AUTH, that certificate is covered, another of H1's is not (answers as not found), another matter
    or another unit is refused; revoked, or expired, it opens nothing."""
    permit = _issue(app, draft, CONSTRUCTION, "410100202406100001", H1)
    site = _issue(app, draft, SITE, None, H1)
    granted = authorisations.grant(
        app, holder_call(repo), using_unit=WINDOW_ORG, certificate_identifier=permit.identifier,
        matter="ZZ-AUTH", purpose="办理施工许可变更", valid_until=clock.now + timedelta(days=7),
    )  # fmt: skip
    served = scope.serve(app, window_call(), serving("ZZ-AUTH"))
    assert (served.basis, [a.id for a in served.authorisations]) == ("authorisation", [granted.id])
    assert scope.authorize(app, window_call(), permit, serving("ZZ-AUTH")) == served
    with pytest.raises(NotAuthorisedError, match=f"no certificate {site.identifier}"):
        scope.authorize(app, window_call(), site, serving("ZZ-AUTH"))
    with pytest.raises(UnregisteredMatterError):
        scope.serve(app, window_call(), serving("ZZ-OTHER"))
    with pytest.raises(UnregisteredMatterError):
        scope.serve(app, window_call(OTHER_WINDOW_ORG), serving("ZZ-AUTH"))
    authorisations.revoke(app, holder_call(repo), granted.id)
    with pytest.raises(UnregisteredMatterError):
        scope.serve(app, window_call(), serving("ZZ-AUTH"))
    authorisations.grant(
        app, holder_call(repo), using_unit=WINDOW_ORG, catalogue_code=SITE, matter="ZZ-AUTH",
        purpose="选址核对", valid_until=clock.now + timedelta(hours=1),
    )  # fmt: skip
    assert scope.authorize(app, window_call(), site, serving("ZZ-AUTH")) is not None  # the type is named
    clock.advance(hours=1)
    with pytest.raises(UnregisteredMatterError):
        scope.serve(app, window_call(), serving("ZZ-AUTH"))


def test_an_authorisation_without_a_matter_needs_a_registered_matter_of_the_unit(
    app: Application, repo: Repository, draft: DraftMaker, clock: Clock
) -> None:
    """H2 authorises the unit (no matter named) to use H2's construction permits: under a matter the unit
    registered — for H1, the applicant — the clerk may read H2's permit; under an invented matter, not."""
    theirs = _issue(app, draft, CONSTRUCTION, "410100202406100002", H2)
    authorisations.grant(
        app, holder_call(repo, H2), using_unit=WINDOW_ORG, catalogue_code=CONSTRUCTION,
        purpose="家属材料", valid_until=clock.now + timedelta(days=7),
    )  # fmt: skip
    with pytest.raises(UnregisteredMatterError, match="not an active matter"):
        scope.serve(app, window_call(), serving("ZZ-INVENTED", CREDIT_CODES[1]))
    register_matter(app, WINDOW_ORG, "ZZ-APPLICANT", "001", CREDIT_CODES[0])
    served = scope.authorize(app, window_call(), theirs, serving("ZZ-APPLICANT", CREDIT_CODES[1]))
    assert served is not None and served.basis == "authorisation"


# --- the holder themself ----------------------------------------------------------------------------------


def test_a_holder_reads_only_their_own_certificates(
    app: Application, repo: Repository, draft: DraftMaker
) -> None:
    mine = _issue(app, draft, CONSTRUCTION, "410100202406100001", H1)
    theirs = _issue(app, draft, CONSTRUCTION, "410100202406100002", H2)
    assert scope.authorize(app, holder_call(repo), mine, Serving()) is None
    with pytest.raises(NotHeldError, match=f"no certificate {theirs.identifier}"):
        scope.authorize(app, holder_call(repo), theirs, Serving())


def test_an_id_typed_differently_is_the_same_holder(app: Application, repo: Repository) -> None:
    register_matter(app, WINDOW_ORG, "ZZ-ID", "111", RESIDENT_IDS[0])
    assert scope.serve(app, window_call(), serving("ZZ-ID", RESIDENT_IDS[0].lower(), "111")).matter == "ZZ-ID"


# --- the old table ------------------------------------------------------------------------------------------


def test_the_upgrade_binds_matters_from_the_log(
    empty_database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Revision 0007 carries the audit-log state of the old rule over: the first allowed window look-up of each
    (organisation, matter) that named a holder binds the matter (a later other holder — the old race — does not).
    The table is kept, read-only for history, by revision 0012 (it decides nothing any more).

    The log is written at revision 0006, before PostgreSQL had the head functions of 0010_audit_append_only: the
    head is moved the way the code of that time did, by a plain UPDATE (the test connects as the owner)."""
    monkeypatch.setattr(chain, "_is_postgresql", lambda session: False)
    with Database(empty_database_url) as database:
        database.upgrade("0006_file_key_index")

        def look_up(org: str, matter: str | None, digest: str | None, *, role: str = "window",
                    outcome: Outcome = Outcome.ALLOW) -> None:  # fmt: skip
            record_event(
                database,
                AuditEvent(
                    at=datetime.now(UTC), request_id="r", action="list_holder_certificates", outcome=outcome,
                    status_code=200 if outcome is Outcome.ALLOW else 403, principal=f"{org}/clerk",
                    organisation_code=org, role=role, matter=matter, holder_digest=digest,
                ),
            )  # fmt: skip

        look_up(WINDOW_ORG, "ZZ-OLD", None)  # denied before the holder was known
        look_up(WINDOW_ORG, "ZZ-OLD", "bbbbbbbbbbbbbbbb", outcome=Outcome.DENY)
        look_up(WINDOW_ORG, "ZZ-OLD", "aaaaaaaaaaaaaaaa")
        look_up(WINDOW_ORG, "ZZ-OLD", "cccccccccccccccc")  # the old race let a second holder through
        look_up(OTHER_WINDOW_ORG, "ZZ-OLD", "cccccccccccccccc")
        look_up("11410100990000025A", "ZZ-AGENCY", "dddddddddddddddd", role="agency")
        monkeypatch.undo()
        database.upgrade()
        with database.session(readonly=True) as session:
            rows = session.execute(
                select(MatterBindingRow.organisation_code, MatterBindingRow.matter, MatterBindingRow.holder_digest)
                .order_by(MatterBindingRow.organisation_code)
            ).all()  # fmt: skip
    assert [tuple(r) for r in rows] == [
        (WINDOW_ORG, "ZZ-OLD", "aaaaaaaaaaaaaaaa"),
        (OTHER_WINDOW_ORG, "ZZ-OLD", "cccccccccccccccc"),
    ]
