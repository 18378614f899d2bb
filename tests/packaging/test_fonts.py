"""The face font: location, measuring, subsets for embedding."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from fontTools.ttLib import TTFont

from certstore.packaging import fonts
from certstore.seal import picture
from tests.packaging.test_face import ENTRIES, example_layout


def test_one_font_for_every_rendition() -> None:
    assert fonts.require_font() == fonts.FONT_PATH
    assert picture.CJK_FONT == fonts.FONT_PATH  # the seal picture draws with the same font
    layout = example_layout(ENTRIES[0].code)
    assert (layout.font_path, layout.font_family) == (str(fonts.FONT_PATH), fonts.FONT_FAMILY)
    # the font covers Latin letters and digits as well as ideographs (Droid Sans Fallback does not)
    assert fonts.missing_glyphs("编号：410100202406180101 ABC abc 1.2.156（〔·—“”〕）") == ""
    assert fonts.missing_glyphs("中\U00020000\n") == "\U00020000"


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
