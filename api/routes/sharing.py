"""Sharing (共享服务) for using units: a holder's certificates by ID number (一号查询), business status, and the
sealed copy (副本). Window staff always state the matter and the holder they serve (知悉范围)."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Query, Request, Response

from api.deps import ServicesDep
from api.models import CertificateOut, CopyRequestIn, StatusOut
from api.problems import PROBLEM_RESPONSES, ProblemError
from api.scope import Serving, ServingQuery, authorize_certificate, serving_holder
from api.security import allow
from certstore.access import Principal, Role
from certstore.identifiers import HolderIdType
from certstore.packaging.face import lay_out_face
from certstore.packaging.layout import FaceData
from certstore.packaging.preview import render_preview
from certstore.records import Certificate
from certstore.seal import parse_seal
from certstore.services import certificates, copies
from certstore.services.catalogue import get_entry
from certstore.services.issuance import OFD_MEDIA_TYPE

router = APIRouter(tags=["sharing"])

Reader = Annotated[Principal, Depends(allow(Role.AGENCY, Role.WINDOW))]
Window = Annotated[Principal, Depends(allow(Role.WINDOW))]


def _readable(
    request: Request, services: Any, principal: Principal, identifier: str, serving: Any
) -> Certificate:
    certificate = certificates.get(services.repo, identifier)
    authorize_certificate(request, services.repo, principal, certificate, serving)
    return certificate


def _out(services: Any, certificate: Certificate) -> CertificateOut:
    return CertificateOut.of(certificate, services.repo.now())


@router.get(
    "/api/v1/holders/{id_type}/{id_number}/certificates",
    response_model=list[CertificateOut],
    responses={422: PROBLEM_RESPONSES[422]},
    summary="A holder's certificates by ID number (一号查询); window staff state the matter (matter=...)",
)
def list_holder_certificates(
    services: ServicesDep,
    principal: Reader,
    request: Request,
    id_type: str,
    id_number: str,
    serving: ServingQuery,
    include_superseded: bool = False,
) -> list[CertificateOut]:
    try:
        holder_type = HolderIdType(id_type)
    except ValueError:
        raise ProblemError(
            422, "invalid-holder-id", "Invalid holder ID", f"unknown holder ID type {id_type!r}"
        ) from None
    if principal.role is Role.WINDOW:
        declared = Serving(serving.matter, id_type, id_number)
        serving_holder(request, services.repo, principal, declared)
    else:
        request.state.matter = serving.matter
    try:
        found = certificates.list_by_holder(
            services.repo, holder_type, id_number, current_only=not include_superseded
        )
    except ValueError as exc:
        raise ProblemError(422, "invalid-holder-id", "Invalid holder ID", str(exc)) from None
    if principal.role is Role.AGENCY:
        found = [c for c in found if c.issuer_code == principal.organisation_code]
    at = services.repo.now()
    return [CertificateOut.of(c, at) for c in found]


@router.get(
    "/api/v1/certificates/{identifier}/status",
    response_model=StatusOut,
    responses={404: PROBLEM_RESPONSES[404]},
    summary="Business status of a certificate (业务状态核验), in real time",
)
def certificate_status(
    services: ServicesDep, principal: Reader, identifier: str, serving: ServingQuery, request: Request
) -> StatusOut:
    certificate = certificates.get(services.repo, identifier)
    authorize_certificate(request, services.repo, principal, certificate, serving)
    at = services.repo.now()
    status = certificate.status_at(at)
    return StatusOut(
        identifier=certificate.identifier,
        status=status,
        status_label=status.label,
        valid_until=certificate.valid_until,
        superseded_by=certificate.superseded_by,
        checked_at=at.replace(microsecond=0),
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
    },
    summary="Download a copy (副本下载) with the using unit, matter, purpose and time watermarked, sealed by the repository",
)
def make_copy(
    services: ServicesDep, principal: Window, identifier: str, body: CopyRequestIn, request: Request
) -> Response:
    certificate = certificates.get(services.repo, identifier)
    serving = Serving(body.matter, body.holder_id_type, body.holder_id)
    authorize_certificate(request, services.repo, principal, certificate, serving)
    data = copies.make_copy(
        services.repo,
        identifier,
        copies.CopyRequest(
            using_unit=principal.organisation_name,
            matter=body.matter,
            purpose=body.purpose,
            requested_by=principal.ref,
        ),
        key=services.repository_sealing_key(),
        trust=services.trust,
        verify_base_url=services.settings.public_url,
    )
    name = f"{certificate.certificate_number}-副本.ofd"
    return Response(
        data,
        media_type=OFD_MEDIA_TYPE,
        headers={"Content-Disposition": f"attachment; filename*=UTF-8''{quote(name)}"},
    )


@router.get(
    "/api/v1/certificates/{identifier}",
    response_model=CertificateOut,
    responses={404: PROBLEM_RESPONSES[404]},
    summary="One certificate version: metadata, face data, status (issuer, or window staff serving its holder)",
)
def get_certificate(
    services: ServicesDep, principal: Reader, identifier: str, serving: ServingQuery, request: Request
) -> CertificateOut:
    return _out(services, _readable(request, services, principal, identifier, serving))


@router.get(
    "/api/v1/certificates/{identifier}/history",
    response_model=list[CertificateOut],
    responses={404: PROBLEM_RESPONSES[404]},
    summary="Every version of the certificate with its lifecycle events (变更历史)",
)
def get_history(
    services: ServicesDep, principal: Reader, identifier: str, serving: ServingQuery, request: Request
) -> list[CertificateOut]:
    _readable(request, services, principal, identifier, serving)
    return [_out(services, c) for c in certificates.history(services.repo, identifier)]


@router.get(
    "/api/v1/certificates/{identifier}/preview.png",
    responses={
        200: {"content": {"image/png": {}}, "description": "The face as a PNG"},
        404: PROBLEM_RESPONSES[404],
    },
    response_class=Response,
    summary="Preview of the face (照面预览) as PNG",
)
def get_preview(
    services: ServicesDep,
    principal: Reader,
    identifier: str,
    serving: ServingQuery,
    request: Request,
    dpi: Annotated[int, Query(ge=36, le=200)] = 96,
) -> Response:
    certificate = _readable(request, services, principal, identifier, serving)
    entry = get_entry(services.repo, certificate.catalogue_code, certificate.catalogue_version)
    layout = lay_out_face(
        FaceData.from_certificate(certificate, entry), verify_base_url=services.settings.public_url
    )
    picture = parse_seal(services.sealing_key(entry).seal).picture
    png = render_preview(layout, dpi=dpi, seal_picture=picture.data if picture else None)
    return Response(png, media_type="image/png", headers={"Cache-Control": "private, no-store"})
