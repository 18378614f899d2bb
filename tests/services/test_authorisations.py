"""Authorised use (证照授权使用, certstore.services.authorisations) on each database backend: a holder grants a using
unit the use of a certificate or a type they hold, lists and revokes their grants; each grant and revocation is
audited in its transaction, each refusal as a denial; bad input is a ValueError naming the field; and the window's
sharing reads honour the grant — only what it names, only for that unit."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from certstore.access import AccessDeniedError, Actor, Principal, Role
from certstore.app import Application
from certstore.audit import AuditEvent, DirectSink
from certstore.identifiers import holder_id_digest, holder_ref
from certstore.keystore import KeyStore
from certstore.records import Certificate, Holder
from certstore.services import access, authorisations, sharing
from certstore.services.authorisations import AuthorisationInputError
from certstore.services.calls import Call, Origin, Via
from certstore.services.certificates import CertificateNotFoundError
from certstore.services.keys import init_dev_keys
from certstore.services.scope import Serving, UnregisteredMatterError
from certstore.store.repository import Repository
from tests.services.conftest import CREDIT_CODES, DraftMaker
from tests.support import issuing
from tests.support.clock import Clock

UNIT = "12410100MB0000001X"
OTHER_UNIT = "12410100MB0000002X"
CONSTRUCTION = "11410100990000025A001"
SITE = "11410100990000017F001"
H1 = Holder("郑州示例置业有限公司", "001", CREDIT_CODES[0])  # type: ignore[arg-type]
H2 = Holder("郑州另一置业有限公司", "001", CREDIT_CODES[1])  # type: ignore[arg-type]


class RecordingSink:
    def __init__(self, inner: DirectSink) -> None:
        self.inner, self.events = inner, []

    def submit(self, event: AuditEvent) -> None:
        self.inner.submit(event)
        self.events.append(event)


@pytest.fixture(scope="module")
def dev_keystore(tmp_path_factory: pytest.TempPathFactory) -> KeyStore:
    store = KeyStore(tmp_path_factory.mktemp("authorisation-keys") / "keys")
    init_dev_keys(store)
    return store


@pytest.fixture
def app(repo: Repository, dev_keystore: KeyStore) -> Application:
    access.ensure_organisation(repo, UNIT, "郑州市政务服务中心")
    access.ensure_organisation(repo, OTHER_UNIT, "金水区政务服务中心")
    sink = RecordingSink(DirectSink(repo.db))
    return Application(repo, dev_keystore, audit=sink, public_url=issuing.PUBLIC_URL)


def ref(repo: Repository, holder: Holder) -> str:
    return holder_ref(holder_id_digest(repo.holder_key, "001", holder.id_number))


def holder(repo: Repository, who: Holder = H1) -> Call:
    return Call(Actor.holder(ref(repo, who), who.name), Origin(Via.API))


def clerk(unit: str = UNIT) -> Call:
    return Call(Actor.of(Principal(3, "clerk", Role.WINDOW, unit, "中心")), Origin(Via.API))


def denials(app: Application) -> list[AuditEvent]:
    assert isinstance(app.audit, RecordingSink)
    return [e for e in app.audit.events if e.outcome == "deny"]


@pytest.fixture
def permits(app: Application, draft: DraftMaker) -> tuple[Certificate, Certificate, Certificate]:
    """H1's construction permit and site opinion, H2's construction permit."""
    made = [
        issuing.issue(app, draft(CONSTRUCTION, "410100202406100001", holder=H1), file_maker=None),
        issuing.issue(app, draft(SITE, None, holder=H1), file_maker=None),
        issuing.issue(app, draft(CONSTRUCTION, "410100202406100002", holder=H2), file_maker=None),
    ]
    return made[0].certificate, made[1].certificate, made[2].certificate


def test_grant_list_and_revoke(
    app: Application, repo: Repository, clock: Clock, permits: tuple[Certificate, ...]
) -> None:
    permit = permits[0]
    until = clock.now + timedelta(days=7)
    one = authorisations.grant(app, holder(repo), using_unit=UNIT, certificate_identifier=permit.identifier,
                               matter=" ZZ-A-1 ", purpose=" 办理变更 ", valid_until=until)  # fmt: skip
    kind = authorisations.grant(app, holder(repo), using_unit=OTHER_UNIT, catalogue_code=SITE,
                                purpose="选址核对", valid_until=until)  # fmt: skip
    assert (one.holder_ref, one.using_unit, one.using_unit_name, one.matter, one.purpose) == (
        ref(repo, H1), UNIT, "郑州市政务服务中心", "ZZ-A-1", "办理变更")  # fmt: skip
    assert one.active and kind.active and kind.matter is None and kind.certificate_identifier is None
    assert [a.id for a in authorisations.list_for_holder(app, holder(repo))] == [kind.id, one.id]
    assert authorisations.list_for_holder(app, holder(repo, H2)) == []
    revoked = authorisations.revoke(app, holder(repo), one.id)
    assert revoked.revoked_at == clock.now and not revoked.active
    assert authorisations.revoke(app, holder(repo), one.id) == revoked  # again: unchanged
    clock.advance(days=8)
    assert [a.active for a in authorisations.list_for_holder(app, holder(repo))] == [False, False]
    entries = [(e.action, e.holder_digest, e.matter) for e in issuing.audit_entries(repo)
               if e.action.startswith("authorisation.")]  # fmt: skip
    assert entries == [
        ("authorisation.grant", ref(repo, H1), "ZZ-A-1"),
        ("authorisation.grant", ref(repo, H1), None),
        ("authorisation.revoke", ref(repo, H1), "ZZ-A-1"),
    ]


def test_a_holder_authorises_only_what_they_hold_and_revokes_only_their_own(
    app: Application, repo: Repository, clock: Clock, permits: tuple[Certificate, ...]
) -> None:
    until = clock.now + timedelta(days=7)
    theirs = permits[2]
    with pytest.raises(AccessDeniedError, match="you hold no certificate"):
        authorisations.grant(app, holder(repo), using_unit=UNIT, certificate_identifier=theirs.identifier,
                             purpose="x", valid_until=until)  # fmt: skip
    with pytest.raises(AccessDeniedError, match="you hold no certificate of type"):
        authorisations.grant(app, holder(repo, H2), using_unit=UNIT, catalogue_code=SITE, purpose="x",
                             valid_until=until)  # fmt: skip
    mine = authorisations.grant(app, holder(repo), using_unit=UNIT, catalogue_code=SITE, purpose="x",
                                valid_until=until)  # fmt: skip
    with pytest.raises(AccessDeniedError, match="no authorisation"):
        authorisations.revoke(app, holder(repo, H2), mine.id)
    for call in (clerk(), Call.operator()):
        with pytest.raises(AccessDeniedError, match="holders do"):
            authorisations.grant(
                app, call, using_unit=UNIT, catalogue_code=SITE, purpose="x", valid_until=until
            )
        with pytest.raises(AccessDeniedError):
            authorisations.list_for_holder(app, call)
    assert [(e.action, e.status_code) for e in denials(app)] == [("authorisation.grant", 403)] * 2 + [
        ("authorisation.revoke", 403)] + [("authorisation.grant", 403)] * 2  # fmt: skip
    assert authorisations.list_for_holder(app, holder(repo))[0].revoked_at is None


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"catalogue_code": None}, "either one certificate"),
        ({"certificate_identifier": "X"}, "not both or neither"),
        ({"using_unit": " "}, "using_unit"),
        ({"using_unit": "99999999999999999X"}, "no organisation"),
        ({"purpose": ""}, "purpose"),
        ({"valid_until": "past"}, "valid_until: must lie in the future"),
        ({"valid_until": "naive"}, "time zone"),
        ({"matter": "M" * 101}, "matter: at most 100"),
    ],
)
def test_bad_input_is_a_value_error_naming_the_field(
    app: Application, repo: Repository, clock: Clock, permits: tuple[Certificate, ...],
    changes: dict[str, object], message: str,
) -> None:  # fmt: skip
    fields: dict[str, object] = {"using_unit": UNIT, "catalogue_code": SITE, "purpose": "用途",
                                 "valid_until": clock.now + timedelta(days=1)}  # fmt: skip
    fields.update(changes)
    if fields["valid_until"] == "past":
        fields["valid_until"] = clock.now
    elif fields["valid_until"] == "naive":
        fields["valid_until"] = datetime(2030, 1, 1)
    with pytest.raises(AuthorisationInputError, match=message):
        authorisations.grant(app, holder(repo), **fields)  # type: ignore[arg-type]
    assert authorisations.list_for_holder(app, holder(repo)) == []


def test_the_window_reads_what_the_holder_authorised_and_nothing_else(
    app: Application, repo: Repository, clock: Clock, permits: tuple[Certificate, ...]
) -> None:
    """H1 authorises UNIT for matter ZZ-A-2 to use the construction permit: the clerk lists only that
    certificate, reads it, cannot read H1's site opinion (not found); the other unit is refused; after the
    revocation the unit is refused too — each refusal audited as a denial."""
    permit, site, _theirs = permits
    granted = authorisations.grant(app, holder(repo), using_unit=UNIT, certificate_identifier=permit.identifier,
                                   matter="ZZ-A-2", purpose="办理", valid_until=clock.now + timedelta(days=1))  # fmt: skip
    serving = Serving("ZZ-A-2", "001", H1.id_number)
    found = sharing.holder_certificates(app, clerk(), "001", H1.id_number, serving)
    assert [c.identifier for c in found] == [permit.identifier]
    assert sharing.read(app, clerk(), permit.identifier, serving).identifier == permit.identifier
    with pytest.raises(CertificateNotFoundError, match=f"no certificate {site.identifier}"):
        sharing.read(app, clerk(), site.identifier, serving)
    with pytest.raises(UnregisteredMatterError):
        sharing.holder_certificates(app, clerk(OTHER_UNIT), "001", H1.id_number, serving)
    authorisations.revoke(app, holder(repo), granted.id)
    with pytest.raises(UnregisteredMatterError):
        sharing.read(app, clerk(), permit.identifier, serving)
    reasons = [(e.action, e.status_code) for e in denials(app)]
    assert reasons == [("certificate.read", 404), ("holder.lookup", 403), ("certificate.read", 403)]
    assert "authorisation does not cover" in (denials(app)[0].reason or "")
    assert isinstance(app.audit, RecordingSink)
    allowed = [e for e in app.audit.events if e.action == "holder.lookup" and e.outcome == "allow"]
    assert allowed[0].details["authorisations"] == [granted.id]


def test_the_holder_reads_their_own_certificates_through_sharing(
    app: Application, repo: Repository, permits: tuple[Certificate, ...]
) -> None:
    """The holder role: read, history, status, preview and the look-up by their own ID; another holder's
    certificate answers as one that does not exist; another ID is refused; attach is for window staff."""
    permit, _site, theirs = permits
    me = holder(repo)
    assert sharing.read(app, me, permit.identifier, Serving()).identifier == permit.identifier
    assert [v.identifier for v in sharing.history(app, me, permit.identifier, Serving())] == [
        permit.identifier
    ]
    assert sharing.status(app, me, permit.identifier, Serving()).identifier == permit.identifier
    assert {c.identifier for c in sharing.holder_certificates(app, me, "001", H1.id_number, Serving())} == {
        permit.identifier, permits[1].identifier}  # fmt: skip
    with pytest.raises(CertificateNotFoundError, match=f"no certificate {theirs.identifier}"):
        sharing.read(app, me, theirs.identifier, Serving())
    with pytest.raises(AccessDeniedError, match="only their own"):
        sharing.holder_certificates(app, me, "001", H2.id_number, Serving())
    with pytest.raises(AccessDeniedError, match="window staff"):
        sharing.attach(app, me, [permit.identifier], Serving())
    assert isinstance(app.audit, RecordingSink)
    reads = [e for e in app.audit.events if e.role == "holder"]
    assert all(e.principal == f"holder:{ref(repo, H1)}" for e in reads)
    assert [e.outcome for e in reads] == ["allow"] * 4 + ["deny"] * 3
