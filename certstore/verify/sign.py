"""OFD ``Type="Sign"`` signatures (纯数字签名, STANDARDS §2.4): the signature value in ``SignedValue.dat`` signs the
exact bytes of ``Signature.xml`` directly, without a seal. Three forms are seen in the wild and verified here:

* **raw**: a DER (or raw 64-byte r‖s) SM2-with-SM3 signature over Signature.xml, with no certificate (ofdrw
  ``DigitalSignContainer``). Verifiable only when the signer certificate is known: ``sign_certificates``. The
  value names no signer, so one that verifies with none of them is UNKNOWN ("signer certificate not found"),
  never FAILED: another signer and an altered Signature.xml cannot be told apart.
* **GB/T 35275 SignedData, eContent form**: ContentInfo(signedData) whose encapsulated content is
  SM3(Signature.xml) (32 bytes; Base64 of it is accepted with a warning, as ofdrw does) and whose SignerInfo
  signs those content octets (tongz; ofdrw ``GBT35275DSContainer``).
* **GB/T 35275 SignedData, signed-attributes form**: PKCS#9 signed attributes with messageDigest =
  SM3(Signature.xml); the signature is over the DER of the attribute SET (gomain; ofdrw
  ``GBT35275PKCS9DSContainer``).

Both GB/T 35275 (``1.2.156.10197.6.1.4.2.2``) and PKCS#7 (``1.2.840.113549.1.7.2``) signedData OIDs are read; the
structures are the same. :func:`verify_sign_value` yields the checks ``data_hash``, ``signer_chain``,
``signature``, ``signing_time`` and ``timestamp``, plus a structure verdict the OFD verifier folds into its
``package`` check. ``signer_chain`` and ``signing_time`` come from :func:`certstore.crypto.signer.signer_checks`,
the policy seal and PDF signatures share.
"""

# asn1crypto specs are declared as mutable class attributes (_fields).
# ruff: noqa: RUF012

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from asn1crypto import cms, core, parser

from certstore.checks import Check, CheckResult
from certstore.crypto import oids
from certstore.crypto.signer import ClaimedTime, signer_checks
from certstore.crypto.sm2 import InvalidSignatureEncodingError, signature_form
from certstore.crypto.sm3 import sm3
from certstore.crypto.trust import TrustStore
from certstore.crypto.x509 import Certificate, CertificateError
from certstore.timezones import CHINA_STANDARD_TIME

__all__ = [
    "GBT35275_DATA",
    "GBT35275_SIGNED_DATA",
    "SignForm",
    "SignVerification",
    "SignedValueKind",
    "classify_signed_value",
    "parse_signature_date_time",
    "verify_sign_value",
]

GBT35275_SIGNED_DATA = "1.2.156.10197.6.1.4.2.2"
GBT35275_DATA = "1.2.156.10197.6.1.4.2.1"
PKCS7_SIGNED_DATA = oids.SIGNED_DATA
_SIGNED_DATA_OIDS = {GBT35275_SIGNED_DATA: "GB/T 35275", PKCS7_SIGNED_DATA: "PKCS#7"}
_SM2_SIGNATURE_OIDS = {oids.SM2_SIGN, oids.SM2_WITH_SM3, oids.SM2_CURVE}
_MESSAGE_DIGEST = oids.MESSAGE_DIGEST
_SIGNING_TIME = "1.2.840.113549.1.9.5"
_TIMESTAMP_TOKEN = "1.2.840.113549.1.9.16.2.14"
_DECODE_ERRORS = (ValueError, TypeError, KeyError, IndexError, OverflowError)

DATA_HASH = "data_hash"
SIGNER_CHAIN = "signer_chain"
SIGNATURE = "signature"
SIGNING_TIME = "signing_time"
TIMESTAMP = "timestamp"


class SignedValueKind(StrEnum):
    """What ``SignedValue.dat`` holds, told apart by structure (STANDARDS §1.8)."""

    SES = "SES_Signature"
    CMS = "ContentInfo"
    RAW = "raw SM2 signature"


class SignForm(StrEnum):
    RAW = "raw SM2 signature over Signature.xml"
    CONTENT = "GB/T 35275 SignedData, eContent = SM3(Signature.xml)"
    ATTRIBUTES = "GB/T 35275 SignedData, signed attributes with messageDigest = SM3(Signature.xml)"


# --- GB/T 35275 structures (generic over the content-type OIDs) ------------------------------------------


class _EncapsulatedData(core.Sequence):
    _fields = [
        ("content_type", core.ObjectIdentifier),
        ("content", core.OctetString, {"explicit": 0, "optional": True}),
    ]


class _SignedData(core.Sequence):
    _fields = [
        ("version", core.Integer),
        ("digest_algorithms", cms.DigestAlgorithms),
        ("encap_content_info", _EncapsulatedData),
        ("certificates", cms.CertificateSet, {"implicit": 0, "optional": True}),
        ("crls", cms.RevocationInfoChoices, {"implicit": 1, "optional": True}),
        ("signer_infos", cms.SignerInfos),
    ]


class _ContentInfo(core.Sequence):
    _fields = [
        ("content_type", core.ObjectIdentifier),
        ("content", _SignedData, {"explicit": 0}),
    ]


def _element_tags(value: bytes) -> list[tuple[int, int, int]] | None:
    """(class, method, tag) of each element of a DER SEQUENCE, or None when ``value`` is not one."""
    try:
        class_, method, tag, _header, contents, _trailer = parser.parse(value, strict=False)
        if (class_, method, tag) != (0, 1, 16):
            return None
        tags = []
        offset = 0
        while offset < len(contents):
            class_, method, tag, header, body, trailer = parser.parse(contents[offset:], strict=False)
            tags.append((class_, method, tag))
            offset += len(header) + len(body) + len(trailer)
    except _DECODE_ERRORS:
        return None
    return tags


def classify_signed_value(value: bytes) -> SignedValueKind:
    """ContentInfo when the outer SEQUENCE starts with an OID; a raw SM2 signature when it is SEQUENCE{INTEGER,
    INTEGER} or 64 bytes that are not a DER SEQUENCE; an SES_Signature otherwise (whose parser has the last
    word)."""
    tags = _element_tags(value)
    if tags is None:
        return SignedValueKind.RAW if len(value) == 64 else SignedValueKind.SES
    if tags and tags[0] == (0, 0, 6):
        return SignedValueKind.CMS
    if tags == [(0, 0, 2), (0, 0, 2)]:
        return SignedValueKind.RAW
    return SignedValueKind.SES


def parse_signature_date_time(text: str | None) -> tuple[datetime | None, str | None]:
    """(time, note) from a SignatureDateTime (free text: ``20201010151120``, ``20200723130907.763Z``,
    ``2021-05-19 20:53:44``, ISO 8601); zone-less values are China Standard Time. (None, why) if unreadable."""
    if not text:
        return None, "no SignatureDateTime"
    value = text.strip()
    compact = re.fullmatch(r"(\d{14})(\.\d{1,6})?(Z?)", value)
    try:
        if compact:
            parsed = datetime.strptime(compact.group(1), "%Y%m%d%H%M%S")
            if compact.group(2):
                parsed = parsed.replace(microsecond=int(compact.group(2)[1:].ljust(6, "0")))
            if compact.group(3):
                return parsed.replace(tzinfo=UTC), None
        else:
            parsed = datetime.fromisoformat(value.replace("/", "-"))
    except ValueError:
        return None, f"SignatureDateTime {value!r} is not a recognised time"
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=CHINA_STANDARD_TIME).astimezone(UTC), (
            f"SignatureDateTime {value!r} has no time zone; read as China Standard Time (UTC+8)"
        )
    return parsed.astimezone(UTC), None


# --- Result ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SignVerification:
    """The outcome of :func:`verify_sign_value`. ``structure`` is PASSED or FAILED (the value could not be read);
    ``checks`` are ``data_hash``, ``signer_chain``, ``signature``, ``signing_time``, ``timestamp`` in order."""

    structure: Check
    checks: tuple[Check, ...]
    form: SignForm | None
    signer: Certificate | None
    signing_time: datetime | None


def _skipped(reason: str) -> tuple[Check, ...]:
    return tuple(
        Check(name, CheckResult.SKIPPED, reason)
        for name in (DATA_HASH, SIGNER_CHAIN, SIGNATURE, SIGNING_TIME, TIMESTAMP)
    )


def verify_sign_value(
    value: bytes,
    *,
    data: bytes,
    trust: TrustStore,
    at: datetime | None = None,
    claimed_time: datetime | None = None,
    sign_certificates: Sequence[Certificate] = (),
) -> SignVerification:
    """Verify a ``Type="Sign"`` signature value over ``data`` (the exact bytes of Signature.xml).

    Validity is judged at ``at`` when given, else at the signed signing time (PKCS#9 signingTime, else
    ``claimed_time``: the SignatureDateTime inside the signed Signature.xml), else now.
    ``sign_certificates`` are known signer certificates: the only way to verify a raw signature, and a
    fallback for a SignedData that does not carry its signer's certificate.
    """
    kind = classify_signed_value(value)
    if kind is SignedValueKind.RAW:
        return _verify_raw(value, data, trust, at, claimed_time, sign_certificates)
    if kind is SignedValueKind.CMS:
        return _verify_signed_data(value, data, trust, at, claimed_time, sign_certificates)
    reason = "SignedValue.dat is neither a GB/T 35275 ContentInfo nor an SM2 signature value"
    return SignVerification(
        Check("structure", CheckResult.FAILED, reason), _skipped("not run: see package"), None, None, None
    )


def _claimed(signing_time: datetime | None, source: str) -> ClaimedTime | None:
    return None if signing_time is None else ClaimedTime(signing_time, source)


# --- Raw SM2 -----------------------------------------------------------------------------------------------


def _verify_raw(
    value: bytes,
    data: bytes,
    trust: TrustStore,
    at: datetime | None,
    claimed_time: datetime | None,
    sign_certificates: Sequence[Certificate],
) -> SignVerification:
    try:
        form = signature_form(value)
    except InvalidSignatureEncodingError as exc:
        reason = f"SignedValue.dat is not a readable SM2 signature value: {exc}"
        return SignVerification(
            Check("structure", CheckResult.FAILED, reason), _skipped("not run: see package"), None, None, None
        )
    structure = Check("structure", CheckResult.PASSED, f"{form} SM2 signature value, {len(value)} bytes")
    data_hash = Check(
        DATA_HASH, CheckResult.SKIPPED, "raw SM2 signature directly over Signature.xml: no separate digest"
    )
    signer = next((c for c in sign_certificates if c.public_key.verify(data, value)), None)
    if signer is not None:
        signature = Check(
            SIGNATURE,
            CheckResult.PASSED,
            f"{form} SM2 signature over Signature.xml ({len(data)} bytes) verifies with the key of "
            f"{signer.subject!r}",
            signer.extension_warnings,
        )
    elif not sign_certificates:
        signature = Check(
            SIGNATURE,
            CheckResult.UNKNOWN,
            "raw SM2 signature over Signature.xml carries no certificate: it can only be verified with the "
            "signer certificate given (sign_certificates / --signer-cert)",
        )
    else:
        # A raw value names no signer (no certificate, no issuer-serial, no key identifier), and SM2 keys cannot
        # be recovered from a signature (Z_A depends on the key): failing under every known key shows only that
        # the signer is none of them. An altered Signature.xml and an unknown signer look the same: UNKNOWN.
        signature = Check(
            SIGNATURE,
            CheckResult.UNKNOWN,
            f"signer certificate not found: the raw SM2 signature over Signature.xml verifies with none of the "
            f"{len(sign_certificates)} known signer certificate(s), and it names no signer — signed by another "
            "key, or Signature.xml altered after signing; not verifiable without the signer's certificate",
        )
    source = "SignatureDateTime in Signature.xml"
    checked = signer_checks(
        signer, trust=trust, claimed=_claimed(claimed_time, source), at=at, missing_time=source
    )
    checks = (
        data_hash,
        checked.chain,
        signature,
        checked.signing_time,
        Check(TIMESTAMP, CheckResult.SKIPPED, "no timestamp"),
    )
    return SignVerification(structure, checks, SignForm.RAW, signer, claimed_time)


# --- GB/T 35275 SignedData -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Parsed:
    standard: str
    signed_data: _SignedData
    signer_info: cms.SignerInfo
    certificates: tuple[Certificate, ...]
    warnings: tuple[str, ...]


def _parse_signed_data(value: bytes) -> _Parsed:
    warnings: list[str] = []
    try:
        info = _ContentInfo.load(value, strict=False)
        content_type = info["content_type"].dotted
        standard = _SIGNED_DATA_OIDS.get(content_type)
        if standard is None:
            raise ValueError(f"content type {content_type} is not signedData ({GBT35275_SIGNED_DATA})")
        signed = info["content"]
        signed.native  # noqa: B018 - asn1crypto parses lazily; decode everything now
    except _DECODE_ERRORS as exc:
        message = str(exc).splitlines()[0]
        raise ValueError(f"SignedValue.dat is not a GB/T 35275 ContentInfo(signedData): {message}") from None
    trailing = len(value) - len(info.dump())
    if trailing:
        warnings.append(f"{trailing} byte(s) after the DER ContentInfo ignored")
    signer_infos = signed["signer_infos"]
    if len(signer_infos) != 1:
        raise ValueError(f"SignedData has {len(signer_infos)} SignerInfos; exactly one is expected")
    certificates: list[Certificate] = []
    for choice in signed["certificates"] or []:
        if choice.name != "certificate":
            continue
        try:
            certificates.append(Certificate.from_der(choice.chosen.dump()))
        except CertificateError as exc:
            warnings.append(f"unreadable certificate in SignedData ignored: {exc}")
    return _Parsed(standard, signed, signer_infos[0], tuple(certificates), tuple(warnings))


def _as(value: core.Asn1Value, spec: type[core.Asn1Value]) -> core.Asn1Value:
    """An attribute value as ``spec`` (asn1crypto leaves values of attribute types it does not know unparsed)."""
    return value.parse(spec) if isinstance(value, core.Any) else value


def _attributes(signer_info: cms.SignerInfo) -> dict[str, core.Asn1Value]:
    signed_attrs = signer_info["signed_attrs"]
    if isinstance(signed_attrs, core.Void):
        return {}
    return {attr["type"].dotted: attr["values"][0] for attr in signed_attrs if len(attr["values"])}


def _verify_signed_data(
    value: bytes,
    data: bytes,
    trust: TrustStore,
    at: datetime | None,
    claimed_time: datetime | None,
    sign_certificates: Sequence[Certificate],
) -> SignVerification:
    try:
        parsed = _parse_signed_data(value)
    except ValueError as exc:
        return SignVerification(
            Check("structure", CheckResult.FAILED, str(exc)),
            _skipped("not run: see package"),
            None,
            None,
            None,
        )
    signer_info = parsed.signer_info
    attributes = _attributes(signer_info)
    encap = parsed.signed_data["encap_content_info"]
    content = None if isinstance(encap["content"], core.Void) else bytes(encap["content"].native)
    form = SignForm.ATTRIBUTES if attributes else SignForm.CONTENT
    structure = Check(
        "structure",
        CheckResult.PASSED,
        f"{parsed.standard} ContentInfo(signedData), {len(value)} bytes: {form.value}",
        parsed.warnings,
    )

    sid = signer_info["sid"]
    signer = next((c for c in parsed.certificates if c.matches_signer_identifier(sid)), None)
    signer_source = "carried in the SignedData"
    if signer is None:
        signer = next((c for c in sign_certificates if c.matches_signer_identifier(sid)), None)
        signer_source = "given by the caller"

    signing_time, time_source = claimed_time, "SignatureDateTime in Signature.xml"
    if _SIGNING_TIME in attributes:
        try:
            signing_time = _as(attributes[_SIGNING_TIME], cms.Time).native.astimezone(UTC)
            time_source = "signed signingTime attribute"
        except _DECODE_ERRORS:
            time_source = "signingTime attribute unreadable; SignatureDateTime in Signature.xml"
    checked = signer_checks(
        signer,
        trust=trust,
        claimed=_claimed(signing_time, time_source),
        at=at,
        intermediates=parsed.certificates,
        missing_time=time_source,
    )

    unsigned = signer_info["unsigned_attrs"]
    has_timestamp = not isinstance(unsigned, core.Void) and any(
        attr["type"].dotted == _TIMESTAMP_TOKEN for attr in unsigned
    )
    timestamp = (
        Check(
            TIMESTAMP,
            CheckResult.SKIPPED,
            "a timeStampToken is present in the unsigned attributes; not evaluated (validity is judged at the "
            f"{time_source})",
        )
        if has_timestamp
        else Check(TIMESTAMP, CheckResult.SKIPPED, "no timestamp")
    )
    checks = (
        _digest_check(parsed, attributes, content, data),
        checked.chain,
        _signed_data_signature_check(parsed, attributes, content, signer, signer_source),
        checked.signing_time,
        timestamp,
    )
    return SignVerification(structure, checks, form, signer, signing_time)


def _digest_check(
    parsed: _Parsed, attributes: dict[str, core.Asn1Value], content: bytes | None, data: bytes
) -> Check:
    """SM3(Signature.xml) must equal the eContent (when present) and the messageDigest attribute (when
    present); at least one of them must bind the signature to Signature.xml."""
    algorithm = parsed.signer_info["digest_algorithm"]["algorithm"].dotted
    if algorithm not in (oids.SM3, oids.SM3_WITHOUT_KEY):
        return Check(DATA_HASH, CheckResult.UNKNOWN, f"SignerInfo digestAlgorithm {algorithm} is not SM3")
    digest = sm3(data)
    warnings: list[str] = []
    found: list[str] = []
    if content is not None:
        if content == digest:
            found.append("eContent")
        elif _base64_equals(content, digest):
            found.append("eContent (Base64)")
            warnings.append(
                "eContent holds Base64(SM3(Signature.xml)) instead of the 32-byte digest (ofdrw compatibility)"
            )
        else:
            return Check(
                DATA_HASH,
                CheckResult.FAILED,
                f"eContent ({content[:32].hex()}…) is not SM3(Signature.xml) ({digest.hex()}): Signature.xml was "
                "altered after signing",
            )
    if attributes:
        value = attributes.get(_MESSAGE_DIGEST)
        if value is None:
            return Check(DATA_HASH, CheckResult.FAILED, "signed attributes without a messageDigest attribute")
        try:
            message_digest = bytes(_as(value, core.OctetString).native)
        except _DECODE_ERRORS:
            return Check(DATA_HASH, CheckResult.FAILED, "messageDigest attribute is not an OCTET STRING")
        if message_digest != digest:
            return Check(
                DATA_HASH,
                CheckResult.FAILED,
                f"messageDigest ({message_digest.hex()}) is not SM3(Signature.xml) ({digest.hex()}): "
                "Signature.xml was altered after signing",
            )
        found.append("messageDigest attribute")
    if not found:
        return Check(
            DATA_HASH,
            CheckResult.FAILED,
            "neither eContent nor signed attributes: nothing binds the signature to Signature.xml",
        )
    return Check(
        DATA_HASH,
        CheckResult.PASSED,
        f"SM3 of Signature.xml ({len(data)} bytes) equals the {' and the '.join(found)}",
        tuple(warnings),
    )


def _base64_equals(content: bytes, digest: bytes) -> bool:
    try:
        return base64.b64decode(content, validate=True) == digest
    except (binascii.Error, ValueError):
        return False


def _signed_data_signature_check(
    parsed: _Parsed,
    attributes: dict[str, core.Asn1Value],
    content: bytes | None,
    signer: Certificate | None,
    signer_source: str,
) -> Check:
    signer_info = parsed.signer_info
    algorithm = signer_info["signature_algorithm"]["algorithm"].dotted
    if algorithm not in _SM2_SIGNATURE_OIDS:
        return Check(SIGNATURE, CheckResult.UNKNOWN, f"SignerInfo signature algorithm {algorithm} is not SM2")
    if signer is None:
        return Check(
            SIGNATURE,
            CheckResult.UNKNOWN,
            "signer certificate not found: the certificate the SignerInfo names is neither in the SignedData nor "
            "known: the signature cannot be verified",
        )
    if attributes:
        # The signature covers DER(SET OF Attribute): the received [0] IMPLICIT encoding with its tag set back to SET.
        encoded = signer_info["signed_attrs"].dump()
        message, covered = b"\x31" + encoded[1:], "DER of the signed-attribute SET"
    elif content is not None:
        message, covered = content, "eContent"
    else:
        return Check(
            SIGNATURE, CheckResult.FAILED, "no eContent and no signed attributes: nothing was signed"
        )
    signature = bytes(signer_info["signature"].native)
    if signer.public_key.verify(message, signature):
        return Check(
            SIGNATURE,
            CheckResult.PASSED,
            f"SM2 signature over the {covered} ({len(message)} bytes) verifies with the key of {signer.subject!r} "
            f"(certificate {signer_source})",
            signer.extension_warnings,
        )
    return Check(
        SIGNATURE,
        CheckResult.FAILED,
        f"SM2 signature over the {covered} does not verify with the key of {signer.subject!r}: the signed data "
        "was altered or signed with another key",
        signer.extension_warnings,
    )
