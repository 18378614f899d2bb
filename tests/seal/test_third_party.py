"""Third-party seals and OFD files (fixtures/third-party/README.md): SES-level verdicts at signing time."""

from __future__ import annotations

import json
import posixpath
import xml.etree.ElementTree as ET
import zipfile
from datetime import datetime
from pathlib import Path

import pytest

from certstore.checks import CheckResult, Indication
from certstore.crypto.trust import TrustStore
from certstore.seal import SealLayout, parse_seal, verify_seal, verify_seal_signature
from tests.seal import seal_builders
from tests.seal.seal_builders import FIXTURES

VECTORS = json.loads(
    (Path(__file__).resolve().parent / "vectors" / "third_party_ofd.json").read_text("utf-8")
)
OFD_NS = "{http://www.ofdspec.org/2016}"


@pytest.fixture(scope="module")
def ofdrw_trust() -> TrustStore:
    return seal_builders.ofdrw_trust()


def _resolve(base_dir: str, location: str) -> str:
    """An OFD ST_Loc: absolute from the package root, or relative to the directory of the referring file."""
    if location.startswith("/"):
        return location.lstrip("/")
    return posixpath.normpath(posixpath.join(base_dir, location))


def _seal_signatures(package: zipfile.ZipFile) -> dict[str, tuple[bytes, bytes]]:
    """Signature.xml path → (Signature.xml bytes, SignedValue.dat bytes), following
    Doc_0/Signs/Signatures.xml."""
    found = {}
    signatures_xml = "Doc_0/Signs/Signatures.xml"
    for element in ET.fromstring(package.read(signatures_xml)).iter(f"{OFD_NS}Signature"):
        signature_path = _resolve(posixpath.dirname(signatures_xml), element.attrib["BaseLoc"])
        signature_xml = package.read(signature_path)
        signed_value = ET.fromstring(signature_xml).find(f"{OFD_NS}SignedValue")
        assert signed_value is not None and signed_value.text
        value_path = _resolve(posixpath.dirname(signature_path), signed_value.text.strip())
        found[signature_path] = (signature_xml, package.read(value_path))
    return found


def test_relative_locations_resolve() -> None:
    assert _resolve("Doc_0/Signs", "Sign_0/Signature.xml") == "Doc_0/Signs/Sign_0/Signature.xml"
    assert (
        _resolve("Doc_0/Signs/Sign_0", "/Doc_0/Signs/Sign_0/SignedValue.dat")
        == "Doc_0/Signs/Sign_0/SignedValue.dat"
    )
    assert _resolve("Doc_0/Signs/Sign_0", "../Sign_1/x.dat") == "Doc_0/Signs/Sign_1/x.dat"


def test_user_v4_seal(ofdrw_trust: TrustStore) -> None:
    data = (FIXTURES / "esl" / "ofdrw-gm__UserV4.esl").read_bytes()
    seal = parse_seal(data)
    verification = verify_seal(data, trust=ofdrw_trust, at=seal.created)
    assert {c.name: c.result for c in verification.checks} == {
        "structure": CheckResult.PASSED,
        "seal_signature": CheckResult.PASSED,
        "seal_maker": CheckResult.PASSED,
        "maker_chain": CheckResult.PASSED,
        "seal_validity": CheckResult.PASSED,
    }, verification.to_dict()
    assert "over DER(SES_SealInfo)" in verification.check("seal_signature").reason
    assert verification.indication is Indication.VALID


def test_user_v1_seal(ofdrw_trust: TrustStore) -> None:
    data = (FIXTURES / "esl" / "ofdrw-gm__UserV1.esl").read_bytes()
    seal = parse_seal(data)
    assert seal.layout is SealLayout.GMT0031
    verification = verify_seal(data, trust=ofdrw_trust, at=seal.created)
    assert verification.check("seal_signature").result is CheckResult.PASSED
    assert "SEQUENCE{SES_SealInfo, cert, signatureAlgorithm}" in verification.check("seal_signature").reason
    assert verification.indication is Indication.VALID, verification.to_dict()


def test_seals_fail_when_verified_now(ofdrw_trust: TrustStore) -> None:
    """The ofdrw seals expired on 2022-04-22: verified "now" they are invalid, for a precise reason."""
    verification = verify_seal((FIXTURES / "esl" / "ofdrw-gm__UserV4.esl").read_bytes(), trust=ofdrw_trust)
    assert verification.indication is Indication.INVALID
    assert verification.check("seal_validity").reason.startswith(
        "seal expired: validEnd 2022-04-22T02:09:00+00:00"
    )


@pytest.mark.parametrize("vector", VECTORS, ids=lambda v: Path(v["file"]).stem)
def test_ofd_seal_signatures(ofdrw_trust: TrustStore, vector: dict) -> None:
    with zipfile.ZipFile(FIXTURES / vector["file"]) as package:
        signatures = _seal_signatures(package)
    assert sorted(signatures) == sorted(s["signature_xml"] for s in vector["signatures"])
    for expected in vector["signatures"]:
        signature_xml, signed_value = signatures[expected["signature_xml"]]
        verification = verify_seal_signature(signed_value, data=signature_xml, trust=ofdrw_trust)
        observed = {c.name: c.result.value for c in verification.checks}
        assert observed == expected["checks"], (expected["signature_xml"], verification.to_dict())
        assert verification.indication.value == expected["indication"]
        assert verification.signing_time == datetime.fromisoformat(expected["signing_time"])
        assert verification.signature is not None
        assert verification.signature.property_info == "/" + expected["signature_xml"]
        assert all(c.reason for c in verification.checks)


def test_a_maker_without_the_seal_maker_purpose_is_not_trusted_unless_configured() -> None:
    """The ofdrw maker certificate asserts clientAuth only: under the trusted ofdrw root but not configured as a
    maker, its seals are INVALID (it has no authority to make seals)."""
    data = (FIXTURES / "esl" / "ofdrw-gm__UserV4.esl").read_bytes()
    verification = verify_seal(
        data, trust=seal_builders.ofdrw_trust(maker=False), at=parse_seal(data).created
    )
    check = verification.check("seal_maker")
    assert check.result is CheckResult.FAILED
    assert "not a seal-maker certificate" in check.reason and "1.3.6.1.5.5.7.3.2" in check.reason
    assert verification.indication is Indication.INVALID


def test_a_maker_outside_the_trust_anchors_is_unknown() -> None:
    data = (FIXTURES / "esl" / "ofdrw-gm__UserV4.esl").read_bytes()
    verification = verify_seal(data, trust=TrustStore(), at=parse_seal(data).created)
    assert verification.check("seal_maker").result is CheckResult.UNKNOWN
    assert "not under a trust anchor" in verification.check("seal_maker").reason
    assert verification.indication is Indication.INDETERMINATE
