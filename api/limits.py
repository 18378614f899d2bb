"""The edge of every request body: its size limit, authentication before it is read, and a read timeout.

:class:`RequestLimitsMiddleware` (pure ASGI, inside the audit middleware so that its refusals are audited like
any other answer) looks the request's route up and, before the route or FastAPI reads a byte of the body:

1. **Size by ``Content-Length``.** Each route has a limit (:func:`body_limit`): an upload route (a ``File``
   parameter: ``POST /api/v1/public/verify``, the agency page's CSV import) ``max_upload_bytes`` plus 64 KiB of
   multipart framing; a batch (``POST /api/v1/batches``, ``POST /api/v1/aggregate/batches``) ``max_batch_bytes``;
   every other route ``max_json_bytes`` (:class:`api.settings.Settings`). A declared length over it is answered
   ``413`` (problem ``request-too-large``) at once.
2. **Authentication.** A route that needs a credential (its dependencies include
   :func:`api.security.current_principal`) authenticates the request now: without a valid token (or proxy-vouched
   client certificate) it is answered ``401`` — the body never read, whatever its size. The principal is kept
   for the route (the dependency does not authenticate twice), so a malformed body of an authenticated caller is
   answered ``422`` and audited under that caller. An upload to a page that admits logged-in staff only
   (``staff(...)``, api/pages/common.py: the agency's CSV import) checks the session cookie now: without a live
   session, the first read of the body fails with the page's login refusal, which the page answers as ever (its
   login page, 401) — the upload is never read. (The pages' small forms, within 1 MiB, are read as before: their
   CSRF check, which needs the form's token, comes first.)
3. **NUL characters** in a JSON body (``\\u0000`` — PostgreSQL refuses them): refused ``422`` after
   authentication, reading the body within its limit.
4. **Size while streaming** (a chunked body, or one longer than it said): the bytes are counted as the route
   reads them; past the limit the read fails with ``413`` (:class:`api.problems.EdgeError`), so the route never
   holds more than the limit.
5. **Read timeout**: a body that stalls for ``body_timeout`` seconds (no bytes while the route waits) is
   answered ``408``.

Any answer sent before the body has been read to its end carries ``Connection: close``: the server then closes the
connection instead of reading (and discarding) the rest of what the client still sends.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from fastapi import HTTPException, params
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials
from fastapi.security.utils import get_authorization_scheme_param
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.problems import EdgeError, problem_response
from api.security import AUTHENTICATED, current_principal
from certstore.access import AccessDeniedError, AuthenticationError

__all__ = ["BATCH_ROUTES", "MULTIPART_SLACK", "RequestLimitsMiddleware", "RoutePolicy", "body_limit"]

#: The routes whose body is a batch (``max_batch_bytes``).
BATCH_ROUTES = frozenset({("POST", "/api/v1/batches"), ("POST", "/api/v1/aggregate/batches")})
#: What a multipart body may carry beyond its file: boundaries, part headers, small form fields.
MULTIPART_SLACK = 64 * 1024


@dataclass(frozen=True)
class RoutePolicy:
    """What the middleware needs to know of a route: which limit applies to its body (``upload``, ``batch`` or
    ``json``), whether it needs a credential, and a page's session check (``staff(...)``, api/pages/common.py)."""

    kind: str = "json"
    authenticated: bool = False
    session_check: Callable[[Request], Any] | None = None


_UNROUTED = RoutePolicy()


def body_limit(settings: Any, kind: str) -> int:
    """The largest body (bytes) of a route of ``kind`` under ``settings``."""
    if kind == "upload":
        return int(settings.max_upload_bytes) + MULTIPART_SLACK
    if kind == "batch":
        return int(settings.max_batch_bytes)
    return int(settings.max_json_bytes)


def _needs_credential(dependant: Dependant) -> bool:
    return any(
        dependency.call is current_principal or _needs_credential(dependency)
        for dependency in dependant.dependencies
    )


def _session_check(dependant: Dependant) -> Callable[[Request], Any] | None:
    """A page's ``staff(...)`` dependency (it admits logged-in staff of some roles), if the route has one."""
    for dependency in dependant.dependencies:
        call = dependency.call
        if getattr(call, "__module__", None) == "api.pages.common" and getattr(
            call, "__qualname__", ""
        ).startswith("staff."):
            return call  # type: ignore[return-value]
        found = _session_check(dependency)
        if found is not None:
            return found
    return None


def _body_params(dependant: Dependant) -> Iterator[Any]:
    yield from dependant.body_params
    for dependency in dependant.dependencies:
        yield from _body_params(dependency)


def policy_of(route: BaseRoute) -> RoutePolicy:
    """The :class:`RoutePolicy` of ``route`` (a route without a dependant — docs, static files — needs nothing)."""
    if not isinstance(route, APIRoute):
        return _UNROUTED
    if any((method, route.path) in BATCH_ROUTES for method in route.methods):
        kind = "batch"
    elif any(isinstance(field.field_info, params.File) for field in _body_params(route.dependant)):
        kind = "upload"
    else:
        kind = "json"
    return RoutePolicy(kind, _needs_credential(route.dependant), _session_check(route.dependant))


def _flat_routes(routes: list[BaseRoute]) -> Iterator[BaseRoute]:
    for route in routes:
        included = getattr(route, "original_router", None)  # FastAPI's included routers
        if included is not None:
            yield from _flat_routes(included.routes)
        else:
            yield route


class _Routes:
    """The application's routes, flattened, each with its policy (rebuilt when routes are added)."""

    def __init__(self) -> None:
        self.key: tuple[int, int] | None = None
        self.table: list[tuple[BaseRoute, RoutePolicy]] = []

    def match(self, app: Any, scope: Scope) -> tuple[RoutePolicy, Scope | None]:
        routes = app.router.routes
        key = (id(routes), len(routes))
        if key != self.key:
            self.table = [(route, policy_of(route)) for route in _flat_routes(routes)]
            self.key = key
        for route, policy in self.table:
            match, child_scope = route.matches(scope)
            if match is Match.FULL:
                return policy, child_scope
        return _UNROUTED, None


class _Body:
    """The request body as the route reads it, counted against ``limit``, each read waiting at most
    ``timeout`` seconds (0: no limit). ``expected``: the request declared a body (a length or chunks)."""

    def __init__(self, receive: Receive, limit: int, timeout: float, expected: bool) -> None:
        self.source, self.limit, self.timeout, self.expected = receive, limit, timeout, expected
        self.received = 0
        self.ended = False  # the last part of the body (or the disconnect) has been read
        self.replay: list[Message] = []

    @property
    def unread(self) -> bool:
        """Whether part of a declared body is still unread."""
        return self.expected and not self.ended

    async def receive(self) -> Message:
        if self.replay:
            return self.replay.pop(0)
        if self.ended:
            return await self.source()  # the disconnect a response may wait for: no timeout
        try:
            if self.timeout:
                message = await asyncio.wait_for(self.source(), self.timeout)
            else:
                message = await self.source()
        except TimeoutError:
            raise EdgeError(
                408, "request-timeout", "Request timeout",
                f"no part of the request body arrived for {self.timeout:g} s",
            ) from None  # fmt: skip
        if message["type"] == "http.request":
            self.received += len(message.get("body", b""))
            if self.received > self.limit:
                raise _too_large(self.limit)
            if not message.get("more_body", False):
                self.ended = True
        else:
            self.ended = True  # disconnected
        return message

    async def read_all(self) -> bytes:
        """Read the whole body (within the limit) and keep it to be read again by the route."""
        chunks: list[bytes] = []
        while not self.ended:
            message = await self.receive()
            if message["type"] != "http.request":
                self.replay.append(message)
                break
            chunks.append(message.get("body", b""))
        body = b"".join(chunks)
        self.replay.insert(0, {"type": "http.request", "body": body, "more_body": False})
        return body


class RequestLimitsMiddleware:
    """ASGI middleware: see the module docstring. Settings come from the application's services."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.routes = _Routes()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        application = scope["app"]
        settings = application.state.services.settings
        policy, child_scope = self.routes.match(application, scope)
        limit = body_limit(settings, policy.kind)
        length, chunked = _declared(scope)
        body = _Body(receive, limit, float(settings.body_timeout), expected=chunked or bool(length))

        async def closing_send(message: Message) -> None:
            if message["type"] == "http.response.start" and body.unread:
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"connection"]
                message = {**message, "headers": [*headers, (b"connection", b"close")]}
            await send(message)

        async def answer(exc: Exception) -> None:
            if child_scope:
                scope.update(child_scope)  # the audit entry names the route, as if the route had answered
            response = await _handled(application, Request(scope), exc)
            await response(scope, body.receive, closing_send)

        if length is not None and length > limit:
            await answer(_too_large(limit))
            return
        if policy.authenticated:
            request = Request(scope)
            try:
                scope[AUTHENTICATED] = await run_in_threadpool(current_principal, request, _bearer(request))
            except AuthenticationError as exc:
                await answer(exc)
                return
        if policy.session_check is not None and policy.kind == "upload" and body.expected:
            try:
                await run_in_threadpool(policy.session_check, Request(scope))
            except AuthenticationError as exc:
                # no live session: whatever reads the body first fails with the page's own login refusal,
                # which the page answers (its login page) — not a byte of the body read
                await self.app(scope, _SessionRequiredError(str(exc)).raise_on_read, closing_send)
                return
            except AccessDeniedError:
                pass  # a live session of another role: authenticated, the page's own checks answer
        if body.expected and _is_json(scope):
            try:
                nul = _json_has_nul(await body.read_all())
            except EdgeError as exc:
                await answer(exc)
                return
            if nul:
                await answer(_NulError())
                return
        await self.app(scope, body.receive, closing_send)


class _NulError(Exception):
    pass


def _too_large(limit: int) -> EdgeError:
    return EdgeError(
        413,
        "request-too-large",
        "Request too large",
        f"the body of this request may be at most {limit} bytes",
    )


async def _handled(application: Any, request: Request, exc: Exception) -> Any:
    """The application's own answer to ``exc`` (its exception handler: a problem, with the headers it adds)."""
    if isinstance(exc, _NulError):
        return problem_response(
            request,
            422,
            "nul-character",
            "Invalid request",
            "NUL characters are not allowed in the JSON body",
        )
    for cls in type(exc).__mro__:
        handler = application.exception_handlers.get(cls)
        if handler is not None:
            return await handler(request, exc)
    raise exc


class _SessionRequiredError(HTTPException, AuthenticationError):
    """A page's login refusal raised where its body would be read: an HTTPException, so that FastAPI's body
    reading lets it through unchanged, and an AuthenticationError, so that the page answers with its login
    page."""

    def __init__(self, reason: str) -> None:
        super().__init__(401, reason)
        self.reason = reason

    def __str__(self) -> str:
        return self.reason

    async def raise_on_read(self) -> Message:
        raise self


def _declared(scope: Scope) -> tuple[int | None, bool]:
    """The declared ``Content-Length`` (None without one) and whether the body is chunked."""
    length: int | None = None
    chunked = False
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                length = int(value)
            except ValueError:
                length = None  # the server refuses a malformed length before the application sees it
        elif name == b"transfer-encoding" and b"chunked" in value.lower():
            chunked = True
    return length, chunked


def _is_json(scope: Scope) -> bool:
    for name, value in scope["headers"]:
        if name == b"content-type":
            return value.lower().startswith(b"application/json")
    return False


def _bearer(request: Request) -> HTTPAuthorizationCredentials | None:
    """The bearer credential as :class:`fastapi.security.HTTPBearer` reads it (None when there is none)."""
    scheme, credentials = get_authorization_scheme_param(request.headers.get("Authorization"))
    if not (scheme and credentials) or scheme.lower() != "bearer":
        return None
    return HTTPAuthorizationCredentials(scheme=scheme, credentials=credentials)


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_nul(v) for v in value)
    return False


def _json_has_nul(body: bytes) -> bool:
    """Whether ``body`` holds a NUL: raw, or as a ``\\u0000`` escape that decodes to one (not an escaped
    backslash followed by ``u0000``)."""
    if b"\x00" in body:
        return True
    if b"\\u0000" not in body.lower():
        return False
    try:
        return _has_nul(json.loads(body))
    except ValueError:
        return False  # not JSON: the route's validation reports it
