"""Holders (certstore.services.holders): identity from claims and the assurance policy, sessions and API tokens
(hashed, identity encrypted, expiring), pending logins used once, the access log (others' entries about my
reference), the sealed file and review requests limited to the holder's own certificates."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from certstore.access import AccessDeniedError, AuthenticationError, Role
from certstore.app import Application
from certstore.audit import AuditQuery, chain_pending, query_entries
from certstore.identifiers import HolderIdType, holder_id_digest, holder_ref
from certstore.keystore import KeyStore
from certstore.records import Holder
from certstore.services import holders
from certstore.services.calls import Call, Origin, Via
from certstore.services.certificates import CertificateNotFoundError, NoFileError
from certstore.services.holders import (
    AssurancePolicy,
    ClaimNames,
    ClaimsError,
    HolderIdentity,
    LowAssuranceError,
    identity_from_claims,
)
from certstore.services.reviews import ReviewStatus
from certstore.store.models import HolderLoginAttemptRow, HolderSessionRow
from certstore.store.repository import Repository
from tests.services.conftest import CREDIT_CODES, RESIDENT_IDS
from tests.support import issuing
from tests.support.clock import Clock

KEY = bytes(range(32))
PERSON = {"sub": "u1", "name": "张三", "id_type": "111", "id_number": RESIDENT_IDS[0], "acr": "L2"}


@pytest.fixture
def app(repo: Repository, tmp_path: Path) -> Application:
    return Application(repo, KeyStore(tmp_path / "no-keys"), public_url=issuing.PUBLIC_URL)


def identity(number: str = RESIDENT_IDS[0], name: str = "张三") -> HolderIdentity:
    return HolderIdentity("person", name, HolderIdType.RESIDENT_ID, number, acr="L2", subject="u1")


def holder_call(app: Application, who: HolderIdentity, via: Via = Via.API) -> Call:
    return Call(who.actor(app.repo.holder_key), Origin(via, source="test"))


# --- identity from claims --------------------------------------------------------------------------------


def test_a_natural_person_is_identified_by_name_id_type_and_number() -> None:
    """The claims of a real-name person: the holder is a person with that ID (validated, normalised)."""
    found = identity_from_claims({**PERSON, "id_number": RESIDENT_IDS[0].lower()})
    assert (found.kind, found.name, found.id_type, found.id_number) == (
        "person",
        "张三",
        HolderIdType.RESIDENT_ID,
        RESIDENT_IDS[0],
    )
    assert identity_from_claims({**PERSON, "id_type": "居民身份证"}).id_type is HolderIdType.RESIDENT_ID


def test_a_legal_person_is_identified_by_its_credit_code_and_acts_through_its_agent() -> None:
    """USCC + the company's name + the acting person (经办人): the holder is the company."""
    found = identity_from_claims(
        {"uscc": CREDIT_CODES[0], "org_name": "郑州示例置业有限公司", "agent_name": "李经办", "acr": "L3"}
    )
    assert found.kind == "legal" and found.id_type is HolderIdType.CREDIT_CODE
    assert found.name == "郑州示例置业有限公司" and found.agent_name == "李经办"
    assert found.actor(KEY).name == "李经办" and found.actor(KEY).role is Role.HOLDER


@pytest.mark.parametrize(
    "claims",
    [
        {k: v for k, v in PERSON.items() if k != "id_number"},
        {k: v for k, v in PERSON.items() if k != "name"},
        {**PERSON, "id_number": "110105194912310021"},  # wrong check digit
        {**PERSON, "id_type": "驾驶证"},
        {**PERSON, "id_type": "001"},  # a credit code comes as uscc
        {"uscc": CREDIT_CODES[0], "acr": "L2"},  # no company name, no agent
        {**PERSON, "name": "张\x00三"},
    ],
)
def test_claims_that_do_not_identify_a_holder_are_refused(claims: dict[str, object]) -> None:
    """A missing claim, an invalid ID or an unknown ID type refuses the login."""
    with pytest.raises(ClaimsError):
        identity_from_claims(claims)


def test_the_assurance_level_must_reach_the_configured_minimum() -> None:
    """acr below the minimum, missing or unknown: :class:`LowAssuranceError` with the reason in Chinese."""
    for acr in ("L1", None, "gold"):
        with pytest.raises(LowAssuranceError, match="实名认证"):
            identity_from_claims({**PERSON, "acr": acr})
    strict = AssurancePolicy.from_env({"CERTSTORE_OIDC_MIN_ACR": "L3"})
    with pytest.raises(LowAssuranceError):
        identity_from_claims(PERSON, policy=strict)
    assert identity_from_claims({**PERSON, "acr": "L4"}, policy=strict).acr == "L4"
    custom = AssurancePolicy.from_env(
        {"CERTSTORE_OIDC_ACR_LEVELS": "basic,realname", "CERTSTORE_OIDC_MIN_ACR": "realname"}
    )
    assert identity_from_claims({**PERSON, "acr": "realname"}, policy=custom).acr == "realname"
    with pytest.raises(ValueError):
        AssurancePolicy(("L1",), "L9")


def test_claim_names_can_be_mapped_and_only_a_verified_email_is_kept() -> None:
    """A platform sending ``certNo``/``certType`` is mapped by configuration; an unverified e-mail is dropped."""
    names = ClaimNames.from_env(
        {"CERTSTORE_OIDC_CLAIM_ID_NUMBER": "certNo", "CERTSTORE_OIDC_CLAIM_ID_TYPE": "certType"}
    )
    claims = {
        "name": "张三",
        "certType": "111",
        "certNo": RESIDENT_IDS[1],
        "acr": "L2",
        "email": "a@example.cn",
    }
    found = identity_from_claims(claims, names)
    assert found.id_number == RESIDENT_IDS[1] and found.email is None
    assert identity_from_claims({**claims, "email_verified": True}, names).email == "a@example.cn"


# --- sessions and tokens ---------------------------------------------------------------------------------


def test_a_session_stores_only_the_token_hash_and_the_identity_encrypted(repo: Repository) -> None:
    """The table holds the SM3 hash of the cookie token and no ID number in clear; the token opens the session
    with the identity, another key does not."""
    token, session = holders.start_session(repo, KEY, identity(), client="10.0.0.1", id_token="a.b.c")
    with repo.db.session(readonly=True) as s:
        row = s.scalars(select(HolderSessionRow)).one()
        assert row.token_hash != token.encode() and len(row.token_hash) == 32
        assert RESIDENT_IDS[0].encode() not in row.identity and "张三".encode() not in row.identity
    opened = holders.open_session(repo, KEY, token)
    assert opened.holder_ref == session.holder_ref == identity().reference(repo.holder_key)
    assert opened.identity.id_number == RESIDENT_IDS[0] and opened.id_token == "a.b.c"
    with pytest.raises(AuthenticationError):
        holders.open_session(repo, bytes(32), token)
    with pytest.raises(AuthenticationError):
        holders.open_session(repo, KEY, token + "x")


def test_a_session_ends_at_logout_when_idle_and_at_its_absolute_end(repo: Repository, clock: Clock) -> None:
    """Logout ends it; so do :data:`WEB_IDLE` without a request and :data:`WEB_ABSOLUTE` after login."""
    token, _ = holders.start_session(repo, KEY, identity())
    holders.end_session(repo, token)
    with pytest.raises(AuthenticationError):
        holders.open_session(repo, KEY, token)
    idle, _ = holders.start_session(repo, KEY, identity())
    clock.advance(seconds=holders.WEB_IDLE.total_seconds() + 1)
    with pytest.raises(AuthenticationError, match="过期"):
        holders.open_session(repo, KEY, idle)
    busy, _ = holders.start_session(repo, KEY, identity())
    for _ in range(int(holders.WEB_ABSOLUTE / timedelta(minutes=20)) - 1):
        clock.advance(minutes=20)
        holders.open_session(repo, KEY, busy)
    clock.advance(minutes=20)
    with pytest.raises(AuthenticationError):
        holders.open_session(repo, KEY, busy)


def test_api_tokens_come_from_a_web_session_expire_and_can_be_revoked_by_their_holder_only(
    app: Application, clock: Clock
) -> None:
    """A token is made from a web login, opens only as an API token, expires after its lifetime, is listed
    without its secret and revoked by its holder alone; making and revoking are audited."""
    repo = app.repo
    _, web = holders.start_session(repo, KEY, identity())
    call = holder_call(app, web.identity)
    token, made = holders.issue_api_token(app, call, KEY, web, label="erp", lifetime=timedelta(hours=2))
    assert token.startswith(holders.API_TOKEN_PREFIX)
    assert holders.open_session(repo, KEY, token, kind="api").identity.id_number == RESIDENT_IDS[0]
    with pytest.raises(AuthenticationError):
        holders.open_session(repo, KEY, token)  # not a browser session
    with pytest.raises(ValueError):
        holders.issue_api_token(app, call, KEY, web, lifetime=timedelta(days=31))
    stranger = holder_call(app, identity(RESIDENT_IDS[1], "李四"))
    with pytest.raises(AccessDeniedError):
        holders.revoke_api_token(app, stranger, made.id)
    assert [t.id for t in holders.list_api_tokens(repo, web.holder_ref)] == [made.id]
    clock.advance(hours=2, seconds=1)
    with pytest.raises(AuthenticationError, match="过期"):
        holders.open_session(repo, KEY, token, kind="api")
    second, _ = holders.issue_api_token(app, call, KEY, web)
    assert holders.revoke_api_token(app, call, holders.list_api_tokens(repo, web.holder_ref)[0].id).ended_at
    with pytest.raises(AuthenticationError):
        holders.open_session(repo, KEY, second, kind="api")
    chain_pending(repo.db)
    actions = [e.event.action for e in query_entries(repo.db, AuditQuery(role="holder"), limit=20).entries]
    assert actions.count("holder.token_create") == 2 and "holder.token_revoke" in actions


# --- pending logins --------------------------------------------------------------------------------------


def test_a_pending_login_is_used_once_within_its_time_and_with_its_state(
    repo: Repository, clock: Clock
) -> None:
    """state, nonce and verifier come from the attempt; only hashes are stored; the callback consumes it once;
    a wrong state, a replay or a late callback is refused."""
    pending = holders.begin_login(repo, KEY, "/holder/access")
    assert len(pending.code_verifier) == 43 and pending.nonce != pending.code_verifier
    with repo.db.session(readonly=True) as s:
        row = s.scalars(select(HolderLoginAttemptRow)).one()
        assert pending.state.encode() not in row.state_hash and row.used_at is None
    with pytest.raises(holders.LoginAttemptError, match="不符"):
        holders.finish_login(repo, KEY, pending.token, "another-state")
    attempt = holders.finish_login(repo, KEY, pending.token, pending.state)
    assert (attempt.nonce, attempt.code_verifier, attempt.return_to) == (
        pending.nonce,
        pending.code_verifier,
        "/holder/access",
    )
    with pytest.raises(holders.LoginAttemptError, match="已使用"):
        holders.finish_login(repo, KEY, pending.token, pending.state)
    late = holders.begin_login(repo, KEY)
    clock.advance(seconds=holders.LOGIN_TIMEOUT.total_seconds() + 1)
    with pytest.raises(holders.LoginAttemptError, match="过期"):
        holders.finish_login(repo, KEY, late.token, late.state)
    with pytest.raises(holders.LoginAttemptError):
        holders.finish_login(repo, KEY, None, late.state)


# --- the holder's reads and requests ---------------------------------------------------------------------


CONSTRUCTION = "11410100990000025A001"  # 建筑工程施工许可证 (legal persons)
COMPANY = HolderIdentity(
    "legal", "郑州示例置业有限公司", HolderIdType.CREDIT_CODE, CREDIT_CODES[0], "李经办", "L3"
)
OTHER_COMPANY = HolderIdentity(
    "legal", "郑州另一置业有限公司", HolderIdType.CREDIT_CODE, CREDIT_CODES[1], "王经办", "L3"
)


def _issued(app: Application, draft: object, number: str, who: HolderIdentity) -> str:
    holder = Holder(who.name, who.id_type, who.id_number)
    made = draft(CONSTRUCTION, number, holder=holder)  # type: ignore[operator]
    return issuing.issue(app, made).certificate.identifier


def test_the_sealed_file_and_reviews_are_for_the_holders_own_certificates(
    app: Application, draft: object
) -> None:
    """Another holder's certificate answers as one that does not exist (a denial is recorded); a review is filed
    about one's own certificate, listed with its due date, and refused for someone else's."""
    mine = _issued(app, draft, "410100202406180101", COMPANY)
    theirs = _issued(app, draft, "410100202406180201", OTHER_COMPANY)
    call = holder_call(app, COMPANY)
    with pytest.raises(NoFileError):
        holders.sealed_file(app, call, mine)  # stored without a file
    with pytest.raises(CertificateNotFoundError):
        holders.sealed_file(app, call, theirs)
    with pytest.raises(CertificateNotFoundError):
        holders.file_review(app, call, theirs, reason="不是我的")
    review = holders.file_review(app, call, mine, reason="名称有误")
    assert review.requester == f"holder:{COMPANY.reference(app.repo.holder_key)}"
    assert [(r.id, r.status) for r in holders.my_reviews(app, call)] == [(review.id, ReviewStatus.OPEN)]
    assert holders.my_reviews(app, holder_call(app, OTHER_COMPANY)) == []
    chain_pending(app.repo.db)
    denied = query_entries(
        app.repo.db, AuditQuery(action="certificate.file", outcome="deny"), limit=5
    ).entries
    assert [e.event.certificate_identifier for e in denied] == [theirs]
    with pytest.raises(AccessDeniedError):
        holders.file_review(app, issuing.call(), mine, reason="operator is no holder")


def test_the_access_log_lists_what_others_did_with_my_reference(app: Application) -> None:
    """Entries about my holder reference by others, newest first, with the unit's name; my own actions and
    entries about other holders are not listed."""
    from certstore.access import Actor, Principal
    from certstore.services import access
    from certstore.services.calls import audit_now

    person = identity()
    mine = person.reference(app.repo.holder_key)
    other = holder_ref(holder_id_digest(app.repo.holder_key, HolderIdType.RESIDENT_ID, RESIDENT_IDS[1]))
    access.create_token(
        app.repo,
        role=Role.WINDOW,
        organisation_code="12410100MB0000001X",
        organisation_name="郑州市政务服务中心",
        name="clerk",
    )
    clerk = Call(
        Actor.of(Principal(1, "clerk", Role.WINDOW, "12410100MB0000001X", "郑州市政务服务中心")),
        Origin(Via.PAGE),
    )
    assert app.audit is not None
    audit_now(app.audit, clerk, clerk.event("holder.lookup", holder_digest=mine, matter="ZZ-1"))
    audit_now(app.audit, clerk, clerk.event("holder.lookup", holder_digest=other, matter="ZZ-2"))
    call = holder_call(app, person)
    holders.record_login(app, call)
    entries = holders.access_log(app, call)
    assert [(e.action, e.matter, e.organisation_name, e.role) for e in entries] == [
        ("holder.lookup", "ZZ-1", "郑州市政务服务中心", "window")
    ]
    with pytest.raises(AccessDeniedError):
        holders.access_log(app, clerk)
