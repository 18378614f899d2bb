"""Agency pages (发证机构): fill a certificate form generated from the catalogue's form schema, batch import from a
CSV template made from the same schema (per-row errors, a progress bar), and the catalogue entry editor.

Every operation is the API's use case, called with the page request's :class:`~certstore.services.calls.Call`
(entry point ``page``): a form submission is :func:`certstore.services.certificates.issue` (the same
authorisation, idempotency, arrival record and audit entry as a push), the sealed file and the face preview are
:func:`certstore.services.certificates.file`, a batch is :func:`certstore.services.batches.submit_batch`
handed to the same runner, the editor calls
:func:`certstore.services.catalogue.submit_entry` (with :func:`~certstore.services.catalogue.try_entry` for its
live checks and preview, and :func:`certstore.services.catalogue_assets.store_asset` for an uploaded base image),
the bureau's review pages (``/bureau/catalogue``) :func:`~certstore.services.catalogue.submission_checks` and
:func:`~certstore.services.catalogue.review_entry`, and forms, templates and the reading of filled-in rows come
from :mod:`certstore.forms` (the fields of the submission schema, as ``GET /api/v1/catalogue/{code}/form-schema``
serves it) — the same mapping as ``certstore import`` uses for legacy certificates.

Page batches are CSV (UTF-8 with a byte-order mark, which Excel and WPS open with the Chinese intact; at most
1,000 rows); uploads are read as UTF-8 and, failing that, GB 18030 (what Excel on a Chinese Windows saves "CSV"
as). Large legacy tables, CSV or XLSX, go through ``certstore import``.
"""

from __future__ import annotations

import base64
import csv
import io
import json
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, File, Form, Path, Query, Request, Response, UploadFile
from fastapi.responses import JSONResponse, RedirectResponse
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from api.models import CertificateData, CertificateOut
from api.pages.common import (
    PageRoute,
    attachment,
    csrf_protected,
    render,
    services_of,
    staff,
)
from api.security import call_of
from api.uploads import read_upload
from certstore.access import Actor, Role
from certstore.catalogue import CatalogueEntry, CatalogueError
from certstore.forms import (
    TableError,
    column_names,
    document_from_values,
    form_fields,
    header_cell,
    row_values,
)
from certstore.records import RecordError
from certstore.services import batches, certificates, logins
from certstore.services.authorization import require_issuer_of_type
from certstore.services.batches import MAX_BATCH_ITEMS, BatchError
from certstore.services.calls import Call, Via
from certstore.services.catalogue import (
    CatalogueConflictError,
    get_entry,
    list_entries,
    list_submissions,
    review_entry,
    submission_checks,
    submit_entry,
    try_entry,
)
from certstore.services.catalogue_assets import AssetError, store_asset
from certstore.services.catalogue_checks import EntryCheckError, EntryChecks
from certstore.services.seals import entry_seal_check

__all__ = ["parse_csv", "router"]

router = APIRouter(route_class=PageRoute, include_in_schema=False)

AgencyStaff = Annotated[logins.WebSession, Depends(staff(Role.AGENCY))]
Registrar = Annotated[logins.WebSession, Depends(staff(Role.AGENCY, Role.BUREAU))]
BureauStaff = Annotated[logins.WebSession, Depends(staff(Role.BUREAU))]
CodePath = Annotated[str, Path(max_length=32)]
VersionPath = Annotated[int, Path(ge=1, le=2**31 - 1)]
_MAX_CSV_BYTES = 10 * 1024 * 1024


def _field_errors(exc: Exception) -> list[tuple[str, str]]:
    """(field name, message) of a validation failure, field names as in :func:`form_fields`."""
    if isinstance(exc, ValidationError):
        return [(".".join(str(p) for p in err["loc"]), str(err["msg"])) for err in exc.errors()]
    if isinstance(exc, RecordError):
        return [(path, message) for path, message in exc.problems] or [("", str(exc))]
    return [("", str(exc))]


# --- the agency's home: its catalogue types --------------------------------------------------------------


@router.get("/agency", name="page_agency")
def agency_home(request: Request, session: AgencyStaff) -> Response:
    own = [
        e
        for e in list_entries(services_of(request).repo)
        if e.issuer.credit_code == session.principal.organisation_code
    ]
    return render(request, "agency.html", {"entries": own})


def _own_entry(request: Request, session: logins.WebSession, code: str) -> CatalogueEntry:
    """A catalogue type the agency issues (forms and templates are offered for these only)."""
    entry = get_entry(services_of(request).repo, code)
    require_issuer_of_type(Actor.of(session.principal), entry)
    return entry


def _call(request: Request, session: logins.WebSession) -> Call:
    """The page request's call: the logged-in principal, entry point ``page``."""
    return call_of(request, session.principal, via=Via.PAGE)


# --- the certificate form --------------------------------------------------------------------------------


@router.get("/agency/types/{code}/issue", name="page_agency_form")
def certificate_form(request: Request, session: AgencyStaff, code: CodePath) -> Response:
    entry = _own_entry(request, session, code)
    context = {"entry": entry, "fields": form_fields(entry), "values": {}, "errors": {}, "general": []}
    return render(request, "agency_form.html", context)


@router.post("/agency/types/{code}/issue", name="page_agency_issue", dependencies=[Depends(csrf_protected)])
async def issue(request: Request, session: AgencyStaff, code: CodePath) -> Response:
    form = await request.form()
    values = {k: v for k, v in form.items() if isinstance(v, str) and k != "csrf_token"}
    return await run_in_threadpool(_issue, request, session, code, values)


def _issue(request: Request, session: logins.WebSession, code: str, values: dict[str, str]) -> Response:
    entry = _own_entry(request, session, code)
    document = document_from_values(entry, values)
    services = services_of(request)
    try:
        data = CertificateData.model_validate(document)
        result = certificates.issue(services, data.stated_by(_call(request, session)), data.draft())
    except (ValidationError, RecordError) as exc:
        errors = _field_errors(exc)
        request.state.problem = "Invalid certificate data: " + "; ".join(f"{f}: {m}" for f, m in errors[:5])
        by_field: dict[str, list[str]] = {}
        general = []
        names = {f.name for f in form_fields(entry)}
        for name, message in errors:
            (by_field.setdefault(name, []) if name in names else general).append(
                message if name in names else f"{name}: {message}"
            )
        context = {
            "entry": entry,
            "fields": form_fields(entry),
            "values": values,
            "errors": by_field,
            "general": general,
        }
        return render(request, "agency_form.html", context, status=422)
    issued = CertificateOut.of(result.certificate, services.now())
    return render(
        request,
        "agency_result.html",
        {"entry": entry, "certificate": issued, "created": result.created},
        status=201 if result.created else 200,
    )


@router.get("/agency/certificates/{identifier}/file", name="page_agency_file")
def certificate_file(
    request: Request, session: AgencyStaff, identifier: str, format: str = "ofd"
) -> Response:
    """The sealed file, as ``GET /api/v1/certificates/{id}/file`` answers the issuing agency."""
    if format not in ("ofd", "pdf"):
        raise ValueError("format: ofd or pdf")
    chosen: Literal["ofd", "pdf"] = "pdf" if format == "pdf" else "ofd"
    made = certificates.file(services_of(request), _call(request, session), identifier, chosen)
    return attachment(made.data, made.media_type, made.name)


@router.get("/agency/certificates/{identifier}/face.png", name="page_agency_face")
def certificate_face(request: Request, session: AgencyStaff, identifier: str) -> Response:
    """The face preview of one of the agency's certificates (issuer only, audited as ``certificate.preview``)."""
    made = certificates.file(services_of(request), _call(request, session), identifier, "png")
    return Response(made.data, media_type=made.media_type)


# --- batch import ----------------------------------------------------------------------------------------


@router.get("/agency/types/{code}/template.csv", name="page_agency_template")
def csv_template(request: Request, session: AgencyStaff, code: CodePath) -> Response:
    """The batch template: one column per form field (``*`` marks required ones), one example row."""
    entry = _own_entry(request, session, code)
    fields = form_fields(entry)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([header_cell(f) for f in fields])
    writer.writerow([f.example for f in fields])
    data = ("\ufeff" + out.getvalue()).encode("utf-8")
    return attachment(data, "text/csv; charset=utf-8", f"{entry.name}-批量导入模板.csv")


def parse_csv(entry: CatalogueEntry, data: bytes) -> list[dict[str, Any]]:
    """The certificate documents of a filled-in template; :class:`BatchError` for a file that does not fit
    (unknown or missing columns, too many rows). Cell values are not judged here: each row's errors come from
    the same validation as a single push, reported per row by the batch job."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        try:
            text = data.decode("gb18030")
        except UnicodeDecodeError:
            raise BatchError("文件编码无法识别：请保存为 UTF-8 或 GB18030 编码的 CSV") from None
    rows = list(csv.reader(io.StringIO(text)))
    if not rows:
        raise BatchError("文件为空")
    fields = form_fields(entry)
    try:
        names = column_names(fields, rows[0])
    except TableError as exc:
        raise BatchError(str(exc)) from None
    body = rows[1:]
    while body and not any(c.strip() for c in body[-1]):
        body.pop()
    if not body:
        raise BatchError("模板中没有数据行")
    if len(body) > MAX_BATCH_ITEMS:
        raise BatchError(f"一次最多导入 {MAX_BATCH_ITEMS} 行，文件有 {len(body)} 行")
    documents = []
    for line, row in enumerate(body, start=2):
        if not any(c.strip() for c in row):
            raise BatchError(f"第 {line} 行为空行：请删除后重新上传")
        try:
            values = row_values(names, row)
        except ValueError as exc:
            raise BatchError(f"第 {line} 行：{exc}") from None
        documents.append(document_from_values(entry, values, fields=fields))
    return documents


@router.get("/agency/types/{code}/batch", name="page_agency_batch_form")
def batch_form(request: Request, session: AgencyStaff, code: CodePath) -> Response:
    entry = _own_entry(request, session, code)
    return render(request, "batch_upload.html", {"entry": entry, "error": None})


@router.post(
    "/agency/types/{code}/batch", name="page_agency_batch_submit", dependencies=[Depends(csrf_protected)]
)
def batch_submit(
    request: Request, session: AgencyStaff, code: CodePath, file: Annotated[bytes, File()]
) -> Response:
    entry = _own_entry(request, session, code)
    services = services_of(request)
    try:
        if len(file) > _MAX_CSV_BYTES:
            raise BatchError(f"文件超过 {_MAX_CSV_BYTES // (1024 * 1024)} MiB")
        documents = parse_csv(entry, file)
        job = batches.submit_batch(services, _call(request, session), documents)
    except BatchError as exc:
        request.state.problem = f"Invalid batch: {exc}"
        return render(request, "batch_upload.html", {"entry": entry, "error": str(exc)}, status=422)
    if services.batch_runner is not None:
        services.batch_runner.submit(job.id)
    return RedirectResponse(f"/agency/batches/{job.id}", status_code=303)


def _job_context(request: Request, session: logins.WebSession, job_id: str) -> dict[str, Any]:
    job = batches.get_batch(
        services_of(request).repo,
        job_id,
        organisation_code=session.principal.organisation_code,
        with_items=True,
    )
    done = job.succeeded + job.failed
    rows = [
        {
            "line": item.position + 2,
            "number": item.position + 1,
            "status": item.status,
            "identifier": item.identifier,
            "error": item.error,
        }
        for item in job.items
    ]
    return {"job": job, "done": done, "rows": rows, "finished": job.status == batches.DONE}


@router.get("/agency/batches/{job_id}", name="page_agency_batch")
def batch_progress(
    request: Request, session: AgencyStaff, job_id: Annotated[str, Path(max_length=36)]
) -> Response:
    return render(request, "batch.html", _job_context(request, session, job_id))


@router.get("/agency/batches/{job_id}/rows", name="page_agency_batch_rows")
def batch_rows(
    request: Request, session: AgencyStaff, job_id: Annotated[str, Path(max_length=36)]
) -> Response:
    """The progress bar and the rows, as an HTML fragment the page polls (batch.js)."""
    return render(request, "batch_rows.html", _job_context(request, session, job_id))


# --- the catalogue entry editor and the bureau's review ---------------------------------------------------


def _editor_context(request: Request, session: logins.WebSession, **extra: Any) -> dict[str, Any]:
    repo = services_of(request).repo
    issuer = session.principal.organisation_code if session.principal.role is Role.AGENCY else None
    return {
        "submissions": list_submissions(repo, issuer_code=issuer),
        "errors": [],
        "result": None,
        "checks": None,
        "preview": None,
        "asset": None,
        "asset_error": None,
        **extra,
    }


@router.get("/agency/catalogue", name="page_catalogue_editor")
def catalogue_editor(
    request: Request, session: Registrar, code: Annotated[str | None, Query(max_length=32)] = None
) -> Response:
    document = ""
    if code:
        entry = get_entry(services_of(request).repo, code)
        start = entry.to_document()
        start["version"] = entry.version + 1
        document = json.dumps(start, ensure_ascii=False, indent=2)
    return render(
        request, "catalogue_editor.html", _editor_context(request, session, document=document, code=code)
    )


def _upload(file: UploadFile | None, services: Any) -> bytes | None:
    """The bytes of a file field the browser filled (an empty part when nothing was chosen: None)."""
    if file is None or not file.filename:
        return None
    data = read_upload(services, file)
    if data is None:
        raise AssetError(
            f"the file is over {services.settings.max_upload_bytes} bytes",
            f"文件超过 {services.settings.max_upload_bytes // (1024 * 1024)} MiB",
        )
    return data


def _data_uri(png: bytes | None) -> str | None:
    return None if png is None else "data:image/png;base64," + base64.b64encode(png).decode("ascii")


@router.post("/agency/catalogue/assets", name="page_catalogue_asset", dependencies=[Depends(csrf_protected)])
def catalogue_asset(request: Request, session: Registrar, file: Annotated[UploadFile, File()]) -> Response:
    """Upload a base image from the editor's script (JSON answer: the name to put in ``base_image``, or the
    reason it is refused, in Chinese)."""
    services = services_of(request)
    try:
        data = _upload(file, services)
        if data is None:
            raise AssetError("no file", "未选择文件")
        asset, _created = store_asset(services.repo, data, principal=session.principal)
    except AssetError as exc:
        request.state.problem = f"Invalid base image: {exc}"
        return JSONResponse({"error": exc.reason_zh}, status_code=422)
    return JSONResponse(
        {"name": asset.name, "size_mm": f"{asset.width_mm:.1f} × {asset.height_mm:.1f}", "dpi": asset.dpi},
        status_code=201,
    )


@router.post("/agency/catalogue", name="page_catalogue_submit", dependencies=[Depends(csrf_protected)])
def catalogue_submit(
    request: Request,
    session: Registrar,
    document: Annotated[str, Form(max_length=1_000_000)],
    action: Annotated[Literal["check", "submit"], Form()] = "submit",
    fragment: Annotated[bool, Form()] = False,
    base_image_file: Annotated[UploadFile | None, File()] = None,
    template_file: Annotated[UploadFile | None, File()] = None,
) -> Response:
    """Check (``action=check``: the approval checks and the preview of the longest example face, nothing
    stored; ``fragment`` answers only that part, for the editor's live preview) or submit the edited entry for
    the bureau's approval (``POST /api/v1/catalogue``'s service). A base image or a template file chosen in the
    form is taken first: the image is uploaded (its ``asset:`` name goes into ``base_image``), the template
    becomes ``face_template``."""
    services = services_of(request)
    errors: list[tuple[str, str]] = []
    asset = asset_error = None
    checks: EntryChecks | None = None
    try:
        parsed = json.loads(document)
    except json.JSONDecodeError as exc:
        errors = [(f"第 {exc.lineno} 行第 {exc.colno} 列", f"JSON 语法错误：{exc.msg}")]
        parsed = None
    if isinstance(parsed, dict):
        try:
            image = _upload(base_image_file, services)
            if image is not None:
                asset, _ = store_asset(services.repo, image, principal=session.principal)
                parsed["base_image"] = asset.name
        except AssetError as exc:
            asset_error = exc.reason_zh
            errors.append(("base_image", f"底图未通过检查：{exc.reason_zh}"))
        template = _upload(template_file, services)
        if template is not None:
            try:
                parsed["face_template"] = json.loads(template.decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                errors.append(("face_template", f"模板文件不是有效的 JSON：{exc}"))
        if asset is not None or template is not None:
            document = json.dumps(parsed, ensure_ascii=False, indent=2)
    if not errors:
        try:
            seal_check = entry_seal_check(services)
            if action == "check":
                _entry, checks = try_entry(
                    services.repo, parsed, principal=session.principal, seal_check=seal_check
                )
            else:
                submission, created = submit_entry(
                    services.repo, parsed, principal=session.principal, seal_check=seal_check
                )
        except EntryCheckError as exc:
            checks = exc.checks
            errors = [(f"{r.title_zh}", r.reason_zh) for r in checks.failed]
        except CatalogueError as exc:
            errors = [(path, message) for path, message in exc.errors]
        else:
            if action == "submit":
                context = _editor_context(
                    request,
                    session,
                    document=document,
                    code=None,
                    result=submission,
                    created=created,
                    asset=asset,
                )
                return render(request, "catalogue_editor.html", context, status=201 if created else 200)
    extra = {
        "document": document,
        "code": None,
        "errors": errors,
        "checks": checks,
        "preview": _data_uri(checks.preview(dpi=72)) if checks is not None else None,
        "asset": asset,
        "asset_error": asset_error,
    }
    refused = bool(errors) or (checks is not None and not checks.passed)
    if refused:
        reasons = errors or [(r.name, r.reason) for r in checks.failed]  # type: ignore[union-attr]
        request.state.problem = "Invalid catalogue entry: " + "; ".join(f"{p}: {m}" for p, m in reasons[:5])
    status = 422 if errors else 200
    if fragment:
        return render(request, "catalogue_checks.html", extra, status=status)
    return render(request, "catalogue_editor.html", _editor_context(request, session, **extra), status=status)


@router.get("/bureau/catalogue", name="page_catalogue_reviews")
def catalogue_reviews(request: Request, session: BureauStaff) -> Response:
    """The bureau's list: pending versions first, then the decided ones."""
    submissions = list_submissions(services_of(request).repo)
    pending = [s for s in submissions if s.status == "pending"]
    decided = [s for s in submissions if s.status != "pending" and s.submitted_by]
    return render(request, "catalogue_reviews.html", {"pending": pending, "decided": decided})


def _review_context(request: Request, session: logins.WebSession, code: str, version: int) -> dict[str, Any]:
    services = services_of(request)
    submission, checks = submission_checks(
        services.repo, code, version, principal=session.principal, seal_check=entry_seal_check(services)
    )
    return {"submission": submission, "entry": submission.entry, "checks": checks, "error": None}


@router.get("/bureau/catalogue/{code}/{version}", name="page_catalogue_review")
def catalogue_review(
    request: Request, session: BureauStaff, code: CodePath, version: VersionPath
) -> Response:
    """One version: its checks as they stand now, the preview of its longest example face, approve (disabled
    while a check fails) or reject with a note."""
    return render(request, "catalogue_review.html", _review_context(request, session, code, version))


@router.get("/bureau/catalogue/{code}/{version}/preview.png", name="page_catalogue_review_preview")
def catalogue_review_preview(
    request: Request, session: BureauStaff, code: CodePath, version: VersionPath
) -> Response:
    _submission, checks = submission_checks(
        services_of(request).repo, code, version, principal=session.principal
    )
    png = checks.preview()
    if png is None:
        return Response("照面无法排版", status_code=422, media_type="text/plain; charset=utf-8")
    return Response(png, media_type="image/png", headers={"Cache-Control": "no-store"})


@router.post(
    "/bureau/catalogue/{code}/{version}/{decision}",
    name="page_catalogue_decide",
    dependencies=[Depends(csrf_protected)],
)
def catalogue_decide(
    request: Request,
    session: BureauStaff,
    code: CodePath,
    version: VersionPath,
    decision: Literal["approve", "reject"],
    note: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    """Approve or reject (``review_entry``: approval refused in the core while a check fails)."""
    services = services_of(request)
    try:
        review_entry(
            services.repo,
            code,
            version,
            approve=decision == "approve",
            reviewer=session.principal,
            note=note,
            seal_check=entry_seal_check(services),
        )
    except (CatalogueError, CatalogueConflictError, ValueError) as exc:
        request.state.problem = f"Review refused: {exc}"
        context = _review_context(request, session, code, version)
        context["error"] = (
            "检查未全部通过，不能批准" if isinstance(exc, EntryCheckError)
            else "驳回须填写理由" if decision == "reject" and not note.strip()
            else str(exc)
        )  # fmt: skip
        return render(
            request,
            "catalogue_review.html",
            context,
            status=409 if isinstance(exc, CatalogueConflictError) else 422,
        )
    return RedirectResponse(f"/bureau/catalogue/{code}/{version}", status_code=303)
