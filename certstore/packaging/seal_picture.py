"""Seal pictures (印章图像): a red round official seal (公章) rendered as a transparent PNG.

The layout follows the usual Chinese official seal: a thick outer ring with a thin inner ring, a five-pointed
star in the centre and the organisation's name along the upper arc, read clockwise. The picture is drawn
supersampled and reduced for smooth edges, at 300 dpi, and stored with its size in millimetres as
SES_ESPictrueInfo requires.
"""

from __future__ import annotations

import io
import math
from functools import lru_cache
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from certstore.packaging import fonts
from certstore.seal.model import SealPicture

__all__ = ["CJK_FONT", "SealPictureError", "render_seal_picture"]

#: The face font (``certstore.packaging.fonts``; installed by ``scripts/install-system-deps``).
CJK_FONT: Path = fonts.FONT_PATH

DPI = 300
_SUPERSAMPLE = 3
_RED = (230, 0, 18, 255)
_MM_PER_INCH = 25.4


class SealPictureError(RuntimeError):
    """The picture cannot be rendered (missing CJK font, unusable parameters)."""


def _font(size_px: int) -> ImageFont.FreeTypeFont:
    if not CJK_FONT.is_file():
        raise SealPictureError(fonts.missing_font_message(CJK_FONT))
    return ImageFont.truetype(str(CJK_FONT), size_px, index=fonts.FONT_INDEX)


def _star_points(cx: float, cy: float, outer: float) -> list[tuple[float, float]]:
    inner = outer * math.sin(math.radians(18)) / math.sin(math.radians(126))
    points = []
    for i in range(10):
        radius = outer if i % 2 == 0 else inner
        angle = math.radians(-90 + i * 36)
        points.append((cx + radius * math.cos(angle), cy + radius * math.sin(angle)))
    return points


def _draw_arc_text(canvas: Image.Image, text: str, centre: float, radius: float, font_px: int) -> None:
    """Place ``text`` clockwise along the upper arc, each glyph upright relative to the circle.

    Names too long for their natural spacing are spread over at most 240° and their glyphs narrowed (not
    shrunk), as on real seals.
    """
    font = _font(font_px)
    count = len(text)
    per_char = min(math.radians(240) / max(count, 1), (font_px * 1.15) / radius)
    max_glyph_width = radius * per_char * 0.92
    start = -math.pi / 2 - per_char * (count - 1) / 2
    for index, char in enumerate(text):
        angle = start + index * per_char
        box = font.getbbox(char)
        glyph_w, glyph_h = max(box[2] - box[0], 1), max(box[3] - box[1], 1)
        glyph = Image.new("RGBA", (glyph_w, glyph_h), (0, 0, 0, 0))
        ImageDraw.Draw(glyph).text((-box[0], -box[1]), char, font=font, fill=_RED)
        if glyph_w > max_glyph_width:
            glyph = glyph.resize((max(round(max_glyph_width), 1), glyph_h), Image.Resampling.LANCZOS)
        side = int(max(glyph.width, glyph.height) * 1.5) + 4
        square = Image.new("RGBA", (side, side), (0, 0, 0, 0))
        square.alpha_composite(glyph, ((side - glyph.width) // 2, (side - glyph.height) // 2))
        rotated = square.rotate(-math.degrees(angle + math.pi / 2), resample=Image.Resampling.BICUBIC)
        x = centre + radius * math.cos(angle) - side / 2
        y = centre + radius * math.sin(angle) - side / 2
        canvas.alpha_composite(rotated, (round(x), round(y)))


@lru_cache(maxsize=64)
def render_seal_picture(name: str, *, diameter_mm: int = 40) -> SealPicture:
    """Render a round red official seal bearing ``name`` as a transparent 300-dpi PNG (memoised: the same name
    always gives the same picture)."""
    name = name.strip()
    if not name:
        raise SealPictureError("the seal name must not be empty")
    if not 10 <= diameter_mm <= 100:
        raise SealPictureError(f"diameter {diameter_mm} mm outside the supported 10–100 mm")
    size_px = round(diameter_mm / _MM_PER_INCH * DPI)
    big = size_px * _SUPERSAMPLE
    canvas = Image.new("RGBA", (big, big), (0, 0, 0, 0))
    draw = ImageDraw.Draw(canvas)
    centre = big / 2
    outer_width = big * 0.035
    margin = outer_width / 2 + big * 0.01
    draw.ellipse((margin, margin, big - margin, big - margin), outline=_RED, width=round(outer_width))
    inner_margin = margin + outer_width + big * 0.012
    draw.ellipse(
        (inner_margin, inner_margin, big - inner_margin, big - inner_margin),
        outline=_RED,
        width=round(big * 0.008),
    )
    draw.polygon(_star_points(centre, centre, big * 0.16), fill=_RED)
    font_px = round(big * 0.11)
    text_radius = big / 2 - inner_margin - font_px * 0.75
    _draw_arc_text(canvas, name, centre, text_radius, font_px)
    image = canvas.resize((size_px, size_px), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    # One ink colour with antialiased edges: a 64-colour palette with alpha keeps the edges and makes the
    # picture — which travels inside every seal signature — about a tenth of the RGBA size.
    image = image.quantize(colors=64, method=Image.Quantize.FASTOCTREE)
    image.save(out, format="PNG", dpi=(DPI, DPI), optimize=True)
    return SealPicture(type="PNG", data=out.getvalue(), width_mm=diameter_mm, height_mm=diameter_mm)
