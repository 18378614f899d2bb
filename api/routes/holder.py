"""The holder's API (证照持有人, ``/api/v1/holder/...``, docs/holders.md): the same use cases as the holder pages
(:mod:`api.pages.holder`) for the holder's own applications, with a holder bearer token.

A token is made from a holder's browser login (``POST /api/v1/holder/tokens`` with the holder session cookie and
a JSON body — a cross-site form cannot send one), is shown once, stored only as its SM3 hash and expires (at most
30 days; :mod:`certstore.services.holders`). Every other route takes ``Authorization: Bearer chd_…`` and builds
the call ``Call(Actor.holder(…), Origin(Via.API …))``: the reads go through :mod:`certstore.services.sharing`,
which admits a holder only for their own certificates.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from api.downloads import attachment
from api.pages.common import services_of, session_key_of
from api.pages.holder import change_records, current_holder, group_versions, holder_call
from api.problems import PROBLEM_RESPONSES
from certstore.access import AccessDeniedError, AuthenticationError
from certstore.services import access, authorisations, holders, sharing
from certstore.services.calls import Call, Via
from certstore.services.scope import Serving

__all__ = ["router"]

router = APIRouter(
    prefix="/api/v1/holder",
    tags=["holder"],
    responses={k: v for k, v in PROBLEM_RESPONSES.items() if k in (401, 403, 404)},
)


def _refuse_staff(request: Request) -> None:
    """A staff bearer token is authenticated (401 if it is not valid, as anywhere) and refused (403): staff are
    not holders."""
    scheme, _, credential = request.headers.get("authorization", "").partition(" ")
    if (
        scheme.lower() == "bearer"
        and credential.strip()
        and not credential.strip().startswith(holders.API_TOKEN_PREFIX)
    ):
        principal = access.authenticate(services_of(request).repo, credential.strip())
        raise AccessDeniedError(
            f"role {principal.role.value} may not use the holder API: it takes a holder token (chd_…)"
        )


def browser_holder(request: Request) -> holders.HolderSession:
    """Dependency: the holder of the request's browser session (the ``certstore_holder`` cookie of a 一号 login),
    checked before the body is read."""
    _refuse_staff(request)
    return current_holder(request)


def holder_token(request: Request) -> holders.HolderSession:
    """Dependency: the holder of the request's ``Authorization: Bearer`` holder token."""
    scheme, _, credential = request.headers.get("authorization", "").partition(" ")
    services = services_of(request)
    _refuse_staff(request)
    if scheme.lower() != "bearer" or not credential.strip().startswith(holders.API_TOKEN_PREFIX):
        raise AuthenticationError(
            "no holder credential: send 'Authorization: Bearer chd_…' (made with POST /api/v1/holder/tokens)"
        )
    return holders.open_session(services.repo, session_key_of(request), credential.strip(), kind="api")


HolderToken = Annotated[holders.HolderSession, Depends(holder_token)]


def _call(request: Request, session: holders.HolderSession) -> Call:
    return holder_call(request, session, via=Via.API)


# --- tokens ----------------------------------------------------------------------------------------------


class TokenIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    label: str | None = Field(default=None, max_length=100)
    days: int = Field(default=1, ge=1, le=30, description="lifetime in days (1–30)")


class TokenOut(BaseModel):
    id: int
    label: str | None
    created_at: datetime
    expires_at: datetime
    ended_at: datetime | None = None
    token: str | None = Field(default=None, description="the bearer token, only in the answer that made it")


@router.post("/tokens", status_code=201, response_model=TokenOut, summary="Make a holder API token")
def create_token(
    request: Request, session: Annotated[holders.HolderSession, Depends(browser_holder)], body: TokenIn
) -> TokenOut:
    """From the holder's browser session (the ``certstore_holder`` cookie of a 一号 login): a bearer token for
    this API, shown once."""
    call = holder_call(request, session, via=Via.API)
    token, made = holders.issue_api_token(
        services_of(request),
        call,
        session_key_of(request),
        session,
        label=body.label,
        lifetime=timedelta(days=body.days),
    )
    return TokenOut(**made.__dict__, token=token)


@router.get("/tokens", response_model=list[TokenOut], summary="My API tokens")
def list_tokens(request: Request, session: HolderToken) -> list[TokenOut]:
    _call(request, session)
    return [
        TokenOut(**t.__dict__) for t in holders.list_api_tokens(services_of(request).repo, session.holder_ref)
    ]


@router.delete("/tokens/{token_id}", status_code=204, summary="Revoke one of my API tokens")
def delete_token(request: Request, session: HolderToken, token_id: int) -> Response:
    holders.revoke_api_token(services_of(request), _call(request, session), token_id)
    return Response(status_code=204)


# --- me and my certificates ------------------------------------------------------------------------------


class MeOut(BaseModel):
    holder_ref: str
    kind: str
    name: str
    agent_name: str | None
    id_type: str
    acr: str | None
    token_expires_at: datetime


@router.get("/me", response_model=MeOut, summary="Who this token belongs to")
def me(request: Request, session: HolderToken) -> MeOut:
    _call(request, session)
    identity = session.identity
    return MeOut(
        holder_ref=session.holder_ref,
        kind=identity.kind,
        name=identity.name,
        agent_name=identity.agent_name,
        id_type=identity.id_type.value,
        acr=identity.acr,
        token_expires_at=session.expires_at,
    )


class HolderChangeOut(BaseModel):
    """One entry of a version's change record as its holder sees it: what, why, when and which organisation (机构)
    — not the staff member's name."""

    action: str
    action_label: str = Field(examples=["变更"])
    reason: str = Field(description="变更原因")
    at: datetime = Field(description="变更时间")
    organisation_code: str | None = Field(
        description="the acting organisation (机构); null: the repository's operator"
    )
    organisation_name: str | None = Field(description="its name, when it is the issuing agency")


class VersionOut(BaseModel):
    identifier: str
    version: int
    status: str
    status_label: str
    issue_date: date
    valid_until: date | None
    superseded_by: str | None
    changes: list[HolderChangeOut] = Field(
        default_factory=list,
        description="the version's change record (证照变更记录), oldest first: the event that made it, then every "
        "status change",
    )


class HolderCertificateOut(BaseModel):
    identifier: str = Field(description="the current version's identifier (证照标识)")
    name: str
    certificate_number: str
    catalogue_code: str
    issuer_code: str
    issuer_name: str
    valid_from: date
    valid_until: date | None
    status: str
    status_label: str
    face: dict[str, Any]
    versions: list[VersionOut] = Field(description="every version I hold, newest first")
    links: dict[str, str]


def _version(row: dict[str, Any]) -> VersionOut:
    c, s = row["certificate"], row["status"]
    return VersionOut(
        identifier=c.identifier,
        version=c.version,
        status=s.value,
        status_label=s.label,
        issue_date=c.issue_date,
        valid_until=c.valid_until,
        superseded_by=c.superseded_by,
        changes=[HolderChangeOut(**record) for record in change_records(c)],
    )


def _certificate(row: dict[str, Any]) -> HolderCertificateOut:
    c, s = row["certificate"], row["status"]
    base = f"/api/v1/holder/certificates/{c.identifier}"
    return HolderCertificateOut(
        identifier=c.identifier,
        name=c.name,
        certificate_number=c.certificate_number,
        catalogue_code=c.catalogue_code,
        issuer_code=c.issuer_code,
        issuer_name=c.issuer_name,
        valid_from=c.valid_from,
        valid_until=c.valid_until,
        status=s.value,
        status_label=s.label,
        face=dict(c.face),
        versions=[_version(v) for v in row["versions"]],
        links={
            "self": base,
            "ofd": f"{base}/file?format=ofd",
            "pdf": f"{base}/file?format=pdf",
            "preview": f"{base}/preview.png",
            "public_status": f"/api/v1/public/certificates/{c.identifier}/status",
        },
    )


@router.get(
    "/certificates", response_model=list[HolderCertificateOut], summary="我的证照: all my certificates"
)
def my_certificates(request: Request, session: HolderToken) -> list[HolderCertificateOut]:
    """Every certificate I hold, each with all its versions I hold and its current status."""
    services = services_of(request)
    identity = session.identity
    found = sharing.holder_certificates(
        services,
        _call(request, session),
        identity.id_type,
        identity.id_number,
        Serving(),
        include_superseded=True,
    )
    return [_certificate(row) for row in group_versions(found, services.now())]


@router.get(
    "/certificates/{identifier}", response_model=HolderCertificateOut, summary="One of my certificates"
)
def my_certificate(request: Request, session: HolderToken, identifier: str) -> HolderCertificateOut:
    services = services_of(request)
    versions = sharing.history(services, _call(request, session), identifier, Serving())
    rows = group_versions(versions, services.now())
    return _certificate(rows[0])


@router.get(
    "/certificates/{identifier}/file",
    summary="The sealed file of my certificate",
    responses={200: {"content": {"application/ofd": {}, "application/pdf": {}}}},
)
def my_file(
    request: Request,
    session: HolderToken,
    identifier: str,
    format: Annotated[Literal["ofd", "pdf"], Query()] = "ofd",
) -> Response:
    made = holders.sealed_file(services_of(request), _call(request, session), identifier, format)
    return attachment(made.data, made.media_type, made.file_name)


@router.get(
    "/certificates/{identifier}/preview.png",
    summary="The face of my certificate",
    responses={200: {"content": {"image/png": {}}}},
)
def my_preview(
    request: Request,
    session: HolderToken,
    identifier: str,
    dpi: Annotated[int, Query(ge=48, le=300)] = 96,
) -> Response:
    png = sharing.preview(services_of(request), _call(request, session), identifier, Serving(), dpi=dpi)
    return Response(png, media_type="image/png", headers={"Cache-Control": "private, no-store"})


# --- 访问记录 ----------------------------------------------------------------------------------------------


class AccessOut(BaseModel):
    at: datetime
    organisation_code: str | None
    organisation_name: str | None
    role: str | None
    action: str
    matter: str | None
    certificate_identifier: str | None
    certificate_name: str | None
    certificate_number: str | None
    outcome: str


@router.get("/access-log", response_model=list[AccessOut], summary="访问记录: who accessed my certificates")
def access_log(
    request: Request, session: HolderToken, limit: Annotated[int, Query(ge=1, le=500)] = 200
) -> list[AccessOut]:
    """The audit entries about my holder reference made by others (using units, agencies …), newest first."""
    entries = holders.access_log(services_of(request), _call(request, session), limit=limit)
    return [AccessOut(**e.__dict__) for e in entries]


# --- 授权使用 ----------------------------------------------------------------------------------------------


class AuthorisationIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    using_unit: str = Field(max_length=32, description="organisation code of the using unit (用证单位)")
    certificate_identifier: str | None = Field(default=None, max_length=128)
    catalogue_code: str | None = Field(default=None, max_length=64)
    matter: str | None = Field(default=None, max_length=100)
    purpose: str = Field(max_length=200)
    valid_until: datetime


class AuthorisationOut(BaseModel):
    id: int
    using_unit: str
    using_unit_name: str | None
    certificate_identifier: str | None
    catalogue_code: str | None
    matter: str | None
    purpose: str
    valid_until: datetime
    created_at: datetime
    revoked_at: datetime | None
    active: bool


def _authorisation(a: authorisations.Authorisation) -> AuthorisationOut:
    return AuthorisationOut(
        id=a.id,
        using_unit=a.using_unit,
        using_unit_name=a.using_unit_name,
        certificate_identifier=a.certificate_identifier,
        catalogue_code=a.catalogue_code,
        matter=a.matter,
        purpose=a.purpose,
        valid_until=a.valid_until,
        created_at=a.created_at,
        revoked_at=a.revoked_at,
        active=a.active,
    )


@router.get("/authorisations", response_model=list[AuthorisationOut], summary="My authorisations")
def list_authorisations(request: Request, session: HolderToken) -> list[AuthorisationOut]:
    found = authorisations.list_for_holder(services_of(request), _call(request, session))
    return [_authorisation(a) for a in found]


@router.post(
    "/authorisations", status_code=201, response_model=AuthorisationOut, summary="Authorise a using unit"
)
def grant(request: Request, session: HolderToken, body: AuthorisationIn) -> AuthorisationOut:
    made = authorisations.grant(
        services_of(request),
        _call(request, session),
        using_unit=body.using_unit.strip().upper(),
        certificate_identifier=body.certificate_identifier,
        catalogue_code=body.catalogue_code,
        matter=body.matter,
        purpose=body.purpose,
        valid_until=body.valid_until,
    )
    return _authorisation(made)


@router.post(
    "/authorisations/{authorisation_id}/revoke",
    response_model=AuthorisationOut,
    summary="Revoke an authorisation",
)
def revoke(request: Request, session: HolderToken, authorisation_id: int) -> AuthorisationOut:
    return _authorisation(
        authorisations.revoke(services_of(request), _call(request, session), authorisation_id)
    )


# --- 复核 --------------------------------------------------------------------------------------------------


class ReviewIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    identifier: str = Field(max_length=128)
    reason: str = Field(min_length=1, max_length=2000)


class ReviewOut(BaseModel):
    id: int
    certificate_identifier: str
    reason: str
    status: str
    submitted_at: datetime
    due_date: date
    overdue: bool
    outcome: str | None
    answer: str | None
    answered_at: datetime | None


def _review(r: Any) -> ReviewOut:
    return ReviewOut(
        id=r.id,
        certificate_identifier=r.certificate_identifier,
        reason=r.reason,
        status=r.status.value,
        submitted_at=r.submitted_at,
        due_date=r.due_date,
        overdue=r.overdue,
        outcome=r.outcome.value if r.outcome else None,
        answer=r.answer,
        answered_at=r.answered_at,
    )


@router.get("/reviews", response_model=list[ReviewOut], summary="My review requests (复核)")
def list_reviews(request: Request, session: HolderToken) -> list[ReviewOut]:
    return [_review(r) for r in holders.my_reviews(services_of(request), _call(request, session))]


@router.post("/reviews", status_code=201, response_model=ReviewOut, summary="File a review request (复核)")
def file_review(request: Request, session: HolderToken, body: ReviewIn) -> ReviewOut:
    made = holders.file_review(
        services_of(request), _call(request, session), body.identifier, reason=body.reason
    )
    return _review(made)


# --- 联系方式 ----------------------------------------------------------------------------------------------


class ContactIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    email: str | None = Field(default=None, max_length=254)
    webhook_url: str | None = Field(default=None, max_length=2000)


@router.put("/contact", summary="Where my notifications go")
def set_contact(request: Request, session: HolderToken, body: ContactIn) -> dict[str, Any]:
    from certstore.services import notifications

    made = notifications.set_contact(
        services_of(request), _call(request, session), email=body.email, webhook_url=body.webhook_url
    )
    return {"email": made.email, "webhook_url": made.webhook_url, "webhook_secret": made.webhook_secret}
