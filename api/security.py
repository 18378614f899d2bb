"""Authentication and role checks as FastAPI dependencies, and the audit of every request.

Every route except the public ones depends on :func:`allow` with the roles it admits; the finer rules (an agency
only touches its own catalogue, window staff only the holder and matter they are serving, bulk access only with a
grant) live in the route handlers through :mod:`api.scope`, because they depend on the resource.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Depends, Request, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from api.problems import problem_response
from certstore.access import AuthenticationError, Principal, Role, require_role
from certstore.audit import AuditEvent, Outcome, record_event
from certstore.services import access

__all__ = [
    "AuthenticatedPrincipal",
    "allow",
    "audit_requests",
    "current_principal",
    "flush_audit",
    "services_of",
]

log = logging.getLogger("certstore.api")

_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="token",
    description="An API token from `certstore token create` (cst_<id>_<secret>).",
)

_UNAUDITED_PREFIXES = ("/docs", "/redoc", "/openapi.json", "/static/", "/favicon")
_UNAUDITED = {"/api/v1/health"}
_SECRET_PATH_PARAMS = {"id_number"}


def services_of(request: Request) -> Any:
    return request.app.state.services


def current_principal(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> Principal:
    """The authenticated caller: a bearer token, or a client certificate vouched for by the proxy header."""
    services = services_of(request)
    header = services.settings.mtls_header
    if credentials is not None:
        principal = access.authenticate(services.repo, credentials.credentials)
    elif header and request.headers.get(header):
        principal = access.authenticate_client_certificate(services.repo, request.headers[header])
    else:
        raise AuthenticationError(
            "no credential: send 'Authorization: Bearer <token>' (tokens come from 'certstore token create')"
        )
    request.state.principal = principal
    return principal


AuthenticatedPrincipal = Annotated[Principal, Depends(current_principal)]


def allow(*roles: Role) -> Callable[[Principal], Principal]:
    """A dependency admitting only ``roles``; returns the principal."""

    def check(principal: AuthenticatedPrincipal) -> Principal:
        require_role(principal, *roles)
        return principal

    check.__name__ = "allow_" + "_".join(role.value for role in roles)
    return check


def _outcome(status: int) -> Outcome:
    if status in (401, 403):
        return Outcome.DENY
    if status >= 500:
        return Outcome.ERROR
    return Outcome.ALLOW


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_nul(v) for v in value)
    return False


def _json_has_nul(body: bytes) -> bool:
    if b"\x00" in body:
        return True
    if b"\\u0000" not in body.lower():
        return False
    try:
        return _has_nul(json.loads(body))
    except ValueError:
        return False  # not JSON: the route's validation reports it


async def _nul_problem(request: Request) -> Response | None:
    """NUL characters cannot be stored (PostgreSQL text and JSONB refuse them) and have no business in any field:
    refused up front, in the URL or in a JSON body, so they never reach a query."""
    if "\x00" in request.url.path or "%00" in str(request.url.query) or "%00" in request.url.path:
        where = "the URL"
    elif request.headers.get("content-type", "").startswith("application/json") and _json_has_nul(
        await request.body()
    ):
        where = "the JSON body"
    else:
        return None
    return problem_response(
        request, 422, "nul-character", "Invalid request", f"NUL characters are not allowed in {where}"
    )


async def audit_requests(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
    """Middleware: a request id on every response, and one audit event per API call (allowed, denied, failed)."""
    request_id = request.headers.get("X-Request-ID") or uuid.uuid4().hex
    if len(request_id) > 64 or not request_id.isprintable():
        request_id = uuid.uuid4().hex
    request.state.request_id = request_id
    started = time.perf_counter()
    response = await _nul_problem(request) or await call_next(request)
    response.headers["X-Request-ID"] = request_id
    path = request.url.path
    if path in _UNAUDITED or path.startswith(_UNAUDITED_PREFIXES):
        return response
    route = request.scope.get("route")
    principal: Principal | None = getattr(request.state, "principal", None)
    # The route template, not the raw path: a holder's ID number in the path must not reach the log (its
    # keyed digest does, as holder_digest); the other path parameters are kept.
    template = getattr(route, "path", None)
    params = {k: v for k, v in request.path_params.items() if k not in _SECRET_PATH_PARAMS}
    resource = f"{request.method} {template}" if template else f"{request.method} (unrouted)"
    event = AuditEvent(
        at=datetime.now(UTC),
        request_id=request_id,
        action=getattr(route, "name", None) or f"{request.method} (no route)",
        outcome=_outcome(response.status_code),
        status_code=response.status_code,
        principal=principal.ref if principal else None,
        organisation_code=principal.organisation_code if principal else None,
        role=principal.role.value if principal else None,
        resource=resource[:300],
        matter=getattr(request.state, "matter", None),
        holder_digest=getattr(request.state, "holder_digest", None),
        certificate_identifier=_certificate_identifier(request),
        grant_id=_grant_id(request),
        reason=getattr(request.state, "problem", None),
        client=request.client.host if request.client else None,
        user_agent=request.headers.get("user-agent"),
        details={"ms": round((time.perf_counter() - started) * 1000, 1), **params},
    )
    services = services_of(request)
    trail = getattr(services, "audit", None)
    try:
        if trail is not None:
            await trail.asubmit(event)
        else:
            await run_in_threadpool(record_event, services.repo.db, event)
    except Exception:
        # Not acknowledged, not answered: a read is never served without its log entry.
        log.exception("audit event of request %s could not be recorded", request_id)
        failed = problem_response(
            request, 500, "audit-unavailable", "Audit log unavailable", f"request {request_id}: not completed"
        )
        failed.headers["X-Request-ID"] = request_id
        return failed
    return response


def _certificate_identifier(request: Request) -> str | None:
    value = getattr(request.state, "certificate_identifier", None) or request.path_params.get("identifier")
    return str(value)[:128] if value else None


def _grant_id(request: Request) -> int | None:
    value = getattr(request.state, "grant_id", None)
    if value is None:
        value = request.query_params.get("grant")
    try:
        grant = int(value) if value is not None else None
    except (TypeError, ValueError):
        return None
    return grant if grant is not None and 0 <= grant < 2**63 else None


def flush_audit(request: Request, timeout: float = 5.0) -> None:
    """Wait until this process's acknowledged audit events are in the database (rules that read the log, such as
    one matter serving one holder, must see the requests just answered)."""
    trail = getattr(services_of(request), "audit", None)
    if trail is not None:
        trail.flush(timeout, pending=False)
