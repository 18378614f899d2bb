"""Public, without login: a certificate's status by identifier (the QR code), and verification of a presented
file. Neither returns personal data. Both are use cases of :mod:`certstore.services.verification`
(:func:`~certstore.services.verification.public_status`, :func:`~certstore.services.verification.verify_presented`),
which the HTML pages of :mod:`api.pages.public` call too."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, UploadFile

from api.deps import ServicesDep
from api.models import PublicStatus
from api.problems import PROBLEM_RESPONSES, ProblemError
from api.uploads import read_upload
from certstore.services import verification
from certstore.verify import UnreadableFileError

__all__ = ["router"]

router = APIRouter(tags=["verification"])


@router.get(
    "/api/v1/public/certificates/{identifier}/status",
    response_model=PublicStatus,
    responses={404: PROBLEM_RESPONSES[404]},
    summary="Status of a certificate by identifier (what the QR code leads to); no personal data",
)
def public_status(services: ServicesDep, identifier: str) -> PublicStatus:
    return PublicStatus(**asdict(verification.public_status(services, identifier)))


@router.post(
    "/api/v1/public/verify",
    summary="Verify a presented OFD or PDF file; returns the verification report",
    responses={413: PROBLEM_RESPONSES[422] | {"description": "File too large"}, 422: PROBLEM_RESPONSES[422]},
    response_description="The report of shared/verification-report.md (indication VALID / INVALID / INDETERMINATE)",
)
def verify(
    services: ServicesDep,
    file: Annotated[UploadFile, File(description="The presented certificate file (OFD or PDF)")],
    at: Annotated[
        datetime | None,
        Form(description="Judge validity at this time instead of the signing time (ISO 8601 with offset)"),
    ] = None,
) -> dict[str, Any]:
    data = read_upload(services, file)
    if data is None:
        limit = services.settings.max_upload_bytes
        raise ProblemError(
            413, "file-too-large", "File too large", f"files over {limit} bytes are not verified"
        )
    try:
        presented = verification.verify_presented(services, data, at=at, file_name=file.filename or None)
    except UnreadableFileError as exc:
        raise ProblemError(422, "unreadable-file", "Unreadable file", str(exc)) from None
    return presented.report.to_dict()
