"""Verifying OFD files (GB/T 33190 packages with GB/T 38540 / GM/T 0031 seals or GB/T 35275 signatures).

Every signature of every document runs the same explicit, ordered steps; each yields a named
:class:`~certstore.checks.Check` whose reason names the file, field or certificate concerned (STANDARDS §2.5).

``Type="Seal"`` (安全签章):

1. ``package`` — the signature's entry in Signatures.xml, its Signature.xml (well-formed, one SignedInfo with one
   References, one SignedValue), SignedValue.dat present and a readable SES_Signature (§1.8).
2. ``references`` — every Reference's CheckValue against the digest of the named file (CheckMethod
   ``1.2.156.10197.1.401`` / ``SM3`` in any case, ``MD5`` and ``SHA1`` per schema; ``1.2.156.10197.1.401.2`` only as
   SM3(Z_A ‖ file) with the signer key when :attr:`OfdOptions.sm3_with_z_check_values` is set, else UNKNOWN).
3. ``data_hash`` — TBS_Sign.dataHash = SM3(exact bytes of Signature.xml).
4. ``property_info`` — TBS_Sign.propertyInfo designates this Signature.xml (GB/T 38540 §7.3 g).
5. ``seal_signature``, 6. ``seal_maker`` (the seal was made by a seal maker), 7. ``seal_copy`` (a ``Seal.esl``
   named by ``<Seal>`` is byte-identical to the seal inside the signature), 8. ``seal_validity``,
   9. ``signer_in_seal``, 10. ``signer_chain``, 11. ``signature``, 12. ``signing_time``, 13. ``timestamp`` — from
   :func:`certstore.seal.verify_seal_signature`.

``Type="Sign"`` (纯数字签名): ``package``, ``references``, then ``data_hash``, ``signer_chain``, ``signature``,
``signing_time``, ``timestamp`` from :func:`certstore.verify.sign.verify_sign_value`.

The kind of a signature is decided by the structure of SignedValue.dat, not by the ``Type`` attribute (which sits
in the unprotected Signatures.xml); a contradiction is reported as a warning.

File-level findings (the report's ``problems``): tolerated deviations of the package; structure failures in the
document's XML parts (INVALID); and **coverage** (:mod:`certstore.verify.coverage`, rule 3 of the canonical-package
rule): a package file that no signature's References protect — other than the signature files themselves — makes
the file INDETERMINATE, and INVALID when it shadows a protected file under a resolution rule some reader uses.
Rules 1 and 2 (one archive, canonical names) are the reader's: a package that breaks them is refused (INVALID).

**Copies (副本).** A copy made by the repository (:mod:`certstore.services.copies`) is a document of its own that
embeds the issuer-sealed original (原件) as an attachment with ``Usage="original"`` and ``Format="ofd"``
(:func:`embedded_originals`). For such a file the report's ``certificate`` carries one more check,
``embedded_original``: the embedded original, verified on its own with the same trust, anchor time and options,
is VALID, names the same certificate (``ZZBS``) and carries the same metadata (every CustomData of the original
equals the copy's). It is FAILED when the original is INVALID, names another certificate or other metadata, or
when a copy embeds more than one original; UNKNOWN when the original's verification is INDETERMINATE.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import posixpath
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from certstore.checks import Check, CheckResult, Indication, worst
from certstore.crypto import oids
from certstore.crypto.sm2 import SM2PublicKey
from certstore.crypto.sm3 import sm3
from certstore.crypto.trust import TrustStore
from certstore.crypto.x509 import Certificate
from certstore.messages import Message
from certstore.packaging.ofd.reader import (
    DEFAULT_LIMITS,
    Limits,
    NotOfdError,
    OfdFormatError,
    OfdPackage,
    OfdReader,
    OfdSignature,
    local_name,
    resolve_location,
)
from certstore.seal import SealSignature, verify_seal_signature
from certstore.verify.coverage import coverage_findings
from certstore.verify.report import (
    CertificateReport,
    Format,
    SealSummary,
    SignatureKind,
    SignatureReport,
    SignerSummary,
    VerificationReport,
    overall_indication,
)
from certstore.verify.sign import (
    SignedValueKind,
    classify_signed_value,
    parse_signature_date_time,
    verify_sign_value,
)

__all__ = [
    "CERTIFICATE_IDENTIFIER_FIELD",
    "EMBEDDED_ORIGINAL",
    "ORIGINAL_ATTACHMENT_FORMAT",
    "ORIGINAL_ATTACHMENT_USAGE",
    "SEAL_CHECKS",
    "SIGN_CHECKS",
    "OfdOptions",
    "embedded_originals",
    "read_and_verify_ofd",
    "verify_ofd",
    "verify_ofd_package",
]

#: The CustomData (OFD.xml DocInfo) that carries the e-certificate identifier (证照标识) in certstore files.
CERTIFICATE_IDENTIFIER_FIELD = "ZZBS"

SM3_WITH_Z = "1.2.156.10197.1.401.2"

#: Attachment/@Usage and @Format of the issuer-sealed original (原件) that a copy (副本) embeds.
ORIGINAL_ATTACHMENT_USAGE = "original"
ORIGINAL_ATTACHMENT_FORMAT = "ofd"
#: The certificate-level check of a copy: its embedded original verifies and is the same certificate.
EMBEDDED_ORIGINAL = "embedded_original"

PACKAGE = "package"
REFERENCES = "references"
PROPERTY_INFO = "property_info"
SEAL_COPY = "seal_copy"

#: The checks of a Type="Seal" and of a Type="Sign" signature, in report order.
SEAL_CHECKS = (
    PACKAGE,
    REFERENCES,
    "data_hash",
    PROPERTY_INFO,
    "seal_signature",
    "seal_maker",
    SEAL_COPY,
    "seal_validity",
    "signer_in_seal",
    "signer_chain",
    "signature",
    "signing_time",
    "timestamp",
)
SIGN_CHECKS = (PACKAGE, REFERENCES, "data_hash", "signer_chain", "signature", "signing_time", "timestamp")
_SES_CHECKS = tuple(
    name for name in SEAL_CHECKS if name not in (PACKAGE, REFERENCES, PROPERTY_INFO, SEAL_COPY)
)


@dataclass(frozen=True)
class OfdOptions:
    """Knobs of OFD verification.

    ``sign_certificates``: signer certificates known out of band — the only way to verify a raw ``Type="Sign"``
    SM2 signature. ``sm3_with_z_check_values``: read CheckMethod ``1.2.156.10197.1.401.2`` as SM3(Z_A ‖ file) with
    the signer's key (dms360 iOFD); off by default because GM/T 0006 assigns that OID to keyed SM3.
    """

    sign_certificates: tuple[Certificate, ...] = ()
    sm3_with_z_check_values: bool = False
    limits: Limits = field(default=DEFAULT_LIMITS)


DEFAULT_OPTIONS = OfdOptions()


def verify_ofd(
    data: bytes, *, trust: TrustStore, at: datetime | None = None, options: OfdOptions = DEFAULT_OPTIONS
) -> VerificationReport:
    """Read ``data`` as an OFD package and verify it. A package the reader refuses yields an INVALID report whose
    problem names the reason; :class:`~certstore.packaging.ofd.reader.NotOfdError` (not a ZIP, or no OFD.xml)
    propagates: that input is not an OFD file at all."""
    return read_and_verify_ofd(data, trust=trust, at=at, options=options)[0]


def read_and_verify_ofd(
    data: bytes, *, trust: TrustStore, at: datetime | None = None, options: OfdOptions = DEFAULT_OPTIONS
) -> tuple[VerificationReport, OfdPackage | None]:
    """:func:`verify_ofd`, also returning the package it read (None when the reader refused it), so that a caller
    showing or copying the file does not read it a second time."""
    try:
        package = OfdReader.open(data, limits=options.limits)
    except NotOfdError:
        raise
    except OfdFormatError as exc:
        return VerificationReport(Indication.INVALID, Format.OFD, (), (f"package refused: {exc}",)), None
    return verify_ofd_package(package, trust=trust, at=at, options=options), package


def verify_ofd_package(
    package: OfdPackage,
    *,
    trust: TrustStore,
    at: datetime | None = None,
    options: OfdOptions = DEFAULT_OPTIONS,
) -> VerificationReport:
    """Verify every signature of ``package`` and the package's coverage; the report's ``certificate`` carries the
    identifier from CustomData ``ZZBS`` (without repository checks: the pipeline adds those)."""
    return _verify_package(package, trust=trust, at=at, options=options, nested=False)


def _verify_package(
    package: OfdPackage, *, trust: TrustStore, at: datetime | None, options: OfdOptions, nested: bool
) -> VerificationReport:
    """:func:`verify_ofd_package`; ``nested`` for an original embedded in a copy (whose own attachments are not
    looked into: one level of embedding is all a copy has)."""
    reports: list[SignatureReport] = []
    digests = _Digests(package)
    for document in package.documents:
        for position, signature in enumerate(document.signatures):
            later = document.signatures[position + 1 :]
            reports.append(_verify_signature(signature, digests, later, trust, at, options))
    problems, file_level = _file_findings(package)
    identifier = package.doc_info.custom_datas.get(CERTIFICATE_IDENTIFIER_FIELD)
    certificate = None
    if identifier:
        originals = () if nested else embedded_originals(package)
        checks = (_original_check(package, originals, trust, at, options),) if originals else ()
        certificate = CertificateReport(identifier, checks=checks)
    return VerificationReport(
        indication=overall_indication(reports, file_level=file_level, certificate=certificate),
        format=Format.OFD,
        signatures=tuple(reports),
        problems=tuple(problems),
        certificate=certificate,
    )


# --- A copy's embedded original ---------------------------------------------------------------------------


def embedded_originals(package: OfdPackage) -> tuple[tuple[str, bytes], ...]:
    """(package path, bytes) of every attachment that is an embedded original (原件) — ``Usage="original"``,
    ``Format="ofd"`` in a document's attachment list — in document and list order; empty for a file that is not
    a copy. Unreadable lists and locations outside the package are passed over (the reader reports them)."""
    found: list[tuple[str, bytes]] = []
    for document in package.documents:
        try:
            root = package.read_only_xml(document.root_path)
        except OfdFormatError:
            continue
        base = posixpath.dirname(document.root_path)
        for element in root:
            if local_name(element) != "Attachments" or not (element.text or "").strip():
                continue
            try:
                list_path = resolve_location(element.text or "", base)
                listing = package.read_only_xml(list_path)
            except OfdFormatError:
                continue
            list_base = posixpath.dirname(list_path)
            for attachment in listing:
                if (
                    local_name(attachment) != "Attachment"
                    or (attachment.get("Usage") or "").strip() != ORIGINAL_ATTACHMENT_USAGE
                    or (attachment.get("Format") or "").strip().lower() != ORIGINAL_ATTACHMENT_FORMAT
                ):
                    continue
                for location in attachment:
                    if local_name(location) != "FileLoc" or not (location.text or "").strip():
                        continue
                    try:
                        path = resolve_location(location.text or "", list_base)
                    except OfdFormatError:
                        continue
                    if path in package.files:
                        found.append((path, package.files[path]))
    return tuple(found)


def _original_check(
    copy: OfdPackage,
    originals: Sequence[tuple[str, bytes]],
    trust: TrustStore,
    at: datetime | None,
    options: OfdOptions,
) -> Check:
    """``embedded_original``: the one original a copy embeds verifies on its own and is the copy's certificate."""
    if len(originals) > 1:
        paths = ", ".join(f"/{path}" for path, _ in originals)
        return Check(
            EMBEDDED_ORIGINAL,
            CheckResult.FAILED,
            Message("reason.original.many", count=len(originals), paths=paths),
        )
    path, data = originals[0]
    where = Message("reason.original.where", path=path)
    try:
        original = OfdReader.open(data, limits=options.limits)
    except OfdFormatError as exc:
        return Check(
            EMBEDDED_ORIGINAL,
            CheckResult.FAILED,
            Message("reason.original.unreadable", where=where, error=str(exc)),
        )
    report = _verify_package(original, trust=trust, at=at, options=options, nested=True)
    seals = "; ".join(
        f"{s.id} {s.indication.value}"
        + (f" seal {s.seal.name!r}" if s.seal else "")
        + (f" by {s.signer.subject!r}" if s.signer else "")
        for s in report.signatures
    )
    summary = f"{where}: {report.indication.value} ({seals or 'no signature'})"
    carried = copy.doc_info.custom_datas
    theirs = original.doc_info.custom_datas
    identifier = carried.get(CERTIFICATE_IDENTIFIER_FIELD)
    if theirs.get(CERTIFICATE_IDENTIFIER_FIELD) != identifier:
        return Check(
            EMBEDDED_ORIGINAL,
            CheckResult.FAILED,
            f"{summary}, but it is certificate {theirs.get(CERTIFICATE_IDENTIFIER_FIELD)!r}, not the copy's "
            f"{identifier!r}",
        )
    differing = sorted(name for name, value in theirs.items() if carried.get(name) != value)
    if differing:
        return Check(
            EMBEDDED_ORIGINAL,
            CheckResult.FAILED,
            f"{summary}, but the copy's metadata differ from the original's: {', '.join(differing)}",
        )
    if report.indication is Indication.VALID:
        result = CheckResult.PASSED
        tail = f"; {Message('reason.original.carried', identifier=identifier)}"
    elif report.indication is Indication.INVALID:
        result = CheckResult.FAILED
        tail = "; the copy is of a broken original: " + "; ".join(_failures(report)[:3])
    else:
        result = CheckResult.UNKNOWN
        tail = "; the original could not be established: " + "; ".join(_failures(report)[:3])
    return Check(EMBEDDED_ORIGINAL, result, summary + tail)


def _failures(report: VerificationReport) -> list[str]:
    """The reasons of a report's failed and unknown checks (then its problems), for a one-line summary."""
    reasons = [
        f"{s.id} {c.name}: {c.reason}"
        for s in report.signatures
        for c in s.checks
        if c.result in (CheckResult.FAILED, CheckResult.UNKNOWN)
    ]
    return reasons + list(report.problems)


# --- One signature ---------------------------------------------------------------------------------------


def _verify_signature(
    signature: OfdSignature,
    digests: _Digests,
    later: Sequence[OfdSignature],
    trust: TrustStore,
    at: datetime | None,
    options: OfdOptions,
) -> SignatureReport:
    value = signature.signed_value
    value_kind = classify_signed_value(value) if value is not None else None
    if value_kind in (SignedValueKind.CMS, SignedValueKind.RAW) or (
        value_kind is None and signature.type == "Sign"
    ):
        return _verify_sign(signature, digests, later, trust, at, options, value_kind)
    return _verify_seal(signature, digests, later, trust, at, options)


def _type_warning(signature: OfdSignature, kind: SignatureKind) -> tuple[str, ...]:
    if signature.signed_value is None:
        return ()
    if kind is SignatureKind.SIGN and signature.type == "Seal":
        return (
            f'Type is {signature.type!r} but SignedValue.dat holds a digital signature; verified as Type="Sign"',
        )
    if kind is SignatureKind.SEAL and signature.type == "Sign":
        return (
            "Type is 'Sign' but SignedValue.dat is not a digital signature; verified as a seal signature",
        )
    return ()


def _not_run(names: Sequence[str], reason: str) -> tuple[Check, ...]:
    return tuple(Check(name, CheckResult.SKIPPED, reason) for name in names)


def _verify_seal(
    signature: OfdSignature,
    digests: _Digests,
    later: Sequence[OfdSignature],
    trust: TrustStore,
    at: datetime | None,
    options: OfdOptions,
) -> SignatureReport:
    location = signature.path or signature.base_loc
    ses = None
    if signature.signed_value is not None and signature.xml is not None:
        ses = verify_seal_signature(signature.signed_value, data=signature.xml, trust=trust, at=at)
    parsed = None if ses is None else ses.signature
    value_structure = None if ses is None else ses.check("structure")
    package_check = _package_check(signature, value_structure, _type_warning(signature, SignatureKind.SEAL))
    key = None if parsed is None else parsed.signer_certificate.public_key
    references = _references_check(signature, digests, later, key, options)
    if ses is None or parsed is None:
        why = Message("reason.not_run.signed_value" if ses is not None else "reason.not_run.unavailable")
        ses_checks = {name: Check(name, CheckResult.SKIPPED, why) for name in _SES_CHECKS}
        extra = _not_run((PROPERTY_INFO, SEAL_COPY), why)
    else:
        ses_checks = {check.name: check for check in ses.checks}
        data_hash = ses_checks["data_hash"]
        ses_checks["data_hash"] = Check(
            data_hash.name,
            data_hash.result,
            Message("reason.at", where=f"/{signature.path}", detail=data_hash.reason),
            data_hash.warnings,
        )
        extra = (
            _property_info_check(signature, parsed),
            _seal_copy_check(signature, digests.package, parsed),
        )
    by_name = {PACKAGE: package_check, REFERENCES: references, **ses_checks, **{c.name: c for c in extra}}
    return SignatureReport(
        id=signature.id,
        kind=SignatureKind.SEAL,
        checks=tuple(by_name[name] for name in SEAL_CHECKS),
        signing_time=None if ses is None else ses.signing_time,
        signer=None if parsed is None else SignerSummary.of(parsed.signer_certificate),
        seal=None
        if parsed is None
        else SealSummary(parsed.seal.es_id, parsed.seal.name, parsed.seal.version),
        location=location,
    )


def _verify_sign(
    signature: OfdSignature,
    digests: _Digests,
    later: Sequence[OfdSignature],
    trust: TrustStore,
    at: datetime | None,
    options: OfdOptions,
    value_kind: SignedValueKind | None,
) -> SignatureReport:
    location = signature.path or signature.base_loc
    warnings = list(_type_warning(signature, SignatureKind.SIGN))
    if signature.signed_value is None or signature.xml is None or value_kind is None:
        why = "not run: Signature.xml or SignedValue.dat is unavailable (see package)"
        checks = (
            _package_check(signature, None, tuple(warnings)),
            _references_check(signature, digests, later, None, options),
            *_not_run(SIGN_CHECKS[2:], why),
        )
        return SignatureReport(signature.id, SignatureKind.SIGN, checks, location=location)
    info = signature.signed_info
    claimed, note = parse_signature_date_time(None if info is None else info.signature_date_time)
    if claimed is None and note:
        warnings.append(note)
    result = verify_sign_value(
        signature.signed_value,
        data=signature.xml,
        trust=trust,
        at=at,
        claimed_time=claimed,
        sign_certificates=options.sign_certificates,
    )
    key = None if result.signer is None else result.signer.public_key
    checks = (
        _package_check(signature, result.structure, tuple(warnings)),
        _references_check(signature, digests, later, key, options),
        *result.checks,
    )
    signer = result.signer
    return SignatureReport(
        id=signature.id,
        kind=SignatureKind.SIGN,
        checks=checks,
        signing_time=result.signing_time,
        signer=SignerSummary.of(signer),
        location=location,
    )


# --- package ---------------------------------------------------------------------------------------------


def _package_check(signature: OfdSignature, value_structure: Check | None, extra: tuple[str, ...]) -> Check:
    errors = list(signature.errors)
    if value_structure is not None and value_structure.failed:
        errors.append(f"{signature.signed_value_path}: {value_structure.reason}")
    warnings = (*signature.warnings, *(value_structure.warnings if value_structure else ()), *extra)
    if errors:
        return Check(PACKAGE, CheckResult.FAILED, "; ".join(errors), warnings)
    info = signature.signed_info
    count = 0 if info is None else len(info.references)
    where = {"path": signature.path, "count": count, "value_path": signature.signed_value_path}
    return Check(
        PACKAGE,
        CheckResult.PASSED,
        Message("reason.package.ok", **where)
        if value_structure is None
        else Message("reason.package.ok_value", **where, detail=value_structure.reason),
        warnings,
    )


# --- references ------------------------------------------------------------------------------------------

_Digest = Callable[[bytes], bytes]

_CHECK_METHODS: dict[str, tuple[str, _Digest]] = {
    oids.SM3: ("SM3", sm3),
    oids.SM3_WITHOUT_KEY: ("SM3", sm3),
    "sm3": ("SM3", sm3),
    "md5": ("MD5", lambda data: hashlib.md5(data, usedforsecurity=False).digest()),
    "1.2.840.113549.2.5": ("MD5", lambda data: hashlib.md5(data, usedforsecurity=False).digest()),
    "sha1": ("SHA1", lambda data: hashlib.sha1(data, usedforsecurity=False).digest()),
    "sha-1": ("SHA1", lambda data: hashlib.sha1(data, usedforsecurity=False).digest()),
    oids.SHA1: ("SHA1", lambda data: hashlib.sha1(data, usedforsecurity=False).digest()),
    "sha256": ("SHA-256", lambda data: hashlib.sha256(data).digest()),
    "sha-256": ("SHA-256", lambda data: hashlib.sha256(data).digest()),
    oids.SHA256: ("SHA-256", lambda data: hashlib.sha256(data).digest()),
}


@dataclass(frozen=True)
class _CheckMethod:
    """How a References/@CheckMethod is computed: ``digest`` None when it cannot be (``note`` says why).
    ``cache_id`` tells digests apart: SM3(Z_A ‖ file) depends on the signer's key."""

    name: str
    digest: _Digest | None
    note: str | None = None
    cache_id: str = ""


def _check_method(check_method: str | None, key: SM2PublicKey | None, options: OfdOptions) -> _CheckMethod:
    if check_method is None:
        name, function = _CHECK_METHODS["md5"]
        return _CheckMethod(name, function, "CheckMethod omitted: MD5, the schema default", name)
    method = check_method.strip().lower()
    if method in _CHECK_METHODS:
        name, function = _CHECK_METHODS[method]
        return _CheckMethod(name, function, None, name)
    if method != SM3_WITH_Z:
        return _CheckMethod(
            check_method, None, f"CheckMethod {check_method!r} is not supported (SM3, MD5, SHA1)"
        )
    if not options.sm3_with_z_check_values:
        return _CheckMethod(
            method,
            None,
            f"CheckMethod {SM3_WITH_Z} ('SM3 with key') is ambiguous: it is read as SM3(Z_A ‖ file) with the "
            "signer's key only in the dms360 compatibility mode (sm3_with_z_check_values)",
        )
    if key is None:
        return _CheckMethod(
            method, None, f"CheckMethod {SM3_WITH_Z} needs the signer's key, which is not available"
        )
    return _CheckMethod(
        "SM3(Z_A ‖ file)",
        key.digest,
        f"CheckMethod {SM3_WITH_Z} read as SM3(Z_A ‖ file) (compatibility mode)",
        f"SM3-Z:{key.point.hex()}",
    )


class _Digests:
    """Digests of package files, each computed once per method: a hostile Signature.xml may name one large file
    thousands of times. Large files go through :data:`_SHARED_DIGESTS`."""

    def __init__(self, package: OfdPackage) -> None:
        self.package = package
        self._cache: dict[tuple[str, str], bytes] = {}

    def of(self, path: str, method: _CheckMethod) -> bytes:
        assert method.digest is not None
        key = (method.cache_id, path)
        if key not in self._cache:
            self._cache[key] = _SHARED_DIGESTS.digest(method, self.package.files[path])
        return self._cache[key]


class _SharedDigests:
    """Process-wide memo of the digests of large package files that recur from file to file.

    Certificates of one type carry the same base image, and every file sealed with one seal carries the same
    Seal.esl; in a long-running verifier their SM3 is the largest cost after the file's own identity digest. An
    entry keeps the exact bytes it was computed from and is used only for byte-identical content (the look-up key
    — method, size, first and last bytes — merely finds the candidate), so a digest is always the digest of the
    bytes presented. Bounded by :attr:`max_bytes` of retained content, least recently used first out;
    thread-safe.
    """

    min_size = 4 * 1024
    max_entry = 4 * 1024 * 1024
    max_bytes = 32 * 1024 * 1024
    _EDGE = 32

    def __init__(self) -> None:
        self._entries: OrderedDict[tuple[str, int, bytes, bytes], tuple[bytes, bytes]] = OrderedDict()
        self._retained = 0
        self._lock = threading.Lock()

    def digest(self, method: _CheckMethod, data: bytes) -> bytes:
        assert method.digest is not None
        if not self.min_size <= len(data) <= self.max_entry:
            return method.digest(data)
        key = (method.cache_id, len(data), data[: self._EDGE], data[-self._EDGE :])
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                self._entries.move_to_end(key)
        if entry is not None and entry[0] == data:
            return entry[1]
        value = method.digest(data)
        with self._lock:
            previous = self._entries.pop(key, None)
            if previous is not None:
                self._retained -= len(previous[0])
            self._entries[key] = (data, value)
            self._retained += len(data)
            while self._retained > self.max_bytes:
                _, (dropped, _digest) = self._entries.popitem(last=False)
                self._retained -= len(dropped)
        return value

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._retained = 0


_SHARED_DIGESTS = _SharedDigests()


def _references_check(
    signature: OfdSignature,
    digests: _Digests,
    later: Sequence[OfdSignature],
    key: SM2PublicKey | None,
    options: OfdOptions,
) -> Check:
    info = signature.signed_info
    if info is None:
        return Check(
            REFERENCES, CheckResult.SKIPPED, "not run: Signature.xml could not be read (see package)"
        )
    if not info.references:
        return Check(
            REFERENCES, CheckResult.FAILED, "SignedInfo has no Reference: the signature protects no file"
        )
    method = _check_method(info.check_method, key, options)
    warnings = [method.note] if method.note and method.digest is not None else []
    failures: list[str] = []
    for reference in info.references:
        if reference.path is None:
            failures.append(f"{reference.file_ref}: {reference.problem}")  # not in / outside the package
            continue
        try:
            expected = base64.b64decode("".join(reference.check_value.split()), validate=True)
        except (binascii.Error, ValueError):
            failures.append(
                Message(
                    "reason.references.not_base64", ref=reference.file_ref, value=repr(reference.check_value)
                )
            )
            continue
        if method.digest is None:
            continue
        if digests.of(reference.path, method) != expected:
            failures.append(
                Message("reason.references.digest_differs", ref=reference.file_ref, method=method.name)
            )
            if later and reference.path == digests.package.documents[signature.document].signatures_path:
                warnings.append(_later_signature_note(reference.path, later))
    total = len(info.references)
    if failures:
        return Check(
            REFERENCES,
            CheckResult.FAILED,
            Message("reason.references.fail", count=len(failures), total=total, detail="; ".join(failures)),
            tuple(warnings),
        )
    if method.digest is None:
        return Check(
            REFERENCES,
            CheckResult.UNKNOWN,
            Message("reason.references.not_checked", total=total, note=method.note),
        )
    return Check(
        REFERENCES,
        CheckResult.PASSED,
        Message(
            "reason.references.match",
            total=total,
            method=method.name,
            refs=", ".join(r.file_ref for r in info.references),
        ),
        tuple(warnings),
    )


def _later_signature_note(path: str, later: Sequence[OfdSignature]) -> str:
    ids = ", ".join(repr(s.id) for s in later)
    return Message("reason.references.later_signature", path=path, ids=ids)


# --- property_info and seal_copy -------------------------------------------------------------------------


def _property_info_check(signature: OfdSignature, parsed: SealSignature) -> Check:
    """GB/T 38540 §7.3 g): the original is the file propertyInfo designates; in OFD, this Signature.xml."""
    value = parsed.property_info.strip()
    path = signature.path
    if path is None:
        return Check(PROPERTY_INFO, CheckResult.SKIPPED, Message("reason.not_run.no_signature_xml"))
    candidates: set[str] = set()
    for base in ("", posixpath.dirname(path)):
        try:
            candidates.add(resolve_location(value, base))
        except OfdFormatError:
            continue
    if path in candidates:
        return Check(
            PROPERTY_INFO, CheckResult.PASSED, Message("reason.property_info.this", value=repr(value))
        )
    if "/" in value or value.lower().endswith(".xml"):
        return Check(
            PROPERTY_INFO,
            CheckResult.FAILED,
            Message("reason.property_info.other", value=repr(value), path=path),
        )
    return Check(
        PROPERTY_INFO,
        CheckResult.PASSED,
        Message("reason.property_info.not_path", value=repr(value)),
        (Message("reason.property_info.not_named", value=repr(value), path=path),),
    )


def _seal_copy_check(signature: OfdSignature, package: OfdPackage, parsed: SealSignature) -> Check:
    info = signature.signed_info
    if info is None or info.seal_loc is None:
        return Check(SEAL_COPY, CheckResult.SKIPPED, Message("reason.seal_copy.none"))
    if info.seal_path is None:
        return Check(
            SEAL_COPY, CheckResult.SKIPPED, Message("reason.seal_copy.not_found", loc=repr(info.seal_loc))
        )
    copy = package.files[info.seal_path]
    seal = parsed.seal
    if copy == seal.der:
        return Check(
            SEAL_COPY,
            CheckResult.PASSED,
            Message("reason.seal_copy.same", path=info.seal_path, seal=repr(seal.es_id)),
        )
    return Check(
        SEAL_COPY,
        CheckResult.FAILED,
        Message(
            "reason.seal_copy.differs",
            path=info.seal_path,
            size=len(copy),
            digest=sm3(copy).hex()[:16],
            seal=repr(seal.es_id),
            size2=len(seal.der),
            digest2=sm3(seal.der).hex()[:16],
        ),
    )


# --- File-level findings ---------------------------------------------------------------------------------


def _file_findings(package: OfdPackage) -> tuple[list[str], list[Indication]]:
    """(problems, their effect on the file's indication): the reader's tolerated deviations, structure failures
    in the document's XML parts (INVALID), and coverage (:mod:`certstore.verify.coverage`)."""
    problems = list(package.warnings)
    effects: list[Indication] = []
    for error in package.errors:
        problems.append(f"structure: {error}")
        effects.append(Indication.INVALID)
    covering, effect = coverage_findings(package)
    problems.extend(covering)
    effects.extend(effect)
    return problems, [worst(effects)] if effects else []
