"""The holder's pages (办事人/持证人, docs/holders.md): 一号登录 through the OpenID provider, 我的证照 (every
certificate I hold, all versions and their status, face, sealed OFD/PDF, QR), 访问记录 (who looked at my
certificates), 授权使用 (authorise a using unit for a matter, revoke), 复核 (dispute a certificate, follow the
answer) and 联系方式 / API 令牌.

A holder is no principal: the session is a holder session (:mod:`certstore.services.holders`; its own cookie,
HttpOnly, SameSite=Lax, Secure behind https; the ID number only encrypted with it) and every request builds the
call ``Call(Actor.holder(holder_ref, name), Origin(Via.PAGE …))`` for the same use cases the API's holder routes
call (:mod:`api.routes.holder`): the reads through :mod:`certstore.services.sharing`, which admits a holder for
their own certificates only. The POST forms carry a CSRF token bound to the holder session.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Query, Request, Response
from fastapi.responses import RedirectResponse
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool

from api import csrf
from api.oidc import OidcError, OidcSettings, ProviderError, RelyingParty
from api.pages import common
from api.pages.common import attachment, services_of, session_key_of, set_cookie, templates
from api.security import origin_of
from certstore.access import AccessDeniedError, AuthenticationError, Role
from certstore.audit import Outcome
from certstore.identifiers import HolderIdType
from certstore.lifecycle import Action, Status
from certstore.packaging.face import verification_url
from certstore.packaging.qr import qr_png
from certstore.records import Certificate
from certstore.services import authorisations, holders, sharing
from certstore.services.calls import Call, Via
from certstore.services.scope import Serving
from certstore.timezones import CHINA_STANDARD_TIME

__all__ = [
    "HOLDER_COOKIE",
    "HOLDER_NAVIGATION",
    "LOGIN_COOKIE",
    "holder_call",
    "relying_party",
    "router",
]

log = logging.getLogger("certstore.pages")

HOLDER_COOKIE = "certstore_holder"
LOGIN_COOKIE = "certstore_oidc"  # the pending login (state, nonce, PKCE) of this browser

HOLDER_NAVIGATION: list[tuple[str, str]] = [
    ("/holder", "我的证照"),
    ("/holder/access", "访问记录"),
    ("/holder/authorisations", "授权使用"),
    ("/holder/reviews", "复核"),
    ("/holder/settings", "联系方式与令牌"),
]

_ORDER = {Status.VALID: 0, Status.SUSPENDED: 1, Status.EXPIRED: 2, Status.SUPERSEDED: 3}

ACTION_LABELS = {
    "holder.lookup": "一号查询（查询证照清单）",
    "certificate.read": "查看证照",
    "certificate.history": "查看历次版本",
    "certificate.status": "核验状态",
    "certificate.preview": "查看照面",
    "certificate.copy": "打印副本",
    "certificate.file": "下载证照文件",
    "matter.attach_certificates": "关联到办件",
    "matter.register": "登记办件",
    "page_window_serve": "窗口受理（声明办件与持证人）",
    "certificate.issue": "签发证照",
    "certificate.change": "变更证照",
    "certificate.renew": "延续证照",
    "certificate.act": "变更证照状态（挂起/恢复/吊销/注销/废止）",
}
ROLE_LABELS = {
    "window": "用证单位（窗口）",
    "agency": "发证机构",
    "bureau": "大数据管理局",
    "case_system": "办件系统",
    "operator": "运维人员",
}
OUTCOME_LABELS = {"allow": "已获取", "deny": "被拒绝", "error": "失败"}


class HolderLoginRequiredError(AuthenticationError):
    """The page needs a logged-in holder (answered with the holder login page, status 401)."""


# --- configuration, sessions, calls ----------------------------------------------------------------------


def relying_party(request: Request) -> RelyingParty | None:
    """The application's OpenID relying party (None when no provider is configured)."""
    state = request.app.state
    if not hasattr(state, "holder_rp"):
        services = services_of(request)
        settings = OidcSettings.from_env(services.public_url, dict(services.settings.oidc))
        state.holder_rp = RelyingParty(settings) if settings else None
    rp: RelyingParty | None = state.holder_rp
    return rp


def _claim_policy(request: Request) -> tuple[holders.ClaimNames, holders.AssurancePolicy]:
    env = dict(services_of(request).settings.oidc)
    return holders.ClaimNames.from_env(env), holders.AssurancePolicy.from_env(env)


def optional_holder(request: Request) -> holders.HolderSession | None:
    """The browser's live holder session, or None."""
    if hasattr(request.state, "holder_session"):
        return request.state.holder_session  # type: ignore[no-any-return]
    request.state.holder_session = None
    token = request.cookies.get(HOLDER_COOKIE)
    if token:
        try:
            found = holders.open_session(services_of(request).repo, session_key_of(request), token)
        except AuthenticationError as exc:
            request.state.holder_problem = str(exc)
            request.state.clear_holder_cookie = True
        else:
            request.state.holder_session = found
            request.state.holder_token = token
    return request.state.holder_session  # type: ignore[no-any-return]


def current_holder(request: Request) -> holders.HolderSession:
    """Dependency: the logged-in holder — :class:`HolderLoginRequiredError` (the holder login page, 401) when
    nobody is, :class:`AccessDeniedError` (403) for a logged-in member of staff (a staff session is no holder)."""
    found = optional_holder(request)
    if found is None:
        if common.optional_session(request) is not None:
            raise AccessDeniedError(
                "办事人页面须以办事人身份（一号登录）登录 (a staff session is not a holder's)"
            )
        raise HolderLoginRequiredError(getattr(request.state, "holder_problem", None) or "请先登录")
    return found


Holder = Annotated[holders.HolderSession, Depends(current_holder)]


def holder_call(request: Request, session: holders.HolderSession, *, via: Via = Via.PAGE) -> Call:
    """The request's call: the holder as actor, the route template (never a raw path) as resource. Kept on the
    request so the audit middleware does not log what the core recorded."""
    existing: Call | None = getattr(request.state, "call", None)
    if existing is not None:
        return existing
    call = Call(session.actor, origin_of(request, via))
    request.state.call = call
    request.state.holder_digest = session.holder_ref
    request.state.principal = _AuditedHolder(session.actor.ref)  # names the holder in the middleware's entry
    return call


@dataclass(frozen=True)
class _AuditedHolder:
    """What the audit middleware's request entry reads of its caller (:func:`api.security.request_event`: ref,
    organisation, role) for a holder, who has no :class:`~certstore.access.Principal`: requests no use case
    recorded (a list of authorisations, a refused form) still name the holder."""

    ref: str
    organisation_code: None = None
    role: Role = Role.HOLDER


def _csrf_value(request: Request) -> str:
    token = getattr(request.state, "holder_token", None) or ""
    key = session_key_of(request)
    return hmac.new(key, b"csrf\x00holder\x00" + token.encode("ascii"), hashlib.sha256).hexdigest()


async def holder_csrf(request: Request) -> None:
    """A POST dependency: the form's ``csrf_token`` must match this browser's holder session (403 otherwise)."""
    form = await request.form()
    submitted = form.get("csrf_token")
    await run_in_threadpool(current_holder, request)
    if not csrf.matches(submitted, _csrf_value(request)):
        raise AccessDeniedError("表单已失效，请刷新页面后重试 (CSRF token does not match)")


def render(
    request: Request, template: str, context: dict[str, Any] | None = None, status: int = 200
) -> Response:
    """A holder page: the holder's navigation and name, a CSRF token bound to the holder session."""
    found = optional_holder(request)
    values = {
        "request": request,
        "principal": None,
        "holder": found,
        "navigation": HOLDER_NAVIGATION if found else [("/verify", "文件验证")],
        "csrf_token": csrf.mask(_csrf_value(request)) if found else "",  # masked afresh (BREACH)
        "request_id": getattr(request.state, "request_id", None),
        "ACTION_LABELS": ACTION_LABELS,
        "ROLE_LABELS": ROLE_LABELS,
        "OUTCOME_LABELS": OUTCOME_LABELS,
        **(context or {}),
    }
    return templates.TemplateResponse(request, template, values, status_code=status)


def _login_page(request: Request, error: str | None = None, status: int = 200) -> Response:
    configured = relying_party(request) is not None
    return render(request, "holder_login.html", {"configured": configured, "error": error}, status)


class HolderPageRoute(common.PageRoute):
    """The route class of the holder pages: no holder session → the holder login page (401); every other error
    → the pages' error page; the pages' security headers, never cached."""

    def get_route_handler(self) -> Callable[[Request], Awaitable[Response]]:
        inner = APIRoute.get_route_handler(self)  # not PageRoute's: its login page is the staff's

        async def handler(request: Request) -> Response:
            try:
                response = await inner(request)
            except HolderLoginRequiredError as exc:
                request.state.problem = f"Authentication required: {exc}"
                response = await run_in_threadpool(_login_page, request, None, 401)
            except Exception as exc:
                response = await run_in_threadpool(common._error_page, request, exc)
            response = common._finish(request, response)
            response.headers["Cache-Control"] = "no-store"
            if getattr(request.state, "clear_holder_cookie", False) and not getattr(
                request.state, "keep_holder_cookie", False
            ):
                set_cookie(request, response, HOLDER_COOKIE, None)
            return response

        return handler


router = APIRouter(prefix="/holder", route_class=HolderPageRoute, include_in_schema=False)


# --- login and logout ------------------------------------------------------------------------------------


def _safe_next(target: str | None) -> str:
    if not target or not target.startswith("/holder") or target.startswith("//") or "\\" in target:
        return "/holder"
    return target[:300]


@router.get("/login", name="page_holder_login")
def login_page(request: Request) -> Response:
    """一号登录: the button to the identity platform (or, logged in, my certificates)."""
    if optional_holder(request) is not None:
        return RedirectResponse("/holder", status_code=303)
    return _login_page(request)


@router.get("/login/start", name="page_holder_login_start")
def login_start(request: Request, next: Annotated[str, Query(max_length=300)] = "/holder") -> Response:
    """Start a login: a pending login kept server-side, its token in a short-lived cookie, the browser sent to
    the provider with state, nonce and the PKCE challenge."""
    rp = relying_party(request)
    if rp is None:
        return _login_page(request, "本库未配置统一身份认证，暂不能登录。", 404)
    services = services_of(request)
    pending = holders.begin_login(services.repo, session_key_of(request), _safe_next(next))
    try:
        url = rp.authorization_url(
            state=pending.state, nonce=pending.nonce, code_verifier=pending.code_verifier
        )
    except OidcError as exc:
        request.state.problem = f"identity provider unavailable: {exc}"
        return _login_page(request, str(exc), 503)
    response = RedirectResponse(url, status_code=303)
    set_cookie(request, response, LOGIN_COOKIE, pending.token)
    return response


def _anonymous_call(request: Request) -> Call:
    return holder_call(
        request, holders.HolderSession(0, "web", "unknown", _NOBODY, datetime.min, datetime.min)
    )


_NOBODY = holders.HolderIdentity("person", "未识别", HolderIdType.RESIDENT_ID, "")


@router.get("/login/callback", name="page_holder_login_callback")
def login_callback(request: Request) -> Response:
    """The provider's redirect back: the pending login is consumed (once), the code exchanged, the ID token
    checked, the holder identified from its claims and logged in — or the login refused with the reason."""
    rp = relying_party(request)
    if rp is None:
        return _login_page(request, "本库未配置统一身份认证，暂不能登录。", 404)
    services = services_of(request)
    key = session_key_of(request)
    names, policy = _claim_policy(request)
    identity: holders.HolderIdentity | None = None
    try:
        attempt = holders.finish_login(
            services.repo, key, request.cookies.get(LOGIN_COOKIE), request.query_params.get("state")
        )
        code = rp.callback_code(str(request.url), request.query_params.get("state"))
        tokens = rp.exchange(code, attempt.code_verifier)
        claims = rp.validate_id_token(
            tokens["id_token"],
            nonce=attempt.nonce,
            now=services.now(),
            access_token=tokens.get("access_token"),
        )
        identity = holders.identity_from_claims(claims, names, policy)
    except AuthenticationError as exc:
        request.state.problem = f"holder login refused: {exc}"
        call = _anonymous_call(request)
        holders.record_login(services, call, outcome=Outcome.DENY, reason=str(exc)[:500])
        status = 401
        if isinstance(exc, holders.LowAssuranceError):
            status = 403
        elif isinstance(exc, ProviderError):
            status = 503  # the platform is down or misconfigured: not the holder's fault
        response = _login_page(request, str(exc), status)
        set_cookie(request, response, LOGIN_COOKIE, None)
        return response
    token, session = holders.start_session(
        services.repo,
        key,
        identity,
        client=request.client.host if request.client else None,
        id_token=tokens["id_token"],
    )
    call = holder_call(request, session)
    holders.record_login(services, call, acr=identity.acr)
    if identity.email:
        _set_contact(request, session, identity.email)
    response = RedirectResponse(attempt.return_to, status_code=303)
    set_cookie(request, response, HOLDER_COOKIE, token)
    set_cookie(request, response, LOGIN_COOKIE, None)
    request.state.keep_holder_cookie = True
    return response


def _set_contact(request: Request, session: holders.HolderSession, email: str) -> None:
    from certstore.services import notifications

    try:
        notifications.set_contact(services_of(request), holder_call(request, session), email=email)
    except ValueError as exc:  # a verified address the notifications refuse: the login goes on
        log.warning("holder contact from the ID token not kept: %s", exc)


@router.post("/logout", name="page_holder_logout", dependencies=[Depends(holder_csrf)])
def logout(request: Request, session: Holder) -> Response:
    """退出: the session ends here, then at the provider (RP-initiated logout) when it offers that."""
    token = getattr(request.state, "holder_token", None)
    if token:
        holders.end_session(services_of(request).repo, token)
    rp = relying_party(request)
    target = rp.logout_url(id_token_hint=session.id_token) if rp else None
    request.state.holder_session = None
    if target is None:
        response: Response = RedirectResponse("/holder/login", status_code=303)
    else:  # the pages' CSP (form-action 'self') stops a form's redirect to the provider: a page that goes on
        response = render(request, "holder_logout.html", {"logout_url": target})
    set_cookie(request, response, HOLDER_COOKIE, None)
    return response


# --- 我的证照 ----------------------------------------------------------------------------------------------


def _mine(request: Request, session: Holder) -> list[Any]:
    services = services_of(request)
    identity = session.identity
    return sharing.holder_certificates(
        services,
        holder_call(request, session),
        identity.id_type,
        identity.id_number,
        Serving(),
        include_superseded=True,
    )


def change_records(certificate: Certificate) -> list[dict[str, Any]]:
    """The version's change record (证照变更记录) as its holder sees it, oldest first: what (签发, 变更, 挂起 …), the
    reason, the time and the organisation (机构: the issuing agency's name when it acted) — never a staff member's
    name."""
    records = []
    for event in certificate.events:
        try:
            label = Action(event.action).label
        except ValueError:
            label = event.action
        code = event.organisation_code
        records.append(
            {
                "action": event.action,
                "action_label": label,
                "reason": event.reason,
                "at": event.at,
                "organisation_code": code,
                "organisation_name": certificate.issuer_name if code == certificate.issuer_code else None,
            }
        )
    return records


def group_versions(found: list[Any], at: datetime) -> list[dict[str, Any]]:
    """The holder's certificate versions grouped per certificate (issuer and number), the current version first
    and its status; groups ordered valid first, then by type and number."""
    groups: dict[tuple[str, str], list[Any]] = {}
    for certificate in found:
        groups.setdefault((certificate.issuer_code, certificate.certificate_number), []).append(certificate)
    rows = []
    for versions in groups.values():
        versions.sort(key=lambda c: c.version, reverse=True)
        current = versions[0]
        status = current.status_at(at)
        rows.append(
            {
                "certificate": current,
                "status": status,
                "versions": [{"certificate": v, "status": v.status_at(at)} for v in versions],
            }
        )
    rows.sort(
        key=lambda r: (
            _ORDER.get(r["status"], 5),
            r["certificate"].catalogue_code,
            r["certificate"].certificate_number,
        )
    )
    return rows


@router.get("", name="page_holder")
def my_certificates(request: Request, session: Holder) -> Response:
    """我的证照: every certificate I hold, all versions, current status."""
    found = _mine(request, session)
    rows = group_versions(found, services_of(request).now())
    return render(request, "holder.html", {"rows": rows})


@router.get("/certificates/{identifier}", name="page_holder_certificate")
def certificate_page(request: Request, session: Holder, identifier: str) -> Response:
    """One certificate: the face, status, versions, downloads, QR, and forms to authorise its use or dispute it."""
    services = services_of(request)
    call = holder_call(request, session)
    versions = sharing.history(services, call, identifier, Serving())
    current = next((v for v in versions if v.identifier == identifier), versions[-1])
    at = services.now()
    base = services.public_url
    qr = None
    if base:
        png = qr_png(verification_url(current.identifier, base), scale=4)
        qr = "data:image/png;base64," + base64.b64encode(png).decode("ascii")
    context = {
        "c": current,
        "status": current.status_at(at),
        "versions": [
            {"certificate": v, "status": v.status_at(at), "changes": change_records(v)}
            for v in reversed(versions)
        ],
        "qr": qr,
        "default_until": (at.astimezone(CHINA_STANDARD_TIME) + timedelta(days=30)).date().isoformat(),
    }
    return render(request, "holder_certificate.html", context)


@router.get("/certificates/{identifier}/face.png", name="page_holder_face")
def face(
    request: Request,
    session: Holder,
    identifier: str,
    size: Annotated[str, Query(pattern="^(thumb|full)$")] = "thumb",
) -> Response:
    services, call = services_of(request), holder_call(request, session)
    if size == "thumb":
        png = sharing.preview(services, call, identifier, Serving(), max_px=320)
    else:
        png = sharing.preview(services, call, identifier, Serving(), dpi=110)
    return Response(png, media_type="image/png", headers={"Cache-Control": "private, no-store"})


@router.get("/certificates/{identifier}/file.{format}", name="page_holder_file")
def download(request: Request, session: Holder, identifier: str, format: str) -> Response:
    """The sealed file of my certificate: the OFD as issued, or the signed PDF."""
    if format not in ("ofd", "pdf"):
        raise ValueError("format: ofd or pdf")
    made = holders.sealed_file(services_of(request), holder_call(request, session), identifier, format)  # type: ignore[arg-type]
    return attachment(made.data, made.media_type, made.file_name)


# --- 访问记录 ----------------------------------------------------------------------------------------------


@router.get("/access", name="page_holder_access")
def access(request: Request, session: Holder) -> Response:
    """Who accessed my certificates: using unit, matter, action, time, outcome."""
    entries = holders.access_log(services_of(request), holder_call(request, session))
    return render(request, "holder_access.html", {"entries": entries})


# --- 授权使用 ----------------------------------------------------------------------------------------------


def _until(value: str) -> datetime:
    """The end of the day ``value`` (YYYY-MM-DD) in China Standard Time."""
    try:
        day = datetime.strptime(value.strip(), "%Y-%m-%d").date()
    except ValueError:
        raise ValueError("有效期至：请填写日期（年-月-日）") from None
    return datetime.combine(day, time(23, 59, 59), tzinfo=CHINA_STANDARD_TIME)


@router.get("/authorisations", name="page_holder_authorisations")
def authorisation_list(request: Request, session: Holder) -> Response:
    services = services_of(request)
    found = authorisations.list_for_holder(services, holder_call(request, session))
    return render(request, "holder_authorisations.html", {"authorisations": found, "error": None})


@router.post("/authorisations", name="page_holder_authorise", dependencies=[Depends(holder_csrf)])
def authorise(
    request: Request,
    session: Holder,
    using_unit: Annotated[str, Form(max_length=32)],
    purpose: Annotated[str, Form(max_length=200)],
    valid_until: Annotated[str, Form(max_length=10)],
    matter: Annotated[str, Form(max_length=100)] = "",
    certificate_identifier: Annotated[str, Form(max_length=128)] = "",
    catalogue_code: Annotated[str, Form(max_length=64)] = "",
) -> Response:
    """授权: a using unit may use one of my certificates (or all of one type) for a matter until a day."""
    services = services_of(request)
    call = holder_call(request, session)
    try:
        authorisations.grant(
            services,
            call,
            using_unit=using_unit.strip().upper(),
            certificate_identifier=certificate_identifier.strip() or None,
            catalogue_code=catalogue_code.strip() or None,
            matter=matter.strip() or None,
            purpose=purpose.strip(),
            valid_until=_until(valid_until),
        )
    except ValueError as exc:
        request.state.problem = f"Invalid request: {exc}"
        found = authorisations.list_for_holder(services, call)
        context = {"authorisations": found, "error": f"授权未成功：{exc}"}
        return render(request, "holder_authorisations.html", context, 422)
    return RedirectResponse("/holder/authorisations", status_code=303)


@router.post(
    "/authorisations/{authorisation_id}/revoke",
    name="page_holder_revoke",
    dependencies=[Depends(holder_csrf)],
)
def revoke(request: Request, session: Holder, authorisation_id: int) -> Response:
    authorisations.revoke(services_of(request), holder_call(request, session), authorisation_id)
    return RedirectResponse("/holder/authorisations", status_code=303)


# --- 复核 --------------------------------------------------------------------------------------------------


@router.get("/reviews", name="page_holder_reviews")
def review_list(request: Request, session: Holder) -> Response:
    found = holders.my_reviews(services_of(request), holder_call(request, session))
    return render(request, "holder_reviews.html", {"reviews": found})


@router.post("/reviews", name="page_holder_review_submit", dependencies=[Depends(holder_csrf)])
def review_submit(
    request: Request,
    session: Holder,
    identifier: Annotated[str, Form(max_length=128)],
    reason: Annotated[str, Form(min_length=1, max_length=2000)],
) -> Response:
    """复核: dispute one of my certificates; the issuing agency answers within 5 working days."""
    holders.file_review(
        services_of(request), holder_call(request, session), identifier.strip(), reason=reason
    )
    return RedirectResponse("/holder/reviews", status_code=303)


# --- 联系方式与令牌 -----------------------------------------------------------------------------------------


@router.get("/settings", name="page_holder_settings")
def settings_page(request: Request, session: Holder) -> Response:
    from certstore.services import notifications

    services = services_of(request)
    contact = notifications.contact_of(services, holder_call(request, session))
    tokens = holders.list_api_tokens(services.repo, session.holder_ref)
    return render(request, "holder_settings.html", {"contact": contact, "tokens": tokens, "new_token": None})


@router.post("/settings/contact", name="page_holder_contact", dependencies=[Depends(holder_csrf)])
def contact(request: Request, session: Holder, email: Annotated[str, Form(max_length=254)] = "") -> Response:
    """联系方式: the e-mail address notifications go to (empty: none)."""
    from certstore.services import notifications

    notifications.set_contact(
        services_of(request), holder_call(request, session), email=email.strip() or None
    )
    return RedirectResponse("/holder/settings", status_code=303)


@router.post("/settings/tokens", name="page_holder_token", dependencies=[Depends(holder_csrf)])
def new_token(
    request: Request,
    session: Holder,
    label: Annotated[str, Form(max_length=100)] = "",
    days: Annotated[int, Form(ge=1, le=30)] = 1,
) -> Response:
    """A bearer token for the holder API (shown once)."""
    from certstore.services import notifications

    services = services_of(request)
    token, _ = holders.issue_api_token(
        services,
        holder_call(request, session),
        session_key_of(request),
        session,
        label=label,
        lifetime=timedelta(days=days),
    )
    contact = notifications.contact_of(services, holder_call(request, session))
    tokens = holders.list_api_tokens(services.repo, session.holder_ref)
    return render(request, "holder_settings.html", {"contact": contact, "tokens": tokens, "new_token": token})


@router.post(
    "/settings/tokens/{token_id}/revoke", name="page_holder_token_revoke", dependencies=[Depends(holder_csrf)]
)
def revoke_token(request: Request, session: Holder, token_id: int) -> Response:
    holders.revoke_api_token(services_of(request), holder_call(request, session), token_id)
    return RedirectResponse("/holder/settings", status_code=303)
