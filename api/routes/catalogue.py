"""Catalogue (目录): read the types and their form schemas; agencies register their own types, the bureau
approves or rejects them. Only approved versions are used for issuance."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, File, Path, Query, Response, UploadFile
from pydantic import BaseModel, Field

from api.deps import ServicesDep
from api.problems import PROBLEM_RESPONSES, FieldProblem, ProblemError
from api.security import ActionAuditDep, allow
from api.uploads import read_upload
from certstore.access import Principal, Role
from certstore.catalogue import CatalogueEntry
from certstore.records import draft_to_json, example_draft, submission_schema
from certstore.services.catalogue import (
    CatalogueSubmission,
    get_entry,
    list_entries,
    list_submissions,
    review_entry,
    submission_checks,
    submit_entry,
    try_entry,
)
from certstore.services.catalogue_assets import AssetError, StoredAsset, store_asset
from certstore.services.catalogue_checks import EntryChecks
from certstore.services.seals import entry_seal_check

router = APIRouter(prefix="/api/v1/catalogue", tags=["catalogue"])

Anyone = Annotated[Principal, Depends(allow(*Role))]
Registrar = Annotated[Principal, Depends(allow(Role.AGENCY, Role.BUREAU))]
Bureau = Annotated[Principal, Depends(allow(Role.BUREAU))]
CodePath = Annotated[str, Path(max_length=32)]
VersionPath = Annotated[int, Path(ge=1, le=2**31 - 1)]


class CatalogueSummary(BaseModel):
    code: str = Field(examples=["11410100990000025A001"])
    version: int
    name: str = Field(examples=["建筑工程施工许可证"])
    category: str
    issuer_name: str
    issuer_code: str
    holder_type: str
    annual_inspection: bool


class SubmissionOut(BaseModel):
    code: str
    version: int
    name: str
    issuer_code: str
    status: Literal["pending", "approved", "rejected"]
    submitted_by: str | None
    created_at: datetime
    reviewed_by: str | None
    reviewed_at: datetime | None
    review_note: str | None

    @classmethod
    def of(cls, submission: CatalogueSubmission) -> SubmissionOut:
        entry = submission.entry
        return cls(
            code=entry.code,
            version=entry.version,
            name=entry.name,
            issuer_code=entry.issuer.credit_code,
            status=submission.status,  # type: ignore[arg-type]
            submitted_by=submission.submitted_by,
            created_at=submission.created_at,
            reviewed_by=submission.reviewed_by,
            reviewed_at=submission.reviewed_at,
            review_note=submission.review_note,
        )


class AssetOut(BaseModel):
    """An uploaded base image (底图), as a catalogue entry names it in ``base_image``."""

    name: str = Field(description="asset:<SM3 digest> — put this in the entry's base_image")
    digest: str
    width_px: int
    height_px: int
    dpi: int
    width_mm: float
    height_mm: float
    source_type: Literal["image/png", "image/svg+xml"] = Field(
        description="What was uploaded (SVG is rasterised)"
    )
    size: int = Field(description="Bytes of the stored PNG")

    @classmethod
    def of(cls, asset: StoredAsset) -> AssetOut:
        return cls(
            name=asset.name,
            digest=asset.digest,
            width_px=asset.width_px,
            height_px=asset.height_px,
            dpi=asset.dpi,
            width_mm=round(asset.width_mm, 2),
            height_mm=round(asset.height_mm, 2),
            source_type=asset.source_type,  # type: ignore[arg-type]
            size=asset.size,
        )


class CheckOut(BaseModel):
    name: Literal["seal_owner", "base_image", "template", "fields_placed", "longest_values_fit"]
    passed: bool
    reason: str
    path: str = Field(description="The entry document's part the check concerns")


class ChecksOut(BaseModel):
    """The approval checks of an entry (审批前检查); the bureau cannot approve while one fails."""

    code: str
    version: int
    status: Literal["draft", "pending", "approved", "rejected"] = Field(
        description="draft: a document checked without being submitted"
    )
    passed: bool
    checks: list[CheckOut]

    @classmethod
    def of(cls, entry: CatalogueEntry, status: str, checks: EntryChecks) -> ChecksOut:
        return cls(
            code=entry.code,
            version=entry.version,
            status=status,  # type: ignore[arg-type]
            passed=checks.passed,
            checks=[CheckOut.model_validate(r.to_dict()) for r in checks.results],
        )


_PNG = {200: {"content": {"image/png": {}}, "description": "The longest example face (PNG)"}}


def _preview(checks: EntryChecks) -> Response:
    png = checks.preview()
    if png is None:
        reasons = "; ".join(f"{r.name}: {r.reason}" for r in checks.failed)
        raise ProblemError(422, "no-preview", "No preview", f"the face cannot be laid out: {reasons}")
    return Response(png, media_type="image/png", headers={"Cache-Control": "no-store"})


class ReviewDecision(BaseModel):
    note: str = Field(default="", max_length=2000, description="Required when rejecting")


def form_schema(entry: CatalogueEntry) -> dict[str, Any]:
    """What ``GET /catalogue/{code}/form-schema`` answers (the agency pages build forms and CSV templates from
    it): the submission schema of :func:`certstore.records.submission_schema` with an example."""
    return {
        "catalogue": entry.code,
        "version": entry.version,
        "name": entry.name,
        "schema": submission_schema(entry),
        "example": draft_to_json(example_draft(entry)),
    }


@router.get(
    "", response_model=list[CatalogueSummary], summary="The approved catalogue types (latest versions)"
)
def list_catalogue(services: ServicesDep, principal: Anyone) -> list[CatalogueSummary]:
    return [
        CatalogueSummary(
            code=e.code,
            version=e.version,
            name=e.name,
            category=str(e.category),
            issuer_name=e.issuer.name,
            issuer_code=e.issuer.credit_code,
            holder_type=str(e.holder_type),
            annual_inspection=e.annual_inspection,
        )
        for e in list_entries(services.repo)
    ]


@router.get(
    "/submissions",
    response_model=list[SubmissionOut],
    summary="Registered versions with their review state (the bureau sees all, an agency its own)",
)
def list_catalogue_submissions(
    services: ServicesDep,
    principal: Registrar,
    status: Literal["pending", "approved", "rejected"] | None = None,
) -> list[SubmissionOut]:
    issuer = principal.organisation_code if principal.role is Role.AGENCY else None
    return [SubmissionOut.of(s) for s in list_submissions(services.repo, status=status, issuer_code=issuer)]


@router.get(
    "/{code}",
    responses={404: PROBLEM_RESPONSES[404]},
    summary="A catalogue entry's definition document (latest approved, or ?version=)",
)
def get_catalogue_entry(
    services: ServicesDep,
    principal: Anyone,
    code: CodePath,
    version: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
) -> dict[str, Any]:
    return get_entry(services.repo, code, version).to_document()


@router.get(
    "/{code}/form-schema",
    tags=["generation"],
    responses={404: PROBLEM_RESPONSES[404]},
    summary="The JSON Schema of the submission form for this type (face fields included), and an example",
)
def get_form_schema(services: ServicesDep, principal: Anyone, code: CodePath) -> dict[str, Any]:
    return form_schema(get_entry(services.repo, code))


@router.post(
    "",
    status_code=201,
    response_model=SubmissionOut,
    responses={
        200: {"model": SubmissionOut, "description": "Same version already registered"},
        **{s: PROBLEM_RESPONSES[s] for s in (409, 422)},
    },
    summary="Register a catalogue type or a new version of one (pending until the bureau approves it)",
)
def submit_catalogue_entry(
    services: ServicesDep,
    principal: Registrar,
    response: Response,
    document: Annotated[dict[str, Any], Body(description="A catalogue-entry document (schemas/catalogue)")],
    audit: ActionAuditDep,
) -> SubmissionOut:
    submission, created = submit_entry(
        services.repo,
        document,
        principal=principal,
        within=audit.within(),
        seal_check=entry_seal_check(services),
    )
    response.status_code = 201 if created else 200
    return SubmissionOut.of(submission)


@router.post(
    "/assets",
    status_code=201,
    response_model=AssetOut,
    responses={
        200: {"model": AssetOut, "description": "The same image was uploaded before"},
        413: {**PROBLEM_RESPONSES[422], "description": "The file is over the upload limit"},
        422: PROBLEM_RESPONSES[422],
    },
    summary="Upload a base image (底图) for catalogue entries: PNG, or SVG rasterised to PNG; checked",
)
def upload_catalogue_asset(
    services: ServicesDep,
    principal: Registrar,
    response: Response,
    file: Annotated[UploadFile, File(description="PNG (with its dpi) or SVG (with width/height in mm)")],
    audit: ActionAuditDep,
) -> AssetOut:
    data = read_upload(services, file)
    if data is None:
        limit = services.settings.max_upload_bytes
        raise ProblemError(
            413, "file-too-large", "File too large", f"files over {limit} bytes are not accepted"
        )
    try:
        asset, created = store_asset(services.repo, data, principal=principal, within=audit.within())
    except AssetError as exc:
        raise ProblemError(
            422,
            "invalid-base-image",
            "Invalid base image",
            str(exc),
            [FieldProblem(field="file", message=str(exc))],
        ) from None
    response.status_code = 201 if created else 200
    return AssetOut.of(asset)


@router.post(
    "/checks",
    response_model=ChecksOut,
    responses={s: PROBLEM_RESPONSES[s] for s in (403, 422)},
    summary="Run the approval checks on an entry document without submitting it",
)
def check_catalogue_document(
    services: ServicesDep,
    principal: Registrar,
    document: Annotated[dict[str, Any], Body(description="A catalogue-entry document (schemas/catalogue)")],
) -> ChecksOut:
    entry, checks = try_entry(
        services.repo, document, principal=principal, seal_check=entry_seal_check(services)
    )
    return ChecksOut.of(entry, "draft", checks)


@router.post(
    "/preview",
    response_class=Response,
    responses={**_PNG, **{s: PROBLEM_RESPONSES[s] for s in (403, 422)}},
    summary="The face of an entry document laid out with its longest example values (PNG), not submitted",
)
def preview_catalogue_document(
    services: ServicesDep,
    principal: Registrar,
    document: Annotated[dict[str, Any], Body(description="A catalogue-entry document (schemas/catalogue)")],
) -> Response:
    _entry, checks = try_entry(services.repo, document, principal=principal)
    return _preview(checks)


@router.get(
    "/{code}/versions/{version}/checks",
    response_model=ChecksOut,
    responses={s: PROBLEM_RESPONSES[s] for s in (403, 404)},
    summary="A stored version's approval checks as they stand now (the bureau; the agency its own)",
)
def get_catalogue_checks(
    services: ServicesDep, principal: Registrar, code: CodePath, version: VersionPath
) -> ChecksOut:
    submission, checks = submission_checks(
        services.repo, code, version, principal=principal, seal_check=entry_seal_check(services)
    )
    return ChecksOut.of(submission.entry, submission.status, checks)


@router.get(
    "/{code}/versions/{version}/preview.png",
    response_class=Response,
    responses={**_PNG, **{s: PROBLEM_RESPONSES[s] for s in (403, 404, 422)}},
    summary="A stored version's face laid out with its longest example values (PNG)",
)
def get_catalogue_preview(
    services: ServicesDep, principal: Registrar, code: CodePath, version: VersionPath
) -> Response:
    _submission, checks = submission_checks(services.repo, code, version, principal=principal)
    return _preview(checks)


@router.post(
    "/{code}/versions/{version}/approve",
    response_model=SubmissionOut,
    responses={s: PROBLEM_RESPONSES[s] for s in (404, 409)},
    summary="Approve a pending version (bureau)",
)
def approve_catalogue_entry(
    services: ServicesDep,
    principal: Bureau,
    code: CodePath,
    version: VersionPath,
    audit: ActionAuditDep,
    body: ReviewDecision | None = None,
) -> SubmissionOut:
    note = body.note if body else ""
    return SubmissionOut.of(
        review_entry(
            services.repo,
            code,
            version,
            approve=True,
            reviewer=principal,
            note=note,
            within=audit.within(),
            seal_check=entry_seal_check(services),
        )
    )


@router.post(
    "/{code}/versions/{version}/reject",
    response_model=SubmissionOut,
    responses={s: PROBLEM_RESPONSES[s] for s in (404, 409, 422)},
    summary="Reject a pending version with a note (bureau)",
)
def reject_catalogue_entry(
    services: ServicesDep,
    principal: Bureau,
    code: CodePath,
    version: VersionPath,
    body: ReviewDecision,
    audit: ActionAuditDep,
) -> SubmissionOut:
    decided = review_entry(
        services.repo, code, version, approve=False, reviewer=principal, note=body.note, within=audit.within()
    )
    return SubmissionOut.of(decided)
