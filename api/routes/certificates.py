"""Generation (生成服务) and management (管理服务) of certificates, and the issuing agency's files.

Agencies push certificate data; the repository lays out the face, packages the OFD and seals it online with the
seal the catalogue type names. Pushing the same certificate again (same issuer, number and version) returns the
stored one (200 instead of 201); different content under the same key is a 409.

Each handler builds the request's :class:`~certstore.services.calls.Call` (:func:`api.security.calling`), adds
what the body states about the arrival (completion time, channel), calls one use case of
:mod:`certstore.services.certificates` — which authorises, applies, records the arrival and the audit entry in
one transaction — and shapes the result.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel

from api.deps import ServicesDep
from api.downloads import attachment
from api.models import (
    MAX_ID,
    ActionRequest,
    CertificateData,
    CertificateOut,
    ChangeRequest,
    Page,
    RenewRequest,
)
from api.problems import PROBLEM_RESPONSES, FieldProblem, ProblemError
from api.security import allow, calling
from certstore.access import Principal, Role
from certstore.lifecycle import Action
from certstore.records import Certificate
from certstore.services import access, certificates
from certstore.services.calls import Call
from certstore.services.deadlines import ArrivalError
from certstore.services.issuance import OFD_MEDIA_TYPE, PDF_MEDIA_TYPE

router = APIRouter(prefix="/api/v1/certificates")
identifiers_router = APIRouter(prefix="/api/v1/identifiers", tags=["generation"])

AgencyCall = Annotated[Call, Depends(calling(Role.AGENCY))]
BulkReader = Annotated[Principal, Depends(allow(Role.AGENCY, Role.WINDOW, Role.BUREAU, Role.UPSTREAM))]

_ERRORS = {status: PROBLEM_RESPONSES[status] for status in (404, 409, 422)}


@contextmanager
def _arrival_problems(field: str) -> Iterator[None]:
    """A completion time the use case refuses (:class:`ArrivalError`) is a 422 naming the body's field."""
    try:
        yield
    except ArrivalError as error:
        raise ProblemError(
            422,
            "invalid-completion-time",
            "Invalid completion time",
            str(error),
            [FieldProblem(field=f"{field}.{error.field}", message=error.message)],
        ) from None


def _out(services: ServicesDep, certificate: Certificate) -> CertificateOut:
    return CertificateOut.of(certificate, services.now())


@router.post(
    "",
    tags=["generation"],
    status_code=201,
    response_model=CertificateOut,
    responses={
        200: {"model": CertificateOut, "description": "Already stored (idempotent repeat)"},
        **_ERRORS,
    },
    summary="Submit certificate data; the repository seals it online and stores it (签发)",
)
def issue_certificate(
    services: ServicesDep, call: AgencyCall, data: CertificateData, response: Response
) -> CertificateOut:
    with _arrival_problems("body"):
        result = certificates.issue(services, data.stated_by(call), data.draft())
    response.status_code = 201 if result.created else 200
    response.headers["Location"] = f"/api/v1/certificates/{result.certificate.identifier}"
    return _out(services, result.certificate)


@router.get(
    "",
    tags=["sharing"],
    response_model=Page,
    summary="Bulk listing (批量查询): needs a grant from the bureau, except an agency listing its own",
)
def list_certificates(
    services: ServicesDep,
    principal: BulkReader,
    request: Request,
    catalogue_code: Annotated[str | None, Query(max_length=32)] = None,
    issuer_code: Annotated[str | None, Query(max_length=18)] = None,
    grant: Annotated[
        int | None, Query(ge=1, le=MAX_ID, description="The grant relied on (批量查询授权)")
    ] = None,
    after: Annotated[int, Query(ge=0, le=MAX_ID, description="Cursor from next_after")] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> Page:
    own = principal.role is Role.AGENCY and issuer_code == principal.organisation_code and grant is None
    if not own:
        used = access.active_grant(
            services.repo, principal, grant, catalogue_code=catalogue_code, issuer_code=issuer_code
        )
        request.state.matter = f"grant:{used.id}"
    rows, next_after = certificates.list_page(
        services.repo, catalogue_code=catalogue_code, issuer_code=issuer_code, after=after, limit=limit
    )
    return Page(items=[_out(services, c).model_dump(mode="json") for c in rows], next_after=next_after)


@router.get(
    "/{identifier}/file",
    tags=["generation"],
    responses={
        200: {
            "content": {OFD_MEDIA_TYPE: {}, PDF_MEDIA_TYPE: {}},
            "description": "The sealed certificate file",
        },
        404: PROBLEM_RESPONSES[404],
    },
    response_class=Response,
    summary="The sealed certificate file (OFD as stored; PDF rendered and signed on request) — issuer only",
)
def get_file(
    services: ServicesDep,
    call: AgencyCall,
    identifier: str,
    format: Annotated[Literal["ofd", "pdf"], Query(description="ofd (stored) or pdf (rendition)")] = "ofd",
) -> Response:
    made = certificates.file(services, call, identifier, format)
    return attachment(made.data, made.media_type, made.name)


# --- management ------------------------------------------------------------------------------------------


@router.post(
    "/{identifier}/change",
    tags=["management"],
    status_code=201,
    response_model=CertificateOut,
    responses=_ERRORS,
    summary="变更: a new version with new content; the old one becomes superseded",
)
def change_certificate(
    services: ServicesDep, call: AgencyCall, identifier: str, body: ChangeRequest
) -> CertificateOut:
    with _arrival_problems("body.data"):
        new = certificates.change(
            services, body.data.stated_by(call), identifier, body.data.draft(), reason=body.reason
        )
    return _out(services, new)


@router.post(
    "/{identifier}/renew",
    tags=["management"],
    status_code=201,
    response_model=CertificateOut,
    responses=_ERRORS,
    summary="延续: a new version with a later end of validity",
)
def renew_certificate(
    services: ServicesDep, call: AgencyCall, identifier: str, body: RenewRequest
) -> CertificateOut:
    new = certificates.renew(services, call, identifier, valid_until=body.valid_until, reason=body.reason)
    return _out(services, new)


@router.post(
    "/{identifier}/actions",
    tags=["management"],
    response_model=CertificateOut,
    responses=_ERRORS,
    summary="挂起 / 恢复 / 吊销 / 注销 / 废止 — effective immediately for every reader",
)
def act_on_certificate(
    services: ServicesDep, call: AgencyCall, identifier: str, body: ActionRequest
) -> CertificateOut:
    updated = certificates.act(services, call, identifier, Action(body.action), reason=body.reason)
    return _out(services, updated)


class IdentifierOut(BaseModel):
    identifier: str


@identifiers_router.get(
    "",
    response_model=IdentifierOut,
    responses={s: PROBLEM_RESPONSES[s] for s in (404, 422)},
    summary="The identifier (证照标识) of a version before it is pushed — for agencies that seal their own files",
)
def get_identifier(
    services: ServicesDep,
    call: AgencyCall,
    catalogue_code: Annotated[str, Query(max_length=32)],
    certificate_number: Annotated[str, Query(min_length=1, max_length=100)],
    version: Annotated[int, Query(ge=1, le=999)] = 1,
) -> IdentifierOut:
    """Serials are keyed with a repository secret (issue 15): an agency that seals a file itself asks here for the
    identifier to name in its metadata (ZZBS), then pushes the file (API or exchange). Same answer every time."""
    return IdentifierOut(
        identifier=certificates.identifier_for(services, call, catalogue_code, certificate_number, version)
    )
