"""The PDF rendition: built for every shipped catalogue type, parsed by pyHanko, verified by us and by OpenSSL,
text extracted and page rendered by poppler, and tampered with."""

from __future__ import annotations

import dataclasses
import html
import io
import re
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from functools import cache
from pathlib import Path

import pytest
from asn1crypto import cms
from lxml import etree
from PIL import Image, ImageChops, ImageFilter, ImageStat
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.pdf_utils.writer import PageObject, PdfFileWriter
from pyhanko.sign.diff_analysis import ModificationLevel
from pyhanko.sign.fields import MDPPerm
from pyhanko.sign.general import find_unique_cms_attribute
from pyhanko.sign.validation.dss import DocumentSecurityStore
from pyhanko.sign.validation.pdf_embedded import EmbeddedPdfSignature
from pyhanko.sign.validation.status import SignatureCoverageLevel

from certstore.catalogue import CatalogueEntry, shipped_entries
from certstore.checks import CheckResult, Indication
from certstore.crypto import oids
from certstore.crypto.sm2 import DEFAULT_SM2_ID, SM2PrivateKey, SM2PublicKey, SoftwareSigner
from certstore.crypto.sm3 import sm3
from certstore.crypto.trust import TrustStore
from certstore.crypto.x509 import CertificateProfile, issue_certificate
from certstore.identifiers import short_code
from certstore.packaging.face import lay_out_face
from certstore.packaging.layout import FaceData, FaceLayout, TextItem
from certstore.packaging.pdf import (
    ECERT_XMP_NAMESPACE,
    FIELD_NAME,
    PKCS7_DATA,
    PKCS7_SIGNED_DATA,
    PdfBuildError,
    build_pdf,
)
from certstore.packaging.preview import render_image
from certstore.packaging.seal_picture import render_seal_picture
from certstore.records import PreparedVersion, example_draft, prepare_version
from certstore.seal import make_seal
from certstore.services.issuance import SealingKey, make_pdf
from certstore.verify.pdf import PDF_STEPS, verify_pdf
from certstore.verify.pipeline import verify_file
from certstore.verify.report import Format, SignatureKind, VerificationReport
from tests.openssl import verifies as openssl_verifies
from tests.packaging.pdf_keys import NOW, PdfKeys, make_pdf_keys
from tests.pki import Party, make_party
from tests.support.aio import run_coroutine

ENTRIES = shipped_entries()
CODES = [e.code for e in ENTRIES]
PT_PER_MM = 72 / 25.4
needs_poppler = pytest.mark.skipif(
    shutil.which("pdftotext") is None or shutil.which("pdftoppm") is None,
    reason="poppler-utils (pdftotext, pdftoppm) not installed; scripts/install-system-deps --test installs it",
)


@dataclass(frozen=True)
class Built:
    prepared: PreparedVersion
    layout: FaceLayout
    pdf: bytes


@cache
def keys() -> PdfKeys:
    return make_pdf_keys()


@cache
def issuer_party(name: str) -> Party:
    """A signer (签章者) of the issuing agency ``name`` under the test root: the certificate names the agency
    (``O``), so the rendition's signature belongs to the issuer its metadata name (``seal_owner``)."""
    k = keys()
    root = Party(k.root_signer, k.root)
    return make_party(f"{name} 签章人", CertificateProfile.SIGNER, root, NOW - timedelta(days=30),
                      NOW + timedelta(days=365), organization=name)  # fmt: skip


@cache
def seal_picture() -> bytes:
    return render_seal_picture("郑州市自然资源和规划局").data


def build(layout: FaceLayout, metadata: dict[str, str], **changes: object) -> bytes:
    k = keys()
    arguments: dict[str, object] = {
        "metadata": metadata,
        "seal_picture": seal_picture(),
        "signer": k.signer,
        "signer_certificate": k.certificate,
        "chain": (k.root,),
        "signing_time": NOW,
        **changes,
    }
    return build_pdf(layout, **arguments)  # type: ignore[arg-type]


@cache
def built(code: str) -> Built:
    """The example certificate of catalogue type ``code``, laid out and rendered as a signed PDF."""
    entry: CatalogueEntry = next(e for e in ENTRIES if e.code == code)
    draft = example_draft(entry, issue_date=date(2026, 5, 28))
    prepared = prepare_version(entry, draft, version=1, holder_key=b"\x07" * 32, serial_key=b"\x07" * 32)
    layout = lay_out_face(FaceData.from_prepared(prepared))
    metadata = {key: str(value) for key, value in prepared.metadata.items()}
    return Built(prepared, layout, build(layout, metadata))


@cache
def built_by_issuer(code: str) -> bytes:
    """The PDF of :func:`built`, signed by a signer of the type's issuer rather than the test key."""
    b = built(code)
    signer = issuer_party(b.prepared.entry.issuer.name)
    metadata = {key: str(value) for key, value in b.prepared.metadata.items()}
    return build(b.layout, metadata, signer=signer.signer, signer_certificate=signer.certificate)


def trust() -> TrustStore:
    return TrustStore([keys().root])


def embedded(pdf: bytes) -> EmbeddedPdfSignature:
    signatures = PdfFileReader(io.BytesIO(pdf)).embedded_signatures
    assert len(signatures) == 1
    return signatures[0]


def _above(limit: int) -> Callable[[int], int]:
    return lambda v: 255 if v > limit else 0


def _below(limit: int) -> Callable[[int], int]:
    return lambda v: 255 if v < limit else 0


def squeeze(text: str) -> str:
    return re.sub(r"\s+", "", text)


# --- pyHanko reads what we wrote ------------------------------------------------------------------------------


@pytest.mark.parametrize("code", CODES)
def test_pyhanko_parses_the_signature(code: str) -> None:
    pdf = built(code).pdf
    emb = embedded(pdf)
    assert emb.field_name == FIELD_NAME
    assert emb.sig_object["/SubFilter"] == "/adbe.pkcs7.detached"
    emb.compute_integrity_info()
    assert emb.coverage == SignatureCoverageLevel.ENTIRE_FILE
    assert emb.diff_result.modification_level == ModificationLevel.NONE
    start1, len1, start2, len2 = emb.byte_range
    assert start1 == 0 and start2 + len2 == len(pdf)
    assert pdf[len1:start2].lower() == b"<" + emb.pkcs7_content.hex().encode() + b">"  # the hole is /Contents
    # pyHanko's own SM3 digest of the byte range is the signed messageDigest, and is SM3 of those bytes
    message_digest = find_unique_cms_attribute(emb.signer_info["signed_attrs"], "message_digest").native
    assert emb.md_algorithm == "sm3"
    assert emb.compute_digest() == message_digest == sm3(pdf[:len1] + pdf[start2:])
    assert emb.self_reported_timestamp == NOW
    assert emb.docmdp_level == MDPPerm.NO_CHANGES
    assert emb.signer_cert.dump() == keys().certificate.der
    assert [c.dump() for c in emb.other_embedded_certs] == [keys().root.der]


@pytest.mark.parametrize("code", CODES[:1])
def test_cms_profile(code: str) -> None:
    """PKCS #7 content types (readable by PDF tools), GM/T algorithm OIDs, three signed attributes."""
    emb = embedded(built(code).pdf)
    info = cms.ContentInfo.load(emb.pkcs7_content)
    assert info["content_type"].dotted == PKCS7_SIGNED_DATA
    signed_data = info["content"]
    assert signed_data["encap_content_info"]["content_type"].dotted == PKCS7_DATA
    assert signed_data["encap_content_info"]["content"].native is None  # detached
    assert [a["algorithm"].dotted for a in signed_data["digest_algorithms"]] == [oids.SM3]
    signer_info = signed_data["signer_infos"][0]
    assert signer_info["digest_algorithm"]["algorithm"].dotted == oids.SM3
    assert signer_info["signature_algorithm"]["algorithm"].dotted == oids.SM2_SIGN
    assert {a["type"].native for a in signer_info["signed_attrs"]} == {
        "content_type",
        "message_digest",
        "signing_time",
    }


def test_visible_seal_widget() -> None:
    b = built(CODES[0])
    emb = embedded(b.pdf)
    widget = emb.sig_field
    box = b.layout.seal_box
    assert box is not None
    page_height = b.layout.height_mm * PT_PER_MM
    expected = [
        box.x * PT_PER_MM,
        page_height - (box.y + box.h) * PT_PER_MM,
        (box.x + box.w) * PT_PER_MM,
        page_height - box.y * PT_PER_MM,
    ]
    assert [float(v) for v in widget["/Rect"]] == pytest.approx(expected, abs=0.01)
    assert widget["/F"] & 4  # printed
    appearance = widget["/AP"]["/N"]
    assert "/XObject" in appearance["/Resources"]  # the seal picture


def test_metadata_in_info_and_xmp() -> None:
    b = built(CODES[0])
    reader = PdfFileReader(io.BytesIO(b.pdf))
    info = reader.trailer["/Info"]
    for key, value in b.prepared.metadata.items():
        assert info["/" + key] == str(value)
    assert info["/Title"] == b.prepared.entry.name
    assert info["/Author"] == b.prepared.entry.issuer.name
    identifier = b.prepared.metadata["ZZBS"]
    xmp = etree.fromstring(reader.root["/Metadata"].data)
    properties = {name: value for element in xmp.iter() for name, value in element.attrib.items()}
    assert properties["{http://purl.org/dc/elements/1.1/}identifier"] == identifier
    for key, value in b.prepared.metadata.items():
        assert properties[f"{{{ECERT_XMP_NAMESPACE}}}{key}"] == str(value)


def test_metadata_keys_that_are_not_xml_names_stay_in_info() -> None:
    pdf = build(built(CODES[0]).layout, {"ZZBS": "1.2.3", "KZ_备注": "扩展", "1st": "x"})
    reader = PdfFileReader(io.BytesIO(pdf))
    assert reader.trailer["/Info"]["/KZ_备注"] == "扩展"
    assert reader.trailer["/Info"]["/1st"] == "x"
    xmp = reader.root["/Metadata"].data.decode()
    assert 'ecert:KZ_备注="扩展"' in xmp and "1st" not in xmp
    with pytest.raises(PdfBuildError, match="clashes"):
        build(built(CODES[0]).layout, {"Title": "x"})


# --- our verifier ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("code", CODES)
def test_issue_verify_round_trip_valid(code: str) -> None:
    result = verify_pdf(built(code).pdf, trust=trust())
    assert result.indication is Indication.VALID, result.to_dict()
    assert result.problems == ()
    (report,) = result.signatures
    assert report.id == FIELD_NAME
    assert [c.name for c in report.checks] == list(PDF_STEPS)
    assert all(c.result is CheckResult.PASSED for c in report.checks)
    assert "the whole file except the signature value" in report.check("package").reason
    assert report.signing_time == NOW
    assert report.signer is not None and report.signer.subject == keys().certificate.subject
    assert report.kind is SignatureKind.SIGN and report.location == FIELD_NAME
    assert result.format is Format.PDF
    assert (
        result.certificate is not None
        and result.certificate.identifier == built(code).prepared.metadata["ZZBS"]
    )
    document = result.to_dict()
    assert document["indication"] == "VALID" and document["format"] == "pdf"
    assert VerificationReport.from_dict(document) == result


def test_issuance_make_pdf_with_a_real_seal() -> None:
    """The production path: the seal picture comes out of a GB/T 38540 seal listing the signer."""
    k = keys()
    issuer = issuer_party(ENTRIES[0].issuer.name)
    maker_key = SM2PrivateKey.generate()
    maker = issue_certificate(
        {"common_name": "郑州市测试制章者", "country_name": "CN"},
        maker_key.public_key,
        issuer=k.root,
        issuer_signer=k.root_signer,
        profile=CertificateProfile.SEAL_MAKER,
        not_before=NOW - timedelta(days=30),
        not_after=NOW + timedelta(days=365),
    )
    seal = make_seal(
        maker=SoftwareSigner(maker_key),
        maker_certificate=maker,
        es_id="41010000000002",
        name="郑州市自然资源和规划局",
        seal_type=1,
        signer_certificates=[issuer.certificate],
        picture=render_seal_picture("郑州市自然资源和规划局"),
        valid_start=NOW - timedelta(days=1),
        valid_end=NOW + timedelta(days=300),
        created=NOW - timedelta(days=1),
    )
    b = built(CODES[0])
    key = SealingKey(issuer.signer, issuer.certificate, (k.root,), seal)
    pdf = make_pdf(FaceData.from_prepared(b.prepared), key, signing_time=NOW)
    assert verify_pdf(pdf, trust=trust()).indication is Indication.VALID
    assert embedded(pdf).sig_field["/AP"]["/N"]["/BBox"]  # visible


@pytest.mark.parametrize("code", CODES)
def test_pipeline_dispatches_pdfs_here(code: str) -> None:
    report = verify_file(built_by_issuer(code), trust=trust(), file_name="face.pdf")
    assert report.format is Format.PDF
    assert report.indication is Indication.VALID, report.to_dict()
    assert report.signature(FIELD_NAME).check("data_hash").result is CheckResult.PASSED
    assert report.certificate is not None
    checks = {c.name: c.result for c in report.certificate.checks}
    assert list(checks) == ["status", "content_match", "seal_owner"]  # integrity only: the first two SKIPPED
    assert checks["seal_owner"] is CheckResult.PASSED


def test_a_rendition_signed_by_another_organisation_is_invalid() -> None:
    """The face signed with the test key (郑州市大数据管理局), not the issuer's: seal_owner FAILED."""
    report = verify_file(built(CODES[0]).pdf, trust=trust(), file_name="face.pdf")
    assert report.indication is Indication.INVALID
    owner = next(c for c in report.certificate.checks if c.name == "seal_owner")  # type: ignore[union-attr]
    assert owner.result is CheckResult.FAILED and "郑州市大数据管理局" in owner.reason


def test_metadata_rewritten_by_a_later_update_is_invalid_and_not_believed() -> None:
    b = built(CODES[0])
    writer = IncrementalPdfFileWriter(io.BytesIO(b.pdf))
    info = writer.trailer["/Info"]
    info[generic.pdf_name("/ZZBS")] = generic.pdf_string("1.2.156.3005.2.FORGED")
    writer.update_container(info)
    out = io.BytesIO()
    writer.write(out)
    result = verify_pdf(out.getvalue(), trust=trust())
    assert result.certificate is not None and result.certificate.identifier == b.prepared.metadata["ZZBS"]
    package = result.signatures[0].check("package")
    assert result.indication is Indication.INVALID
    assert package.result is CheckResult.FAILED and "change the document metadata" in package.reason
    assert "Info /ZZBS" in package.reason


def test_byte_flipped_inside_the_signed_range_is_invalid() -> None:
    pdf = built(CODES[0]).pdf
    start = pdf.index(b"(certstore)")
    assert start < embedded(pdf).byte_range[1]
    tampered = pdf[: start + 1] + b"C" + pdf[start + 2 :]
    result = verify_pdf(tampered, trust=trust())
    report = result.signatures[0]
    assert result.indication is Indication.INVALID
    assert report.check("data_hash").result is CheckResult.FAILED
    assert "altered" in report.check("data_hash").reason
    assert report.check("signature").result is CheckResult.PASSED  # the signed attributes are intact


def test_altered_signature_value_is_invalid() -> None:
    pdf = built(CODES[0]).pdf
    signature = embedded(pdf).signer_info["signature"].native
    hex_signature = signature.hex().encode()
    at = pdf.lower().index(hex_signature) + 20
    flipped = b"0" if pdf[at : at + 1] != b"0" else b"1"
    result = verify_pdf(pdf[:at] + flipped + pdf[at + 1 :], trust=trust())
    report = result.signatures[0]
    assert result.indication is Indication.INVALID
    assert report.check("package").result is CheckResult.PASSED
    assert report.check("data_hash").result is CheckResult.PASSED
    assert report.check("signature").result is CheckResult.FAILED


@dataclass(frozen=True)
class ShortSignatureSigner:
    """Signs like the wrapped signer, but retries until the DER signature is 70 bytes (r and s without a
    leading zero), so the space reserved for the longest signature leaves two bytes of zero padding."""

    inner: SoftwareSigner

    @property
    def public_key(self) -> SM2PublicKey:
        return self.inner.public_key

    def sign(self, message: bytes, sm2_id: bytes = DEFAULT_SM2_ID) -> bytes:
        while len(signature := self.inner.sign(message, sm2_id)) != 70:
            pass
        return signature


def test_data_hidden_in_the_contents_padding_fails_the_package_check() -> None:
    pdf = build(built(CODES[0]).layout, {"ZZBS": "x"}, signer=ShortSignatureSigner(keys().signer))
    start2 = embedded(pdf).byte_range[2]
    assert pdf[start2 - 5 : start2] == b"0000>"
    assert verify_pdf(pdf, trust=trust()).indication is Indication.VALID
    hidden = pdf[: start2 - 5] + b"beef>" + pdf[start2:]
    result = verify_pdf(hidden, trust=trust())
    assert result.indication is Indication.INVALID
    assert "not zero padding" in result.signatures[0].check("package").reason


def test_incremental_update_after_the_signature_is_reported() -> None:
    pdf = built(CODES[0]).pdf
    writer = IncrementalPdfFileWriter(io.BytesIO(pdf))
    overlay = generic.StreamObject(stream_data=b"1 1 1 rg 100 600 300 40 re f")  # white out a field value
    writer.add_stream_to_page(0, writer.add_object(overlay))
    out = io.BytesIO()
    writer.write(out)
    result = verify_pdf(out.getvalue(), trust=trust())
    package = result.signatures[0].check("package")
    assert result.indication is Indication.INVALID
    assert package.result is CheckResult.FAILED
    assert "incremental update" in package.reason and "suspicious" in package.reason
    assert len(result.problems) == 1 and "1 incremental update(s)" in result.problems[0]
    # the signed revision itself is intact
    assert result.signatures[0].check("data_hash").result is CheckResult.PASSED


def test_update_adding_only_validation_data_is_a_warning() -> None:
    pdf = built(CODES[0]).pdf
    emb = embedded(pdf)
    writer = IncrementalPdfFileWriter(io.BytesIO(pdf))
    DocumentSecurityStore.supply_dss_in_writer(writer, emb.pkcs7_content, certs=[emb.signer_cert])
    out = io.BytesIO()
    writer.write(out)
    result = verify_pdf(out.getvalue(), trust=trust())
    package = result.signatures[0].check("package")
    assert result.indication is Indication.VALID
    assert package.result is CheckResult.PASSED and "only add validation data" in package.warnings[0]
    assert "LTA_UPDATES" in result.problems[0]


def test_bytes_appended_without_a_revision_fail_the_package_check() -> None:
    result = verify_pdf(built(CODES[0]).pdf + b"\n% appended\n", trust=trust())
    assert result.indication is Indication.INVALID
    assert "form no PDF revision" in result.signatures[0].check("package").reason


def test_wrong_trust_anchor_is_indeterminate() -> None:
    result = verify_pdf(built(CODES[0]).pdf, trust=TrustStore([keys().other_root]))
    report = result.signatures[0]
    assert result.indication is Indication.INDETERMINATE
    assert report.check("signer_chain").result is CheckResult.UNKNOWN
    assert all(c.result is CheckResult.PASSED for c in report.checks if c.name != "signer_chain")


def test_validity_judged_at_signing_time_unless_told_otherwise() -> None:
    pdf = built(CODES[0]).pdf
    later = keys().certificate.not_after + timedelta(days=1)
    result = verify_pdf(pdf, trust=trust(), at=later)
    assert result.indication is Indication.INVALID
    assert "expired" in result.signatures[0].check("signer_chain").reason


def test_signing_time_outside_the_certificate_validity() -> None:
    b = built(CODES[0])
    early = keys().certificate.not_before - timedelta(days=1)
    pdf = build(b.layout, {"ZZBS": "x"}, signing_time=early)
    report = verify_pdf(pdf, trust=trust()).signatures[0]
    assert report.check("signing_time").result is CheckResult.FAILED
    assert "before the signer certificate's notBefore" in report.check("signing_time").reason


def test_not_a_pdf_and_unsigned_pdf_are_invalid() -> None:
    garbage = verify_pdf(b"%PDF-1.7\nnot really", trust=trust())
    assert (
        garbage.indication is Indication.INVALID and garbage.signatures == () and garbage.certificate is None
    )
    assert garbage.problems[0].startswith("not a readable PDF")
    writer = PdfFileWriter()
    writer.insert_page(
        PageObject(
            contents=writer.add_object(generic.StreamObject(stream_data=b"")), media_box=(0, 0, 100, 100)
        )
    )
    out = io.BytesIO()
    writer.write(out)
    unsigned = verify_pdf(out.getvalue(), trust=trust())
    assert unsigned.indication is Indication.INVALID
    assert unsigned.problems == ("the PDF has no signed signature field",)


def test_invisible_signature_without_a_seal_picture() -> None:
    b = built(CODES[0])
    pdf = build(b.layout, {"ZZBS": "x"}, seal_picture=None)
    emb = embedded(pdf)
    assert [float(v) for v in emb.sig_field["/Rect"]] == [0, 0, 0, 0]
    assert verify_pdf(pdf, trust=trust()).indication is Indication.VALID


def test_build_refuses_what_it_cannot_draw() -> None:
    layout = built(CODES[0]).layout
    with pytest.raises(PdfBuildError, match="no seal_box"):
        build(dataclasses.replace(layout, seal_box=None), {})
    bad_text = TextItem("😀", layout.texts[0].box, 5.0, "note")
    with pytest.raises(PdfBuildError, match="no glyph"):
        build(dataclasses.replace(layout, texts=(*layout.texts, bad_text)), {})
    tab = TextItem("a\tb", layout.texts[0].box, 5.0, "note")
    with pytest.raises(PdfBuildError, match="control characters"):
        build(dataclasses.replace(layout, texts=(*layout.texts, tab)), {})
    with pytest.raises(PdfBuildError, match="seal picture"):
        build(layout, {}, seal_picture=b"not an image")
    stranger = SoftwareSigner(SM2PrivateKey.generate())
    with pytest.raises(ValueError, match="does not belong"):
        build(layout, {}, signer=stranger)


def test_build_inside_a_running_event_loop() -> None:
    layout = built(CODES[0]).layout

    async def in_loop() -> bytes:
        return build(layout, {"ZZBS": "x"})

    assert verify_pdf(run_coroutine(in_loop()), trust=trust()).indication is Indication.VALID


# --- independent checks: OpenSSL and poppler ---------------------------------------------------------------


@pytest.mark.openssl
@pytest.mark.parametrize("code", CODES)
def test_openssl_verifies_the_sm2_signature(code: str, tmp_path: Path) -> None:
    emb = embedded(built(code).pdf)
    raw_attrs = emb.signer_info["signed_attrs"].dump()
    signed_attrs = b"\x31" + raw_attrs[1:]  # [0] IMPLICIT → SET OF, the form that is signed
    assert openssl_verifies(tmp_path, keys().certificate, signed_attrs, emb.signer_info["signature"].native)
    (tmp_path / "cms.der").write_bytes(emb.pkcs7_content)
    printed = subprocess.run(
        ["openssl", "cms", "-cmsout", "-print", "-inform", "DER", "-in", "cms.der"],
        cwd=tmp_path, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert "pkcs7-signedData (1.2.840.113549.1.7.2)" in printed
    assert "eContentType: pkcs7-data (1.2.840.113549.1.7.1)" in printed
    assert "sm3 (1.2.156.10197.1.401)" in printed
    assert "(1.2.156.10197.1.301.1)" in printed
    assert "messageDigest" in printed and "signingTime" in printed


@needs_poppler
@pytest.mark.parametrize("code", CODES)
def test_page_text_is_extractable_and_placed_as_laid_out(code: str, tmp_path: Path) -> None:
    b = built(code)
    path = tmp_path / "face.pdf"
    path.write_bytes(b.pdf)
    text = subprocess.run(
        ["pdftotext", "-raw", str(path), "-"], capture_output=True, text=True, check=True
    ).stdout
    flat = squeeze(text)
    for item in b.layout.texts:
        assert squeeze(item.text) in flat, item
    assert squeeze(b.prepared.metadata["ZZBS"]) in flat
    assert b.prepared.draft.certificate_number in flat
    # every whole line pdftotext reports as one word sits where the layout put it
    bbox = subprocess.run(
        ["pdftotext", "-bbox", str(path), "-"], capture_output=True, text=True, check=True
    ).stdout
    words = [
        (float(x0), float(x1), float(y1), html.unescape(word))
        for x0, x1, y1, word in re.findall(
            r'<word xMin="([\d.]+)" yMin="[\d.]+" xMax="([\d.]+)" yMax="([\d.]+)">(.*?)</word>', bbox
        )
    ]
    matched = 0
    for item in b.layout.texts:
        candidates = [w for w in words if w[3] == item.text]
        if not candidates:
            continue
        baseline = (item.box.y + 0.8 * item.size_mm) * PT_PER_MM
        x0, x1, _, _ = min(candidates, key=lambda w: abs(w[2] - baseline))
        assert x0 == pytest.approx(item.box.x * PT_PER_MM, abs=0.5), item
        assert x1 == pytest.approx((item.box.x + item.box.w) * PT_PER_MM, abs=0.5), item
        matched += 1
    assert matched >= 0.8 * len(b.layout.texts)


@needs_poppler
@pytest.mark.parametrize("code", CODES)
def test_rendered_page_matches_the_preview_and_shows_the_seal(code: str, tmp_path: Path) -> None:
    b = built(code)
    path = tmp_path / "face.pdf"
    path.write_bytes(b.pdf)
    dpi = 40
    png = subprocess.run(
        ["pdftoppm", "-r", str(dpi), "-png", "-f", "1", "-l", "1", str(path)], capture_output=True, check=True
    ).stdout
    page = Image.open(io.BytesIO(png)).convert("RGB")
    assert page.size == pytest.approx(
        (b.layout.width_mm / 25.4 * dpi, b.layout.height_mm / 25.4 * dpi), abs=1.5
    )
    preview = render_image(b.layout, dpi=dpi, seal_picture=seal_picture())
    width, height = min(page.width, preview.width), min(page.height, preview.height)

    def blurred(image: Image.Image) -> Image.Image:
        return image.convert("L").crop((0, 0, width, height)).filter(ImageFilter.GaussianBlur(2))

    difference = ImageStat.Stat(ImageChops.difference(blurred(page), blurred(preview))).mean[0]
    assert difference < 4.5, (
        f"poppler's page differs from the preview by {difference:.2f} grey levels on average"
    )
    # the seal is visible: red ink inside the seal box
    box = b.layout.seal_box
    assert box is not None
    scale = dpi / 25.4
    region = page.crop(
        (
            round(box.x * scale),
            round(box.y * scale),
            round((box.x + box.w) * scale),
            round((box.y + box.h) * scale),
        )
    )
    r, g, bl = (
        channel.point(test)
        for channel, test in zip(region.split(), (_above(150), _below(110), _below(110)), strict=True)
    )
    red = ImageChops.multiply(ImageChops.multiply(r, g), bl).histogram()[255]
    assert red > 0.05 * region.width * region.height


@needs_poppler
@pytest.mark.skipif(shutil.which("zbarimg") is None, reason="zbar-tools (zbarimg) not installed")
def test_qr_code_on_the_pdf_page_decodes(tmp_path: Path) -> None:
    b = built(CODES[0])
    (tmp_path / "face.pdf").write_bytes(b.pdf)
    subprocess.run(
        ["pdftoppm", "-r", "150", "-png", "-f", "1", "-l", "1", "face.pdf", "page"], cwd=tmp_path, check=True
    )
    (page,) = tmp_path.glob("page*.png")
    decoded = subprocess.run(["zbarimg", "-q", "--raw", str(page)], capture_output=True, text=True).stdout
    assert decoded.strip() == f"http://127.0.0.1:8000/v/{short_code(b.prepared.metadata['ZZBS'])}"
