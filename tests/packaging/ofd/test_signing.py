"""Sealing OFD packages: Signatures.xml / Signature.xml structure, references, the SES_Signature over the
exact Signature.xml bytes (checked with our verifier and with OpenSSL), several seals, Type="Sign", refusals."""

from __future__ import annotations

import base64
import hashlib
import io
import posixpath
import zipfile
from datetime import timedelta
from pathlib import Path

import pytest
from asn1crypto import core
from lxml import etree

from certstore.checks import Indication
from certstore.crypto.x509 import Certificate
from certstore.packaging.layout import Box, FaceLayout
from certstore.packaging.ofd import OfdSigningError, add_seal, add_sign
from certstore.packaging.ofd.writer import write_package
from certstore.records import PreparedVersion
from certstore.seal import SigningRefusedError, parse_seal_signature, verify_seal_signature
from tests.openssl import verifies as openssl_verifies
from tests.packaging.ofd.conftest import NOW, REPOSITORY_STAMP, Pki
from tests.packaging.ofd.structure import OFD_NS, Package, check_package, resolve

NS = {"ofd": OFD_NS}
FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "third-party" / "ofd"
SIGNATURES = "Doc_0/Signs/Signatures.xml"


def _sm3_b64(data: bytes) -> str:
    return base64.b64encode(hashlib.new("sm3", data).digest()).decode()


def _signatures(pkg: Package) -> list[tuple[etree._Element, str, etree._Element]]:
    """(entry in Signatures.xml, Signature.xml path, parsed Signature.xml) in list order."""
    listing = pkg.xml(SIGNATURES)
    result = []
    for entry in listing.findall("ofd:Signature", NS):
        path = resolve(posixpath.dirname(SIGNATURES), entry.get("BaseLoc"))
        result.append((entry, path, pkg.xml(path)))
    return result


def _references(signature: etree._Element) -> dict[str, str]:
    return {
        resolve("", r.get("FileRef")): r.findtext("ofd:CheckValue", namespaces=NS)
        for r in signature.iterfind("ofd:SignedInfo/ofd:References/ofd:Reference", NS)
    }


def _signed_value(pkg: Package, signature: etree._Element) -> bytes:
    return pkg.files[resolve("", signature.findtext("ofd:SignedValue", namespaces=NS))]


# --- one seal ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fully_sealed(
    pki: Pki, agency_seal: bytes, unsigned_ofd: bytes, main_face: tuple[PreparedVersion, FaceLayout]
) -> bytes:
    _, layout = main_face
    assert layout.seal_box is not None
    return add_seal(
        unsigned_ofd,
        seal=agency_seal,
        signer=pki.agency.signer,
        signer_certificate=pki.agency.certificate,
        stamp_box=layout.seal_box,
        signing_time=NOW,
    )


def test_single_seal_layout(fully_sealed: bytes, unsigned_ofd: bytes, agency_seal: bytes) -> None:
    assert check_package(fully_sealed) == []
    pkg, before = Package.load(fully_sealed), Package.load(unsigned_ofd)
    assert (
        pkg.xml("OFD.xml").findtext("ofd:DocBody/ofd:Signatures", namespaces=NS)
        == "/Doc_0/Signs/Signatures.xml"
    )
    listing = pkg.xml(SIGNATURES)
    assert listing.findtext("ofd:MaxSignId", namespaces=NS) == "s002"
    (entry, path, signature), *rest = _signatures(pkg)
    assert rest == []
    assert (entry.get("ID"), entry.get("Type"), path) == ("s001", "Seal", "Doc_0/Signs/Sign_0/Signature.xml")
    info = signature.find("ofd:SignedInfo", NS)
    provider = info.find("ofd:Provider", NS)
    assert provider.get("ProviderName") == "certstore" and provider.get("Version") and provider.get("Company")
    assert info.findtext("ofd:SignatureMethod", namespaces=NS) == "1.2.156.10197.1.501"
    assert info.findtext("ofd:SignatureDateTime", namespaces=NS) == "20250601080000Z"
    assert info.find("ofd:References", NS).get("CheckMethod") == "1.2.156.10197.1.401"
    assert pkg.files["Doc_0/Signs/Sign_0/Seal.esl"] == agency_seal
    assert info.findtext("ofd:Seal/ofd:BaseLoc", namespaces=NS) == "/Doc_0/Signs/Sign_0/Seal.esl"
    assert signature.findtext("ofd:SignedValue", namespaces=NS) == "/Doc_0/Signs/Sign_0/SignedValue.dat"
    # the unsigned files are carried over untouched, except OFD.xml which now points to the signatures
    assert {k: v for k, v in pkg.files.items() if k in before.files and k != "OFD.xml"} == {
        k: v for k, v in before.files.items() if k != "OFD.xml"
    }


def test_stamp_annot_at_the_layout_seal_box(
    fully_sealed: bytes, main_face: tuple[PreparedVersion, FaceLayout]
) -> None:
    _, layout = main_face
    pkg = Package.load(fully_sealed)
    _, _, signature = _signatures(pkg)[0]
    stamp = signature.find("ofd:SignedInfo/ofd:StampAnnot", NS)
    page_id = pkg.xml("Doc_0/Document.xml").find("ofd:Pages/ofd:Page", NS).get("ID")
    assert stamp.get("PageRef") == page_id
    assert stamp.get("ID") == "s002"
    assert layout.seal_box is not None
    assert [float(v) for v in stamp.get("Boundary").split()] == pytest.approx(
        [layout.seal_box.x, layout.seal_box.y, layout.seal_box.w, layout.seal_box.h], abs=1e-3
    )


def test_references_cover_every_file_with_sm3(fully_sealed: bytes) -> None:
    pkg = Package.load(fully_sealed)
    _, path, signature = _signatures(pkg)[0]
    references = _references(signature)
    own = {path, "Doc_0/Signs/Sign_0/SignedValue.dat"}
    assert set(references) == set(pkg.files) - own  # protect="all": Signatures.xml and OFD.xml included
    assert (
        SIGNATURES in references and "OFD.xml" in references and "Doc_0/Signs/Sign_0/Seal.esl" in references
    )
    for name, check_value in references.items():
        assert check_value == _sm3_b64(pkg.files[name]), name


def test_signed_value_binds_the_exact_signature_xml(
    fully_sealed: bytes, pki: Pki, agency_seal: bytes
) -> None:
    pkg = Package.load(fully_sealed)
    _, path, signature = _signatures(pkg)[0]
    signed_value = _signed_value(pkg, signature)
    # read with asn1crypto alone: SES_Signature = toSign, cert, signatureAlgID, signature
    ses = core.load(signed_value)
    tbs = ses[0]
    assert tbs[0].native == 4
    assert tbs[1].dump() == agency_seal
    assert tbs[3].contents[1:] == hashlib.new("sm3", pkg.files[path]).digest()
    assert tbs[4].native == "/" + path
    assert ses[1].contents == pki.agency.certificate.der
    parsed = parse_seal_signature(signed_value)
    assert parsed.signing_time == NOW
    verdict = verify_seal_signature(signed_value, data=pkg.files[path], trust=pki.trust)
    assert verdict.indication is Indication.VALID, verdict.to_dict()
    assert verify_seal_signature(signed_value, data=pkg.files[path] + b" ", trust=pki.trust).indication is (
        Indication.INVALID
    )


@pytest.mark.openssl
def test_openssl_verifies_every_seal(tmp_path: Path, doubly_sealed: bytes) -> None:
    pkg = Package.load(doubly_sealed)
    for _, path, signature in _signatures(pkg):
        der = _signed_value(pkg, signature)
        ses = core.load(der)
        tbs_der, signature_value = ses[0].dump(), ses[3].contents[1:]
        assert tbs_der in der  # the original slice, not a re-encoding
        assert ses[0][3].contents[1:] == hashlib.new("sm3", pkg.files[path]).digest()
        signer = Certificate.from_der(ses[1].contents)
        assert openssl_verifies(tmp_path, signer, tbs_der, signature_value), path
        assert not openssl_verifies(
            tmp_path, signer, tbs_der[:-1] + bytes([tbs_der[-1] ^ 1]), signature_value
        )


# --- two seals -----------------------------------------------------------------------------------------------


def test_issuer_and_repository_seals_both_verify(
    doubly_sealed: bytes, issuer_sealed: bytes, pki: Pki
) -> None:
    assert check_package(doubly_sealed) == []
    pkg = Package.load(doubly_sealed)
    signatures = _signatures(pkg)
    assert [(e.get("ID"), p) for e, p, _ in signatures] == [
        ("s001", "Doc_0/Signs/Sign_0/Signature.xml"),
        ("s003", "Doc_0/Signs/Sign_1/Signature.xml"),
    ]
    assert pkg.xml(SIGNATURES).findtext("ofd:MaxSignId", namespaces=NS) == "s004"
    signers = []
    for _, path, signature in signatures:
        for name, check_value in _references(signature).items():
            assert check_value == _sm3_b64(pkg.files[name]), (path, name)
        verdict = verify_seal_signature(_signed_value(pkg, signature), data=pkg.files[path], trust=pki.trust)
        assert verdict.indication is Indication.VALID, (path, verdict.to_dict())
        signers.append(verdict.signer)
    assert [s["subject"] for s in signers] == [
        pki.agency.certificate.subject,
        pki.repository.certificate.subject,
    ]
    first, second = (_references(s) for _, _, s in signatures)
    assert SIGNATURES not in first  # continue: the list may grow
    assert SIGNATURES in second  # all: the document is closed
    assert {"Doc_0/Signs/Sign_0/Signature.xml", "Doc_0/Signs/Sign_0/SignedValue.dat"} <= set(second)
    # nothing the first seal digested was rewritten by the second
    earlier = Package.load(issuer_sealed).files
    assert {name: pkg.files[name] for name in first} == {name: earlier[name] for name in first}
    stamps = [s.find("ofd:SignedInfo/ofd:StampAnnot", NS).get("Boundary") for _, _, s in signatures]
    assert stamps[1] == REPOSITORY_STAMP.as_ofd()


def test_nothing_can_follow_a_seal_protecting_everything(
    doubly_sealed: bytes, pki: Pki, repository_seal: bytes
) -> None:
    with pytest.raises(OfdSigningError, match=r"protects Doc_0/Signs/Signatures\.xml"):
        add_seal(
            doubly_sealed,
            seal=repository_seal,
            signer=pki.repository.signer,
            signer_certificate=pki.repository.certificate,
            stamp_box=REPOSITORY_STAMP,
            signing_time=NOW + timedelta(hours=1),
        )


def test_three_seals_in_continue_mode(issuer_sealed: bytes, pki: Pki, repository_seal: bytes) -> None:
    package = issuer_sealed
    for minutes in (1, 2):
        package = add_seal(
            package,
            seal=repository_seal,
            signer=pki.repository.signer,
            signer_certificate=pki.repository.certificate,
            stamp_box=REPOSITORY_STAMP,
            signing_time=NOW + timedelta(minutes=minutes),
            protect="continue",
        )
    assert check_package(package) == []
    pkg = Package.load(package)
    assert len(_signatures(pkg)) == 3
    for _, path, signature in _signatures(pkg):
        assert all(v == _sm3_b64(pkg.files[n]) for n, v in _references(signature).items())
        verdict = verify_seal_signature(_signed_value(pkg, signature), data=pkg.files[path], trust=pki.trust)
        assert verdict.indication is Indication.VALID


def test_tampering_is_visible(doubly_sealed: bytes, pki: Pki) -> None:
    pkg = Package.load(doubly_sealed)
    content = "Doc_0/Pages/Page_0/Content.xml"
    tampered = dict(pkg.files)
    tampered[content] = pkg.files[content].replace(
        "郑州示例置业有限公司".encode(), "郑州伪造置业有限公司".encode()
    )
    assert tampered[content] != pkg.files[content]
    forged = Package.load(write_package(tampered.items()))
    for _, _, signature in _signatures(forged):
        assert _references(signature)[content] != _sm3_b64(forged.files[content])


# --- Type="Sign" ---------------------------------------------------------------------------------------------


def test_plain_digital_signature(tmp_path: Path, issuer_sealed: bytes, pki: Pki) -> None:
    signed = add_sign(
        issuer_sealed,
        signer=pki.repository.signer,
        signer_certificate=pki.repository.certificate,
        signing_time=NOW + timedelta(minutes=1),
    )
    assert check_package(signed) == []
    pkg = Package.load(signed)
    (_, _, seal_signature), (entry, path, signature) = _signatures(pkg)
    assert entry.get("Type") == "Sign"
    assert signature.find("ofd:SignedInfo/ofd:Seal", NS) is None
    assert signature.find("ofd:SignedInfo/ofd:StampAnnot", NS) is None
    assert "Doc_0/Signs/Sign_1/Seal.esl" not in pkg.files
    value = _signed_value(pkg, signature)
    assert pki.repository.certificate.public_key.verify(pkg.files[path], value)
    assert openssl_verifies(tmp_path, pki.repository.certificate, pkg.files[path], value)
    assert (
        verify_seal_signature(
            _signed_value(pkg, seal_signature),
            data=pkg.files["Doc_0/Signs/Sign_0/Signature.xml"],
            trust=pki.trust,
        ).indication
        is Indication.VALID
    )


def test_plain_signature_with_a_stamp_position(unsigned_ofd: bytes, pki: Pki) -> None:
    signed = add_sign(
        unsigned_ofd,
        signer=pki.agency.signer,
        signer_certificate=pki.agency.certificate,
        stamp_box=Box(10, 10, 20, 10),
        signing_time=NOW,
        protect="continue",
    )
    assert check_package(signed) == []
    (_, _, signature), *_ = _signatures(Package.load(signed))
    assert signature.find("ofd:SignedInfo/ofd:StampAnnot", NS).get("Boundary") == "10 10 20 10"


def test_sign_refuses_unusable_certificates(unsigned_ofd: bytes, pki: Pki) -> None:
    with pytest.raises(OfdSigningError, match="does not hold the key"):
        add_sign(
            unsigned_ofd,
            signer=pki.agency.signer,
            signer_certificate=pki.repository.certificate,
            signing_time=NOW,
        )
    with pytest.raises(OfdSigningError, match="not valid at"):
        add_sign(
            unsigned_ofd,
            signer=pki.agency.signer,
            signer_certificate=pki.agency.certificate,
            signing_time=NOW + timedelta(days=365 * 20),
        )


# --- refusals ------------------------------------------------------------------------------------------------


def _seal_with(ofd: bytes, pki: Pki, seal: bytes, **kwargs: object) -> bytes:
    arguments: dict = {
        "seal": seal,
        "signer": pki.agency.signer,
        "signer_certificate": pki.agency.certificate,
        "stamp_box": Box(10, 10, 40, 40),
        "signing_time": NOW,
        **kwargs,
    }
    return add_seal(ofd, **arguments)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"stamp_box": Box(200, 280, 42, 42)}, OfdSigningError, "outside page 0"),
        ({"stamp_box": Box(10, 10, 0, 40)}, OfdSigningError, "positive width"),
        ({"stamp_page": 1}, OfdSigningError, "stamp page 1 does not exist"),
        ({"protect": "some"}, OfdSigningError, "protect must be"),
        ({"signing_time": NOW.replace(tzinfo=None)}, OfdSigningError, "timezone-aware"),
        ({"signing_time": NOW + timedelta(days=400)}, SigningRefusedError, "outside the validity"),
    ],
)
def test_add_seal_refusals(
    unsigned_ofd: bytes, pki: Pki, agency_seal: bytes, kwargs: dict, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        _seal_with(unsigned_ofd, pki, agency_seal, **kwargs)


def test_a_signer_not_listed_in_the_seal_is_refused(
    unsigned_ofd: bytes, pki: Pki, agency_seal: bytes
) -> None:
    with pytest.raises(SigningRefusedError, match="not listed"):
        _seal_with(
            unsigned_ofd,
            pki,
            agency_seal,
            signer=pki.outsider.signer,
            signer_certificate=pki.outsider.certificate,
        )


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"x.txt": b"hello"}, "no OFD.xml"),
        ({"OFD.xml": b"<notxml"}, "not well-formed"),
        ({"OFD.xml": b"<OFD/>"}, "not ofd:OFD"),
        (
            {"OFD.xml": b'<ofd:OFD xmlns:ofd="http://www.ofdspec.org/2016"><ofd:DocBody/></ofd:OFD>'},
            "no DocRoot",
        ),
        (
            {
                "OFD.xml": b'<ofd:OFD xmlns:ofd="http://www.ofdspec.org/2016"><ofd:DocBody>'
                b"<ofd:DocRoot>../Doc_0/Document.xml</ofd:DocRoot></ofd:DocBody></ofd:OFD>"
            },
            "inside the package",
        ),
    ],
)
def test_refuses_packages_it_cannot_extend(
    files: dict[str, bytes], message: str, pki: Pki, agency_seal: bytes
) -> None:
    with pytest.raises(OfdSigningError, match=message):
        _seal_with(write_package(files.items()), pki, agency_seal)


def test_refuses_non_zip_and_odd_entry_names(pki: Pki, agency_seal: bytes, unsigned_ofd: bytes) -> None:
    with pytest.raises(OfdSigningError, match="not an OFD package"):
        _seal_with(b"PK not really", pki, agency_seal)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive, zipfile.ZipFile(io.BytesIO(unsigned_ofd)) as source:
        for info in source.infolist():
            archive.writestr(info, source.read(info))
        archive.writestr("Doc_0/../../evil.xml", b"<x/>")
    with pytest.raises(OfdSigningError, match="unsupported ZIP entry name"):
        _seal_with(out.getvalue(), pki, agency_seal)


# --- third-party packages --------------------------------------------------------------------------------------


def test_sealing_a_third_party_file_keeps_its_signature_intact(pki: Pki, agency_seal: bytes) -> None:
    """The gomain e-invoice does not protect its Signatures.xml: our seal joins its list, both sets of
    references still hold, and our seal protects its signature files."""
    original = (FIXTURES / "ofdrw-sign__v4signed.ofd").read_bytes()
    sealed = _seal_with(original, pki, agency_seal, stamp_box=Box(150, 100, 40, 40))
    pkg = Package.load(sealed)
    (theirs_entry, _, theirs), (ours_entry, ours_path, ours) = _signatures(pkg)
    assert theirs_entry.get("ID") == "1" and ours_entry.get("ID") == "s002"
    for signature in (theirs, ours):
        assert all(v == _sm3_b64(pkg.files[n]) for n, v in _references(signature).items())
    assert "Doc_0/Signs/Sign_0/SignedValue.dat" in _references(ours)
    assert ours.find("ofd:SignedInfo/ofd:StampAnnot", NS).get("PageRef") == "1"
    verdict = verify_seal_signature(_signed_value(pkg, ours), data=pkg.files[ours_path], trust=pki.trust)
    assert verdict.indication is Indication.VALID


def test_third_party_file_closed_by_its_seal_is_refused(pki: Pki, agency_seal: bytes) -> None:
    original = (FIXTURES / "ofdrw-sign__allprotected.ofd").read_bytes()
    with pytest.raises(OfdSigningError, match="protect='all'"):
        _seal_with(original, pki, agency_seal)
