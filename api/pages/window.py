"""The window page (窗口办件, 规范§六(二)(三)): window staff state the matter and the holder they serve, see that
holder's certificates with face previews and status, verify them, attach the chosen ones to the matter and print
the sealed, watermarked copy (副本).

The rules are the API's, called from :mod:`api.scope`: every request re-checks the case kept with the session
(:func:`api.scope.serving_holder`: matter stated, holder ID valid, one matter serves one holder) and every
certificate against the holder served (:func:`api.scope.authorize_certificate`). The holder's ID number never
appears in a URL: it is posted once and kept, encrypted, with the session (:mod:`certstore.services.logins`).
"""

from __future__ import annotations

from datetime import UTC, datetime
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
from api.pages.report_view import present_report
from api.scope import Serving, authorize_certificate, serving_holder
from certstore.access import AccessDeniedError, Role
from certstore.audit import AuditEvent, Outcome, record_event
from certstore.identifiers import HolderIdType, validate_holder_id
from certstore.lifecycle import Status
from certstore.packaging.face import lay_out_face
from certstore.packaging.layout import FaceData
from certstore.packaging.preview import render_preview, thumbnail
from certstore.records import Certificate
from certstore.seal import parse_seal
from certstore.services import certificates, copies, logins
from certstore.services.catalogue import get_entry
from certstore.services.issuance import OFD_MEDIA_TYPE
from certstore.verify import verify_file

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


def _readable(request: Request, session: logins.WebSession, identifier: str) -> Certificate:
    """The certificate, if the holder being served owns it (知悉范围) — the API's rule, same function."""
    repo = services_of(request).repo
    certificate = certificates.get(repo, identifier)
    authorize_certificate(request, repo, session.principal, certificate, _serving(session))
    return certificate


def _face(request: Request, certificate: Certificate) -> tuple[Any, bytes | None]:
    services = services_of(request)
    entry = get_entry(services.repo, certificate.catalogue_code, certificate.catalogue_version)
    layout = lay_out_face(
        FaceData.from_certificate(certificate, entry), verify_base_url=services.settings.public_url
    )
    picture = parse_seal(services.sealing_key(entry).seal).picture
    return layout, picture.data if picture else None


@router.get("", name="page_window")
def window(request: Request, session: WindowStaff, superseded: Annotated[bool, Query()] = False) -> Response:
    case = session.serving
    if not case:
        return render(request, "window.html", {"case": None, "rows": [], "form": {}, "error": None})
    repo = services_of(request).repo
    serving_holder(request, repo, session.principal, _serving(session))
    found = certificates.list_by_holder(
        repo, HolderIdType(case["holder_id_type"]), case["holder_id"], current_only=not superseded
    )
    at = repo.now()
    rows = sorted(
        ((c, c.status_at(at)) for c in found),
        key=lambda pair: (_ORDER.get(pair[1], 5), pair[0].catalogue_code, pair[0].certificate_number),
    )
    context = {
        "case": case,
        "rows": [{"certificate": c, "status": s} for c, s in rows],
        "selected": set(case.get("selected", [])),
        "superseded": superseded,
        "holder_label": _masked(case["holder_id"]),
    }
    return render(request, "window.html", context)


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
    """Start (or switch to) a case: the matter and the holder being served."""
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
    repo = services_of(request).repo
    try:
        serving_holder(request, repo, session.principal, Serving(matter, id_type.value, number))
    except AccessDeniedError as exc:
        request.state.problem = f"Access denied: {exc}"
        context = {"case": None, "rows": [], "form": form, "error": f"拒绝访问：{exc}"}
        return render(request, "window.html", context, status=403)
    token = session_token(request)
    assert token is not None
    case = {"matter": matter, "holder_id_type": id_type.value, "holder_id": number, "selected": []}
    logins.set_serving(repo, token, session_key_of(request), case)
    return RedirectResponse("/window", status_code=303)


@router.post("/end", name="page_window_end", dependencies=[Depends(csrf_protected)])
def end_case(request: Request, session: WindowStaff) -> Response:
    """Finish the case: the holder's data leave the session."""
    token = session_token(request)
    assert token is not None
    logins.set_serving(services_of(request).repo, token, session_key_of(request), None)
    return RedirectResponse("/window", status_code=303)


@router.get("/certificates/{identifier}/face.png", name="page_window_face")
def face(
    request: Request,
    session: WindowStaff,
    identifier: str,
    size: Annotated[str, Query(pattern="^(thumb|full)$")] = "thumb",
) -> Response:
    certificate = _readable(request, session, identifier)
    layout, seal = _face(request, certificate)
    png = (
        thumbnail(layout, max_px=320, seal_picture=seal)
        if size == "thumb"
        else render_preview(layout, dpi=110, seal_picture=seal)
    )
    return Response(png, media_type="image/png", headers={"Cache-Control": "private, no-store"})


@router.get("/certificates/{identifier}/verify", name="page_window_verify")
def verify_stored(request: Request, session: WindowStaff, identifier: str) -> Response:
    """Verify the stored, issuer-sealed file with the repository's status: the report, as for a presented file."""
    certificate = _readable(request, session, identifier)
    services = services_of(request)
    if certificate.file_key is None:
        raise ValueError(f"certificate {identifier} was stored without a file")
    report = verify_file(
        services.repo.blobs.get(certificate.file_key),
        trust=services.trust,
        repository=services.repository_check(),
        file_name=f"{certificate.certificate_number}.ofd",
    )
    context = {
        "report": present_report(report.to_dict()),
        "preview_url": f"/window/certificates/{identifier}/face.png?size=full",
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
    """Attach the chosen certificates to the matter (用证): recorded as an audit event naming them."""
    chosen = list(dict.fromkeys(identifier or []))
    services = services_of(request)
    serving_holder(request, services.repo, session.principal, _serving(session))
    for one in chosen:
        _readable(request, session, one)
    case = dict(session.serving or {})
    case["selected"] = chosen
    token = session_token(request)
    assert token is not None
    logins.set_serving(services.repo, token, session_key_of(request), case)
    principal = session.principal
    # The selection itself (用证记录): the middleware's event of this request names the matter and the holder
    # digest; this one also names the certificates, through the same audit trail.
    event = AuditEvent(
        at=datetime.now(UTC),
        request_id=getattr(request.state, "request_id", "-"),
        action="matter.attach_certificates",
        outcome=Outcome.ALLOW,
        status_code=200,
        principal=principal.ref,
        organisation_code=principal.organisation_code,
        role=principal.role.value,
        resource="POST /window/select",
        matter=getattr(request.state, "matter", None),
        holder_digest=getattr(request.state, "holder_digest", None),
        details={"identifiers": chosen},
    )
    trail = getattr(services, "audit", None)
    if trail is not None:
        trail.submit(event)
    else:
        record_event(services.repo.db, event)
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
    """打印副本: the sealed, watermarked copy for this matter (the API's copies.make_copy, same parameters)."""
    certificate = _readable(request, session, identifier)
    services = services_of(request)
    principal = session.principal
    matter = str((session.serving or {}).get("matter", ""))
    data = copies.make_copy(
        services.repo,
        identifier,
        copies.CopyRequest(
            using_unit=principal.organisation_name,
            matter=matter,
            purpose=purpose.strip(),
            requested_by=principal.ref,
        ),
        key=services.repository_sealing_key(),
        trust=services.trust,
        verify_base_url=services.settings.public_url,
    )
    return attachment(data, OFD_MEDIA_TYPE, f"{certificate.certificate_number}-副本.ofd")
