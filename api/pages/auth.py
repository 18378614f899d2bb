"""Login (登录), logout (退出) and the home page.

A failed login answers 401 with one message whatever the cause (unknown name, wrong password, locked account,
disabled principal); an address with too many failures gets 429 with ``Retry-After`` before any password is
checked (:func:`certstore.services.logins.authenticate_password`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request, Response
from fastapi.responses import RedirectResponse
from starlette.concurrency import run_in_threadpool

from api.pages.common import (
    NAVIGATION,
    SESSION_COOKIE,
    PageRoute,
    csrf_protected,
    optional_session,
    render,
    services_of,
    session_token,
    set_cookie,
)
from certstore.access import AuthenticationError
from certstore.services import logins

__all__ = ["router"]

router = APIRouter(route_class=PageRoute, include_in_schema=False)


def _throttle(request: Request) -> logins.LoginThrottle:
    """The process's per-address throttle of failed logins (one per application, made on first use)."""
    state = request.app.state
    throttle: logins.LoginThrottle | None = getattr(state, "login_throttle", None)
    if throttle is None:
        throttle = state.login_throttle = logins.LoginThrottle()
    return throttle


def _safe_next(target: str | None) -> str:
    """Only local paths (no scheme, no //host): an open redirect would help phishing."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


@router.get("/", name="page_home")
def home(request: Request) -> Response:
    session = optional_session(request)
    if session is not None:
        links = NAVIGATION.get(session.principal.role, [])
        if links:
            return RedirectResponse(links[0][0], status_code=303)
    return render(request, "home.html")


@router.get("/login", name="page_login")
def login_form(request: Request, next: str = "/") -> Response:
    return render(request, "login.html", {"next": _safe_next(next), "error": None, "notice": None})


@router.post("/login", name="page_login_submit", dependencies=[Depends(csrf_protected)])
async def login(
    request: Request,
    organisation_code: Annotated[str, Form(max_length=32)],
    name: Annotated[str, Form(max_length=200)],
    password: Annotated[str, Form(max_length=1024)],
    next: Annotated[str, Form(max_length=2000)] = "/",
) -> Response:
    repo = services_of(request).repo
    client = request.client.host if request.client else None
    context = {"next": _safe_next(next), "notice": None, "organisation_code": organisation_code, "name": name}
    try:
        principal = await run_in_threadpool(
            logins.authenticate_password,
            repo,
            organisation_code,
            name,
            password,
            client=client,
            throttle=_throttle(request),
        )
    except logins.LoginThrottledError as exc:
        request.state.problem = f"login throttled for client address {client}"
        response = await run_in_threadpool(render, request, "login.html", {**context, "error": str(exc)}, 429)
        response.headers["Retry-After"] = str(exc.retry_after)
        return response
    except AuthenticationError as exc:
        why = getattr(
            exc, "reason", "failed"
        )  # for the audit log only: the answer is the same for every cause
        request.state.problem = f"login failed for {organisation_code.strip()}/{name.strip()} ({why})"
        return await run_in_threadpool(render, request, "login.html", {**context, "error": str(exc)}, 401)
    token = await run_in_threadpool(logins.create_session, repo, principal, client=client)
    request.state.principal = principal  # the audit event names who logged in
    response = RedirectResponse(_safe_next(next), status_code=303)
    set_cookie(request, response, SESSION_COOKIE, token)
    request.state.keep_cookie = True
    return response


@router.post("/logout", name="page_logout", dependencies=[Depends(csrf_protected)])
async def logout(request: Request) -> Response:
    token = session_token(request)
    if token is not None:
        await run_in_threadpool(logins.end_session, services_of(request).repo, token)
    response = RedirectResponse("/login", status_code=303)
    set_cookie(request, response, SESSION_COOKIE, None)
    return response
