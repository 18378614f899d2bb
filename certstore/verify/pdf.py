"""Verification of the PDF rendition (:mod:`certstore.packaging.pdf`): SM2/SM3 CMS signatures in a PDF.

pyHanko reads the file (cross-references, AcroForm signature fields, ``/ByteRange``, ``/Contents``, the CMS
``SignedData``); every cryptographic judgement is ours, with SM3 and :class:`~certstore.crypto.sm2.SM2PublicKey`
(pyHanko's own validation cannot verify SM2). Each signature yields, in order (names of
docs/verification.md):

* ``package`` — the signature dictionary and CMS parse; ``/ByteRange`` is ``[0 a b c]`` with the hole
  ``[a, b)`` holding exactly the ``/Contents`` hex string (and nothing but zero padding after the CMS), and
  ``b + c`` is the end of the file, i.e. the signature covers the whole file except its own value. Bytes after
  the signed range fail the check — unless they are incremental updates that pyHanko's difference analysis
  finds only add validation data (DSS, document time stamps), which pass with a warning; either way they are
  also listed as a file-level problem. (Our PDFs carry a DocMDP "no changes" certification signature.)
* ``data_hash`` — the ``messageDigest`` signed attribute equals SM3 of the byte-range content (computed here,
  not by pyHanko), and ``contentType`` matches the encapsulated content type.
* ``signature`` — the SM2 signature (default ID 1234567812345678) over the DER of the signed attributes, with
  the key of the signer certificate the SignerInfo names.
* ``signer_chain`` — :func:`~certstore.crypto.trust.validate_chain` of the signer certificate (intermediates
  from the CMS) at the signing time, or at ``at`` when given.
* ``signing_time`` — the claimed signing time (signingTime attribute, else the signature's ``/M``) lies within
  the signer certificate's validity and is not in the future.

The last two are :func:`certstore.crypto.signer.signer_checks`, the one signer policy of seal, OFD Sign and PDF
signatures.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from asn1crypto import cms, parser
from lxml import etree
from pyhanko.pdf_utils import generic, misc
from pyhanko.pdf_utils.reader import HistoricalResolver, PdfFileReader
from pyhanko.sign.diff_analysis import DEFAULT_DIFF_POLICY, ModificationLevel, SuspiciousModification
from pyhanko.sign.fields import enumerate_sig_fields
from pyhanko.sign.validation.pdf_embedded import EmbeddedPdfSignature

from certstore.checks import Check, CheckResult
from certstore.crypto import oids
from certstore.crypto.signer import CLOCK_SKEW, ClaimedTime, signer_checks
from certstore.crypto.sm3 import sm3
from certstore.crypto.trust import TrustStore
from certstore.crypto.x509 import Certificate, CertificateError
from certstore.packaging.pdf import GM_DATA, PKCS7_DATA, register_gm_algorithms
from certstore.verify.report import (
    CertificateReport,
    Format,
    SignatureKind,
    SignatureReport,
    SignerSummary,
    VerificationReport,
    overall_indication,
)

__all__ = ["CERTIFICATE_IDENTIFIER_FIELD", "PDF_STEPS", "verify_pdf"]

PACKAGE = "package"
DATA_HASH = "data_hash"
SIGNATURE = "signature"
SIGNER_CHAIN = "signer_chain"
SIGNING_TIME = "signing_time"

#: The checks of every PDF signature, in order.
PDF_STEPS = (PACKAGE, DATA_HASH, SIGNATURE, SIGNER_CHAIN, SIGNING_TIME)


_SUBFILTERS = ("/adbe.pkcs7.detached", "/ETSI.CAdES.detached")
_SM2_SIGNATURE_ALGORITHMS = {oids.SM2_SIGN, oids.SM2_WITH_SM3}

register_gm_algorithms()


#: The Info-dictionary entry naming the e-certificate (证照标识) in certstore PDFs (also ``ecert:ZZBS`` in XMP).
CERTIFICATE_IDENTIFIER_FIELD = "/ZZBS"


def verify_pdf(data: bytes, *, trust: TrustStore, at: datetime | None = None) -> VerificationReport:
    """Verify every signature of the PDF ``data`` against the trust anchors in ``trust``.

    One :class:`SignatureReport` per filled signature field (``kind`` ``sign``: a CMS signature, the seal
    picture being only its appearance; ``id`` and ``location`` are the field name). ``certificate`` names the
    e-certificate from the Info entry ``/ZZBS`` of the signed revision (the pipeline adds the repository
    checks). ``at`` overrides the time at which certificate validity is judged (default: each signature's
    claimed signing time). A file that cannot be read, or has no signature, is INVALID with a problem saying why.
    """
    if at is not None and at.tzinfo is None:
        raise ValueError("the verification time must be a timezone-aware datetime")
    try:
        reader = PdfFileReader(io.BytesIO(data))
        found = list(enumerate_sig_fields(reader, filled_status=True))
        total_revisions = reader.xrefs.total_revisions
    except (misc.PdfError, ValueError, KeyError, TypeError, IndexError) as exc:
        return _report((), (f"not a readable PDF: {exc}",), None)

    reports: list[SignatureReport] = []
    problems: list[str] = []
    signed_revisions: list[int] = []
    for name, sig_ref, field_ref in found:
        try:
            sig_obj = sig_ref.get_object()
            sig_type = sig_obj.get("/Type")
            subfilter = sig_obj.get("/SubFilter")
        except (misc.PdfError, ValueError, KeyError, TypeError) as exc:
            reports.append(_broken(name, f"signature dictionary of field {name!r} is unreadable: {exc}"))
            continue
        if sig_type == "/DocTimeStamp":
            problems.append(f"document time stamp {name!r} is not verified (not supported)")
            continue
        if subfilter not in _SUBFILTERS:
            reason = f"field {name!r}: SubFilter {subfilter} is not supported (need one of {_SUBFILTERS})"
            reports.append(_broken(name, reason, CheckResult.UNKNOWN))
            continue
        try:
            embedded = EmbeddedPdfSignature(reader, field_ref, name)
            report, problem = _verify_signature(embedded, data, trust, at, total_revisions)
        except (misc.PdfError, ValueError, KeyError, TypeError, AttributeError) as exc:
            reports.append(_broken(name, f"field {name!r}: signature dictionary or CMS is malformed: {exc}"))
            continue
        reports.append(report)
        signed_revisions.append(embedded.signed_revision)
        if problem:
            problems.append(problem)
    if not found:
        problems.append("the PDF has no signed signature field")
    revision = min(signed_revisions) if signed_revisions else total_revisions - 1
    return _report(tuple(reports), tuple(problems), _certificate_identifier(reader, revision))


def _report(
    signatures: tuple[SignatureReport, ...], problems: tuple[str, ...], identifier: str | None
) -> VerificationReport:
    certificate = CertificateReport(identifier) if identifier else None
    return VerificationReport(
        indication=overall_indication(signatures, certificate=certificate),
        format=Format.PDF,
        signatures=signatures,
        problems=problems,
        certificate=certificate,
    )


def _signed_info(reader: PdfFileReader, revision: int) -> dict[str, str]:
    """The Info dictionary as of ``revision`` (the signed one: later updates cannot change it), names without
    the leading slash; empty when it cannot be read."""
    try:
        resolver = reader.get_historical_resolver(revision)
        trailer = resolver.trailer_view
        info = _resolved(resolver, trailer.raw_get("/Info")) if "/Info" in trailer else None
        if not isinstance(info, generic.DictionaryObject):
            return {}
        values = {str(key)[1:]: _resolved(resolver, info.raw_get(key)) for key in info}
    except (misc.PdfError, ValueError, KeyError, TypeError, AttributeError):
        return {}
    return {
        key: value for key, value in values.items() if isinstance(value, str)
    }  # TextStringObject is a str


def _certificate_identifier(reader: PdfFileReader, revision: int) -> str | None:
    """``/ZZBS`` of the Info dictionary as of the signed ``revision``."""
    value = _signed_info(reader, revision).get(CERTIFICATE_IDENTIFIER_FIELD[1:], "").strip()
    return value or None


def signed_metadata(data: bytes) -> dict[str, str]:
    """The certificate metadata (Info entries ``ZZBS``, ``ZZMC`` …) as of the earliest signed revision of a
    PDF — what the signature vouches for; empty for an unreadable or unsigned PDF."""
    try:
        reader = PdfFileReader(io.BytesIO(data), strict=False)
        revisions = [emb.signed_revision for emb in reader.embedded_signatures]
    except (misc.PdfError, ValueError, KeyError, TypeError, AttributeError):
        return {}
    return _signed_info(reader, min(revisions)) if revisions else {}


def _broken(name: str, reason: str, result: CheckResult = CheckResult.FAILED) -> SignatureReport:
    """A signature that could not be read (FAILED) or is of an unsupported kind (UNKNOWN)."""
    skipped = "not run: the signature could not be read (see package)"
    checks = (
        Check(PACKAGE, result, reason),
        *(Check(s, CheckResult.SKIPPED, skipped) for s in PDF_STEPS[1:]),
    )
    return SignatureReport(name, SignatureKind.SIGN, checks, location=name)


# --- one signature ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Signed:
    """What one signature is made of, as read from the file."""

    byte_range: tuple[int, int, int, int] | None  # validated: inside the file, hole holds /Contents
    signer_info: cms.SignerInfo
    encap_type: str
    certificates: tuple[Certificate, ...]
    bad_certificates: tuple[str, ...]


def _verify_signature(
    emb: EmbeddedPdfSignature, data: bytes, trust: TrustStore, at: datetime | None, total_revisions: int
) -> tuple[SignatureReport, str | None]:
    package, byte_range, problem = _package_check(emb, data, total_revisions)
    certificates, bad = _certificates(emb.signed_data)
    signed = _Signed(
        byte_range=byte_range,
        signer_info=emb.signer_info,
        encap_type=emb.signed_data["encap_content_info"]["content_type"].dotted,
        certificates=certificates,
        bad_certificates=bad,
    )
    signer, signer_problem = _signer_certificate(signed)
    claimed = _claimed_time(emb)
    checked = signer_checks(
        signer,
        trust=trust,
        claimed=claimed,
        at=at,
        intermediates=signed.certificates,
        missing_time="the signature states none (no signingTime, no /M)",
    )
    checks = (
        package,
        _data_hash_check(signed, data),
        _signature_check(signed, signer, signer_problem, data),
        checked.chain,
        checked.signing_time,
    )
    report = SignatureReport(
        id=emb.field_name,
        kind=SignatureKind.SIGN,
        checks=checks,
        signing_time=claimed.time if claimed is not None else None,
        signer=SignerSummary.of(signer),
        location=emb.field_name,
    )
    return report, problem


def _package_check(
    emb: EmbeddedPdfSignature, data: bytes, total_revisions: int
) -> tuple[Check, tuple[int, int, int, int] | None, str | None]:
    """The byte range: standard shape, hole = exactly the /Contents string, end = end of file."""
    raw = list(emb.byte_range)
    if len(raw) != 4 or not all(isinstance(v, int) and v >= 0 for v in raw):
        return (
            Check(PACKAGE, CheckResult.FAILED, f"/ByteRange {raw} is not four non-negative integers"),
            None,
            None,
        )
    start1, len1, start2, len2 = raw
    size = len(data)
    if start1 != 0 or start2 <= len1 or start2 + len2 > size:
        reason = f"/ByteRange {raw} is not [0 a b c] with a < b and b + c ≤ file size {size}"
        return Check(PACKAGE, CheckResult.FAILED, reason), None, None
    hole = data[len1:start2]
    try:
        hole_ok = (
            hole[:1] == b"<"
            and hole[-1:] == b">"
            and bytes.fromhex(hole[1:-1].decode("ascii")) == emb.pkcs7_content
        )
    except (ValueError, UnicodeDecodeError):
        hole_ok = False
    if not hole_ok:
        reason = (
            f"the /ByteRange hole [{len1}, {start2}) is not exactly the /Contents hex string: bytes outside "
            "the signed range are not the signature"
        )
        return Check(PACKAGE, CheckResult.FAILED, reason), None, None
    padding = _padding_after_cms(emb.pkcs7_content)
    if padding.strip(b"\x00"):
        reason = (
            f"/Contents holds {len(padding)} bytes after the CMS structure that are not zero padding: "
            "unsigned data hidden in the signature value"
        )
        return Check(PACKAGE, CheckResult.FAILED, reason), None, None
    byte_range = (start1, len1, start2, len2)
    end = start2 + len2
    covered = (
        f"/ByteRange [0 {len1} {start2} {len2}] covers bytes [0, {len1}) and [{start2}, {end}) of {size}; "
        f"the hole holds exactly the {len(emb.pkcs7_content)}-byte /Contents"
    )
    if end == size:
        return (
            Check(PACKAGE, CheckResult.PASSED, f"{covered}: the whole file except the signature value"),
            byte_range,
            None,
        )
    later = total_revisions - 1 - emb.signed_revision
    if later < 1:
        appended = (
            f"{size - end} bytes follow the signed range of {emb.field_name!r} but form no PDF revision"
        )
        reason = f"{covered}; {appended}: the file is not the one signed"
        return Check(PACKAGE, CheckResult.FAILED, reason), byte_range, appended
    appended = (
        f"{size - end} bytes ({later} incremental update(s)) follow the signed range of {emb.field_name!r}"
    )
    coverage = None
    try:
        emb.coverage = coverage = emb.evaluate_signature_coverage()
        diff = emb.evaluate_modifications(DEFAULT_DIFF_POLICY)
    except (misc.PdfError, ValueError, KeyError, TypeError, AttributeError, NotImplementedError) as exc:
        diff = SuspiciousModification(f"difference analysis failed: {exc}")
    if isinstance(diff, SuspiciousModification):
        first_line = (str(diff).splitlines() or ["?"])[0]
        finding, level = f"pyHanko difference analysis: suspicious modification ({first_line})", None
    else:
        level = diff.modification_level
        finding = f"pyHanko difference analysis: {level.name} (coverage {coverage.name if coverage else '?'})"
    problem = f"{appended}; {finding}"
    if level is not None and level <= ModificationLevel.LTA_UPDATES:
        changed = _metadata_changes(emb.reader, emb.signed_revision, total_revisions - 1)
        if changed:
            reason = (
                f"{covered}, but {appended} and change the document metadata after signing "
                f"({', '.join(changed[:6])}{' …' if len(changed) > 6 else ''}); {finding}"
            )
            return Check(PACKAGE, CheckResult.FAILED, reason), byte_range, f"{problem}; metadata changed"
        warning = f"{appended}; they only add validation data ({finding})"
        return Check(PACKAGE, CheckResult.PASSED, covered, (warning,)), byte_range, problem
    reason = f"{covered}, but {appended}: what is displayed may differ from what was signed; {finding}"
    return Check(PACKAGE, CheckResult.FAILED, reason), byte_range, problem


#: Metadata a PDF writer refreshes on every update (not part of what the issuer states).
_VOLATILE_INFO = frozenset({"/ModDate", "/Producer"})
_VOLATILE_XMP = frozenset(
    {
        "{http://ns.adobe.com/xap/1.0/}ModifyDate",
        "{http://ns.adobe.com/xap/1.0/}MetadataDate",
        "{http://ns.adobe.com/pdf/1.3/}Producer",
    }
)
_XMP_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False)


def _resolved(resolver: HistoricalResolver, value: object) -> object:
    return resolver.get_object(value.reference) if isinstance(value, generic.IndirectObject) else value


_RDF = "{http://www.w3.org/1999/02/22-rdf-syntax-ns#}"


def _property_of(element: etree._Element) -> str:
    """The XMP property an element's text belongs to: the nearest ancestor-or-self outside RDF syntax."""
    node: etree._Element | None = element
    while node is not None and isinstance(node.tag, str) and node.tag.startswith(_RDF):
        node = node.getparent()
    return node.tag if node is not None and isinstance(node.tag, str) else "?"


def _document_metadata(resolver: HistoricalResolver) -> set[tuple[str, str]]:
    """The Info entries and XMP properties of one revision as (name, value) pairs — independent of how the
    XMP is serialised — without the ones every writer refreshes (modification date, producer)."""
    found: set[tuple[str, str]] = set()
    trailer = resolver.trailer_view
    info = _resolved(resolver, trailer.raw_get("/Info")) if "/Info" in trailer else None
    if isinstance(info, generic.DictionaryObject):
        for key in info:
            if key not in _VOLATILE_INFO:
                found.add((f"Info {key}", str(_resolved(resolver, info.raw_get(key)))))
    root = _resolved(resolver, trailer.raw_get("/Root"))
    stream = None
    if isinstance(root, generic.DictionaryObject) and "/Metadata" in root:
        stream = _resolved(resolver, root.raw_get("/Metadata"))
    if isinstance(stream, generic.StreamObject):
        try:
            xmp = etree.fromstring(stream.data, _XMP_PARSER)
        except etree.XMLSyntaxError:
            return {*found, ("XMP", "(unparseable)")}
        for element in xmp.iter():
            if not isinstance(element.tag, str):
                continue
            for name, value in element.attrib.items():
                if name not in _VOLATILE_XMP and not name.startswith(_RDF):
                    found.add((f"XMP {name}", value))
            prop = _property_of(element)
            if element.text and element.text.strip() and prop not in _VOLATILE_XMP:
                found.add((f"XMP {prop}", element.text.strip()))
    return found


def _metadata_changes(reader: PdfFileReader, signed: int, latest: int) -> list[str]:
    """The names of the metadata entries that differ between the signed revision and the latest one."""
    try:
        before = _document_metadata(reader.get_historical_resolver(signed))
        after = _document_metadata(reader.get_historical_resolver(latest))
    except (misc.PdfError, ValueError, KeyError, TypeError, AttributeError) as exc:
        return [f"metadata unreadable: {exc}"]
    return sorted({name for name, _ in before ^ after})


def _padding_after_cms(contents: bytes) -> bytes:
    """What follows the DER ContentInfo in /Contents (signers reserve space and pad it with zeros)."""
    try:
        _, _, _, header, body, _ = parser.parse(contents)
    except ValueError:
        return b""  # not DER at all: the CMS checks report it
    return contents[len(header) + len(body) :]


def _certificates(signed_data: cms.SignedData) -> tuple[tuple[Certificate, ...], tuple[str, ...]]:
    certs: list[Certificate] = []
    bad: list[str] = []
    for index, choice in enumerate(signed_data["certificates"] or ()):
        if choice.name != "certificate":
            continue
        try:
            certs.append(Certificate.from_der(choice.chosen.dump()))
        except CertificateError as exc:
            bad.append(f"certificate {index}: {exc}")
    return tuple(certs), tuple(bad)


def _signer_certificate(signed: _Signed) -> tuple[Certificate | None, str | None]:
    """The embedded certificate the SignerInfo's sid names (issuer and serial, or subject key identifier)."""
    sid = signed.signer_info["sid"]
    if sid.name == "issuer_and_serial_number":
        issuer = sid.chosen["issuer"]
        serial = sid.chosen["serial_number"].native
        match = [c for c in signed.certificates if c.issuer_name == issuer and c.serial == serial]
        named = f"issuer {issuer.human_friendly!r}, serial {serial:X}"
    else:
        key_id = sid.chosen.native
        match = [c for c in signed.certificates if c.subject_key_id == key_id]
        named = f"subject key identifier {key_id.hex()}"
    if match:
        return match[0], None
    extra = f" ({'; '.join(signed.bad_certificates)})" if signed.bad_certificates else ""
    return None, f"no usable embedded SM2 certificate matches the SignerInfo ({named}){extra}"


def _signed_attrs_der(signer_info: cms.SignerInfo) -> bytes | None:
    """The signed attributes as signed: the received encoding with the [0] IMPLICIT tag turned back into SET."""
    attrs = signer_info["signed_attrs"]
    if not attrs:
        return None
    raw = attrs.dump()
    return b"\x31" + raw[1:]


def _content(data: bytes, byte_range: tuple[int, int, int, int]) -> bytes:
    start1, len1, start2, len2 = byte_range
    return data[start1 : start1 + len1] + data[start2 : start2 + len2]


def _attribute_values(signer_info: cms.SignerInfo, name: str) -> list[Any]:
    return [v for attr in signer_info["signed_attrs"] if attr["type"].native == name for v in attr["values"]]


def _data_hash_check(signed: _Signed, data: bytes) -> Check:
    info = signed.signer_info
    digest_oid = info["digest_algorithm"]["algorithm"].dotted
    if digest_oid != oids.SM3:
        return Check(
            DATA_HASH,
            CheckResult.UNKNOWN,
            f"digest algorithm {digest_oid} is not SM3 ({oids.SM3}); not supported",
        )
    if signed.byte_range is None:
        return Check(DATA_HASH, CheckResult.SKIPPED, "not run: the byte range is unusable (see package)")
    if _signed_attrs_der(info) is None:
        return Check(
            DATA_HASH,
            CheckResult.SKIPPED,
            "no signed attributes: the signature covers the byte range directly (see signature)",
        )
    problems = []
    content_types = _attribute_values(info, "content_type")
    if len(content_types) != 1:
        problems.append(f"{len(content_types)} contentType attribute values (need exactly 1)")
    elif content_types[0].dotted != signed.encap_type:
        problems.append(
            f"contentType attribute {content_types[0].dotted} differs from eContentType {signed.encap_type}"
        )
    if signed.encap_type not in (PKCS7_DATA, GM_DATA):
        problems.append(f"eContentType {signed.encap_type} is not data ({PKCS7_DATA} or {GM_DATA})")
    digests = _attribute_values(info, "message_digest")
    if len(digests) != 1:
        problems.append(f"{len(digests)} messageDigest attribute values (need exactly 1)")
        return Check(DATA_HASH, CheckResult.FAILED, "; ".join(problems))
    claimed = digests[0].native
    content = _content(data, signed.byte_range)
    actual = sm3(content)
    if claimed != actual:
        problems.insert(
            0,
            f"messageDigest {claimed.hex()} ≠ SM3 of the signed byte range {actual.hex()} "
            f"({len(content)} bytes): the signed part of the file was altered",
        )
    if problems:
        return Check(DATA_HASH, CheckResult.FAILED, "; ".join(problems))
    return Check(
        DATA_HASH,
        CheckResult.PASSED,
        f"messageDigest equals SM3 of the signed byte range ({len(content)} bytes): {actual.hex()}",
    )


def _signature_check(
    signed: _Signed, signer: Certificate | None, signer_problem: str | None, data: bytes
) -> Check:
    info = signed.signer_info
    algorithm = info["signature_algorithm"]["algorithm"].dotted
    if algorithm not in _SM2_SIGNATURE_ALGORITHMS:
        return Check(
            SIGNATURE, CheckResult.UNKNOWN, f"signature algorithm {algorithm} is not SM2; not supported"
        )
    if signer is None:
        return Check(SIGNATURE, CheckResult.FAILED, signer_problem or "no signer certificate")
    attrs = _signed_attrs_der(info)
    if attrs is not None:
        message, what = attrs, f"DER of the signed attributes ({len(attrs)} bytes)"
    elif signed.byte_range is not None:
        message = _content(data, signed.byte_range)
        what = f"the signed byte range ({len(message)} bytes; no signed attributes)"
    else:
        return Check(SIGNATURE, CheckResult.SKIPPED, "not run: no signed attributes and no usable byte range")
    value = info["signature"].native
    if signer.public_key.verify(message, value):
        return Check(
            SIGNATURE,
            CheckResult.PASSED,
            f"SM2 signature over the {what} verifies with the key of {signer.subject!r}",
        )
    return Check(
        SIGNATURE,
        CheckResult.FAILED,
        f"SM2 signature over the {what} does not verify with the key of {signer.subject!r}: the signed "
        "attributes were altered or signed with another key",
    )


def _claimed_time(emb: EmbeddedPdfSignature) -> ClaimedTime | None:
    """The signingTime attribute (signed), else the signature dictionary's /M (not signed)."""
    attribute = None
    if emb.signer_info["signed_attrs"]:
        values = _attribute_values(emb.signer_info, "signing_time")
        attribute = values[0].native if len(values) == 1 else None
    modified = None
    try:
        if "/M" in emb.sig_object:
            modified = generic.parse_pdf_date(emb.sig_object["/M"], strict=False)
    except (misc.PdfError, ValueError, TypeError):
        modified = None
    if attribute is not None:
        warnings: tuple[str, ...] = ()
        if modified is not None and abs(modified - attribute) > CLOCK_SKEW:
            warnings = (
                f"/M {modified.isoformat()} differs from the signingTime attribute {attribute.isoformat()}",
            )
        return ClaimedTime(attribute, "signingTime attribute", warnings)
    if modified is not None:
        return ClaimedTime(modified, "/M of the signature dictionary (not signed)", ())
    return None
