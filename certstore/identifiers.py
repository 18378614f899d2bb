"""Identifiers and holder ID numbers: 证照标识 (GB/T 36904 style), 公民身份号码, 统一社会信用代码.

Pure functions, no I/O.

*Certificate identifier* (证照标识), as described in ``STANDARDS.md`` §3.2::

    1.2.156.3005.2 . <证照类型代码> . <证照颁发机构代码> . <流水号> . <版本号> . <校验位>
    root             type code        issuer code        serial    version   check

The check character is ISO/IEC 7064 MOD 37,36 (hybrid system) over type code ‖ issuer code ‖ serial ‖
version, dots removed, root excluded. Real production identifiers deviate (a Shandong system prints check
characters the algorithm does not give), so a mismatch is a *hard error* for identifiers this repository
issues (:meth:`CertificateIdentifier.build`, ``parse(..., strict_check=True)``) and a *warning* for imported
or foreign ones (``parse(..., strict_check=False)`` then look at :attr:`CertificateIdentifier.check_ok`).

The serial (流水号) is keyed: :func:`serial_for` is HMAC-SM3 with the repository's serial key over issuer code and
certificate number, so it is stable (a repeated push gets the same identifier) yet cannot be derived from
sequential certificate numbers. :func:`legacy_serial_for` is the unkeyed serial of identifiers issued before;
those stay stored and their later versions keep them. :func:`short_code` is the 28-character code the face's QR
code carries (``…/v/<short code>``): serial and version in base32, inverted by :func:`parse_short_code`.

*Holder ID numbers* (持证主体代码): :func:`validate_resident_id` (GB 11643-1999 公民身份号码),
:func:`validate_credit_code` (GB 32100-2015 统一社会信用代码) and :func:`validate_holder_id`, which dispatches on
the :class:`HolderIdType` code (持证主体代码类型, GB/T 36903 style). Raw holder ID numbers are personal data: the
repository indexes and logs the keyed digest :func:`holder_id_digest` (HMAC-SM3) and shows
:func:`holder_ref` in logs, never the number itself.
"""

from __future__ import annotations

import base64
import re
import unicodedata
from dataclasses import dataclass
from datetime import date
from enum import StrEnum

from certstore.crypto.sm3 import hmac_sm3, sm3

__all__ = [
    "HOLDER_ID_TYPE_LABELS",
    "IDENTIFIER_ROOT",
    "SHORT_CODE_LENGTH",
    "CertificateIdentifier",
    "HolderIdError",
    "HolderIdType",
    "IdentifierCheckError",
    "IdentifierError",
    "holder_id_digest",
    "holder_ref",
    "iso7064_mod37_36_check",
    "legacy_serial_for",
    "parse_short_code",
    "serial_for",
    "short_code",
    "short_code_of",
    "validate_credit_code",
    "validate_holder_id",
    "validate_resident_id",
]

# --------------------------------------------------------------------------------------------------------------
# Certificate identifier (证照标识)
# --------------------------------------------------------------------------------------------------------------

#: 电子证照根代码.
IDENTIFIER_ROOT = "1.2.156.3005.2"

_ALPHABET_36 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_VALUE_36 = {ch: i for i, ch in enumerate(_ALPHABET_36)}
_SEGMENT_RE = re.compile(r"[0-9A-Z]+")
_MAX_SEGMENT = 64  # GB/T 36904 segment length limits are unconfirmed (STANDARDS.md §3.2); a sanity bound only


class IdentifierError(ValueError):
    """A malformed certificate identifier (证照标识); :attr:`segment` names the bad part."""

    def __init__(self, segment: str, message: str) -> None:
        super().__init__(f"identifier {segment}: {message}")
        self.segment = segment


class IdentifierCheckError(IdentifierError):
    """The check character (校验位) is not the ISO 7064 MOD 37,36 value of the rest of the identifier."""

    def __init__(self, found: str, expected: str) -> None:
        super().__init__("check", f"check character is {found!r}, ISO 7064 MOD 37,36 gives {expected!r}")
        self.found = found
        self.expected = expected


def iso7064_mod37_36_check(payload: str) -> str:
    """ISO/IEC 7064 MOD 37,36 hybrid check character of ``payload`` (characters ``0-9A-Z``).

    P starts at 36; for each character value a: S = (P + a) mod 36, with 0 read as 36; P = 2·S mod 37.
    The check value is (37 − P) mod 36, written with the same alphabet.
    """
    if not payload:
        raise IdentifierError("payload", "is empty")
    p = 36
    for ch in payload:
        value = _VALUE_36.get(ch)
        if value is None:
            raise IdentifierError("payload", f"character {ch!r} is outside 0-9A-Z")
        s = (p + value) % 36 or 36
        p = (2 * s) % 37
    return _ALPHABET_36[(37 - p) % 36]


def _check_segment(name: str, value: str) -> None:
    if not value:
        raise IdentifierError(name, "is empty")
    if len(value) > _MAX_SEGMENT:
        raise IdentifierError(name, f"is {len(value)} characters long (at most {_MAX_SEGMENT})")
    if not _SEGMENT_RE.fullmatch(value):
        raise IdentifierError(name, f"{value!r} may only contain 0-9 and upper-case A-Z")


def _check_version(version: int) -> None:
    if isinstance(version, bool) or not isinstance(version, int) or not 1 <= version <= 999:
        raise IdentifierError("version", f"{version!r} must be an integer from 1 to 999")


@dataclass(frozen=True)
class CertificateIdentifier:
    """A certificate identifier (证照标识): ``1.2.156.3005.2.<type>.<issuer>.<serial>.<NNN>.<check>``.

    ``version`` (版本号) counts issues of one certificate: 1 for the first issue, 2 … on re-issue after a
    change; all versions share the serial (流水号). ``check`` is the character as given, which for imported
    identifiers may differ from the computed one (see :attr:`check_ok`).
    """

    type_code: str
    issuer_code: str
    serial: str
    version: int
    check: str

    @classmethod
    def build(cls, type_code: str, issuer_code: str, serial: str, version: int) -> CertificateIdentifier:
        """A new identifier with the computed check character (for identifiers this repository issues)."""
        _check_segment("type code", type_code)
        _check_segment("issuer code", issuer_code)
        _check_segment("serial", serial)
        _check_version(version)
        check = iso7064_mod37_36_check(f"{type_code}{issuer_code}{serial}{version:03d}")
        return cls(type_code, issuer_code, serial, version, check)

    @classmethod
    def parse(cls, text: str, *, strict_check: bool = True) -> CertificateIdentifier:
        """Parse the dotted form. Structure errors always raise :class:`IdentifierError` naming the segment.

        A wrong check character raises :class:`IdentifierCheckError` when ``strict_check`` (identifiers we
        issue); with ``strict_check=False`` (imported/foreign identifiers) the identifier is returned and
        :attr:`check_ok` is False, for the caller to report as a warning.
        """
        if not isinstance(text, str):
            raise IdentifierError("text", f"expected a string, got {type(text).__name__}")
        prefix = IDENTIFIER_ROOT + "."
        if not text.startswith(prefix):
            raise IdentifierError("root", f"must start with {prefix!r}")
        parts = text[len(prefix) :].split(".")
        if len(parts) != 5:
            raise IdentifierError(
                "structure",
                f"expected 5 dot-separated segments after the root "
                f"(type code, issuer code, serial, version, check), found {len(parts)}",
            )
        type_code, issuer_code, serial, version_text, check = parts
        _check_segment("type code", type_code)
        _check_segment("issuer code", issuer_code)
        _check_segment("serial", serial)
        if not re.fullmatch(r"[0-9]{3}", version_text):
            raise IdentifierError("version", f"{version_text!r} must be exactly 3 digits")
        version = int(version_text)
        _check_version(version)
        if len(check) != 1 or check not in _VALUE_36:
            raise IdentifierError("check", f"{check!r} must be one character from 0-9A-Z")
        identifier = cls(type_code, issuer_code, serial, version, check)
        if strict_check and not identifier.check_ok:
            raise IdentifierCheckError(check, identifier.expected_check)
        return identifier

    @property
    def expected_check(self) -> str:
        """The ISO 7064 MOD 37,36 check character of this identifier's content."""
        return iso7064_mod37_36_check(f"{self.type_code}{self.issuer_code}{self.serial}{self.version:03d}")

    @property
    def check_ok(self) -> bool:
        """True when :attr:`check` is the computed MOD 37,36 character."""
        return self.check == self.expected_check

    def with_version(self, version: int) -> CertificateIdentifier:
        """The identifier of another version (版本号) of the same certificate, with a fresh check character."""
        return CertificateIdentifier.build(self.type_code, self.issuer_code, self.serial, version)

    def __str__(self) -> str:
        return f"{IDENTIFIER_ROOT}.{self.type_code}.{self.issuer_code}.{self.serial}.{self.version:03d}.{self.check}"


def _serial_input(issuer_code: str, certificate_number: str) -> bytes:
    for name, value in (("issuer code", issuer_code), ("certificate number", certificate_number)):
        if not value or "\x00" in value:
            raise IdentifierError(name, "must be a non-empty string without NUL characters")
    return issuer_code.encode() + b"\x00" + certificate_number.encode()


def serial_for(issuer_code: str, certificate_number: str, *, key: bytes) -> str:
    """Keyed serial (流水号): first 16 bytes of HMAC-SM3(key, issuer code ‖ 0x00 ‖ certificate number), as 32
    upper-case hex characters; both strings are UTF-8 encoded. ``key`` is the repository's serial key
    (:meth:`certstore.keystore.KeyStore.serial_key`, at least 16 bytes).

    The same push of the same certificate always yields the same identifier (idempotent issuance), and all
    versions of one certificate share it; without the key, identifiers cannot be derived from (sequential)
    certificate numbers, so the anonymous status endpoint cannot be probed by enumerating them.
    """
    if len(key) < _MIN_SECRET:
        raise ValueError(f"the serial key must be at least {_MIN_SECRET} bytes")
    return hmac_sm3(key, _serial_input(issuer_code, certificate_number))[:16].hex().upper()


def legacy_serial_for(issuer_code: str, certificate_number: str) -> str:
    """The unkeyed serial identifiers were issued with before the serial key (first 16 bytes of SM3(issuer
    code ‖ 0x00 ‖ certificate number)). Never used for new certificates; such identifiers stay stored, resolve
    and keep their serial in later versions."""
    return sm3(_serial_input(issuer_code, certificate_number))[:16].hex().upper()


# --- the short code of the QR code -----------------------------------------------------------------------------

_SHORT_SERIAL = re.compile(r"[0-9A-F]{32}")
_SHORT_CODE = re.compile(r"[a-z2-7]{28}")
SHORT_CODE_LENGTH = 28


def short_code(identifier: CertificateIdentifier | str) -> str | None:
    """The short code the QR code carries instead of the identifier (``…/v/<short code>``): the 16-byte serial
    and the version in lower-case base32, 28 characters (26 + 2, no padding). As unguessable as the serial (keyed
    for identifiers issued with the serial key) and stable; None for a serial that is not 32 hex digits (imported
    or foreign identifiers keep the long path). :func:`parse_short_code` inverts it."""
    parsed = (
        identifier
        if isinstance(identifier, CertificateIdentifier)
        else CertificateIdentifier.parse(identifier, strict_check=False)
    )
    return short_code_of(parsed.serial, parsed.version)


def parse_short_code(code: str) -> tuple[str, int] | None:
    """(serial, version) of a short code made by :func:`short_code`; None when ``code`` is not one."""
    if not isinstance(code, str) or not _SHORT_CODE.fullmatch(code):
        return None
    try:
        raw = base64.b32decode(code[:26].upper() + "======")
    except ValueError:
        return None
    version = _BASE32.index(code[26]) * 32 + _BASE32.index(code[27])
    if len(raw) != 16 or not 1 <= version <= 999 or short_code_of(raw.hex().upper(), version) != code:
        return None
    return raw.hex().upper(), version


def short_code_of(serial: str, version: int) -> str | None:
    """:func:`short_code` from a serial and a version."""
    if not _SHORT_SERIAL.fullmatch(serial) or not 1 <= version <= 999:
        return None
    encoded = base64.b32encode(bytes.fromhex(serial)).decode("ascii").rstrip("=").lower()
    return encoded + _BASE32[version >> 5] + _BASE32[version & 31]


_BASE32 = "abcdefghijklmnopqrstuvwxyz234567"


# --------------------------------------------------------------------------------------------------------------
# Holder ID numbers (持证主体代码)
# --------------------------------------------------------------------------------------------------------------


class HolderIdType(StrEnum):
    """持证主体代码类型, codes in the style of GB/T 36903 Annex A (as used by public implementations)."""

    CREDIT_CODE = "001"  # 统一社会信用代码
    RESIDENT_ID = "111"  # 公民身份号码
    PASSPORT = "414"  # 护照
    TAIWAN_PERMIT = "511"  # 台湾居民来往大陆通行证
    HK_MACAO_PERMIT = "516"  # 港澳居民来往内地通行证
    FOREIGN_PERMANENT_RESIDENCE = "553"  # 外国人永久居留身份证
    OTHER = "999"  # 其他


#: The Chinese name of every holder ID type, as forms and templates show it.
HOLDER_ID_TYPE_LABELS: dict[str, str] = {
    HolderIdType.CREDIT_CODE.value: "统一社会信用代码",
    HolderIdType.RESIDENT_ID.value: "公民身份号码",
    HolderIdType.PASSPORT.value: "护照",
    HolderIdType.TAIWAN_PERMIT.value: "台湾居民来往大陆通行证",
    HolderIdType.HK_MACAO_PERMIT.value: "港澳居民来往内地通行证",
    HolderIdType.FOREIGN_PERMANENT_RESIDENCE.value: "外国人永久居留身份证",
    HolderIdType.OTHER.value: "其他",
}


class HolderIdError(ValueError):
    """An invalid holder ID number; :attr:`reason` is a stable code for the failed rule.

    Reasons: ``length``, ``charset``, ``division`` (administrative division / province code), ``birth_date``,
    ``registration_authority``, ``org_type``, ``check`` (check character), ``type`` (unknown ID type).
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


#: GB/T 2260 province-level codes (first two digits of a division code), plus 83: the 2018 residence
#: permits for Hong Kong, Macao and Taiwan residents (港澳台居民居住证) use numbers beginning 810000, 820000 and
#: 830000 with the same check rule as 公民身份号码.
_PROVINCES = frozenset(
    {11, 12, 13, 14, 15, 21, 22, 23, 31, 32, 33, 34, 35, 36, 37, 41, 42, 43, 44, 45, 46, 50, 51, 52, 53, 54}
    | {61, 62, 63, 64, 65, 71, 81, 82, 83}
)
_RESIDENT_WEIGHTS = tuple(pow(2, 17 - i, 11) for i in range(17))  # 7 9 10 5 8 4 2 1 6 3 7 9 10 5 8 4 2
_RESIDENT_CHECK = "10X98765432"  # indexed by (sum mod 11)


def _normalise(value: str) -> str:
    """NFKC (full-width digits and letters → ASCII), surrounding whitespace removed, upper case."""
    if not isinstance(value, str):
        raise HolderIdError("charset", f"expected a string, got {type(value).__name__}")
    return unicodedata.normalize("NFKC", value).strip().upper()


def validate_resident_id(value: str) -> str:
    """Validate a citizen ID number (公民身份号码, GB 11643-1999) and return it normalised (upper-case X).

    18 characters: 6-digit administrative division code (first two digits a GB/T 2260 province code), 8-digit
    birth date (a real calendar date, year ≥ 1850), 3-digit sequence, and the ISO 7064 MOD 11-2 check
    character (0-9 or X). First-generation 15-digit numbers are refused (convert them first).
    """
    text = _normalise(value)
    if len(text) != 18:
        extra = " (a first-generation 15-digit number: convert it to 18 digits)" if len(text) == 15 else ""
        raise HolderIdError("length", f"a citizen ID number has 18 characters, got {len(text)}{extra}")
    if not text[:17].isascii() or not text[:17].isdigit():
        raise HolderIdError("charset", "characters 1-17 of a citizen ID number must be digits")
    if text[17] not in "0123456789X":
        raise HolderIdError("charset", f"the check character must be 0-9 or X, got {text[17]!r}")
    if int(text[:2]) not in _PROVINCES:
        raise HolderIdError("division", f"division code {text[:6]}: {text[:2]} is not a province code")
    birth = text[6:14]
    try:
        born = date(int(birth[:4]), int(birth[4:6]), int(birth[6:8]))
    except ValueError:
        raise HolderIdError("birth_date", f"birth date {birth} is not a real date") from None
    if born.year < 1850:
        raise HolderIdError("birth_date", f"birth date {birth} is implausibly early")
    total = sum(int(d) * w for d, w in zip(text[:17], _RESIDENT_WEIGHTS, strict=True))
    expected = _RESIDENT_CHECK[total % 11]
    if text[17] != expected:
        raise HolderIdError("check", f"check character is {text[17]}, GB 11643 MOD 11-2 gives {expected}")
    return text


_USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"  # 31 characters: no I, O, Z, S, V
_USCC_VALUE = {ch: i for i, ch in enumerate(_USCC_ALPHABET)}
_USCC_WEIGHTS = tuple(pow(3, i, 31) for i in range(17))  # 1 3 9 27 19 26 16 17 20 29 25 13 8 24 10 30 28

#: GB 32100-2015 登记管理部门代码 → its 机构类别代码 (table 1 of the standard and later additions A, N).
_USCC_ORG_TYPES: dict[str, str] = {
    "1": "1239",  # 机构编制: 机关, 事业单位, 中央编办直接管理机构编制的群众团体, 其他
    "2": "19",  # 外交: 外国常驻新闻机构, 其他
    "3": "123459",  # 司法行政: 律师执业机构, 公证处, 基层法律服务所, 司法鉴定机构, 仲裁委员会, 其他
    "4": "19",  # 文化: 外国在华文化中心, 其他
    "5": "1239",  # 民政: 社会团体, 民办非企业单位, 基金会, 其他
    "6": "129",  # 旅游: 外国/港澳台地区旅游部门常驻代表机构, 其他
    "7": "129",  # 宗教: 宗教活动场所, 宗教院校, 其他
    "8": "19",  # 工会: 基层工会, 其他
    "9": "123",  # 工商: 企业, 个体工商户, 农民专业合作社
    "A": "19",  # 中央军委改革和编制办公室: 军队事业单位, 其他
    "N": "1239",  # 农业: 组级, 村级, 乡镇级集体经济组织, 其他
    "Y": "1",  # 其他
}


def validate_credit_code(value: str) -> str:
    """Validate a unified social credit code (统一社会信用代码, GB 32100-2015); return it normalised.

    18 characters from ``0-9A-HJ-NPQRTUWXY`` (no I, O, Z, S, V): 登记管理部门代码 (1), 机构类别代码 (1),
    登记管理机关行政区划码 (6 digits: a province code or 10 for central bodies), 主体标识码 (9), and the check
    character: 31 − (Σ value·weight mod 31), weights 3^i mod 31, 31 written as 0.
    """
    text = _normalise(value)
    if len(text) != 18:
        raise HolderIdError("length", f"a unified social credit code has 18 characters, got {len(text)}")
    bad = sorted({ch for ch in text if ch not in _USCC_VALUE})
    if bad:
        raise HolderIdError(
            "charset",
            f"characters {', '.join(map(repr, bad))} are not allowed (0-9 and A-Z without I, O, Z, S, V)",
        )
    org_types = _USCC_ORG_TYPES.get(text[0])
    if org_types is None:
        raise HolderIdError("registration_authority", f"registration authority code {text[0]!r} is unknown")
    if text[1] not in org_types:
        raise HolderIdError(
            "org_type", f"organisation type {text[1]!r} is not defined for registration authority {text[0]!r}"
        )
    division = text[2:8]
    if not division.isdigit() or (division[:2] != "10" and int(division[:2]) not in _PROVINCES):
        raise HolderIdError(
            "division", f"division code {division!r} is not a plausible administrative division"
        )
    total = sum(_USCC_VALUE[ch] * w for ch, w in zip(text[:17], _USCC_WEIGHTS, strict=True))
    expected = _USCC_ALPHABET[(31 - total % 31) % 31]
    if text[17] != expected:
        raise HolderIdError("check", f"check character is {text[17]}, GB 32100 MOD 31 gives {expected}")
    return text


_DOCUMENT_NUMBER_RE = re.compile(r"[0-9A-Z]{5,20}")


def _validate_document_number(value: str, kind: str) -> str:
    """Passports and travel permits: no public check algorithm; a plausible charset/length only."""
    text = _normalise(value)
    if not 5 <= len(text) <= 20:
        raise HolderIdError("length", f"a {kind} number has 5 to 20 characters, got {len(text)}")
    if not _DOCUMENT_NUMBER_RE.fullmatch(text):
        raise HolderIdError("charset", f"a {kind} number may only contain 0-9 and A-Z")
    return text


def _validate_other(value: str) -> str:
    text = unicodedata.normalize("NFKC", value).strip() if isinstance(value, str) else None
    if text is None:
        raise HolderIdError("charset", f"expected a string, got {type(value).__name__}")
    if not 1 <= len(text) <= 64:
        raise HolderIdError("length", f"an ID number has 1 to 64 characters, got {len(text)}")
    if any(unicodedata.category(ch).startswith("C") for ch in text):
        raise HolderIdError("charset", "an ID number may not contain control characters")
    return text


def validate_holder_id(id_type: HolderIdType | str, value: str) -> str:
    """Validate a holder ID number of the given type (持证主体代码类型) and return the normalised number."""
    kind = _holder_id_type(id_type)
    if kind is HolderIdType.RESIDENT_ID:
        return validate_resident_id(value)
    if kind is HolderIdType.CREDIT_CODE:
        return validate_credit_code(value)
    if kind is HolderIdType.OTHER:
        return _validate_other(value)
    names = {
        HolderIdType.PASSPORT: "passport",
        HolderIdType.TAIWAN_PERMIT: "Taiwan residents' travel permit",
        HolderIdType.HK_MACAO_PERMIT: "Hong Kong/Macao residents' travel permit",
        HolderIdType.FOREIGN_PERMANENT_RESIDENCE: "foreign permanent residence card",
    }
    return _validate_document_number(value, names[kind])


def _holder_id_type(id_type: HolderIdType | str) -> HolderIdType:
    try:
        return HolderIdType(id_type)
    except ValueError:
        known = ", ".join(f"{t.value} ({t.name})" for t in HolderIdType)
        raise HolderIdError("type", f"unknown holder ID type {id_type!r}; known: {known}") from None


_MIN_SECRET = 16


def holder_id_digest(secret: bytes, id_type: HolderIdType | str, value: str) -> bytes:
    """Keyed digest of a holder ID: HMAC-SM3(secret, type code ‖ ":" ‖ normalised number), 32 bytes.

    The repository indexes holder look-ups by this digest and logs it (see :func:`holder_ref`) instead of
    the raw number; without the secret the digest cannot be reversed by enumerating the (small) ID space.
    The value is validated first, so equal IDs typed differently (``x``/``X``, full-width digits) match.
    """
    if len(secret) < _MIN_SECRET:
        raise ValueError(f"the holder-ID secret must be at least {_MIN_SECRET} bytes")
    kind = _holder_id_type(id_type)
    normalised = validate_holder_id(kind, value)
    return hmac_sm3(secret, f"{kind.value}:{normalised}".encode())


def holder_ref(digest: bytes) -> str:
    """Short display form of a holder digest — the first 16 hex characters — which is what logs show."""
    if len(digest) != 32:
        raise ValueError(f"expected a 32-byte holder digest, got {len(digest)} bytes")
    return digest[:8].hex()
