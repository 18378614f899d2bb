"""A picture of the first page of a presented OFD file (呈现预览), drawn from the file itself.

The verification page shows the face of the file a person presented — never the repository's record, which the
presenter may not be entitled to see. This is a small renderer, enough for certificate faces: the page box,
``ImageObject`` (PNG/JPEG/BMP/GIF resources scaled into their Boundary), ``TextObject`` (each glyph at its
``TextCode`` position with ``DeltaX`` advances, in the CJK face font — its fallback for rare characters —
whatever font the file names, in its ``FillColor``), and the seal pictures the signatures place on the page (``StampAnnot``). Path objects,
templates, clipping, CTMs on text and embedded fonts are not drawn: a third-party page can look simpler than in
a full OFD reader, which is why the page says this is a preview.

Input comes from :class:`certstore.packaging.ofd.reader.OfdReader` (the hostile-input-safe reader, with its
limits) — or is the package the verifier already read (:func:`render_package_first_page`); anything unexpected
makes either return None rather than a wrong picture.
"""

from __future__ import annotations

import io
import logging
import re
from collections.abc import Iterator
from functools import lru_cache

from lxml import etree
from PIL import Image, ImageDraw, ImageFont, UnidentifiedImageError

from certstore.packaging import fonts
from certstore.packaging.fonts import FONT_PATH
from certstore.packaging.ofd.reader import OfdFormatError, OfdPackage, OfdReader, local_name, resolve_location
from certstore.seal import SealFormatError, parse_seal_signature

__all__ = ["render_first_page", "render_package_first_page"]

log = logging.getLogger(__name__)

_MM_PER_INCH = 25.4
_MAX_PAGE_MM = 2000.0
_MAX_OBJECTS = 20_000
_NUMBERS = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")


def _numbers(text: str | None) -> list[float]:
    return [float(v) for v in _NUMBERS.findall(text or "")]


def _box(text: str | None) -> tuple[float, float, float, float] | None:
    values = _numbers(text)
    if len(values) != 4 or values[2] <= 0 or values[3] <= 0:
        return None
    return values[0], values[1], values[2], values[3]


def _children(element: etree._Element, name: str) -> Iterator[etree._Element]:
    for child in element:
        if isinstance(child.tag, str) and local_name(child) == name:
            yield child


def _child(element: etree._Element, name: str) -> etree._Element | None:
    return next(_children(element, name), None)


def _delta_x(text: str | None, count: int) -> list[float]:
    """OFD DeltaX: numbers, with ``g n v`` meaning n times v; padded with the last value."""
    tokens = (text or "").split()
    values: list[float] = []
    i = 0
    while i < len(tokens) and len(values) < count:
        if tokens[i] == "g" and i + 2 < len(tokens):
            try:
                repeat, value = int(tokens[i + 1]), float(tokens[i + 2])
            except ValueError:
                break
            values.extend([value] * min(repeat, count))
            i += 3
            continue
        try:
            values.append(float(tokens[i]))
        except ValueError:
            break
        i += 1
    while len(values) < count:
        values.append(values[-1] if values else 0.0)
    return values[:count]


@lru_cache(maxsize=64)
def _font(px: int, character: str = "") -> ImageFont.FreeTypeFont:
    """The face font at ``px`` — for a rare character the main font lacks, the fallback font that has it."""
    number = (fonts.font_of(character) or 0) if character else 0
    if number:
        return fonts.load_font(max(px, 1), number)
    return ImageFont.truetype(str(FONT_PATH), size=max(px, 1))


def _media(package: OfdPackage, document_path: str, root: etree._Element) -> dict[str, str]:
    """MultiMedia ID → package path, from the public and document resources."""
    base_dir = document_path.rsplit("/", 1)[0] if "/" in document_path else ""
    common = _child(root, "CommonData")
    found: dict[str, str] = {}
    if common is None:
        return found
    for kind in ("PublicRes", "DocumentRes"):
        for element in _children(common, kind):
            try:
                res_path = resolve_location(element.text or "", base_dir)
                res = package.parse_xml(res_path)
            except OfdFormatError:
                continue
            res_dir = res_path.rsplit("/", 1)[0] if "/" in res_path else ""
            loc_base = res.get("BaseLoc")
            if loc_base:
                try:
                    res_dir = resolve_location(loc_base, res_dir)
                except OfdFormatError:
                    continue
            for medias in _children(res, "MultiMedias"):
                for media in _children(medias, "MultiMedia"):
                    file_element = _child(media, "MediaFile")
                    if media.get("ID") and file_element is not None and file_element.text:
                        try:
                            found[media.get("ID", "")] = resolve_location(file_element.text, res_dir)
                        except OfdFormatError:
                            continue
    return found


def _image(data: bytes) -> Image.Image | None:
    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.width * image.height > 40_000_000:
                return None
            return image.convert("RGBA")
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
        return None


def _paste(
    page: Image.Image, picture: Image.Image, box: tuple[float, float, float, float], scale: float
) -> None:
    """Composite ``picture`` scaled into ``box`` (mm), clipped to the page."""
    x, y, w, h = (round(v * scale) for v in box)
    if w <= 0 or h <= 0 or w > 20_000 or h > 20_000:
        return
    left, top = max(x, 0), max(y, 0)
    right, bottom = min(x + w, page.width), min(y + h, page.height)
    if right <= left or bottom <= top:
        return
    scaled = picture.resize((w, h), Image.Resampling.LANCZOS)
    page.alpha_composite(scaled.crop((left - x, top - y, right - x, bottom - y)), (left, top))


def _color(element: etree._Element) -> tuple[int, int, int]:
    fill = _child(element, "FillColor")
    values = _numbers(fill.get("Value") if fill is not None else None)
    if len(values) >= 3:
        r, g, b = (max(0, min(255, int(v))) for v in values[:3])
        return r, g, b
    return 0, 0, 0


def _text(draw: ImageDraw.ImageDraw, element: etree._Element, scale: float) -> None:
    box = _box(element.get("Boundary"))
    size = _numbers(element.get("Size"))
    if box is None or not size or size[0] <= 0:
        return
    font = _font(round(size[0] * scale))
    color = _color(element)
    x, y = 0.0, 0.0
    for code in _children(element, "TextCode"):
        text = code.text or ""
        if code.get("X") is not None:
            x = (_numbers(code.get("X")) or [x])[0]
        if code.get("Y") is not None:
            y = (_numbers(code.get("Y")) or [y])[0]
        advances = _delta_x(code.get("DeltaX"), max(len(text) - 1, 0))
        position = x
        for index, character in enumerate(text):
            draw.text(
                ((box[0] + position) * scale, (box[1] + y) * scale),
                character,
                font=font
                if (fonts.font_of(character) or 0) == 0
                else _font(round(size[0] * scale), character),
                fill=color,
                anchor="ls",
            )
            if index < len(advances):
                position += advances[index]
        x = position + size[0]  # a following TextCode without X continues the line


def _draw_layer(
    page: Image.Image, layer: etree._Element, package: OfdPackage, media: dict[str, str], scale: float
) -> None:
    draw = ImageDraw.Draw(page)
    for count, element in enumerate(layer):
        if count > _MAX_OBJECTS or not isinstance(element.tag, str):
            break
        name = local_name(element)
        if name == "ImageObject":
            box = _box(element.get("Boundary"))
            path = media.get(element.get("ResourceID", ""))
            picture = _image(package.files[path]) if path and path in package.files else None
            if box is not None and picture is not None:
                _paste(page, picture, box, scale)
                draw = ImageDraw.Draw(page)
        elif name == "TextObject":
            _text(draw, element, scale)
        elif name == "PageBlock":
            _draw_layer(page, element, package, media, scale)
            draw = ImageDraw.Draw(page)


def _stamps(package: OfdPackage, page_id: str | None, page: Image.Image, scale: float) -> None:
    for signature in package.documents[0].signatures:
        if signature.signed_value is None or signature.signed_info is None:
            continue
        try:
            picture_data = parse_seal_signature(signature.signed_value).seal.picture.data
        except (SealFormatError, AttributeError, ValueError):
            continue
        picture = _image(picture_data)
        if picture is None:
            continue
        for annot in signature.signed_info.stamp_annots:
            box = _box(annot.boundary)
            if box is not None and (page_id is None or annot.page_ref == page_id):
                _paste(page, picture, box, scale)


def _render(package: OfdPackage, dpi: float) -> bytes | None:
    if not package.documents:
        return None
    document = package.documents[0]
    root = package.parse_xml(document.root_path)
    base_dir = document.root_path.rsplit("/", 1)[0] if "/" in document.root_path else ""
    common = _child(root, "CommonData")
    area = _child(common, "PageArea") if common is not None else None
    area_box = _child(area, "PhysicalBox") if area is not None else None
    physical = _box(area_box.text) if area_box is not None else None
    pages = _child(root, "Pages")
    first = _child(pages, "Page") if pages is not None else None
    if first is None or not first.get("BaseLoc"):
        return None
    page_path = resolve_location(first.get("BaseLoc", ""), base_dir)
    content_root = package.parse_xml(page_path)
    own_area = _child(content_root, "Area")
    own_box = _child(own_area, "PhysicalBox") if own_area is not None else None
    if own_box is not None:
        physical = _box(own_box.text) or physical
    if physical is None or physical[2] > _MAX_PAGE_MM or physical[3] > _MAX_PAGE_MM:
        return None
    scale = dpi / _MM_PER_INCH
    page = Image.new(
        "RGBA", (max(1, round(physical[2] * scale)), max(1, round(physical[3] * scale))), "white"
    )
    media = _media(package, document.root_path, root)
    content = _child(content_root, "Content")
    if content is not None:
        for layer in _children(content, "Layer"):
            _draw_layer(page, layer, package, media, scale)
    _stamps(package, first.get("ID"), page, scale)
    out = io.BytesIO()
    page.convert("RGB").save(out, format="PNG", optimize=True)
    return out.getvalue()


def render_first_page(data: bytes, *, dpi: float = 96.0) -> bytes | None:
    """A PNG of page 1 of OFD ``data`` at ``dpi``, or None when the file cannot be drawn (see module doc)."""
    try:
        package = OfdReader.open(data)
    except OfdFormatError as exc:
        log.info("no preview of the presented OFD file: %s", exc)
        return None
    return render_package_first_page(package, dpi=dpi)


def render_package_first_page(package: OfdPackage, *, dpi: float = 96.0) -> bytes | None:
    """:func:`render_first_page` of a package already read (the verifier's: a presented file is read once)."""
    try:
        return _render(package, dpi)
    except (OfdFormatError, KeyError, ValueError, OSError, etree.LxmlError) as exc:
        log.info("no preview of the presented OFD file: %s", exc)
        return None
