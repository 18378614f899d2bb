"""Staff logins for the web pages (员工登录): passwords, browser sessions and the session key.

Machines keep using API tokens (:mod:`certstore.services.access`); people at the window, in agencies and in the
audit office log in to the pages with their organisation code, name and password.

* **Passwords** are hashed with scrypt (``hashlib.scrypt``, RFC 7914) under a random 16-byte salt; the
  parameters (N, r, p) are stored with each hash, so they can be raised later without invalidating older
  hashes. :data:`MAX_FAILURES` consecutive failures lock the login for :data:`LOCKOUT`; a success resets the
  count. Unknown names cost the same scrypt computation as known ones, so timing does not tell them apart.
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
import os
import secrets
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
    "IDLE_TIMEOUT",
    "LOCKOUT",
    "MAX_FAILURES",
    "SCRYPT_PARAMETERS",
    "LoginLockedError",
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
MAX_FAILURES = 5
LOCKOUT = timedelta(minutes=15)
IDLE_TIMEOUT = timedelta(minutes=60)
ABSOLUTE_TIMEOUT = timedelta(hours=12)
_TOUCH_EVERY = timedelta(minutes=1)  # last_seen_at is written at most this often
_PURGE_AFTER = timedelta(days=1)  # ended or expired sessions are deleted this long afterwards
_DUMMY_SALT = b"certstore-no-such-user"
_BAD_LOGIN = "机构代码、用户名或口令不正确 (unknown user or wrong password)"


class LoginLockedError(AuthenticationError):
    """Too many failed attempts: the login is locked until :attr:`until`."""

    def __init__(self, until: datetime) -> None:
        super().__init__(
            f"登录已暂时锁定，请于 {until.isoformat(timespec='minutes')} (UTC) 之后再试 (locked)"
        )
        self.until = until


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


def authenticate_password(repo: Repository, organisation_code: str, name: str, password: str) -> Principal:
    """The principal whose password this is; :class:`AuthenticationError` (one message for unknown names and
    wrong passwords) or :class:`LoginLockedError` otherwise. Failures are counted; a success resets the count."""
    at = repo.now()
    if len(password) > MAX_PASSWORD_LENGTH:
        raise AuthenticationError(_BAD_LOGIN)
    with repo.db.session() as session:
        principal = _find_principal(session, organisation_code.strip().upper(), name.strip())
        row = session.get(PrincipalCredentialRow, principal.id) if principal is not None else None
        if row is None or row.algorithm != "scrypt":
            _scrypt(password, _DUMMY_SALT, **SCRYPT_PARAMETERS)  # same cost as a known name
            raise AuthenticationError(_BAD_LOGIN)
        if row.locked_until is not None and row.locked_until > at:
            raise LoginLockedError(row.locked_until)
        good = hmac.compare_digest(_scrypt(password, row.salt, row.n, row.r, row.p), row.password_hash)
        if not good:
            row.failed_attempts += 1
            if row.failed_attempts >= MAX_FAILURES:
                row.failed_attempts = 0
                row.locked_until = at + LOCKOUT
        assert principal is not None
        if good and principal.disabled_at is not None:
            raise AuthenticationError("该账户已停用 (the principal is disabled)")
        if good:
            row.failed_attempts = 0
            row.locked_until = None
            row.last_login_at = at
            return _principal(principal)
    raise AuthenticationError(_BAD_LOGIN)


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
