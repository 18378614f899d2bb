"""The verification pipeline: one presented file in, one :class:`~certstore.verify.report.VerificationReport` out.

:func:`verify_file` is what the CLI (``certstore verify``), the API and the verification page call. It

1. refuses input it cannot even classify — empty, or neither a ZIP nor a PDF, or a ZIP without ``OFD.xml`` — with
   :class:`UnreadableFileError` (the CLI's exit code 3: "unreadable input");
2. dispatches by content, never by file name: a ZIP with OFD.xml to
   :func:`certstore.verify.ofd.verify_ofd`; ``%PDF-`` in the first KiB to ``certstore.verify.pdf.verify_pdf``
   (imported lazily; when that module is not installed the report is INDETERMINATE and says so);
3. adds the certificate-level checks ``status`` and ``content_match`` when the file names an e-certificate
   (CustomData ``ZZBS``), before the certificate checks of the format verifier (a copy's
   ``embedded_original``):

   * online (``repository`` given): status at the time asked from the repository's lifecycle events, and
     ``content_match`` — the presented file's SM3 against the stored version's (for a copy (副本), which embeds
     the stored original: its metadata must equal the record and its embedded original must be the stored file;
     for a PDF rendition, which is not stored: its signed metadata) — the reason says what was compared;
   * offline verification (``offline`` given, :class:`OfflineStatus`): status from a verified signed status
     snapshot (:mod:`certstore.verify.status_list`: versions not in force with their effective times) — its age
     is stated; a version it does not list is in force only if the file was signed by ``thisUpdate``; expiry
     from the validity end the file carries — or, without a usable snapshot, UNKNOWN "status unknown: …" so the
     file is never VALID;
     ``content_match`` SKIPPED;
   * neither: both SKIPPED — the *integrity-only* mode the repository uses on its own stored files (it knows
     their status), e.g. before certifying a copy; no entry point of a verifier uses it;
4. adds ``seal_owner`` (after ``content_match``) for an e-certificate: every seal belongs to the issuer the file
   names, registered to it and not withdrawn at the signing time; a copy's own seal is the repository's
   (:mod:`certstore.verify.seal_owner`);
5. stamps the file's size and digests and the verification time.

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
from datetime import UTC, date, datetime, timedelta
from typing import NamedTuple, Protocol, runtime_checkable

from certstore.checks import Check, CheckResult, Indication, worst
from certstore.crypto.sm3 import sm3
from certstore.crypto.trust import TrustStore
from certstore.lifecycle import Status, effective_status
from certstore.messages import Message
from certstore.packaging.ofd.reader import NotOfdError, OfdPackage
from certstore.verify.ofd import (
    DEFAULT_OPTIONS,
    EMBEDDED_ORIGINAL,
    OfdOptions,
    read_and_verify_ofd,
)
from certstore.verify.report import (
    CertificateReport,
    FileInfo,
    Format,
    VerificationReport,
)
from certstore.verify.seal_owner import SEAL_OWNER, SealLookup, SealRecord, with_seal_owner
from certstore.verify.status_list import StatusList

__all__ = [
    "NOT_ISSUED",
    "OFFLINE_REASON",
    "SEAL_OWNER",
    "STATUS_UNKNOWN",
    "ContentAnswer",
    "OfflineStatus",
    "RepositoryCheck",
    "SealLookup",
    "SealRecord",
    "UnreadableFileError",
    "VerifiedFile",
    "detect_format",
    "verify_and_read",
    "verify_file",
]

log = logging.getLogger(__name__)

STATUS = "status"
CONTENT_MATCH = "content_match"
OFFLINE_REASON = Message("reason.offline")
STATUS_UNKNOWN = "status unknown"
#: The status a repository answers for a time before the version existed (``RepositoryCheck.status``).
NOT_ISSUED = "not_issued"
#: How far a snapshot's thisUpdate may lie ahead of the verifier's clock (clock skew).
_SKEW = timedelta(minutes=5)

#: Repository statuses that end a certificate's validity (``certstore.lifecycle.Status``).
_NOT_IN_FORCE = frozenset(
    {Status.REVOKED, Status.CANCELLED, Status.ANNULLED, Status.EXPIRED, Status.SUSPENDED, Status.SUPERSEDED}
)
_PDF_SEARCH = 1024  # PDF readers accept the header within the first KiB


class UnreadableFileError(ValueError):
    """The input is not a file this verifier can read at all (CLI exit code 3). The message says why."""


class ContentAnswer(NamedTuple):
    """What a repository's ``content_comparison`` answers: the outcome of ``content_digest_matches`` and exactly
    what was compared (the ``content_match`` reason)."""

    matches: bool | None
    compared: str


@dataclass(frozen=True)
class OfflineStatus:
    """Offline verification: status comes from ``snapshot`` (verified by
    :func:`certstore.verify.status_list.read_status_list`) or is unknown; ``problem`` says why there is no
    usable snapshot (none given, refused …)."""

    snapshot: StatusList | None = None
    problem: str | None = None


@runtime_checkable
class RepositoryCheck(Protocol):
    """What the verifier asks the repository (implemented by the services layer).

    ``status`` returns (status, label) — a :class:`certstore.lifecycle.Status` value such as ``"revoked"`` and
    its Chinese label — for the certificate ``identifier``, effective now or at ``at`` when the verification is
    asked about another time (as the lifecycle events stood then; :data:`NOT_ISSUED` before the version
    existed); None when the repository does not know the identifier.
    ``content_digest_matches`` says whether ``package`` (the presented file's bytes) is the content the
    repository recorded for ``identifier`` — for a copy (副本): whether its metadata are the record's and the
    original it embeds is the stored file; None when it holds no record to compare with. A repository that also
    has ``content_comparison`` (same arguments, returning a :class:`ContentAnswer`) is asked that instead, so the
    ``content_match`` reason says what was compared. ``package_sm3`` is the package's SM3
    (hex) when the caller has it already (the pipeline hashes every file once, for the report's file identity); ``ofd`` is the OFD package the pipeline read from those bytes (None for a PDF), so
    that it need not be read again. Either may raise when the repository is unreachable; the check is then
    UNKNOWN. Optional, for ``seal_owner``: ``seal_state(es_id, at)`` — the repository's seal registry, a
    :class:`SealRecord` or None for a seal it does not know — and ``repository_organization()`` — the credit
    code of the repository, whose seal a copy (副本) carries.
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
    """OFD for a ZIP archive (also one with bytes prepended: the OFD reader refuses those, rule 1 of the
    canonical-package rule), PDF for ``%PDF-`` in the first KiB; otherwise
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
    offline: OfflineStatus | None = None,
    now: datetime | None = None,
) -> VerificationReport:
    """Verify a presented OFD or PDF file; see the module documentation for what is checked.

    ``at`` judges certificate and seal validity at that time instead of each signature's signing time, and asks
    the repository for the status at that time. Without ``repository``: ``offline`` decides the status from a
    snapshot or makes it unknown; with neither, status and content are SKIPPED (integrity only). ``now``: the
    verification time (default: this machine's clock).
    """
    return verify_and_read(
        data,
        trust=trust,
        at=at,
        repository=repository,
        file_name=file_name,
        ofd_options=ofd_options,
        offline=offline,
        now=now,
    ).report


def verify_and_read(
    data: bytes,
    *,
    trust: TrustStore,
    at: datetime | None = None,
    repository: RepositoryCheck | None = None,
    file_name: str | None = None,
    ofd_options: OfdOptions = DEFAULT_OPTIONS,
    offline: OfflineStatus | None = None,
    now: datetime | None = None,
) -> VerifiedFile:
    """:func:`verify_file`, also returning the OFD package read for the report (read once: the repository's
    content check gets it too). ``now``: the verification time (default: this machine's clock) — the report's
    ``verified_at`` and what a status snapshot's freshness is judged against."""
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
    now = (now or datetime.now(UTC)).replace(microsecond=0)
    if report.certificate is not None:
        if repository is None and offline is not None:
            report = _with_offline_status(report, report.certificate, offline, data, at, now, package)
        else:
            report = _with_certificate_checks(
                report, report.certificate, repository, data, file.sm3, at, package
            )
        report = with_seal_owner(
            report, data, package, trust=trust, at=at, now=now, options=ofd_options,
            repository=repository, offline=offline,
        )  # fmt: skip
    return VerifiedFile(replace(report, file=file, verified_at=now), package)


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


def _status_unknown(detail: str) -> Message:
    return Message("reason.status.unknown", detail=detail)


def _unreachable(exc: Exception) -> Message:
    return Message("reason.repository_unreachable", error=f"{type(exc).__name__}: {exc}")


def _status_check(
    repository: RepositoryCheck, identifier: str, at: datetime | None
) -> tuple[Check, str | None, str | None]:
    when = Message("reason.when.now") if at is None else Message("reason.when.at", time=at.isoformat())
    try:
        answer = repository.status(identifier) if at is None else repository.status(identifier, at=at)
    except Exception as exc:  # the repository's own errors (database down …): status unknown
        log.warning("repository status of %s failed: %s", identifier, exc)
        return (
            Check(STATUS, CheckResult.UNKNOWN, _unreachable(exc)),
            None,
            None,
        )
    if answer is None:
        reason = Message("reason.status.absent", identifier=identifier)
        return Check(STATUS, CheckResult.UNKNOWN, reason), None, None
    status, label = answer
    if status == NOT_ISSUED:
        reason = Message("reason.status.not_issued", identifier=identifier, when=when)
        return Check(STATUS, CheckResult.FAILED, reason), status, label
    try:
        known = Status(status)
    except ValueError:
        reason = Message(
            "reason.status.unrecognised", identifier=identifier, status=repr(status), label=label
        )
        return Check(STATUS, CheckResult.UNKNOWN, reason), status, label
    reason = Message("reason.status.is", identifier=identifier, status=status, label=label, when=when)
    if known in _NOT_IN_FORCE:
        return Check(STATUS, CheckResult.FAILED, reason), status, label
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
    # a repository that can say what it compared (``content_comparison``, returning a ContentAnswer) is asked that
    compare = getattr(repository, "content_comparison", None) or repository.content_digest_matches
    try:
        if package is None:
            matches = compare(identifier, data, package_sm3=data_sm3)
        else:
            matches = compare(identifier, data, package_sm3=data_sm3, ofd=package)
    except Exception as exc:  # the repository's own errors: content unknown
        log.warning("repository content check of %s failed: %s", identifier, exc)
        return Check(CONTENT_MATCH, CheckResult.UNKNOWN, _unreachable(exc))
    if isinstance(matches, ContentAnswer):
        result = {True: CheckResult.PASSED, False: CheckResult.FAILED, None: CheckResult.UNKNOWN}[
            matches.matches
        ]
        return Check(CONTENT_MATCH, result, matches.compared)
    if matches is None:
        return Check(
            CONTENT_MATCH, CheckResult.UNKNOWN, Message("reason.content.no_record", identifier=identifier)
        )
    if matches and copy:
        return Check(
            CONTENT_MATCH,
            CheckResult.PASSED,
            Message("reason.content.copy_matches", identifier=identifier),
        )
    if matches:
        return Check(
            CONTENT_MATCH,
            CheckResult.PASSED,
            Message("reason.content.matches", identifier=identifier),
        )
    if copy:
        return Check(
            CONTENT_MATCH,
            CheckResult.FAILED,
            Message("reason.content.copy_differs", identifier=identifier),
        )
    return Check(
        CONTENT_MATCH,
        CheckResult.FAILED,
        Message("reason.content.differs", identifier=identifier),
    )


# --- Offline status (signed status snapshot) --------------------------------------------------------------

VALID_UNTIL = "ZZYXQJZRQ"  # 证照有效期截止日期 in the file's metadata; "长期" for long-term


def _carried_valid_until(data: bytes, package: OfdPackage | None) -> tuple[bool, date | None]:
    """(known, validity end) from the metadata the file carries: (True, None) for long-term, (False, None) when
    the file does not say."""
    if package is not None:
        value = package.doc_info.custom_datas.get(VALID_UNTIL)
    else:
        try:
            from certstore.verify.pdf import signed_metadata

            value = signed_metadata(data).get(VALID_UNTIL)
        except Exception:  # no PDF support, or metadata that cannot be read: the end is unknown
            value = None
    if value is None:
        return False, None
    if value.strip() in ("长期", ""):
        return True, None
    try:
        return True, date.fromisoformat(value.strip())
    except ValueError:
        return False, None


def _describe(snapshot: StatusList, now: datetime) -> Message:
    header = snapshot.header
    age = max(timedelta(0), now - header.this_update)
    hours, rest = divmod(int(age.total_seconds()), 3600)
    return Message(
        "reason.snapshot.source",
        sequence=header.sequence,
        issuer=header.issuer,
        time=header.this_update.isoformat(),
        age=f"{hours}h{rest // 60:02d}m",
        time2=header.next_update.isoformat(),
    )


def _signed_at(report: VerificationReport) -> datetime | None:
    """The earliest signing time the file's signatures state: the version existed from then at the latest."""
    times = [s.signing_time for s in report.signatures if s.signing_time is not None]
    return min(times) if times else None


def _offline_status_check(
    offline: OfflineStatus,
    identifier: str,
    data: bytes,
    at: datetime | None,
    now: datetime,
    package: OfdPackage | None,
    signed_at: datetime | None,
) -> tuple[Check, str | None, str | None]:
    snapshot = offline.snapshot
    if snapshot is None:
        problem = offline.problem or "offline, and no status snapshot was given"
        return Check(STATUS, CheckResult.UNKNOWN, _status_unknown(problem)), None, None
    header, source = snapshot.header, _describe(snapshot, now)
    if now > header.next_update:
        reason = _status_unknown(Message("reason.status.snapshot_expired", source=source))
        return Check(STATUS, CheckResult.UNKNOWN, reason), None, None
    if now + _SKEW < header.this_update:
        reason = _status_unknown(Message("reason.status.snapshot_ahead", source=source))
        return Check(STATUS, CheckResult.UNKNOWN, reason), None, None
    if at is not None and at > header.next_update:
        reason = _status_unknown(Message("reason.status.snapshot_after", time=at.isoformat(), source=source))
        return Check(STATUS, CheckResult.UNKNOWN, reason), None, None
    if signed_at is None:
        reason = _status_unknown(
            Message("reason.status.snapshot_no_time", source=source, identifier=identifier)
        )
        return Check(STATUS, CheckResult.UNKNOWN, reason), None, None
    answer = snapshot.lookup(identifier, signed_at=signed_at, at=at)
    if answer.status is None:
        found = Message(
            "reason.status.snapshot_unknown", identifier=identifier, detail=answer.unknown, source=source
        )
        reason = _status_unknown(found)
        return Check(STATUS, CheckResult.UNKNOWN, reason), None, None
    asked = now if at is None else at
    known, valid_until = _carried_valid_until(data, package)
    stored = answer.status
    status = effective_status(stored, valid_until, asked) if known else stored
    when = Message("reason.when.now") if at is None else Message("reason.when.at", time=at.isoformat())
    parts = [
        Message(
            "reason.status.by_snapshot",
            identifier=identifier,
            status=status.value,
            label=status.label,
            when=when,
            source=source,
        )
    ]
    if answer.since is not None:
        since_iso = answer.since.isoformat()
        parts.append(
            Message("reason.status.stored_since", status=stored.value, since=since_iso)
            if answer.until is None
            else Message(
                "reason.status.stored_between",
                status=stored.value,
                since=since_iso,
                until=answer.until.isoformat(),
            )
        )
    elif at is None or at >= header.this_update:
        parts.append(Message("reason.status.not_listed"))
    if answer.later is not None:
        later, since = answer.later
        parts.append(
            Message(
                "reason.status.listed_later", status=later.value, label=later.label, since=since.isoformat()
            )
        )
    if not known and stored in (Status.VALID, Status.SUSPENDED):
        parts.append(Message("reason.status.no_validity_end"))
    result = CheckResult.FAILED if status in _NOT_IN_FORCE else CheckResult.PASSED
    return Check(STATUS, result, "; ".join(parts)), status.value, status.label


def _with_offline_status(
    report: VerificationReport,
    certificate: CertificateReport,
    offline: OfflineStatus,
    data: bytes,
    at: datetime | None,
    now: datetime,
    package: OfdPackage | None,
) -> VerificationReport:
    status_check, status, label = _offline_status_check(
        offline, certificate.identifier, data, at, now, package, _signed_at(report)
    )
    content = Check(CONTENT_MATCH, CheckResult.SKIPPED, Message("reason.offline.content"))
    checked = replace(
        certificate, status=status, label=label, checks=(status_check, content, *certificate.checks)
    )
    return replace(report, certificate=checked, indication=worst([report.indication, checked.indication]))
