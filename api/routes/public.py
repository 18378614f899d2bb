"""Public, without login: a certificate's status by identifier (the QR code), verification of a presented file
(``at``: validity and status as they stood then), and the signed status snapshot counters carry for offline
verification (``GET /api/v1/status/snapshot``, :mod:`certstore.services.status_snapshot`; cacheable for up to
the cache's refresh interval, 5 minutes). None returns personal data. Status and verification are use cases of
:mod:`certstore.services.verification`
(:func:`~certstore.services.verification.public_status`, :func:`~certstore.services.verification.verify_presented`),
which the HTML pages of :mod:`api.pages.public` call too."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Response, UploadFile

from api.deps import ServicesDep
from api.downloads import attachment_headers
from api.models import PublicStatus
from api.problems import PROBLEM_RESPONSES, ProblemError
from api.uploads import read_upload
from certstore.services import verification
from certstore.services.status_snapshot import SnapshotCache
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
    response_description="The verification report of docs/verification.md (indication VALID / INVALID / INDETERMINATE)",
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


SNAPSHOT_MEDIA_TYPE = "application/vnd.certstore.status-list"


def _snapshots(services: ServicesDep) -> SnapshotCache:
    cache = services.__dict__.get("_status_snapshots")
    if cache is None:
        cache = services.__dict__.setdefault("_status_snapshots", SnapshotCache())
    return cache


@router.get(
    "/api/v1/status/snapshot",
    summary="The latest signed status snapshot: versions not in force and withdrawn seals (offline verification)",
    response_class=Response,
    responses={
        200: {"content": {SNAPSHOT_MEDIA_TYPE: {}}, "description": "The snapshot (docs/verification.md)"}
    },
)
def status_snapshot(services: ServicesDep) -> Response:
    cache = _snapshots(services)
    snapshot = cache.latest(services)
    now = services.now()
    age = int((now - snapshot.this_update).total_seconds())
    remaining = int((snapshot.next_update - now).total_seconds())
    fresh_for = max(0, min(int(cache.refresh.total_seconds()) - age, remaining))
    return Response(
        snapshot.data,
        media_type=SNAPSHOT_MEDIA_TYPE,
        headers={
            "Cache-Control": f"public, max-age={fresh_for}",
            "ETag": f'"{snapshot.sequence}-{int(snapshot.this_update.timestamp())}"',
            **attachment_headers(f"status-{snapshot.sequence}.cssl"),
        },
    )
