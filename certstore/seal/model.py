"""Parsed electronic seals (电子印章) and seal signatures (电子签章数据), and the parsers that make them.

:func:`parse_seal` and :func:`parse_seal_signature` accept the layouts in the wild: GB/T 38540-2020 ("v4"),
GM/T 0031-2014 ("v1", header versions 1, 2, 3, 11 …) and ofdrw's "v5", told apart by structure as ofdrw's
``VersionParser`` does. The results are immutable dataclasses that keep the **exact byte slices that were
signed** (:attr:`Seal.signed_bytes`, :attr:`SealSignature.signed_bytes`): signatures are verified over the
bytes as received, never over a re-encoding (real seals are not always canonical DER; see the explicit
``critical FALSE`` in tax-system seals).

Anything that does not match the defined format raises :class:`SealFormatError`, whose message names the
field, e.g. ``SES_Signature.toSign.eseal.eSealInfo.property.validEnd: ...``. Tolerated deviations (trailing
bytes after the DER, GM/T 0031 certificate lists holding non-certificates, vendor time formats) are recorded
in ``warnings``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from functools import lru_cache
from hashlib import sha256

from asn1crypto import cms, core, parser, tsp

from certstore.crypto.sm3 import sm3
from certstore.crypto.x509 import Certificate, CertificateError
from certstore.timezones import CHINA_STANDARD_TIME

from . import asn1
from .der import walk_signature_v4

__all__ = [
    "CertDigest",
    "ExtData",
    "Seal",
    "SealFormatError",
    "SealLayout",
    "SealPicture",
    "SealSignature",
    "parse_seal",
    "parse_seal_signature",
]

#: China Standard Time, the zone GM/T 0031 vendors write zone-less ``yyyy-MM-dd HH:mm:ss`` times in.

# AttributeError: asn1crypto fails that way on some malformed input (e.g. an "InstanceOf" child without .native).
_DECODE_ERRORS = (ValueError, TypeError, KeyError, IndexError, OverflowError, AttributeError)


class SealFormatError(ValueError):
    """The bytes are not a seal / seal signature in a supported layout. The message names the field."""

    def __init__(self, message: str) -> None:
        # asn1crypto appends "\n    while parsing <class>" lines; keep reports on one line.
        super().__init__(re.sub(r"\s*\n\s*", "; ", message.strip()))


class SealLayout(StrEnum):
    """Which standard's ASN.1 layout a seal or seal signature follows."""

    GMT0031 = "GM/T 0031-2014"
    GBT38540 = "GB/T 38540-2020"
    #: ofdrw's "v5" (header version 5, optional seal time stamp), which it attributes to a GM/T 0031-2025.
    #: Verified with the GB/T 38540 rules; no other source confirms the layout.
    V5 = "GM/T 0031-2025 (v5)"


@dataclass(frozen=True)
class SealPicture:
    """印章图像 (SES_ESPictrueInfo): image ``type`` (PNG, JPG, GIF, BMP, SVG, ofd …), size in mm."""

    type: str
    data: bytes = field(repr=False)
    width_mm: int
    height_mm: int


@dataclass(frozen=True)
class ExtData:
    """A vendor extension (ExtData): OID, criticality and the raw value octets."""

    oid: str
    critical: bool
    value: bytes


@dataclass(frozen=True)
class CertDigest:
    """One entry of a ``certListType`` 2 seal: a vendor-named digest ``type`` and the digest ``value``."""

    type: str
    value: bytes


@dataclass(frozen=True)
class Seal:
    """An electronic seal (电子印章, SESeal) made by a seal maker (制章者).

    ``signer_certificates`` are the DER certificates of the signers (签章者) allowed to use the seal when
    ``cert_list_type`` is 1; ``cert_digests`` their digests when it is 2. ``signed_bytes`` is what the maker
    signed: DER(SES_SealInfo) for GB/T 38540 (and v5), DER(SEQUENCE{SES_SealInfo, cert, signatureAlgorithm})
    for GM/T 0031, taken from the received encodings. ``timestamp`` is a v5 seal's time-stamp token (not
    verified).
    """

    layout: SealLayout
    version: int
    vendor_id: str
    es_id: str
    seal_type: int
    name: str
    cert_list_type: int
    signer_certificates: tuple[bytes, ...] = field(repr=False)
    cert_digests: tuple[CertDigest, ...]
    created: datetime
    valid_start: datetime
    valid_end: datetime
    picture: SealPicture
    ext_datas: tuple[ExtData, ...]
    maker_certificate: Certificate
    signature_algorithm: str
    signature_value: bytes = field(repr=False)
    signed_bytes: bytes = field(repr=False)
    der: bytes = field(repr=False)
    timestamp: bytes | None = field(default=None, repr=False)
    warnings: tuple[str, ...] = ()

    def valid_at(self, when: datetime) -> bool:
        """validStart ≤ when ≤ validEnd."""
        return self.valid_start <= when <= self.valid_end

    def match_signer(self, certificate: Certificate) -> str | None:
        """How ``certificate`` is listed in the seal (a description for reports), or None when it is not.

        certListType 1: byte comparison with each listed certificate. certListType 2: each listed digest is
        compared with the SM3 and the SHA-256 digest of the certificate's DER encoding (the digest algorithm
        naming in ``CertDigestObj.type`` is vendor-defined).
        """
        if self.cert_list_type == asn1.CERT_LIST_CERTIFICATES:
            for index, listed in enumerate(self.signer_certificates):
                if listed == certificate.der:
                    return (
                        f"certificate {index + 1} of {len(self.signer_certificates)} in the seal's certList"
                    )
            return None
        digests = {"SM3": sm3(certificate.der), "SHA-256": sha256(certificate.der).digest()}
        for index, entry in enumerate(self.cert_digests):
            for algorithm, value in digests.items():
                if entry.value == value:
                    count = len(self.cert_digests)
                    return f"{algorithm} digest {index + 1} of {count} in the seal's certDigestList"
        return None

    def describe(self) -> dict[str, object]:
        """A JSON-able summary (for ``certstore seal show``)."""
        signers: list[str] = []
        for der in self.signer_certificates:
            try:
                signers.append(Certificate.from_der(der).subject)
            except CertificateError as exc:
                signers.append(f"<unreadable certificate: {exc}>")
        return {
            "id": self.es_id,
            "name": self.name,
            "type": self.seal_type,
            "layout": self.layout.value,
            "version": self.version,
            "vendor": self.vendor_id,
            "created": self.created.isoformat(),
            "valid_start": self.valid_start.isoformat(),
            "valid_end": self.valid_end.isoformat(),
            "maker": self.maker_certificate.subject,
            "maker_issuer": self.maker_certificate.issuer,
            "cert_list_type": self.cert_list_type,
            "signers": signers,
            "signer_digests": [{"type": d.type, "value": d.value.hex()} for d in self.cert_digests],
            "picture": {
                "type": self.picture.type,
                "width_mm": self.picture.width_mm,
                "height_mm": self.picture.height_mm,
                "bytes": len(self.picture.data),
            },
            "extensions": [
                {"oid": e.oid, "critical": e.critical, "value": e.value.hex()} for e in self.ext_datas
            ],
            "signature_algorithm": self.signature_algorithm,
            "warnings": list(self.warnings),
        }


@dataclass(frozen=True)
class SealSignature:
    """A seal signature (电子签章数据, SES_Signature): a signer (签章者) applied ``seal`` to data whose
    digest is ``data_hash``, at ``signing_time`` (timeInfo).

    ``signed_bytes`` is DER(TBS_Sign) as received. For GB/T 38540 the signer certificate and algorithm sit
    outside it; for GM/T 0031 they are inside. ``timestamp`` is the DER time-stamp token over the signature
    value, when present (GB/T 38540 only).
    """

    layout: SealLayout
    version: int
    seal: Seal
    signing_time: datetime
    data_hash: bytes
    property_info: str
    ext_datas: tuple[ExtData, ...]
    signer_certificate: Certificate
    signature_algorithm: str
    signature_value: bytes = field(repr=False)
    timestamp: bytes | None = field(repr=False)
    signed_bytes: bytes = field(repr=False)
    der: bytes = field(repr=False)
    warnings: tuple[str, ...] = ()

    def describe(self) -> dict[str, object]:
        """A JSON-able summary."""
        return {
            "layout": self.layout.value,
            "version": self.version,
            "signing_time": self.signing_time.isoformat(),
            "property_info": self.property_info,
            "data_hash": self.data_hash.hex(),
            "signer": self.signer_certificate.subject,
            "signer_issuer": self.signer_certificate.issuer,
            "signature_algorithm": self.signature_algorithm,
            "timestamp": self.timestamp is not None,
            "extensions": [
                {"oid": e.oid, "critical": e.critical, "value": e.value.hex()} for e in self.ext_datas
            ],
            "seal": self.seal.describe(),
            "warnings": list(self.warnings),
        }


# --- Decoding helpers ------------------------------------------------------------------------------------


_UNIVERSAL_NAMES = {
    1: "BOOLEAN",
    2: "INTEGER",
    3: "BIT STRING",
    4: "OCTET STRING",
    5: "NULL",
    6: "OBJECT IDENTIFIER",
    12: "UTF8String",
    16: "SEQUENCE",
    17: "SET",
    19: "PrintableString",
    22: "IA5String",
    23: "UTCTime",
    24: "GeneralizedTime",
}


def _tag_name(class_: int, tag: int) -> str:
    if class_ == 0:
        return _UNIVERSAL_NAMES.get(tag, f"universal tag {tag}")
    if class_ == 2:
        return f"[{tag}]"
    return f"[{('UNIVERSAL', 'APPLICATION', 'CONTEXT', 'PRIVATE')[class_]} {tag}]"


def _expected_ids(
    spec: type[core.Asn1Value] | None, params: dict[str, object]
) -> set[tuple[int, int]] | None:
    """The (class, tag) pairs a field accepts, or None for "anything" (Any, spec callbacks)."""
    if "explicit" in params:
        return {(2, int(params["explicit"]))}  # type: ignore[call-overload]
    if "implicit" in params:
        return {(2, int(params["implicit"]))}  # type: ignore[call-overload]
    if spec is None or issubclass(spec, core.Any):
        return None
    if issubclass(spec, core.Choice):
        ids: set[tuple[int, int]] = set()
        for _, alt_spec, *_rest in spec._alternatives:
            ids.add((alt_spec.class_, alt_spec.tag))
        return ids
    return {(spec.class_, spec.tag)}


def _spec_name(spec: type[core.Asn1Value] | None) -> str:
    if spec is None:
        return "a value"
    if issubclass(spec, core.Choice):
        return " or ".join(_tag_name(alt.class_, alt.tag) for _, alt, *_r in spec._alternatives)
    if issubclass(spec, core.Sequence | core.SequenceOf):
        return "SEQUENCE"
    return _tag_name(spec.class_, spec.tag)


def _split(contents: bytes, path: str, names: list[str]) -> list[bytes]:
    """The encodings of the elements in the contents of a constructed value."""
    children: list[bytes] = []
    offset = 0
    while offset < len(contents):
        try:
            _class, _method, _tag, header, body, trailer = parser.parse(contents[offset:])
        except _DECODE_ERRORS as exc:
            where = names[len(children)] if len(children) < len(names) else f"[{len(children)}]"
            raise SealFormatError(f"{path}{where}: {exc}") from exc
        size = len(header) + len(body) + len(trailer)
        children.append(contents[offset : offset + size])
        offset += size
    return children


def _find_problem(spec: type[core.Asn1Value] | None, data: bytes, path: str) -> str | None:
    """Walk ``data`` against ``spec`` field by field; '<field path>: <problem>' for the first problem found.

    Only used to explain a decoding failure: asn1crypto names the failing structure, not the field.
    """
    try:
        class_, _method, tag, _header, contents, _trailer = parser.parse(data)
    except _DECODE_ERRORS as exc:
        return f"{path}: {exc}"
    if spec is None or issubclass(spec, core.Any):
        return None
    if issubclass(spec, core.Sequence) and spec._fields:
        if (class_, tag) != (0, 16):
            return f"{path}: expected SEQUENCE, found {_tag_name(class_, tag)}"
        try:
            children = _split(contents, f"{path}.", [name for name, *_ in spec._fields])
        except SealFormatError as exc:
            return str(exc)
        index = 0
        for name, field_spec, params in spec._fields:
            accepted = _expected_ids(field_spec, params)
            child_id = None
            if index < len(children):
                child_class, _m, child_tag, *_rest = parser.parse(children[index])
                child_id = (child_class, child_tag)
            if child_id is not None and (accepted is None or child_id in accepted):
                child = children[index]
                index += 1
                if "explicit" in params:
                    child = parser.parse(child)[4]
                problem = _find_problem(field_spec, child, f"{path}.{name}")
                if problem:
                    return problem
            elif "optional" in params or "default" in params:
                continue
            elif child_id is None:
                return f"{path}.{name}: missing (expected {_spec_name(field_spec)})"
            else:
                return f"{path}.{name}: expected {_spec_name(field_spec)}, found {_tag_name(*child_id)}"
        return None
    if issubclass(spec, core.SequenceOf):
        if (class_, tag) != (0, 16):
            return f"{path}: expected SEQUENCE OF, found {_tag_name(class_, tag)}"
        try:
            children = _split(contents, path, [])
        except SealFormatError as exc:
            return str(exc)
        for number, child in enumerate(children):
            problem = _find_problem(spec._child_spec, child, f"{path}[{number}]")
            if problem:
                return problem
        return None
    try:
        spec.load(data, strict=True).native  # noqa: B018 - decode to find content errors
    except _DECODE_ERRORS as exc:
        return f"{path}: expected {_spec_name(spec)}: {exc}"
    return None


def _decode(spec: type[core.Asn1Value], data: bytes, path: str) -> tuple[core.Asn1Value, list[str]]:
    """Fully decode ``data`` as ``spec``; (value, warnings). Errors name the offending field.

    Tolerated, with a warning each: bytes after the DER value, and elements after the last defined field of a
    SEQUENCE (asn1crypto keeps them aside; they take no part in verification beyond the bytes they occupy).
    """
    try:
        value = spec.load(data, strict=False)
        value.native  # noqa: B018 - asn1crypto parses lazily; decode everything now
    except _DECODE_ERRORS as exc:
        problem = _find_problem(spec, data, path)
        raise SealFormatError(problem or f"{path}: {exc}") from exc
    warnings = _extra_elements(value, path)
    trailing = len(data) - len(value.dump())
    if trailing:
        warnings.append(f"{trailing} byte(s) after the DER {path} ignored")
    return value, warnings


def _extra_elements(value: core.Asn1Value, path: str) -> list[str]:
    found: list[str] = []
    if isinstance(value, core.Sequence) and value._fields and value.children is not None:
        defined = len(value._fields)
        if len(value.children) > defined:
            found.append(
                f"{path}: {len(value.children) - defined} unexpected element(s) after the last field ignored"
            )
        for (name, _spec, _params), child in zip(value._fields, value.children, strict=False):
            found.extend(
                _extra_elements(value[name] if not isinstance(child, tuple) else child, f"{path}.{name}")
            )
    elif isinstance(value, core.SequenceOf):
        for index, item in enumerate(value):
            found.extend(_extra_elements(item, f"{path}[{index}]"))
    elif isinstance(value, core.Choice):
        found.extend(_extra_elements(value.chosen, path))
    return found


def _bit_string_octets(value: core.OctetBitString, path: str) -> bytes:
    """The octets of a BIT STRING that must hold whole bytes (signatures, digests)."""
    contents = value.contents
    if not contents or contents[0] != 0:
        raise SealFormatError(
            f"{path}: BIT STRING has {contents[0] if contents else '?'} unused bits, expected 0"
        )
    return bytes(contents[1:])


def _utc(value: datetime, path: str, warnings: list[str]) -> datetime:
    if value.tzinfo is None:
        warnings.append(f"{path} has no time zone; read as UTC")
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def _load_certificate(der: bytes, path: str) -> Certificate:
    try:
        cert = Certificate.from_der(der)
    except CertificateError as exc:
        raise SealFormatError(f"{path}: {exc}") from exc
    # The certificate's signature is a BIT STRING of whole octets; asn1crypto would silently mask unused bits,
    # so an altered unused-bits octet would go unnoticed by the issuer-signature check.
    signature_bits = cert.asn1["signature_value"].contents
    if not signature_bits or signature_bits[0] != 0:
        raise SealFormatError(f"{path}: certificate signatureValue BIT STRING has unused bits")
    return cert


def _ext_datas(value: core.Asn1Value) -> tuple[ExtData, ...]:
    if isinstance(value, core.Void):
        return ()
    return tuple(
        ExtData(item["extnID"].dotted, bool(item["critical"].native), bytes(item["extnValue"].native))
        for item in value
    )


def _ia5(value: core.Asn1Value) -> str:
    return str(value.native)


class _AnyList(core.SequenceOf):
    _child_spec = core.Any


def _element_count(data: bytes, path: str) -> int:
    try:
        return len(_AnyList.load(data, strict=False))
    except _DECODE_ERRORS as exc:
        raise SealFormatError(f"{path}: not a complete DER SEQUENCE: {exc}") from exc


def _header_version(seal_data: bytes) -> int | None:
    """SES_Header.version of a seal, read without committing to a layout (None when unreadable)."""
    try:
        seal_info = _AnyList.load(seal_data, strict=False)[0].dump()
        header = _AnyList.load(seal_info, strict=False)[0].dump()
        return int(asn1.SESHeader.load(header, strict=False)["version"].native)
    except (*_DECODE_ERRORS, AttributeError):
        return None


# --- Seals -----------------------------------------------------------------------------------------------


def parse_seal(data: bytes) -> Seal:
    """Parse an electronic seal (``.esl``, or the eseal inside a signature) of either layout."""
    return _parse_seal(bytes(data), "SESeal")


@lru_cache(maxsize=256)
def _parse_seal(data: bytes, path: str) -> Seal:
    """Memoised per (DER, path): an agency stamps thousands of documents with the same seal, and a
    :class:`Seal` is immutable. Refused seals raise each time (exceptions are not cached)."""
    layout = _seal_layout(data, path)
    if layout is SealLayout.GMT0031:
        return _parse_seal_v1(data, path)
    return _parse_seal_v4(data, path, layout)


def _seal_layout(data: bytes, path: str) -> SealLayout:
    """By structure, as ofdrw's VersionParser: 2 elements ⇒ GM/T 0031; 4 ⇒ v5 if SES_Header.version is 5,
    else GB/T 38540; 5 ⇒ v5."""
    count = _element_count(data, path)
    if count == 2:
        return SealLayout.GMT0031
    if count == 4:
        return SealLayout.V5 if _header_version(data) == 5 else SealLayout.GBT38540
    if count == 5:
        return SealLayout.V5
    raise SealFormatError(
        f"{path}: {count} elements; GB/T 38540 seals have 4 (eSealInfo, cert, signAlgID, signedValue), "
        "GM/T 0031 seals 2 (esealInfo, signInfo)"
    )


def _check_header(header: core.Asn1Value, path: str) -> tuple[int, str]:
    if header["ID"].native != "ES":
        raise SealFormatError(f"{path}.ID: {header['ID'].native!r}, expected 'ES'")
    return int(header["version"].native), _ia5(header["Vid"])


def _picture(value: core.Asn1Value) -> SealPicture:
    return SealPicture(
        type=_ia5(value["type"]),
        data=bytes(value["data"].native),
        width_mm=int(value["width"].native),
        height_mm=int(value["height"].native),
    )


def _parse_seal_v4(data: bytes, path: str, layout: SealLayout) -> Seal:
    """GB/T 38540 seals, and ofdrw's v5 (same fields, different names for the signature and a time stamp)."""
    v5 = layout is SealLayout.V5
    value, warnings = _decode(asn1.SESSealV5 if v5 else asn1.SESSeal, data, path)
    info = value["eSealInfo"]
    info_path = f"{path}.eSealInfo"
    version, vendor = _check_header(info["header"], f"{info_path}.header")
    if v5:
        warnings.append("v5 seal layout (ofdrw's GM/T 0031-2025): verified with the GB/T 38540 rules")
    elif version != 4:
        warnings.append(f"{info_path}.header.version is {version} in the GB/T 38540 layout, which mandates 4")
    prop = info["property"]
    prop_path = f"{info_path}.property"
    list_type = int(prop["certListType"].native)
    certificates: tuple[bytes, ...] = ()
    digests: tuple[CertDigest, ...] = ()
    if list_type == asn1.CERT_LIST_CERTIFICATES:
        certificates = tuple(bytes(item.native) for item in prop["certList"])
    elif list_type == asn1.CERT_LIST_DIGESTS:
        digests = tuple(
            CertDigest(str(item["type"].native), bytes(item["value"].native)) for item in prop["certList"]
        )
    else:
        raise SealFormatError(
            f"{prop_path}.certListType: {list_type}, expected 1 (certificates) or 2 (digests)"
        )
    if not certificates and not digests:
        raise SealFormatError(f"{prop_path}.certList: empty; a seal must list at least one signer")
    maker = _load_certificate(bytes(value["cert"].native), f"{path}.cert")
    algorithm_field, signature_field = (
        ("signatureAlgID", "signatureValue") if v5 else ("signAlgID", "signedValue")
    )
    timestamp = None
    if v5 and not isinstance(value["timeStamp"], core.Void):
        timestamp = _bit_string_octets(value["timeStamp"], f"{path}.timeStamp")
        warnings.append(f"{path}.timeStamp present; the seal's time stamp is not verified")
    return Seal(
        layout=layout,
        version=version,
        vendor_id=vendor,
        es_id=_ia5(info["esID"]),
        seal_type=int(prop["type"].native),
        name=str(prop["name"].native),
        cert_list_type=list_type,
        signer_certificates=certificates,
        cert_digests=digests,
        created=_utc(prop["createDate"].native, f"{prop_path}.createDate", warnings),
        valid_start=_utc(prop["validStart"].native, f"{prop_path}.validStart", warnings),
        valid_end=_utc(prop["validEnd"].native, f"{prop_path}.validEnd", warnings),
        picture=_picture(info["picture"]),
        ext_datas=_ext_datas(info["extDatas"]),
        maker_certificate=maker,
        signature_algorithm=value[algorithm_field].dotted,
        signature_value=_bit_string_octets(value[signature_field], f"{path}.{signature_field}"),
        signed_bytes=info.dump(),
        der=value.dump(),
        timestamp=timestamp,
        warnings=tuple(warnings),
    )


def _parse_seal_v1(data: bytes, path: str) -> Seal:
    value, warnings = _decode(asn1.SESSealV1, data, path)
    info = value["esealInfo"]
    sign_info = value["signInfo"]
    info_path = f"{path}.esealInfo"
    version, vendor = _check_header(info["header"], f"{info_path}.header")
    prop = info["property"]
    prop_path = f"{info_path}.property"
    certificates: list[bytes] = []
    for index, entry in enumerate(prop["certList"]):
        raw = entry.dump()
        class_, _method, tag, _header, contents, _trailer = parser.parse(raw)
        if (class_, tag) == (0, 4):
            certificates.append(bytes(contents))
        else:
            shown = contents[:40].decode("ascii", "replace")
            warnings.append(
                f"{prop_path}.certList[{index}] is {_tag_name(class_, tag)} {shown!r}, not a certificate"
            )
    maker = _load_certificate(bytes(sign_info["cert"].native), f"{path}.signInfo.cert")
    signed_range = asn1.SESSealV1SignedRange(
        {
            "esealInfo": core.Any.load(info.dump()),
            "cert": core.Any.load(sign_info["cert"].dump()),
            "signatureAlgorithm": core.Any.load(sign_info["signatureAlgorithm"].dump()),
        }
    )
    for name in ("createDate", "validStart", "validEnd"):
        if prop[name].name == "general_time":
            warnings.append(f"{prop_path}.{name} is GeneralizedTime; GM/T 0031 specifies UTCTime")
    return Seal(
        layout=SealLayout.GMT0031,
        version=version,
        vendor_id=vendor,
        es_id=_ia5(info["esID"]),
        seal_type=int(prop["type"].native),
        name=str(prop["name"].native),
        cert_list_type=asn1.CERT_LIST_CERTIFICATES,
        signer_certificates=tuple(certificates),
        cert_digests=(),
        created=_utc(prop["createDate"].native, f"{prop_path}.createDate", warnings),
        valid_start=_utc(prop["validStart"].native, f"{prop_path}.validStart", warnings),
        valid_end=_utc(prop["validEnd"].native, f"{prop_path}.validEnd", warnings),
        picture=_picture(info["picture"]),
        ext_datas=_ext_datas(info["extDatas"]),
        maker_certificate=maker,
        signature_algorithm=sign_info["signatureAlgorithm"].dotted,
        signature_value=_bit_string_octets(sign_info["signData"], f"{path}.signInfo.signData"),
        signed_bytes=signed_range.dump(),
        der=value.dump(),
        warnings=tuple(warnings),
    )


# --- Seal signatures -------------------------------------------------------------------------------------


def parse_seal_signature(data: bytes) -> SealSignature:
    """Parse a seal signature (``SignedValue.dat`` of an OFD ``Type="Seal"`` signature) of either layout.

    A canonical GB/T 38540 signature is read by the DER walker (:mod:`certstore.seal.der`, ~10× faster);
    anything it does not accept, and every signature it reads whose seal or certificate is refused, goes
    through the full asn1crypto parser (:func:`_parse_signature_full`), which names the error. Both give the
    same result (``tests/seal/test_der_walker.py``).
    """
    data = bytes(data)
    try:
        walked = _walk_signature_v4(data)
    except SealFormatError:
        walked = None
    return walked if walked is not None else _parse_signature_full(data)


def _walk_signature_v4(data: bytes) -> SealSignature | None:
    """The fast path: None when the walker does not accept ``data``; the checks and result of
    :func:`_parse_signature_v4` otherwise (a refusal is re-derived by the full parser)."""
    parts = walk_signature_v4(data)
    if parts is None:
        return None
    tbs_path = "SES_Signature.toSign"
    seal = _parse_seal(parts.eseal, f"{tbs_path}.eseal")
    if seal.layout is SealLayout.GMT0031 or parts.version != seal.version:
        return None
    return SealSignature(
        layout=seal.layout,
        version=parts.version,
        seal=seal,
        signing_time=parts.signing_time,
        data_hash=parts.data_hash,
        property_info=parts.property_info,
        ext_datas=(),
        signer_certificate=_load_certificate(parts.cert, "SES_Signature.cert"),
        signature_algorithm=parts.signature_algorithm,
        signature_value=parts.signature_value,
        timestamp=parts.timestamp,
        signed_bytes=parts.signed_bytes,
        der=data,
        warnings=(),
    )


def _parse_signature_full(data: bytes) -> SealSignature:
    """Every layout, through asn1crypto: tolerated deviations with warnings, errors naming the field."""
    path = "SES_Signature"
    count = _element_count(data, path)
    if count and _first_is_oid(data):
        raise SealFormatError(
            f'{path}: a CMS / GB/T 35275 ContentInfo, not a seal signature (an OFD Type="Sign" signature?)'
        )
    if count == 2:
        return _parse_signature_v1(data, path)
    if count in (4, 5):
        return _parse_signature_v4(data, path)
    raise SealFormatError(
        f"{path}: {count} elements; GB/T 38540 signatures have 4 or 5 (toSign, cert, signatureAlgID, "
        "signature[, timeStamp]), GM/T 0031 signatures 2 (toSign, signature)"
    )


def _first_is_oid(data: bytes) -> bool:
    try:
        class_, _method, tag, *_rest = parser.parse(_AnyList.load(data, strict=False)[0].dump())
        return (class_, tag) == (0, 6)
    except _DECODE_ERRORS:
        return False


def _parse_signature_v4(data: bytes, path: str) -> SealSignature:
    """GB/T 38540 signatures, and ofdrw's v5 (told apart by the embedded seal, parsed on its own)."""
    tbs_path = f"{path}.toSign"
    value, warnings = _decode(asn1.SESSignatureOpaqueSeal, data, path)
    tbs = value["toSign"]
    seal = _parse_seal(tbs["eseal"].dump(), f"{tbs_path}.eseal")
    if seal.layout is SealLayout.GMT0031:
        raise SealFormatError(f"{tbs_path}.eseal: a GM/T 0031 seal inside a GB/T 38540 signature")
    version = int(tbs["version"].native)
    if version != seal.version:
        raise SealFormatError(
            f"{tbs_path}.version: {version}, but the seal's SES_Header.version is {seal.version} "
            "(GB/T 38540 §7.1.2: they must be equal)"
        )
    timestamp = value["timeStamp"]
    return SealSignature(
        layout=seal.layout,
        version=version,
        seal=seal,
        signing_time=_utc(tbs["timeInfo"].native, f"{tbs_path}.timeInfo", warnings),
        data_hash=_bit_string_octets(tbs["dataHash"], f"{tbs_path}.dataHash"),
        property_info=_ia5(tbs["propertyInfo"]),
        ext_datas=_ext_datas(tbs["extDatas"]),
        signer_certificate=_load_certificate(bytes(value["cert"].native), f"{path}.cert"),
        signature_algorithm=value["signatureAlgID"].dotted,
        signature_value=_bit_string_octets(value["signature"], f"{path}.signature"),
        timestamp=None
        if isinstance(timestamp, core.Void)
        else _bit_string_octets(timestamp, f"{path}.timeStamp"),
        signed_bytes=tbs.dump(),
        der=value.dump(),
        warnings=tuple(warnings),
    )


def _parse_signature_v1(data: bytes, path: str) -> SealSignature:
    value, warnings = _decode(asn1.SESSignatureV1, data, path)
    tbs = value["toSign"]
    tbs_path = f"{path}.toSign"
    seal = _parse_seal(tbs["eseal"].dump(), f"{tbs_path}.eseal")
    data_hash_choice = tbs["dataHash"]
    if data_hash_choice.name == "bit_string":
        data_hash = _bit_string_octets(data_hash_choice.chosen, f"{tbs_path}.dataHash")
    else:
        data_hash = bytes(data_hash_choice.chosen.native)
        warnings.append(f"{tbs_path}.dataHash is an OCTET STRING; GM/T 0031 specifies BIT STRING")
    return SealSignature(
        layout=SealLayout.GMT0031,
        version=int(tbs["version"].native),
        seal=seal,
        signing_time=_time_info_v1(tbs["timeInfo"], f"{tbs_path}.timeInfo", warnings),
        data_hash=data_hash,
        property_info=_ia5(tbs["propertyInfo"]),
        ext_datas=(),
        signer_certificate=_load_certificate(bytes(tbs["cert"].native), f"{tbs_path}.cert"),
        signature_algorithm=tbs["signatureAlgorithm"].dotted,
        signature_value=_bit_string_octets(value["signature"], f"{path}.signature"),
        timestamp=None,
        signed_bytes=tbs.dump(),
        der=value.dump(),
        warnings=tuple(warnings),
    )


_ASN1_TIME_TEXT = re.compile(r"^(\d{12}|\d{14})(\.\d+)?(Z|[+-]\d{4})?$")


def _time_info_v1(choice: core.Asn1Value, path: str, warnings: list[str]) -> datetime:
    """GM/T 0031 timeInfo: ASCII time or a time-stamp token in a BIT/OCTET STRING, or an ASN.1 time."""
    if choice.name in ("utc_time", "generalized_time"):
        return _utc(choice.chosen.native, path, warnings)
    if choice.name == "bit_string":
        raw = _bit_string_octets(choice.chosen, path)
    else:
        raw = bytes(choice.chosen.native)
    if raw[:1] == b"\x30":
        return _time_stamp_token_time(raw, path, warnings)
    try:
        text = raw.decode("ascii").strip().rstrip("\x00")
    except UnicodeDecodeError as exc:
        raise SealFormatError(f"{path}: neither ASCII time text nor a time-stamp token") from exc
    return _parse_time_text(text, path, warnings)


def _parse_time_text(text: str, path: str, warnings: list[str]) -> datetime:
    match = _ASN1_TIME_TEXT.match(text)
    if match:  # UTCTime / GeneralizedTime syntax written as text
        spec: type[core.Asn1Value] = core.UTCTime if len(match.group(1)) == 12 else core.GeneralizedTime
        try:
            return _utc(spec(text).native, path, warnings)  # type: ignore[call-arg]
        except _DECODE_ERRORS as exc:
            raise SealFormatError(f"{path}: {text!r} is not a valid time: {exc}") from exc
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError as exc:
        raise SealFormatError(
            f"{path}: {text!r} is not a recognised time (yyyy-MM-dd HH:mm:ss, ISO 8601, UTCTime or "
            "GeneralizedTime text)"
        ) from exc
    if parsed.tzinfo is None:
        warnings.append(f"{path} {text!r} has no time zone; read as China Standard Time (UTC+8)")
        parsed = parsed.replace(tzinfo=CHINA_STANDARD_TIME)
    return parsed.astimezone(UTC)


def _time_stamp_token_time(raw: bytes, path: str, warnings: list[str]) -> datetime:
    try:
        info = cms.ContentInfo.load(raw)
        tst = info["content"]["encap_content_info"]["content"].parsed
        if not isinstance(tst, tsp.TSTInfo):
            raise ValueError("content is not a TSTInfo")
        gen_time = tst["gen_time"].native
    except _DECODE_ERRORS as exc:
        raise SealFormatError(f"{path}: starts like DER but is not a time-stamp token: {exc}") from exc
    warnings.append(f"{path} is a time-stamp token; its genTime is used as the signing time (not verified)")
    return _utc(gen_time, path, warnings)
