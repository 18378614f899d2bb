"""Staff logins (certstore.services.logins): scrypt passwords with lockout, server-side sessions with idle and
absolute expiry, the encrypted window case, the session key."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from sqlalchemy import select

from certstore.access import AuthenticationError, Principal, Role
from certstore.services import logins
from certstore.store.models import PrincipalCredentialRow, WebSessionRow
from certstore.store.repository import Repository
from tests.services.conftest import Clock

ORG = "12410100MB0000001X"


@pytest.fixture
def staff(repo: Repository) -> Principal:
    return logins.set_password(
        repo, organisation_code=ORG, name="张三", password="pass-word-1", role=Role.WINDOW
    )


def test_passwords_are_scrypt_hashes_with_their_parameters(repo: Repository, staff: object) -> None:
    with repo.db.session(readonly=True) as session:
        row = session.scalars(select(PrincipalCredentialRow)).one()
        assert (row.algorithm, row.n, row.r, row.p) == ("scrypt", 2**14, 8, 1)
        assert (
            len(row.salt) == 16 and len(row.password_hash) == 32 and b"pass-word-1" not in row.password_hash
        )
    assert logins.authenticate_password(repo, ORG, "张三", "pass-word-1").name == "张三"
    with pytest.raises(AuthenticationError) as unknown:
        logins.authenticate_password(repo, ORG, "nobody", "pass-word-1")
    with pytest.raises(AuthenticationError) as wrong:
        logins.authenticate_password(repo, ORG, "张三", "pass-word-2")
    assert str(unknown.value) == str(wrong.value)  # one message: names are not confirmed
    with pytest.raises(ValueError, match="role"):
        logins.set_password(repo, organisation_code=ORG, name="nobody", password="pass-word-1")
    with pytest.raises(ValueError, match="password"):
        logins.set_password(repo, organisation_code=ORG, name="张三", password="short")


def test_failures_lock_the_login_for_a_while(repo: Repository, staff: object, clock: Clock) -> None:
    for _ in range(logins.MAX_FAILURES):
        with pytest.raises(AuthenticationError):
            logins.authenticate_password(repo, ORG, "张三", "wrong-pass")
    with pytest.raises(logins.LoginLockedError):
        logins.authenticate_password(repo, ORG, "张三", "pass-word-1")
    clock.advance(minutes=16)
    logins.authenticate_password(repo, ORG, "张三", "pass-word-1")
    logins.set_password(repo, organisation_code=ORG, name="张三", password="pass-word-9")  # resets, new hash
    with pytest.raises(AuthenticationError):
        logins.authenticate_password(repo, ORG, "张三", "pass-word-1")


def test_sessions_expire_when_idle_and_at_their_absolute_end(
    repo: Repository, staff: Principal, clock: Clock
) -> None:
    key = os.urandom(32)
    token = logins.create_session(repo, staff, client="127.0.0.1")
    with repo.db.session(readonly=True) as session:
        assert session.scalars(select(WebSessionRow.token_hash)).one() != token.encode()
    assert logins.open_session(repo, token, key).principal.name == "张三"
    for _ in range(13):  # active every 59 minutes: still cut at the absolute end (12 h)
        clock.advance(minutes=59)
        try:
            logins.open_session(repo, token, key)
        except AuthenticationError:
            break
    else:
        pytest.fail("the session outlived its absolute end")
    idle = logins.create_session(repo, staff)
    clock.advance(minutes=61)
    with pytest.raises(AuthenticationError, match="expired"):
        logins.open_session(repo, idle, key)
    ended = logins.create_session(repo, staff)
    logins.end_session(repo, ended)
    with pytest.raises(AuthenticationError):
        logins.open_session(repo, ended, key)
    with pytest.raises(AuthenticationError):
        logins.open_session(repo, "made-up", key)


def test_the_window_case_is_stored_encrypted(repo: Repository, staff: Principal) -> None:
    key = os.urandom(32)
    token = logins.create_session(repo, staff)
    case = {"matter": "ZZ1", "holder_id_type": "111", "holder_id": "11010519491231002X"}
    logins.set_serving(repo, token, key, case)
    with repo.db.session(readonly=True) as session:
        blob = session.scalars(select(WebSessionRow.serving)).one()
        assert blob and b"11010519491231002X" not in blob and b"ZZ1" not in blob
    assert logins.open_session(repo, token, key).serving == case
    assert logins.open_session(repo, token, os.urandom(32)).serving is None  # another key: gone, not an error
    logins.end_session(repo, token)
    with repo.db.session(readonly=True) as session:
        assert session.scalars(select(WebSessionRow.serving)).one() is None


def test_the_session_key_comes_from_the_environment_or_a_private_file(tmp_path: Path) -> None:
    first = logins.session_key(tmp_path, env={})
    assert len(first) == 32 and logins.session_key(tmp_path, env={}) == first
    path = tmp_path / "keys" / "session.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert logins.session_key(tmp_path, env={"CERTSTORE_SESSION_KEY": "ab" * 32}) == bytes.fromhex("ab" * 32)
    with pytest.raises(ValueError):
        logins.session_key(tmp_path, env={"CERTSTORE_SESSION_KEY": "abc"})
