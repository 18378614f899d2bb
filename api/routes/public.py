"""Public, without login: a certificate's status by identifier (the QR code), and verification of a presented
file. Neither returns personal data. (The HTML page the QR code opens, ``/v/{identifier}``, is in
:mod:`api.pages.public` and uses :func:`public_status_of`.)"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, UploadFile

from api.deps import ServicesDep
from api.models import PublicStatus
from api.problems import PROBLEM_RESPONSES, ProblemError
from certstore.services import certificates
from certstore.verify import UnreadableFileError, VerificationReport, verify_file

__all__ = ["public_status_of", "read_upload", "router", "verify_upload"]

router = APIRouter(tags=["verification"])


def public_status_of(services: ServicesDep, identifier: str) -> PublicStatus:
    """What anyone may know of a certificate by its identifier: type, issuer, dates, current status."""
    certificate = certificates.get(services.repo, identifier)
    at = services.repo.now()
    status = certificate.status_at(at)
    return PublicStatus(
        identifier=certificate.identifier,
        name=certificate.name,
        issuer_name=certificate.issuer_name,
        issue_date=certificate.issue_date,
        valid_until=certificate.valid_until,
        status=status,
        status_label=status.label,
        is_current_version=certificate.superseded_by is None,
        checked_at=at.replace(microsecond=0),
    )


def read_upload(services: ServicesDep, file: UploadFile) -> bytes | None:
    """The uploaded file, or None when it is over the upload limit (never read past it)."""
    limit = services.settings.max_upload_bytes
    data = file.file.read(limit + 1)
    return None if len(data) > limit else data


def verify_upload(
    services: ServicesDep, data: bytes, *, at: datetime | None, file_name: str | None
) -> VerificationReport:
    """Verify a presented file with the repository's trust store and status check (``POST /api/v1/public/verify``
    and the ``/verify`` page); a time without offset is read as UTC."""
    if at is not None and at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return verify_file(
        data, trust=services.trust, at=at, repository=services.repository_check(), file_name=file_name
    )


@router.get(
    "/api/v1/public/certificates/{identifier}/status",
    response_model=PublicStatus,
    responses={404: PROBLEM_RESPONSES[404]},
    summary="Status of a certificate by identifier (what the QR code leads to); no personal data",
)
def public_status(services: ServicesDep, identifier: str) -> PublicStatus:
    return public_status_of(services, identifier)


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
        report = verify_upload(services, data, at=at, file_name=file.filename or None)
    except UnreadableFileError as exc:
        raise ProblemError(422, "unreadable-file", "Unreadable file", str(exc)) from None
    return report.to_dict()
