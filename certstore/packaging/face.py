"""Laying out the face (照面排版): catalogue base image + face-field schema + values → :class:`FaceLayout`.

The page follows the base image (证照底图) of the catalogue entry: its ``certstore-layout`` PNG chunk gives
the page size and the title and content boxes in millimetres (``schemas/catalogue/make_base_images.py``).
On it, as real text objects (never baked into a raster):

* the title (证照名称), large, red and centred in the title box — with 中华人民共和国 above it (role
  ``heading``) when the base image says so;
* the certificate number (证照编号, role ``number``) at the top right of the content box;
* one row per face field in layout order (``x-order``): the label (``label:<field>``) in a label column and
  the value (``value:<field>``) beside it, wrapped over several lines when long. Short labels are spread to
  four characters' width (分散对齐) as on printed forms; a field labelled 至 continues the previous row
  (营业期限 2019年3月12日 至 长期). Landscape pages (content wider than tall, e.g. 营业执照) use two columns;
* at the bottom: the QR code (二维码, role ``qr_code``) at the left with the caption 扫码核验, the issuer
  (``issuer``) and issue date (``date``) at the right with the seal box (:attr:`FaceLayout.seal_box`, 42 mm)
  centred over them as a real seal covers the 落款, and the identifier (证照标识, ``identifier``) in small
  print on the last line.

The body size starts at 14 pt (四号) and shrinks in half points to 8 pt until everything fits; nothing is
ever placed outside the content box — if even 8 pt does not fit, :class:`LayoutError` names the field.

Value formatting: numbers carry their unit (``x-unit``), money (元/万元/亿元) gets thousands separators and
two decimals, dates read ``2026年11月26日``, the permanent validity reads ``长期``.
"""

from __future__ import annotations

import dataclasses
import io
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any

from PIL import Image

from certstore.catalogue import CatalogueEntry, FaceField, base_image_path
from certstore.identifiers import IdentifierError, short_code
from certstore.packaging import fonts
from certstore.packaging.base_image import embedded_base_image
from certstore.packaging.layout import Align, Box, FaceData, FaceLayout, ImageItem, TextItem
from certstore.packaging.qr import qr_png

__all__ = [
    "BODY_SIZES_PT",
    "QR_SIZE_MM",
    "SEAL_SIZE_MM",
    "LayoutError",
    "PageFrame",
    "format_date",
    "format_value",
    "lay_out_face",
    "page_frame",
    "qr_png",
    "verification_url",
    "wrap_text",
]

#: Body text sizes tried, largest first: 14 pt (四号) down to 8 pt in half points.
BODY_SIZES_PT: tuple[float, ...] = tuple(14.0 - 0.5 * i for i in range(13))
QR_SIZE_MM = 22.0
SEAL_SIZE_MM = 42.0

RED = (163, 31, 36)  # the base images' red
INK = (0, 0, 0)
LABEL_INK = (45, 35, 35)
SMALL_INK = (85, 85, 85)

_LINE_PITCH = 1.5  # baseline-to-baseline distance of the lines of one value, in ems
_ROW_GAP = (0.75, 2.0)  # extra space between field rows in ems: minimum, and at most when spread out
_LABEL_GAP = 1.2  # between the label column and the values, in ems
_LABEL_SPREAD_EMS = 4  # short labels (2–3 characters) are spread to this many ems (分散对齐)
_LABEL_MAX_SHARE = 0.4  # the label column takes at most this share of a column; longer labels wrap
_COLUMN_GUTTER = 12.0
_BLOCK_GAP = 4.0  # between the field rows and the bottom block (QR code, 落款 and seal)
_NUMBER_PT = 11.0
_ISSUER_PT = 14.0
_CAPTION_PT = 7.5
_IDENTIFIER_PT = 6.5
_MIN_SMALL_PT = 5.0
_CONTINUATION_LABELS = frozenset({"至", "到"})
_MONEY_UNITS = frozenset({"元", "万元", "亿元"})

# Line-breaking rules (避头尾): characters that may not begin a line, and that may not end one.
_NO_LINE_START = frozenset("，。、；：？！）》〕】」』”’…·%,.;:?!)]}")
_NO_LINE_END = frozenset("（《〔【「『“‘([{")
_TOKEN = re.compile(r"[A-Za-z0-9][A-Za-z0-9.,:/#%&+\-_@]*|\s|.", re.DOTALL)


class LayoutError(ValueError):
    """The face cannot be laid out; :attr:`field` is the face field (or ``number``, ``issuer``,
    ``identifier``) that does not fit, when one is to blame."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


def _field_of(role: str) -> str:
    """The face field (or ``number``, ``issuer``, …) a text item's role names: ``value:holder_name`` →
    ``holder_name``."""
    return role.split(":", 1)[1] if ":" in role else role


def _missing_glyph_message(char: str, role: str) -> str:
    packages = fonts.missing_fallback_packages()
    hint = f" (the fallback fonts of {', '.join(packages)} are not installed)" if packages else ""
    return (
        f"{_field_of(role)}: the character {char!r} (U+{ord(char):04X}) is in no face font{hint}; "
        "it cannot be drawn on the face"
    )


# --- the page: base image and its boxes ------------------------------------------------------------------


@dataclass(frozen=True)
class PageFrame:
    """The geometry of a base image (its ``certstore-layout`` chunk) and the image itself."""

    width_mm: float
    height_mm: float
    title: Box
    content: Box
    emblem: Box | None = None
    heading: str | None = None
    heading_box: Box | None = None
    image: bytes | None = None  # the PNG as embedded (:func:`embedded_base_image`), None without a base image


def _box(values: Sequence[float]) -> Box:
    x, y, w, h = (float(v) for v in values)
    return Box(x, y, w, h)


def _default_frame(width_mm: float, height_mm: float, image: bytes | None) -> PageFrame:
    """The boxes ``make_base_images.py`` uses, for entries without a base image or base images from
    elsewhere without a ``certstore-layout`` chunk."""
    landscape = width_mm > height_mm
    emblem_size, emblem_top = (26.0, 22.0) if landscape else (30.0, 26.0)
    title_top = emblem_top + emblem_size + 5.0
    margin = 26.0
    content_top = title_top + 14.95 + 8.0
    return PageFrame(
        width_mm=width_mm,
        height_mm=height_mm,
        title=Box(margin, title_top, width_mm - 2 * margin, 14.95),
        content=Box(margin, content_top, width_mm - 2 * margin, height_mm - margin - content_top),
        emblem=Box((width_mm - emblem_size) / 2, emblem_top, emblem_size, emblem_size),
        image=image,
    )


@lru_cache(maxsize=32)
def _read_frame(path: Path, mtime_ns: int) -> PageFrame:
    try:
        return _read_frame_data(path.read_bytes())
    except LayoutError as exc:
        raise LayoutError(f"{path.name}: {exc}") from exc


@lru_cache(maxsize=32)
def _read_frame_data(data: bytes) -> PageFrame:
    with Image.open(io.BytesIO(data)) as image:
        chunk = getattr(image, "text", {}).get("certstore-layout")
        dpi = float(image.info.get("dpi", (150.0, 150.0))[0]) or 150.0
        size_px = image.size
    if chunk is None:
        return _default_frame(size_px[0] / dpi * 25.4, size_px[1] / dpi * 25.4, embedded_base_image(data))
    try:
        spec = json.loads(chunk)
        width_mm, height_mm = (float(v) for v in spec["page_mm"])
        return PageFrame(
            width_mm=width_mm,
            height_mm=height_mm,
            title=_box(spec["title_mm"]),
            content=_box(spec["content_mm"]),
            emblem=_box(spec["emblem_mm"]) if "emblem_mm" in spec else None,
            heading=spec.get("heading"),
            heading_box=_box(spec["heading_mm"]) if "heading_mm" in spec else None,
            image=embedded_base_image(data),
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise LayoutError(f"base image: malformed certstore-layout chunk ({exc})") from exc


def page_frame(entry: CatalogueEntry) -> PageFrame:
    """The page of ``entry``: its base image's geometry — the uploaded image (``entry.base_image_data``) when
    there is one, else the shipped file — or a plain A4 portrait page when it has none."""
    if entry.base_image_data is not None:
        try:
            return _read_frame_data(entry.base_image_data)
        except (OSError, SyntaxError) as exc:  # Pillow: not an image it can read
            raise LayoutError(f"the base image of {entry.name} cannot be read: {exc}") from exc
    path = base_image_path(entry)
    if path is None:
        return _default_frame(210.0, 297.0, None)
    if not path.is_file():
        raise LayoutError(f"base image {path} of {entry.name} does not exist")
    return _read_frame(path, path.stat().st_mtime_ns)


# --- values -------------------------------------------------------------------------------------------------


def format_date(value: date) -> str:
    """A date as printed on certificates: ``2026年11月26日`` (no leading zeros, as in 公文)."""
    return f"{value.year}年{value.month}月{value.day}日"


def _plain_number(value: float | int | Decimal) -> str:
    if isinstance(value, int):
        return str(value)
    number = Decimal(repr(value)) if isinstance(value, float) else value
    return format(number.normalize(), "f")


def _iso_date(text: str) -> date | None:
    if not re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", text):
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        return None


def format_value(value: Any, *, unit: str | None = None, format_: str | None = None) -> str:
    """The printed form of a face value: numbers with their unit (money with thousands separators and two
    decimals), ISO dates as ``2026年11月26日``, 长期 as is, booleans 是/否, lists joined with 、."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "是" if value else "否"
    if isinstance(value, int | float | Decimal):
        if unit in _MONEY_UNITS:  # 四舍五入 to the fen (分)
            amount = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
            text = f"{amount.quantize(Decimal('0.01'), rounding=ROUND_HALF_UP):,.2f}"
        else:
            text = _plain_number(value)
        return f"{text}{unit or ''}"
    if isinstance(value, datetime):
        return format_date(value.date())
    if isinstance(value, date):
        return format_date(value)
    if isinstance(value, list | tuple):
        return "、".join(format_value(v, unit=unit, format_=format_) for v in value)
    text = str(value).replace("\r\n", "\n").strip()
    if format_ in ("date", "date-or-permanent") and (day := _iso_date(text)) is not None:
        text = format_date(day)
    if unit and text and not text.endswith(unit):
        text += unit
    return text


def _field_text(entry: CatalogueEntry, field: FaceField, face: Mapping[str, Any]) -> str:
    spec = entry.face_schema["properties"].get(field.name, {})
    return format_value(face.get(field.name), unit=field.unit, format_=spec.get("format"))


def verification_url(identifier: str, verify_base_url: str, *, short: bool = True) -> str:
    """The public check page of a certificate, which the QR code carries: ``…/v/<short code>`` (28 characters,
    :func:`~certstore.identifiers.short_code`) — short enough for zbar at a 96 dpi preview — or ``…/v/<identifier>``
    for an identifier whose serial has no short code (imported ones) or with ``short=False`` (the long form faces
    carried before issue 15). Both paths open the same page."""
    code = None
    if short:
        try:
            code = short_code(identifier)
        except IdentifierError:
            code = None
    return f"{verify_base_url.rstrip('/')}/v/{code or identifier}"


# --- line breaking ------------------------------------------------------------------------------------------


def _width(text: str, size: float) -> float:
    return fonts.text_width_mm(text.rstrip(), size)


def _tokens(paragraph: str, width: float, size: float) -> list[str]:
    """Break opportunities: each ideograph or punctuation mark alone, Latin/number runs whole (split into
    characters when wider than a line), spaces alone."""
    tokens: list[str] = []
    for token in _TOKEN.findall(paragraph):
        if len(token) > 1 and _width(token, size) > width:
            tokens.extend(token)
        else:
            tokens.append(token)
    return tokens


@lru_cache(maxsize=8192)
def _wrap(text: str, width: float, size: float) -> tuple[str, ...] | None:
    lines: list[str] = []
    for paragraph in text.split("\n"):
        line: list[str] = []
        for token in _tokens(paragraph, width, size):
            if token.isspace() or _width("".join([*line, token]), size) <= width:
                line.append(token)
                continue
            if not "".join(line).strip():
                return None  # a single character wider than the line
            carry: list[str] = []
            if token[0] in _NO_LINE_START and len(line) > 1:
                carry.append(line.pop())
            while len(line) > 1 and line[-1] in _NO_LINE_END:
                carry.insert(0, line.pop())
            if carry and _width("".join([*carry, token]), size) > width:
                line.extend(carry)  # the rule cannot be kept here; break plainly
                carry = []
            lines.append("".join(line))
            line = [*carry, token]
        lines.append("".join(line))
    return tuple(lines)


def wrap_text(text: str, width_mm: float, size_mm: float) -> list[str]:
    """``text`` broken into lines no wider than ``width_mm`` at ``size_mm`` (any ideograph may end a line;
    Latin words and numbers are kept whole when they fit; closing punctuation never starts a line and opening
    punctuation never ends one; ``\\n`` forces a break). Spaces at a break stay at the end of the line, so
    the lines joined give ``text`` back (less the ``\\n``). :class:`LayoutError` if one character is wider
    than the line."""
    lines = _wrap(text, round(width_mm, 4), size_mm)
    if lines is None:
        raise LayoutError(f"{width_mm:.1f} mm is narrower than one character at {size_mm:.2f} mm")
    return list(lines)


# --- building blocks ----------------------------------------------------------------------------------------


def _line(
    text: str,
    x: float,
    y: float,
    size: float,
    role: str,
    *,
    align: Align = Align.LEFT,
    color: tuple[int, int, int] = INK,
    bold: bool = False,
    spacing: float = 0.0,
) -> TextItem:
    width = fonts.text_width_mm(text.rstrip(), size, letter_spacing_mm=spacing)
    return TextItem(
        text=text,
        box=Box(x, y, width, size),
        size_mm=size,
        role=role,
        align=align,
        bold=bold,
        color=color,
        letter_spacing_mm=spacing,
    )


def _centred(
    text: str,
    centre_x: float,
    y: float,
    size: float,
    role: str,
    *,
    color: tuple[int, int, int] = INK,
    bold: bool = False,
    spacing: float = 0.0,
) -> TextItem:
    width = fonts.text_width_mm(text, size, letter_spacing_mm=spacing)
    return _line(
        text, centre_x - width / 2, y, size, role, align=Align.CENTER, color=color, bold=bold, spacing=spacing
    )


def _fitting_size(
    text: str, size: float, max_width: float, minimum: float, *, spacing_em: float = 0.0
) -> float:
    """``size`` reduced (if need be) so that ``text`` with ``spacing_em`` letter spacing fits ``max_width``."""
    width = fonts.text_width_mm(text, size, letter_spacing_mm=spacing_em * size)
    if width > max_width:
        size *= max_width / width
    return size if size >= minimum else 0.0


def _title_line(text: str, box: Box, role: str) -> TextItem:
    """A title line in ``box``: the size its height allows (height = 1.15 em), letter-spaced like a printed
    title (0.6 em for names of up to four characters, else 0.12 em), reduced to fit the width."""
    spacing_em = 0.6 if len(text) <= 4 else 0.12
    size = _fitting_size(text, box.h / 1.15, box.w, 0.0, spacing_em=spacing_em)
    return _centred(
        text, box.x + box.w / 2, box.y, size, role, color=RED, bold=True, spacing=spacing_em * size
    )


# --- field rows ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Field:
    field: FaceField
    text: str

    @property
    def continues(self) -> bool:
        return self.field.label in _CONTINUATION_LABELS


@dataclass
class _Row:
    """One field row with items placed relative to the row's top (y = 0)."""

    fields: list[FaceField]
    lines: int
    items: list[TextItem]
    height: float


class _NoFitError(Exception):
    """A label or value cell narrower than one character; ``field`` is the field of that row."""

    def __init__(self, field: FaceField) -> None:
        self.field = field


def _label_spacing(label: str, size: float) -> float:
    """Letter spacing spreading a 2–3 character label over four ems (分散对齐), else 0."""
    if 2 <= len(label) < _LABEL_SPREAD_EMS and all(fonts.char_advance_em(ch) > 0.9 for ch in label):
        natural = fonts.text_width_mm(label, size)
        return (_LABEL_SPREAD_EMS * size - natural) / (len(label) - 1)
    return 0.0


def _label_width(label: str, size: float) -> float:
    return fonts.text_width_mm(label, size, letter_spacing_mm=_label_spacing(label, size))


def _rows(fields: Sequence[_Field], x: float, width: float, size: float) -> list[_Row]:
    """The rows of one column at ``size``; :class:`_NoFitError` if a character is wider than its cell."""
    labelled = [f for f in fields if not f.continues] or list(fields)
    label_col = min(max(_label_width(f.field.label, size) for f in labelled), width * _LABEL_MAX_SHARE)
    gap = _LABEL_GAP * size
    value_x = x + label_col + gap
    value_w = width - label_col - gap
    pitch = _LINE_PITCH * size
    rows: list[_Row] = []
    for item in fields:
        name = item.field.name
        if item.continues and rows and "\n" not in item.text:
            row = rows[-1]
            last = row.items[-1]
            label_x = last.box.x + last.box.w + size
            label_w = fonts.text_width_mm(item.field.label, size)
            value_start = label_x + label_w + size
            if value_start + fonts.text_width_mm(item.text, size) <= x + width:
                y = last.box.y
                row.items.append(_line(item.field.label, label_x, y, size, f"label:{name}", color=LABEL_INK))
                row.items.append(_line(item.text, value_start, y, size, f"value:{name}"))
                row.fields.append(item.field)
                continue
        spacing = _label_spacing(item.field.label, size)
        if fonts.text_width_mm(item.field.label, size, letter_spacing_mm=spacing) <= label_col:
            label_lines = [(item.field.label, spacing)]
        else:
            wrapped = _wrap(item.field.label, round(label_col, 4), size)
            if wrapped is None:
                raise _NoFitError(item.field)
            label_lines = [(line, 0.0) for line in wrapped]
        value_lines = _wrap(item.text, round(value_w, 4), size)
        if value_lines is None:
            raise _NoFitError(item.field)
        items = [
            _line(text, x, i * pitch, size, f"label:{name}", color=LABEL_INK, spacing=spacing)
            for i, (text, spacing) in enumerate(label_lines)
        ]
        items += [
            _line(text, value_x, i * pitch, size, f"value:{name}") for i, text in enumerate(value_lines)
        ]
        lines = max(len(label_lines), len(value_lines))
        rows.append(_Row([item.field], lines, items, size + (lines - 1) * pitch))
    return rows


def _rows_height(rows: Sequence[_Row], size: float) -> float:
    return sum(r.height for r in rows) + _ROW_GAP[0] * size * max(len(rows) - 1, 0)


def _place(rows: Sequence[_Row], top: float, available: float, size: float) -> list[TextItem]:
    """Stack ``rows`` from ``top``, spreading them (up to the maximum row gap) over ``available``."""
    used = _rows_height(rows, size)
    gap = _ROW_GAP[0] * size
    if len(rows) > 1:
        gap = min(gap + (available - used) / (len(rows) - 1), _ROW_GAP[1] * size)
    placed: list[TextItem] = []
    y = top
    for row in rows:
        placed += [dataclasses.replace(t, box=dataclasses.replace(t.box, y=t.box.y + y)) for t in row.items]
        y += row.height + gap
    return placed


def _tallest(rows: Sequence[_Row]) -> FaceField:
    return max(rows, key=lambda r: r.lines).fields[0]


@dataclass(frozen=True)
class _Column:
    x: float
    width: float
    top: float
    bottom: float

    @property
    def height(self) -> float:
        return self.bottom - self.top


def _split_points(fields: Sequence[_Field]) -> list[int]:
    return [k for k in range(1, len(fields)) if not fields[k].continues]


def _lay_out_fields(
    fields: Sequence[_Field], columns: Sequence[_Column], size: float
) -> list[TextItem] | None:
    """The field rows at ``size`` in one or two columns, or None if they do not fit."""
    if not fields:
        return []
    if len(columns) == 1 or not _split_points(fields):
        column = columns[0]
        rows = _rows(fields, column.x, column.width, size)
        if _rows_height(rows, size) > column.height:
            return None
        return _place(rows, column.top, column.height, size)
    left, right = columns
    best: tuple[float, list[TextItem]] | None = None
    for k in _split_points(fields):
        left_rows = _rows(fields[:k], left.x, left.width, size)
        right_rows = _rows(fields[k:], right.x, right.width, size)
        fill = max(_rows_height(left_rows, size) / left.height, _rows_height(right_rows, size) / right.height)
        if fill <= 1.0 and (best is None or fill < best[0]):
            placed = _place(left_rows, left.top, left.height, size)
            placed += _place(right_rows, right.top, right.height, size)
            best = (fill, placed)
    return best[1] if best else None


def _culprit(fields: Sequence[_Field], columns: Sequence[_Column], size: float) -> FaceField:
    """The field to blame when nothing fits: the one taking the most lines at the smallest size."""
    column = columns[0]
    try:
        return _tallest(_rows(fields, column.x, column.width, size))
    except _NoFitError as exc:
        return exc.field


# --- the face -----------------------------------------------------------------------------------------------


def _check_glyphs(texts: Sequence[TextItem]) -> None:
    for text in texts:
        missing = fonts.missing_glyphs(text.text)
        if missing:
            raise LayoutError(_missing_glyph_message(missing[0], text.role), field=_field_of(text.role))


def _lay_out_with_template(data: FaceData, verify_base_url: str, short_qr: bool) -> FaceLayout:
    """The face of an entry with a face template (:mod:`certstore.packaging.template`): the compiled
    template's shared texts and this certificate's values."""
    from certstore.packaging import template as templates

    entry = data.entry
    try:
        compiled = templates.compiled(entry)
    except templates.TemplateError as exc:
        raise LayoutError(f"the face template of {entry.name} cannot be used: {exc}") from exc
    url = verification_url(data.identifier, verify_base_url, short=short_qr)
    layout = compiled.template.lay_out(
        data, static=compiled.static, base_image=compiled.base_image, qr=qr_png(url), verify_url=url
    )
    _check_glyphs(layout.texts[len(compiled.static) :])
    return layout


def lay_out_face(
    data: FaceData, *, verify_base_url: str = "http://127.0.0.1:8000", short_qr: bool = True
) -> FaceLayout:
    """Lay out the face of one certificate version on its catalogue entry's base image.

    The QR code carries :func:`verification_url` — ``{verify_base_url}/v/{short code}``, or with
    ``short_qr=False`` the long ``…/v/{identifier}`` of faces made before issue 15 (to lay out such an original
    again) — also in ``extras["verify_url"]``; ``extras["body_size_pt"]`` is the body size chosen. Raises
    :class:`LayoutError` naming the field that cannot fit, or a character no face font can draw
    (:data:`certstore.packaging.fonts.FACE_FONTS`) and its field.
    """
    if data.entry.face_template is not None:
        return _lay_out_with_template(data, verify_base_url, short_qr)
    entry = data.entry
    frame = page_frame(entry)
    content = frame.content
    content_right, content_bottom = content.x + content.w, content.y + content.h
    pt = fonts.pt_to_mm
    texts: list[TextItem] = []
    if frame.heading and frame.heading_box:
        texts.append(_title_line(frame.heading, frame.heading_box, "heading"))
    texts.append(_title_line(entry.name, frame.title, "title"))

    # 编号 at the top right
    number = data.certificate_number
    number_text = number if re.search(r"[\u4e00-\u9fff]", number) else f"编号：{number}"
    number_size = _fitting_size(number_text, pt(_NUMBER_PT), content.w, pt(_MIN_SMALL_PT))
    if not number_size:
        raise LayoutError(f"the certificate number {number!r} is too long for the face", field="number")
    number_x = content_right - fonts.text_width_mm(number_text, number_size)
    texts.append(_line(number_text, number_x, content.y, number_size, "number", align=Align.RIGHT))
    fields_top = content.y + number_size * _LINE_PITCH + 1.0

    # the identifier in small print on the last line
    identifier_text = f"证照标识：{data.identifier}"
    identifier_size = _fitting_size(identifier_text, pt(_IDENTIFIER_PT), content.w, pt(_MIN_SMALL_PT))
    if not identifier_size:
        raise LayoutError(f"the identifier {data.identifier!r} is too long for the face", field="identifier")
    identifier_y = content_bottom - identifier_size
    texts_bottom: list[TextItem] = [
        _centred(
            identifier_text,
            content.x + content.w / 2,
            identifier_y,
            identifier_size,
            "identifier",
            color=SMALL_INK,
        )
    ]

    # the seal over the issuer's name and the date (落款), bottom right
    seal_bottom = identifier_y - 2.0
    seal_top = seal_bottom - SEAL_SIZE_MM
    issuer_name = entry.issuer.name
    issue_date = format_date(data.issue_date)
    issuer_room = content.w - QR_SIZE_MM - 10.0
    issuer_size = min(
        _fitting_size(issuer_name, pt(_ISSUER_PT), issuer_room, pt(_MIN_SMALL_PT)),
        _fitting_size(issue_date, pt(_ISSUER_PT), issuer_room, pt(_MIN_SMALL_PT)),
    )
    if not issuer_size:
        raise LayoutError(f"the issuer's name {issuer_name!r} is too long for the face", field="issuer")
    half = max(
        SEAL_SIZE_MM / 2,
        fonts.text_width_mm(issuer_name, issuer_size) / 2,
        fonts.text_width_mm(issue_date, issuer_size) / 2,
    )
    axis = content_right - half - 3.0
    centre_y = seal_top + SEAL_SIZE_MM / 2
    issuer_top = centre_y - 1.3 * issuer_size
    texts_bottom.append(_centred(issuer_name, axis, issuer_top, issuer_size, "issuer"))
    texts_bottom.append(_centred(issue_date, axis, issuer_top + 1.6 * issuer_size, issuer_size, "date"))
    seal_box = Box(axis - SEAL_SIZE_MM / 2, seal_top, SEAL_SIZE_MM, SEAL_SIZE_MM)

    # the QR code, bottom left, with its caption
    url = verification_url(data.identifier, verify_base_url, short=short_qr)
    caption_size = pt(_CAPTION_PT)
    caption_y = seal_bottom - caption_size
    qr_box = Box(content.x, caption_y - 1.0 - QR_SIZE_MM, QR_SIZE_MM, QR_SIZE_MM)
    texts_bottom.append(
        _centred(
            "扫码核验", content.x + QR_SIZE_MM / 2, caption_y, caption_size, "qr_caption", color=SMALL_INK
        )
    )

    # the field rows: one column, or two on landscape pages (QR code under the left, seal under the right)
    fields = [
        _Field(field, text) for field in entry.face_fields() if (text := _field_text(entry, field, data.face))
    ]
    if content.w > content.h and len(fields) > 1:
        width = (content.w - _COLUMN_GUTTER) / 2
        columns = [
            _Column(content.x, width, fields_top, qr_box.y - _BLOCK_GAP),
            _Column(content.x + width + _COLUMN_GUTTER, width, fields_top, seal_top - _BLOCK_GAP),
        ]
    else:
        columns = [_Column(content.x, content.w, fields_top, min(qr_box.y, seal_top) - _BLOCK_GAP)]
    rows: list[TextItem] | None = None
    body_pt = BODY_SIZES_PT[0]
    for body_pt in BODY_SIZES_PT:
        try:
            rows = _lay_out_fields(fields, columns, pt(body_pt))
        except _NoFitError:
            rows = None
        if rows is not None:
            break
    if rows is None:
        culprit = _culprit(fields, columns, pt(BODY_SIZES_PT[-1]))
        raise LayoutError(
            f"{culprit.title} ({culprit.name}) does not fit on the face of {entry.name}, "
            f"even at {BODY_SIZES_PT[-1]:g} pt: shorten it",
            field=culprit.name,
        )
    texts += rows
    texts += texts_bottom

    images: list[ImageItem] = []
    if frame.image is not None:
        images.append(
            ImageItem("base_image", frame.image, "image/png", Box(0.0, 0.0, frame.width_mm, frame.height_mm))
        )
    images.append(ImageItem("qr_code", qr_png(url), "image/png", qr_box))
    extras = {"verify_url": url, "body_size_pt": f"{body_pt:g}"}
    for text in texts:
        missing = fonts.missing_glyphs(text.text)
        if missing:
            raise LayoutError(_missing_glyph_message(missing[0], text.role), field=_field_of(text.role))
    return FaceLayout(
        width_mm=frame.width_mm,
        height_mm=frame.height_mm,
        texts=tuple(texts),
        images=tuple(images),
        seal_box=seal_box,
        font_family=fonts.FONT_FAMILY,
        font_path=str(fonts.FONT_PATH),
        title=entry.name,
        extras=extras,
    )
