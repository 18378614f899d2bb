"""Organisations, principals, API tokens and bulk-access grants (第十八条, 规范§七(二)).

Tokens look like ``cst_<lookup>_<secret>``: ``lookup`` (16 hex digits) finds the row, ``secret`` (32 random
bytes, base64url) is checked against its stored SM3 hash in constant time; the secret itself is never stored and
is shown once, when created. Tokens expire and can be revoked. A TLS-terminating proxy that verified a client
certificate may pass its SHA-256 fingerprint instead (:func:`authenticate_client_certificate`); such bindings
are rows of kind ``mtls``.

Offboarding (:func:`set_disabled`): the bureau (API) or the operator (``certstore user disable|enable``) disables a
principal; from the next request on its tokens and client-certificate bindings authenticate nobody, its page
sessions are ended and its password logs in nowhere. Enabling restores its tokens and its password (sessions
stay ended). Both are audited by the call itself.

Grants (批量查询授权) are issued by the big-data bureau to an organisation, for a purpose, until a time, optionally
narrowed to catalogue types or issuers; bulk queries and exports name the grant they rely on.
"""

from __future__ import annotations

import base64
import hmac
import re
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from certstore.access import AccessDeniedError, AuthenticationError, Principal, Role
from certstore.audit import Outcome
from certstore.crypto.sm3 import sm3
from certstore.services import calls
from certstore.services.calls import Call
from certstore.services.transaction import Within, run_within
from certstore.store.models import AccessGrantRow, ApiTokenRow, OrganisationRow, PrincipalRow, WebSessionRow
from certstore.store.repository import Repository

if TYPE_CHECKING:
    from certstore.app import Application

__all__ = [
    "TOKEN_PREFIX",
    "Grant",
    "GrantNotFoundError",
    "IssuedToken",
    "PrincipalNotFoundError",
    "PrincipalState",
    "TokenInfo",
    "active_grant",
    "authenticate",
    "authenticate_client_certificate",
    "bind_client_certificate",
    "create_token",
    "ensure_organisation",
    "issue_grant",
    "list_grants",
    "list_tokens",
    "principal_disabled",
    "revoke_grant",
    "revoke_token",
    "set_disabled",
]

TOKEN_PREFIX = "cst_"
_TOKEN = re.compile(r"^cst_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$")
_FINGERPRINT = re.compile(r"^[0-9a-f]{64}$")
_ORG_CODE = re.compile(r"^[0-9A-Z]{6,32}$")
_NAME = re.compile(r"^[^\x00-\x1f/]{1,200}$")


@dataclass(frozen=True)
class IssuedToken:
    """A freshly created token: ``token`` is shown once and never stored."""

    token: str
    lookup: str
    principal: Principal
    expires_at: datetime | None


@dataclass(frozen=True)
class TokenInfo:
    lookup: str
    kind: str
    principal: Principal
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None  # to the minute (LAST_USED_GRANULARITY)


@dataclass(frozen=True)
class Grant:
    """A bulk-access grant (批量查询授权)."""

    id: int
    organisation_code: str
    purpose: str
    scope: Mapping[str, Any] = field(hash=False)
    issued_by: str = ""
    valid_from: datetime | None = None
    valid_until: datetime | None = None
    revoked_at: datetime | None = None

    def active_at(self, at: datetime) -> bool:
        return (
            self.revoked_at is None
            and (self.valid_from is None or self.valid_from <= at)
            and (self.valid_until is None or at < self.valid_until)
        )

    def covers(self, *, catalogue_code: str | None = None, issuer_code: str | None = None) -> bool:
        """Whether the grant's scope admits that catalogue type / issuer (an absent scope key admits all)."""
        codes = self.scope.get("catalogue_codes")
        issuers = self.scope.get("issuer_codes")
        if codes is not None and (catalogue_code is None or catalogue_code not in codes):
            return False
        return not (issuers is not None and (issuer_code is None or issuer_code not in issuers))


class GrantNotFoundError(LookupError):
    """No grant with that id (for that organisation)."""


# --- organisations and principals ------------------------------------------------------------------------


def _principal(row: PrincipalRow) -> Principal:
    return Principal(
        id=row.id,
        name=row.name,
        role=Role(row.role),
        organisation_code=row.organisation.code,
        organisation_name=row.organisation.name,
    )


def _organisation(session: Session, code: str, name: str | None, at: datetime) -> OrganisationRow:
    if not _ORG_CODE.match(code):
        raise ValueError(f"organisation code {code!r}: 6–32 digits or capital letters (e.g. a USCC)")
    row = session.scalars(select(OrganisationRow).where(OrganisationRow.code == code)).one_or_none()
    if row is None:
        row = OrganisationRow(code=code, name=name or code, created_at=at)
        session.add(row)
        session.flush()
    elif name and row.name == row.code:
        row.name = name  # a later call names an organisation first registered by code only
    return row


def ensure_organisation(repo: Repository, code: str, name: str | None = None) -> None:
    """Register organisation ``code`` if it is not known yet (operator bootstrap)."""
    with repo.db.session() as session:
        _organisation(session, code, name, repo.now())


def _principal_row(
    session: Session, organisation: OrganisationRow, name: str, role: Role, at: datetime
) -> PrincipalRow:
    if not _NAME.match(name):
        raise ValueError(f"principal name {name!r}: 1–200 characters, no '/' or control characters")
    row = session.scalars(
        select(PrincipalRow).where(PrincipalRow.organisation_id == organisation.id, PrincipalRow.name == name)
    ).one_or_none()
    if row is None:
        row = PrincipalRow(organisation_id=organisation.id, name=name, role=role.value, created_at=at)
        session.add(row)
        session.flush()
    elif row.role != role.value:
        raise ValueError(f"principal {organisation.code}/{name} already exists with role {row.role}")
    return row


# --- offboarding ----------------------------------------------------------------------------------------


def principal_disabled(repo: Repository, organisation_code: str, name: str) -> bool:
    """Whether the principal ``organisation_code/name`` exists and is disabled now (what a batch job submitted
    before the principal was disabled asks before each item: nothing is issued in a disabled principal's name)."""
    with repo.db.session(readonly=True) as session:
        disabled_at = session.scalars(
            select(PrincipalRow.disabled_at)
            .join(OrganisationRow, PrincipalRow.organisation_id == OrganisationRow.id)
            .where(OrganisationRow.code == organisation_code, PrincipalRow.name == name)
        ).one_or_none()
    return disabled_at is not None


class PrincipalNotFoundError(LookupError):
    """No principal of that name in that organisation."""


@dataclass(frozen=True)
class PrincipalState:
    """A principal after :func:`set_disabled`: whether (since when) it is disabled, whether this call changed
    that, and how many live page sessions it ended."""

    principal: Principal
    disabled_at: datetime | None
    changed: bool
    sessions_ended: int = 0


#: Who may disable and enable principals: the big-data bureau (API) and the operator (command line).
_OFFBOARDERS = (Role.BUREAU, Role.OPERATOR)


def set_disabled(
    app: Application,
    call: Call,
    *,
    organisation_code: str,
    name: str,
    disabled: bool,
    reason: str | None = None,
) -> PrincipalState:
    """Disable (offboard) or enable principal ``organisation_code``/``name``, in one transaction with the call's
    audit entry (``principal.disable`` / ``principal.enable``, naming the target in ``details``).

    Disabling sets ``principals.disabled_at`` and ends every live page session of the principal (their window
    cases erased); its tokens are kept but refused while it is disabled (:func:`authenticate` checks
    ``disabled_at`` on every request), so nothing the principal holds works from the next request on. Enabling
    clears ``disabled_at``. Repeating either is no error (``changed`` False, still audited). Only the bureau and
    the operator may; nobody disables themselves. :class:`PrincipalNotFoundError`,
    :class:`~certstore.access.AccessDeniedError` (audited as a denial), ValueError."""
    action = "principal.disable" if disabled else "principal.enable"
    code, name = organisation_code.strip().upper(), name.strip()
    target = f"{code}/{name}"
    reason = (reason or "").strip() or None
    if reason is not None and len(reason) > 500:
        raise ValueError("reason: at most 500 characters")
    try:
        if call.actor.role not in _OFFBOARDERS:
            raise AccessDeniedError(
                "only the big-data bureau (bureau role) or the operator disables or enables principals"
            )
        at = app.now()
        with app.repo.db.session() as session:
            row = session.scalars(
                select(PrincipalRow)
                .join(OrganisationRow, PrincipalRow.organisation_id == OrganisationRow.id)
                .where(OrganisationRow.code == code, PrincipalRow.name == name)
                .with_for_update(of=PrincipalRow)
            ).one_or_none()
            if row is None:
                raise PrincipalNotFoundError(f"no principal {target}")
            actor = call.actor.principal
            if disabled and actor is not None and actor.id == row.id:
                raise ValueError(
                    "a principal cannot disable itself (ask another bureau account or the operator)"
                )
            changed = (row.disabled_at is None) == disabled
            ended = 0
            if disabled:
                if changed:
                    row.disabled_at = at
                ended = (
                    session.execute(
                        update(WebSessionRow)
                        .where(WebSessionRow.principal_id == row.id, WebSessionRow.ended_at.is_(None))
                        .values(ended_at=at, serving=None)
                        .execution_options(synchronize_session=False)
                    ).rowcount
                    or 0
                )
            elif changed:
                row.disabled_at = None
            details = {"target": target, "target_role": row.role, "changed": changed, "sessions_ended": ended}
            calls.audit_in(session, call, call.event(action, reason=reason, details=details))
            return PrincipalState(_principal(row), row.disabled_at, changed, ended)
    except AccessDeniedError as exc:
        if app.audit is not None:
            calls.audit_now(app.audit, call, call.event(
                action, outcome=Outcome.DENY, status_code=403, reason=str(exc), details={"target": target},
            ))  # fmt: skip
        raise


# --- tokens ----------------------------------------------------------------------------------------------


def _hash_secret(secret: str) -> bytes:
    return sm3(secret.encode("ascii"))


def create_token(
    repo: Repository,
    *,
    role: Role,
    organisation_code: str,
    name: str | None = None,
    organisation_name: str | None = None,
    days: int | None = 90,
    within: Within | None = None,
) -> IssuedToken:
    """A new bearer token for principal ``name`` (default: the role's name) of ``organisation_code``, valid for
    ``days`` (None: no expiry). Unknown organisations are registered; the principal is created if needed.
    ``within`` (:mod:`certstore.services.transaction`) runs in the transaction that stores the token."""
    if days is not None and days <= 0:
        raise ValueError("a token must be valid for at least one day")
    at = repo.now()
    lookup = secrets.token_hex(8)
    secret = base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode("ascii")
    expires = at + timedelta(days=days) if days is not None else None
    with repo.db.session() as session:
        organisation = _organisation(session, organisation_code, organisation_name, at)
        principal = _principal_row(session, organisation, name or role.value, role, at)
        session.add(
            ApiTokenRow(
                principal_id=principal.id,
                kind="bearer",
                lookup=lookup,
                secret_hash=_hash_secret(secret),
                created_at=at,
                expires_at=expires,
            )
        )
        run_within(session, within)
        view = _principal(principal)
    return IssuedToken(f"{TOKEN_PREFIX}{lookup}_{secret}", lookup, view, expires)


#: How stale ``last_used_at`` may be. Refreshing it on every request made every authenticated read a write —
#: and, for one token used by concurrent requests, a row lock they queued on.
LAST_USED_GRANULARITY = timedelta(minutes=1)


def _usable(row: ApiTokenRow | None, at: datetime, what: str) -> Principal:
    if row is None:
        raise AuthenticationError(f"unknown {what}")
    if row.revoked_at is not None:
        raise AuthenticationError(f"{what} was revoked")
    if row.expires_at is not None and row.expires_at <= at:
        raise AuthenticationError(f"{what} expired")
    if row.principal.disabled_at is not None:
        raise AuthenticationError("the principal of this credential is disabled")
    if row.last_used_at is None or at - row.last_used_at >= LAST_USED_GRANULARITY:
        row.last_used_at = at  # at most one write per credential and minute, not one per request
    return _principal(row.principal)


def authenticate(repo: Repository, token: str) -> Principal:
    """The principal of a bearer token; :class:`AuthenticationError` saying why not."""
    match = _TOKEN.match(token)
    if match is None:
        raise AuthenticationError("malformed token (expected cst_<16 hex>_<43 base64url>)")
    lookup, secret = match.groups()
    at = repo.now()
    with repo.db.session() as session:
        row = session.scalars(
            select(ApiTokenRow).where(ApiTokenRow.lookup == lookup, ApiTokenRow.kind == "bearer")
        ).one_or_none()
        if row is not None and not hmac.compare_digest(row.secret_hash or b"", _hash_secret(secret)):
            row = None
        return _usable(row, at, "token")


def bind_client_certificate(
    repo: Repository,
    fingerprint: str,
    *,
    role: Role,
    organisation_code: str,
    name: str,
    days: int | None = 365,
) -> Principal:
    """Let the client certificate with SHA-256 ``fingerprint`` (hex) authenticate as principal ``name``."""
    fingerprint = fingerprint.lower().replace(":", "")
    if not _FINGERPRINT.match(fingerprint):
        raise ValueError("a client-certificate fingerprint is 64 hex digits (SHA-256)")
    at = repo.now()
    with repo.db.session() as session:
        organisation = _organisation(session, organisation_code, None, at)
        principal = _principal_row(session, organisation, name, role, at)
        session.add(
            ApiTokenRow(
                principal_id=principal.id,
                kind="mtls",
                lookup=fingerprint,
                secret_hash=None,
                created_at=at,
                expires_at=at + timedelta(days=days) if days else None,
            )
        )
        try:
            session.flush()
        except IntegrityError:
            raise ValueError("that client certificate is already bound") from None
        return _principal(principal)


def authenticate_client_certificate(repo: Repository, fingerprint: str) -> Principal:
    """The principal bound to a client certificate the proxy verified (SHA-256 fingerprint, hex)."""
    fingerprint = fingerprint.lower().replace(":", "")
    if not _FINGERPRINT.match(fingerprint):
        raise AuthenticationError("malformed client-certificate fingerprint")
    at = repo.now()
    with repo.db.session() as session:
        row = session.scalars(
            select(ApiTokenRow).where(ApiTokenRow.lookup == fingerprint, ApiTokenRow.kind == "mtls")
        ).one_or_none()
        return _usable(row, at, "client certificate")


def _token_info(row: ApiTokenRow) -> TokenInfo:
    return TokenInfo(
        lookup=row.lookup,
        kind=row.kind,
        principal=_principal(row.principal),
        created_at=row.created_at,
        expires_at=row.expires_at,
        revoked_at=row.revoked_at,
        last_used_at=row.last_used_at,
    )


def list_tokens(repo: Repository, *, organisation_code: str | None = None) -> list[TokenInfo]:
    with repo.db.session(readonly=True) as session:
        query = select(ApiTokenRow).order_by(ApiTokenRow.id)
        rows: Iterable[ApiTokenRow] = session.scalars(query).all()
        return [
            _token_info(row)
            for row in rows
            if organisation_code is None or row.principal.organisation.code == organisation_code
        ]


def revoke_token(repo: Repository, lookup: str, *, within: Within | None = None) -> TokenInfo:
    """Revoke the token (or client-certificate binding) ``lookup``; revoking twice keeps the first time.
    ``within`` runs in the transaction that revokes it (not when it was revoked already)."""
    with repo.db.session() as session:
        row = session.scalars(select(ApiTokenRow).where(ApiTokenRow.lookup == lookup)).one_or_none()
        if row is None:
            raise LookupError(f"no token {lookup!r}")
        if row.revoked_at is None:
            row.revoked_at = repo.now()
            run_within(session, within)
        return _token_info(row)


# --- grants ----------------------------------------------------------------------------------------------


def _grant(row: AccessGrantRow) -> Grant:
    return Grant(
        id=row.id,
        organisation_code=row.grantee.code,
        purpose=row.purpose,
        scope=dict(row.scope or {}),
        issued_by=row.issued_by,
        valid_from=row.valid_from,
        valid_until=row.valid_until,
        revoked_at=row.revoked_at,
    )


def _scope(scope: Mapping[str, Any] | None) -> dict[str, list[str]]:
    clean: dict[str, list[str]] = {}
    for key, value in (scope or {}).items():
        if key not in ("catalogue_codes", "issuer_codes"):
            raise ValueError(f"scope.{key}: unknown; use catalogue_codes and/or issuer_codes")
        if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
            raise ValueError(f"scope.{key}: a non-empty list of codes")
        clean[key] = sorted(set(value))
    return clean


def issue_grant(
    repo: Repository,
    *,
    organisation_code: str,
    purpose: str,
    valid_until: datetime,
    issued_by: Principal,
    scope: Mapping[str, Any] | None = None,
    within: Within | None = None,
) -> Grant:
    """The bureau grants ``organisation_code`` bulk access for ``purpose`` until ``valid_until``. ``within``
    (:mod:`certstore.services.transaction`) runs in the transaction that stores the grant."""
    if issued_by.role is not Role.BUREAU:
        raise AccessDeniedError("only the big-data bureau (bureau role) issues bulk-access grants")
    if not purpose.strip():
        raise ValueError("purpose: state what the bulk access is for")
    at = repo.now()
    if valid_until.tzinfo is None:
        raise ValueError("valid_until: give a time zone")
    if valid_until <= at:
        raise ValueError("valid_until: must be in the future")
    if valid_until > at + timedelta(days=366):
        raise ValueError("valid_until: grants last at most one year")
    with repo.db.session() as session:
        organisation = session.scalars(
            select(OrganisationRow).where(OrganisationRow.code == organisation_code)
        ).one_or_none()
        if organisation is None:
            raise ValueError(f"organisation_code: no organisation {organisation_code!r} is registered")
        row = AccessGrantRow(
            grantee_organisation_id=organisation.id,
            purpose=purpose.strip(),
            scope=_scope(scope),
            issued_by=issued_by.ref,
            valid_from=at,
            valid_until=valid_until,
            created_at=at,
        )
        session.add(row)
        session.flush()
        run_within(session, within)
        return _grant(row)


def list_grants(repo: Repository, *, organisation_code: str | None = None) -> list[Grant]:
    with repo.db.session(readonly=True) as session:
        rows = session.scalars(select(AccessGrantRow).order_by(AccessGrantRow.id)).all()
        return [_grant(r) for r in rows if organisation_code is None or r.grantee.code == organisation_code]


def revoke_grant(
    repo: Repository, grant_id: int, *, revoked_by: Principal, within: Within | None = None
) -> Grant:
    """The bureau revokes grant ``grant_id``, effective for the next query; revoking twice keeps the first time.
    ``within`` runs in the transaction that revokes it (not when it was revoked already)."""
    if revoked_by.role is not Role.BUREAU:
        raise AccessDeniedError("only the big-data bureau revokes grants")
    with repo.db.session() as session:
        row = session.get(AccessGrantRow, grant_id)
        if row is None:
            raise GrantNotFoundError(f"no grant {grant_id}")
        if row.revoked_at is None:
            row.revoked_at = repo.now()
            run_within(session, within)
        return _grant(row)


def active_grant(
    repo: Repository,
    principal: Principal,
    grant_id: int | None,
    *,
    catalogue_code: str | None = None,
    issuer_code: str | None = None,
) -> Grant:
    """The grant ``grant_id`` of the principal's organisation, active now and covering the query's scope;
    :class:`AccessDeniedError` saying what is missing otherwise."""
    if grant_id is None:
        raise AccessDeniedError(
            "bulk queries need a grant from the big-data bureau: pass grant=<id> (批量查询须经授权)"
        )
    with repo.db.session(readonly=True) as session:
        row = session.get(AccessGrantRow, grant_id)
        grant = _grant(row) if row is not None else None
    if grant is None or grant.organisation_code != principal.organisation_code:
        raise AccessDeniedError(
            f"grant {grant_id} does not exist for organisation {principal.organisation_code}"
        )
    if not grant.active_at(repo.now()):
        state = "was revoked" if grant.revoked_at else "is not valid now"
        raise AccessDeniedError(
            f"grant {grant_id} {state} (valid until {grant.valid_until:%Y-%m-%d %H:%M} UTC)"
        )
    if not grant.covers(catalogue_code=catalogue_code, issuer_code=issuer_code):
        raise AccessDeniedError(
            f"grant {grant_id} does not cover this query (scope {dict(grant.scope)}); narrow the query to "
            "the granted catalogue types / issuers"
        )
    return grant
