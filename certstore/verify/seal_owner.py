"""``seal_owner``: every seal on an e-certificate file belongs to the issuer the file names (印章归属).

The certificate-level check :mod:`certstore.verify.pipeline` adds after ``content_match`` for a file that names an
e-certificate (``ZZBS``):

* the issuer is the one the metadata name (``ZZBFJGDM`` credit code, ``ZZBFJG`` name), which must agree with the
  issuer segment of the identifier;
* every signature's signer certificate belongs to that organisation (:func:`certstore.seal.owner.ties`: the
  certificate's organizationIdentifier, else its organisation name);
* when a seal registry answers (online: the repository's ``seal_state``; offline: the status snapshot's withdrawn
  seals) the seal is registered to that organisation and was not suspended or revoked at the signing time. A seal
  withdrawn *after* the signing time passes with a warning when a verified time-stamp token vouches for that time,
  and is UNKNOWN when only the signer's own clock states it;
* a copy (副本) is the one named exception: its own seal is the repository's, the original it embeds the issuer's.

FAILED makes the file INVALID (another organisation's seal, a seal withdrawn before the signing time); UNKNOWN
makes it INDETERMINATE (nothing to tie the signer to, the registry unreachable).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING, NamedTuple

from certstore.checks import Check, CheckResult, worst, worst_result
from certstore.crypto.trust import TrustStore
from certstore.identifiers import CertificateIdentifier, IdentifierError
from certstore.messages import Message
from certstore.packaging.ofd.reader import OfdFormatError, OfdPackage, OfdReader
from certstore.seal.owner import ties
from certstore.verify.ofd import EMBEDDED_ORIGINAL, OfdOptions, embedded_originals, verify_ofd_package
from certstore.verify.report import SignatureReport, SignerSummary, VerificationReport
from certstore.verify.status_list import StatusList

if TYPE_CHECKING:
    from certstore.verify.pipeline import OfflineStatus, RepositoryCheck

__all__ = ["SEAL_OWNER", "SealLookup", "SealRecord", "with_seal_owner"]

log = logging.getLogger(__name__)
CONTENT_MATCH = "content_match"  # the check seal_owner follows (certstore.verify.pipeline)

SEAL_OWNER = "seal_owner"
ISSUER_CODE_FIELD = "ZZBFJGDM"  # 证照颁发机构代码: the issuer's unified social credit code
ISSUER_NAME_FIELD = "ZZBFJG"  # 证照颁发机构: the issuer's name
_SEAL_VALID = "valid"


class SealRecord(NamedTuple):
    """What a seal registry says of a seal (GB/T 38540 ES ID) at a time: ``status`` ("valid", "suspended",
    "revoked") since ``effective_at`` (None: valid, no change known), and the organisation it is registered to
    (None when the source does not say — a status snapshot lists states only)."""

    status: str
    effective_at: datetime | None = None
    owner_code: str | None = None
    owner_name: str | None = None


#: A seal registry's answer for (ES ID, time); None when it does not know the seal.
SealLookup = Callable[[str, datetime], "SealRecord | None"]


def _snapshot_seals(snapshot: StatusList) -> SealLookup:
    """A snapshot lists each withdrawn seal's state since when (as of its thisUpdate): before that time the seal
    was valid; a seal it does not list was valid as of thisUpdate."""

    def lookup(es_id: str, when: datetime) -> SealRecord | None:
        state = snapshot.seal_state(es_id)
        if state is None or when < state.effective_at:
            return SealRecord(_SEAL_VALID)
        return SealRecord(state.status, state.effective_at)

    return lookup


def _owner_phrase(signer: SignerSummary, code: str | None, name: str | None) -> tuple[bool | None, str]:
    """Whether the signer certificate belongs to the organisation (``code``, ``name``) — True, False, or None when
    it cannot be told (:func:`certstore.seal.owner.ties`) — and by what."""
    tied = ties(signer.organization_identifier, signer.organization, code, name)
    if signer.organization_identifier is not None and code is not None:
        return tied, f"organizationIdentifier {signer.organization_identifier}"
    if signer.organization is not None and name is not None:
        return tied, f"organisation name {signer.organization!r} (no credit code to compare)"
    return tied, "certificate that names no organisation the file's issuer can be compared with"


def _describe_owner(signer: SignerSummary) -> str:
    organisation = " ".join(
        part
        for part in (
            signer.organization,
            f"({signer.organization_identifier})" if signer.organization_identifier else None,
        )
        if part
    )
    return organisation or "no organisation"


def _judge_signature(
    signature: SignatureReport,
    code: str | None,
    name: str | None,
    whose: str,
    lookup: SealLookup | None,
    judged_at: datetime,
) -> tuple[CheckResult, str, tuple[str, ...]]:
    """One signature: its signer certificate belongs to the expected organisation (``whose``: "the issuer",
    "the repository"), and its seal is registered to it and was not withdrawn at the signing time."""
    where = f"{signature.id}"
    signer = signature.signer
    if signer is None:
        return CheckResult.UNKNOWN, Message("reason.owner.no_signer", where=where, whose=whose), ()
    expected = f"{whose} {name or ''} ({code or 'no credit code'})".replace("  ", " ")
    owned, tie = _owner_phrase(signer, code, name)
    if owned is None:
        return (
            CheckResult.UNKNOWN,
            f"{where}: the signer certificate {signer.subject!r} cannot be tied to {expected}: {tie}",
            (),
        )
    if not owned:
        return (
            CheckResult.FAILED,
            f"{where}: the signer certificate {signer.subject!r} belongs to {_describe_owner(signer)}, not to "
            f"{expected}",
            (),
        )
    seal = signature.seal
    text = f"{where}: signer of {expected} by its {tie}"
    if seal is None or lookup is None:
        return CheckResult.PASSED, text, ()
    label = Message("reason.owner.seal_label", quoted=repr(seal.name), id=seal.id)
    now = lookup(seal.id, judged_at)
    if now is None:
        return CheckResult.PASSED, f"{text}; {Message('reason.owner.seal_unregistered', label=label)}", ()
    if now.owner_code is not None and (code is None or now.owner_code.upper() != code.strip().upper()):
        return (
            CheckResult.FAILED,
            f"{where}: {label} is registered to {now.owner_name or ''} ({now.owner_code}), not to {expected}",
            (),
        )
    signed = signature.signing_time
    then = None if signed is None else lookup(seal.id, signed)
    if then is not None and then.status != _SEAL_VALID:
        since = "" if then.effective_at is None else f" since {then.effective_at.isoformat()}"
        return (
            CheckResult.FAILED,
            f"{where}: {label} was {then.status}{since}, before the signing time {signed.isoformat()}",  # type: ignore[union-attr]
            (),
        )
    if now.status == _SEAL_VALID:
        return CheckResult.PASSED, f"{text}; {Message('reason.owner.seal_valid', label=label)}", ()
    since = "" if now.effective_at is None else f" since {now.effective_at.isoformat()}"
    if signed is None:
        return (
            CheckResult.UNKNOWN,
            f"{where}: {label} is {now.status}{since} and the signature states no signing time",
            (),
        )
    vouched = any(c.name == "timestamp" and c.result is CheckResult.PASSED for c in signature.checks)
    if vouched:
        warning = (
            f"{label} is {now.status}{since}, after the signing time {signed.isoformat()} vouched for by a "
            "verified time-stamp token"
        )
        return CheckResult.PASSED, f"{text}; {warning}", (warning,)
    return (
        CheckResult.UNKNOWN,
        f"{where}: {label} is {now.status}{since}; the signing time {signed.isoformat()} is the signer's own "
        "clock (no verified time-stamp token), so whether the seal was used before that cannot be told",
        (),
    )


def _issuer_of(data: bytes, package: OfdPackage | None) -> tuple[str | None, str | None]:
    """(credit code, name) of the issuer the file's metadata name (``ZZBFJGDM``, ``ZZBFJG``)."""
    if package is not None:
        metadata = package.doc_info.custom_datas
    else:
        try:
            from certstore.verify.pdf import signed_metadata

            metadata = signed_metadata(data)
        except Exception:  # no PDF support, or metadata that cannot be read: the issuer is unknown
            metadata = {}
    code, name = metadata.get(ISSUER_CODE_FIELD), metadata.get(ISSUER_NAME_FIELD)
    return (code.strip() if code and code.strip() else None), (
        name.strip() if name and name.strip() else None
    )


def _embedded_report(
    package: OfdPackage, trust: TrustStore, at: datetime | None, options: OfdOptions
) -> VerificationReport | None:
    """The report of the one original (原件) a copy embeds (None when there is not exactly one readable)."""
    originals = embedded_originals(package)
    if len(originals) != 1:
        return None
    try:
        original = OfdReader.open(originals[0][1], limits=options.limits)
    except OfdFormatError:
        return None
    return verify_ofd_package(original, trust=trust, at=at, options=options)


def _seal_owner_check(
    report: VerificationReport,
    data: bytes,
    package: OfdPackage | None,
    *,
    trust: TrustStore,
    at: datetime | None,
    now: datetime,
    options: OfdOptions,
    lookup: SealLookup | None,
    repository_code: str | None,
    copy: bool,
) -> Check:
    """``seal_owner`` (see the module docstring): every signature of the file is its issuer's — a copy's own
    seal the repository's, the original it embeds the issuer's — and no seal was withdrawn at the signing time."""
    code, name = _issuer_of(data, package)
    assert report.certificate is not None
    try:  # the identifier (证照标识) names the issuer's code too: 1.2.156.3005.2.<type>.<issuer>.<serial>…
        named = CertificateIdentifier.parse(report.certificate.identifier, strict_check=False).issuer_code
    except IdentifierError:
        named = None
    if code is not None and named is not None and code.upper() != named.upper():
        reason = (
            f"the metadata name the issuer {code} ({ISSUER_CODE_FIELD}) but the identifier "
            f"{report.certificate.identifier} names {named}"
        )
        return Check(SEAL_OWNER, CheckResult.FAILED, reason)
    code = code or named
    if code is None and name is None:
        reason = (
            f"neither the metadata ({ISSUER_CODE_FIELD}/{ISSUER_NAME_FIELD}) nor the identifier name the issuer: "
            "whose seal to expect is unknown"
        )
        return Check(SEAL_OWNER, CheckResult.UNKNOWN, reason)
    judged_at = at or now
    judged: list[tuple[CheckResult, str, tuple[str, ...]]] = []
    warnings: list[str] = []
    if copy:
        if repository_code is None:
            warnings.append(
                "the copy's own seal (副本) was not tied to the repository: its credit code is not known here "
                "(verify online, or offline with a status snapshot)"
            )
        else:
            judged.extend(
                _judge_signature(s, repository_code, None, "the repository", lookup, judged_at)
                for s in report.signatures
            )
        original = None if package is None else _embedded_report(package, trust, at, options)
        if original is None:
            judged.append((CheckResult.UNKNOWN, Message("reason.owner.original_unreadable"), ()))
        else:
            judged.extend(
                (result, f"original {text}", notes)
                for result, text, notes in (
                    _judge_signature(s, code, name, "the issuer", lookup, judged_at)
                    for s in original.signatures
                )
            )
    else:
        judged.extend(
            _judge_signature(s, code, name, "the issuer", lookup, judged_at) for s in report.signatures
        )
    if not judged:
        return Check(SEAL_OWNER, CheckResult.UNKNOWN, Message("reason.owner.no_signature"), tuple(warnings))
    result = worst_result(r for r, _, _ in judged)
    shown = (
        [text for r, text, _ in judged if r is result]
        if result is not CheckResult.PASSED
        else [t for _, t, _ in judged]
    )
    warnings.extend(w for _, _, notes in judged for w in notes)
    return Check(SEAL_OWNER, result, "; ".join(shown), tuple(warnings))


def with_seal_owner(
    report: VerificationReport,
    data: bytes,
    package: OfdPackage | None,
    *,
    trust: TrustStore,
    at: datetime | None,
    now: datetime,
    options: OfdOptions,
    repository: RepositoryCheck | None,
    offline: OfflineStatus | None,
) -> VerificationReport:
    """Add ``seal_owner`` to the certificate-level checks, after ``content_match``. The seal registry: the
    repository's (online; its optional ``seal_state(es_id, at)`` answering a :class:`SealRecord`), else the status
    snapshot's withdrawn seals (offline); the repository's credit code (a copy's own seal): the repository's
    optional ``repository_organization()`` online, the snapshot signer's organizationIdentifier offline."""
    certificate = report.certificate
    assert certificate is not None
    lookup: SealLookup | None = None
    repository_code: str | None = None
    if repository is not None:
        lookup = getattr(repository, "seal_state", None)
        organization = getattr(repository, "repository_organization", None)
        try:
            repository_code = None if organization is None else organization()
        except Exception as exc:  # the repository's own errors: the copy's seal is not tied
            log.warning("repository organisation unavailable: %s", exc)
    elif offline is not None and offline.snapshot is not None:
        lookup = _snapshot_seals(offline.snapshot)
        repository_code = offline.snapshot.signer.organization_identifier
    copy = any(check.name == EMBEDDED_ORIGINAL for check in certificate.checks)
    try:
        check = _seal_owner_check(
            report, data, package, trust=trust, at=at, now=now, options=options, lookup=lookup,
            repository_code=repository_code, copy=copy,
        )  # fmt: skip
    except Exception as exc:  # the registry unreachable …: the owner is unknown, never a crash
        log.warning("seal_owner of %s failed: %s", certificate.identifier, exc)
        check = Check(
            SEAL_OWNER,
            CheckResult.UNKNOWN,
            Message("reason.owner.registry_unreachable", error=f"{type(exc).__name__}: {exc}"),
        )
    checks = list(certificate.checks)
    names = [c.name for c in checks]
    position = names.index(CONTENT_MATCH) + 1 if CONTENT_MATCH in names else 0
    checks.insert(position, check)
    checked = replace(certificate, checks=tuple(checks))
    return replace(report, certificate=checked, indication=worst([report.indication, checked.indication]))
