"""Face templates (照面模板): a catalogue type's own face, placed item by item, compiled once per version.

A template document (``schemas/face-template.schema.json``, carried by the catalogue entry as ``face_template``;
format and example in docs/catalogue.md) places, in millimetres from the top-left corner of the page as OFD
does: the base image (证照底图), the title (证照名称), every face field's label (optional) and value box, the
fixed items every certificate prints (证照编号 ``number``, 颁证单位 ``issuer``, 颁证日期 ``issue_date``, 证照标识
``identifier``, 有效期限 ``validity``, 持证主体 ``holder``), the seal (签章) and the QR code (二维码), and static
texts. A value box has a font size range (largest → smallest, shrunk in half points until the value fits within
``max_lines``), an alignment and a number/date format.

:meth:`FaceTemplate.from_document` checks a document (schema and semantics: boxes on the page, size ranges the
right way round, known formats) and raises :class:`TemplateError` with a JSON-pointer-like ``path``.
:func:`compiled` keeps the compiled template of an entry version process-wide (bounded LRU keyed by (code,
version), checked against the document), so everything a type's faces share — the title, labels, static texts,
the issuer's 落款 — is laid out once; :meth:`FaceTemplate.lay_out` then lays out only the values of one
certificate. ``certstore.packaging.face.lay_out_face`` calls it for every entry that has a template.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from functools import cache
from typing import Any

from jsonschema import Draft202012Validator

from certstore.catalogue import CatalogueEntry, schemas_dir
from certstore.packaging import fonts
from certstore.packaging.layout import Align, Box, FaceData, FaceLayout, ImageItem, TextItem

__all__ = [
    "FIXED_ITEMS",
    "VALUE_FORMATS",
    "FaceTemplate",
    "TemplateError",
    "compiled",
]

#: The fixed items a template places, and the role their value text gets in the layout.
FIXED_ITEMS: Mapping[str, str] = {
    "number": "number",
    "issuer": "issuer",
    "issue_date": "date",
    "identifier": "identifier",
    "validity": "validity",
    "holder": "holder",
}
#: Value formats a template may name (``format``).
VALUE_FORMATS = frozenset(
    {"text", "number", "thousands", "money", "date", "date-iso", "date-dotted", "date-upper"}
)

RED = (163, 31, 36)
INK = (0, 0, 0)
LABEL_INK = (45, 35, 35)
SMALL_INK = (85, 85, 85)

_SIZE_STEP_PT = 0.5
_DEFAULT_VALUE_PT = (12.0, 8.0)
_DEFAULT_LABEL_PT = 12.0
_DEFAULT_PITCH = 1.4
_EPS = 1e-6


class TemplateError(ValueError):
    """A face template that cannot be used; :attr:`path` points at the culprit (``/fields/builder/value/box``)."""

    def __init__(self, message: str, path: str = "") -> None:
        super().__init__(f"{path or '/'}: {message}")
        self.message = message
        self.path = path


# --- the document --------------------------------------------------------------------------------------------


@cache
def _validator() -> Draft202012Validator:
    schema = json.loads((schemas_dir() / "face-template.schema.json").read_text(encoding="utf-8"))
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def _pointer(parts: Sequence[object]) -> str:
    return "".join(f"/{str(p).replace('~', '~0').replace('/', '~1')}" for p in parts)


def _colour(text: str | None, default: tuple[int, int, int]) -> tuple[int, int, int]:
    if text is None:
        return default
    return (int(text[1:3], 16), int(text[3:5], 16), int(text[5:7], 16))


@dataclass(frozen=True)
class TextSpec:
    """A fixed text (title, label, static text, caption): its box, size range, alignment."""

    text: str | None
    box: Box
    sizes: tuple[float, float]  # largest, smallest (pt)
    align: str = "left"  # left, center, right, spread (分散对齐: the text spread over the box's width)
    valign: str = "top"
    letter_spacing_em: float = 0.0
    bold: bool = False
    colour: tuple[int, int, int] = INK


@dataclass(frozen=True)
class ValueSpec:
    """A value box: size range, alignment, wrapping and format."""

    box: Box
    sizes: tuple[float, float]
    align: str = "left"
    valign: str = "top"
    max_lines: int = 1
    line_pitch: float = _DEFAULT_PITCH
    format: str | None = None
    unit: bool = True
    prefix: str = ""
    bold: bool = False
    colour: tuple[int, int, int] = INK


@dataclass(frozen=True)
class FieldSpec:
    label: TextSpec | None
    value: ValueSpec


def _sizes(raw: object, default: tuple[float, float], path: str) -> tuple[float, float]:
    if raw is None:
        return default
    if isinstance(raw, int | float):
        return (float(raw), float(raw))
    largest, smallest = (float(v) for v in raw)  # type: ignore[union-attr]
    if smallest > largest:
        raise TemplateError(f"the size range is inverted: {largest:g} pt → {smallest:g} pt", path)
    return (largest, smallest)


class _Reader:
    """Builds the specs of a schema-valid document, checking what a schema cannot."""

    def __init__(self, width: float, height: float) -> None:
        self.width = width
        self.height = height

    def box(self, raw: Sequence[float], path: str) -> Box:
        x, y, w, h = (float(v) for v in raw)
        if w <= 0 or h <= 0:
            raise TemplateError(f"the box needs a positive width and height, got {w:g} × {h:g} mm", path)
        if x < -_EPS or y < -_EPS or x + w > self.width + _EPS or y + h > self.height + _EPS:
            raise TemplateError(
                f"the box [{x:g}, {y:g}, {w:g}, {h:g}] leaves the {self.width:g} × {self.height:g} mm page",
                path,
            )
        return Box(x, y, w, h)

    def text(
        self, raw: Mapping[str, Any], path: str, *, default_pt: float, colour: tuple[int, int, int] = INK
    ) -> TextSpec:
        box = self.box(raw["box"], f"{path}/box")
        sizes = _sizes(raw.get("size"), (default_pt, default_pt), f"{path}/size")
        if fonts.pt_to_mm(sizes[1]) > box.h + _EPS:
            raise TemplateError(f"{sizes[1]:g} pt is taller than the {box.h:g} mm box", f"{path}/size")
        return TextSpec(
            text=raw.get("text"),
            box=box,
            sizes=sizes,
            align=raw.get("align", "left"),
            valign=raw.get("valign", "top"),
            letter_spacing_em=float(raw.get("letter_spacing", 0.0)),
            bold=bool(raw.get("bold", False)),
            colour=_colour(raw.get("colour"), colour),
        )

    def value(self, raw: Mapping[str, Any], path: str) -> ValueSpec:
        box = self.box(raw["box"], f"{path}/box")
        sizes = _sizes(raw.get("size"), _DEFAULT_VALUE_PT, f"{path}/size")
        if fonts.pt_to_mm(sizes[1]) > box.h + _EPS:
            raise TemplateError(f"{sizes[1]:g} pt is taller than the {box.h:g} mm box", f"{path}/size")
        format_ = raw.get("format")
        if format_ is not None and format_ not in VALUE_FORMATS:
            raise TemplateError(
                f"unknown format {format_!r} (use one of {', '.join(sorted(VALUE_FORMATS))})",
                f"{path}/format",
            )
        return ValueSpec(
            box=box,
            sizes=sizes,
            align=raw.get("align", "left"),
            valign=raw.get("valign", "top"),
            max_lines=int(raw.get("max_lines", 1)),
            line_pitch=float(raw.get("line_pitch", _DEFAULT_PITCH)),
            format=format_,
            unit=bool(raw.get("unit", True)),
            prefix=raw.get("prefix", ""),
            bold=bool(raw.get("bold", False)),
            colour=_colour(raw.get("colour"), INK),
        )

    def field(self, raw: Mapping[str, Any], path: str) -> FieldSpec:
        label = raw.get("label")
        return FieldSpec(
            label=self.text(label, f"{path}/label", default_pt=_DEFAULT_LABEL_PT, colour=LABEL_INK)
            if label is not None
            else None,
            value=self.value(raw["value"], f"{path}/value"),
        )


# --- values --------------------------------------------------------------------------------------------------

_UPPER_DIGITS = "〇一二三四五六七八九"


def _upper_number(n: int) -> str:
    """1–31 in Chinese numerals as dates write them: 十一, 二十六."""
    tens, ones = divmod(n, 10)
    return ("" if tens == 0 else ("十" if tens == 1 else _UPPER_DIGITS[tens] + "十")) + (
        _UPPER_DIGITS[ones] if ones or not tens else ""
    )


def _date_text(day: date, format_: str | None) -> str:
    if format_ == "date-iso":
        return day.isoformat()
    if format_ == "date-dotted":
        return f"{day.year}.{day.month:02d}.{day.day:02d}"
    if format_ == "date-upper":  # 二〇二六年十一月二十六日, as 公文 date their 落款
        year = "".join(_UPPER_DIGITS[int(d)] for d in str(day.year))
        return f"{year}年{_upper_number(day.month)}月{_upper_number(day.day)}日"
    return f"{day.year}年{day.month}月{day.day}日"


def _formatted(value: Any, spec: ValueSpec, unit: str | None, schema_format: str | None) -> str:
    from certstore.packaging.face import format_value  # the generic formats (one place for them)

    shown_unit = unit if spec.unit else None
    fmt = spec.format
    if value is None or value == "":
        return ""
    if fmt is None or fmt == "text":
        return format_value(value, unit=shown_unit, format_=schema_format)
    if fmt.startswith("date"):
        if isinstance(value, date):
            return _date_text(value, fmt)
        text = str(value).strip()
        try:
            return _date_text(date.fromisoformat(text), fmt)
        except ValueError:
            return text  # 长期 and the like
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        return format_value(value, unit=shown_unit, format_=schema_format)
    number = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    if fmt == "money":
        text = f"{number.quantize(Decimal('0.01'), rounding=ROUND_HALF_UP):,.2f}"
    elif fmt == "thousands":
        text = f"{number.normalize():,f}"
    else:
        text = format(number.normalize(), "f")
    return f"{text}{shown_unit or ''}"


# --- laying out text -----------------------------------------------------------------------------------------


def _item(
    text: str,
    box: Box,
    size: float,
    role: str,
    *,
    align: str,
    spacing: float = 0.0,
    bold: bool = False,
    colour: tuple[int, int, int] = INK,
    top: float | None = None,
) -> TextItem:
    """One line in ``box`` at ``size`` (mm), ``box.x`` at its first glyph and ``box.w`` its measured width."""
    width = fonts.text_width_mm(text.rstrip(), size, letter_spacing_mm=spacing)
    if align == "center":
        x = box.x + (box.w - width) / 2
    elif align == "right":
        x = box.x + box.w - width
    else:
        x = box.x
    return TextItem(
        text=text,
        box=Box(x, box.y if top is None else top, width, size),
        size_mm=size,
        role=role,
        align=Align(align) if align in ("left", "center", "right") else Align.LEFT,
        bold=bold,
        color=colour,
        letter_spacing_mm=spacing,
    )


def _top(box: Box, height: float, valign: str) -> float:
    if valign == "middle":
        return box.y + (box.h - height) / 2
    if valign == "bottom":
        return box.y + box.h - height
    return box.y


def _fixed_text(spec: TextSpec, text: str, role: str, path: str) -> TextItem:
    """A fixed text in its box: the largest size in range whose line fits the width, spread or letter-spaced."""
    box = spec.box
    size = fonts.pt_to_mm(spec.sizes[0])
    minimum = fonts.pt_to_mm(spec.sizes[1])
    size = min(size, box.h)
    spacing_em = 0.0 if spec.align == "spread" else spec.letter_spacing_em
    width = fonts.text_width_mm(text, size, letter_spacing_mm=spacing_em * size)
    if width > box.w:
        size = max(size * box.w / width, minimum)
    spacing = spacing_em * size
    if spec.align == "spread" and len(text) > 1:
        natural = fonts.text_width_mm(text, size)
        spacing = max(0.0, (box.w - natural) / (len(text) - 1))
    if fonts.text_width_mm(text, size, letter_spacing_mm=spacing) > box.w + 0.01:
        raise TemplateError(f"{text!r} does not fit its {box.w:g} mm box even at {spec.sizes[1]:g} pt", path)
    return _item(
        text,
        box,
        size,
        role,
        align="left" if spec.align == "spread" else spec.align,
        spacing=spacing,
        bold=spec.bold,
        colour=spec.colour,
        top=_top(box, size, spec.valign),
    )


def _size_steps(sizes: tuple[float, float]) -> list[float]:
    largest, smallest = sizes
    steps = []
    size = largest
    while size >= smallest - _EPS:
        steps.append(size)
        size -= _SIZE_STEP_PT
    if steps[-1] > smallest + _EPS:
        steps.append(smallest)
    return steps


class _OverflowError(Exception):
    pass


def _value_lines(spec: ValueSpec, text: str, role: str) -> list[TextItem]:
    """``text`` in its value box: the largest size of the range at which it wraps into ``max_lines`` lines that
    fit the box; :class:`_OverflowError` when even the smallest does not."""
    from certstore.packaging.face import _wrap  # the line breaker of the generic layout (避头尾 rules)

    box = spec.box
    for points in _size_steps(spec.sizes):
        size = fonts.pt_to_mm(points)
        lines = _wrap(text, round(box.w, 4), size)
        if lines is None or len(lines) > spec.max_lines:
            continue
        pitch = spec.line_pitch * size
        height = size + (len(lines) - 1) * pitch
        if height > box.h + _EPS:
            continue
        top = _top(box, height, spec.valign)
        return [
            _item(
                line,
                box,
                size,
                role,
                align=spec.align,
                bold=spec.bold,
                colour=spec.colour,
                top=top + i * pitch,
            )
            for i, line in enumerate(lines)
        ]
    raise _OverflowError


# --- the template --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FaceTemplate:
    """A checked face template (see the module docstring)."""

    width_mm: float
    height_mm: float
    base_image_box: Box | None
    title: TextSpec
    heading: TextSpec | None
    fields: Mapping[str, FieldSpec]
    fixed: Mapping[str, FieldSpec]
    seal_box: Box
    qr_box: Box
    qr_caption: TextSpec | None
    static: tuple[TextSpec, ...]

    @classmethod
    def from_document(cls, doc: Mapping[str, Any]) -> FaceTemplate:
        """Check a template document and build the template; :class:`TemplateError` (with the path of the
        first problem) for schema errors, boxes off the page, inverted size ranges, unknown formats."""
        errors = sorted(
            _validator().iter_errors(doc),
            key=lambda e: (len(e.absolute_path), list(map(str, e.absolute_path))),
        )
        if errors:
            error = errors[0]
            raise TemplateError(error.message, _pointer(list(error.absolute_path)))
        page = doc["page"]
        reader = _Reader(float(page["width"]), float(page["height"]))
        base = doc.get("base_image")
        qr = doc["qr"]
        seal = doc["seal"]
        qr_box = reader.box([qr["x"], qr["y"], qr["size"], qr["size"]], "/qr")
        seal_box = reader.box([seal["x"], seal["y"], seal["size"], seal["size"]], "/seal")
        caption = qr.get("caption")
        heading = doc.get("heading")
        return cls(
            width_mm=reader.width,
            height_mm=reader.height,
            base_image_box=reader.box(base["box"], "/base_image/box") if base else None,
            title=reader.text(doc["title"], "/title", default_pt=22.0, colour=RED),
            heading=reader.text(heading, "/heading", default_pt=16.0, colour=RED) if heading else None,
            fields={name: reader.field(raw, f"/fields/{name}") for name, raw in doc["fields"].items()},
            fixed={name: reader.field(raw, f"/fixed/{name}") for name, raw in doc["fixed"].items()},
            seal_box=seal_box,
            qr_box=qr_box,
            qr_caption=reader.text(caption, "/qr/caption", default_pt=7.5, colour=SMALL_INK)
            if caption
            else None,
            static=tuple(
                reader.text(raw, f"/static/{i}", default_pt=10.5)
                for i, raw in enumerate(doc.get("static", []))
            ),
        )

    @property
    def placed_fields(self) -> frozenset[str]:
        """The face fields with a value box."""
        return frozenset(self.fields)

    # --- laying out ------------------------------------------------------------------------------------------

    def static_texts(self, entry: CatalogueEntry) -> tuple[TextItem, ...]:
        """Everything of ``entry``'s faces that never changes: heading, title, labels, static texts, the QR
        caption. :class:`TemplateError` when one of them does not fit its box."""
        items: list[TextItem] = []
        if self.heading is not None:
            items.append(
                _fixed_text(self.heading, self.heading.text or "中华人民共和国", "heading", "/heading")
            )
        items.append(_fixed_text(self.title, self.title.text or entry.name, "title", "/title"))
        labels = {f.name: f.label for f in entry.face_fields()}
        fixed_labels = {
            "number": "编号",
            "issuer": "发证机关",
            "issue_date": "发证日期",
            "identifier": "证照标识",
            "validity": "有效期限",
            "holder": "持证主体",
        }
        for name, spec in self.fields.items():
            if spec.label is not None:
                text = spec.label.text or labels.get(name, name)
                items.append(_fixed_text(spec.label, text, f"label:{name}", f"/fields/{name}/label"))
        for name, spec in self.fixed.items():
            if spec.label is not None:
                text = spec.label.text or fixed_labels[name]
                items.append(_fixed_text(spec.label, text, f"label:{name}", f"/fixed/{name}/label"))
        issuer = self.fixed.get("issuer")
        if issuer is not None:
            items += self._value(
                issuer.value, issuer.value.prefix + entry.issuer.name, "issuer", "issuer", entry
            )
        for index, spec in enumerate(self.static):
            items.append(_fixed_text(spec, spec.text or "", f"static:{index}", f"/static/{index}"))
        if self.qr_caption is not None:
            items.append(
                _fixed_text(self.qr_caption, self.qr_caption.text or "扫码核验", "qr_caption", "/qr/caption")
            )
        return tuple(items)

    def values(self, data: FaceData) -> tuple[TextItem, ...]:
        """The value lines of one certificate: the face fields (in layout order) and the fixed items.
        :class:`~certstore.packaging.face.LayoutError` names the field whose value does not fit."""

        entry = data.entry
        properties = entry.face_schema["properties"]
        items: list[TextItem] = []
        for field in entry.face_fields():
            spec = self.fields.get(field.name)
            if spec is None:
                continue
            schema_format = properties[field.name].get("format")
            text = _formatted(data.face.get(field.name), spec.value, field.unit, schema_format)
            if not text:
                continue
            role = f"value:{field.name}"
            items += self._value(
                spec.value, spec.value.prefix + text, role, f"{field.title} ({field.name})", entry
            )
        until = data.valid_until
        fixed_values = {
            "number": data.certificate_number,
            "issue_date": data.issue_date,
            "identifier": data.identifier,
            "validity": (data.valid_from, until),
            "holder": data.holder.name,
        }
        for name, spec in self.fixed.items():
            if name == "issuer":
                continue  # the same on every face: in static_texts
            raw = fixed_values[name]
            if name == "validity":
                start, end = raw  # type: ignore[misc]
                text = (
                    "长期"
                    if end is None
                    else f"{_date_text(start, spec.value.format)}至{_date_text(end, spec.value.format)}"
                )
            elif isinstance(raw, date):
                text = _date_text(raw, spec.value.format)
            else:
                text = str(raw)
            items += self._value(spec.value, spec.value.prefix + text, FIXED_ITEMS[name], name, entry)
        return tuple(items)

    @staticmethod
    def _value(spec: ValueSpec, text: str, role: str, name: str, entry: CatalogueEntry) -> list[TextItem]:
        from certstore.packaging.face import LayoutError

        try:
            return _value_lines(spec, text, role)
        except _OverflowError:
            raise LayoutError(
                f"{name} does not fit its box on the face of {entry.name} in {spec.max_lines} line(s), "
                f"even at {spec.sizes[1]:g} pt: shorten it",
                field=role.split(":", 1)[1] if ":" in role else name,
            ) from None

    def lay_out(
        self,
        data: FaceData,
        *,
        static: Sequence[TextItem],
        base_image: bytes | None,
        qr: bytes,
        verify_url: str,
    ) -> FaceLayout:
        """The face of one certificate: the ``static`` texts (:meth:`static_texts`) and this certificate's
        values, the base image and the QR code."""
        images: list[ImageItem] = []
        if base_image is not None:
            box = self.base_image_box or Box(0.0, 0.0, self.width_mm, self.height_mm)
            images.append(ImageItem("base_image", base_image, "image/png", box))
        images.append(ImageItem("qr_code", qr, "image/png", self.qr_box))
        return FaceLayout(
            width_mm=self.width_mm,
            height_mm=self.height_mm,
            texts=(*static, *self.values(data)),
            images=tuple(images),
            seal_box=self.seal_box,
            font_family=fonts.FONT_FAMILY,
            font_path=str(fonts.FONT_PATH),
            title=data.entry.name,
            extras={"verify_url": verify_url, "template": "1"},
        )


# --- compiled templates, process-wide -------------------------------------------------------------------------


@dataclass(frozen=True)
class CompiledTemplate:
    """A template compiled for one entry version: the template, the texts every face of it shares and the base
    image as embedded (None without one)."""

    template: FaceTemplate
    static: tuple[TextItem, ...]
    base_image: bytes | None = None


_CACHE_SIZE = 64
_cache: OrderedDict[tuple[str, int], tuple[Mapping[str, Any], tuple[Any, ...], CompiledTemplate]] = (
    OrderedDict()
)
_lock = threading.Lock()


def _same(a: object, b: object) -> bool:
    return a is b or a == b


def compiled(entry: CatalogueEntry) -> CompiledTemplate:
    """The compiled template of ``entry`` (which must have ``face_template``), built once per (code, version)
    and document and kept in a bounded LRU. :class:`TemplateError` if the template is invalid or a fixed text
    does not fit."""
    doc = entry.face_template
    if doc is None:
        raise TemplateError(f"{entry.name} has no face template")
    key = (entry.code, entry.version)
    # what the compiled form is made of besides the document
    shared = (entry.name, entry.issuer, entry.face_schema, entry.base_image, entry.base_image_data)
    with _lock:
        hit = _cache.get(key)
        # the same objects (the catalogue's cached entry: every issuance of a type) skip the deep comparison
        if hit is not None and _same(hit[0], doc) and all(map(_same, hit[1], shared)):
            _cache.move_to_end(key)
            return hit[2]
    from certstore.packaging.face import _check_glyphs, page_frame

    template = FaceTemplate.from_document(doc)
    image = (
        page_frame(entry).image if entry.base_image_data is not None or entry.base_image is not None else None
    )
    result = CompiledTemplate(template, template.static_texts(entry), image)
    _check_glyphs(result.static)
    with _lock:
        _cache[key] = (doc, shared, result)
        _cache.move_to_end(key)
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    return result
