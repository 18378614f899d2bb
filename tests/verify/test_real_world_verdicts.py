"""Issue 15 item 5, verdicts on real files: not knowing the signer is INDETERMINATE, not INVALID; a malformed
non-critical certificate extension is a warning and the signature is still checked with the certificate's key;
a malformed critical one makes the certificate unreliable (INDETERMINATE); no input raises.

The certificates with a malformed extension are built here: a test certificate whose authorityKeyIdentifier
holds a GeneralNames encoded as a primitive (as GM/T 0031 maker certificates in the wild do), re-signed by the
test CA so that the certificate signature still verifies."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import timedelta

import pytest

from certstore.checks import CheckResult, Indication
from certstore.crypto.trust import ChainStatus, validate_chain
from certstore.crypto.x509 import Certificate
from certstore.seal import asn1 as ses
from certstore.seal import verify_seal, verify_seal_signature
from certstore.verify import OfdOptions, VerificationReport, verify_file
from tests.pki import Party
from tests.seal.seal_builders import (
    NOW,
    Hierarchy,
    build_v1_seal,
    build_v1_signature,
    make_hierarchy,
    with_malformed_extension,
)
from tests.verify.builders import (
    SEAL_ESL,
    SIGNATURE_XML,
    SIGNATURES_XML,
    SIGNED_VALUE,
    content_files,
    entries_of,
    signature_xml,
    signatures_xml,
    signed_ofd,
    with_entries,
    zip_bytes,
)

P, F, U, S = CheckResult.PASSED, CheckResult.FAILED, CheckResult.UNKNOWN, CheckResult.SKIPPED

#: timeInfo of the GM/T 0031 signatures built here (the day before the hierarchy's NOW).
TIME_INFO = b"2025-05-31T08:00:00.000Z"
SUBJECT_ALT_NAME = "2.5.29.17"
CRL_DISTRIBUTION_POINTS = "2.5.29.31"
#: A GeneralNames (SEQUENCE OF GeneralName) encoded with the primitive SEQUENCE tag 0x10 instead of 0x30.
PRIMITIVE_GENERAL_NAMES = b"\x10\x03\x82\x01\x41"


@pytest.fixture(scope="module")
def h() -> Hierarchy:
    return make_hierarchy()


@pytest.fixture(scope="module")
def lax_maker(h: Hierarchy) -> Party:
    """The maker, whose certificate's non-critical authorityKeyIdentifier does not decode."""
    return with_malformed_extension(h.maker, h.root)


@pytest.fixture(scope="module")
def strict_maker(h: Hierarchy) -> Party:
    """The maker, with the same malformed extension marked critical."""
    return with_malformed_extension(h.maker, h.root, critical=True)


def v1_sealed_ofd(h: Hierarchy, maker: Party, *, tamper_seal: bool = False) -> tuple[bytes, bytes]:
    """(package, Seal.esl) of an OFD sealed with a GM/T 0031 seal made by ``maker``."""
    seal = build_v1_seal(
        maker, [h.signer.certificate], created=NOW - timedelta(days=100), valid_end=NOW + timedelta(days=300)
    )
    if tamper_seal:
        seal = seal.replace("测试章".encode(), "伪造章".encode())
    content = {**content_files(), SEAL_ESL: seal}
    xml = signature_xml(content, seal=f"/{SEAL_ESL}")
    value = build_v1_signature(seal, h.signer, xml, ses.TimeInfoV1(name="bit_string", value=TIME_INFO))
    files = {
        **content,
        SIGNATURES_XML: signatures_xml([("s1", "Seal", f"/{SIGNATURE_XML}")]),
        SIGNATURE_XML: xml,
        SIGNED_VALUE: value,
    }
    return zip_bytes(files.items()), seal


def checks_of(report: VerificationReport) -> dict[str, CheckResult]:
    (signature,) = report.signatures
    return {c.name: c.result for c in signature.checks}


# --- The certificate -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("oid", ["2.5.29.35", SUBJECT_ALT_NAME, CRL_DISTRIBUTION_POINTS])
def test_malformed_non_critical_extension_is_read_around(h: Hierarchy, oid: str) -> None:
    value = {
        "2.5.29.35": None,  # authorityCertIssuer [1] GeneralNames as a primitive
        SUBJECT_ALT_NAME: PRIMITIVE_GENERAL_NAMES,
        CRL_DISTRIBUTION_POINTS: b"\x30\x05\x30\x03\x80\x01\x41",  # distributionPoint [0] as a primitive
    }[oid]
    party = with_malformed_extension(h.signer, h.root, oid=oid, value=value)
    cert = party.certificate
    assert [m.critical for m in cert.malformed_extensions] == [False]
    assert cert.subject == h.signer.certificate.subject
    assert cert.public_key == h.signer.certificate.public_key
    assert cert.not_after == h.signer.certificate.not_after
    assert cert.key_usage == h.signer.certificate.key_usage
    assert cert.unreliable_reason is None
    (warning,) = cert.extension_warnings
    assert "malformed non-critical extension" in warning
    assert cert.is_signed_by(h.root.certificate.public_key)
    assert validate_chain(cert, trust=h.trust, at=NOW).ok


def test_malformed_critical_extension_makes_the_chain_unreliable(h: Hierarchy, strict_maker: Party) -> None:
    cert = strict_maker.certificate
    assert cert.extension_warnings == ()
    assert cert.unreliable_reason is not None
    assert "malformed critical extension authority_key_identifier" in cert.unreliable_reason
    chain = validate_chain(cert, trust=h.trust, at=NOW)
    assert chain.status is ChainStatus.UNRELIABLE
    assert chain.to_check("maker_chain").result is U


def test_intact_certificates_have_no_malformed_extensions(h: Hierarchy) -> None:
    assert h.maker.certificate.malformed_extensions == ()
    assert h.maker.certificate.asn1 is h.maker.certificate._asn1


# --- GM/T 0031 seal with such a maker certificate --------------------------------------------------------------


def test_v1_seal_with_malformed_non_critical_extension_is_valid_with_a_warning(
    h: Hierarchy, lax_maker: Party
) -> None:
    package, seal = v1_sealed_ofd(h, lax_maker)
    report = verify_file(package, trust=h.trust)
    assert report.indication is Indication.VALID, report.to_dict()
    checks = checks_of(report)
    assert checks["seal_signature"] is P
    assert checks["signature"] is P
    seal_signature = report.signatures[0].check("seal_signature")
    assert "verifies with the key of 'CN=制章者" in seal_signature.reason
    assert any("authority_key_identifier" in w for w in seal_signature.warnings)

    alone = verify_seal(seal, trust=h.trust, at=NOW)
    assert alone.indication is Indication.VALID
    assert alone.check("seal_signature").warnings == lax_maker.certificate.extension_warnings


def test_v1_seal_with_malformed_extension_and_tampered_seal_is_invalid(
    h: Hierarchy, lax_maker: Party
) -> None:
    package, seal = v1_sealed_ofd(h, lax_maker, tamper_seal=True)
    report = verify_file(package, trust=h.trust)
    assert report.indication is Indication.INVALID
    check = report.signatures[0].check("seal_signature")
    assert check.result is F
    assert "does not verify with the key of 'CN=制章者" in check.reason
    assert verify_seal(seal, trust=h.trust, at=NOW).check("seal_signature").result is F


def test_v1_seal_with_malformed_critical_extension_is_indeterminate(
    h: Hierarchy, strict_maker: Party
) -> None:
    package, _seal = v1_sealed_ofd(h, strict_maker)
    report = verify_file(package, trust=h.trust)
    assert report.indication is Indication.INDETERMINATE, report.to_dict()
    checks = checks_of(report)
    assert checks["seal_signature"] is P  # the seal is checked with the key all the same
    assert checks["seal_validity"] is U
    assert "cannot be relied upon" in report.signatures[0].check("seal_validity").reason


def test_signer_certificate_with_malformed_non_critical_extension(h: Hierarchy) -> None:
    signer = with_malformed_extension(h.signer, h.root, oid=SUBJECT_ALT_NAME, value=PRIMITIVE_GENERAL_NAMES)
    assert signer.certificate.extension_warnings
    seal = build_v1_seal(
        h.maker, [signer.certificate], created=NOW - timedelta(days=100), valid_end=NOW + timedelta(days=300)
    )
    data = b"<ofd:Signature/>"
    der = build_v1_signature(seal, signer, data, ses.TimeInfoV1(name="bit_string", value=TIME_INFO))
    verification = verify_seal_signature(der, data=data, trust=h.trust)
    assert verification.indication is Indication.VALID, verification.to_dict()
    assert verification.check("signature").warnings == signer.certificate.extension_warnings
    tampered = verify_seal_signature(der, data=data + b" ", trust=h.trust)
    assert tampered.indication is Indication.INVALID


# --- Raw Type="Sign" by an unknown signer ------------------------------------------------------------------------


def test_unknown_signer_raw_sign_is_indeterminate(h: Hierarchy) -> None:
    """Signed by a key the verifier does not know (here: another vendor's signer): signer certificate not found."""
    stranger = Party(h.other_signer.signer, h.other_signer.certificate)
    package = signed_ofd(stranger, form="raw").package
    options = OfdOptions(sign_certificates=(h.signer.certificate, h.expired_signer.certificate))
    report = verify_file(package, trust=h.trust, ofd_options=options)
    assert report.indication is Indication.INDETERMINATE, report.to_dict()
    check = report.signatures[0].check("signature")
    assert check.result is U
    assert check.reason.startswith("signer certificate not found")
    # Once the signer's certificate is known, the same file verifies.
    known = OfdOptions(sign_certificates=(h.other_signer.certificate,))
    assert verify_file(package, trust=h.trust, ofd_options=known).indication is Indication.VALID


# --- No input raises -----------------------------------------------------------------------------------------------


def _truncations(data: bytes) -> Iterator[bytes]:
    for cut in (0, 1, 2, 10, len(data) // 2, len(data) - 1):
        yield data[:cut]


def _mutated_packages(h: Hierarchy, lax_maker: Party) -> Iterator[tuple[str, bytes]]:
    """(label, package): OFDs whose SignedValue.dat is damaged — the signature itself, the certificates inside
    it, or its length."""
    v1_package, _seal = v1_sealed_ofd(h, lax_maker)
    raw_package = signed_ofd(h.signer, form="raw").package
    cms_package = signed_ofd(h.signer, form="attributes").package
    originals = {
        "v1 seal signature": v1_package,
        "raw": raw_package,
        "SignedData": cms_package,
    }
    values = {name: dict(entries_of(package))[SIGNED_VALUE] for name, package in originals.items()}
    for name, value in values.items():
        for index, cut in enumerate(_truncations(value)):
            yield f"{name} truncated #{index}", with_entries(originals[name], {SIGNED_VALUE: cut})
        yield f"{name}: empty SignedValue", with_entries(originals[name], {SIGNED_VALUE: b""})
    raw = values["raw"]
    for label, value in (
        ("raw signature of 63 bytes", raw[:63]),
        ("raw r‖s of 65 bytes", b"\x01" * 65),
        ("raw r‖s of 64 zero bytes", bytes(64)),
        ("DER SEQUENCE{INTEGER, INTEGER} of zeros", b"\x30\x06\x02\x01\x00\x02\x01\x00"),
    ):
        yield label, with_entries(raw_package, {SIGNED_VALUE: value})
    v1 = values["v1 seal signature"]
    rng = random.Random(15)
    for _index in range(40):
        position = rng.randrange(len(v1))
        flipped = bytearray(v1)
        flipped[position] ^= 1 << rng.randrange(8)
        yield f"v1 signature bit flip at {position}", with_entries(v1_package, {SIGNED_VALUE: bytes(flipped)})
    # Wrong tags in the maker certificate (inside its extensions too): a byte replaced by a tag, in steps.
    maker_der = lax_maker.certificate.der
    at = v1.index(maker_der)
    for offset in range(0, len(maker_der), max(1, len(maker_der) // 25)):
        for tag in (0x04, 0x10, 0x30, 0x81, 0xA1, 0x05):
            if v1[at + offset] == tag:
                continue
            broken = bytearray(v1)
            broken[at + offset] = tag
            yield (
                f"maker certificate byte {offset} := {tag:#04x}",
                with_entries(v1_package, {SIGNED_VALUE: bytes(broken)}),
            )


def test_mutated_inputs_never_raise_and_never_verify(h: Hierarchy, lax_maker: Party) -> None:
    options = OfdOptions(sign_certificates=(h.signer.certificate,))
    seen = 0
    for label, package in _mutated_packages(h, lax_maker):
        report = verify_file(package, trust=h.trust, ofd_options=options)
        assert isinstance(report, VerificationReport), label
        assert report.indication is not Indication.VALID, (label, report.to_dict())
        seen += 1
    assert seen > 150


def test_mutated_certificates_never_raise(lax_maker: Party) -> None:
    """Certificate parsing answers with a Certificate or a CertificateError, never another exception."""
    der = lax_maker.certificate.der
    rng = random.Random(5)
    for _ in range(300):
        broken = bytearray(der)
        for _flip in range(rng.randrange(1, 4)):
            broken[rng.randrange(len(broken))] ^= 1 << rng.randrange(8)
        try:
            cert = Certificate.from_der(bytes(broken))
        except ValueError:
            continue
        # Whatever parsed must answer the questions the verifiers ask.
        cert.describe()
        _ = (cert.subject_key_id, cert.authority_key_id, cert.critical_extensions, cert.unreliable_reason)
