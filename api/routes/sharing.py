"""Sharing (共享服务) for issuing agencies and using units: a certificate, its history and status, its face preview,
a holder's certificates by ID number (一号查询) and the sealed copy (副本). Window staff always state the matter
and the holder they serve (知悉范围). A holder ID never travels in a URL: the look-up takes it in a POST body, the
reads of one certificate in the headers ``X-Holder-Id-Type`` / ``X-Holder-Id`` (:mod:`api.scope`); the old
``GET /api/v1/holders/{id_type}/{id_number}/certificates`` answers 410 Gone stating the new form.

Each handler builds the request's :class:`~certstore.services.calls.Call` (:func:`api.security.calling`) and calls
one use case of :mod:`certstore.services.sharing`, which authorises and audits the read; the handler only turns
the answer into HTTP."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Response
from pydantic import BaseModel, ConfigDict, Field

from api.deps import ServicesDep
from api.downloads import attachment_headers
from api.models import CertificateOut, CopyRequestIn, StatusOut
from api.problems import PROBLEM_MEDIA_TYPE, PROBLEM_RESPONSES, Problem, ProblemError
from api.scope import GONE_RESPONSE, ServingQuery, holder_id_gone
from api.security import calling
from certstore.access import Role
from certstore.services import sharing
from certstore.services.calls import Call
from certstore.services.issuance import OFD_MEDIA_TYPE
from certstore.services.scope import MATTER_MAX, Serving

router = APIRouter(tags=["sharing"])

HOLDER_LOOKUP = "/api/v1/holders/certificates"

#: A window clerk over the per-clerk look-up limit (certstore.services.lookup_limits): 429 with Retry-After.
RATE_LIMITED: dict[int | str, dict[str, Any]] = {
    429: {
        "model": Problem,
        "content": {PROBLEM_MEDIA_TYPE: {}},
        "description": "Too many look-ups by this clerk (per-clerk limit); Retry-After says when to try again",
    }
}

Reader = Annotated[Call, Depends(calling(Role.AGENCY, Role.WINDOW))]
Window = Annotated[Call, Depends(calling(Role.WINDOW))]


class HolderLookupIn(BaseModel):
    """一号查询: the holder looked up, in the body (a holder ID never travels in a URL)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "holder_id_type": "001",
                    "holder_id": "91410100MA44A1B2XW",
                    "matter": "ZZ2026112600123",
                    "include_superseded": False,
                }
            ]
        },
    )

    holder_id_type: str = Field(min_length=1, max_length=8, description="GB/T 36903 ID type code")
    holder_id: str = Field(
        min_length=1, max_length=64, description="ID number (身份证号码 / 统一社会信用代码)"
    )
    matter: str | None = Field(
        default=None, max_length=MATTER_MAX, description="事项/办件编号 — required for window staff"
    )
    include_superseded: bool = False


@router.post(
    HOLDER_LOOKUP,
    response_model=list[CertificateOut],
    responses={403: PROBLEM_RESPONSES[403], 422: PROBLEM_RESPONSES[422], **RATE_LIMITED},
    summary="A holder's certificates by ID number (一号查询), the ID in the body; window staff state the matter",
)
def list_holder_certificates(
    services: ServicesDep, call: Reader, body: HolderLookupIn
) -> list[CertificateOut]:
    serving = Serving(body.matter, body.holder_id_type, body.holder_id)
    try:
        found = sharing.holder_certificates(
            services,
            call,
            body.holder_id_type,
            body.holder_id,
            serving,
            include_superseded=body.include_superseded,
        )
    except ValueError as exc:
        raise ProblemError(422, "invalid-holder-id", "Invalid holder ID", str(exc)) from None
    at = services.now()
    return [CertificateOut.of(c, at) for c in found]


@router.get(
    "/api/v1/holders/{id_type}/{id_number}/certificates",
    deprecated=True,
    status_code=410,
    response_class=Response,
    responses=GONE_RESPONSE,
    summary="Gone: the holder ID no longer travels in the URL — POST /api/v1/holders/certificates",
)
def list_holder_certificates_gone(call: Reader, id_type: str, id_number: str) -> Response:
    """Authenticated like the look-up it replaced (401/403 first), then 410 Gone naming the new form."""
    raise holder_id_gone(
        f"look a holder up with POST {HOLDER_LOOKUP} and the JSON body "
        '{"holder_id_type": ..., "holder_id": ..., "matter": ..., "include_superseded": false}; '
        "a holder ID is never accepted in a URL"
    )


@router.get(
    "/api/v1/certificates/{identifier}/status",
    response_model=StatusOut,
    responses={404: PROBLEM_RESPONSES[404], **GONE_RESPONSE, **RATE_LIMITED},
    summary="Business status of a certificate (业务状态核验), in real time",
)
def certificate_status(
    services: ServicesDep, call: Reader, identifier: str, serving: ServingQuery
) -> StatusOut:
    found = sharing.status(services, call, identifier, serving)
    return StatusOut(
        identifier=found.identifier,
        status=found.status,
        status_label=found.status.label,
        valid_until=found.valid_until,
        superseded_by=found.superseded_by,
        checked_at=found.checked_at,
    )


@router.post(
    "/api/v1/certificates/{identifier}/copies",
    response_class=Response,
    responses={
        200: {
            "content": {OFD_MEDIA_TYPE: {}},
            "description": "The copy (副本): watermarked and sealed by the repository",
        },
        404: PROBLEM_RESPONSES[404],
        409: PROBLEM_RESPONSES[409],
        **RATE_LIMITED,
    },
    summary="Download a copy (副本下载) with the using unit, matter, purpose and time watermarked, sealed by the repository",
)
def make_copy(services: ServicesDep, call: Window, identifier: str, body: CopyRequestIn) -> Response:
    serving = Serving(body.matter, body.holder_id_type, body.holder_id)
    made = sharing.copy(services, call, identifier, body.purpose, serving)
    return Response(
        made.data,
        media_type=OFD_MEDIA_TYPE,
        headers=attachment_headers(made.file_name),
    )


@router.get(
    "/api/v1/certificates/{identifier}",
    response_model=CertificateOut,
    responses={404: PROBLEM_RESPONSES[404], **GONE_RESPONSE, **RATE_LIMITED},
    summary="One certificate version: metadata, face data, status (issuer, or window staff serving its holder)",
)
def get_certificate(
    services: ServicesDep, call: Reader, identifier: str, serving: ServingQuery
) -> CertificateOut:
    return CertificateOut.of(sharing.read(services, call, identifier, serving), services.now())


@router.get(
    "/api/v1/certificates/{identifier}/history",
    response_model=list[CertificateOut],
    responses={404: PROBLEM_RESPONSES[404], **GONE_RESPONSE, **RATE_LIMITED},
    summary="Every version of the certificate with its lifecycle events (变更历史)",
)
def get_history(
    services: ServicesDep, call: Reader, identifier: str, serving: ServingQuery
) -> list[CertificateOut]:
    at = services.now()
    return [CertificateOut.of(c, at) for c in sharing.history(services, call, identifier, serving)]


@router.get(
    "/api/v1/certificates/{identifier}/preview.png",
    responses={
        200: {"content": {"image/png": {}}, "description": "The face as a PNG"},
        404: PROBLEM_RESPONSES[404],
        **GONE_RESPONSE,
        **RATE_LIMITED,
    },
    response_class=Response,
    summary="Preview of the face (照面预览) as PNG",
)
def get_preview(
    services: ServicesDep,
    call: Reader,
    identifier: str,
    serving: ServingQuery,
    dpi: Annotated[int, Query(ge=36, le=200)] = 96,
) -> Response:
    png = sharing.preview(services, call, identifier, serving, dpi)
    return Response(png, media_type="image/png", headers={"Cache-Control": "private, no-store"})
