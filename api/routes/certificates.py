"""Generation (生成服务) and management (管理服务) of certificates, and reading one certificate.

Agencies push certificate data; the repository lays out the face, packages the OFD and seals it online with the
seal the catalogue type names. Pushing the same certificate again (same issuer, number and version) returns the
stored one (200 instead of 201); different content under the same key is a 409.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from sqlalchemy.orm import Session

from api.deps import ServicesDep
from api.models import (
    ARRIVAL_FIELDS,
    MAX_ID,
    ActionRequest,
    CertificateData,
    CertificateOut,
    ChangeRequest,
    Page,
    RenewRequest,
)
from api.problems import PROBLEM_RESPONSES, FieldProblem, ProblemError
from api.scope import require_own_issuer
from api.security import ActionAudit, ActionAuditDep, action_audit, allow
from certstore.access import AccessDeniedError, Principal, Role
from certstore.lifecycle import Action
from certstore.packaging.layout import FaceData
from certstore.records import Certificate, draft_from_json
from certstore.services import access, certificates
from certstore.services.calendar import load_calendar
from certstore.services.catalogue import get_entry
from certstore.services.deadlines import ArrivalError, check_completed_at, record_arrival
from certstore.services.issuance import OFD_MEDIA_TYPE, PDF_MEDIA_TYPE, make_pdf
from certstore.services.transaction import Within, compose

router = APIRouter(prefix="/api/v1/certificates")

Agency = Annotated[Principal, Depends(allow(Role.AGENCY))]
Reader = Annotated[Principal, Depends(allow(Role.AGENCY, Role.WINDOW))]
BulkReader = Annotated[Principal, Depends(allow(Role.AGENCY, Role.WINDOW, Role.BUREAU, Role.UPSTREAM))]

_ERRORS = {status: PROBLEM_RESPONSES[status] for status in (404, 409, 422)}


def _draft(data: CertificateData, principal: Principal, services: Any) -> Any:
    draft = draft_from_json(data.model_dump(mode="json", exclude_none=True, exclude=set(ARRIVAL_FIELDS)))
    entry = get_entry(services.repo, draft.catalogue_code)
    if entry.issuer.credit_code != principal.organisation_code:
        raise AccessDeniedError(
            f"catalogue type {entry.code} is issued by {entry.issuer.credit_code}; agencies issue only their own "
            "catalogue types"
        )
    return draft


def _completed_at(data: CertificateData, services: Any, field: str) -> datetime:
    """The business completion time stated with a push (default: now), checked before anything is stored."""
    now = services.repo.now()
    try:
        return check_completed_at(data.completed_at or now, now=now)
    except ArrivalError as error:
        raise ProblemError(
            422,
            "invalid-completion-time",
            "Invalid completion time",
            str(error),
            [FieldProblem(field=f"{field}.{error.field}", message=error.message)],
        ) from None


def _arrival(services: Any, data: CertificateData, completed_at: datetime) -> Within:
    """The ``within`` hook recording the arrival of the new version a push writes, against its deadline (第十一条),
    in the push's own transaction: the version and its arrival are stored together or not at all."""
    calendar = load_calendar(services.repo)  # read before the write transaction starts

    def record(session: Session) -> None:
        new = certificates.written_version(session)
        record_arrival(
            session,
            identifier=new.identifier,
            issuer_code=new.issuer_code,
            source="api",
            channel=data.channel,
            completed_at=completed_at,
            arrived_at=new.created_at,
            calendar=calendar,
        )

    return record


def _audited(audit: ActionAudit | None, then: Within | None = None) -> Within | None:
    """The route's hook for a certificate change: ``then`` (the arrival), then the request's audit entry, which
    names the version written when the request has no identifier in its path (a push)."""
    if audit is None:  # called as a function (the agency pages): the middleware logs the page request
        return then
    request = audit.request

    def name_new_version(session: Session) -> None:
        if request.path_params.get("identifier") is None:
            request.state.certificate_identifier = certificates.written_version(session).identifier

    return audit.within(then=compose(then, name_new_version))


def _managed(services: Any, principal: Principal, identifier: str) -> Certificate:
    certificate = certificates.get(services.repo, identifier)
    require_own_issuer(principal, certificate)
    return certificate


def _out(services: Any, certificate: Certificate) -> CertificateOut:
    return CertificateOut.of(certificate, services.repo.now())


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
    services: ServicesDep,
    principal: Agency,
    data: CertificateData,
    response: Response,
    audit: Annotated[ActionAudit | None, Depends(action_audit)] = None,
) -> CertificateOut:
    draft = _draft(data, principal, services)
    completed_at = _completed_at(data, services, "body")
    result = certificates.issue(
        services.repo, draft, actor=principal.ref, file_maker=services.file_maker(),
        within=_audited(audit, _arrival(services, data, completed_at)),
    )  # fmt: skip
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
    principal: Agency,
    identifier: str,
    format: Annotated[Literal["ofd", "pdf"], Query(description="ofd (stored) or pdf (rendition)")] = "ofd",
) -> Response:
    certificate = _managed(services, principal, identifier)
    name = f"{certificate.certificate_number}-v{certificate.version}"
    if format == "pdf":
        entry = get_entry(services.repo, certificate.catalogue_code, certificate.catalogue_version)
        data = make_pdf(
            FaceData.from_certificate(certificate, entry),
            services.sealing_key(entry),
            verify_base_url=services.settings.public_url,
        )
        return Response(data, media_type=PDF_MEDIA_TYPE, headers=_attachment(f"{name}.pdf"))
    if certificate.file_key is None:
        raise ProblemError(404, "no-file", "No file", f"certificate {identifier} was stored without a file")
    data = services.repo.blobs.get(certificate.file_key)
    return Response(
        data, media_type=certificate.file_media_type or OFD_MEDIA_TYPE, headers=_attachment(f"{name}.ofd")
    )


def _attachment(name: str) -> dict[str, str]:
    return {"Content-Disposition": f'attachment; filename="{name}"'}


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
    services: ServicesDep, principal: Agency, identifier: str, body: ChangeRequest, audit: ActionAuditDep
) -> CertificateOut:
    _managed(services, principal, identifier)
    draft = _draft(body.data, principal, services)
    completed_at = _completed_at(body.data, services, "body.data")
    new = certificates.change(
        services.repo, identifier, draft, reason=body.reason, actor=principal.ref,
        file_maker=services.file_maker(), within=_audited(audit, _arrival(services, body.data, completed_at)),
    )  # fmt: skip
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
    services: ServicesDep, principal: Agency, identifier: str, body: RenewRequest, audit: ActionAuditDep
) -> CertificateOut:
    _managed(services, principal, identifier)
    new = certificates.renew(
        services.repo, identifier, valid_until=body.valid_until, reason=body.reason, actor=principal.ref,
        file_maker=services.file_maker(), within=_audited(audit),
    )  # fmt: skip
    return _out(services, new)


@router.post(
    "/{identifier}/actions",
    tags=["management"],
    response_model=CertificateOut,
    responses=_ERRORS,
    summary="挂起 / 恢复 / 吊销 / 注销 / 废止 — effective immediately for every reader",
)
def act_on_certificate(
    services: ServicesDep, principal: Agency, identifier: str, body: ActionRequest, audit: ActionAuditDep
) -> CertificateOut:
    _managed(services, principal, identifier)
    updated = certificates.act(
        services.repo, identifier, Action(body.action), reason=body.reason, actor=principal.ref,
        within=_audited(audit),
    )  # fmt: skip
    return _out(services, updated)
