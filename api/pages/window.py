"""The window page (窗口办件, 规范§六(二)(三)): window staff state the matter and the holder they serve, see that
holder's certificates with face previews and status, verify them, attach the chosen ones to the matter and print
the sealed, watermarked copy (副本).

The pages call the API's use cases (:mod:`certstore.services.sharing`) with the case kept with the session as
the window's declaration (:class:`certstore.services.scope.Serving`): every request re-checks it (matter stated,
holder ID valid, one matter serves one holder) and every certificate against the holder served, and each read is
audited once by the service. The holder's ID number never appears in a URL: it is posted once and kept,
encrypted, with the session (:mod:`certstore.services.logins`).
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Query, Request, Response
from fastapi.responses import RedirectResponse

from api.pages.common import (
    PageRoute,
    attachment,
    csrf_protected,
    render,
    services_of,
    session_key_of,
    session_token,
    staff,
)
from api.pages.report_view import face_text, present_report
from api.security import call_of
from certstore.access import AccessDeniedError, Role
from certstore.catalogue import CatalogueEntry
from certstore.identifiers import HolderIdType, validate_holder_id
from certstore.lifecycle import Status
from certstore.records import Certificate
from certstore.services import catalogue, logins, scope, sharing, verification
from certstore.services.calls import Call, Via
from certstore.services.issuance import OFD_MEDIA_TYPE
from certstore.services.scope import Serving
from certstore.store.repository import Repository

__all__ = ["router"]

router = APIRouter(prefix="/window", route_class=PageRoute, include_in_schema=False)

WindowStaff = Annotated[logins.WebSession, Depends(staff(Role.WINDOW))]

#: Valid certificates first, then those that may come back, then the ended ones.
_ORDER = {
    Status.VALID: 0,
    Status.SUSPENDED: 1,
    Status.EXPIRED: 2,
    Status.SUPERSEDED: 3,
    Status.REVOKED: 4,
    Status.CANCELLED: 4,
    Status.ANNULLED: 4,
}


def _serving(session: logins.WebSession) -> Serving:
    case = session.serving or {}
    return Serving(case.get("matter"), case.get("holder_id_type"), case.get("holder_id"))


def _call(request: Request, session: logins.WebSession) -> Call:
    return call_of(request, session.principal, via=Via.PAGE)


def _not_in_force(status: Status, since: date | None) -> str:
    """The card's and the refusal's words for a certificate not in force: ``自2026年3月1日起已吊销``."""
    state = status.label if status.label.startswith("已") else f"已{status.label}"
    return f"自{since.year}年{since.month}月{since.day}日起{state}" if since else state


def _card(
    repo: Repository, certificate: Certificate, status: Status, entries: dict[tuple[str, int], CatalogueEntry]
) -> dict[str, Any]:
    """One card's data: the certificate, its status, since when it is not in force (None when valid) and the
    type's distinguishing field (区分字段, e.g. 工程名称) as (title, value)."""
    distinguishing = _distinguishing(repo, certificate, entries)
    return {
        "alt": _face_alt(certificate, distinguishing),
        "certificate": certificate,
        "status": status,
        "in_force": status is Status.VALID,
        "warning": _not_in_force(status, sharing.not_in_force_since(certificate, status)),
        "distinguishing": distinguishing,
    }


def _distinguishing(
    repo: Repository, certificate: Certificate, entries: dict[tuple[str, int], CatalogueEntry]
) -> tuple[str, Any] | None:
    """The type's distinguishing field of ``certificate`` as (title, value), e.g. (工程名称, …); ``entries``
    caches the catalogue entries read."""
    key = (certificate.catalogue_code, certificate.catalogue_version)
    if key not in entries:
        entries[key] = catalogue.get_entry(repo, *key)
    field = entries[key].distinguishing_face_field()
    value = certificate.face.get(field.name) if field else None
    return (field.title, value) if field and value not in (None, "") else None


def _face_alt(certificate: Certificate, distinguishing: tuple[str, Any] | None) -> str:
    """The preview's text alternative: number, the distinguishing field, holder, issuer, validity."""
    fields = {"证照编号": certificate.certificate_number}
    if distinguishing:
        fields[distinguishing[0]] = distinguishing[1]
    until = certificate.valid_until.isoformat() if certificate.valid_until else "长期"
    fields |= {"持证主体": certificate.holder.name, "颁发机构": certificate.issuer_name, "有效期至": until}
    return face_text(certificate.name, fields)


@router.get("", name="page_window")
def window(request: Request, session: WindowStaff, superseded: Annotated[bool, Query()] = False) -> Response:
    return _window_page(request, session, superseded)


def _window_page(
    request: Request,
    session: logins.WebSession,
    superseded: bool,
    error: str | None = None,
    status: int = 200,
) -> Response:
    case = session.serving
    if not case:
        return render(request, "window.html", {"case": None, "rows": [], "form": {}, "error": None})
    services = services_of(request)
    found = sharing.holder_certificates(
        services,
        _call(request, session),
        case["holder_id_type"],
        case["holder_id"],
        _serving(session),
        include_superseded=superseded,
    )
    at = services.now()
    entries: dict[tuple[str, int], CatalogueEntry] = {}
    rows = sorted(
        ((c, c.status_at(at)) for c in found),
        key=lambda pair: (_ORDER.get(pair[1], 5), pair[0].catalogue_code, pair[0].certificate_number),
    )
    context = {
        "case": case,
        "rows": [_card(services.repo, c, s, entries) for c, s in rows],
        "selected": set(case.get("selected", [])),
        "superseded": superseded,
        "holder_label": _masked(case["holder_id"]),
        "error": error,
    }
    return render(request, "window.html", context, status=status)


def _masked(number: str) -> str:
    """The ID number as shown on screen: enough to compare with the card, not the whole number."""
    return number if len(number) <= 8 else f"{number[:4]}{'*' * (len(number) - 8)}{number[-4:]}"


@router.post("/serve", name="page_window_serve", dependencies=[Depends(csrf_protected)])
def serve_holder(
    request: Request,
    session: WindowStaff,
    matter: Annotated[str, Form(max_length=100)],
    holder_id_type: Annotated[str, Form(max_length=3)],
    holder_id: Annotated[str, Form(max_length=64)],
) -> Response:
    """Start (or switch to) a case: the matter and the holder being served — allowed only under a matter the
    unit's case system registered for that holder, or under the holder's authorisation
    (:func:`certstore.services.scope.serve`)."""
    matter = matter.strip()
    number = holder_id.strip().upper()
    form = {"matter": matter, "holder_id_type": holder_id_type, "holder_id": number}
    try:
        id_type = HolderIdType(holder_id_type)
        number = validate_holder_id(id_type, number)
        if not matter:
            raise ValueError("请填写事项/办件编号 (matter)")
    except ValueError as exc:
        request.state.problem = f"Invalid request: {exc}"
        context = {"case": None, "rows": [], "form": form, "error": f"输入有误：{exc}"}
        return render(request, "window.html", context, status=422)
    services = services_of(request)
    request.state.matter = matter
    declaration = Serving(matter, id_type.value, number)
    # the holder named even when refused: a refusal is in that holder's 访问记录 too (certstore.services.holders)
    request.state.holder_digest = scope.declared(services.repo.holder_key, declaration).holder_ref
    try:
        served = scope.serve(services, _call(request, session), declaration)
    except AccessDeniedError as exc:
        request.state.problem = f"Access denied: {exc}"
        context = {"case": None, "rows": [], "form": form, "error": f"拒绝访问：{exc}"}
        return render(request, "window.html", context, status=403)
    request.state.holder_digest = served.holder_ref  # for the request's audit entry (the middleware's)
    token = session_token(request)
    assert token is not None
    case = {"matter": matter, "holder_id_type": id_type.value, "holder_id": number, "selected": []}
    logins.set_serving(services.repo, token, session_key_of(request), case)
    return RedirectResponse("/window", status_code=303)


@router.post("/end", name="page_window_end", dependencies=[Depends(csrf_protected)])
def end_case(request: Request, session: WindowStaff) -> Response:
    """Finish the case: the holder's data leave the session."""
    token = session_token(request)
    assert token is not None
    logins.set_serving(services_of(request).repo, token, session_key_of(request), None)
    return RedirectResponse("/window", status_code=303)


#: A card's thumbnail, longer side in pixels; the report's face is drawn at 96 dpi (794 × 1123 px for A4).
THUMB_PX = 320
FULL_DPI = 96
_MEDIA_TYPES = {"png": "image/png", "webp": "image/webp"}


def _face(
    request: Request, session: logins.WebSession, identifier: str, size: str, image_format: str, full_dpi: int
) -> Response:
    """The face read through :func:`certstore.services.sharing.preview` — authorised for the holder being served
    and audited (``certificate.preview``) — drawn and encoded there. Personal data on a shared counter's browser:
    not stored by it (``no-store``)."""
    services, call, serving = services_of(request), _call(request, session), _serving(session)
    sized: dict[str, int] = {"max_px": THUMB_PX} if size == "thumb" else {"dpi": full_dpi}
    image = sharing.preview(services, call, identifier, serving, image_format=image_format, **sized)
    return Response(
        image, media_type=_MEDIA_TYPES[image_format], headers={"Cache-Control": "private, no-store"}
    )


@router.get("/certificates/{identifier}/face.png", name="page_window_face")
def face(
    request: Request,
    session: WindowStaff,
    identifier: str,
    size: Annotated[str, Query(pattern="^(thumb|full)$")] = "thumb",
) -> Response:
    """The face as a PNG (lossless, for printing)."""
    return _face(request, session, identifier, size, "png", full_dpi=110)


@router.get("/certificates/{identifier}/face.webp", name="page_window_face_webp")
def face_webp(
    request: Request,
    session: WindowStaff,
    identifier: str,
    size: Annotated[str, Query(pattern="^(thumb|full)$")] = "thumb",
) -> Response:
    """The face as the pages show it: a sized WebP (a tenth of the PNG)."""
    return _face(request, session, identifier, size, "webp", full_dpi=FULL_DPI)


@router.get("/certificates/{identifier}/verify", name="page_window_verify")
def verify_stored(request: Request, session: WindowStaff, identifier: str) -> Response:
    """Verify the stored, issuer-sealed file with the repository's status: the report, as for a presented file.
    The certificate is read through :func:`certstore.services.sharing.read` (authorised and audited)."""
    services = services_of(request)
    certificate = sharing.read(services, _call(request, session), identifier, _serving(session))
    report = verification.verify_stored(services, certificate)
    context = {
        "report": present_report(report.to_dict()),
        "preview": {
            "src": f"/window/certificates/{identifier}/face.webp?size=full",
            "width": None,
            "height": None,
            "alt": _face_alt(certificate, _distinguishing(services.repo, certificate, {})),
        },
        "back": "/window",
        "subject": f"{certificate.name} {certificate.certificate_number}",
    }
    return render(request, "report.html", context)


@router.post("/select", name="page_window_select", dependencies=[Depends(csrf_protected)])
def select(
    request: Request,
    session: WindowStaff,
    identifier: Annotated[list[str] | None, Form(max_length=100)] = None,
) -> Response:
    """Attach the chosen certificates to the matter (用证): :func:`certstore.services.sharing.attach` checks
    them against the holder served and records the selection (one audit entry naming them)."""
    services = services_of(request)
    try:
        chosen = sharing.attach(services, _call(request, session), identifier or [], _serving(session))
    except sharing.NotInForceError as exc:
        request.state.problem = f"Invalid request: {exc}"
        state = _not_in_force(exc.status, exc.since)
        error = f"未关联：证照 {exc.identifier} 非现行有效（{state}），不能关联到本办件。"
        return _window_page(request, session, superseded=False, error=error, status=422)
    case = dict(session.serving or {})
    case["selected"] = chosen
    token = session_token(request)
    assert token is not None
    logins.set_serving(services.repo, token, session_key_of(request), case)
    return RedirectResponse("/window", status_code=303)


@router.post(
    "/certificates/{identifier}/copy", name="page_window_copy", dependencies=[Depends(csrf_protected)]
)
def print_copy(
    request: Request,
    session: WindowStaff,
    identifier: str,
    purpose: Annotated[str, Form(min_length=1, max_length=40)],
) -> Response:
    """打印副本: the sealed, watermarked copy for this matter (the API's use case, same parameters)."""
    made = sharing.copy(
        services_of(request), _call(request, session), identifier, purpose.strip(), _serving(session)
    )
    return attachment(made.data, OFD_MEDIA_TYPE, made.file_name)
