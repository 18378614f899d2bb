"""What verification asks the repository (规范 "状态核验"): the certificate's current status, and whether the
presented file is the content the repository recorded.

:func:`repository_check` adapts the repository to :class:`certstore.verify.RepositoryCheck`.

Status (:meth:`RepositoryStatusCheck.status`): now, the stored status (expiry computed); at a time ``at``, the
lifecycle events as they stood then (:func:`status_as_of`): the version's last event at or before ``at``
decides — so a superseded version is superseded only from its successor's creation, a revoked one only from the
revocation — and expiry follows from ``valid_until`` at ``at``.

Content match (:meth:`RepositoryStatusCheck.content_digest_matches`, answering a
:class:`~certstore.verify.pipeline.ContentAnswer` whose text says exactly what was compared):

1. an original OFD (or a stored PDF): the SM3 of the presented bytes against the stored version's file digest
   (the blob key is the SM3 of the stored bytes, :mod:`certstore.store.blobs`) — any change to a page, a
   resource, the metadata or a seal fails;
2. a copy (副本, :mod:`certstore.services.copies`): a new document sealed by the repository that embeds the
   stored original as an attachment (:func:`certstore.verify.ofd.embedded_originals`): its metadata must equal
   the record's and the one original it embeds must be the stored file byte for byte (SM3 equals the blob key);
3. a PDF rendition of a stored OFD, which the repository renders on demand and does not store: the metadata it
   carries under its signature (Info dictionary of the signed revision) must equal the record's — the reason
   says that its pages were not compared (the PDF signature covers them).

A version stored without a file has nothing to compare with (UNKNOWN).

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

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, NamedTuple

from certstore.checks import Indication
from certstore.crypto.sm3 import sm3
from certstore.crypto.x509 import Certificate as X509Certificate
from certstore.keystore import KeyStoreError
from certstore.lifecycle import Status, effective_status
from certstore.packaging.ofd.reader import OfdFormatError, OfdPackage, OfdReader
from certstore.records import Certificate
from certstore.services import certificates
from certstore.services.seals import registered_seal_state
from certstore.store.repository import Repository
from certstore.verify import RepositoryCheck, VerificationReport, verify_and_read
from certstore.verify.ofd import embedded_originals
from certstore.verify.pipeline import NOT_ISSUED, ContentAnswer, OfflineStatus, SealRecord
from certstore.verify.status_list import StatusListError, read_status_list
from certstore.workdays import local_date

if TYPE_CHECKING:  # the application object builds its repository check from this module
    from certstore.app import Application

__all__ = [
    "CertificateStatus",
    "Presented",
    "RepositoryStatusCheck",
    "offline_status",
    "presented_preview",
    "public_status",
    "repository_check",
    "status_as_of",
    "verify_presented",
    "verify_stored",
]


def _open_ofd(data: bytes) -> OfdPackage | None:
    try:
        return OfdReader.open(data)
    except OfdFormatError:
        return None


def _as_text(value: object) -> str:
    return value if isinstance(value, str) else str(value)


class RepositoryStatusCheck:
    """:class:`~certstore.verify.RepositoryCheck` over a repository opened on first use.

    Make one per verification (:func:`repository_check`): the record is read once and serves both questions
    of that verification (status, content match); a new verification reads it again, so a suspension or a
    revocation is seen by the next verification at once."""

    def __init__(
        self,
        open_repository: Callable[[], Repository],
        repository_code: Callable[[], str | None] | None = None,
        prepare_registry: Callable[[], None] | None = None,
    ) -> None:
        self._open = open_repository
        self._repository_code = repository_code
        self._prepare_registry = prepare_registry
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

    def seal_state(self, es_id: str, at: datetime) -> SealRecord | None:
        """The seal registry's owner of the seal ``es_id`` and its state at ``at`` (``seal_owner``); None when the
        registry does not know the seal."""
        if self._prepare_registry is not None:
            self._prepare_registry()  # the key store's seals registered (once per process)
        found = registered_seal_state(self.repo, es_id, at)
        if found is None:
            return None
        seal, state = found
        return SealRecord(state.status.value, state.effective_at, seal.owner_code, seal.owner_name)

    def repository_organization(self) -> str | None:
        """The repository's credit code (the organisation whose seal a copy carries), when known."""
        return None if self._repository_code is None else self._repository_code()

    def status(self, identifier: str, at: datetime | None = None) -> tuple[str, str] | None:
        cert = self._certificate(identifier)
        if cert is None:
            return None
        if at is None:
            status = cert.status_at(self.repo.now())
            return status.value, status.label
        status = status_as_of(cert, at)
        if status is None:
            return NOT_ISSUED, "未签发"
        return status.value, status.label

    def content_digest_matches(
        self,
        identifier: str,
        package: bytes,
        *,
        package_sm3: str | None = None,
        ofd: OfdPackage | None = None,
    ) -> bool | None:
        answer = self.content_comparison(identifier, package, package_sm3=package_sm3, ofd=ofd)
        return None if answer is None else answer.matches

    def _same_entries(self, cert: Certificate, ofd: OfdPackage) -> ContentAnswer | None:
        """The presented OFD differs from the stored one byte-wise: a PASSED answer when it holds exactly the stored
        file's entries — the same names, each with the same SM3 — only packed into another ZIP; else None."""
        assert cert.file_key is not None
        # a store that fails raises: content_match is then UNKNOWN (the caller's rule)
        data = self.repo.blobs.get(cert.file_key)
        try:
            stored = OfdReader.open(data)
        except OfdFormatError:  # a stored file today's reader refuses (imported long ago): compared whole
            return None
        if _entry_digests(ofd) != _entry_digests(stored):
            return None
        return ContentAnswer(
            True,
            f"the file holds the content the repository recorded for {cert.identifier}: its {len(ofd.files)} entries "
            f"have the names and SM3 digests of the entries of the file stored for version {cert.version}, packed "
            "into another ZIP archive (the file's own SM3 differs)",
        )

    def content_comparison(
        self,
        identifier: str,
        package: bytes,
        *,
        package_sm3: str | None = None,
        ofd: OfdPackage | None = None,
    ) -> ContentAnswer | None:
        """:meth:`content_digest_matches` with what was compared (the ``content_match`` reason)."""
        cert = self._certificate(identifier)
        if cert is None:
            return None
        presented = package_sm3 or sm3(package).hex()
        is_pdf = package.startswith(b"%PDF-")
        ofd = None if is_pdf else (ofd if ofd is not None else _open_ofd(package))
        originals = () if ofd is None else embedded_originals(ofd)
        if originals:  # a copy (副本): the record's metadata, and the original it embeds is the stored file
            return _copy_answer(cert, ofd, originals)
        if cert.file_key is None:
            return ContentAnswer(
                None, f"the repository stored no file for {identifier}: nothing to compare with"
            )
        stored = "PDF" if cert.file_media_type == "application/pdf" else "OFD"
        if presented == cert.file_key:
            return ContentAnswer(
                True,
                f"the file is the content the repository recorded for {identifier}: the SM3 of the presented file "
                f"({presented[:16]}…) equals the SM3 of the file stored for version {cert.version}",
            )
        if ofd is not None and stored == "OFD":
            repacked = self._same_entries(cert, ofd)
            if repacked is not None:
                return repacked
        if (
            is_pdf and stored == "OFD"
        ):  # a rendition: not stored, so its signed metadata are what can be compared
            from certstore.verify.pdf import signed_metadata  # pyhanko: imported for a PDF only

            carried = signed_metadata(package)
            if _metadata_equal(carried, cert.metadata):
                return ContentAnswer(
                    True,
                    f"PDF rendition: the metadata it carries under its signature equal the record of {identifier} "
                    "(the repository stores the OFD, not the rendition; its pages were not compared)",
                )
            return ContentAnswer(
                False,
                f"PDF rendition: the metadata it carries under its signature differ from the record of {identifier}",
            )
        return ContentAnswer(
            False,
            f"SM3 of the presented file ({presented[:16]}…) differs from the SM3 of the {stored} file stored for "
            f"{identifier} ({cert.file_key[:16]}…)",
        )


def _entry_digests(package: OfdPackage) -> dict[str, bytes]:
    return {name: sm3(data) for name, data in package.files.items()}


def _metadata_equal(carried: Mapping[str, str], recorded: Mapping[str, object]) -> bool:
    return bool(carried) and all(carried.get(name) == _as_text(value) for name, value in recorded.items())


def _copy_answer(
    cert: Certificate, ofd: OfdPackage | None, originals: Sequence[tuple[str, bytes]]
) -> ContentAnswer | None:
    identifier = cert.identifier
    carried = {} if ofd is None else dict(ofd.doc_info.custom_datas)
    if not _metadata_equal(carried, cert.metadata):
        return ContentAnswer(False, f"copy (副本): its metadata differ from the record of {identifier}")
    if cert.file_key is None:
        return ContentAnswer(
            None, f"copy (副本): the repository stored no file for {identifier} to compare with"
        )
    if len(originals) == 1 and sm3(originals[0][1]).hex() == cert.file_key:
        return ContentAnswer(
            True,
            f"copy (副本) of the stored original: the embedded original (原件) is the file the repository recorded "
            f"for {identifier} (SM3 compared), and the copy carries the record's metadata",
        )
    return ContentAnswer(
        False,
        f"copy (副本): its embedded original (原件) is not the file stored for {identifier} "
        f"({len(originals)} embedded; SM3 compared)",
    )


def status_as_of(certificate: Certificate, at: datetime) -> Status | None:
    """The status of a version at ``at`` as its lifecycle events stood then: the last event at or before ``at``
    decides (expiry from ``valid_until`` at ``at``). Before its first recorded event: the first event's status
    when ``at`` falls on or after the issue date (an imported version, issued before the repository recorded
    it), else None (not yet issued). A time without offset is read as UTC."""
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    stored: Status | None = None
    for event in certificate.events:
        event_at = event.at if event.at.tzinfo is not None else event.at.replace(tzinfo=UTC)
        if event_at > at:
            break
        try:
            stored = Status(event.to_status)
        except ValueError:
            continue
    if stored is None:
        if not certificate.events:
            stored = certificate.stored_status
        elif local_date(at) >= certificate.issue_date:
            stored = Status(certificate.events[0].to_status)
        else:
            return None
    return effective_status(stored, certificate.valid_until, at)


def repository_check(
    open_repository: Callable[[], Repository],
    repository_code: Callable[[], str | None] | None = None,
    prepare_registry: Callable[[], None] | None = None,
) -> RepositoryCheck:
    """The repository questions of one verification (make a new one for each). ``repository_code``: the
    repository's own credit code, which ties a copy's seal to it (``seal_owner``); ``prepare_registry``: run
    before the seal registry is first asked (the application registers its key store's seals)."""
    return RepositoryStatusCheck(open_repository, repository_code, prepare_registry)


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
    status_snapshot: bytes | None = None,
    file_name: str | None = None,
) -> Presented:
    """Verify a presented OFD or PDF file with ``app``'s trust anchors and — unless ``offline`` — its repository
    (status at the time asked and recorded content). Offline, the status comes from ``status_snapshot`` (a
    signed status snapshot, :func:`offline_status`) or is unknown (INDETERMINATE, never VALID). ``at`` judges
    validity at that time instead of each signature's signing time; a time without offset is read as UTC.
    Raises :class:`~certstore.verify.UnreadableFileError` for input that is neither an OFD nor a PDF."""
    if at is not None and at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    verified = verify_and_read(
        data,
        trust=app.trust,
        at=at,
        repository=None if offline else app.repository_check(),
        file_name=file_name,
        offline=offline_status(app, status_snapshot) if offline else None,
        now=app.now(),
    )
    return Presented(verified.report, verified.package)


def offline_status(app: Application, snapshot: bytes | None) -> OfflineStatus:
    """The offline status source of a verification: ``snapshot`` verified against ``app``'s trust anchors and the
    repository key when the key store holds it; a refused snapshot becomes the reason the status is unknown."""
    if snapshot is None:
        return OfflineStatus(problem="offline, and no status snapshot was given")
    try:
        return OfflineStatus(
            read_status_list(snapshot, trust=app.trust, expected=_repository_certificates(app))
        )
    except StatusListError as exc:
        return OfflineStatus(problem=f"status snapshot refused: {exc}")


def _repository_certificates(app: Application) -> tuple[X509Certificate, ...]:
    try:
        return (app.repository_sealing_key().certificate,)
    except (
        KeyStoreError,
        OSError,
    ):  # a verifier's key store without the repository key: trust anchors decide
        return ()


def presented_preview(presented: Presented, *, dpi: float = 96.0) -> bytes | None:
    """A PNG of page 1 of the presented OFD, drawn from the file itself — what the presenter already holds, never
    the repository's record — from the package the verification read; None for a PDF, for a file that is
    INVALID (a forged face is not shown as if it were one) or one that cannot be drawn."""
    if presented.package is None or presented.report.indication is Indication.INVALID:
        return None
    from certstore.packaging.ofd.render import render_package_first_page  # drawing: imported when drawn

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
