"""What every page shares: templates, the session of the browser, CSRF tokens, error pages, security headers.

* :class:`PageRoute` is the route class of every page: domain errors become an HTML page with the status the
  API would answer (:func:`api.problems.domain_status`; the audit middleware derives allow/deny from it), an
  unauthenticated request gets the login form with 401, and every response carries the pages' security headers
  (CSP without inline scripts, no framing, no caching of personal pages).
* :func:`staff` is the pages' counterpart of :func:`api.security.allow`: the session's principal, checked with
  the same :func:`certstore.access.require_role`, recorded on the request for the audit event.
* CSRF (跨站请求伪造): every POST form carries ``csrf_token`` = HMAC-SHA256(session key, cookie token), bound to
  the session cookie when logged in and to a random pre-session cookie otherwise (login and verification
  forms), checked by :func:`csrf_protected`. Cookies are HttpOnly, SameSite=Lax, and Secure behind https.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from collections.abc import Awaitable, Callable, Mapping
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse
from fastapi.routing import APIRoute
from fastapi.templating import Jinja2Templates
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from api import csrf
from api.downloads import attachment
from api.problems import domain_status
from certstore.access import AccessDeniedError, AuthenticationError, Principal, Role, require_role
from certstore.identifiers import HOLDER_ID_TYPE_LABELS
from certstore.lifecycle import Status
from certstore.services import logins
from certstore.timezones import CHINA_STANDARD_TIME, beijing_time

if TYPE_CHECKING:
    from api.app import Services

__all__ = [
    "FORM_COOKIE",
    "HOLDER_ID_TYPES",
    "NAVIGATION",
    "SESSION_COOKIE",
    "LoginRequiredError",
    "PageRoute",
    "attachment",
    "csrf_protected",
    "csrf_token",
    "html",
    "optional_session",
    "render",
    "services_of",
    "session_key_of",
    "session_token",
    "set_cookie",
    "staff",
    "templates",
]

log = logging.getLogger("certstore.pages")

SESSION_COOKIE = "certstore_session"
FORM_COOKIE = "certstore_form"  # the pre-session cookie anonymous forms are bound to (login, verification)
CHINA = CHINA_STANDARD_TIME

TEMPLATES_DIR = Path(__file__).resolve().parent.parent / "templates"
templates = Jinja2Templates(directory=str(TEMPLATES_DIR))

#: 持证主体代码类型 for the pages' selects.
HOLDER_ID_TYPES: dict[str, str] = HOLDER_ID_TYPE_LABELS

#: The pages' navigation per role.
NAVIGATION: dict[Role, list[tuple[str, str]]] = {
    Role.WINDOW: [("/window", "窗口办件"), ("/verify", "文件验证")],
    Role.AGENCY: [("/agency", "发证管理"), ("/agency/catalogue", "目录编辑"), ("/verify", "文件验证")],
    Role.BUREAU: [
        ("/bureau/catalogue", "目录审批"),
        ("/agency/catalogue", "目录编辑"),
        ("/verify", "文件验证"),
    ],
    Role.AUDITOR: [("/audit", "审计日志"), ("/verify", "文件验证")],
    Role.UPSTREAM: [("/verify", "文件验证")],
}

_CSP = (
    "default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)


class LoginRequiredError(AuthenticationError):
    """The page needs a logged-in principal (answered with the login form, status 401)."""


def services_of(request: Request) -> Services:
    """The process's application (:class:`api.app.Services`): what every page hands to the services."""
    services: Services = request.app.state.services
    return services


def session_key_of(request: Request) -> bytes:
    """The session key (CSRF tokens, window-case encryption), loaded once per application."""
    state = request.app.state
    key: bytes | None = getattr(state, "page_session_key", None)
    if key is None:
        key = state.page_session_key = logins.session_key(services_of(request).settings.data_dir)
    return key


# --- formatting for templates ----------------------------------------------------------------------------


def _china_time(value: datetime | str | None, with_seconds: bool = False, zone: bool = True) -> str:
    """The pages' one time filter: Beijing time with its zone (``2026-12-07 16:05:09 (北京时间)``); ``zone=False``
    where a column heading names the zone. Stored times are UTC (naive ones too)."""
    return beijing_time(value, seconds=with_seconds, zone=zone)


def _china_date(value: date | str | None) -> str:
    if value is None:
        return "长期"
    if isinstance(value, str):
        value = date.fromisoformat(value)
    return f"{value.year}年{value.month}月{value.day}日"


STATUS_CLASS = {
    Status.VALID: "ok",
    Status.SUSPENDED: "warn",
    Status.EXPIRED: "warn",
    Status.SUPERSEDED: "muted",
    Status.REVOKED: "bad",
    Status.CANCELLED: "bad",
    Status.ANNULLED: "bad",
}

templates.env.filters["china_time"] = _china_time
templates.env.filters["china_date"] = _china_date
templates.env.globals["HOLDER_ID_TYPES"] = HOLDER_ID_TYPES
templates.env.globals["STATUS_CLASS"] = {status.value: css for status, css in STATUS_CLASS.items()}


# --- sessions and CSRF -----------------------------------------------------------------------------------


def session_token(request: Request) -> str | None:
    """The session cookie's token, when the session it names is live (set by :func:`optional_session`)."""
    return getattr(request.state, "session_token", None)


def optional_session(request: Request) -> logins.WebSession | None:
    """The browser's live session, or None; records the principal for the audit event."""
    if hasattr(request.state, "web_session"):
        return request.state.web_session  # type: ignore[no-any-return]
    request.state.web_session = None
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        try:
            session = logins.open_session(services_of(request).repo, token, session_key_of(request))
        except AuthenticationError as exc:
            request.state.session_problem = str(exc)
            request.state.clear_session_cookie = True
        else:
            request.state.web_session = session
            request.state.session_token = token
            request.state.principal = session.principal
    return request.state.web_session  # type: ignore[no-any-return]


def staff(*roles: Role) -> Callable[[Request], logins.WebSession]:
    """A dependency admitting logged-in principals of ``roles`` (the same rule as the API's ``allow``)."""

    def check(request: Request) -> logins.WebSession:
        session = optional_session(request)
        if session is None:
            reason = getattr(request.state, "session_problem", None) or "请先登录 (login required)"
            raise LoginRequiredError(reason)
        require_role(session.principal, *roles)
        return session

    check.__name__ = "staff_" + "_".join(role.value for role in roles)
    return check


def _csrf_for(request: Request) -> tuple[bytes, str] | None:
    key = session_key_of(request)
    token = session_token(request)
    if token is not None:
        return key, "session\x00" + token
    form_cookie = request.cookies.get(FORM_COOKIE) or getattr(request.state, "new_form_cookie", None)
    if form_cookie:
        return key, "anon\x00" + form_cookie
    return None


def csrf_token(request: Request) -> str:
    """The token the forms of this page carry (creating the pre-session cookie when there is none), masked
    afresh for this answer (:mod:`api.csrf`: BREACH)."""
    optional_session(request)
    bound = _csrf_for(request)
    if bound is None:
        request.state.new_form_cookie = secrets.token_urlsafe(24)
        bound = _csrf_for(request)
        assert bound is not None
    key, subject = bound
    return csrf.mask(hmac.new(key, b"csrf\x00" + subject.encode("utf-8"), hashlib.sha256).hexdigest())


async def csrf_protected(request: Request) -> None:
    """A POST dependency: the form's ``csrf_token`` must match this browser's cookie (403 otherwise)."""
    form = await request.form()
    submitted = form.get("csrf_token")
    await run_in_threadpool(optional_session, request)
    bound = _csrf_for(request)
    if bound is None or not isinstance(submitted, str):
        raise AccessDeniedError("表单已失效，请刷新页面后重试 (missing CSRF token)")
    key, subject = bound
    expected = hmac.new(key, b"csrf\x00" + subject.encode("utf-8"), hashlib.sha256).hexdigest()
    if not csrf.matches(submitted, expected):
        raise AccessDeniedError("表单已失效，请刷新页面后重试 (CSRF token does not match)")


def _secure(request: Request) -> bool:
    return request.url.scheme == "https" or (services_of(request).public_url or "").startswith("https:")


def set_cookie(request: Request, response: Response, name: str, value: str | None) -> None:
    """Set (or with None delete) a cookie with the pages' flags: HttpOnly, SameSite=Lax, Secure behind https."""
    if value is None:
        response.delete_cookie(name, path="/", httponly=True, samesite="lax", secure=_secure(request))
    else:
        response.set_cookie(name, value, path="/", httponly=True, samesite="lax", secure=_secure(request))


# --- rendering -------------------------------------------------------------------------------------------


def render(
    request: Request, template: str, context: Mapping[str, Any] | None = None, status: int = 200
) -> Response:
    """Render ``template`` with the page context (the user, navigation, a CSRF token for its forms)."""
    session = optional_session(request)
    principal: Principal | None = session.principal if session else None
    values = {
        "request": request,
        "session": session,
        "principal": principal,
        "navigation": NAVIGATION.get(principal.role, []) if principal else [("/verify", "文件验证")],
        "csrf_token": csrf_token(request),
        "request_id": getattr(request.state, "request_id", None),
        **(context or {}),
    }
    return templates.TemplateResponse(request, template, values, status_code=status)


def _error_page(request: Request, exc: BaseException) -> Response:
    if isinstance(exc, AuthenticationError) and not isinstance(exc, logins.LoginThrottledError):
        request.state.problem = f"Authentication required: {exc}"
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        context = {"next": target if request.method == "GET" else "/", "error": None, "notice": str(exc)}
        return render(request, "login.html", context, status=401)
    if isinstance(exc, RequestValidationError):
        fields = [
            (".".join(str(p) for p in err.get("loc", ())[1:]), str(err.get("msg", "")))
            for err in exc.errors()
        ]
        request.state.problem = "Invalid request: " + "; ".join(f"{f}: {m}" for f, m in fields[:5])
        context = {"title": "输入有误", "detail": "请检查以下字段。", "fields": fields}
        return render(request, "error.html", context, status=422)
    if isinstance(exc, StarletteHTTPException):
        request.state.problem = f"HTTP {exc.status_code}: {exc.detail}"
        context = {"title": "请求无法处理", "detail": str(exc.detail), "fields": []}
        return render(request, "error.html", context, status=exc.status_code)
    known = domain_status(exc)
    if known is None:
        request_id = getattr(request.state, "request_id", "?")
        log.error(
            "page %s %s failed (request %s)", request.method, request.url.path, request_id, exc_info=exc
        )
        request.state.problem = "Internal error"
        context = {"title": "系统错误", "detail": f"请将请求编号 {request_id} 告知运维人员。", "fields": []}
        return render(request, "error.html", context, status=500)
    status, title = known
    request.state.problem = f"{title}: {exc}"
    titles = {403: "无权访问", 404: "未找到", 409: "状态冲突", 422: "输入有误", 503: "服务暂不可用"}
    context = {
        "title": titles.get(status, title),
        "detail": str(exc),
        "fields": getattr(exc, "problems", None) or [],
    }
    return render(request, "error.html", context, status=status)


def _finish(request: Request, response: Response) -> Response:
    headers = response.headers
    headers.setdefault("Content-Security-Policy", _CSP)
    headers.setdefault("X-Frame-Options", "DENY")
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("Referrer-Policy", "same-origin")
    if getattr(request.state, "web_session", None) is not None or request.url.path.startswith(
        ("/window", "/agency", "/audit")
    ):
        headers["Cache-Control"] = "no-store"
    new_cookie = getattr(request.state, "new_form_cookie", None)
    if new_cookie and not request.cookies.get(FORM_COOKIE):
        set_cookie(request, response, FORM_COOKIE, new_cookie)
    if getattr(request.state, "clear_session_cookie", False) and not getattr(
        request.state, "keep_cookie", False
    ):
        set_cookie(request, response, SESSION_COOKIE, None)
    return response


class PageRoute(APIRoute):
    """The route class of every page: HTML error pages and security headers (see the module docstring)."""

    def get_route_handler(self) -> Callable[[Request], Awaitable[Response]]:
        inner = super().get_route_handler()

        async def handler(request: Request) -> Response:
            try:
                response = await inner(request)
            except Exception as exc:
                response = await run_in_threadpool(_error_page, request, exc)
            return _finish(request, response)

        return handler


def html(text: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(text, status_code=status)
