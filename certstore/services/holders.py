"""Holders (证照持有人) logged in by one ID (一号, OpenID Connect): their identity from the provider's verified
claims, their sessions and API tokens, the pending logins (state, nonce, PKCE), who accessed their certificates
(访问记录), their sealed files and their review requests (复核).

* **Identity from claims** (:func:`identity_from_claims`): a natural person by ``name`` + ID type + ID number, a
  legal person by its unified social credit code (统一社会信用代码) + the acting person (经办人); the claim names
  are those a provincial unified identity platform (统一身份认证) sends and can be mapped (:class:`ClaimNames`).
  The assurance level (``acr``) is checked against a configured minimum (:class:`AssurancePolicy`): a login below
  it (e.g. an account that is not real-name verified, 未实名) is refused with :class:`LowAssuranceError`. The holder
  becomes :meth:`certstore.access.Actor.holder` with the keyed reference of the ID
  (:func:`certstore.identifiers.holder_ref`) — the same reference certificates and audit entries carry.
* **Sessions and tokens** (:func:`start_session`, :func:`open_session`, :func:`issue_api_token`): the browser's
  cookie and the API's bearer token are random; the table ``holder_sessions`` keeps only their SM3 hash and the
  identity (ID type and number, names, the ID token for logout) encrypted with AES-256-GCM under a key derived
  from the session key and the token — the table alone never shows an ID number. A web session ends at logout,
  after :data:`WEB_IDLE` without a request or :data:`WEB_ABSOLUTE` after login; an API token at its expiry (at
  most :data:`API_TOKEN_MAX`) or when revoked.
* **Pending logins** (:func:`begin_login`, :func:`finish_login`): the cookie token and the ``state`` are stored
  only hashed; the ``nonce`` and the PKCE code verifier are derived from the cookie token with the session key
  (nothing secret at rest). A pending login is used once — marked before the code is exchanged — and expires after
  :data:`LOGIN_TIMEOUT`, so a replayed callback is refused.
* **Reads** go through :mod:`certstore.services.sharing` with the holder's call (the knowledge scope admits the
  holder for their own certificates); the sealed file (:func:`sealed_file`) and the access log
  (:func:`access_log`) are read here, each audited with the holder's reference.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import delete, or_, select

from certstore.access import AccessDeniedError, Actor, AuthenticationError, Role
from certstore.audit import Outcome
from certstore.crypto.sm3 import sm3
from certstore.identifiers import HolderIdType, holder_id_digest, holder_ref, validate_holder_id
from certstore.services import certificates, renditions, reviews
from certstore.services.calls import Call, audit_in, audit_now
from certstore.services.certificates import CertificateNotFoundError, NoFileError
from certstore.store.models import (
    AuditEventRow,
    CertificateRow,
    HolderLoginAttemptRow,
    HolderRow,
    HolderSessionRow,
    OrganisationRow,
)
from certstore.store.repository import Repository

if TYPE_CHECKING:
    from certstore.app import Application

__all__ = [
    "API_TOKEN_DEFAULT",
    "API_TOKEN_MAX",
    "API_TOKEN_PREFIX",
    "LOGIN_TIMEOUT",
    "WEB_ABSOLUTE",
    "WEB_IDLE",
    "AccessEntry",
    "ApiToken",
    "AssurancePolicy",
    "ClaimNames",
    "ClaimsError",
    "HolderFile",
    "HolderIdentity",
    "HolderSession",
    "LoginAttempt",
    "LoginAttemptError",
    "LoginStart",
    "LowAssuranceError",
    "access_log",
    "begin_login",
    "end_session",
    "file_review",
    "finish_login",
    "identity_from_claims",
    "issue_api_token",
    "list_api_tokens",
    "my_reviews",
    "open_session",
    "record_login",
    "revoke_api_token",
    "sealed_file",
    "start_session",
]

WEB_IDLE = timedelta(minutes=30)
WEB_ABSOLUTE = timedelta(hours=8)
API_TOKEN_DEFAULT = timedelta(days=1)
API_TOKEN_MAX = timedelta(days=30)
LOGIN_TIMEOUT = timedelta(minutes=10)
_TOUCH_EVERY = timedelta(minutes=1)
_PURGE_AFTER = timedelta(days=1)
API_TOKEN_PREFIX = "chd_"  # certstore holder token
_ACCESS_LOG_MAX = 500


# --- identity from claims --------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClaimNames:
    """The names of the ID token claims the identity comes from (``CERTSTORE_OIDC_CLAIM_<FIELD>`` overrides each).

    Natural person: ``name``, ``id_type``, ``id_number``. Legal person: ``uscc`` (统一社会信用代码) and ``org_name``
    (the company's name), acting through ``agent_name`` (经办人). ``acr``: the assurance level; ``email`` and
    ``email_verified``: a contact address (used only when verified)."""

    name: str = "name"
    id_type: str = "id_type"
    id_number: str = "id_number"
    uscc: str = "uscc"
    org_name: str = "org_name"
    agent_name: str = "agent_name"
    acr: str = "acr"
    email: str = "email"
    email_verified: str = "email_verified"

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> ClaimNames:
        values = {
            name: env[f"CERTSTORE_OIDC_CLAIM_{name.upper()}"].strip()
            for name in cls.__dataclass_fields__
            if env.get(f"CERTSTORE_OIDC_CLAIM_{name.upper()}", "").strip()
        }
        return cls(**values)


#: The assurance levels (``acr``) in ascending order, by default: L1 registered only (未实名), L2 real-name verified
#: (实名认证), L3 real person (实人认证: face), L4 in person or by a certificate (现场核验/数字证书).
DEFAULT_ACR_LEVELS = ("L1", "L2", "L3", "L4")
DEFAULT_MIN_ACR = "L2"


@dataclass(frozen=True)
class AssurancePolicy:
    """The assurance levels the provider sends, lowest first, and the lowest one admitted (第二十五条: strong
    authentication) — ``CERTSTORE_OIDC_ACR_LEVELS`` (comma-separated) and ``CERTSTORE_OIDC_MIN_ACR``."""

    levels: tuple[str, ...] = DEFAULT_ACR_LEVELS
    minimum: str = DEFAULT_MIN_ACR

    def __post_init__(self) -> None:
        if self.minimum not in self.levels:
            raise ValueError(
                f"minimum assurance level {self.minimum!r} is not one of {', '.join(self.levels)}"
            )

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> AssurancePolicy:
        raw = env.get("CERTSTORE_OIDC_ACR_LEVELS", "").strip()
        levels = tuple(v.strip() for v in raw.split(",") if v.strip()) if raw else DEFAULT_ACR_LEVELS
        return cls(levels, env.get("CERTSTORE_OIDC_MIN_ACR", "").strip() or DEFAULT_MIN_ACR)

    def admits(self, acr: str | None) -> bool:
        return acr in self.levels and self.levels.index(acr) >= self.levels.index(self.minimum)


class ClaimsError(AuthenticationError):
    """The ID token's claims do not identify a holder (a claim missing or an invalid ID): login refused."""


class LowAssuranceError(AuthenticationError):
    """The login's assurance level (``acr``) is below the configured minimum: login refused."""

    def __init__(self, acr: str | None, minimum: str) -> None:
        super().__init__(
            f"您的账号认证级别（{acr or '未提供'}）低于本系统要求的 {minimum}：请先在统一身份认证平台完成实名认证后再登录 "
            f"(assurance level {acr or 'none'} is below {minimum})"
        )
        self.acr, self.minimum = acr, minimum


#: ID type claim values a platform may send, besides the GB/T 36903 codes themselves.
_ID_TYPE_NAMES = {
    "身份证": HolderIdType.RESIDENT_ID,
    "居民身份证": HolderIdType.RESIDENT_ID,
    "公民身份号码": HolderIdType.RESIDENT_ID,
    "id_card": HolderIdType.RESIDENT_ID,
    "resident_id": HolderIdType.RESIDENT_ID,
    "护照": HolderIdType.PASSPORT,
    "passport": HolderIdType.PASSPORT,
    "台湾居民来往大陆通行证": HolderIdType.TAIWAN_PERMIT,
    "港澳居民来往内地通行证": HolderIdType.HK_MACAO_PERMIT,
    "外国人永久居留身份证": HolderIdType.FOREIGN_PERMANENT_RESIDENCE,
}


@dataclass(frozen=True)
class HolderIdentity:
    """Who logged in, from verified claims: the holder (a person, or a legal person with its acting person)."""

    kind: Literal["person", "legal"]
    name: str  # the person's name, or the legal person's name
    id_type: HolderIdType
    id_number: str
    agent_name: str | None = None  # 经办人 of a legal person
    acr: str | None = None
    subject: str | None = None
    email: str | None = None  # only a verified address

    def reference(self, holder_key: bytes) -> str:
        """The keyed reference of the holder's ID (what certificates and audit entries show)."""
        return holder_ref(holder_id_digest(holder_key, self.id_type, self.id_number))

    def actor(self, holder_key: bytes) -> Actor:
        return Actor.holder(self.reference(holder_key), self.agent_name or self.name)

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "name": self.name,
            "id_type": self.id_type.value,
            "id_number": self.id_number,
            "agent_name": self.agent_name,
            "acr": self.acr,
            "subject": self.subject,
            "email": self.email,
        }

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> HolderIdentity:
        return cls(
            kind=value["kind"],
            name=value["name"],
            id_type=HolderIdType(value["id_type"]),
            id_number=value["id_number"],
            agent_name=value.get("agent_name"),
            acr=value.get("acr"),
            subject=value.get("subject"),
            email=value.get("email"),
        )


def _claim(claims: Mapping[str, Any], name: str) -> str | None:
    value = claims.get(name)
    if value is None:
        return None
    if not isinstance(value, str | int):
        raise ClaimsError(f"claim {name!r} is not a string")
    text = str(value).strip()
    if len(text) > 200 or any(ord(ch) < 32 for ch in text):
        raise ClaimsError(f"claim {name!r} is too long or holds control characters")
    return text or None


def _id_type(value: str) -> HolderIdType:
    try:
        return HolderIdType(value)
    except ValueError:
        pass
    found = _ID_TYPE_NAMES.get(value) or _ID_TYPE_NAMES.get(value.lower())
    if found is None:
        raise ClaimsError(f"unknown ID type {value!r} in the ID token")
    return found


def identity_from_claims(
    claims: Mapping[str, Any], names: ClaimNames | None = None, policy: AssurancePolicy | None = None
) -> HolderIdentity:
    """The holder the verified ``claims`` of an ID token name: a legal person when the USCC claim is present
    (its name and the acting person required), else a natural person (name, ID type, ID number required).
    :class:`LowAssuranceError` when ``acr`` is below the policy's minimum, :class:`ClaimsError` when a claim is
    missing or the ID is invalid."""
    names, policy = names or ClaimNames(), policy or AssurancePolicy()
    acr = _claim(claims, names.acr)
    if not policy.admits(acr):
        raise LowAssuranceError(acr, policy.minimum)
    email = _claim(claims, names.email)
    if email is not None and claims.get(names.email_verified) is not True:
        email = None
    subject = _claim(claims, "sub")
    uscc = _claim(claims, names.uscc)
    try:
        if uscc is not None:
            org_name = _claim(claims, names.org_name)
            agent = _claim(claims, names.agent_name) or _claim(claims, names.name)
            if not org_name or not agent:
                raise ClaimsError(
                    f"a legal person's login needs the claims {names.org_name} and {names.agent_name}"
                )
            number = validate_holder_id(HolderIdType.CREDIT_CODE, uscc)
            return HolderIdentity(
                "legal", org_name, HolderIdType.CREDIT_CODE, number, agent, acr, subject, email
            )
        name = _claim(claims, names.name)
        kind_text, number_text = _claim(claims, names.id_type), _claim(claims, names.id_number)
        if not name or not number_text:
            raise ClaimsError(
                f"the ID token names no holder: claims {names.name} and {names.id_number} (or {names.uscc}) needed"
            )
        kind = _id_type(kind_text) if kind_text else HolderIdType.RESIDENT_ID
        if kind is HolderIdType.CREDIT_CODE:
            raise ClaimsError(f"a legal person logs in with the claim {names.uscc}")
        number = validate_holder_id(kind, number_text)
        return HolderIdentity("person", name, kind, number, None, acr, subject, email)
    except ClaimsError:
        raise
    except ValueError as exc:
        raise ClaimsError(f"the ID in the ID token is not valid: {exc}") from None


# --- encryption of the identity kept with a session ------------------------------------------------------


def _hash(token: str) -> bytes:
    return sm3(token.encode("ascii"))


def _cipher(key: bytes, token: str) -> AESGCM:
    return AESGCM(hmac.new(key, b"holder-identity\x00" + token.encode("ascii"), hashlib.sha256).digest())


def _seal_identity(key: bytes, token: str, identity: HolderIdentity, extra: Mapping[str, Any]) -> bytes:
    nonce = secrets.token_bytes(12)
    plain = json.dumps({**identity.to_json(), **extra}, ensure_ascii=False).encode("utf-8")
    return nonce + _cipher(key, token).encrypt(nonce, plain, b"certstore-holder")


def _open_identity(blob: bytes, key: bytes, token: str) -> dict[str, Any]:
    try:
        value = json.loads(_cipher(key, token).decrypt(blob[:12], blob[12:], b"certstore-holder"))
    except (InvalidTag, ValueError):
        raise AuthenticationError("会话已失效，请重新登录 (session key changed)") from None
    if not isinstance(value, dict):
        raise AuthenticationError("会话已失效，请重新登录 (session unreadable)")
    return value


# --- sessions and tokens ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class HolderSession:
    """A live holder session (web) or API token (api): who, since when, until when."""

    id: int
    kind: str
    holder_ref: str
    identity: HolderIdentity
    created_at: datetime
    expires_at: datetime
    id_token: str | None = field(default=None, repr=False)

    @property
    def actor(self) -> Actor:
        return Actor.holder(self.holder_ref, self.identity.agent_name or self.identity.name)


@dataclass(frozen=True)
class ApiToken:
    """A holder's API token as listed (never the token itself)."""

    id: int
    label: str | None
    created_at: datetime
    expires_at: datetime
    ended_at: datetime | None


def _upsert_holder(session: Any, reference: str, identity: HolderIdentity, at: datetime) -> HolderRow:
    row = session.scalars(select(HolderRow).where(HolderRow.holder_ref == reference)).one_or_none()
    if row is None:
        row = HolderRow(holder_ref=reference, kind=identity.kind, first_login_at=at, name=identity.name)
        session.add(row)
    row.kind, row.name, row.acr, row.last_login_at = identity.kind, identity.name[:200], identity.acr, at
    session.flush()
    return row


def start_session(
    repo: Repository,
    key: bytes,
    identity: HolderIdentity,
    *,
    client: str | None = None,
    id_token: str | None = None,
) -> tuple[str, HolderSession]:
    """A web session for the holder of ``identity`` (just logged in): the cookie token and the session. The
    holder's row is created or refreshed; sessions ended or expired a day ago are deleted on the way."""
    at = repo.now()
    token = secrets.token_urlsafe(32)
    reference = identity.reference(repo.holder_key)
    with repo.db.session() as session:
        session.execute(
            delete(HolderSessionRow).where(
                or_(
                    HolderSessionRow.expires_at < at - _PURGE_AFTER,
                    HolderSessionRow.ended_at < at - _PURGE_AFTER,
                )
            )
        )
        holder = _upsert_holder(session, reference, identity, at)
        row = HolderSessionRow(
            token_hash=_hash(token),
            holder_id=holder.id,
            kind="web",
            acr=identity.acr,
            created_at=at,
            last_seen_at=at,
            expires_at=at + WEB_ABSOLUTE,
            client=(client or "")[:100] or None,
            identity=_seal_identity(key, token, identity, {"id_token": id_token}),
        )
        session.add(row)
        session.flush()
        return token, HolderSession(row.id, "web", reference, identity, at, row.expires_at, id_token)


def open_session(repo: Repository, key: bytes, token: str, *, kind: str = "web") -> HolderSession:
    """The live session (``kind`` web) or API token (``kind`` api) of ``token``; :class:`AuthenticationError`
    when unknown, ended, expired or idle too long (web)."""
    if not token or len(token) > 100 or not token.isascii():
        raise AuthenticationError("no holder session")
    at = repo.now()
    with repo.db.session() as session:
        row = session.scalars(
            select(HolderSessionRow).where(HolderSessionRow.token_hash == _hash(token))
        ).one_or_none()
        if row is None or row.kind != kind or row.ended_at is not None:
            raise AuthenticationError("未登录或已退出 (no holder session)")
        idle = kind == "web" and row.last_seen_at + WEB_IDLE <= at
        if row.expires_at <= at or idle:
            row.ended_at = at
            raise AuthenticationError("登录已过期，请重新登录 (holder session expired)")
        if at - row.last_seen_at >= _TOUCH_EVERY:
            row.last_seen_at = at
        value = _open_identity(row.identity, key, token)
        return HolderSession(
            row.id,
            row.kind,
            row.holder.holder_ref,
            HolderIdentity.from_json(value),
            row.created_at,
            row.expires_at,
            value.get("id_token"),
        )


def end_session(repo: Repository, token: str) -> None:
    """Logout: the web session of ``token`` ends now (its encrypted identity is kept no longer)."""
    with repo.db.session() as session:
        row = session.scalars(
            select(HolderSessionRow).where(HolderSessionRow.token_hash == _hash(token))
        ).one_or_none()
        if row is not None and row.ended_at is None:
            row.ended_at = repo.now()
            row.identity = b""


def issue_api_token(
    app: Application,
    call: Call,
    key: bytes,
    web: HolderSession,
    *,
    label: str | None = None,
    lifetime: timedelta = API_TOKEN_DEFAULT,
) -> tuple[str, ApiToken]:
    """A bearer token for the holder's API, made from a live web session (the same identity), expiring after
    ``lifetime`` (at most :data:`API_TOKEN_MAX`); audited (``holder.token_create``). Returns the token (shown
    once) and its listing."""
    if web.kind != "web" or call.actor.holder_ref != web.holder_ref:
        raise AccessDeniedError("API tokens are made from the holder's own browser login")
    if not timedelta(minutes=1) <= lifetime <= API_TOKEN_MAX:
        raise ValueError(f"a holder token lives between 1 minute and {API_TOKEN_MAX.days} days")
    label = (label or "").strip()[:100] or None
    repo = app.repo
    at = repo.now()
    token = API_TOKEN_PREFIX + secrets.token_urlsafe(32)
    with repo.db.session() as session:
        holder = session.scalars(select(HolderRow).where(HolderRow.holder_ref == web.holder_ref)).one()
        row = HolderSessionRow(
            token_hash=_hash(token),
            holder_id=holder.id,
            kind="api",
            label=label,
            acr=web.identity.acr,
            created_at=at,
            last_seen_at=at,
            expires_at=at + lifetime,
            identity=_seal_identity(key, token, web.identity, {}),
        )
        session.add(row)
        session.flush()
        made = ApiToken(row.id, label, at, row.expires_at, None)
        event = call.event("holder.token_create", holder_digest=web.holder_ref, details={"token": row.id})
        audit_in(session, call, event)
    return token, made


def list_api_tokens(repo: Repository, holder_reference: str) -> list[ApiToken]:
    """The holder's API tokens, newest first (ended ones included until they are purged)."""
    with repo.db.session(readonly=True) as session:
        rows = session.scalars(
            select(HolderSessionRow)
            .join(HolderRow, HolderSessionRow.holder_id == HolderRow.id)
            .where(HolderRow.holder_ref == holder_reference, HolderSessionRow.kind == "api")
            .order_by(HolderSessionRow.id.desc())
        )
        return [ApiToken(r.id, r.label, r.created_at, r.expires_at, r.ended_at) for r in rows]


def revoke_api_token(app: Application, call: Call, token_id: int) -> ApiToken:
    """End the calling holder's API token ``token_id`` now, audited (``holder.token_revoke``);
    :class:`AccessDeniedError` when it is not one of theirs."""
    mine = _holder(call)
    with app.repo.db.session() as session:
        row = session.get(HolderSessionRow, token_id)
        if row is None or row.kind != "api" or row.holder.holder_ref != mine:
            raise AccessDeniedError(f"no holder token {token_id} of this holder")
        if row.ended_at is None:
            row.ended_at = app.repo.now()
            row.identity = b""
        event = call.event("holder.token_revoke", holder_digest=mine, details={"token": row.id})
        audit_in(session, call, event)
        return ApiToken(row.id, row.label, row.created_at, row.expires_at, row.ended_at)


# --- pending logins (state, nonce, PKCE) -----------------------------------------------------------------


class LoginAttemptError(AuthenticationError):
    """The callback does not belong to a pending login of this browser (unknown, used, expired, wrong state)."""


@dataclass(frozen=True)
class LoginStart:
    """A new pending login: the browser's cookie token, and the state, nonce and PKCE verifier sent on."""

    token: str
    state: str
    nonce: str
    code_verifier: str


@dataclass(frozen=True)
class LoginAttempt:
    """A pending login consumed by its callback: the nonce and verifier to check and send, where to go after."""

    nonce: str
    code_verifier: str
    return_to: str


def _derived(key: bytes, purpose: bytes, token: str) -> str:
    digest = hmac.new(key, purpose + b"\x00" + token.encode("ascii"), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def begin_login(repo: Repository, key: bytes, return_to: str = "/holder") -> LoginStart:
    """A pending login (see the module docstring); attempts expired a day ago are deleted on the way."""
    at = repo.now()
    token, state = secrets.token_urlsafe(32), secrets.token_urlsafe(24)
    with repo.db.session() as session:
        session.execute(
            delete(HolderLoginAttemptRow).where(HolderLoginAttemptRow.expires_at < at - _PURGE_AFTER)
        )
        session.add(
            HolderLoginAttemptRow(
                token_hash=_hash(token),
                state_hash=_hash(state),
                return_to=return_to[:300],
                created_at=at,
                expires_at=at + LOGIN_TIMEOUT,
            )
        )
    return LoginStart(token, state, _derived(key, b"oidc-nonce", token), _derived(key, b"oidc-pkce", token))


def finish_login(repo: Repository, key: bytes, token: str | None, state: str | None) -> LoginAttempt:
    """Consume the pending login of the browser's ``token`` whose ``state`` came back from the provider: once
    only, before its expiry. :class:`LoginAttemptError` otherwise."""
    if not token or not state or not token.isascii() or not state.isascii() or len(token) > 100:
        raise LoginAttemptError("登录请求无效，请重新登录 (no pending login in this browser)")
    at = repo.now()
    with repo.db.session() as session:
        row = session.scalars(
            select(HolderLoginAttemptRow)
            .where(HolderLoginAttemptRow.token_hash == _hash(token))
            .with_for_update()
        ).one_or_none()
        if row is None or not hmac.compare_digest(row.state_hash, _hash(state)):
            raise LoginAttemptError("登录请求与本浏览器不符，请重新登录 (state does not match)")
        if row.used_at is not None:
            raise LoginAttemptError("该登录请求已使用过，请重新登录 (login response replayed)")
        if row.expires_at <= at:
            raise LoginAttemptError("登录请求已过期，请重新登录 (login took too long)")
        row.used_at = at
        return_to = row.return_to
    return LoginAttempt(_derived(key, b"oidc-nonce", token), _derived(key, b"oidc-pkce", token), return_to)


def record_login(
    app: Application,
    call: Call,
    *,
    outcome: Outcome = Outcome.ALLOW,
    reason: str | None = None,
    acr: str | None = None,
) -> None:
    """The audit entry of a holder's login (``holder.login``) or refused login, durable before the answer."""
    assert app.audit is not None
    details = {"acr": acr} if acr else None
    status_code = 200 if outcome is Outcome.ALLOW else 401
    holder = call.actor.holder_ref if call.actor.holder_ref != "unknown" else None
    event = call.event(
        "holder.login",
        outcome=outcome,
        status_code=status_code,
        holder_digest=holder,
        reason=reason,
        details=details,
    )
    audit_now(app.audit, call, event)


# --- the holder's reads and requests ---------------------------------------------------------------------


def _holder(call: Call) -> str:
    if call.actor.role is not Role.HOLDER or not call.actor.holder_ref:
        raise AccessDeniedError("only the holder (证照持有人) does this")
    return call.actor.holder_ref


@dataclass(frozen=True)
class HolderFile:
    data: bytes
    media_type: str
    file_name: str


def sealed_file(
    app: Application, call: Call, identifier: str, format: Literal["ofd", "pdf"] = "ofd"
) -> HolderFile:
    """The holder's own certificate as sealed: the OFD as stored, or the signed PDF rendition
    (``certificate.file``, audited before the bytes are returned). A certificate of someone else answers as one
    that does not exist (the entry records the denial)."""
    from certstore.services.issuance import OFD_MEDIA_TYPE, PDF_MEDIA_TYPE

    if format not in ("ofd", "pdf"):
        raise ValueError(f"format: ofd or pdf, not {format!r}")
    assert app.audit is not None
    mine = _holder(call)
    try:
        certificate = certificates.get(app.repo, identifier)
    except CertificateNotFoundError:
        certificate = None
    if certificate is None or certificate.holder_ref != mine:
        audit_now(app.audit, call, call.event(
            "certificate.file", outcome=Outcome.DENY if certificate else Outcome.ALLOW, status_code=404,
            certificate=identifier[:128], holder_digest=mine, reason="not a certificate of this holder",
        ))  # fmt: skip
        raise CertificateNotFoundError(f"no certificate {identifier}")
    name = f"{certificate.certificate_number}-v{certificate.version}"
    if format == "pdf":
        made = HolderFile(renditions.pdf_rendition(app, certificate), PDF_MEDIA_TYPE, f"{name}.pdf")
    elif certificate.file_key is None:
        raise NoFileError(f"certificate {identifier} was stored without a file")
    else:
        made = HolderFile(
            app.repo.blobs.get(certificate.file_key),
            certificate.file_media_type or OFD_MEDIA_TYPE,
            f"{name}.ofd",
        )
    audit_now(app.audit, call, call.event(
        "certificate.file", certificate=certificate.identifier, holder_digest=mine, details={"format": format},
    ))  # fmt: skip
    return made


@dataclass(frozen=True)
class AccessEntry:
    """One access to the holder's certificates or ID (访问记录) by someone else."""

    at: datetime
    organisation_code: str | None
    organisation_name: str | None
    role: str | None
    action: str
    matter: str | None
    certificate_identifier: str | None
    certificate_name: str | None
    certificate_number: str | None
    outcome: str


def access_log(app: Application, call: Call, *, limit: int = 200) -> list[AccessEntry]:
    """Who accessed my certificates (访问记录): the audit entries about the calling holder's reference made by
    others — using units, agencies, the bureau, the operator — newest first (at most ``limit``), with the unit's
    name and the certificate's name and number. The holder's own requests (role holder, or the pages' request
    entries that name no principal) are left out. The read is audited (``holder.access_log``)."""
    from certstore.services.auditing import settle

    mine = _holder(call)
    if not 1 <= limit <= _ACCESS_LOG_MAX:
        raise ValueError(f"limit: 1 to {_ACCESS_LOG_MAX}")
    assert app.audit is not None
    audit_now(app.audit, call, call.event("holder.access_log", holder_digest=mine))
    settle(app)
    event = AuditEventRow
    with app.repo.db.session(readonly=True) as session:
        rows = session.execute(
            select(event, OrganisationRow.name, CertificateRow.name, CertificateRow.certificate_number)
            .outerjoin(OrganisationRow, OrganisationRow.code == event.organisation_code)
            .outerjoin(CertificateRow, CertificateRow.identifier == event.certificate_identifier)
            .where(event.holder_digest == mine, event.role.is_not(None), event.role != Role.HOLDER.value)
            .order_by(event.occurred_at.desc(), event.seq.desc())
            .limit(limit)
        ).all()
        return [
            AccessEntry(
                row.occurred_at,
                row.organisation_code,
                organisation,
                row.role,
                row.action,
                row.matter,
                row.certificate_identifier,
                name,
                number,
                row.outcome,
            )
            for row, organisation, name, number in rows
        ]


def file_review(app: Application, call: Call, identifier: str, *, reason: str) -> reviews.ReviewRequest:
    """The holder files a review request (复核, 第二十条) about one of their own certificates."""
    return reviews.submit_holder_review(app, call, identifier, reason=reason)


def my_reviews(app: Application, call: Call) -> list[reviews.ReviewRequest]:
    """The calling holder's review requests, newest first, with their answers."""
    mine = _holder(call)
    found = reviews.list_reviews(app.repo, requester_organisation_code=f"holder:{mine}", limit=1000)
    return list(reversed(found))
