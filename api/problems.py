"""RFC 9457 problem details for every error the API returns; no stack trace ever reaches a caller.

Domain errors map to statuses in one table (:data:`_STATUS`); request validation errors list each offending field
in ``errors`` ([{"field": "holder.id_number", "message": "..."}]). Unexpected exceptions become a 500 whose
detail names only the request id, under which the traceback is logged.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from api.headers import API_HEADERS
from certstore.access import AccessDeniedError, AuthenticationError
from certstore.catalogue import CatalogueError
from certstore.keystore import KeyStoreError
from certstore.lifecycle import TransitionError
from certstore.records import RecordError
from certstore.services.access import GrantNotFoundError
from certstore.services.batches import BatchError, BatchNotFoundError
from certstore.services.catalogue import CatalogueConflictError, UnknownCatalogueError
from certstore.services.certificates import (
    CertificateNotFoundError,
    DuplicateConflictError,
    NotLatestVersionError,
)
from certstore.services.inspections import InspectionConflictError, InspectionNotRequiredError
from certstore.services.lookup_limits import LookupRateLimitedError
from certstore.services.reviews import ReviewNotFoundError, ReviewStateError
from certstore.services.seals import SealTransitionError, SealWithdrawnError, UnknownSealError
from certstore.store.config import PublicUrlNotConfiguredError
from certstore.tsa import TimeStampError
from certstore.workdays import CalendarError

__all__ = [
    "PROBLEM_MEDIA_TYPE",
    "EdgeError",
    "Problem",
    "ProblemError",
    "domain_status",
    "install_problem_handlers",
    "problem_response",
]

PROBLEM_MEDIA_TYPE = "application/problem+json"
_TYPE_BASE = "https://certstore.example/problems/"
log = logging.getLogger("certstore.api")


class FieldProblem(BaseModel):
    field: str = Field(
        description="Dotted path of the offending field ('body.holder.id_number', 'query.matter')."
    )
    message: str


class Problem(BaseModel):
    """RFC 9457 problem details."""

    type: str = Field(examples=[_TYPE_BASE + "access-denied"])
    title: str = Field(examples=["Access denied"])
    status: int = Field(examples=[403])
    detail: str = Field(examples=["window staff must state the matter (事项/办件编号) for every look-up"])
    instance: str | None = Field(default=None, description="The request path.")
    request_id: str | None = None
    errors: list[FieldProblem] | None = None


class ProblemError(Exception):
    """Raise from a route for a problem without a domain exception behind it."""

    def __init__(
        self, status: int, slug: str, title: str, detail: str, errors: list[FieldProblem] | None = None
    ):
        super().__init__(detail)
        self.status, self.slug, self.title, self.detail, self.errors = status, slug, title, detail, errors


class EdgeError(HTTPException):
    """Raised while a request is read, before any route sees it (api/limits.py): a body over the route's limit
    (413), a body not arriving in time (408). An HTTPException, so that FastAPI's body reading passes it on
    unchanged and it is answered as a problem (or an error page, on a page route)."""

    def __init__(self, status: int, slug: str, title: str, detail: str) -> None:
        super().__init__(status, detail)
        self.slug, self.title = slug, title


def problem_response(
    request: Request,
    status: int,
    slug: str,
    title: str,
    detail: str,
    errors: list[FieldProblem] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    request.state.problem = f"{title}: {detail}"
    body = Problem(
        type=_TYPE_BASE + slug,
        title=title,
        status=status,
        detail=detail,
        instance=request.url.path,
        request_id=getattr(request.state, "request_id", None),
        errors=errors,
    )
    # the security headers here too: a 500 is sent by Starlette's outermost middleware, outside api/headers.py's
    return JSONResponse(
        body.model_dump(exclude_none=True),
        status_code=status,
        media_type=PROBLEM_MEDIA_TYPE,
        headers={**API_HEADERS, **(headers or {})},
    )


def _field_problems(pairs: list[tuple[str, str]], prefix: str = "body") -> list[FieldProblem]:
    return [
        FieldProblem(field=f"{prefix}.{path}" if path and path != "$" else prefix, message=msg)
        for path, msg in pairs
    ]


#: exception class → (status, slug, title)
_STATUS: list[tuple[type[BaseException], int, str, str]] = [
    (AuthenticationError, 401, "unauthenticated", "Authentication required"),
    (LookupRateLimitedError, 429, "rate-limited", "Too many look-ups"),
    (AccessDeniedError, 403, "access-denied", "Access denied"),
    (CertificateNotFoundError, 404, "not-found", "Not found"),
    (UnknownCatalogueError, 404, "unknown-catalogue", "Unknown catalogue type"),
    (DuplicateConflictError, 409, "duplicate-conflict", "Conflicting duplicate"),
    (NotLatestVersionError, 409, "not-latest-version", "Not the latest version"),
    (CatalogueConflictError, 409, "catalogue-conflict", "Catalogue conflict"),
    (TransitionError, 409, "invalid-transition", "Status change not allowed"),
    (UnknownSealError, 404, "unknown-seal", "Unknown seal"),
    (SealTransitionError, 409, "invalid-seal-transition", "Seal state change not allowed"),
    (SealWithdrawnError, 409, "seal-withdrawn", "Seal suspended or revoked"),
    (ReviewNotFoundError, 404, "not-found", "Not found"),
    (GrantNotFoundError, 404, "not-found", "Not found"),
    (BatchNotFoundError, 404, "not-found", "Not found"),
    (ReviewStateError, 409, "invalid-review-state", "Review request not in that state"),
    (InspectionConflictError, 409, "inspection-conflict", "Inspection already recorded"),
    (InspectionNotRequiredError, 409, "inspection-not-required", "No annual inspection for this type"),
    (RecordError, 422, "invalid-certificate-data", "Invalid certificate data"),
    (CatalogueError, 422, "invalid-catalogue-entry", "Invalid catalogue entry"),
    (CalendarError, 422, "invalid-calendar", "Invalid calendar"),
    (BatchError, 422, "invalid-batch", "Invalid batch"),
    (KeyStoreError, 503, "keys-unavailable", "Sealing keys unavailable"),
    (PublicUrlNotConfiguredError, 503, "public-url-not-configured", "Public URL not configured"),
    (TimeStampError, 503, "tsa-unavailable", "Time-stamp authority unavailable"),
    # Services validate their arguments with ValueError (messages name the field): last, after every subclass.
    (ValueError, 422, "invalid-request", "Invalid request"),
]


def domain_status(exc: BaseException) -> tuple[int, str] | None:
    """The HTTP status and title the API answers ``exc`` with (the web pages show the same), or None for an
    unexpected exception."""
    if isinstance(exc, ProblemError):
        return exc.status, exc.title
    for cls, status, _slug, title in _STATUS:
        if isinstance(exc, cls):
            return status, title
    return None


def _domain_problem(request: Request, exc: Exception) -> JSONResponse:
    for cls, status, slug, title in _STATUS:
        if isinstance(exc, cls):
            errors = None
            if isinstance(exc, RecordError) and exc.problems:
                errors = _field_problems(exc.problems)
            elif isinstance(exc, CatalogueError):
                errors = _field_problems([(path.removeprefix("$."), message) for path, message in exc.errors])
            headers = {"WWW-Authenticate": 'Bearer realm="certstore"'} if status == 401 else None
            if isinstance(exc, LookupRateLimitedError):
                headers = {"Retry-After": str(exc.retry_after)}
            return problem_response(request, status, slug, title, str(exc), errors, headers)
    return _unexpected(request, exc)


def _unexpected(request: Request, exc: BaseException) -> JSONResponse:
    request_id = getattr(request.state, "request_id", "?")
    log.error("request %s %s failed", request_id, request.url.path, exc_info=exc)
    return problem_response(
        request, 500, "internal-error", "Internal error",
        f"the server failed to handle this request; quote request id {request_id} to the operator",
    )  # fmt: skip


#: The hint on a body that is not JSON: what the API reads.
_JSON_HINT = "send the body as JSON with the header Content-Type: application/json"


def _is_json(content_type: str | None) -> bool:
    media = (content_type or "").split(";", 1)[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


def _validation_problem(request: Request, exc: RequestValidationError, err: Any) -> FieldProblem:
    """One field problem of a validation error. Two are told for people rather than as pydantic says them: a
    body that is not well-formed JSON names the line and column (not the character offset) and hints at
    ``Content-Type``; a body sent without a JSON ``Content-Type`` (so not read as JSON at all) says so."""
    loc = tuple(err.get("loc", ()))
    message = str(err.get("msg", ""))
    if err.get("type") == "json_invalid" and len(loc) == 2 and isinstance(loc[1], int):
        text = exc.body if isinstance(exc.body, str) else ""
        offset = min(loc[1], len(text))
        line = text.count("\n", 0, offset) + 1
        column = offset - (text.rfind("\n", 0, offset) + 1) + 1
        reason = (err.get("ctx") or {}).get("error") or "not well-formed"
        message = f"invalid JSON at line {line}, column {column}: {reason} ({_JSON_HINT})"
        return FieldProblem(field="body", message=message)
    content_type = request.headers.get("content-type")
    if loc == ("body",) and isinstance(exc.body, bytes | bytearray) and not _is_json(content_type):
        sent = f"Content-Type {content_type!r}" if content_type else "no Content-Type header"
        message = f"the body was not read as JSON: the request had {sent}; {_JSON_HINT}"
    return FieldProblem(field=".".join(str(p) for p in loc), message=message)


def install_problem_handlers(app: FastAPI) -> None:
    async def on_problem(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ProblemError)
        return problem_response(request, exc.status, exc.slug, exc.title, exc.detail, exc.errors)

    async def on_validation(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        errors = [_validation_problem(request, exc, err) for err in exc.errors()]
        summary = "; ".join(f"{e.field}: {e.message}" for e in errors[:5])
        return problem_response(request, 422, "validation-error", "Invalid request", summary, errors)

    async def on_http(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        if isinstance(exc, EdgeError):
            return problem_response(request, exc.status_code, exc.slug, exc.title, exc.detail)
        titles = {
            408: "Request timeout",
            404: "Not found",
            405: "Method not allowed",
            413: "Payload too large",
            415: "Unsupported media type",
        }
        title = titles.get(exc.status_code, "HTTP error")
        detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        return problem_response(request, exc.status_code, f"http-{exc.status_code}", title, detail,
                                headers=getattr(exc, "headers", None))  # fmt: skip

    async def on_domain(request: Request, exc: Exception) -> JSONResponse:
        return _domain_problem(request, exc)

    async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
        return _unexpected(request, exc)

    app.add_exception_handler(ProblemError, on_problem)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    for cls, *_rest in _STATUS:  # handled inside the app: never reach the server-error path
        app.add_exception_handler(cls, on_domain)
    app.add_exception_handler(Exception, on_unexpected)


PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": Problem, "content": {PROBLEM_MEDIA_TYPE: {}}, "description": description}
    for status, description in {
        401: "No valid credential (missing, unknown, expired or revoked token)",
        403: "Authenticated, but the access rules forbid this (the detail says which rule)",
        404: "No such resource",
        409: "Conflicts with the current state",
        422: "Invalid input; `errors` names each field",
    }.items()
}
