"""PNG previews of a face (照面预览) for list and preview screens.

Draws a :class:`FaceLayout` the way the OFD shows it: base image (底图), QR code, every text line with the face
font at its size and position (character by character at the font's linear advances, exactly as laid out),
and — when given — the seal picture (印章图像) in the seal box, *multiplied* over the page so the text under
a red seal stays legible, as ink on paper does. Output is deterministic: the same layout, dpi and seal picture
give the same bytes.
"""

from __future__ import annotations

import io

from PIL import Image, ImageChops, ImageDraw

from certstore.packaging import fonts
from certstore.packaging.layout import Box, FaceLayout, TextItem

__all__ = ["render_image", "render_preview", "thumbnail"]

_MM_PER_INCH = 25.4
_BOLD_STROKE = 0.018  # stroke width of bold text, in ems


def _px(mm: float, scale: float) -> int:
    return round(mm * scale)


def _box_px(box: Box, scale: float) -> tuple[int, int, int, int]:
    """The pixel rectangle (left, top, width, height) of ``box``; width and height at least 1."""
    left, top = _px(box.x, scale), _px(box.y, scale)
    return left, top, max(_px(box.x + box.w, scale) - left, 1), max(_px(box.y + box.h, scale) - top, 1)


def _paste_image(canvas: Image.Image, data: bytes, box: Box, scale: float, *, sharp: bool) -> None:
    left, top, width, height = _box_px(box, scale)
    with Image.open(io.BytesIO(data)) as source:
        picture = source.convert("RGBA")
    resample = Image.Resampling.NEAREST if sharp else Image.Resampling.LANCZOS
    picture = picture.resize((width, height), resample)
    canvas.paste(picture, (left, top), picture)


def _draw_text(draw: ImageDraw.ImageDraw, item: TextItem, scale: float) -> None:
    size_px = item.size_mm * scale
    if size_px < 1:
        return
    stroke = max(round(size_px * _BOLD_STROKE), 1) if item.bold else 0
    x = item.box.x * scale
    baseline = item.baseline_y * scale
    for ch in item.text:
        if not ch.isspace():
            draw.text(
                (x, baseline),
                ch,
                font=fonts.load_font(size_px, fonts.font_of(ch) or 0),  # rare characters: the fallback font
                fill=item.color,
                anchor="ls",
                stroke_width=stroke,
                stroke_fill=item.color,
            )
        x += (fonts.char_advance_em(ch) * item.size_mm + item.letter_spacing_mm) * scale


def _multiply_seal(canvas: Image.Image, seal_picture: bytes, box: Box, scale: float) -> None:
    """Multiply the seal picture (transparent background) over ``box``, keeping its aspect ratio."""
    with Image.open(io.BytesIO(seal_picture)) as source:
        seal = source.convert("RGBA")
    left, top, width, height = _box_px(box, scale)
    ratio = min(width / seal.width, height / seal.height)
    size = (max(round(seal.width * ratio), 1), max(round(seal.height * ratio), 1))
    seal = seal.resize(size, Image.Resampling.LANCZOS)
    ink = Image.new("RGB", size, (255, 255, 255))
    ink.paste(seal.convert("RGB"), (0, 0), seal)
    origin = (left + (width - size[0]) // 2, top + (height - size[1]) // 2)
    region = canvas.crop((*origin, origin[0] + size[0], origin[1] + size[1]))
    canvas.paste(ImageChops.multiply(region, ink), origin)


def render_image(layout: FaceLayout, *, dpi: float = 110, seal_picture: bytes | None = None) -> Image.Image:
    """The face as an RGB image of the page size at ``dpi`` (see :func:`render_preview`)."""
    if dpi <= 0:
        raise ValueError(f"dpi must be positive, got {dpi}")
    scale = dpi / _MM_PER_INCH
    canvas = Image.new("RGB", (_px(layout.width_mm, scale), _px(layout.height_mm, scale)), (255, 255, 255))
    for image in layout.images:
        _paste_image(canvas, image.data, image.box, scale, sharp=image.role == "qr_code")
    draw = ImageDraw.Draw(canvas)
    for item in layout.texts:
        _draw_text(draw, item, scale)
    if seal_picture is not None and layout.seal_box is not None:
        _multiply_seal(canvas, seal_picture, layout.seal_box, scale)
    return canvas


#: Image formats a preview is encoded in: PNG (lossless: downloads, copies, checks) and WebP for pages (a tenth of
#: the PNG's weight; the face is text and lines on a base image, so this quality keeps both sharp).
IMAGE_FORMATS = ("png", "webp")
WEBP_QUALITY = 65


def _encoded(image: Image.Image, dpi: float, image_format: str) -> bytes:
    out = io.BytesIO()
    if image_format == "png":
        image.save(out, format="PNG", dpi=(dpi, dpi))
    elif image_format == "webp":
        image.convert("RGB").save(out, format="WEBP", quality=WEBP_QUALITY, method=4)
    else:
        raise ValueError(f"image format {image_format!r}: one of {', '.join(IMAGE_FORMATS)}")
    return out.getvalue()


def render_preview(
    layout: FaceLayout, *, dpi: int = 110, seal_picture: bytes | None = None, image_format: str = "png"
) -> bytes:
    """The whole face at ``dpi`` (page size in mm × dpi / 25.4 pixels) as ``image_format`` (PNG or WebP), with
    ``seal_picture`` (a PNG with a transparent background, e.g. ``SealPicture.data``) multiplied into the seal box
    when given."""
    return _encoded(render_image(layout, dpi=dpi, seal_picture=seal_picture), dpi, image_format)


def thumbnail(
    layout: FaceLayout, *, max_px: int = 256, seal_picture: bytes | None = None, image_format: str = "png"
) -> bytes:
    """The face whose longer side is ``max_px`` pixels, for lists (PNG or WebP): drawn at twice that size and
    reduced, so thin lines and small text stay smooth."""
    if max_px < 16:
        raise ValueError(f"max_px must be at least 16, got {max_px}")
    longest_mm = max(layout.width_mm, layout.height_mm)
    dpi = 2 * max_px / longest_mm * _MM_PER_INCH
    image = render_image(layout, dpi=dpi, seal_picture=seal_picture)
    ratio = max_px / max(image.size)
    size = (max(round(image.width * ratio), 1), max(round(image.height * ratio), 1))
    return _encoded(image.resize(size, Image.Resampling.LANCZOS), dpi / 2, image_format)
