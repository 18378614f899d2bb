"""The report model against the contract (verification-report.md): required keys and enums (checked with a JSON
Schema written from the contract text), worst-of logic, no signature → INVALID, and round trips."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import jsonschema
import pytest

from certstore.checks import Check, CheckResult, Indication
from certstore.verify import (
    CertificateReport,
    FileInfo,
    Format,
    SealSummary,
    SignatureKind,
    SignatureReport,
    SignerSummary,
    VerificationReport,
    overall_indication,
    verify_file,
)
from tests.seal.seal_builders import ofdrw_trust
from tests.verify.builders import OFD_FIXTURES

INDICATIONS = ["VALID", "INVALID", "INDETERMINATE"]
CHECK_NAMES = [
    "package",
    "references",
    "data_hash",
    "seal_signature",
    "seal_validity",
    "signer_in_seal",
    "signer_chain",
    "signature",
    "signing_time",
    "timestamp",
    "status",
    "content_match",
]
CHECK = {
    "type": "object",
    "required": ["name", "result", "reason"],
    "properties": {
        "name": {"type": "string", "minLength": 1},
        "result": {"enum": ["PASSED", "FAILED", "UNKNOWN", "SKIPPED"]},
        "reason": {"type": "string", "minLength": 1},
    },
}
#: The contract of verification-report.md as a JSON Schema (extra fields allowed, as the contract says).
SCHEMA = {
    "type": "object",
    "required": ["indication", "format", "certificate", "signatures", "problems"],
    "properties": {
        "indication": {"enum": INDICATIONS},
        "format": {"enum": ["ofd", "pdf"]},
        "certificate": {
            "oneOf": [
                {"type": "null"},
                {
                    "type": "object",
                    "required": ["identifier", "status"],
                    "properties": {"identifier": {"type": "string"}, "status": {"type": ["string", "null"]}},
                },
            ]
        },
        "signatures": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["id", "kind", "indication", "signing_time", "signer", "seal", "checks"],
                "properties": {
                    "id": {"type": "string"},
                    "kind": {"enum": ["seal", "sign"]},
                    "indication": {"enum": INDICATIONS},
                    "signing_time": {"type": ["string", "null"], "format": "date-time"},
                    "signer": {
                        "oneOf": [
                            {"type": "null"},
                            {
                                "type": "object",
                                "required": ["subject", "issuer", "serial"],
                                "properties": {
                                    k: {"type": "string"} for k in ("subject", "issuer", "serial")
                                },
                            },
                        ]
                    },
                    "seal": {
                        "oneOf": [
                            {"type": "null"},
                            {
                                "type": "object",
                                "required": ["id", "name", "version"],
                                "properties": {
                                    "id": {"type": "string"},
                                    "name": {"type": "string"},
                                    "version": {"type": "integer"},
                                },
                            },
                        ]
                    },
                    "checks": {"type": "array", "items": CHECK},
                },
            },
        },
        "problems": {"type": "array", "items": {"type": "string"}},
    },
}

P, F, U, S = CheckResult.PASSED, CheckResult.FAILED, CheckResult.UNKNOWN, CheckResult.SKIPPED


def signature(sid: str, *results: CheckResult, kind: SignatureKind = SignatureKind.SEAL) -> SignatureReport:
    checks = tuple(Check(CHECK_NAMES[i], r, f"reason {i}") for i, r in enumerate(results))
    return SignatureReport(sid, kind, checks)


def test_signature_indication_follows_its_checks() -> None:
    assert signature("a", P, P, S).indication is Indication.VALID
    assert signature("a", P, U, S).indication is Indication.INDETERMINATE
    assert signature("a", P, U, F).indication is Indication.INVALID


@pytest.mark.parametrize(
    ("results", "expected"),
    [
        ([(P,), (P, S)], Indication.VALID),
        ([(P,), (U,)], Indication.INDETERMINATE),
        ([(U,), (F,), (P,)], Indication.INVALID),
    ],
)
def test_overall_is_the_worst_signature(results: list[tuple[CheckResult, ...]], expected: Indication) -> None:
    signatures = [signature(f"s{i}", *r) for i, r in enumerate(results)]
    assert overall_indication(signatures) is expected


def test_no_signature_is_invalid() -> None:
    assert overall_indication([]) is Indication.INVALID
    assert overall_indication([], file_level=[Indication.VALID]) is Indication.INVALID


def test_file_level_and_certificate_findings_count() -> None:
    valid = [signature("s", P)]
    assert overall_indication(valid, file_level=[Indication.INDETERMINATE]) is Indication.INDETERMINATE
    assert overall_indication(valid, file_level=[Indication.INVALID]) is Indication.INVALID
    revoked = CertificateReport("id", "revoked", "吊销", (Check("status", F, "revoked"),))
    assert overall_indication(valid, certificate=revoked) is Indication.INVALID
    offline = CertificateReport("id", None, None, (Check("status", S, "offline"),))
    assert overall_indication(valid, certificate=offline) is Indication.VALID


def _full_report() -> VerificationReport:
    seal = SignatureReport(
        id="Sign_0",
        kind=SignatureKind.SEAL,
        checks=(Check("references", P, "all match"), Check("signer_chain", U, "no anchor", ("w1",))),
        signing_time=datetime(2025, 5, 31, 8, tzinfo=UTC),
        signer=SignerSummary("CN=签章者", "CN=根", "0a1b"),
        seal=SealSummary("41010000000001", "测试专用章", 4),
        location="Doc_0/Signs/Sign_0/Signature.xml",
    )
    sign = SignatureReport("Sign_1", SignatureKind.SIGN, (Check("signature", P, "ok"),))
    return VerificationReport(
        indication=Indication.INDETERMINATE,
        format=Format.OFD,
        signatures=(seal, sign),
        problems=("not protected by any signature: /x",),
        certificate=CertificateReport("1.2.156.3005.2.x", "valid", "有效", (Check("status", P, "valid"),)),
        file=FileInfo(10, "ab" * 32, "cd" * 32, "x.ofd"),
        verified_at=datetime(2025, 6, 1, tzinfo=UTC),
    )


def test_to_dict_matches_the_contract() -> None:
    data = _full_report().to_dict()
    jsonschema.validate(data, SCHEMA, format_checker=jsonschema.FormatChecker())
    assert data["signatures"][0]["signer"] == {"subject": "CN=签章者", "issuer": "CN=根", "serial": "0a1b"}
    assert data["signatures"][0]["seal"] == {"id": "41010000000001", "name": "测试专用章", "version": 4}
    assert data["signatures"][0]["checks"][1] == {
        "name": "signer_chain",
        "result": "UNKNOWN",
        "reason": "no anchor",
        "warnings": ["w1"],
    }
    assert (
        data["certificate"]["identifier"] == "1.2.156.3005.2.x" and data["certificate"]["status"] == "valid"
    )
    assert data["file"] == {"size": 10, "sm3": "ab" * 32, "sha256": "cd" * 32, "name": "x.ofd"}


def test_round_trip() -> None:
    report = _full_report()
    data = json.loads(json.dumps(report.to_dict(), ensure_ascii=False))
    again = VerificationReport.from_dict(data)
    assert again == report
    assert again.to_dict() == report.to_dict()


@pytest.mark.parametrize("path", sorted(OFD_FIXTURES.glob("*.ofd")), ids=lambda p: p.stem)
def test_real_reports_match_the_contract(path: Path) -> None:
    report = verify_file(path.read_bytes(), trust=ofdrw_trust(), file_name=path.name)
    data = json.loads(json.dumps(report.to_dict(), ensure_ascii=False))
    jsonschema.validate(data, SCHEMA, format_checker=jsonschema.FormatChecker())
    names = {c["name"] for s in data["signatures"] for c in s["checks"]}
    assert names - set(CHECK_NAMES) == {
        "property_info",
        "seal_copy",
        "seal_maker",
    }  # the contract's, plus three
    assert VerificationReport.from_dict(data).to_dict() == data


def test_signature_lookup_names_what_is_missing() -> None:
    report = _full_report()
    with pytest.raises(KeyError, match="no signature 'nope'"):
        report.signature("nope")
    with pytest.raises(KeyError, match="has no check 'status'"):
        report.signature("Sign_0").check("status")
