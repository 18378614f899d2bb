"""Identifiers (证照标识) and holder ID validators, driven by ``vectors.json``."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from pathlib import Path
from typing import Any

import pytest

from certstore.identifiers import (
    IDENTIFIER_ROOT,
    SHORT_CODE_LENGTH,
    CertificateIdentifier,
    HolderIdError,
    HolderIdType,
    IdentifierCheckError,
    IdentifierError,
    holder_id_digest,
    holder_ref,
    iso7064_mod37_36_check,
    legacy_serial_for,
    parse_short_code,
    serial_for,
    short_code,
    short_code_of,
    validate_credit_code,
    validate_holder_id,
    validate_resident_id,
)

VECTORS: dict[str, Any] = json.loads((Path(__file__).parent / "vectors.json").read_text(encoding="utf-8"))
IDENTIFIERS = VECTORS["identifiers"]
RESIDENT = VECTORS["resident_ids"]
CREDIT = VECTORS["credit_codes"]
SECRET = bytes(range(32))


def _id(case: dict[str, Any]) -> str:
    return case.get("note") or case.get("source") or case["value"]


# --- ISO 7064 MOD 37,36 and the identifier ----------------------------------------------------------------


@pytest.mark.parametrize("case", IDENTIFIERS["valid"], ids=lambda c: c["check"])
def test_verified_examples_compute_their_check_character(case: dict[str, Any]) -> None:
    payload = f"{case['type_code']}{case['issuer_code']}{case['serial']}{case['version']:03d}"
    assert iso7064_mod37_36_check(payload) == case["check"]


@pytest.mark.parametrize("case", IDENTIFIERS["valid"], ids=lambda c: c["check"])
def test_parse_and_build_round_trip(case: dict[str, Any]) -> None:
    parsed = CertificateIdentifier.parse(case["text"])
    assert (parsed.type_code, parsed.issuer_code, parsed.serial, parsed.version, parsed.check) == (
        case["type_code"],
        case["issuer_code"],
        case["serial"],
        case["version"],
        case["check"],
    )
    assert parsed.check_ok
    assert str(parsed) == case["text"]
    built = CertificateIdentifier.build(
        case["type_code"], case["issuer_code"], case["serial"], case["version"]
    )
    assert built == parsed


@pytest.mark.parametrize("case", IDENTIFIERS["check_mismatch"], ids=lambda c: c["found"])
def test_check_mismatch_is_an_error_or_a_warning(case: dict[str, Any]) -> None:
    with pytest.raises(IdentifierCheckError) as raised:
        CertificateIdentifier.parse(case["text"])  # strict by default: identifiers we issue
    assert (raised.value.found, raised.value.expected, raised.value.segment) == (
        case["found"],
        case["expected"],
        "check",
    )
    assert "MOD 37,36" in str(raised.value)
    tolerant = CertificateIdentifier.parse(case["text"], strict_check=False)  # imported / foreign
    assert not tolerant.check_ok
    assert (tolerant.check, tolerant.expected_check) == (case["found"], case["expected"])
    assert str(tolerant) == case["text"]  # kept as received


def test_shandong_deviation_is_not_the_standard_algorithm() -> None:
    shandong = next(c for c in IDENTIFIERS["check_mismatch"] if "Shandong" in c["source"])
    parsed = CertificateIdentifier.parse(shandong["text"], strict_check=False)
    assert parsed.check == shandong["found"] and not parsed.check_ok
    payload = f"{parsed.type_code}{parsed.issuer_code}{parsed.serial}{parsed.version:03d}"
    assert iso7064_mod37_36_check(payload) == shandong["expected"] != shandong["found"]


@pytest.mark.parametrize("case", IDENTIFIERS["malformed"], ids=lambda c: f"{c['segment']}:{c['text'][-24:]}")
def test_malformed_identifiers_name_the_segment(case: dict[str, Any]) -> None:
    for strict in (True, False):
        with pytest.raises(IdentifierError) as raised:
            CertificateIdentifier.parse(case["text"], strict_check=strict)
        assert raised.value.segment == case["segment"]
        assert not isinstance(raised.value, IdentifierCheckError)
        assert str(raised.value).startswith(f"identifier {case['segment']}:")


def test_parse_rejects_non_strings() -> None:
    with pytest.raises(IdentifierError, match="expected a string"):
        CertificateIdentifier.parse(b"1.2.156.3005.2.A.B.C.001.0")  # type: ignore[arg-type]


def test_check_function_rejects_bad_payloads() -> None:
    with pytest.raises(IdentifierError, match="empty"):
        iso7064_mod37_36_check("")
    with pytest.raises(IdentifierError, match="outside 0-9A-Z"):
        iso7064_mod37_36_check("11100000000013338w")


def test_check_detects_every_single_substitution_and_adjacent_swap() -> None:
    """The property MOD 37,36 is chosen for: any one wrong character or swapped neighbours changes it."""
    payload = "11100000000013338W01111430000006122244L20230000403001"
    check = iso7064_mod37_36_check(payload)
    alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    for i, original in enumerate(payload):
        for replacement in alphabet:
            if replacement != original:
                changed = payload[:i] + replacement + payload[i + 1 :]
                assert iso7064_mod37_36_check(changed) != check
    for i in range(len(payload) - 1):
        if payload[i] != payload[i + 1]:
            swapped = payload[:i] + payload[i + 1] + payload[i] + payload[i + 2 :]
            assert iso7064_mod37_36_check(swapped) != check


def test_with_version_shares_the_serial_and_recomputes_the_check() -> None:
    first = CertificateIdentifier.parse(IDENTIFIERS["valid"][0]["text"])
    second = first.with_version(2)
    assert (second.type_code, second.issuer_code, second.serial, second.version) == (
        first.type_code,
        first.issuer_code,
        first.serial,
        2,
    )
    assert second.check_ok and str(second).endswith(f".002.{second.check}")
    assert CertificateIdentifier.parse(str(second)) == second
    assert second.with_version(1) == first
    # a tolerated foreign identifier gets a correct check character in its next version
    foreign = CertificateIdentifier.parse(IDENTIFIERS["check_mismatch"][0]["text"], strict_check=False)
    assert foreign.with_version(2).check_ok


@pytest.mark.parametrize("version", [0, 1000, -1, True, "1"])
def test_bad_versions_are_refused(version: Any) -> None:
    first = CertificateIdentifier.parse(IDENTIFIERS["valid"][0]["text"])
    with pytest.raises(IdentifierError) as raised:
        first.with_version(version)
    assert raised.value.segment == "version"


@pytest.mark.parametrize(
    ("args", "segment"),
    [
        (("", "11430000006122244L", "0001", 1), "type code"),
        (("11100000000013338W011", "1143 0000006122244L", "0001", 1), "issuer code"),
        (("11100000000013338W011", "11430000006122244L", "abc", 1), "serial"),
        (("11100000000013338W011", "11430000006122244L", "A" * 65, 1), "serial"),
    ],
)
def test_build_validates_segments(args: tuple[str, str, str, int], segment: str) -> None:
    with pytest.raises(IdentifierError) as raised:
        CertificateIdentifier.build(*args)
    assert raised.value.segment == segment


def test_identifier_is_frozen_and_hashable() -> None:
    parsed = CertificateIdentifier.parse(IDENTIFIERS["valid"][0]["text"])
    with pytest.raises(AttributeError):
        parsed.version = 2  # type: ignore[misc]
    assert len({parsed, CertificateIdentifier.parse(IDENTIFIERS["valid"][0]["text"])}) == 1
    assert str(parsed).startswith(IDENTIFIER_ROOT + ".")


# --- serial ---------------------------------------------------------------------------------------------


KEY = bytes(range(32))


def test_serial_is_truncated_hmac_sm3_of_issuer_and_number() -> None:
    serial = serial_for("11410100990000017F", "建字第410100202400123号", key=KEY)
    message = "11410100990000017F\x00建字第410100202400123号".encode()
    expected = hmac.new(KEY, message, "sm3").digest()[:16]
    assert serial == expected.hex().upper()
    assert len(serial) == 32 and serial == serial.upper()
    assert serial_for("11410100990000017F", "建字第410100202400123号", key=KEY) == serial  # idempotent
    assert serial_for("11410100990000017F", "建字第410100202400124号", key=KEY) != serial
    assert serial_for("11410100990000025A", "建字第410100202400123号", key=KEY) != serial
    # the separator keeps (issuer, number) pairs apart
    assert serial_for("AB", "C", key=KEY) != serial_for("A", "BC", key=KEY)
    identifier = CertificateIdentifier.build("11410100990000017F003", "11410100990000017F", serial, 1)
    assert CertificateIdentifier.parse(str(identifier)) == identifier


def test_serial_needs_the_key_to_be_derived() -> None:
    """Sequential certificate numbers give serials that no one without the key can compute: another key gives
    other serials, and the unkeyed SM3 serial of the numbers (what identifiers were before) is not one of them."""
    numbers = [f"建字第4101002024{n:05d}号" for n in range(100, 105)]
    ours = {serial_for("11410100990000017F", n, key=KEY) for n in numbers}
    theirs = {serial_for("11410100990000017F", n, key=bytes(32)) for n in numbers}
    legacy = {legacy_serial_for("11410100990000017F", n) for n in numbers}
    assert len(ours) == 5 and not ours & theirs and not ours & legacy
    with pytest.raises(ValueError, match="at least 16 bytes"):
        serial_for("11410100990000017F", numbers[0], key=b"short")


def test_legacy_serial_known_answer() -> None:
    # SM3("abc") is the GB/T 32905 example: 66c7f0f4 62eeedd9 d1f2d46b dc10e4e2 ...
    assert hashlib.new("sm3", b"abc").hexdigest().startswith("66c7f0f462eeedd9d1f2d46bdc10e4e2")
    assert legacy_serial_for("a", "bc") == hashlib.new("sm3", b"a\x00bc").digest()[:16].hex().upper()


def test_short_code_round_trip() -> None:
    serial = serial_for("11410100990000017F", "建字第410100202400123号", key=KEY)
    for version in (1, 2, 31, 32, 999):
        identifier = CertificateIdentifier.build(
            "11410100990000017F003", "11410100990000017F", serial, version
        )
        code = short_code(identifier)
        assert code is not None and len(code) == SHORT_CODE_LENGTH == 28
        assert code == short_code(str(identifier)) == short_code_of(serial, version)
        assert re.fullmatch(r"[a-z2-7]{28}", code)
        assert parse_short_code(code) == (serial, version)
    assert short_code(identifier.with_version(1)) != short_code(identifier.with_version(2))
    # serials that are not 16 bytes of hex (imported identifiers) have no short code
    foreign = CertificateIdentifier.build("11410100990000017F003", "11410100990000017F", "00000123", 1)
    assert short_code(foreign) is None
    # not a short code: wrong length, alphabet, non-canonical base32 tail, version 0 or over 999
    code = short_code_of(serial, 1)
    assert code is not None
    for bad in ("", code[:-1], code.upper(), code[:25] + "7" + code[26:], code[:26] + "aa", code[:26] + "77",
                "1.2.156.3005.2.x", None):  # fmt: skip
        assert parse_short_code(bad) is None  # type: ignore[arg-type]


@pytest.mark.parametrize(("issuer", "number"), [("", "1"), ("A", ""), ("A\x00", "1")])
def test_serial_refuses_empty_or_nul(issuer: str, number: str) -> None:
    with pytest.raises(IdentifierError):
        serial_for(issuer, number, key=KEY)
    with pytest.raises(IdentifierError):
        legacy_serial_for(issuer, number)


# --- resident ID (公民身份号码) ---------------------------------------------------------------------------


@pytest.mark.parametrize("case", RESIDENT["valid"], ids=_id)
def test_valid_resident_ids(case: dict[str, Any]) -> None:
    assert validate_resident_id(case["value"]) == case["normalised"]
    assert validate_holder_id(HolderIdType.RESIDENT_ID, case["value"]) == case["normalised"]


@pytest.mark.parametrize("case", RESIDENT["invalid"], ids=_id)
def test_invalid_resident_ids(case: dict[str, Any]) -> None:
    with pytest.raises(HolderIdError) as raised:
        validate_resident_id(case["value"])
    assert raised.value.reason == case["reason"]
    assert str(raised.value)  # every refusal says why


def test_resident_id_messages() -> None:
    with pytest.raises(HolderIdError, match="GB 11643 MOD 11-2 gives X"):
        validate_resident_id("110105194912310021")
    with pytest.raises(HolderIdError, match="birth date 19990230 is not a real date"):
        validate_resident_id("410100199902300014")
    with pytest.raises(HolderIdError, match="first-generation 15-digit"):
        validate_resident_id("410100900307123")


# --- unified social credit code (统一社会信用代码) ------------------------------------------------------------


@pytest.mark.parametrize("case", CREDIT["valid"], ids=_id)
def test_valid_credit_codes(case: dict[str, Any]) -> None:
    expected = case.get("normalised", case["value"])
    assert validate_credit_code(case["value"]) == expected
    assert validate_holder_id(HolderIdType.CREDIT_CODE, case["value"]) == expected
    assert validate_holder_id("001", case["value"]) == expected


@pytest.mark.parametrize("case", CREDIT["invalid"], ids=_id)
def test_invalid_credit_codes(case: dict[str, Any]) -> None:
    with pytest.raises(HolderIdError) as raised:
        validate_credit_code(case["value"])
    assert raised.value.reason == case["reason"]


def test_credit_code_messages() -> None:
    with pytest.raises(HolderIdError, match="GB 32100 MOD 31 gives W"):
        validate_credit_code("11100000000013338X")
    with pytest.raises(HolderIdError, match="'I' are not allowed"):
        validate_credit_code("1110000000001333IW")


def test_every_credit_code_has_exactly_one_check_character() -> None:
    body = "11100000000013338"
    alphabet = "0123456789ABCDEFGHJKLMNPQRTUWXY"
    accepted = []
    for ch in alphabet:
        try:
            validate_credit_code(body + ch)
        except HolderIdError as exc:
            assert exc.reason == "check"
        else:
            accepted.append(ch)
    assert accepted == ["W"]


# --- other holder ID types ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("id_type", "value", "normalised"),
    [
        (HolderIdType.PASSPORT, "E12345678", "E12345678"),
        (HolderIdType.PASSPORT, " ej1234567 ", "EJ1234567"),
        (HolderIdType.HK_MACAO_PERMIT, "H12345678", "H12345678"),
        (HolderIdType.TAIWAN_PERMIT, "12345678", "12345678"),
        (HolderIdType.FOREIGN_PERMANENT_RESIDENCE, "USA123456789012", "USA123456789012"),
        (HolderIdType.OTHER, " 军字第0012345号 ", "军字第0012345号"),
        ("414", "E12345678", "E12345678"),
    ],
)
def test_other_holder_id_types(id_type: HolderIdType | str, value: str, normalised: str) -> None:
    assert validate_holder_id(id_type, value) == normalised


@pytest.mark.parametrize(
    ("id_type", "value", "reason"),
    [
        (HolderIdType.PASSPORT, "E12", "length"),
        (HolderIdType.PASSPORT, "E1234567890123456789012", "length"),
        (HolderIdType.PASSPORT, "E1234-5678", "charset"),
        (HolderIdType.HK_MACAO_PERMIT, "H 12345678", "charset"),
        (HolderIdType.OTHER, "", "length"),
        (HolderIdType.OTHER, "x" * 65, "length"),
        (HolderIdType.OTHER, "ab\ncd", "charset"),
        ("112", "E12345678", "type"),
        (HolderIdType.RESIDENT_ID, "11100000000013338W", "charset"),
        (HolderIdType.CREDIT_CODE, "11010519491231002X", "division"),
    ],
)
def test_other_holder_id_refusals(id_type: HolderIdType | str, value: str, reason: str) -> None:
    with pytest.raises(HolderIdError) as raised:
        validate_holder_id(id_type, value)
    assert raised.value.reason == reason


def test_holder_id_type_codes() -> None:
    assert {t.name: t.value for t in HolderIdType} == {
        "CREDIT_CODE": "001",
        "RESIDENT_ID": "111",
        "PASSPORT": "414",
        "TAIWAN_PERMIT": "511",
        "HK_MACAO_PERMIT": "516",
        "FOREIGN_PERMANENT_RESIDENCE": "553",
        "OTHER": "999",
    }


# --- keyed holder digests -------------------------------------------------------------------------------


def test_holder_digest_is_hmac_sm3_of_type_and_normalised_value() -> None:
    digest = holder_id_digest(SECRET, HolderIdType.RESIDENT_ID, "11010519491231002x")
    assert digest == hmac.new(SECRET, b"111:11010519491231002X", "sm3").digest()
    assert len(digest) == 32
    # the same person typed differently is found; another type or key is not
    assert holder_id_digest(SECRET, "111", " １１０１０５１９４９１２３１００２Ｘ ") == digest
    assert holder_id_digest(SECRET, HolderIdType.OTHER, "11010519491231002X") != digest
    assert holder_id_digest(bytes(32), HolderIdType.RESIDENT_ID, "11010519491231002X") != digest


def test_holder_ref_is_a_short_prefix_without_the_number() -> None:
    digest = holder_id_digest(SECRET, HolderIdType.CREDIT_CODE, "11100000000013338W")
    ref = holder_ref(digest)
    assert ref == digest[:8].hex() and len(ref) == 16
    assert "13338" not in ref
    with pytest.raises(ValueError, match="32-byte"):
        holder_ref(digest[:16])


def test_holder_digest_validates_and_needs_a_real_key() -> None:
    with pytest.raises(HolderIdError) as raised:
        holder_id_digest(SECRET, HolderIdType.RESIDENT_ID, "110105194912310021")
    assert raised.value.reason == "check"
    with pytest.raises(ValueError, match="at least 16 bytes"):
        holder_id_digest(b"short", HolderIdType.RESIDENT_ID, "11010519491231002X")
