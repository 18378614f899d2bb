"""The face font: location, measuring, subsets for embedding."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from fontTools.ttLib import TTFont

from certstore.packaging import fonts
from certstore.packaging import seal_picture as picture
from tests.packaging.test_face import ENTRIES, example_layout


def test_one_font_for_every_rendition() -> None:
    assert fonts.require_font() == fonts.FONT_PATH
    assert picture.CJK_FONT == fonts.FONT_PATH  # the seal picture draws with the same font
    layout = example_layout(ENTRIES[0].code)
    assert (layout.font_path, layout.font_family) == (str(fonts.FONT_PATH), fonts.FONT_FAMILY)
    # the font covers Latin letters and digits as well as ideographs (Droid Sans Fallback does not)
    assert fonts.missing_glyphs("编号：410100202406180101 ABC abc 1.2.156（〔·—“”〕）") == ""
    # rare hanzi come from the fallback fonts (tests/packaging/test_rare_characters.py); emoji from none
    assert fonts.missing_glyphs("中\U00020000\U0001f600\n") == "\U0001f600"


def test_missing_font_names_the_package(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(fonts, "FONT_PATH", tmp_path / "absent.ttc")
    with pytest.raises(fonts.FontMissingError, match=fonts.FONT_PACKAGE):
        fonts.require_font()
    with pytest.raises(fonts.FontMissingError, match="install-system-deps"):
        fonts.load_font(17.123)  # a size not cached yet


def test_units_and_widths() -> None:
    assert fonts.pt_to_mm(1) == pytest.approx(0.3528, abs=1e-4)
    assert fonts.pt_to_mm(12) == pytest.approx(4.2333, abs=1e-4)
    assert fonts.mm_to_pt(fonts.pt_to_mm(10.5)) == pytest.approx(10.5)
    assert fonts.text_width_mm("中华人民共和国", 5.0) == pytest.approx(35.0)  # ideographs are one em
    assert fonts.text_width_mm("", 5.0) == 0
    assert fonts.text_width_mm("营业", 5.0, letter_spacing_mm=3.0) == pytest.approx(13.0)
    latin = fonts.text_width_mm("2024-410105", 4.0)
    assert 0.3 * 4.0 * 11 < latin < 0.7 * 4.0 * 11
    assert fonts.text_width_mm("2024-410105", 8.0) == pytest.approx(2 * latin)  # linear in the size
    # agrees with Pillow's measurement at the chosen size (1 px = 1/10 mm here)
    measured = fonts.load_font(40.0).getlength("建设单位ABC123") / 10
    assert fonts.text_width_mm("建设单位ABC123", 4.0) == pytest.approx(measured, rel=0.01)
    assert fonts.load_font(40.0) is fonts.load_font(40.0)


def test_subset_has_the_glyphs_and_is_small() -> None:
    characters = "".join({ch for entry in ENTRIES for ch in example_layout(entry.code).characters()})
    data = fonts.subset_font(characters)
    assert fonts.subset_font("".join(reversed(characters)) + characters[:5]) is data  # cached by set
    font = TTFont(io.BytesIO(data))
    assert "glyf" in font  # TrueType outlines
    cmap = font.getBestCmap()
    assert {ord(ch) for ch in characters} <= set(cmap)
    assert ord(" ") in cmap
    advances = font["hmtx"]
    assert advances[cmap[ord("中")]][0] == font["head"].unitsPerEm
    assert len(data) < 150_000
    assert len(data) * 20 < fonts.FONT_PATH.stat().st_size
    one = TTFont(io.BytesIO(fonts.subset_font(example_layout(ENTRIES[0].code).characters())))
    assert len(one.getGlyphOrder()) < len(font.getGlyphOrder())


def _outlines(font: TTFont, char: str) -> tuple[object, ...]:
    """What a renderer draws for ``char``: the decomposed contour points, end points and advance."""
    from fontTools.pens.recordingPen import DecomposingRecordingPen

    name = font.getBestCmap()[ord(char)]
    pen = DecomposingRecordingPen(font.getGlyphSet())
    font.getGlyphSet()[name].draw(pen)
    return tuple(pen.value), font["hmtx"][name][0]


def test_fast_subset_draws_what_the_subsetter_draws() -> None:
    """The glyph-by-glyph subset (composites renumbered) against fontTools' own Subsetter on the full font:
    the same outlines and advances for ideographs built from components, Latin, digits and punctuation; a
    font that OpenType sanitisers accept (maxp, head bounds, loca consistent)."""
    from fontTools import subset

    text = "建筑工程施工许可证郑州市金水区（）〔2024〕第0087号 ABCxyz-·—“”"
    _, covered = fonts._glyph_source()
    assert set(text) <= covered  # the fast path is taken (龘 would send it to the Subsetter)
    assert "龘" not in covered and ord("龘") in TTFont(io.BytesIO(fonts.subset_font("龘"))).getBestCmap()
    fast = TTFont(io.BytesIO(fonts.subset_font(text)))
    with TTFont(str(fonts.FONT_PATH), fontNumber=fonts.FONT_INDEX, lazy=True) as full:
        subsetter = subset.Subsetter(fonts._subset_options())
        subsetter.populate(unicodes=[ord(ch) for ch in text])
        subsetter.subset(full)
        reference = TTFont(io.BytesIO(_saved(full)))
    for char in set(text) - {" "}:
        assert _outlines(fast, char) == _outlines(reference, char), char
    glyf = fast["glyf"]
    order = fast.getGlyphOrder()
    assert order[0] == ".notdef" and fast["maxp"].numGlyphs == len(order)
    assert any(glyf[name].isComposite() for name in order)  # the components came along, renumbered
    for name in order:
        glyph = glyf[name]
        if glyph.numberOfContours:
            assert fast["head"].yMin <= glyph.yMin and glyph.yMax <= fast["head"].yMax
    assert fonts.subset_font(text) == fonts._subset.__wrapped__("".join(sorted(set(text) | {" "})))  # stable


def _saved(font: TTFont) -> bytes:
    out = io.BytesIO()
    font.save(out)
    return out.getvalue()


def test_working_font_cache_is_reused_and_repaired(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CERTSTORE_CACHE_DIR", str(tmp_path))
    cached = fonts._working_font_cache()
    assert cached is not None and cached.parent == tmp_path
    monkeypatch.setattr(fonts, "_working_font", fonts._working_font.__wrapped__)
    data = fonts._working_font()
    assert cached.read_bytes() == data  # written for the next process
    assert fonts._working_font() == data  # and read back
    cached.write_bytes(b"damaged")
    monkeypatch.setattr(fonts, "_glyph_source", fonts._glyph_source.__wrapped__)
    _, covered = fonts._glyph_source()
    assert "郑" in covered and cached.read_bytes() == data  # cut again, the copy replaced


@pytest.mark.parametrize("text", ["建筑工程施工许可证（2024）第0087号 ABCxyz", "龘靐 and 郑州"])
def test_subset_metrics_are_what_the_subset_says(text: str) -> None:
    """Without parsing the subset (working-font path) or by parsing it (rare characters): the same advances and
    extent as the embedded program itself."""
    font = TTFont(io.BytesIO(fonts.subset_font(text)))
    units = font["head"].unitsPerEm
    metrics = fonts.subset_metrics(text)
    cmap = font.getBestCmap()
    assert metrics.advances == {chr(cp): font["hmtx"][name][0] / units for cp, name in cmap.items()}
    assert (metrics.ascent, metrics.descent) == (font["head"].yMax / units, -font["head"].yMin / units)


@pytest.mark.parametrize(
    "text", ["证照", "建筑工程施工许可证 No.410105-2019（一期）", "ÀÉîõü ffi ½ 郑州市金水区"]
)
def test_subset_checksums_are_the_tables_and_the_files(text: str) -> None:
    """The subset's checksums are summed from its glyphs' (cut once per process): every table's must be what
    its bytes sum to, and the whole file must sum to 0xB1B0AFBA (head's checkSumAdjustment)."""
    data = fonts.subset_font(text)
    padded = data + b"\0" * (-len(data) % 4)
    assert (
        sum(int.from_bytes(padded[i : i + 4], "big") for i in range(0, len(padded), 4)) % 2**32 == 0xB1B0AFBA
    )
    font = TTFont(io.BytesIO(data), checkChecksums=2)  # raises on a table whose checksum is wrong
    for tag in ("glyf", "hmtx", "loca", "cmap", "head", "OS/2"):
        assert font.reader.tables[tag].checkSum is not None
        font.reader[tag]  # read: checked against the directory
