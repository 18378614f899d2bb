"""The watermark annotation (水印, Type="Watermark") on an unsigned package and the seal over it: the files it
adds and links, its text objects and geometry, refusal of signed packages, tampering, OpenSSL and an independent
reader."""

from __future__ import annotations

import io
import math
from datetime import timedelta
from pathlib import Path

import pytest
from fontTools.ttLib import TTFont
from lxml import etree

from certstore.checks import CheckResult, Indication
from certstore.packaging import fonts
from certstore.packaging.ofd import OfdAnnotationError, add_seal, add_watermark
from certstore.packaging.ofd.writer import write_package
from certstore.verify import verify_file
from tests.packaging.ofd.conftest import NOW, REPOSITORY_STAMP, Pki
from tests.packaging.ofd.structure import OFD_NS, Package, check_element, check_package, resolve
from tests.support.ofd import assert_openssl_verifies_seal, easyofd_render

NS = {"ofd": OFD_NS}
MATTER = "410100-2026-000123"
LINES = ("副本 · 仅供办理施工许可使用", f"郑州市城乡建设局 · 事项 {MATTER}", "2025-06-01 16:00")
LIST = "Doc_0/Annots/Annotations.xml"
PAGE_ANNOT = "Doc_0/Annots/Page_0/Annotation.xml"


def _watermark_font(pkg: Package) -> tuple[int, str]:
    """(ID, package path) of the font declared last in PublicRes.xml: the watermark's."""
    res = pkg.xml("Doc_0/PublicRes.xml")
    font = res.findall("ofd:Fonts/ofd:Font", NS)[-1]
    return int(font.get("ID")), resolve("Doc_0/Res", font.findtext("ofd:FontFile", namespaces=NS))


def _text_objects(pkg: Package, path: str = PAGE_ANNOT) -> list[etree._Element]:
    return pkg.xml(path).findall("ofd:Annot/ofd:Appearance/ofd:TextObject", NS)


def _floats(text: str | None) -> list[float]:
    return [float(v) for v in (text or "").split()]


def _seal_as(pki: Pki, seal: bytes, package: bytes) -> bytes:
    return add_seal(
        package,
        seal=seal,
        signer=pki.repository.signer,
        signer_certificate=pki.repository.certificate,
        stamp_box=REPOSITORY_STAMP,
        signing_time=NOW + timedelta(minutes=5),
        protect="all",
    )


@pytest.fixture(scope="module")
def watermarked(unsigned_ofd: bytes) -> bytes:
    """The unsigned face with the watermark (a copy is watermarked before anything seals it)."""
    return add_watermark(
        unsigned_ofd,
        lines=LINES,
        modified=NOW.date(),
        parameters={"matter": MATTER, "purpose": "施工许可"},
    )


@pytest.fixture(scope="module")
def copy(pki: Pki, repository_seal: bytes, watermarked: bytes) -> bytes:
    """Then the repository's seal over everything, closing the document."""
    return _seal_as(pki, repository_seal, watermarked)


# --- the files a watermark adds and links ----------------------------------------------------------------------


def test_watermark_links_its_list_and_font(unsigned_ofd: bytes, watermarked: bytes) -> None:
    before, after = Package.load(unsigned_ofd), Package.load(watermarked)
    changed = {name for name in before.files if after.files[name] != before.files[name]}
    assert changed == {"Doc_0/Document.xml", "Doc_0/PublicRes.xml"}
    font_id, font_path = _watermark_font(after)
    assert list(after.files)[len(before.files) :] == [font_path, PAGE_ANNOT, LIST]
    document = after.xml("Doc_0/Document.xml")
    assert check_element(document, "Doc_0/Document.xml") == []  # Annotations in schema order
    assert document.findtext("ofd:Annotations", namespaces=NS) == "Annots/Annotations.xml"
    res = after.xml("Doc_0/PublicRes.xml")
    assert [f.get("FontName") for f in res.findall("ofd:Fonts/ofd:Font", NS)] == [fonts.FONT_FAMILY] * 2
    ids = [int(e.get("ID")) for p in (PAGE_ANNOT,) for e in after.xml(p).iter() if e.get("ID")]
    assert int(document.findtext("ofd:CommonData/ofd:MaxUnitID", namespaces=NS)) == max(ids) > font_id
    assert check_package(watermarked) == []


def test_the_sealed_watermark_verifies(watermarked: bytes, copy: bytes, pki: Pki) -> None:
    unsealed = verify_file(watermarked, trust=pki.trust)
    assert unsealed.indication is Indication.INVALID  # no signature at all
    report = verify_file(copy, trust=pki.trust)
    assert report.problems == ()  # every file covered
    (signature,) = report.signatures
    assert signature.indication is Indication.VALID, report.to_dict()
    # Sealed by the repository alone, with no embedded original, the certificate file carries no seal of its issuer
    owner = next(c for c in report.certificate.checks if c.name == "seal_owner")  # type: ignore[union-attr]
    assert owner.result is CheckResult.FAILED
    assert report.indication is Indication.INVALID
    assert signature.signer is not None and signature.signer.subject == pki.repository.certificate.subject
    assert check_package(copy) == []
    references = signature.check("references").reason
    _, font_path = _watermark_font(Package.load(copy))
    for path in (LIST, PAGE_ANNOT, font_path, "Doc_0/Document.xml", "Doc_0/Signs/Signatures.xml"):
        assert f"/{path}" in references


def test_annotation_structure(copy: bytes) -> None:
    pkg = Package.load(copy)
    document = pkg.xml("Doc_0/Document.xml")
    page_id = document.find("ofd:Pages/ofd:Page", NS).get("ID")
    listing = pkg.xml(LIST)
    assert etree.QName(listing).localname == "Annotations"
    assert [(p.get("PageID"), p.findtext("ofd:FileLoc", namespaces=NS)) for p in listing] == [
        (page_id, "Page_0/Annotation.xml")
    ]
    page_annot = pkg.xml(PAGE_ANNOT)
    assert etree.QName(page_annot).localname == "PageAnnot"
    (annot,) = page_annot.findall("ofd:Annot", NS)
    assert annot.get("Type") == "Watermark"
    assert (annot.get("Creator"), annot.get("LastModDate"), annot.get("ReadOnly")) == (
        "certstore",
        "2025-06-01",
        "true",
    )
    assert annot.findtext("ofd:Remark", namespaces=NS) == "\n".join(LINES)
    assert {p.get("Name"): p.text for p in annot.findall("ofd:Parameters/ofd:Parameter", NS)} == {
        "matter": MATTER,
        "purpose": "施工许可",
    }
    assert [etree.QName(c).localname for c in annot] == ["Remark", "Parameters", "Appearance"]
    appearance = annot.find("ofd:Appearance", NS)
    assert _floats(appearance.get("Boundary")) == _floats(
        document.findtext("ofd:CommonData/ofd:PageArea/ofd:PhysicalBox", namespaces=NS)
    )

    font_id, font_path = _watermark_font(pkg)
    objects = _text_objects(pkg)
    texts = [t.findtext("ofd:TextCode", namespaces=NS) for t in objects]
    assert set(texts) == set(LINES)
    assert all(texts.count(line) == texts.count(LINES[0]) >= 6 for line in LINES)  # whole tiles, many of them
    theta = math.radians(30)
    for text_object in objects:
        assert text_object.get("Font") == str(font_id)
        assert text_object.get("Alpha") == "90"
        assert text_object.find("ofd:FillColor", NS).get("Value") == "110 110 110"
        assert _floats(text_object.get("CTM"))[:4] == pytest.approx(
            [math.cos(theta), -math.sin(theta), math.sin(theta), math.cos(theta)], abs=1e-6
        )
    # IDs: unique, above every ID of the face and the font, MaxUnitID the last of them
    ids = [int(annot.get("ID"))] + [int(t.get("ID")) for t in objects]
    assert len(set(ids)) == len(ids)
    face_ids = [int(e.get("ID")) for e in pkg.xml("Doc_0/Pages/Page_0/Content.xml").iter() if e.get("ID")]
    assert min(ids) > font_id > max(face_ids)
    assert int(document.findtext("ofd:CommonData/ofd:MaxUnitID", namespaces=NS)) == max(ids)
    # the embedded subset draws every character, and DeltaX follows its advances
    font = TTFont(io.BytesIO(pkg.files[font_path]))
    cmap, units = font.getBestCmap(), font["head"].unitsPerEm
    assert {ord(ch) for line in LINES for ch in line} <= set(cmap)
    for text_object in objects[: len(LINES)]:
        code = text_object.find("ofd:TextCode", NS)
        size = float(text_object.get("Size"))
        expected = [font["hmtx"][cmap[ord(ch)]][0] / units * size for ch in code.text[:-1]]
        assert _floats(code.get("DeltaX")) == pytest.approx(expected, abs=2e-3)


def test_glyphs_stay_inside_their_boundary_and_tiles_cover_the_page(copy: bytes) -> None:
    pkg = Package.load(copy)
    _, font_path = _watermark_font(pkg)
    font = TTFont(io.BytesIO(pkg.files[font_path]))
    head, cmap = font["head"], font.getBestCmap()
    ascent, descent = head.yMax / head.unitsPerEm, -head.yMin / head.unitsPerEm
    width_mm, height_mm = 210.0, 297.0
    quadrants = set()
    for text_object in _text_objects(pkg):
        x, y, w, h = _floats(text_object.get("Boundary"))
        a, b, c, d, e, f = _floats(text_object.get("CTM"))
        size = float(text_object.get("Size"))
        code = text_object.find("ofd:TextCode", NS)
        last = font["hmtx"][cmap[ord(code.text[-1])]][0] / head.unitsPerEm * size
        length = sum(_floats(code.get("DeltaX"))) + last
        for gx in (0.0, length):
            for gy in (-ascent * size, descent * size):
                px, py = x + a * gx + c * gy + e, y + b * gx + d * gy + f
                assert x - 1e-2 <= px <= x + w + 1e-2 and y - 1e-2 <= py <= y + h + 1e-2
        cx, cy = x + w / 2, y + h / 2
        if 0 <= cx <= width_mm and 0 <= cy <= height_mm:
            quadrants.add((cx > width_mm / 2, cy > height_mm / 2))
    assert quadrants == {(False, False), (False, True), (True, False), (True, True)}


def test_deterministic(unsigned_ofd: bytes, watermarked: bytes) -> None:
    again = add_watermark(
        unsigned_ofd,
        lines=LINES,
        modified=NOW.date(),
        parameters={"matter": MATTER, "purpose": "施工许可"},
    )
    assert again == watermarked


# --- unsigned packages ----------------------------------------------------------------------------------------------


def test_watermark_on_an_unsigned_package_edits_the_document(unsigned_ofd: bytes) -> None:
    once = add_watermark(unsigned_ofd, lines=["样本"], modified=NOW.date())
    assert check_package(once) == []
    pkg = Package.load(once)
    document = pkg.xml("Doc_0/Document.xml")
    assert document.findtext("ofd:Annotations", namespaces=NS) == "Annots/Annotations.xml"
    objects = _text_objects(pkg)
    assert int(document.findtext("ofd:CommonData/ofd:MaxUnitID", namespaces=NS)) == max(
        int(t.get("ID")) for t in objects
    )
    twice = add_watermark(once, lines=["第二层"], modified=NOW.date(), angle_deg=-20, alpha=40)
    assert check_package(twice) == []
    pkg = Package.load(twice)
    annots = pkg.xml(PAGE_ANNOT).findall("ofd:Annot", NS)
    assert [a.findtext("ofd:Remark", namespaces=NS) for a in annots] == ["样本", "第二层"]
    assert len(pkg.xml("Doc_0/PublicRes.xml").findall("ofd:Fonts/ofd:Font", NS)) == 3
    assert len(pkg.xml(LIST)) == 1  # still one entry for the one page


# --- refusals --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("sealed", ["issuer_sealed", "doubly_sealed", "copy"])
def test_a_signed_package_is_refused(sealed: str, request: pytest.FixtureRequest) -> None:
    """An issuer-sealed original (continue or closed) and a sealed copy alike: the watermark goes on before the
    seal, never into a sealed file."""
    package = request.getfixturevalue(sealed)
    with pytest.raises(OfdAnnotationError) as raised:
        add_watermark(package, lines=LINES)
    message = str(raised.value)
    assert "/Doc_0/Signs/Signatures.xml" in message and "is signed" in message
    assert "add the watermark to the unsigned package, then seal it" in message


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"lines": []}, "at least one line"),
        ({"lines": "副本"}, "sequence of strings"),
        ({"lines": ["副本", "  "]}, "line 1 is empty"),
        ({"lines": ["副本\n仅供"]}, "U\\+000A"),
        ({"lines": ["副本"] * 9}, "at most 8 lines"),
        ({"lines": ["x" * 121]}, "longer than 120"),
        ({"lines": ["副本 \U0001f600"]}, "no glyph"),
        ({"lines": ["副本"], "size_mm": 0}, "size_mm"),
        ({"lines": ["副本"], "angle_deg": math.nan}, "angle_deg"),
        ({"lines": ["副本"], "alpha": 0}, "alpha"),
        ({"lines": ["副本"], "alpha": 256}, "alpha"),
        ({"lines": ["副本"], "color": (1, 2)}, "color"),
        ({"lines": ["副本"], "parameters": {"a": "\x00"}}, "parameter value"),
    ],
)
def test_refuses_bad_text_and_style(unsigned_ofd: bytes, kwargs: dict, message: str) -> None:
    with pytest.raises(OfdAnnotationError, match=message):
        add_watermark(unsigned_ofd, **kwargs)


def test_refuses_what_is_not_an_ofd() -> None:
    with pytest.raises(OfdAnnotationError, match="not an OFD package"):
        add_watermark(b"PK no zip", lines=LINES)


# --- tampering, OpenSSL, an independent reader ------------------------------------------------------------------


def test_one_byte_of_the_watermark_changed_breaks_the_seal(copy: bytes, pki: Pki) -> None:
    pkg = Package.load(copy)
    files = dict(pkg.files)
    original = files[PAGE_ANNOT]
    files[PAGE_ANNOT] = original.replace(MATTER.encode(), MATTER[:-1].encode() + b"4", 1)
    assert sum(x != y for x, y in zip(original, files[PAGE_ANNOT], strict=True)) == 1
    report = verify_file(write_package(files.items()), trust=pki.trust)
    assert report.indication is Indication.INVALID
    (repository,) = report.signatures
    assert repository.indication is Indication.INVALID
    references = next(c for c in repository.checks if c.name == "references")
    assert references.result is CheckResult.FAILED and PAGE_ANNOT in references.reason


@pytest.mark.openssl
def test_openssl_verifies_the_repository_seal(tmp_path: Path, copy: bytes, pki: Pki) -> None:
    assert_openssl_verifies_seal(tmp_path, Package.load(copy).files, pki.repository.certificate)


def test_easyofd_opens_the_sealed_watermark(tmp_path: Path, copy: bytes) -> None:
    """easyofd (PyPI) reads the sealed package, its annotation list and the watermark annotation without error
    and draws the watermark text. (It places every annotation text at the Appearance's corner, turned half
    round, and in the face font — its own approximation, not ours: only that it opens and shows the text is
    checked.)"""
    result = easyofd_render(copy, tmp_path, "copy")
    assert result["pages"] == 1
    assert MATTER in result["text"][0]
    assert (tmp_path / "copy_0.png").is_file()
