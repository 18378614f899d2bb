"""Public pages, no login: verification of a presented file (``/verify``, 文件验证) and the page the QR code on a
face opens (``/v/{identifier}``, 扫码核验).

Neither shows personal data from the repository. The verification page shows the face of the *presented* file,
drawn from the file itself (:func:`certstore.services.verification.presented_preview`, from the package the
verification read: the file is read once) — what the presenter already holds — and only when the file is not
INVALID; the QR page shows the type, issuer, dates and status. Both call the use cases of
:mod:`certstore.services.verification`, as the API routes of :mod:`api.routes.public` do.
"""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, Request, Response, UploadFile

from api.pages.common import PageRoute, csrf_protected, optional_session, render, services_of
from api.pages.report_view import metadata_text, present_report, webp
from api.problems import ProblemError
from api.uploads import read_upload
from certstore.services import verification
from certstore.verify import UnreadableFileError

__all__ = ["router"]

router = APIRouter(route_class=PageRoute, include_in_schema=False)

#: Longer side of the presented file's face preview, in pixels (a phone's screen at 2×, the page's column).
PRESENTED_PREVIEW_PX = 720


@router.get("/verify", name="page_verify")
def verify_form(request: Request) -> Response:
    optional_session(request)
    return render(request, "verify.html", {"error": None})


@router.post("/verify", name="page_verify_submit", dependencies=[Depends(csrf_protected)])
def verify_presented(
    request: Request,
    file: Annotated[UploadFile, File()],
    at: Annotated[str, Form(max_length=40)] = "",
) -> Response:
    """Verify the uploaded OFD/PDF with the same use case as ``POST /api/v1/public/verify``."""
    services = services_of(request)
    data = read_upload(services, file)
    if data is None:
        limit = services.settings.max_upload_bytes
        raise ProblemError(
            413, "file-too-large", "文件过大", f"超过 {limit // (1024 * 1024)} MiB 的文件不予验证"
        )
    when = None
    if at.strip():
        try:
            when = datetime.fromisoformat(at.strip())
        except ValueError:
            return render(request, "verify.html", {"error": f"时间格式有误：{at}"}, status=422)
    try:
        presented = verification.verify_presented(services, data, at=when, file_name=file.filename or None)
    except UnreadableFileError as exc:
        request.state.problem = f"Unreadable file: {exc}"
        error = f"无法读取该文件：它不是 OFD 或 PDF 电子证照文件（{exc}）"
        return render(request, "verify.html", {"error": error}, status=422)
    view = present_report(presented.report.to_dict())
    png = verification.presented_preview(presented)
    preview = None
    if png is not None:
        # inline, as a sized WebP (~40 KB, not a 370 KB PNG): the presented file is not kept, so there is no
        # URL to serve its face from afterwards (and none across uvicorn's worker processes)
        image, width, height = webp(png, max_px=PRESENTED_PREVIEW_PX)
        assert presented.package is not None
        preview = {
            "src": "data:image/webp;base64," + base64.b64encode(image).decode("ascii"),
            "width": width,
            "height": height,
            "alt": metadata_text(presented.package.doc_info.custom_datas),
        }
    context = {
        "report": view,
        "preview": preview,
        "back": "/verify",
        "subject": file.filename or "",
        "presented": True,
    }
    return render(request, "report.html", context)


@router.get("/v/{identifier}", name="page_qr_status")
def qr_status(request: Request, identifier: str) -> Response:
    """扫码核验: the certificate's type, issuer, validity and current status — no personal data."""
    services = services_of(request)
    status = verification.public_status(services, identifier)
    return render(request, "qr.html", {"status": status})
