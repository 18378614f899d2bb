"""The seal registry (电子印章管理): registration from the key store, state changes with effective times and their
audit entries, who may change what, sealing refused for a withdrawn seal, catalogue entries bound to their
issuer's seals — and what verification makes of it (``seal_owner``, online and offline)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from certstore.access import AccessDeniedError, Actor, Principal, Role
from certstore.app import Application
from certstore.catalogue import CatalogueError
from certstore.catalogue.definitions import shipped_entries
from certstore.checks import CheckResult, Indication
from certstore.keystore import REPOSITORY_SEAL_NAME, KeyStore
from certstore.packaging.face import lay_out_face
from certstore.packaging.layout import FaceData
from certstore.packaging.ofd import add_seal, build_ofd_files
from certstore.records import PreparedVersion
from certstore.seal import parse_seal
from certstore.services import catalogue, seals, status_snapshot, verification
from certstore.services.certificates import FileMaker
from certstore.services.issuance import (
    OFD_MEDIA_TYPE,
    SealingKey,
    catalogue_file_maker,
    sealing_key_for_seal,
)
from certstore.services.keys import DEV_REPOSITORY, init_dev_keys
from certstore.services.seals import SealStatus
from certstore.store.repository import Repository
from certstore.tsa.keys import local_authority
from certstore.tsa.stampers import LocalTimeStamper
from certstore.verify import VerificationReport
from certstore.verify.pipeline import SEAL_OWNER
from tests.services.conftest import Clock, DraftMaker
from tests.support import issuing

ENTRY = shipped_entries()[0]
ISSUER = ENTRY.issuer
OTHER = next(e.issuer for e in shipped_entries() if e.issuer.credit_code != ISSUER.credit_code)
AGENCY = Actor.of(Principal(7, "wang.wu", Role.AGENCY, ISSUER.credit_code, ISSUER.name))
OTHER_AGENCY = Actor.of(Principal(8, "qian.qi", Role.AGENCY, OTHER.credit_code, OTHER.name))
BUREAU = Principal(9, "zhao.liu", Role.BUREAU, "11410100MB1700000X", "郑州市大数据管理局")
#: The key store is made an hour back, so that effective times and signing times have room before "now".
MADE = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)


@pytest.fixture(scope="module")
def keystore(tmp_path_factory: pytest.TempPathFactory) -> KeyStore:
    store = KeyStore(tmp_path_factory.mktemp("keys") / "keys")
    init_dev_keys(store, now=MADE)
    return store


@pytest.fixture
def app(repo: Repository, keystore: KeyStore) -> Application:
    return issuing.application(repo, keystore)


def _key(store: KeyStore, name: str) -> SealingKey:
    return sealing_key_for_seal(store, name)


def _es_id(store: KeyStore, name: str) -> str:
    return parse_seal(store.seal(name)).es_id


def _sealed_with(key: SealingKey, *, signing_time: datetime | None = None, stamped: bool = False,
                 store: KeyStore | None = None) -> FileMaker:  # fmt: skip
    """Seals like :func:`certstore.services.issuance.make_ofd` but with any key — the owner check bypassed, as a
    forger with someone else's key would."""
    authority = local_authority(store) if stamped and store is not None else None

    def make(prepared: PreparedVersion) -> tuple[bytes, str]:
        data = FaceData.from_prepared(prepared)
        layout = lay_out_face(data, verify_base_url=issuing.PUBLIC_URL)
        package = build_ofd_files(
            layout, metadata={k: str(v) for k, v in data.metadata.items()}, doc_id=data.identifier
        )
        assert layout.seal_box is not None
        sealed = add_seal(
            package, seal=key.seal, signer=key.signer, signer_certificate=key.certificate,
            stamp_box=layout.seal_box, signing_time=signing_time,
            timestamper=None if authority is None else LocalTimeStamper.of(authority),
        )  # fmt: skip
        return sealed, OFD_MEDIA_TYPE

    return make


def _number(n: int) -> str:
    """A certificate number in the format of the catalogue type (e.g. 选字第410100202400036号)."""
    return f"选字第4101002024{n:05d}号"


def _issued(app: Application, draft: DraftMaker, maker: FileMaker, number: str) -> bytes:
    result = issuing.issue(app, draft(number=number), file_maker=maker)
    certificate = result.certificate
    assert certificate.file_key is not None
    return app.repo.blobs.get(certificate.file_key)


def _owner_check(report: VerificationReport) -> tuple[CheckResult, str, tuple[str, ...]]:
    assert report.certificate is not None
    check = next(c for c in report.certificate.checks if c.name == SEAL_OWNER)
    return check.result, check.reason, check.warnings


def _actions(repo: Repository) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (e.action, e.outcome.value, dict(e.details))
        for e in issuing.audit_entries(repo)
        if e.action.startswith("seal.")
    ]


# --- the registry ------------------------------------------------------------------------------------------


def test_the_key_stores_seals_are_registered_once_with_their_owners(
    app: Application, keystore: KeyStore
) -> None:
    registered = seals.sync_keystore_seals(app)
    assert _es_id(keystore, ISSUER.credit_code) in registered
    assert _es_id(keystore, REPOSITORY_SEAL_NAME) in registered
    assert seals.sync_keystore_seals(app) == []  # idempotent

    listed = {s.keystore_name: s for s in seals.list_seals(app, issuing.call())}
    assert listed[REPOSITORY_SEAL_NAME].owner_code == DEV_REPOSITORY["credit_code"]
    own = listed[ISSUER.credit_code]
    assert (own.owner_code, own.owner_name) == (ISSUER.credit_code, ISSUER.name)
    assert own.state.status is SealStatus.VALID
    assert _actions(app.repo)[-1][:2] == ("seal.list", "allow")

    agency_view = seals.list_seals(app, issuing.call(AGENCY))
    assert {s.owner_code for s in agency_view} == {ISSUER.credit_code}


def test_suspend_resume_revoke_with_effective_times_and_one_audit_entry_each(
    app: Application, keystore: KeyStore, clock: Clock
) -> None:
    es_id = _es_id(keystore, ISSUER.credit_code)
    t1, t2, t3 = (MADE + timedelta(minutes=m) for m in (10, 20, 30))
    operator = issuing.call()
    assert (
        seals.suspend(app, operator, es_id, reason="印章托管设备送修", effective_at=t1).state.status
        is SealStatus.SUSPENDED
    )
    assert (
        seals.resume(app, operator, es_id, reason="设备修复", effective_at=t2).state.status
        is SealStatus.VALID
    )
    revoked = seals.revoke(app, operator, es_id, reason="私钥泄露", effective_at=t3)
    assert (revoked.state.status, revoked.state.effective_at) == (SealStatus.REVOKED, t3)

    assert seals.seal_state(app.repo, es_id, t1 - timedelta(seconds=1)).status is SealStatus.VALID
    assert seals.seal_state(app.repo, es_id, t1 + timedelta(minutes=1)) == seals.SealState(
        SealStatus.SUSPENDED, t1
    )
    assert seals.seal_state(app.repo, es_id, t2).status is SealStatus.VALID
    assert seals.seal_state(app.repo, es_id, t3).status is SealStatus.REVOKED

    changes = [a for a in _actions(app.repo) if a[0] != "seal.list"]
    assert [(action, outcome) for action, outcome, _ in changes] == [
        ("seal.suspend", "allow"), ("seal.resume", "allow"), ("seal.revoke", "allow"),
    ]  # fmt: skip
    assert changes[-1][2] | {"via": "cli"} == changes[-1][2]
    assert {k: changes[-1][2][k] for k in ("es_id", "from_status", "to_status", "effective_at", "owner")} == {
        "es_id": es_id, "from_status": "valid", "to_status": "revoked", "effective_at": t3.isoformat(),
        "owner": ISSUER.credit_code,
    }  # fmt: skip

    with pytest.raises(seals.SealTransitionError, match="revocation is final"):
        seals.resume(app, operator, es_id, reason="误操作")
    with pytest.raises(seals.SealTransitionError, match="revocation is final"):
        seals.revoke(app, operator, es_id, reason="再次吊销")
    # a leak found late: the revocation is dated back before the ones recorded
    earlier = seals.revoke(app, operator, es_id, reason="泄露更早", effective_at=t1 - timedelta(minutes=5))
    assert earlier.state.effective_at == t1 - timedelta(minutes=5)
    with pytest.raises(seals.UnknownSealError):
        seals.revoke(app, operator, "41019999999999", reason="x")


def test_effective_times_are_bounded(app: Application, keystore: KeyStore, clock: Clock) -> None:
    es_id = _es_id(keystore, ISSUER.credit_code)
    operator = issuing.call()
    with pytest.raises(seals.SealTransitionError, match="validStart"):
        seals.revoke(app, operator, es_id, reason="x", effective_at=MADE - timedelta(days=1))
    with pytest.raises(seals.SealTransitionError, match="future"):
        seals.suspend(app, operator, es_id, reason="x", effective_at=clock.now + timedelta(hours=1))
    seals.suspend(app, operator, es_id, reason="x", effective_at=MADE + timedelta(minutes=30))
    with pytest.raises(seals.SealTransitionError, match="only a revocation may be dated back"):
        seals.resume(app, operator, es_id, reason="x", effective_at=MADE + timedelta(minutes=20))
    with pytest.raises(seals.SealTransitionError, match="already suspended"):
        seals.suspend(app, operator, es_id, reason="x")


def test_an_agency_suspends_or_revokes_only_its_own_seals(app: Application, keystore: KeyStore) -> None:
    own, other = _es_id(keystore, ISSUER.credit_code), _es_id(keystore, OTHER.credit_code)
    with pytest.raises(AccessDeniedError, match="not to your organisation"):
        seals.revoke(app, issuing.call(AGENCY), other, reason="不是我的章")
    assert (
        seals.suspend(app, issuing.call(AGENCY), own, reason="暂停使用").state.status is SealStatus.SUSPENDED
    )
    with pytest.raises(AccessDeniedError, match="may not resume"):
        seals.resume(app, issuing.call(AGENCY), own, reason="恢复")
    assert seals.seal_state(app.repo, other).status is SealStatus.VALID
    assert [(a, o) for a, o, _ in _actions(app.repo)] == [
        ("seal.revoke", "deny"), ("seal.suspend", "allow"), ("seal.resume", "deny"),
    ]  # fmt: skip


def test_sealing_refuses_a_suspended_or_revoked_seal(
    app: Application, keystore: KeyStore, clock: Clock
) -> None:
    assert app.sealing_key(ENTRY).certificate.organization_identifier == ISSUER.credit_code
    seals.suspend(app, issuing.call(), _es_id(keystore, ISSUER.credit_code), reason="送修")
    fresh = issuing.application(app.repo, keystore)  # a new process (the gate caches a state for 5 s)
    with pytest.raises(seals.SealWithdrawnError, match="suspended"):
        fresh.sealing_key(ENTRY)
    seals.resume(app, issuing.call(), _es_id(keystore, ISSUER.credit_code), reason="修复")
    assert issuing.application(app.repo, keystore).sealing_key(ENTRY).seal == keystore.seal(
        ISSUER.credit_code
    )
    seals.revoke(app, issuing.call(), _es_id(keystore, ISSUER.credit_code), reason="泄露")
    with pytest.raises(seals.SealWithdrawnError, match="revoked"):
        issuing.application(app.repo, keystore).sealing_key(ENTRY)


def test_the_seal_gate_sees_a_change_after_its_ttl(app: Application, keystore: KeyStore) -> None:
    ticks = [0.0]
    gate = seals.SealGate(ttl=5.0, clock=lambda: ticks[0])
    seal = keystore.seal(ISSUER.credit_code)
    gate.require_usable(app, seal, ISSUER.credit_code)
    seals.revoke(app, issuing.call(), parse_seal(seal).es_id, reason="泄露")
    gate.require_usable(app, seal, ISSUER.credit_code)  # cached
    ticks[0] = 6.0
    with pytest.raises(seals.SealWithdrawnError):
        gate.require_usable(app, seal, ISSUER.credit_code)


# --- the catalogue -----------------------------------------------------------------------------------------


def _document(seal: str) -> dict[str, Any]:
    document = ENTRY.to_document()
    document["version"] += 1
    document["seal"] = seal
    return document


def test_the_catalogue_refuses_another_issuers_seal_at_submission_and_approval(
    app: Application, keystore: KeyStore
) -> None:
    catalogue.load_shipped(app.repo)
    agency = Principal(7, "wang.wu", Role.AGENCY, ISSUER.credit_code, ISSUER.name)
    check = seals.entry_seal_check(app)
    for foreign in (OTHER.credit_code, REPOSITORY_SEAL_NAME):
        with pytest.raises(CatalogueError, match="not to the issuer") as refused:
            catalogue.submit_entry(app.repo, _document(foreign), principal=agency, seal_check=check)
        assert refused.value.errors[0][0] == "seal"
    # stored pending without the check (as by an older version), the bureau's approval refuses it
    catalogue.submit_entry(app.repo, _document(OTHER.credit_code), principal=agency)
    with pytest.raises(CatalogueError, match="not to the issuer"):
        catalogue.review_entry(app.repo, ENTRY.code, ENTRY.version + 1, approve=True, reviewer=BUREAU,
                               seal_check=check)  # fmt: skip
    assert catalogue.get_submission(app.repo, ENTRY.code, ENTRY.version + 1).status == "pending"


def test_the_catalogue_accepts_the_issuers_own_seal_but_not_once_revoked(
    app: Application, keystore: KeyStore
) -> None:
    catalogue.load_shipped(app.repo)
    agency = Principal(7, "wang.wu", Role.AGENCY, ISSUER.credit_code, ISSUER.name)
    check = seals.entry_seal_check(app)
    submitted, created = catalogue.submit_entry(
        app.repo, _document("default"), principal=agency, seal_check=check
    )
    assert created and submitted.status == "pending"
    seals.revoke(app, issuing.call(), _es_id(keystore, ISSUER.credit_code), reason="泄露")
    with pytest.raises(CatalogueError, match="revoked"):
        catalogue.review_entry(app.repo, ENTRY.code, ENTRY.version + 1, approve=True, reviewer=BUREAU,
                               seal_check=check)  # fmt: skip


# --- verification: seal_owner ------------------------------------------------------------------------------


def test_a_certificate_sealed_with_another_organisations_seal_is_invalid(
    app: Application, keystore: KeyStore, draft: DraftMaker
) -> None:
    for seal_name in (REPOSITORY_SEAL_NAME, OTHER.credit_code):
        data = _issued(
            app,
            draft,
            _sealed_with(_key(keystore, seal_name)),
            _number(1 if seal_name == REPOSITORY_SEAL_NAME else 2),
        )
        report = verification.verify_presented(app, data).report
        assert report.indication is Indication.INVALID, report.to_dict()
        result, reason, _ = _owner_check(report)
        assert result is CheckResult.FAILED
        assert f"not to the issuer {ISSUER.name} ({ISSUER.credit_code})" in reason
        assert [s.indication for s in report.signatures] == [Indication.VALID]  # the seal itself is intact
        signer = report.signatures[0].signer
        assert signer is not None and signer.organization_identifier != ISSUER.credit_code


def test_the_issuers_own_seal_passes(app: Application, keystore: KeyStore, draft: DraftMaker) -> None:
    data = _issued(app, draft, catalogue_file_maker(keystore), _number(3))
    report = verification.verify_presented(app, data).report
    assert report.indication is Indication.VALID, report.to_dict()
    result, reason, _ = _owner_check(report)
    assert (
        result is CheckResult.PASSED
        and ISSUER.credit_code in reason
        and "valid in the seal registry" in reason
    )
    assert [c.name for c in report.certificate.checks][:3] == ["status", "content_match", SEAL_OWNER]  # type: ignore[union-attr]
    signer = report.to_dict()["signatures"][0]["signer"]  # type: ignore[index]
    assert signer["organization_identifier"] == ISSUER.credit_code and signer["organization"] == ISSUER.name


def test_a_seal_revoked_before_the_signing_time_is_invalid_online_and_offline(
    app: Application, keystore: KeyStore, draft: DraftMaker, clock: Clock
) -> None:
    es_id = _es_id(keystore, ISSUER.credit_code)
    leaked = clock.now.replace(microsecond=0) - timedelta(minutes=10)
    seals.revoke(app, issuing.call(), es_id, reason="私钥泄露", effective_at=leaked)
    data = _issued(app, draft, catalogue_file_maker(keystore), _number(4))  # the key store still has the key
    online = verification.verify_presented(app, data).report
    assert online.indication is Indication.INVALID
    result, reason, _ = _owner_check(online)
    assert result is CheckResult.FAILED and f"was revoked since {leaked.isoformat()}" in reason

    snapshot = status_snapshot.make_snapshot(app, seal_states=seals.withdrawn_seals)
    offline = verification.verify_presented(app, data, offline=True, status_snapshot=snapshot.data).report
    assert offline.indication is Indication.INVALID
    assert _owner_check(offline)[0] is CheckResult.FAILED


def test_a_seal_revoked_after_the_signing_time(
    app: Application, keystore: KeyStore, draft: DraftMaker, clock: Clock
) -> None:
    """Without a time-stamp the signing time is the signer's own word: INDETERMINATE now, VALID asked at a time
    before the revocation; with a verified token the signature stands (a warning names the revocation)."""
    signed = clock.now.replace(microsecond=0) - timedelta(minutes=3)
    plain = _issued(
        app, draft, _sealed_with(_key(keystore, ISSUER.credit_code), signing_time=signed), _number(5)
    )
    stamped = _issued(app, draft, _sealed_with(_key(keystore, ISSUER.credit_code), stamped=True, store=keystore),
                      _number(6))  # fmt: skip
    clock.advance(minutes=5)
    revoked_at = clock.now.replace(microsecond=0) - timedelta(minutes=1)
    seals.revoke(
        app, issuing.call(), _es_id(keystore, ISSUER.credit_code), reason="私钥泄露", effective_at=revoked_at
    )

    now = verification.verify_presented(app, plain).report
    assert now.indication is Indication.INDETERMINATE, now.to_dict()
    result, reason, _ = _owner_check(now)
    assert result is CheckResult.UNKNOWN and "signer's own clock" in reason

    before = verification.verify_presented(app, plain, at=revoked_at - timedelta(seconds=30)).report
    assert before.indication is Indication.VALID, before.to_dict()
    assert verification.verify_presented(
        app, plain, at=revoked_at + timedelta(seconds=1)
    ).report.indication is (Indication.INDETERMINATE)

    vouched = verification.verify_presented(app, stamped).report
    assert vouched.signatures[0].check("timestamp").result is CheckResult.PASSED
    assert vouched.indication is Indication.VALID, vouched.to_dict()
    result, _, warnings = _owner_check(vouched)
    assert result is CheckResult.PASSED and any("verified time-stamp" in w for w in warnings)


def test_suspended_then_resumed(
    app: Application, keystore: KeyStore, draft: DraftMaker, clock: Clock
) -> None:
    now = clock.now.replace(microsecond=0)
    es_id = _es_id(keystore, ISSUER.credit_code)
    seals.suspend(app, issuing.call(), es_id, reason="送修", effective_at=now - timedelta(minutes=20))
    seals.resume(app, issuing.call(), es_id, reason="修复", effective_at=now - timedelta(minutes=10))
    key = _key(keystore, ISSUER.credit_code)
    during = _issued(app, draft, _sealed_with(key, signing_time=now - timedelta(minutes=15)), _number(7))
    after = _issued(app, draft, _sealed_with(key, signing_time=now - timedelta(minutes=5)), _number(8))
    report = verification.verify_presented(app, during).report
    assert report.indication is Indication.INVALID
    assert "was suspended since" in _owner_check(report)[1]
    assert verification.verify_presented(app, after).report.indication is Indication.VALID
