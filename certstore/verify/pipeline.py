"""The verification pipeline: one presented file in, one :class:`~certstore.verify.report.VerificationReport` out.

:func:`verify_file` is what the CLI (``certstore verify``), the API and the verification page call. It

1. refuses input it cannot even classify — empty, or neither a ZIP nor a PDF, or a ZIP without ``OFD.xml`` — with
   :class:`UnreadableFileError` (the CLI's exit code 3: "unreadable input");
2. dispatches by content, never by file name: a ZIP with OFD.xml (bytes before the archive tolerated) to
   :func:`certstore.verify.ofd.verify_ofd`; ``%PDF-`` in the first KiB to ``certstore.verify.pdf.verify_pdf``
   (imported lazily; when that module is not installed the report is INDETERMINATE and says so);
3. adds the certificate-level checks ``status`` and ``content_match`` when the file names an e-certificate
   (CustomData ``ZZBS``) — against the repository when one is given, SKIPPED ("offline") otherwise — before
   the certificate checks of the format verifier (a copy's ``embedded_original``). For a copy (副本), which
   embeds the stored original, ``content_match`` asks the repository about the copy — its metadata must equal
   the record and its embedded original must be the stored file (``RepositoryCheck.content_digest_matches``)
   — and says so;
4. stamps the file's size and digests and the verification time.

:func:`verify_and_read` is the same and also hands back the OFD package it read (:class:`VerifiedFile`): a file
is read once for its report, the repository's content check and whatever the caller shows of it (the
verification page's preview) or makes from it (a copy).

Everything else — a package the reader refuses (limits, zip bombs, traversal, DTDs …), a broken signature, a
file that proves tampering — is a *report*, INVALID with the reason, never an exception. An unexpected error
inside a format verifier is logged and reported as INDETERMINATE rather than crashing the caller.
"""

from __future__ import annotations

import hashlib
import io
import logging
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Protocol, runtime_checkable

from certstore.checks import Check, CheckResult, Indication, worst
from certstore.crypto.sm3 import sm3
from certstore.crypto.trust import TrustStore
from certstore.lifecycle import Status
from certstore.packaging.ofd.reader import NotOfdError, OfdPackage
from certstore.verify.ofd import DEFAULT_OPTIONS, EMBEDDED_ORIGINAL, OfdOptions, read_and_verify_ofd
from certstore.verify.report import CertificateReport, FileInfo, Format, VerificationReport

__all__ = [
    "OFFLINE_REASON",
    "RepositoryCheck",
    "UnreadableFileError",
    "VerifiedFile",
    "detect_format",
    "verify_and_read",
    "verify_file",
]

log = logging.getLogger(__name__)

STATUS = "status"
CONTENT_MATCH = "content_match"
OFFLINE_REASON = "offline: the repository was not consulted"

#: Repository statuses that end a certificate's validity (``certstore.lifecycle.Status``).
_NOT_IN_FORCE = frozenset(
    {Status.REVOKED, Status.CANCELLED, Status.ANNULLED, Status.EXPIRED, Status.SUSPENDED, Status.SUPERSEDED}
)
_PDF_SEARCH = 1024  # PDF readers accept the header within the first KiB


class UnreadableFileError(ValueError):
    """The input is not a file this verifier can read at all (CLI exit code 3). The message says why."""


@runtime_checkable
class RepositoryCheck(Protocol):
    """What the verifier asks the repository (implemented by the services layer).

    ``status`` returns (status, label) — a :class:`certstore.lifecycle.Status` value such as ``"revoked"`` and
    its Chinese label — for the certificate ``identifier``, effective now or at ``at`` when the verification is
    asked about another time; None when the repository does not know the identifier.
    ``content_digest_matches`` says whether ``package`` (the presented file's bytes) is the content the
    repository recorded for ``identifier`` — for a copy (副本): whether its metadata are the record's and the
    original it embeds is the stored file; None when it holds no record to compare with. ``package_sm3`` is
    the package's SM3 (hex) when the caller has it already (the pipeline hashes every file once, for the
    report's file identity); ``ofd`` is the OFD package the pipeline read from those bytes (None for a PDF), so
    that it need not be read again. Either may raise when the repository is unreachable; the check is then
    UNKNOWN.
    """

    def status(self, identifier: str, at: datetime | None = None) -> tuple[str, str] | None: ...

    def content_digest_matches(
        self,
        identifier: str,
        package: bytes,
        *,
        package_sm3: str | None = None,
        ofd: OfdPackage | None = None,
    ) -> bool | None: ...


@dataclass(frozen=True)
class VerifiedFile:
    """What :func:`verify_and_read` returns: the report, and the OFD package read for it (None for a PDF, or an
    OFD the reader refused)."""

    report: VerificationReport
    package: OfdPackage | None


def detect_format(data: bytes) -> Format:
    """OFD for a ZIP archive (also with bytes prepended), PDF for ``%PDF-`` in the first KiB; otherwise
    :class:`UnreadableFileError`."""
    if not data:
        raise UnreadableFileError("empty file")
    if data.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return Format.OFD
    if b"%PDF-" in data[:_PDF_SEARCH]:
        return Format.PDF
    if _is_zip(data):
        return Format.OFD
    raise UnreadableFileError("neither an OFD (ZIP) nor a PDF file")


def _is_zip(data: bytes) -> bool:
    try:
        return zipfile.is_zipfile(io.BytesIO(data))
    except (OSError, ValueError):
        return False


def verify_file(
    data: bytes,
    *,
    trust: TrustStore,
    at: datetime | None = None,
    repository: RepositoryCheck | None = None,
    file_name: str | None = None,
    ofd_options: OfdOptions = DEFAULT_OPTIONS,
) -> VerificationReport:
    """Verify a presented OFD or PDF file; see the module documentation for what is checked.

    ``at`` judges certificate and seal validity at that time instead of each signature's signing time, and asks
    the repository for the status at that time; ``repository`` None means offline.
    """
    return verify_and_read(
        data, trust=trust, at=at, repository=repository, file_name=file_name, ofd_options=ofd_options
    ).report


def verify_and_read(
    data: bytes,
    *,
    trust: TrustStore,
    at: datetime | None = None,
    repository: RepositoryCheck | None = None,
    file_name: str | None = None,
    ofd_options: OfdOptions = DEFAULT_OPTIONS,
) -> VerifiedFile:
    """:func:`verify_file`, also returning the OFD package read for the report (read once: the repository's
    content check gets it too)."""
    if at is not None and at.tzinfo is None:
        raise ValueError("the verification time must be a timezone-aware datetime")
    data = bytes(data)
    file = FileInfo(len(data), sm3(data).hex(), hashlib.sha256(data).hexdigest(), file_name)
    file_format = detect_format(data)
    limit = ofd_options.limits.max_file_size
    package: OfdPackage | None = None
    if len(data) > limit:
        report = VerificationReport(
            Indication.INVALID,
            file_format,
            (),
            (f"file of {len(data)} bytes exceeds the {limit}-byte limit",),
        )
    elif file_format is Format.OFD:
        report, package = _guarded(file_format, lambda: _verify_ofd(data, trust, at, ofd_options))
    else:
        report, _ = _guarded(file_format, lambda: (_verify_pdf(data, trust, at), None))
    if report.certificate is not None:
        report = _with_certificate_checks(report, report.certificate, repository, data, file.sm3, at, package)
    return VerifiedFile(
        replace(report, file=file, verified_at=datetime.now(UTC).replace(microsecond=0)), package
    )


def _guarded(
    file_format: Format, verify: Callable[[], tuple[VerificationReport, OfdPackage | None]]
) -> tuple[VerificationReport, OfdPackage | None]:
    try:
        return verify()
    except UnreadableFileError:
        raise
    except Exception as exc:  # a bug must not turn a hostile file into a crash of the caller
        log.exception("verification of a %s file failed unexpectedly", file_format.value)
        report = VerificationReport(
            Indication.INDETERMINATE,
            file_format,
            (),
            (f"internal error while verifying: {type(exc).__name__}: {exc}",),
        )
        return report, None


def _verify_ofd(
    data: bytes, trust: TrustStore, at: datetime | None, options: OfdOptions
) -> tuple[VerificationReport, OfdPackage | None]:
    try:
        return read_and_verify_ofd(data, trust=trust, at=at, options=options)
    except NotOfdError as exc:
        raise UnreadableFileError(str(exc)) from None


def _verify_pdf(data: bytes, trust: TrustStore, at: datetime | None) -> VerificationReport:
    try:
        from certstore.verify.pdf import verify_pdf  # written alongside the PDF rendition
    except ImportError as exc:  # the module, or a library it needs, is not installed
        missing = exc.name or str(exc)
        return VerificationReport(
            Indication.INDETERMINATE,
            Format.PDF,
            (),
            (f"PDF verification is not available in this installation ({missing} is missing)",),
        )
    report = verify_pdf(data, trust=trust, at=at)
    if _is_zip(data):
        problem = (
            "the PDF is also a ZIP archive (PDF/ZIP polyglot): an OFD reader would show other content than the "
            "verified PDF"
        )
        report = replace(
            report,
            indication=worst([report.indication, Indication.INDETERMINATE]),
            problems=(*report.problems, problem),
        )
    return report


# --- Certificate-level checks ----------------------------------------------------------------------------


def _with_certificate_checks(
    report: VerificationReport,
    certificate: CertificateReport,
    repository: RepositoryCheck | None,
    data: bytes,
    data_sm3: str,
    at: datetime | None,
    package: OfdPackage | None,
) -> VerificationReport:
    identifier = certificate.identifier
    own = certificate.checks  # the format verifier's: a copy's embedded_original
    copy = any(check.name == EMBEDDED_ORIGINAL for check in own)
    if repository is None:
        checked = replace(
            certificate,
            checks=(
                Check(STATUS, CheckResult.SKIPPED, OFFLINE_REASON),
                Check(CONTENT_MATCH, CheckResult.SKIPPED, OFFLINE_REASON),
                *own,
            ),
        )
    else:
        status_check, status, label = _status_check(repository, identifier, at)
        checked = replace(
            certificate,
            status=status,
            label=label,
            checks=(
                status_check,
                _content_check(repository, identifier, data, data_sm3, package, copy=copy),
                *own,
            ),
        )
    return replace(report, certificate=checked, indication=worst([report.indication, checked.indication]))


def _status_check(
    repository: RepositoryCheck, identifier: str, at: datetime | None
) -> tuple[Check, str | None, str | None]:
    when = "now" if at is None else f"at {at.isoformat()}"
    try:
        answer = repository.status(identifier) if at is None else repository.status(identifier, at=at)
    except Exception as exc:  # the repository's own errors (database down …): status unknown
        log.warning("repository status of %s failed: %s", identifier, exc)
        return (
            Check(STATUS, CheckResult.UNKNOWN, f"repository unreachable: {type(exc).__name__}: {exc}"),
            None,
            None,
        )
    if answer is None:
        reason = f"certificate {identifier} is not in the repository"
        return Check(STATUS, CheckResult.UNKNOWN, reason), None, None
    status, label = answer
    try:
        known = Status(status)
    except ValueError:
        reason = f"certificate {identifier}: unrecognised repository status {status!r} ({label})"
        return Check(STATUS, CheckResult.UNKNOWN, reason), status, label
    if known in _NOT_IN_FORCE:
        reason = f"certificate {identifier} is {status} ({label}) in the repository {when}"
        return Check(STATUS, CheckResult.FAILED, reason), status, label
    reason = f"certificate {identifier} is {status} ({label}) in the repository {when}"
    return Check(STATUS, CheckResult.PASSED, reason), status, label


def _content_check(
    repository: RepositoryCheck,
    identifier: str,
    data: bytes,
    data_sm3: str,
    package: OfdPackage | None,
    *,
    copy: bool,
) -> Check:
    try:
        if package is None:
            matches = repository.content_digest_matches(identifier, data, package_sm3=data_sm3)
        else:
            matches = repository.content_digest_matches(identifier, data, package_sm3=data_sm3, ofd=package)
    except Exception as exc:  # the repository's own errors: content unknown
        log.warning("repository content check of %s failed: %s", identifier, exc)
        return Check(
            CONTENT_MATCH, CheckResult.UNKNOWN, f"repository unreachable: {type(exc).__name__}: {exc}"
        )
    if matches is None:
        return Check(
            CONTENT_MATCH, CheckResult.UNKNOWN, f"the repository holds no content record of {identifier}"
        )
    if matches and copy:
        return Check(
            CONTENT_MATCH,
            CheckResult.PASSED,
            f"copy (副本) of the stored original: the embedded original (原件) is the file the repository "
            f"recorded for {identifier}, and the copy carries the record's metadata",
        )
    if matches:
        return Check(
            CONTENT_MATCH,
            CheckResult.PASSED,
            f"the file is the content the repository recorded for {identifier}",
        )
    if copy:
        return Check(
            CONTENT_MATCH,
            CheckResult.FAILED,
            f"copy (副本): its embedded original (原件) or its metadata differ from what the repository recorded "
            f"for {identifier}",
        )
    return Check(
        CONTENT_MATCH,
        CheckResult.FAILED,
        f"the file differs from the content the repository recorded for {identifier}",
    )
