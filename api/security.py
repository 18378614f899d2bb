"""Authentication and role checks as FastAPI dependencies, and the audit of every request.

Every route except the public ones depends on :func:`allow` (or :func:`calling`) with the roles it admits; the
finer rules (an agency only touches its own catalogue types and certificates, window staff only the holder a
registered matter or the holder's authorisation names, bulk access only with a grant) live in the use cases
(``certstore.services.authorization``, ``certstore.services.scope``), whichever entry point calls them.

Every audited request leaves exactly one audit entry:

- a use case that takes the request's :class:`~certstore.services.calls.Call` (:func:`call_of`, :func:`calling`:
  the certificate use cases, batches, sharing) records it itself — inside its transaction for a change, through
  the durable sink for a read, a repeat or a denial — and notes it in ``call.recorded``;
- a mutation whose service does not take a call yet (catalogue, reviews, inspections, grants, calendar) writes the
  entry built by :func:`request_event` *inside its transaction* (:class:`ActionAudit`, passed to the service as
  its ``within`` hook): the entry commits exactly when the change does;
- every other request — denials, validation failures, unrouted paths, and mutations whose transaction rolled
  back — is logged by the middleware :func:`audit_requests` after the response, through the durable spool of
  :class:`certstore.audit.AuditTrail`. It skips a request the core or :class:`ActionAudit` recorded.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Depends, Request, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import event as orm_event
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from api.problems import problem_response
from certstore.access import Actor, AuthenticationError, Principal, Role, require_role
from certstore.audit import AuditEvent, Outcome, append_in_transaction, record_event
from certstore.audit.requests import adoptable, claim_request_id, client_value, server_request_id
from certstore.services import access
from certstore.services.calls import Call, Origin, Via
from certstore.services.transaction import Within

__all__ = [
    "ActionAudit",
    "ActionAuditDep",
    "AuthenticatedPrincipal",
    "allow",
    "audit_requests",
    "call_of",
    "calling",
    "current_principal",
    "origin_of",
    "request_event",
    "services_of",
]

log = logging.getLogger("certstore.api")

_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="token",
    description="An API token from `certstore token create` (cst_<id>_<secret>).",
)

#: Scope key of the principal authenticated before the body was read (api/limits.py).
AUTHENTICATED = "certstore.authenticated"

_UNAUDITED_PREFIXES = ("/docs", "/redoc", "/openapi.json", "/static/", "/favicon")
_UNAUDITED = {"/api/v1/health"}
_SECRET_PATH_PARAMS = {"id_number"}


def services_of(request: Request) -> Any:
    return request.app.state.services


def current_principal(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> Principal:
    """The authenticated caller: a bearer token, or a client certificate vouched for by the proxy header. Done once
    per request: api/limits.py authenticates before the body is read and keeps the principal in the scope."""
    authenticated: Principal | None = request.scope.get(AUTHENTICATED)
    if authenticated is not None:
        return authenticated
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


def origin_of(request: Request, via: Via) -> Origin:
    """Where this request's call comes from: the entry point, the request id, the route template (never the raw
    path, whose holder ID number must not reach the log), client, user agent and the client's own request id."""
    route = request.scope.get("route")
    template = getattr(route, "path", None)
    return Origin(
        via,
        request_id=getattr(request.state, "request_id", None) or server_request_id(),
        resource=(f"{request.method} {template}" if template else f"{request.method} (unrouted)")[:300],
        client=request.client.host if request.client else None,
        user_agent=request.headers.get("user-agent"),
        details=_client_request_id(request),
    )


def call_of(request: Request, principal: Principal, *, via: Via = Via.API) -> Call:
    """The :class:`~certstore.services.calls.Call` of this request for the use cases: the principal as actor; the
    request id, route template (never the raw path), client and user agent as origin. Kept on the request: the
    middleware does not log a request whose call the core has recorded (:func:`audit_requests`)."""
    existing: Call | None = getattr(request.state, "call", None)
    if existing is not None:
        return existing
    call = Call(Actor.of(principal), origin_of(request, via))
    request.state.call = call
    return call


def calling(*roles: Role) -> Callable[..., Call]:
    """A dependency admitting only ``roles`` and giving the handler the request's :class:`Call` (use as
    ``call: Annotated[Call, Depends(calling(Role.AGENCY))]``)."""
    admit = allow(*roles)

    # ``Depends`` as the default, not in ``Annotated``: the annotation is a string here (postponed evaluation),
    # which FastAPI resolves in this module's globals, where the closure's ``admit`` does not exist.
    def dependency(request: Request, principal: Principal = Depends(admit)) -> Call:  # noqa: B008
        return call_of(request, principal)

    dependency.__name__ = "calling_" + "_".join(role.value for role in roles)
    return dependency


def _recorded_by_core(request: Request) -> bool:
    call: Call | None = getattr(request.state, "call", None)
    return call is not None and bool(call.recorded)


def _outcome(status: int) -> Outcome:
    if status in (401, 403, 429):  # 429: refused by the login throttle or a rate limit
        return Outcome.DENY
    if status >= 500:
        return Outcome.ERROR
    return Outcome.ALLOW


async def _nul_problem(request: Request) -> Response | None:
    """NUL characters cannot be stored (PostgreSQL text and JSONB refuse them) and have no business in any field:
    refused up front in the URL, so they never reach a query. (In a JSON body: api/limits.py, after
    authentication — the body is not read here.)"""
    if "\x00" in request.url.path or "%00" in str(request.url.query) or "%00" in request.url.path:
        return problem_response(
            request, 422, "nul-character", "Invalid request", "NUL characters are not allowed in the URL"
        )
    return None


def request_event(request: Request, status_code: int) -> AuditEvent:
    """The audit event of an API call as the request shows it now: who (the authenticated principal), what (the
    route's name and template — never the raw path, whose holder ID number must not reach the log; the other
    path parameters go to ``details``), on what (matter, holder digest, certificate, grant, as the handler
    recorded them on ``request.state``), from where, the outcome of ``status_code`` and the time since the
    request arrived. The one place an entry about a request is made: the middleware after the response, and
    :class:`ActionAudit` inside a mutation's transaction."""
    route = request.scope.get("route")
    principal: Principal | None = getattr(request.state, "principal", None)
    template = getattr(route, "path", None)
    params = {k: v for k, v in request.path_params.items() if k not in _SECRET_PATH_PARAMS}
    resource = f"{request.method} {template}" if template else f"{request.method} (unrouted)"
    started: float | None = getattr(request.state, "audit_started", None)
    elapsed = {"ms": round((time.perf_counter() - started) * 1000, 1)} if started is not None else {}
    return AuditEvent(
        at=datetime.now(UTC),
        request_id=getattr(request.state, "request_id", None) or "-",
        action=getattr(route, "name", None) or f"{request.method} (no route)",
        outcome=_outcome(status_code),
        status_code=status_code,
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
        details={**elapsed, **params, **_client_request_id(request)},
    )


#: ``request.state`` attribute: the ``event_id`` of the request's entry, once committed in the action's own
#: transaction (:class:`ActionAudit`); the middleware then does not log the request again.
_COMMITTED = "audit_committed"


class ActionAudit:
    """The audit entry of one mutating API call, written in the action's own database transaction (write-ahead,
    :func:`certstore.audit.append_in_transaction`): it is stored exactly when the change is, and the next append
    of any audit writer chains it.

    The route passes :meth:`within` to the service (composed with its own hook, if any); the service calls it
    only when it changes something. Once that transaction has committed the request is marked, and
    :func:`audit_requests` does not log it a second time — even when the response then fails, the entry of the
    committed action is the request's one entry. When the transaction rolls back, the entry is gone with it and
    the middleware logs the request (its failure) as usual.
    """

    def __init__(self, request: Request) -> None:
        self.request = request

    @property
    def committed(self) -> bool:
        """Whether this request's entry has been committed with its action."""
        return getattr(self.request.state, _COMMITTED, None) is not None

    def write(self, session: Session, status_code: int | None = None) -> None:
        """Add the request's event to ``session``'s transaction (at most once per request). ``status_code``:
        the success status the route answers with (default: the status its decorator declares, else 200)."""
        if self.committed:
            return
        if status_code is None:
            status_code = getattr(self.request.scope.get("route"), "status_code", None) or 200
        event = request_event(self.request, status_code).normalised()
        append_in_transaction(session, event)
        state = self.request.state

        def committed(_session: Session) -> None:
            setattr(state, _COMMITTED, event.event_id)

        orm_event.listen(session, "after_commit", committed, once=True)  # never if it rolls back

    def within(self, status_code: int | None = None, *, then: Within | None = None) -> Within:
        """The ``within`` hook for the service: first ``then`` (the route's own records, e.g. an arrival), then
        the audit event — so the event sees what ``then`` noted on the request."""

        def hook(session: Session) -> None:
            if then is not None:
                then(session)
            self.write(session, status_code)

        return hook


def action_audit(request: Request) -> ActionAudit:
    """Dependency: the in-transaction audit of the current (mutating) request."""
    return ActionAudit(request)


#: A route parameter giving the handler its :class:`ActionAudit` (nothing in the OpenAPI document).
ActionAuditDep = Annotated[ActionAudit, Depends(action_audit)]


async def audit_requests(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
    """Middleware: a request id on every response, and one audit event per API call (allowed, denied, failed).

    A mutation whose entry was committed in its own transaction (:class:`ActionAudit`) is not logged again. A
    handler that fails with an unexpected exception is logged as a 500 before the exception goes on to the
    server-error handler."""
    request.state.audit_started = time.perf_counter()
    path = request.url.path
    audited = not (path in _UNAUDITED or path.startswith(_UNAUDITED_PREFIXES))
    request_id = request.state.request_id = await _request_id(request, audited)
    try:
        response = await _nul_problem(request) or await call_next(request)
    except Exception:
        if audited and getattr(request.state, _COMMITTED, None) is None and not _recorded_by_core(request):
            request.state.problem = "unexpected server error"
            try:
                await _submit(request, request_event(request, 500))
            except Exception:
                log.exception("audit event of failed request %s could not be recorded", request_id)
        raise  # on to the server-error handler (a 500 problem)
    response.headers["X-Request-ID"] = request_id
    if not audited or getattr(request.state, _COMMITTED, None) is not None or _recorded_by_core(request):
        return response
    event = request_event(request, response.status_code)
    try:
        await _submit(request, event)
    except Exception:
        # Not acknowledged, not answered: a read is never served without its log entry.
        log.exception("audit event of request %s could not be recorded", request_id)
        failed = problem_response(
            request, 500, "audit-unavailable", "Audit log unavailable", f"request {request_id}: not completed"
        )
        failed.headers["X-Request-ID"] = request_id
        return failed
    return response


async def _request_id(request: Request, audited: bool) -> str:
    """The request's id: the client's ``X-Request-ID`` the first time anyone sends that value (claimed in the
    database, :mod:`certstore.audit.requests`), else a fresh server id — the client's value then kept apart as
    ``details.client_request_id`` of the request's entry (``request.state.client_request_id``)."""
    sent = request.headers.get("X-Request-ID")
    if not sent:
        return server_request_id()
    if audited and await run_in_threadpool(claim_request_id, services_of(request).repo.db, sent):
        return sent
    if not audited and adoptable(sent):  # no entry is written: nothing to keep unique
        return sent
    request.state.client_request_id = client_value(sent)
    return server_request_id()


def _client_request_id(request: Request) -> dict[str, str]:
    value: str | None = getattr(request.state, "client_request_id", None)
    return {"client_request_id": value} if value else {}


async def _submit(request: Request, event: AuditEvent) -> None:
    """Record ``event`` durably: the process's audit trail (spool, then batched appends) or, without one, a
    synchronous append."""
    services = services_of(request)
    trail = getattr(services, "audit", None)
    if trail is not None:
        await trail.asubmit(event)
    else:
        await run_in_threadpool(record_event, services.repo.db, event)


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
