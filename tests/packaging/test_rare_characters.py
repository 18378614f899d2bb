"""Rare characters (生僻字) on certificate faces: 𡈽 (U+2123D, Extension B), 䶮 (U+4DAE, Extension A) and 𠮷
(U+20BB7, Extension B) in a holder's and a project's name are drawn in the fallback font (HanaMin), embedded as
a second font subset in the sealed OFD and the PDF rendition — both verified VALID, the OFD rendered by easyofd,
the PDF's text extracted by pdftotext — while a character no face font has is refused with a LayoutError naming
it and its field."""

from __future__ import annotations

import dataclasses
import io
import shutil
import subprocess
import zipfile
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pytest
from fontTools.ttLib import TTFont
from lxml import etree
from PIL import Image
from pyhanko.pdf_utils.reader import PdfFileReader

from certstore.catalogue import CatalogueEntry, shipped_entries
from certstore.checks import Indication
from certstore.keystore import KeyStore
from certstore.packaging import fonts
from certstore.packaging.face import LayoutError, lay_out_face
from certstore.packaging.layout import FaceData, FaceLayout
from certstore.packaging.ofd import add_watermark, build_ofd
from certstore.packaging.ofd.reader import OfdReader
from certstore.packaging.ofd.render import render_first_page
from certstore.packaging.preview import render_image
from certstore.records import PreparedVersion, example_draft, prepare_version
from certstore.services.issuance import make_ofd, make_pdf, sealing_key_for_entry
from certstore.services.keys import init_dev_keys
from certstore.verify import verify_file
from tests.support.ofd import easyofd_render

RARE = "𡈽䶮𠮷"
COMPANY = "郑州𡈽𠮷置业有限公司"  # the holder (a legal person) and the face's entity name
PERSON = "王䶮"  # the legal representative
PROJECT = "𠮷䶮𡈽园住宅小区项目"
OFD_NS = {"ofd": "http://www.ofdspec.org/2016"}

pytestmark = pytest.mark.skipif(
    fonts.missing_fallback_packages() != [],
    reason="fallback fonts not installed (scripts/install-system-deps installs fonts-hanazono, fonts-babelstone-han)",
)


@dataclass(frozen=True)
class Issued:
    prepared: PreparedVersion
    layout: FaceLayout
    ofd: bytes
    pdf: bytes
    store: KeyStore


def _entry(suffix: str) -> CatalogueEntry:
    return next(e for e in shipped_entries() if e.code.endswith(suffix))


def _prepared(entry: CatalogueEntry, face: dict[str, str], holder_name: str | None = None) -> PreparedVersion:
    draft = example_draft(entry, issue_date=date(2026, 5, 28))
    holder = dataclasses.replace(draft.holder, name=holder_name or draft.holder.name)
    draft = dataclasses.replace(draft, holder=holder, face={**draft.face, **face})
    return prepare_version(entry, draft, version=1, holder_key=b"\x07" * 32, serial_key=b"\x07" * 32)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> KeyStore:
    """The development key store (``certstore keys init-dev``): every shipped issuer's seal and its trust."""
    keys = KeyStore(tmp_path_factory.mktemp("keys") / "keys")
    init_dev_keys(keys)
    return keys


@pytest.fixture(scope="module")
def licence(store: KeyStore) -> Issued:
    """A business licence (营业执照) of a company whose name and legal representative have rare characters,
    issued as a sealed OFD and a signed PDF rendition with the issuer's development key."""
    entry = _entry("410001")
    prepared = _prepared(entry, {"entity_name": COMPANY, "legal_representative": PERSON}, COMPANY)
    data = FaceData.from_prepared(prepared)
    key = sealing_key_for_entry(store, entry)
    return Issued(prepared, lay_out_face(data), make_ofd(data, key), make_pdf(data, key), store)


def _ofd_fonts(ofd: bytes) -> dict[str, TTFont]:
    """The embedded fonts of an OFD package by their ``Font`` ID."""
    with zipfile.ZipFile(io.BytesIO(ofd)) as archive:
        names = archive.namelist()
        public_res = etree.fromstring(archive.read(next(n for n in names if n.endswith("PublicRes.xml"))))
        found = {}
        for font in public_res.iterfind(".//ofd:Font", OFD_NS):
            file_name = font.findtext("ofd:FontFile", namespaces=OFD_NS)
            program = archive.read(next(n for n in names if n.endswith(f"/Res/{file_name}")))
            found[font.get("ID")] = TTFont(io.BytesIO(program))
        return found


def _ofd_text_objects(ofd: bytes) -> list[tuple[str, str]]:
    """(Font ID, text) of every TextObject on the page."""
    with zipfile.ZipFile(io.BytesIO(ofd)) as archive:
        content = etree.fromstring(archive.read("Doc_0/Pages/Page_0/Content.xml"))
    return [
        (obj.get("Font"), "".join(code.text or "" for code in obj.iterfind("ofd:TextCode", OFD_NS)))
        for obj in content.iterfind(".//ofd:TextObject", OFD_NS)
    ]


def _pdf_font_programs(pdf: bytes) -> dict[str, bytes]:
    """The embedded TrueType programs of the PDF's page by resource name (``/F1``, ``/F2`` …)."""
    page = PdfFileReader(io.BytesIO(pdf)).root["/Pages"]["/Kids"][0].get_object()
    found = {}
    for name, font in page["/Resources"]["/Font"].items():
        descriptor = font.get_object()["/DescendantFonts"][0].get_object()["/FontDescriptor"]
        found[str(name)] = descriptor["/FontFile2"].get_object().data
    return found


def test_the_fallback_fonts_cover_extensions_a_to_g() -> None:
    """The three characters come from HanaMin; each CJK extension A–G has characters some face font draws,
    the main font keeps everything it has (digits, common hanzi)."""
    assert [fonts.FACE_FONTS[fonts.font_of(ch) or 0].family for ch in RARE] == ["HanaMinA"] * 3
    assert fonts.font_of("郑") == fonts.font_of("7") == 0
    for first in (0x3400, 0x20000, 0x2A700, 0x2B740, 0x2B820, 0x2CEB0, 0x30000):  # Extensions A, B, …, G
        assert fonts.font_of(chr(first)) not in (None, 0), hex(first)
    assert fonts.missing_glyphs(COMPANY + PERSON + PROJECT) == ""
    assert fonts.font_runs("王䶮x") == [(0, "王"), (1, "䶮"), (0, "x")]


def test_ofd_embeds_a_second_font_for_the_rare_characters(licence: Issued) -> None:
    """The sealed OFD has two Font resources: the main subset without the rare characters, and the fallback
    subset holding exactly them, with real outlines; the names' lines are split into runs by font."""
    embedded = _ofd_fonts(licence.ofd)
    assert len(embedded) == 2
    (main_id, main), (rare_id, rare) = embedded.items()
    assert not set(map(ord, RARE)) & set(main.getBestCmap())
    cmap = rare.getBestCmap()
    assert set(map(ord, RARE)) <= set(cmap) and set(cmap) - {32} == set(map(ord, RARE))
    for ch in RARE:
        assert rare["glyf"][cmap[ord(ch)]].numberOfContours > 0  # a drawn glyph, not an empty box
    objects = _ofd_text_objects(licence.ofd)
    assert (rare_id, "𡈽𠮷") in objects and (rare_id, "䶮") in objects
    assert (main_id, "郑州") in objects and (main_id, "置业有限公司") in objects
    # every run but the rare ones is in the main font
    assert {font for font, text in objects if set(text) & set(RARE)} == {rare_id}


def test_issued_files_verify_valid(licence: Issued) -> None:
    """Both the sealed OFD and the PDF rendition verify VALID under the development key store's trust."""
    trust = licence.store.trust_store()
    for data, name in ((licence.ofd, "face.ofd"), (licence.pdf, "face.pdf")):
        report = verify_file(data, trust=trust, file_name=name)
        assert report.indication is Indication.VALID, report.to_dict()
        assert report.certificate is not None
        assert report.certificate.identifier == str(licence.prepared.identifier)


def test_pdf_and_ofd_embed_the_same_glyphs(licence: Issued) -> None:
    """The PDF has a second font (``/F2``) whose program is byte for byte the OFD's fallback subset, so the
    two renditions draw the same glyph."""
    pdf_fonts = _pdf_font_programs(licence.pdf)
    assert sorted(pdf_fonts) == ["/F1", "/F2"]
    with zipfile.ZipFile(io.BytesIO(licence.ofd)) as archive:
        ofd_programs = sorted(archive.read(n) for n in archive.namelist() if n.endswith(".ttf"))
    assert sorted(pdf_fonts.values()) == ofd_programs


@pytest.mark.skipif(shutil.which("pdftotext") is None, reason="poppler-utils (pdftotext) not installed")
def test_pdf_text_is_extractable(licence: Issued, tmp_path: Path) -> None:
    """pdftotext gives the names back with their rare characters (the ToUnicode maps of both fonts)."""
    source = tmp_path / "face.pdf"
    source.write_bytes(licence.pdf)
    text = subprocess.run(["pdftotext", str(source), "-"], capture_output=True, text=True, check=True).stdout
    squeezed = "".join(text.split())
    assert COMPANY in squeezed and PERSON in squeezed


def test_easyofd_renders_the_rare_characters(licence: Issued, tmp_path: Path) -> None:
    """easyofd, an independent OFD reader, opens the sealed file and draws every character of its text objects
    — the rare ones too — from the file's own embedded glyphs (none is missing from the face it draws with).

    Its page text has 䶮 back; the Extension B characters come out of its PDF as U+2123 / U+20BB, because the
    PDF easyofd writes (reportlab) keeps only 16 bits of a code point in its text map — the drawn glyphs are
    right (looked at), only easyofd's own text layer is not."""
    result = easyofd_render(licence.ofd, tmp_path, "rare")
    assert result["pages"] == 1
    assert result["missing"] == []
    squeezed = "".join(result["text"][0].split())
    assert PERSON in squeezed and "郑州" in squeezed and "置业有限公司" in squeezed


def test_project_names_with_rare_characters(store: KeyStore) -> None:
    """A planning permit whose project name has all three: laid out, sealed, verified VALID, in the fallback
    font in both renditions."""
    entry = _entry("17F001")
    data = FaceData.from_prepared(_prepared(entry, {"project_name": PROJECT}))
    key = sealing_key_for_entry(store, entry)
    assert lay_out_face(data).text_of("value:project_name") == PROJECT
    ofd, pdf = make_ofd(data, key), make_pdf(data, key)
    for file, name in ((ofd, "face.ofd"), (pdf, "face.pdf")):
        assert verify_file(file, trust=store.trust_store(), file_name=name).indication is Indication.VALID
    assert len(_ofd_fonts(ofd)) == 2 and len(_pdf_font_programs(pdf)) == 2


def _with_representative(layout: FaceLayout, text: str) -> FaceLayout:
    """``layout`` with the legal representative's line replaced by ``text`` (same box and size)."""
    item = layout.items_for("value:legal_representative")[0]
    texts = tuple(dataclasses.replace(t, text=text) if t is item else t for t in layout.texts)
    return dataclasses.replace(layout, texts=texts)


def _second_glyph_box(layout: FaceLayout, dpi: float) -> tuple[int, int, int, int]:
    """The pixels of the second character of the legal representative's line at ``dpi``."""
    item = layout.items_for("value:legal_representative")[0]
    scale = dpi / 25.4
    x0 = (item.box.x + fonts.char_advance_em("王") * item.size_mm) * scale
    return (round(x0), round(item.box.y * scale), round(x0 + item.size_mm * scale),
            round((item.box.y + item.size_mm) * scale))  # fmt: skip


def test_preview_draws_the_fallback_glyph(licence: Issued) -> None:
    """The PNG preview draws 䶮 with the fallback font: where it stands the picture differs both from nothing
    (王 alone) and from what the main font draws for a character it lacks (U+E000, its .notdef)."""
    layout, dpi = licence.layout, 200
    box = _second_glyph_box(layout, dpi)
    drawn = {
        text: render_image(_with_representative(layout, text), dpi=dpi).crop(box).tobytes()
        for text in (PERSON, "王", "王\ue000")
    }
    assert drawn[PERSON] != drawn["王"] and drawn[PERSON] != drawn["王\ue000"]


def test_verification_page_render_draws_the_fallback_glyph(
    licence: Issued, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The verification page's own renderer of a presented OFD (``render_first_page``) draws 䶮 from the
    fallback font: the pixels differ from the same file drawn with the main font alone (its .notdef)."""
    dpi = 150
    box = _second_glyph_box(licence.layout, dpi)

    def picture() -> bytes:
        rendered = render_first_page(licence.ofd, dpi=dpi)
        assert rendered is not None
        return Image.open(io.BytesIO(rendered)).convert("RGB").crop(box).tobytes()

    with_fallback = picture()
    monkeypatch.setattr(fonts, "font_of", lambda char: 0)  # as if there were no fallback font
    assert with_fallback != picture()


def test_a_character_no_font_has_is_a_layout_error() -> None:
    """A private-use code point (U+E000) in the legal representative's name: LayoutError naming the character
    and the field — never a crash, never an empty box on a sealed face."""
    entry = _entry("410001")
    data = FaceData.from_prepared(_prepared(entry, {"legal_representative": "王\ue000"}))
    with pytest.raises(LayoutError, match=r"U\+E000") as raised:
        lay_out_face(data)
    assert raised.value.field == "legal_representative"
    assert "legal_representative" in str(raised.value)


def test_a_copy_watermark_draws_rare_characters_in_the_fallback_font(licence: Issued) -> None:
    """The watermark of a copy (副本) naming a requester with a rare character: its lines are cut into runs by
    font too, the fallback subset added as another Font of the package; the watermarked copy still opens in
    our reader, and both faces' fonts are there."""
    unsigned = build_ofd(licence.layout, metadata=licence.prepared.metadata)
    before = len(_ofd_fonts(unsigned))
    marked = add_watermark(unsigned, lines=["副本 仅供王䶮使用", "𠮷祥"])
    embedded = _ofd_fonts(marked)
    assert len(embedded) == before + 2  # the watermark's main-font subset and its fallback subset
    with zipfile.ZipFile(io.BytesIO(marked)) as archive:
        page_annot = etree.fromstring(archive.read("Doc_0/Annots/Page_0/Annotation.xml"))
    runs = {
        (obj.get("Font"), "".join(c.text or "" for c in obj.iterfind("ofd:TextCode", OFD_NS)))
        for obj in page_annot.iterfind(".//ofd:TextObject", OFD_NS)
    }
    rare_fonts = {font for font, text in runs if set(text) & set(RARE)}
    assert len(rare_fonts) == 1
    (rare_font,) = rare_fonts
    assert set(map(ord, "䶮𠮷")) <= set(embedded[rare_font].getBestCmap())
    assert {text for font, text in runs if font == rare_font} == {"䶮", "𠮷"}
    assert OfdReader.open(marked) is not None  # the hostile-input-safe reader takes it, fonts and all
