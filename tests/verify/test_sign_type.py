"""``Type="Sign"`` signatures (issue 4 item 8): a raw SM2 signature over Signature.xml and GB/T 35275 SignedData in
both forms, built in the test from DER primitives and our SM2 signer; VALID when intact, INVALID when tampered."""

from __future__ import annotations

import pytest

from certstore.checks import CheckResult, Indication
from certstore.verify import OfdOptions, SignatureKind, VerificationReport, verify_file
from certstore.verify.sign import SignedValueKind, classify_signed_value, parse_signature_date_time
from tests.seal.seal_builders import Hierarchy, Party, make_hierarchy
from tests.verify.builders import PAGE, SIGNATURE_XML, SIGNED_VALUE, SIGNING_TIME, signed_ofd, with_entries

P, F, U, S = CheckResult.PASSED, CheckResult.FAILED, CheckResult.UNKNOWN, CheckResult.SKIPPED
NAMES = ("package", "references", "data_hash", "signer_chain", "signature", "signing_time", "timestamp")
FORMS = ("raw", "content", "content-base64", "attributes")


@pytest.fixture(scope="module")
def h() -> Hierarchy:
    return make_hierarchy()


def verify(h: Hierarchy, package: bytes, *, known: bool = True) -> VerificationReport:
    options = OfdOptions(sign_certificates=(h.signer.certificate,) if known else ())
    return verify_file(package, trust=h.trust, ofd_options=options)


def results(report: VerificationReport) -> dict[str, CheckResult]:
    (signature,) = report.signatures
    assert [c.name for c in signature.checks] == list(NAMES)
    return {c.name: c.result for c in signature.checks}


@pytest.mark.parametrize("form", FORMS)
def test_intact_signature_is_valid(h: Hierarchy, form: str) -> None:
    report = verify(h, signed_ofd(h.signer, form=form).package)
    assert report.indication is Indication.VALID, report.to_dict()
    assert report.problems == ()
    signature = report.signatures[0]
    assert signature.kind is SignatureKind.SIGN
    assert signature.seal is None
    assert signature.signer is not None and signature.signer.subject == h.signer.certificate.subject
    assert signature.signing_time == SIGNING_TIME
    expected_hash = S if form == "raw" else P
    assert results(report) == dict(zip(NAMES, (P, P, expected_hash, P, P, P, S), strict=True))


def test_reasons_name_the_form(h: Hierarchy) -> None:
    content = verify(h, signed_ofd(h.signer, form="content").package).signatures[0]
    assert "equals the eContent" in content.check("data_hash").reason
    assert "over the eContent (32 bytes)" in content.check("signature").reason
    attributes = verify(h, signed_ofd(h.signer, form="attributes").package).signatures[0]
    assert "equals the messageDigest attribute" in attributes.check("data_hash").reason
    assert "DER of the signed-attribute SET" in attributes.check("signature").reason
    assert "signed signingTime attribute" in attributes.check("signing_time").reason
    base64_form = verify(h, signed_ofd(h.signer, form="content-base64").package).signatures[0]
    assert base64_form.check("data_hash").warnings == (
        "eContent holds Base64(SM3(Signature.xml)) instead of the 32-byte digest (ofdrw compatibility)",
    )


@pytest.mark.parametrize("form", FORMS)
def test_tampered_page_is_invalid(h: Hierarchy, form: str) -> None:
    built = signed_ofd(h.signer, form=form)
    tampered = with_entries(
        built.package, {PAGE: built.files[PAGE].replace("测试".encode(), "伪造".encode())}
    )
    report = verify(h, tampered)
    assert report.indication is Indication.INVALID
    assert results(report)["references"] is F
    assert f"/{PAGE}: SM3 digest differs" in report.signatures[0].check("references").reason


@pytest.mark.parametrize(
    ("form", "failing", "indication"),
    [
        # A raw value names no signer: failing under the known key cannot tell an altered Signature.xml from
        # another signer (signer certificate not found) — never VALID, not INVALID either.
        ("raw", U, Indication.INDETERMINATE),
        ("content", F, Indication.INVALID),
        ("content-base64", F, Indication.INVALID),
        ("attributes", F, Indication.INVALID),
    ],
)
def test_tampered_signature_xml_is_not_valid(
    h: Hierarchy, form: str, failing: CheckResult, indication: Indication
) -> None:
    """Dropping a Reference from Signature.xml (to hide a page) breaks the signature over it."""
    built = signed_ofd(h.signer, form=form)
    xml = built.files[SIGNATURE_XML]
    start = xml.index(b'<ofd:Reference FileRef="/Doc_0/Pages')
    end = xml.index(b"</ofd:Reference>", start) + len(b"</ofd:Reference>")
    report = verify(h, with_entries(built.package, {SIGNATURE_XML: xml[:start] + xml[end:]}))
    assert report.indication is indication
    checked = results(report)
    assert checked["signature" if form == "raw" else "data_hash"] is failing


@pytest.mark.parametrize("form", ("content", "content-base64", "attributes"))
def test_signature_by_another_key_is_invalid(h: Hierarchy, form: str) -> None:
    """The genuine certificate, named by the SignedData, and a signature made with another key: INVALID."""
    impostor = Party(h.other_signer.signer, h.signer.certificate)
    report = verify(h, signed_ofd(impostor, form=form).package)
    assert report.indication is Indication.INVALID
    assert results(report)["signature"] is F
    assert "does not verify with the key of" in report.signatures[0].check("signature").reason


def test_raw_signature_by_an_unknown_key_is_indeterminate(h: Hierarchy) -> None:
    """Issue 15 item 5: a raw signature whose key matches none of the known signers is not evidence of
    tampering: INDETERMINATE, "signer certificate not found"."""
    impostor = Party(h.other_signer.signer, h.signer.certificate)
    report = verify(h, signed_ofd(impostor, form="raw").package)
    assert report.indication is Indication.INDETERMINATE, report.to_dict()
    checked = results(report)
    assert checked["signature"] is U
    assert checked["references"] is P
    reason = report.signatures[0].check("signature").reason
    assert reason.startswith("signer certificate not found")
    assert "none of the 1 known signer certificate(s)" in reason
    assert report.signatures[0].signer is None


def test_raw_signature_without_known_certificate_is_indeterminate(h: Hierarchy) -> None:
    report = verify(h, signed_ofd(h.signer, form="raw").package, known=False)
    assert report.indication is Indication.INDETERMINATE
    assert results(report)["signature"] is U
    assert "carries no certificate" in report.signatures[0].check("signature").reason


def test_raw_signature_with_only_unrelated_certificates_is_indeterminate(h: Hierarchy) -> None:
    """The verifier knows signers, the file was signed by none of them (e.g. another vendor's raw Sign)."""
    options = OfdOptions(sign_certificates=(h.other_signer.certificate, h.expired_signer.certificate))
    report = verify_file(signed_ofd(h.signer, form="raw").package, trust=h.trust, ofd_options=options)
    assert report.indication is Indication.INDETERMINATE
    check = report.signatures[0].check("signature")
    assert check.result is U
    assert "signer certificate not found" in check.reason
    assert "none of the 2 known signer certificate(s)" in check.reason


def test_raw_signature_found_among_several_known_signers(h: Hierarchy) -> None:
    options = OfdOptions(sign_certificates=(h.other_signer.certificate, h.signer.certificate))
    report = verify_file(signed_ofd(h.signer, form="raw").package, trust=h.trust, ofd_options=options)
    assert report.indication is Indication.VALID
    assert report.signatures[0].signer is not None
    assert report.signatures[0].signer.subject == h.signer.certificate.subject


def test_signed_data_naming_an_unknown_signer_is_indeterminate(h: Hierarchy) -> None:
    built = signed_ofd(h.signer, form="content", include_certificate=False)
    options = OfdOptions(sign_certificates=(h.other_signer.certificate,))
    report = verify_file(built.package, trust=h.trust, ofd_options=options)
    assert report.indication is Indication.INDETERMINATE
    check = report.signatures[0].check("signature")
    assert check.result is U
    assert check.reason.startswith("signer certificate not found")


def test_signed_data_without_its_certificate_uses_a_given_one(h: Hierarchy) -> None:
    built = signed_ofd(h.signer, form="attributes", include_certificate=False)
    assert verify(h, built.package).indication is Indication.VALID
    report = verify(h, built.package, known=False)
    assert report.indication is Indication.INDETERMINATE
    assert results(report)["signature"] is U


def test_expired_signer_is_invalid(h: Hierarchy) -> None:
    report = verify_file(
        signed_ofd(h.expired_signer, form="content").package,
        trust=h.trust,
        ofd_options=OfdOptions(),
    )
    assert report.indication is Indication.INVALID
    assert results(report)["signing_time"] is F
    assert results(report)["signer_chain"] is F


def test_kind_follows_the_signed_value_not_the_type_attribute(h: Hierarchy) -> None:
    """Type omitted (= Seal) but SignedValue.dat is a SignedData: verified as a signature, with a warning."""
    report = verify(h, signed_ofd(h.signer, form="content", declared_type=None).package)
    assert report.indication is Indication.VALID
    package = report.signatures[0].check("package")
    assert any('verified as Type="Sign"' in w for w in package.warnings)


@pytest.mark.parametrize(
    "value",
    [bytes(64), b"\x30\x08\x02\x02\x00\x01\x02\x02\x00\x01"],
    ids=["raw-r-zero", "der-with-leading-zeros"],
)
def test_unreadable_raw_signature_value_fails_the_package(h: Hierarchy, value: bytes) -> None:
    """A value read as a raw SM2 signature but with r = 0 or non-canonical DER is no signature under any key:
    the package check fails with the decoder's reason (as for a SignedValue.dat of no known structure)."""
    package = with_entries(signed_ofd(h.signer, form="raw").package, {SIGNED_VALUE: value})
    report = verify(h, package)
    assert report.indication is Indication.INVALID
    package_check = report.signatures[0].check("package")
    assert package_check.result is F
    assert "not a readable SM2 signature value" in package_check.reason


def test_classify_signed_value(h: Hierarchy) -> None:
    built = signed_ofd(h.signer, form="content")
    assert classify_signed_value(built.files[SIGNED_VALUE]) is SignedValueKind.CMS
    assert classify_signed_value(h.signer.signer.sign(b"x")) is SignedValueKind.RAW
    assert classify_signed_value(bytes(64)) is SignedValueKind.RAW
    assert classify_signed_value(b"\x30\x03\x02\x01\x01") is SignedValueKind.SES


@pytest.mark.parametrize(
    ("text", "iso"),
    [
        ("20201010151120", "2020-10-10T07:11:20+00:00"),
        ("20200723130907.763Z", "2020-07-23T13:09:07.763000+00:00"),
        ("2021-05-19 20:53:44", "2021-05-19T12:53:44+00:00"),
        ("2021/05/19 20:53:44", "2021-05-19T12:53:44+00:00"),
        ("2021-05-19T20:53:44+08:00", "2021-05-19T12:53:44+00:00"),
    ],
)
def test_signature_date_time_spellings(text: str, iso: str) -> None:
    parsed, _note = parse_signature_date_time(text)
    assert parsed is not None and parsed.isoformat() == iso


def test_unreadable_signature_date_time() -> None:
    assert parse_signature_date_time("yesterday") == (
        None,
        "SignatureDateTime 'yesterday' is not a recognised time",
    )
