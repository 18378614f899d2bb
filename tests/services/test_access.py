"""Tokens, client-certificate bindings and bulk-access grants (certstore.services.access)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import event, select

from certstore.access import AccessDeniedError, AuthenticationError, Role
from certstore.services import access
from certstore.store.models import ApiTokenRow
from certstore.store.repository import Repository
from tests.services.conftest import Clock

ORG = "12410100MB0000001X"
BUREAU_ORG = "11410100MB1700000X"


def test_tokens_are_stored_hashed_and_authenticate_until_expiry(repo: Repository, clock: Clock) -> None:
    issued = access.create_token(
        repo, role=Role.WINDOW, organisation_code=ORG, organisation_name="政务服务中心", days=1
    )
    with repo.db.session() as session:
        stored = session.scalars(select(ApiTokenRow)).one()
        assert (
            stored.secret_hash is not None
            and issued.token.split("_", 2)[2].encode() not in stored.secret_hash
        )
        assert len(stored.secret_hash) == 32
    principal = access.authenticate(repo, issued.token)
    assert principal.ref == f"{ORG}/window" and principal.organisation_name == "政务服务中心"
    clock.advance(days=1, seconds=1)
    with pytest.raises(AuthenticationError, match="expired"):
        access.authenticate(repo, issued.token)


def test_last_use_is_recorded_to_the_minute_without_a_write_per_request(
    repo: Repository, clock: Clock
) -> None:
    issued = access.create_token(repo, role=Role.WINDOW, organisation_code=ORG)

    def last_used() -> object:
        (token,) = access.list_tokens(repo)
        return token.last_used_at

    writes: list[str] = []

    def count(conn: object, cursor: object, statement: str, *args: object) -> None:
        if statement.lstrip().upper().startswith(("INSERT", "UPDATE", "DELETE", "MERGE")):  # upserts too
            writes.append(statement)

    event.listen(repo.db.engine, "before_cursor_execute", count)
    try:
        access.authenticate(repo, issued.token)
        first = last_used()
        assert first == clock.now and len(writes) == 1
        clock.advance(seconds=30)
        for _ in range(5):
            access.authenticate(repo, issued.token)
        assert (
            last_used() == first and len(writes) == 1
        )  # no write per request (so no row lock for readers to queue on)
        clock.advance(seconds=31)
        access.authenticate(repo, issued.token)
        assert last_used() == clock.now and len(writes) == 2
    finally:
        event.remove(repo.db.engine, "before_cursor_execute", count)


def test_a_wrong_secret_or_malformed_token_is_refused_without_detail(repo: Repository) -> None:
    issued = access.create_token(repo, role=Role.AGENCY, organisation_code=ORG)
    forged = issued.token[:-1] + ("A" if issued.token[-1] != "A" else "B")
    with pytest.raises(AuthenticationError, match="unknown token"):
        access.authenticate(repo, forged)
    with pytest.raises(AuthenticationError, match="malformed"):
        access.authenticate(repo, "Bearer nonsense")


def test_revocation_and_role_conflicts(repo: Repository) -> None:
    issued = access.create_token(repo, role=Role.AGENCY, organisation_code=ORG, name="系统")
    access.revoke_token(repo, issued.lookup)
    with pytest.raises(AuthenticationError, match="revoked"):
        access.authenticate(repo, issued.token)
    with pytest.raises(ValueError, match="already exists with role agency"):
        access.create_token(repo, role=Role.BUREAU, organisation_code=ORG, name="系统")


def test_client_certificate_bindings(repo: Repository) -> None:
    fingerprint = "AB:" * 31 + "CD"
    principal = access.bind_client_certificate(
        repo, fingerprint, role=Role.UPSTREAM, organisation_code="11410000MB0000000X", name="province"
    )
    assert access.authenticate_client_certificate(repo, fingerprint.lower()) == principal
    with pytest.raises(AuthenticationError):
        access.authenticate_client_certificate(repo, "00" * 32)
    with pytest.raises(ValueError, match="already bound"):
        access.bind_client_certificate(
            repo, fingerprint, role=Role.UPSTREAM, organisation_code="11410000MB0000000X", name="x"
        )


def test_grants_are_issued_by_the_bureau_and_checked_for_time_scope_and_organisation(
    repo: Repository, clock: Clock
) -> None:
    bureau = access.create_token(repo, role=Role.BUREAU, organisation_code=BUREAU_ORG).principal
    window = access.create_token(repo, role=Role.WINDOW, organisation_code=ORG).principal
    other = access.create_token(repo, role=Role.WINDOW, organisation_code="12410100MB0000002X").principal
    with pytest.raises(AccessDeniedError):
        access.issue_grant(
            repo,
            organisation_code=ORG,
            purpose="x",
            valid_until=clock.now + timedelta(days=1),
            issued_by=window,
        )
    grant = access.issue_grant(
        repo,
        organisation_code=ORG,
        purpose="统计分析",
        valid_until=clock.now + timedelta(days=7),
        issued_by=bureau,
        scope={"catalogue_codes": ["A001"]},
    )
    assert access.active_grant(repo, window, grant.id, catalogue_code="A001") == grant
    with pytest.raises(AccessDeniedError, match="does not cover"):
        access.active_grant(repo, window, grant.id, catalogue_code="B002")
    with pytest.raises(AccessDeniedError, match="does not exist for organisation"):
        access.active_grant(repo, other, grant.id, catalogue_code="A001")
    with pytest.raises(AccessDeniedError, match="need a grant"):
        access.active_grant(repo, window, None)
    clock.advance(days=8)
    with pytest.raises(AccessDeniedError, match="not valid now"):
        access.active_grant(repo, window, grant.id, catalogue_code="A001")
    with pytest.raises(ValueError, match=r"scope\.rows"):
        access.issue_grant(
            repo, organisation_code=ORG, purpose="x", valid_until=clock.now + timedelta(days=1), issued_by=bureau,
            scope={"rows": ["1"]},
        )  # fmt: skip
