"""The third-party OFD fixtures reach the verdicts of fixtures/third-party/README.md through ``verify_file``.

Trust: the ofdrw test root only, with the ofdrw maker configured as a trusted seal maker (its certificate asserts
clientAuth, not the seal-maker purpose); validity judged at each signature's signing time (the default), never now.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from certstore.checks import CheckResult, Indication
from certstore.crypto.trust import TrustStore
from certstore.verify import SignatureKind, VerificationReport, verify_file
from tests.seal.seal_builders import ofdrw_trust
from tests.verify.builders import fixture, with_entries

P, F, U, S = CheckResult.PASSED, CheckResult.FAILED, CheckResult.UNKNOWN, CheckResult.SKIPPED
NAMES = (
    "package",
    "references",
    "data_hash",
    "property_info",
    "seal_signature",
    "seal_maker",
    "seal_copy",
    "seal_validity",
    "signer_in_seal",
    "signer_chain",
    "signature",
    "signing_time",
    "timestamp",
)
ALL_PASS = dict(zip(NAMES, (P, P, P, P, P, P, P, P, P, P, P, P, S), strict=True))

# file → (overall indication, {signature id: (signing time, expected check results)})
EXPECTED = {
    "ofdrw-sign__allprotected.ofd": (Indication.VALID, {"001": ("2020-10-23T11:45:37+00:00", ALL_PASS)}),
    "ofdrw-sign__v4signed.ofd": (
        Indication.INDETERMINATE,
        {
            "1": (
                "2020-10-10T07:11:20+00:00",
                # no <Seal> element: nothing to compare; the tax test CA is not a trust anchor
                {**ALL_PASS, "seal_maker": U, "seal_copy": S, "seal_validity": U, "signer_chain": U},
            )
        },
    ),
    "ofdrw-reader__SESV4SignDoc.ofd": (
        Indication.INVALID,
        {
            "1": (
                "2026-08-04T02:08:09+00:00",
                {**ALL_PASS, "seal_validity": F, "signer_chain": F, "signing_time": F},
            )
        },
    ),
    "ofdrw-converter__h.ofd": (
        Indication.INVALID,
        {
            "s001": ("2020-07-16T08:04:27+00:00", {**ALL_PASS, "references": F}),
            "s007": ("2020-07-16T08:05:36+00:00", ALL_PASS),
        },
    ),
}


@pytest.fixture(scope="module")
def trust() -> TrustStore:
    return ofdrw_trust()


def _verify(data: bytes, trust: TrustStore, name: str = "x.ofd") -> VerificationReport:
    return verify_file(data, trust=trust, file_name=name)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_fixture_reaches_documented_verdict(name: str, trust: TrustStore) -> None:
    report = _verify(fixture(name), trust, name)
    indication, signatures = EXPECTED[name]
    assert report.indication is indication, json.dumps(report.to_dict(), ensure_ascii=False, indent=1)
    assert [s.id for s in report.signatures] == list(signatures)
    for signature in report.signatures:
        signing_time, checks = signatures[signature.id]
        assert signature.kind is SignatureKind.SEAL
        assert {c.name: c.result for c in signature.checks} == checks, signature.to_dict()
        assert [c.name for c in signature.checks] == list(NAMES)
        assert signature.signing_time is not None and signature.signing_time.isoformat() == signing_time
        assert signature.signer is not None and signature.seal is not None and signature.seal.version == 4
        assert all(c.reason for c in signature.checks)
    assert report.certificate is None  # third-party files carry no ZZBS identifier
    assert report.file is not None and report.file.name == name and len(report.file.sm3) == 64
    json.dumps(report.to_dict(), ensure_ascii=False)


def test_allprotected_has_no_problems(trust: TrustStore) -> None:
    report = _verify(fixture("ofdrw-sign__allprotected.ofd"), trust)
    assert report.problems == ()
    assert report.signature("001").seal.name == "OFD R&W 测试用印章"  # type: ignore[union-attr]


def test_h_ofd_names_the_reference_that_a_later_signature_broke(trust: TrustStore) -> None:
    report = _verify(fixture("ofdrw-converter__h.ofd"), trust)
    references = report.signature("s001").check("references")
    assert references.reason.startswith(
        "1 of 9 reference(s) fail: /Doc_0/Signs/Signatures.xml: SM3 digest differs"
    )
    assert any("later signature(s) 's007'" in w for w in references.warnings)
    assert report.signature("s007").indication is Indication.VALID
    # h.ofd's Document.xml names a PublicRes.xml the package does not hold: reported, not fatal.
    assert report.problems == (
        "Doc_0/Document.xml PublicRes: 'PublicRes.xml' (Doc_0/PublicRes.xml) is not in the package",
    )


def test_v4signed_crypto_passes_and_trust_is_unknown(trust: TrustStore) -> None:
    signature = _verify(fixture("ofdrw-sign__v4signed.ofd"), trust).signature("1")
    assert "all 13 reference(s) match (SM3)" in signature.check("references").reason
    assert "no trust anchor" in signature.check("signer_chain").reason
    assert any("Type omitted" in w for w in signature.check("package").warnings)
    assert signature.seal is not None and signature.seal.id == "50011200000399"


def test_v4signed_reports_the_case_mismatched_template(trust: TrustStore) -> None:
    report = _verify(fixture("ofdrw-sign__v4signed.ofd"), trust)
    assert len(report.problems) == 1
    assert "'TPLS/Tpl_0/Content.xml'" in report.problems[0] and "case differs" in report.problems[0]


def test_sesv4signdoc_names_the_expired_validities(trust: TrustStore) -> None:
    signature = _verify(fixture("ofdrw-reader__SESV4SignDoc.ofd"), trust).signature("1")
    assert "after the signer certificate's notAfter 2022-04-21" in signature.check("signing_time").reason
    assert "seal expired: validEnd 2022-04-22" in signature.check("seal_validity").reason


def test_verified_now_the_valid_fixture_is_invalid(trust: TrustStore) -> None:
    report = verify_file(fixture("ofdrw-sign__allprotected.ofd"), trust=trust, at=datetime.now(UTC))
    assert report.indication is Indication.INVALID
    assert report.signature("001").check("signer_chain").result is CheckResult.FAILED


def test_without_the_anchor_everything_else_still_passes(trust: TrustStore) -> None:
    report = verify_file(fixture("ofdrw-sign__allprotected.ofd"), trust=TrustStore())
    assert report.indication is Indication.INDETERMINATE
    signature = report.signature("001")
    assert {c.name for c in signature.checks if c.result is CheckResult.UNKNOWN} == {
        "seal_maker",
        "seal_validity",
        "signer_chain",
    }


def test_an_added_unreferenced_file_makes_the_file_indeterminate(trust: TrustStore) -> None:
    """Canonical-package rule 3: a file no signature protects is listed, and nobody can say it belongs."""
    data = with_entries(fixture("ofdrw-sign__allprotected.ofd"), {"Doc_0/Res/added.png": b"\x89PNG added"})
    report = _verify(data, trust)
    assert report.problems == ("rule 3 (coverage): not protected by any signature: /Doc_0/Res/added.png",)
    assert report.indication is Indication.INDETERMINATE


def test_kinggrid_style_prepended_bytes_are_refused(trust: TrustStore) -> None:
    """Canonical-package rule 1: bytes before the archive are what a streaming reader reads first."""
    report = _verify(b"KingGrid-header\x00" * 4 + fixture("ofdrw-sign__allprotected.ofd"), trust)
    assert report.indication is Indication.INVALID
    assert report.problems == (
        "package refused: canonical package rule 1 (one archive): 64 byte(s) before the first local header (a "
        "prefix: streaming readers read it, or skip to another archive)",
    )
