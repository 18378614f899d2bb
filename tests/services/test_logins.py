"""Staff logins (certstore.services.logins): scrypt passwords, uniform failure answers, the per-address throttle
and the decaying per-account lockout, server-side sessions with idle and absolute expiry, the encrypted window
case, the session key."""

from __future__ import annotations

import os
import stat
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from sqlalchemy import select

from certstore.access import AuthenticationError, Principal, Role
from certstore.services import logins
from certstore.store.models import PrincipalCredentialRow, PrincipalRow, WebSessionRow
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


@pytest.fixture
def cheap_scrypt(repo: Repository, staff: Principal, monkeypatch: pytest.MonkeyPatch) -> None:
    """Many failures in one test: scrypt at N=16 (stored with the hash, like any parameters) keeps it fast."""
    monkeypatch.setitem(logins.SCRYPT_PARAMETERS, "n", 2**4)
    logins.set_password(repo, organisation_code=ORG, name="张三", password="pass-word-1")


def _refused(repo: Repository, name: str, password: str, **kwargs: object) -> logins.LoginFailedError:
    with pytest.raises(logins.LoginFailedError) as refused:
        logins.authenticate_password(repo, ORG, name, password, **kwargs)  # type: ignore[arg-type]
    return refused.value


def _lock_staff(repo: Repository) -> None:
    """Lock 张三's login the only way it can be locked: failures from more addresses than one."""
    throttle = logins.LoginThrottle()
    for attempt in range(logins.ACCOUNT_MAX_FAILURES):
        client = f"10.0.{attempt // logins.CLIENT_MAX_FAILURES}.1"
        _refused(repo, "张三", "wrong-pass", client=client, throttle=throttle)


def test_every_login_failure_gets_the_same_answer_in_similar_time(
    repo: Repository, staff: Principal, clock: Clock
) -> None:
    """An unknown name, a wrong password, a locked account and a disabled principal (with its right password) get
    the same exception and message — only the audit reason differs — after the same one scrypt computation."""
    for name in ("锁定", "停用"):
        logins.set_password(repo, organisation_code=ORG, name=name, password="pass-word-1", role=Role.WINDOW)
    with repo.db.session() as session:
        session.scalars(
            select(PrincipalRow).where(PrincipalRow.name == "停用")
        ).one().disabled_at = repo.now()
        locked = session.scalars(select(PrincipalRow).where(PrincipalRow.name == "锁定")).one()
        credential = session.get(PrincipalCredentialRow, locked.id)
        assert credential is not None
        credential.failed_attempts = logins.ACCOUNT_MAX_FAILURES  # as _lock_staff leaves it (tested below)
        credential.locked_until = repo.now() + logins.ACCOUNT_FIRST_LOCK
    cases = {
        "unknown": ("nobody", "pass-word-1"),
        "password": ("张三", "wrong-pass"),
        "locked": ("锁定", "pass-word-1"),  # the right password, but locked
        "disabled": ("停用", "pass-word-1"),  # the right password, but disabled
    }
    timings: dict[str, list[float]] = {reason: [] for reason in cases}
    messages = set()
    for _ in range(5):
        for reason, (name, password) in cases.items():
            started = time.perf_counter()
            failure = _refused(repo, name, password)
            timings[reason].append(time.perf_counter() - started)
            assert failure.reason == reason and type(failure) is logins.LoginFailedError
            messages.add(str(failure))
    assert len(messages) == 1
    medians = {reason: statistics.median(times) for reason, times in timings.items()}
    assert max(medians.values()) < 2 * min(medians.values()), medians  # no scrypt would be 10× faster
    clock.advance(minutes=2)  # the lock is over; the attempts while locked did not extend it
    assert logins.authenticate_password(repo, ORG, "锁定", "pass-word-1").name == "锁定"


def test_the_client_address_is_throttled_before_any_account_counts(
    repo: Repository, staff: Principal, clock: Clock
) -> None:
    """After CLIENT_MAX_FAILURES failures an address gets 429-style LoginThrottledError with the seconds to wait
    — even with the right password, and without checking it — while the account stays unlocked: the same
    principal logs in from another address at once. The address may try again when its window has passed."""
    throttle = logins.LoginThrottle()
    for _ in range(logins.CLIENT_MAX_FAILURES):
        _refused(repo, "nobody", "wrong-pass", client="192.0.2.7", throttle=throttle)
    with pytest.raises(logins.LoginThrottledError) as throttled:
        logins.authenticate_password(repo, ORG, "张三", "pass-word-1", client="192.0.2.7", throttle=throttle)
    assert throttled.value.retry_after == int(logins.CLIENT_WINDOW.total_seconds())
    clock.advance(minutes=5)
    with pytest.raises(logins.LoginThrottledError) as later:
        logins.authenticate_password(repo, ORG, "张三", "wrong-pass", client="192.0.2.7", throttle=throttle)
    assert later.value.retry_after == 600
    ok = logins.authenticate_password(
        repo, ORG, "张三", "pass-word-1", client="198.51.100.9", throttle=throttle
    )
    assert ok.name == "张三"
    clock.advance(minutes=10)
    assert logins.authenticate_password(
        repo, ORG, "张三", "pass-word-1", client="192.0.2.7", throttle=throttle
    )
    small = logins.LoginThrottle(max_failures=1, tracked=2)  # memory is bounded: the oldest addresses go
    for client in ("a", "b", "c"):
        small.failed(client, repo.now())
    assert small.retry_after("a", repo.now()) == 0 and small.retry_after("c", repo.now()) > 0


@pytest.mark.usefixtures("cheap_scrypt")
def test_one_address_never_locks_an_account(repo: Repository, clock: Clock) -> None:
    """An attacker failing as fast as the throttles of two workers (each counting on its own) let one address
    fail, for hours, never locks 张三: the account's score leaks as fast as that address may add to it."""
    workers = [logins.LoginThrottle(), logins.LoginThrottle()]
    failures = 0
    while failures < 150:  # about two hours at the rate one address is allowed in two workers
        waits = [worker.retry_after("203.0.113.5", repo.now()) for worker in workers]
        if all(waits):
            clock.advance(seconds=min(waits))
            continue
        throttle = workers[waits.index(0)]
        _refused(repo, "张三", "wrong-pass", client="203.0.113.5", throttle=throttle)
        failures += 1
        with repo.db.session(readonly=True) as session:
            row = session.scalars(select(PrincipalCredentialRow)).one()
            assert row.failed_attempts < logins.ACCOUNT_MAX_FAILURES, (failures, row.failed_attempts)
    assert logins.authenticate_password(repo, ORG, "张三", "pass-word-1").name == "张三"


@pytest.mark.usefixtures("cheap_scrypt")
def test_the_account_lockout_is_short_grows_and_decays(repo: Repository, clock: Clock) -> None:
    """Failures from many addresses lock the account at ACCOUNT_MAX_FAILURES for ACCOUNT_FIRST_LOCK; failures while
    locked do not count; a failure after the lock doubles it; the score leaks one point per ACCOUNT_DECAY, so a
    quiet account unlocks itself; a success or a new password clears it."""
    _lock_staff(repo)
    assert _refused(repo, "张三", "pass-word-1").reason == "locked"
    for _ in range(5):
        assert _refused(repo, "张三", "wrong-pass").reason == "locked"  # not counted: the lock does not grow
    clock.advance(seconds=61)
    assert _refused(repo, "张三", "wrong-pass").reason == "password"  # threshold + 1: locked for 2 minutes
    clock.advance(seconds=100)
    assert _refused(repo, "张三", "pass-word-1").reason == "locked"
    clock.advance(seconds=21)
    clock.advance(seconds=logins.ACCOUNT_DECAY.total_seconds() * 3)  # 3 points leaked: below the threshold
    assert _refused(repo, "张三", "wrong-pass").reason == "password"  # threshold - 1: no lock
    assert _refused(repo, "张三", "wrong-pass").reason == "password"  # threshold: locked again, 1 minute
    assert _refused(repo, "张三", "pass-word-1").reason == "locked"
    clock.advance(minutes=61)  # quiet for an hour: the score leaked away
    with repo.db.session(readonly=True) as session:
        assert logins._score(session.scalars(select(PrincipalCredentialRow)).one(), repo.now())[0] == 0
    assert logins.authenticate_password(repo, ORG, "张三", "pass-word-1").name == "张三"
    _lock_staff(repo)
    logins.set_password(repo, organisation_code=ORG, name="张三", password="pass-word-9")  # clears, new hash
    assert _refused(repo, "张三", "pass-word-1").reason == "password"
    assert logins.authenticate_password(repo, ORG, "张三", "pass-word-9").name == "张三"


@pytest.mark.usefixtures("cheap_scrypt")
def test_concurrent_failures_are_all_counted(repo: Repository) -> None:
    """ACCOUNT_MAX_FAILURES wrong passwords sent at once (8 threads) each count — the credential row is locked
    while it is checked — so they lock the account as the same number sent one by one would."""
    with ThreadPoolExecutor(8) as pool:
        reasons = list(
            pool.map(
                lambda _: _refused(repo, "张三", "wrong-pass").reason, range(logins.ACCOUNT_MAX_FAILURES)
            )
        )
    assert reasons == ["password"] * logins.ACCOUNT_MAX_FAILURES
    with repo.db.session(readonly=True) as session:
        assert (
            session.scalars(select(PrincipalCredentialRow)).one().failed_attempts
            == logins.ACCOUNT_MAX_FAILURES
        )
    assert _refused(repo, "张三", "pass-word-1").reason == "locked"


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
