"""Staff logins for the web pages (员工登录): passwords, browser sessions and the session key.

Machines keep using API tokens (:mod:`certstore.services.access`); people at the window, in agencies and in the
audit office log in to the pages with their organisation code, name and password.

* **Passwords** are hashed with scrypt (``hashlib.scrypt``, RFC 7914) under a random 16-byte salt; the
  parameters (N, r, p) are stored with each hash, so they can be raised later without invalidating older
  hashes.
* **Failed logins** meet two limits, in this order (:func:`authenticate_password`):

  1. *per client address* (:class:`LoginThrottle`, in memory per process): after :data:`CLIENT_MAX_FAILURES`
     failures within :data:`CLIENT_WINDOW` an address gets :class:`LoginThrottledError` (HTTP 429 with
     ``Retry-After``) before any password is checked; those attempts count against no account;
  2. *per account*, a failure score that leaks one point every :data:`ACCOUNT_DECAY` and, at
     :data:`ACCOUNT_MAX_FAILURES` points, locks the login for :data:`ACCOUNT_FIRST_LOCK`, doubling with every
     further failure up to :data:`ACCOUNT_MAX_LOCK` (a lock ends on its own; a success or a new password clears
     the score). The score leaks as fast as one address may fail in two workers and locks above what one address
     may fail at once in two workers: one address alone never locks an account unless the server runs more than
     two workers (each worker counts addresses on its own, like :mod:`api.ratelimit`).

  Every failure — unknown name, wrong password, locked account, disabled principal — is answered with the same
  :class:`LoginFailedError` (same message, same status) after the same one scrypt computation, so neither the
  answer nor its timing tells which; the reason is kept on the exception for the audit log only.
* **Sessions** are server-side: the browser's cookie holds a random token (32 bytes), the table
  ``web_sessions`` only its SM3 hash. A session ends at logout, after :data:`IDLE_TIMEOUT` without a request,
  :data:`ABSOLUTE_TIMEOUT` after login, or when its principal is disabled — whichever comes first, effective on
  the next request (a signed cookie could not be revoked before it expires).
* **The window case** (办件: matter and the holder being served) is kept with the session, encrypted with
  AES-256-GCM under a key derived from the session key and the cookie token: the table alone never shows a
  holder's ID number, and the URL never carries it either.
* **The session key** (:func:`session_key`) — ``CERTSTORE_SESSION_KEY`` (64 hex digits), or
  ``<data-dir>/keys/session.key`` created on first use — keys the CSRF tokens of the forms and the case
  encryption. Several workers or hosts must share it (the environment variable).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import os
import secrets
import threading
from collections import OrderedDict, deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import delete, or_, select

from certstore.access import AuthenticationError, Principal, Role
from certstore.crypto.sm3 import sm3
from certstore.keystore import secret_key
from certstore.services.access import _organisation, _principal, _principal_row
from certstore.store.models import OrganisationRow, PrincipalCredentialRow, PrincipalRow, WebSessionRow
from certstore.store.repository import Repository

__all__ = [
    "ABSOLUTE_TIMEOUT",
    "ACCOUNT_DECAY",
    "ACCOUNT_FIRST_LOCK",
    "ACCOUNT_MAX_FAILURES",
    "ACCOUNT_MAX_LOCK",
    "CLIENT_MAX_FAILURES",
    "CLIENT_WINDOW",
    "IDLE_TIMEOUT",
    "SCRYPT_PARAMETERS",
    "LoginFailedError",
    "LoginThrottle",
    "LoginThrottledError",
    "WebSession",
    "authenticate_password",
    "create_session",
    "end_session",
    "open_session",
    "session_key",
    "set_password",
    "set_serving",
]

#: scrypt cost: N=2^14, r=8, p=1 (16 MiB, about 50 ms here) — RFC 7914's interactive-login setting.
SCRYPT_PARAMETERS = {"n": 2**14, "r": 8, "p": 1}
_SALT_BYTES = 16
_HASH_BYTES = 32
MIN_PASSWORD_LENGTH = 8
MAX_PASSWORD_LENGTH = 256  # scrypt reads the whole password: refuse megabytes before hashing them
#: Per client address: this many failed logins within :data:`CLIENT_WINDOW`, then 429 until the oldest leaves it.
CLIENT_MAX_FAILURES = 10
CLIENT_WINDOW = timedelta(minutes=15)
_CLIENT_TRACKED = 10_000  # addresses remembered at most (the least recently failing are forgotten first)
#: Per account: a failure score leaking one point per :data:`ACCOUNT_DECAY` (twice the rate one address may fail at
#: in one worker); at :data:`ACCOUNT_MAX_FAILURES` points (more than one address may fail at once in two workers)
#: the login is locked.
ACCOUNT_MAX_FAILURES = 30
ACCOUNT_DECAY = CLIENT_WINDOW / (2 * CLIENT_MAX_FAILURES)
ACCOUNT_FIRST_LOCK = timedelta(minutes=1)
ACCOUNT_MAX_LOCK = timedelta(minutes=15)
IDLE_TIMEOUT = timedelta(minutes=60)
ABSOLUTE_TIMEOUT = timedelta(hours=12)
_TOUCH_EVERY = timedelta(minutes=1)  # last_seen_at is written at most this often
_PURGE_AFTER = timedelta(days=1)  # ended or expired sessions are deleted this long afterwards
_DUMMY_SALT = b"certstore-no-such-user"
_BAD_LOGIN = "机构代码、用户名或口令不正确 (unknown user or wrong password)"


class LoginFailedError(AuthenticationError):
    """A refused login. Its message is the same whatever the cause (no enumeration of names, locks or disabled
    accounts); :attr:`reason` — ``unknown``, ``password``, ``locked``, ``disabled`` — is for the audit log only."""

    def __init__(self, reason: str) -> None:
        super().__init__(_BAD_LOGIN)
        self.reason = reason


class LoginThrottledError(AuthenticationError):
    """Too many failed logins from this client address: retry after :attr:`retry_after` seconds (HTTP 429).
    Says nothing about any account."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(
            f"此地址登录失败次数过多，请 {max(1, math.ceil(retry_after / 60))} 分钟后再试 "
            "(too many failed logins from this address)"
        )
        self.retry_after = retry_after


class LoginThrottle:
    """Failed logins per client address in a sliding window (in memory, per process, thread-safe): at most
    ``max_failures`` within ``window``. With several workers each counts its own share."""

    def __init__(
        self,
        max_failures: int = CLIENT_MAX_FAILURES,
        window: timedelta = CLIENT_WINDOW,
        tracked: int = _CLIENT_TRACKED,
    ) -> None:
        self.max_failures, self.window, self.tracked = max_failures, window, tracked
        self._failures: OrderedDict[str, deque[datetime]] = OrderedDict()
        self._lock = threading.Lock()

    def _recent(self, client: str, at: datetime) -> deque[datetime] | None:
        times = self._failures.get(client)
        while times and times[0] <= at - self.window:
            times.popleft()
        if times is not None and not times:
            del self._failures[client]
            return None
        return times

    def retry_after(self, client: str, at: datetime) -> int:
        """Seconds until ``client`` may try again (0: now)."""
        with self._lock:
            times = self._recent(client, at)
            if times is None or len(times) < self.max_failures:
                return 0
            return max(1, math.ceil((times[-self.max_failures] + self.window - at).total_seconds()))

    def failed(self, client: str, at: datetime) -> None:
        """Count a failed login of ``client`` at ``at``."""
        with self._lock:
            times = self._recent(client, at)
            if times is None:
                times = self._failures[client] = deque(maxlen=self.max_failures)
            times.append(at)
            self._failures.move_to_end(client)
            while len(self._failures) > self.tracked:
                self._failures.popitem(last=False)


@dataclass(frozen=True)
class WebSession:
    """A live browser session: who, since when, and the window case in progress (``serving``)."""

    id: int
    principal: Principal
    created_at: datetime
    expires_at: datetime
    serving: Mapping[str, Any] | None = field(default=None, hash=False)


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(
        password.encode("utf-8"), salt=salt, n=n, r=r, p=p, dklen=_HASH_BYTES, maxmem=64 * 1024 * 1024
    )


def _check_password_text(password: str) -> None:
    if not MIN_PASSWORD_LENGTH <= len(password) <= MAX_PASSWORD_LENGTH:
        raise ValueError(
            f"password: {MIN_PASSWORD_LENGTH} to {MAX_PASSWORD_LENGTH} characters (口令长度 {MIN_PASSWORD_LENGTH}–"
            f"{MAX_PASSWORD_LENGTH} 位)"
        )
    if any(ch in password for ch in "\x00\r\n"):
        raise ValueError("password: no NUL or line breaks")


def set_password(
    repo: Repository,
    *,
    organisation_code: str,
    name: str,
    password: str,
    role: Role | None = None,
    organisation_name: str | None = None,
) -> Principal:
    """Set (or replace) the password of principal ``organisation_code``/``name``; clears a lockout. An unknown
    principal is created when ``role`` is given (and its organisation registered), refused otherwise."""
    _check_password_text(password)
    at = repo.now()
    salt = secrets.token_bytes(_SALT_BYTES)
    digest = _scrypt(password, salt, **SCRYPT_PARAMETERS)
    with repo.db.session() as session:
        principal = _find_principal(session, organisation_code, name)
        if principal is None:
            if role is None:
                raise ValueError(
                    f"no principal {organisation_code}/{name}: give its role to create it (--role)"
                )
            organisation = _organisation(session, organisation_code, organisation_name, at)
            principal = _principal_row(session, organisation, name, role, at)
        elif role is not None and principal.role != role.value:
            raise ValueError(
                f"principal {organisation_code}/{name} has role {principal.role}, not {role.value}"
            )
        row = session.get(PrincipalCredentialRow, principal.id)
        if row is None:
            row = PrincipalCredentialRow(principal_id=principal.id)
            session.add(row)
        row.algorithm = "scrypt"
        row.n, row.r, row.p = SCRYPT_PARAMETERS["n"], SCRYPT_PARAMETERS["r"], SCRYPT_PARAMETERS["p"]
        row.salt = salt
        row.password_hash = digest
        row.set_at = at
        row.failed_attempts = 0
        row.locked_until = None
        session.flush()
        return _principal(principal)


def _find_principal(session: Any, organisation_code: str, name: str) -> PrincipalRow | None:
    return session.scalars(
        select(PrincipalRow)
        .join(OrganisationRow, PrincipalRow.organisation_id == OrganisationRow.id)
        .where(OrganisationRow.code == organisation_code, PrincipalRow.name == name)
    ).one_or_none()


def _lock_for(score: int) -> timedelta:
    """How long a failure bringing the account's score to ``score`` locks the login."""
    if score < ACCOUNT_MAX_FAILURES:
        return timedelta(0)
    return min(ACCOUNT_FIRST_LOCK * 2 ** min(score - ACCOUNT_MAX_FAILURES, 16), ACCOUNT_MAX_LOCK)


def _score(row: PrincipalCredentialRow, at: datetime) -> tuple[int, datetime]:
    """The account's failure score at ``at`` and the time its leak is counted from. ``failed_attempts`` is the
    score as of ``locked_until``; from then on it leaks one point per :data:`ACCOUNT_DECAY` (whole points; the
    remainder carries over, so frequent failures do not stop the leak)."""
    if row.locked_until is None or row.failed_attempts <= 0:
        return 0, at
    if at <= row.locked_until:
        return row.failed_attempts, row.locked_until
    leaked = int((at - row.locked_until) / ACCOUNT_DECAY)
    score = row.failed_attempts - leaked
    return (score, row.locked_until + leaked * ACCOUNT_DECAY) if score > 0 else (0, at)


def _locked(row: PrincipalCredentialRow, at: datetime) -> bool:
    return (
        row.locked_until is not None and row.locked_until > at and row.failed_attempts >= ACCOUNT_MAX_FAILURES
    )


def _count_failure(row: PrincipalCredentialRow, at: datetime) -> None:
    score, since = _score(row, at)
    score += 1
    lock = _lock_for(score)
    row.failed_attempts = score
    row.locked_until = at + lock if lock else since


def authenticate_password(
    repo: Repository,
    organisation_code: str,
    name: str,
    password: str,
    *,
    client: str | None = None,
    throttle: LoginThrottle | None = None,
) -> Principal:
    """The principal whose password this is, if it may log in now.

    First the client address (``client``, counted in ``throttle``): over its limit,
    :class:`LoginThrottledError` before anything else is looked at. Then one scrypt computation whatever the
    case, and :class:`LoginFailedError` — one message — for an unknown name, a wrong password, a locked account
    and a disabled principal alike. A failure is counted against the client address and, when the account exists,
    is not locked and the password was wrong, against its score; a success clears the score."""
    at = repo.now()
    if throttle is not None and client:
        wait = throttle.retry_after(client, at)
        if wait:
            raise LoginThrottledError(wait)
    try:
        return _check_password(repo, organisation_code, name, password, at)
    except LoginFailedError:
        if throttle is not None and client:
            throttle.failed(client, at)
        raise


def _check_password(
    repo: Repository, organisation_code: str, name: str, password: str, at: datetime
) -> Principal:
    if len(password) > MAX_PASSWORD_LENGTH:
        raise LoginFailedError("password too long")
    with repo.db.session() as session:
        principal = _find_principal(session, organisation_code.strip().upper(), name.strip())
        row = None
        if principal is not None:  # locked: concurrent failures of one account are all counted
            row = session.scalars(
                select(PrincipalCredentialRow)
                .where(PrincipalCredentialRow.principal_id == principal.id)
                .with_for_update(of=PrincipalCredentialRow)
            ).one_or_none()
        if principal is None or row is None or row.algorithm != "scrypt":
            _scrypt(password, _DUMMY_SALT, **SCRYPT_PARAMETERS)  # same cost as a known name
            raise LoginFailedError("unknown" if principal is None else "no password")
        locked = _locked(row, at)
        good = hmac.compare_digest(_scrypt(password, row.salt, row.n, row.r, row.p), row.password_hash)
        if locked:
            reason = "locked"  # checked all the same: the same time as any other answer; not counted
        elif not good:
            _count_failure(row, at)
            reason = "password"
        elif principal.disabled_at is not None:
            reason = "disabled"
        else:
            row.failed_attempts = 0
            row.locked_until = None
            row.last_login_at = at
            return _principal(principal)
    raise LoginFailedError(reason)


# --- sessions --------------------------------------------------------------------------------------------


def _token_hash(token: str) -> bytes:
    return sm3(token.encode("ascii"))


def create_session(repo: Repository, principal: Principal, *, client: str | None = None) -> str:
    """A new session for ``principal``; returns the cookie token (shown to nobody else, stored only hashed).
    Sessions that ended or expired more than a day ago are deleted on the way."""
    at = repo.now()
    token = secrets.token_urlsafe(32)
    with repo.db.session() as session:
        session.execute(
            delete(WebSessionRow).where(
                or_(WebSessionRow.expires_at < at - _PURGE_AFTER, WebSessionRow.ended_at < at - _PURGE_AFTER)
            )
        )
        session.add(
            WebSessionRow(
                token_hash=_token_hash(token),
                principal_id=principal.id,
                created_at=at,
                last_seen_at=at,
                expires_at=at + ABSOLUTE_TIMEOUT,
                client=(client or "")[:100] or None,
            )
        )
    return token


def _cipher(key: bytes, token: str) -> AESGCM:
    return AESGCM(hmac.new(key, b"serving\x00" + token.encode("ascii"), hashlib.sha256).digest())


def _open_serving(blob: bytes | None, key: bytes, token: str) -> dict[str, Any] | None:
    if not blob or len(blob) < 13:
        return None
    try:
        plain = _cipher(key, token).decrypt(blob[:12], blob[12:], b"certstore-serving")
        value = json.loads(plain)
    except (InvalidTag, ValueError):
        return None  # another session key: the case is simply gone
    return value if isinstance(value, dict) else None


def open_session(repo: Repository, token: str, key: bytes) -> WebSession:
    """The live session of cookie ``token``; :class:`AuthenticationError` when unknown, ended, idle too long,
    past its absolute end or of a disabled principal."""
    if not token or len(token) > 100 or not token.isascii():
        raise AuthenticationError("no session")
    at = repo.now()
    with repo.db.session() as session:
        row = session.scalars(
            select(WebSessionRow).where(WebSessionRow.token_hash == _token_hash(token))
        ).one_or_none()
        if row is None or row.ended_at is not None:
            raise AuthenticationError("no session (logged out)")
        if row.expires_at <= at or row.last_seen_at + IDLE_TIMEOUT <= at:
            row.ended_at = at
            raise AuthenticationError("会话已过期，请重新登录 (session expired)")
        if row.principal.disabled_at is not None:
            row.ended_at = at
            raise AuthenticationError("该账户已停用 (the principal is disabled)")
        if at - row.last_seen_at >= _TOUCH_EVERY:
            row.last_seen_at = at
        return WebSession(
            id=row.id,
            principal=_principal(row.principal),
            created_at=row.created_at,
            expires_at=row.expires_at,
            serving=_open_serving(row.serving, key, token),
        )


def set_serving(repo: Repository, token: str, key: bytes, serving: Mapping[str, Any] | None) -> None:
    """Keep ``serving`` (the window case: matter, holder, selection) with the session, encrypted; None clears."""
    blob = None
    if serving is not None:
        nonce = secrets.token_bytes(12)
        plain = json.dumps(dict(serving), ensure_ascii=False).encode("utf-8")
        blob = nonce + _cipher(key, token).encrypt(nonce, plain, b"certstore-serving")
    with repo.db.session() as session:
        row = session.scalars(
            select(WebSessionRow).where(WebSessionRow.token_hash == _token_hash(token))
        ).one_or_none()
        if row is not None and row.ended_at is None:
            row.serving = blob


def end_session(repo: Repository, token: str) -> None:
    """Logout: the session ends now and its window case is erased."""
    with repo.db.session() as session:
        row = session.scalars(
            select(WebSessionRow).where(WebSessionRow.token_hash == _token_hash(token))
        ).one_or_none()
        if row is not None and row.ended_at is None:
            row.ended_at = repo.now()
            row.serving = None


# --- the session key -------------------------------------------------------------------------------------


def session_key(data_dir: Path, env: Mapping[str, str] = os.environ) -> bytes:
    """The 32-byte key of CSRF tokens and case encryption: ``CERTSTORE_SESSION_KEY`` (64 hex digits) or
    ``<data_dir>/keys/session.key``, created (mode 0600) on first use; of two processes racing, one key wins."""
    return secret_key(data_dir / "keys" / "session.key", "CERTSTORE_SESSION_KEY", env)
