"""Sharing (共享服务) for using units: a holder's certificates by ID number (一号查询), business status, and the
sealed copy (副本). Window staff always state the matter and the holder they serve (知悉范围)."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Depends, Request, Response

from api.deps import ServicesDep
from api.models import CertificateOut, CopyRequestIn, StatusOut
from api.problems import PROBLEM_RESPONSES, ProblemError
from api.scope import Serving, ServingQuery, authorize_certificate, serving_holder
from api.security import allow
from certstore.access import Principal, Role
from certstore.identifiers import HolderIdType
from certstore.services import certificates, copies
from certstore.services.issuance import OFD_MEDIA_TYPE

router = APIRouter(tags=["sharing"])

Reader = Annotated[Principal, Depends(allow(Role.AGENCY, Role.WINDOW))]
Window = Annotated[Principal, Depends(allow(Role.WINDOW))]


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
