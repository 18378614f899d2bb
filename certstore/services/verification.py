"""What verification asks the repository (规范 "状态核验"): the certificate's current status, and whether the
presented file is the content the repository recorded.

:func:`repository_check` adapts the repository to :class:`certstore.verify.RepositoryCheck`. Content match:

1. the presented bytes are the stored certificate file (SM3 equals the blob key) — the usual case for an OFD
   downloaded from the repository; otherwise
2. the metadata the file carries under its signature (OFD ``CustomDatas``; PDF Info dictionary of the signed
   revision) equals the record's metadata element by element — the case for the PDF rendition, which the
   repository renders on demand and does not store.

   For an OFD the seals must match too: every seal signature of the stored file (seal and signer
   certificate) must be in the presented one, so a file re-sealed by another agency's seal does not pass for
   the record even though its metadata was copied faithfully.

   A copy (副本, :mod:`certstore.services.copies`) is a new document sealed by the repository that embeds the
   stored original as an attachment (:func:`certstore.verify.ofd.embedded_originals`). Its own seal is not the
   issuer's, so instead of the seals, the one original it embeds must be the stored file byte for byte (its
   SM3 equals the blob key) — the issuer's seals are then those of the record by construction. A copy whose
   certificate has no stored file has nothing to compare with (None).

Anything else (a file for the identifier whose signed metadata differs from the record) is a mismatch.

The use cases of verification exist once, here, for every entry point (public API, public pages, window page,
command line):

* :func:`verify_presented` — a file someone presents, verified with the application's trust anchors and (unless
  offline) its repository; the file is read once, and the package read is returned with the report so that
  :func:`presented_preview` draws the presented face from it without reading the file again;
* :func:`verify_stored` — the stored, issuer-sealed file of a certificate, verified the same way;
* :func:`public_status` — what anyone may know of a certificate by its identifier (the QR code's page): type,
  issuer, dates, current status — no personal data.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, NamedTuple

from certstore.checks import Indication
from certstore.crypto.sm3 import sm3
from certstore.lifecycle import Status
from certstore.packaging.ofd.reader import OfdFormatError, OfdPackage, OfdReader
from certstore.packaging.ofd.render import render_package_first_page
from certstore.records import Certificate
from certstore.seal import SealFormatError, parse_seal_signature
from certstore.services import certificates
from certstore.store.repository import Repository
from certstore.verify import RepositoryCheck, VerificationReport, verify_and_read
from certstore.verify.ofd import embedded_originals
from certstore.verify.pdf import signed_metadata

if TYPE_CHECKING:  # the application object builds its repository check from this module
    from certstore.app import Application

__all__ = [
    "CertificateStatus",
    "Presented",
    "RepositoryStatusCheck",
    "presented_preview",
    "public_status",
    "repository_check",
    "verify_presented",
    "verify_stored",
]


def _open_ofd(data: bytes) -> OfdPackage | None:
    try:
        return OfdReader.open(data)
    except OfdFormatError:
        return None


def _ofd_sealers(package: OfdPackage | None) -> set[tuple[str, bytes]]:
    """(seal id, signer certificate DER) of every readable seal signature in an OFD (none when unreadable)."""
    if package is None:
        return set()
    found = set()
    for document in package.documents:
        for signature in document.signatures:
            if signature.signed_value is None:
                continue
            try:
                parsed = parse_seal_signature(signature.signed_value)
            except SealFormatError:
                continue
            found.add((parsed.seal.es_id, parsed.signer_certificate.der))
    return found


def _as_text(value: object) -> str:
    return value if isinstance(value, str) else str(value)


class RepositoryStatusCheck:
    """:class:`~certstore.verify.RepositoryCheck` over a repository opened on first use.

    Make one per verification (:func:`repository_check`): the record is read once and serves both questions
    of that verification (status, content match); a new verification reads it again, so a suspension or a
    revocation is seen by the next verification at once."""

    def __init__(self, open_repository: Callable[[], Repository]) -> None:
        self._open = open_repository
        self._repo: Repository | None = None
        self._records: dict[str, Certificate | None] = {}

    def _certificate(self, identifier: str) -> Certificate | None:
        if identifier not in self._records:
            try:
                self._records[identifier] = certificates.get(self.repo, identifier)
            except certificates.CertificateNotFoundError:
                self._records[identifier] = None
        return self._records[identifier]

    @property
    def repo(self) -> Repository:
        if self._repo is None:
            self._repo = self._open()
        return self._repo

    def status(self, identifier: str, at: datetime | None = None) -> tuple[str, str] | None:
        cert = self._certificate(identifier)
        if cert is None:
            return None
        status = cert.status_at(at or self.repo.now())
        return status.value, status.label

    def content_digest_matches(
        self,
        identifier: str,
        package: bytes,
        *,
        package_sm3: str | None = None,
        ofd: OfdPackage | None = None,
    ) -> bool | None:
        cert = self._certificate(identifier)
        if cert is None:
            return None
        if cert.file_key is not None and (package_sm3 or sm3(package).hex()) == cert.file_key:
            return True
        is_pdf = package.startswith(b"%PDF-")
        if is_pdf:
            ofd, carried = None, signed_metadata(package)
        else:
            ofd = ofd if ofd is not None else _open_ofd(package)
            carried = {} if ofd is None else dict(ofd.doc_info.custom_datas)
        recorded: Mapping[str, object] = cert.metadata
        if not carried or any(carried.get(name) != _as_text(value) for name, value in recorded.items()):
            return False
        originals = () if ofd is None else embedded_originals(ofd)
        if originals:  # a copy (副本): the original it embeds must be the stored file
            if cert.file_key is None:
                return None
            return len(originals) == 1 and sm3(originals[0][1]).hex() == cert.file_key
        if is_pdf or cert.file_key is None:
            return True
        return _ofd_sealers(_open_ofd(self.repo.blobs.get(cert.file_key))) <= _ofd_sealers(ofd)


def repository_check(open_repository: Callable[[], Repository]) -> RepositoryCheck:
    """The repository questions of one verification (make a new one for each)."""
    return RepositoryStatusCheck(open_repository)


# --- Use cases ---------------------------------------------------------------------------------------------


class Presented(NamedTuple):
    """A presented file's verification: the report, and the OFD package read for it (None for a PDF or a package
    the reader refused)."""

    report: VerificationReport
    package: OfdPackage | None


def verify_presented(
    app: Application,
    data: bytes,
    *,
    at: datetime | None = None,
    offline: bool = False,
    file_name: str | None = None,
) -> Presented:
    """Verify a presented OFD or PDF file with ``app``'s trust anchors and — unless ``offline`` — its repository
    (status and recorded content). ``at`` judges validity at that time instead of each signature's signing time;
    a time without offset is read as UTC. Raises :class:`~certstore.verify.UnreadableFileError` for input that is
    neither an OFD nor a PDF."""
    if at is not None and at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    verified = verify_and_read(
        data,
        trust=app.trust,
        at=at,
        repository=None if offline else app.repository_check(),
        file_name=file_name,
    )
    return Presented(verified.report, verified.package)


def presented_preview(presented: Presented, *, dpi: float = 96.0) -> bytes | None:
    """A PNG of page 1 of the presented OFD, drawn from the file itself — what the presenter already holds, never
    the repository's record — from the package the verification read; None for a PDF, for a file that is
    INVALID (a forged face is not shown as if it were one) or one that cannot be drawn."""
    if presented.package is None or presented.report.indication is Indication.INVALID:
        return None
    return render_package_first_page(presented.package, dpi=dpi)


def _stored_file_name(certificate: Certificate) -> str:
    extension = "pdf" if certificate.file_media_type == "application/pdf" else "ofd"
    return f"{certificate.certificate_number}.{extension}"


def verify_stored(
    app: Application, certificate: Certificate, *, at: datetime | None = None
) -> VerificationReport:
    """Verify the stored, issuer-sealed file of ``certificate`` as a presented one is verified (trust anchors,
    repository status and content), named ``{certificate number}.ofd``. The caller has established that the
    actor may read the certificate. Raises :class:`ValueError` for a certificate stored without a file."""
    if certificate.file_key is None:
        raise ValueError(f"certificate {certificate.identifier} was stored without a file")
    return verify_presented(
        app, app.repo.blobs.get(certificate.file_key), at=at, file_name=_stored_file_name(certificate)
    ).report


@dataclass(frozen=True)
class CertificateStatus:
    """What anyone scanning the QR code learns of a certificate: no personal data."""

    identifier: str
    name: str
    issuer_name: str
    issue_date: date
    valid_until: date | None
    status: Status
    status_label: str
    is_current_version: bool
    checked_at: datetime


def public_status(app: Application, identifier: str) -> CertificateStatus:
    """The type, issuer, dates and current status of ``identifier`` (状态核验, the page the QR code opens and
    ``GET /api/v1/public/certificates/{identifier}/status``). Raises
    :class:`~certstore.services.certificates.CertificateNotFoundError`."""
    certificate = certificates.get(app.repo, identifier)
    at = app.now()
    status = certificate.status_at(at)
    return CertificateStatus(
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
