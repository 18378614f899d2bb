"""Seal pictures: a transparent 300-dpi PNG of a red round seal, sized in millimetres."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image

from certstore.packaging import seal_picture as picture
from certstore.packaging.seal_picture import SealPictureError, render_seal_picture


def test_render_round_red_seal() -> None:
    rendered = render_seal_picture("郑州市大数据管理局电子证照专用章")
    assert (rendered.type, rendered.width_mm, rendered.height_mm) == ("PNG", 40, 40)
    image = Image.open(io.BytesIO(rendered.data))
    assert image.format == "PNG"
    assert image.mode in ("RGBA", "P")  # a palette with alpha keeps the picture small inside every signature
    assert image.mode == "RGBA" or "transparency" in image.info
    assert image.size == (472, 472)  # 40 mm at 300 dpi
    assert round(image.info["dpi"][0]) == 300
    rgba = image.convert("RGBA")
    assert rgba.getpixel((0, 0))[3] == 0  # transparent corner
    ring = rgba.getpixel((236, 18))  # top of the outer ring
    assert ring[3] > 200 and ring[0] > 200 and ring[1] < 60 and ring[2] < 60
    star = rgba.getpixel((236, 236))  # centre of the star
    assert star[3] > 200 and star[0] > 200
    assert rgba.getpixel((236 + 90, 236))[3] == 0  # between star and ring: clear
    opaque = [p for p in rgba.get_flattened_data() if p[3] > 128]
    assert all(p[0] > 150 and p[1] < 100 and p[2] < 100 for p in opaque)  # red only
    assert 0.08 < len(opaque) / (472 * 472) < 0.5


def test_text_lies_on_the_upper_arc() -> None:
    with_text = Image.open(io.BytesIO(render_seal_picture("测试有限公司").data)).convert("RGBA")
    without_text = Image.open(io.BytesIO(render_seal_picture("一").data)).convert("RGBA")
    width, height = with_text.size
    upper = (0, 0, width, height // 3)
    lower = (0, 2 * height // 3, width, height)

    def ink(image: Image.Image, box: tuple[int, int, int, int]) -> int:
        return sum(1 for p in image.crop(box).get_flattened_data() if p[3] > 128)

    assert ink(with_text, upper) > ink(without_text, upper) * 1.2
    assert ink(with_text, lower) == pytest.approx(ink(without_text, lower), rel=0.02)


def test_diameter() -> None:
    rendered = render_seal_picture("测试章", diameter_mm=42)
    assert (rendered.width_mm, rendered.height_mm) == (42, 42)
    assert Image.open(io.BytesIO(rendered.data)).size == (496, 496)
    with pytest.raises(SealPictureError, match="outside the supported"):
        render_seal_picture("测试章", diameter_mm=5)
    with pytest.raises(SealPictureError, match="must not be empty"):
        render_seal_picture("  ")


def test_missing_font_names_the_package(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(picture, "CJK_FONT", tmp_path / "absent.ttf")
    with pytest.raises(SealPictureError, match="fonts-wqy-microhei"):
        render_seal_picture("测试章")
