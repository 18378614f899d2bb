"""SM2 X.509 certificates (GB/T 20518): parse certificates made by anyone, issue our own.

Certificates are signed with SM2-with-SM3 (1.2.156.10197.1.501) under the default signer identity, the form
``openssl verify`` and ``openssl x509`` accept. The profiles follow RFC 5280 as GB/T 20518 does: a root CA
(basicConstraints cA, keyCertSign + cRLSign), a seal maker (制章者: signs seals) and a signer (签章者: applies
seals to documents), both end entities with digitalSignature + nonRepudiation.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import Enum
from functools import cached_property, lru_cache

from asn1crypto import cms, pem
from asn1crypto import x509 as asn1_x509

from certstore.crypto import oids
from certstore.crypto.encoding import KeyEncodingError, public_key_from_info, public_key_info
from certstore.crypto.sm2 import DEFAULT_SM2_ID, Signer, SM2PublicKey
from certstore.crypto.sm3 import sm3

__all__ = [
    "Certificate",
    "CertificateError",
    "CertificateProfile",
    "MalformedExtension",
    "issue_certificate",
    "load_certificates",
]

# RFC 4514 short names for the attributes that appear in practice; others print as their asn1crypto name.
_SHORT_NAMES = {
    "country_name": "C",
    "state_or_province_name": "ST",
    "locality_name": "L",
    "organization_name": "O",
    "organizational_unit_name": "OU",
    "common_name": "CN",
    "serial_number": "serialNumber",
    "email_address": "emailAddress",
    "organization_identifier": "organizationIdentifier",
}


#: Identities tried, in order, when checking a certificate signature (see :meth:`Certificate.is_signed_by`).
_CERT_SIGNER_IDS = (DEFAULT_SM2_ID, b"")


class CertificateError(ValueError):
    """Bytes that are not a usable X.509 certificate (malformed, or not an SM2 key). The message says why."""


_DECODE_ERRORS = (ValueError, TypeError, KeyError, IndexError, OverflowError, AttributeError)

#: The fields of a TBSCertificate other than its extensions: these must decode for a certificate to be read.
_TBS_FIELDS = (
    "version",
    "serial_number",
    "signature",
    "issuer",
    "validity",
    "subject",
    "subject_public_key_info",
    "issuer_unique_id",
    "subject_unique_id",
)


@dataclass(frozen=True)
class MalformedExtension:
    """An extension whose value does not decode (real certificates carry e.g. a GeneralNames encoded as a
    primitive in authorityKeyIdentifier). ``name`` is the asn1crypto name or the dotted OID; ``critical`` is
    True when the extension is marked critical *or* its criticality could not be read. A malformed non-critical
    extension is a warning; a malformed critical one means the certificate cannot be relied upon."""

    name: str
    critical: bool
    error: str

    def describe(self) -> str:
        kind = "critical" if self.critical else "non-critical"
        return f"malformed {kind} extension {self.name}: {self.error}"


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def _read_extensions(
    parsed: asn1_x509.Certificate,
) -> tuple[list[asn1_x509.Extension], tuple[MalformedExtension, ...]]:
    """Decode each extension on its own: (the extensions that decode, the ones that do not)."""
    tbs = parsed["tbs_certificate"]
    try:
        extensions = list(tbs["extensions"])
    except _DECODE_ERRORS as exc:
        return [], (
            MalformedExtension("extensions", True, f"the extension list does not decode: {_first_line(exc)}"),
        )
    good: list[asn1_x509.Extension] = []
    bad: list[MalformedExtension] = []
    for index, extension in enumerate(extensions):
        try:
            name = extension["extn_id"].native
        except _DECODE_ERRORS as exc:
            bad.append(MalformedExtension(f"#{index + 1}", True, _first_line(exc)))
            continue
        try:
            critical = bool(extension["critical"].native)
        except _DECODE_ERRORS as exc:
            bad.append(MalformedExtension(name, True, f"criticality unreadable: {_first_line(exc)}"))
            continue
        if name == extension["extn_id"].dotted:
            good.append(extension)  # an extension asn1crypto does not know: its value is opaque here
            continue
        try:
            extension["extn_value"].parsed.native  # noqa: B018 - decode the value now
        except _DECODE_ERRORS as exc:
            bad.append(MalformedExtension(name, critical, _first_line(exc)))
            continue
        good.append(extension)
    return good, tuple(bad)


def names_equal(a: asn1_x509.Name, b: asn1_x509.Name) -> bool:
    """RFC 5280 name comparison: identical encodings, else asn1crypto's string preparation (memoised — it is
    slow, and the same few issuer names recur in every verification). Names it cannot prepare (e.g. private-use
    characters from a damaged certificate) are equal only when their encodings are."""
    return encoded_names_equal(a.dump(), b.dump())


def encoded_names_equal(first: bytes, second: bytes) -> bool:
    """:func:`names_equal` of two DER-encoded Names (e.g. :attr:`Certificate.subject_der`, kept per
    certificate: no encoding again for every comparison)."""
    return first == second or _prepared_names_equal(first, second)


@lru_cache(maxsize=4096)
def _prepared_names_equal(first: bytes, second: bytes) -> bool:
    try:
        return bool(asn1_x509.Name.load(first) == asn1_x509.Name.load(second))
    except ValueError:
        return False


def format_name(name: asn1_x509.Name) -> str:
    """RFC 4514 string (most specific attribute first), e.g. ``CN=签章人,O=郑州市大数据局,C=CN``."""
    parts = []
    for rdn in reversed(name.chosen):
        values = []
        for attr in rdn:
            label = _SHORT_NAMES.get(attr["type"].native, attr["type"].native)
            value = attr["value"].native
            text = value if isinstance(value, str) else str(value)
            text = text.replace("\\", "\\\\").replace(",", "\\,").replace("+", "\\+")
            values.append(f"{label}={text}")
        parts.append("+".join(values))
    return ",".join(parts)


@dataclass(frozen=True, eq=False)
class Certificate:
    """An immutable, parsed X.509 certificate with an SM2 public key. Equality is byte equality."""

    der: bytes
    _asn1: asn1_x509.Certificate = field(repr=False, compare=False)
    #: The certificate as read, with extensions that do not decode left out (the same object as ``_asn1`` when
    #: every extension decodes): what the extension accessors read.
    _view: asn1_x509.Certificate = field(repr=False, compare=False)
    malformed_extensions: tuple[MalformedExtension, ...] = ()

    @classmethod
    def load(cls, data: bytes) -> Certificate:
        """One certificate from PEM or DER."""
        found = load_certificates(data)
        if len(found) != 1:
            raise CertificateError(f"expected one certificate, found {len(found)}")
        return found[0]

    @classmethod
    def from_der(cls, der: bytes) -> Certificate:
        """Parse DER. Parsed certificates are immutable and memoised: the same signer, maker and CA
        certificates arrive inside every document an agency seals."""
        return _parse_certificate(bytes(der))

    @classmethod
    def _parse(cls, der: bytes) -> Certificate:
        try:
            parsed = asn1_x509.Certificate.load(bytes(der), strict=True)
            # Full parse now, so malformed fields fail here and not later; extensions one by one below.
            tbs = parsed["tbs_certificate"]
            for name in _TBS_FIELDS:
                tbs[name].native  # noqa: B018
            parsed["signature_algorithm"].native  # noqa: B018
            parsed["signature_value"].native  # noqa: B018
        except _DECODE_ERRORS as exc:
            raise CertificateError(f"malformed certificate: {exc}") from exc
        good, malformed = _read_extensions(parsed)
        view = parsed
        if malformed:
            view = asn1_x509.Certificate.load(bytes(der), strict=True)
            view["tbs_certificate"]["extensions"] = asn1_x509.Extensions(
                [asn1_x509.Extension.load(e.dump()) for e in good]
            )
        try:
            view.critical_extensions  # noqa: B018 - the extension accessors must work on what is left
        except _DECODE_ERRORS as exc:
            raise CertificateError(f"malformed certificate extensions: {exc}") from exc
        cert = cls(bytes(der), parsed, view, malformed)
        try:
            cert.public_key  # noqa: B018 - refuse non-SM2 keys at the door
        except KeyEncodingError as exc:
            raise CertificateError(f"certificate {cert.subject!r}: {exc}") from exc
        return cert

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Certificate) and other.der == self.der

    def __hash__(self) -> int:
        return hash(self.der)

    @property
    def pem(self) -> bytes:
        return pem.armor("CERTIFICATE", self.der)

    @property
    def asn1(self) -> asn1_x509.Certificate:
        """The underlying asn1crypto structure, for callers that need fields not exposed here. Extensions that
        do not decode (:attr:`malformed_extensions`) are left out of it; :attr:`tbs_bytes` and
        :attr:`signature` are always the bytes as received."""
        return self._view

    @cached_property
    def extension_warnings(self) -> tuple[str, ...]:
        """One warning per malformed *non-critical* extension (the certificate is still used)."""
        return tuple(
            f"certificate {self.subject!r}: {m.describe()}; ignored"
            for m in self.malformed_extensions
            if not m.critical
        )

    @cached_property
    def unreliable_reason(self) -> str | None:
        """Why the certificate cannot be relied upon (a malformed critical extension), or None."""
        bad = [m.describe() for m in self.malformed_extensions if m.critical]
        if not bad:
            return None
        return f"certificate {self.subject!r} cannot be relied upon: {'; '.join(bad)}"

    @cached_property
    def subject(self) -> str:
        return format_name(self._asn1.subject)

    @cached_property
    def issuer(self) -> str:
        return format_name(self._asn1.issuer)

    @property
    def subject_name(self) -> asn1_x509.Name:
        return self._asn1.subject

    @cached_property
    def subject_der(self) -> bytes:
        """DER of the subject Name as encoded in the certificate."""
        return self._asn1.subject.dump()

    @cached_property
    def issuer_der(self) -> bytes:
        """DER of the issuer Name as encoded in the certificate."""
        return self._asn1.issuer.dump()

    @property
    def issuer_name(self) -> asn1_x509.Name:
        return self._asn1.issuer

    @cached_property
    def common_name(self) -> str | None:
        return _last(self._asn1.subject.native.get("common_name"))

    @cached_property
    def serial(self) -> int:
        return self._asn1.serial_number

    @cached_property
    def serial_hex(self) -> str:
        return format(self.serial, "X")

    @cached_property
    def not_before(self) -> datetime:
        return self._asn1["tbs_certificate"]["validity"]["not_before"].native

    @cached_property
    def not_after(self) -> datetime:
        return self._asn1["tbs_certificate"]["validity"]["not_after"].native

    def valid_at(self, when: datetime) -> bool:
        return self.not_before <= when <= self.not_after

    @cached_property
    def public_key(self) -> SM2PublicKey:
        return public_key_from_info(self._asn1.public_key, f"certificate {self.subject!r}")

    @cached_property
    def is_ca(self) -> bool:
        return bool(self._view.ca)

    @cached_property
    def has_basic_constraints(self) -> bool:
        return self._view.basic_constraints_value is not None

    @cached_property
    def path_length(self) -> int | None:
        return self._view.max_path_length

    @cached_property
    def key_usage(self) -> frozenset[str] | None:
        """Asserted key usages (asn1crypto names), or None when the certificate has no keyUsage extension."""
        value = self._view.key_usage_value
        return None if value is None else frozenset(value.native)

    @cached_property
    def extended_key_usage(self) -> frozenset[str] | None:
        """Dotted OIDs of the extendedKeyUsage purposes, or None when the certificate has none."""
        value = self._view.extended_key_usage_value
        return None if value is None else frozenset(purpose.dotted for purpose in value)

    @cached_property
    def organization(self) -> str | None:
        """The subject's organizationName (O), the last one when several."""
        return _last(self._asn1.subject.native.get("organization_name"))

    @cached_property
    def organization_identifier(self) -> str | None:
        """The subject's organizationIdentifier (2.5.4.97) — for a Chinese organisation its unified social credit
        code (统一社会信用代码), which ties a seal user's certificate to the organisation that owns the seal."""
        return _last(self._asn1.subject.native.get("organization_identifier"))

    @cached_property
    def subject_key_id(self) -> bytes | None:
        return self._view.key_identifier

    @cached_property
    def authority_key_id(self) -> bytes | None:
        return self._view.authority_key_identifier

    @cached_property
    def critical_extensions(self) -> frozenset[str]:
        return frozenset(self._view.critical_extensions)

    @cached_property
    def signature_algorithm(self) -> str:
        """Dotted OID of the algorithm the issuer signed with."""
        return self._asn1["signature_algorithm"]["algorithm"].dotted

    @cached_property
    def tbs_bytes(self) -> bytes:
        """The exact signed bytes (DER TBSCertificate as received)."""
        return self._asn1["tbs_certificate"].dump()

    @cached_property
    def signature(self) -> bytes:
        return self._asn1["signature_value"].native

    @cached_property
    def is_self_issued(self) -> bool:
        return names_equal(self._asn1.subject, self._asn1.issuer)

    def matches_signer_identifier(self, sid: cms.SignerIdentifier) -> bool:
        """Whether this is the certificate a CMS ``SignerIdentifier`` names (issuer + serial, or key id)."""
        if sid.name == "issuer_and_serial_number":
            chosen = sid.chosen
            return self.matches_issuer_and_serial(chosen["issuer"].dump(), chosen["serial_number"].native)
        return self.subject_key_id == sid.chosen.native

    def matches_issuer_and_serial(self, issuer_der: bytes, serial: int) -> bool:
        """Whether this certificate is the one an IssuerAndSerialNumber names (the issuer Name's DER)."""
        return encoded_names_equal(self.issuer_der, issuer_der) and self.serial == serial

    @cached_property
    def fingerprint(self) -> str:
        """SM3 of the DER encoding, hex."""
        return sm3(self.der).hex()

    def is_signed_by(self, issuer_key: SM2PublicKey) -> bool:
        """True when this certificate's signature verifies with ``issuer_key`` (SM2-with-SM3).

        GB/T 20518 certificates are signed under the default identity 1234567812345678, which we use when
        issuing. OpenSSL 3.0 signs and verifies certificates with an *empty* identity unless told
        ``-sigopt/-vfyopt distid:1234567812345678``, so certificates made by a plain ``openssl req -x509`` or
        ``openssl x509 -req`` are accepted under the empty identity as well.
        """
        if self.signature_algorithm != oids.SM2_WITH_SM3:
            return False
        if self._asn1["signature_value"].contents[:1] != b"\x00":  # BIT STRING unused bits must be 0
            return False
        return _certificate_signature_valid(self.tbs_bytes, self.signature, issuer_key)

    def describe(self) -> dict[str, object]:
        """A JSON-able summary for CLI and reports."""
        return {
            "subject": self.subject,
            "issuer": self.issuer,
            "serial": self.serial_hex,
            "not_before": self.not_before.isoformat(),
            "not_after": self.not_after.isoformat(),
            "is_ca": self.is_ca,
            "key_usage": sorted(self.key_usage) if self.key_usage is not None else None,
            "fingerprint_sm3": self.fingerprint,
            "malformed_extensions": [m.describe() for m in self.malformed_extensions],
        }


def _last(value: object) -> str | None:
    """A Name attribute's value as ``Name.native`` gives it: a string, or a list when repeated (the last wins)."""
    if isinstance(value, list):
        value = value[-1] if value else None
    return value if isinstance(value, str) else None


@lru_cache(maxsize=1024)
def _parse_certificate(der: bytes) -> Certificate:
    return Certificate._parse(der)


@lru_cache(maxsize=1024)
def _certificate_signature_valid(tbs: bytes, signature: bytes, issuer_key: SM2PublicKey) -> bool:
    """Memoised: the same few signer and CA certificates are checked for every document verified."""
    return any(issuer_key.verify(tbs, signature, sm2_id) for sm2_id in _CERT_SIGNER_IDS)


def load_certificates(data: bytes) -> list[Certificate]:
    """All certificates in PEM (one or more blocks) or a single DER certificate."""
    if pem.detect(data):
        try:
            blocks = [der for kind, _, der in pem.unarmor(data, multiple=True) if kind == "CERTIFICATE"]
        except ValueError as exc:
            raise CertificateError(f"malformed PEM: {exc}") from exc
        if not blocks:
            raise CertificateError("PEM data holds no CERTIFICATE block")
        return [Certificate.from_der(der) for der in blocks]
    return [Certificate.from_der(data)]


class CertificateProfile(Enum):
    """What a certificate we issue is for: decides basicConstraints and keyUsage."""

    ROOT_CA = "root-ca"
    SEAL_MAKER = "seal-maker"  # 制章者
    SIGNER = "signer"  # 签章者 (agency or repository)
    TSA = "tsa"  # 时间戳服务 (RFC 3161 time-stamp authority)

    @property
    def is_ca(self) -> bool:
        return self is CertificateProfile.ROOT_CA

    @property
    def key_usage(self) -> set[str]:
        if self.is_ca:
            return {"digital_signature", "key_cert_sign", "crl_sign"}
        return {"digital_signature", "non_repudiation"}

    @property
    def extended_key_usage(self) -> tuple[str, bool] | None:
        """(key purpose OID, critical) of the profile's extendedKeyUsage, or None: seal makers and seal users
        carry certstore's purposes (:mod:`certstore.crypto.oids`); a TSA carries id-kp-timeStamping, critical as
        RFC 3161 §2.3 requires."""
        return {
            CertificateProfile.SEAL_MAKER: (oids.SEAL_MAKER_PURPOSE, False),
            CertificateProfile.SIGNER: (oids.SEAL_SIGNER_PURPOSE, False),
            CertificateProfile.TSA: (oids.TIME_STAMPING, True),
        }.get(self)


def key_identifier(public_key: SM2PublicKey) -> bytes:
    """Subject key identifier: SM3 of the subjectPublicKey bits, truncated to 160 bits (RFC 7093 method 1)."""
    return sm3(public_key.uncompressed)[:20]


def issue_certificate(
    subject: Mapping[str, str],
    public_key: SM2PublicKey,
    *,
    issuer: Certificate | None,
    issuer_signer: Signer,
    profile: CertificateProfile,
    not_before: datetime,
    not_after: datetime,
    serial: int | None = None,
) -> Certificate:
    """Issue an SM2-with-SM3 certificate. ``issuer=None`` makes a self-signed certificate, in which case
    ``issuer_signer`` must hold the private key of ``public_key``."""
    if not_before.tzinfo is None or not_after.tzinfo is None:
        raise ValueError("certificate validity needs timezone-aware datetimes")
    if not_after <= not_before:
        raise ValueError("certificate notAfter must be later than notBefore")
    if issuer is None and issuer_signer.public_key != public_key:
        raise ValueError("a self-signed certificate must be signed by its own key")
    if issuer is not None:
        if issuer_signer.public_key != issuer.public_key:
            raise ValueError("issuer_signer does not hold the issuer certificate's key")
        if not issuer.is_ca:
            raise ValueError(f"issuer {issuer.subject!r} is not a CA")
    subject_name = asn1_x509.Name.build(dict(subject))
    ski = key_identifier(public_key)
    aki = issuer.subject_key_id if issuer is not None else ski
    extensions = [
        {
            "extn_id": "basic_constraints",
            "critical": True,
            "extn_value": {"ca": profile.is_ca, "path_len_constraint": None},
        },
        {"extn_id": "key_usage", "critical": True, "extn_value": profile.key_usage},
        {"extn_id": "key_identifier", "critical": False, "extn_value": ski},
    ]
    if aki is not None:
        extensions.append(
            {"extn_id": "authority_key_identifier", "critical": False, "extn_value": {"key_identifier": aki}}
        )
    if profile.extended_key_usage is not None:
        purpose, critical = profile.extended_key_usage
        extensions.append({"extn_id": "extended_key_usage", "critical": critical, "extn_value": [purpose]})
    algorithm = {"algorithm": oids.SM2_WITH_SM3}
    tbs = asn1_x509.TbsCertificate(
        {
            "version": "v3",
            "serial_number": serial if serial is not None else int.from_bytes(os.urandom(16), "big") >> 1,
            "signature": algorithm,
            "issuer": issuer.subject_name if issuer is not None else subject_name,
            "validity": {
                "not_before": asn1_x509.Time(name="utc_time", value=_utc(not_before))
                if not_before.year < 2050
                else asn1_x509.Time(name="general_time", value=_utc(not_before)),
                "not_after": asn1_x509.Time(name="utc_time", value=_utc(not_after))
                if not_after.year < 2050
                else asn1_x509.Time(name="general_time", value=_utc(not_after)),
            },
            "subject": subject_name,
            "subject_public_key_info": public_key_info(public_key),
            "extensions": extensions,
        }
    )
    tbs_der = tbs.dump()
    cert = asn1_x509.Certificate(
        {
            "tbs_certificate": tbs,
            "signature_algorithm": algorithm,
            "signature_value": issuer_signer.sign(tbs_der),
        }
    )
    return Certificate.from_der(cert.dump())


def _utc(when: datetime) -> datetime:
    return when.astimezone(UTC).replace(microsecond=0)
