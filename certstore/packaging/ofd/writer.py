"""Writing a certificate's OFD package (GB/T 33190-2016 版式文档) from its face layout.

:func:`build_ofd` turns a :class:`~certstore.packaging.layout.FaceLayout` (照面) and the certificate metadata
(元数据) into a self-describing, unsigned OFD file:

* ``OFD.xml`` — DocInfo (DocID, Title, Author = issuing agency, CreationDate, Creator) with every metadata
  element as a ``CustomData`` (as e-invoices carry their fields), and DocRoot.
* ``Doc_0/Document.xml`` — CommonData (MaxUnitID, PageArea, PublicRes, DocumentRes), one page, CustomTags,
  Attachments, in the element order of the GB/T 33190 Annex A schema.
* ``Doc_0/PublicRes.xml`` + ``Doc_0/Res/font_N.ttf`` — the embedded font subset (嵌入字体), so every reader
  draws the same glyphs, and a second (third …) ``Font`` with its own subset when rare characters need a
  fallback font (:data:`certstore.packaging.fonts.FACE_FONTS`); ``Doc_0/DocumentRes.xml`` + ``Doc_0/Res/image_N.*`` — base image (底图) and QR code.
* ``Doc_0/Pages/Page_0/Content.xml`` — the base image in a background layer; one ``TextObject`` per text
  line (per run of a line drawn in one font) with the glyph advances of the embedded font in ``DeltaX`` (readers place glyphs exactly where the
  layout put them instead of guessing from their own metrics); the QR code and other images on top.
* ``Doc_0/Attachs/`` — ``metadata.xml`` (the metadata as XML, ``Visible="false"``) and any extra
  :class:`Attachment` (e.g. the face data as JSON).
* ``Doc_0/Tags/`` — ``CustomTags.xml`` → ``Tag_Certificate.xml`` (``TypeID="cert"``): GB/T 36905-style data
  indexing (数据标引) that links each semantic field (``value:project_name``, ``number`` …) to the IDs of the
  page objects that print it.

The ZIP is deterministic (fixed entry order, fixed timestamps, DEFLATE), so the same input gives the same
bytes. Signatures are added afterwards by :mod:`certstore.packaging.ofd.signing`, which never rewrites a file
another signature already digested. Input the format cannot carry (XML-illegal characters, characters the font
has no glyph for, unknown image types, unsafe attachment names) is refused with :class:`OfdBuildError`.
"""

from __future__ import annotations

import io
import json
import math
import re
import threading
import unicodedata
import zipfile
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from functools import lru_cache
from itertools import pairwise
from pathlib import Path
from typing import Any

from lxml import etree

from certstore.crypto.sm3 import sm3_hex
from certstore.packaging import fonts
from certstore.packaging.layout import Align, Box, FaceLayout, ImageItem, TextItem

from . import names as n
from .archive import ArchiveError, zip_entries

__all__ = [
    "Attachment",
    "OfdBuildError",
    "build_ofd",
    "read_package",
    "serialize_xml",
    "write_package",
]

#: Padding (in em) around a text run inside its TextObject Boundary, so side bearings are not clipped.
_TEXT_PAD_EM = 0.1
#: Baseline position in a text line box, as ``TextItem.baseline_y`` defines it.
_BASELINE_EM = 0.8

_XML_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_SAFE_FILE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


class OfdBuildError(ValueError):
    """The layout, metadata or attachments cannot be represented in an OFD package."""


@dataclass(frozen=True)
class Attachment:
    """An extra file carried in ``Doc_0/Attachs/`` and listed in Attachments.xml (附件, GB/T 33190 §20.2).

    ``name`` is the Attachment/@Name, ``file_name`` the file's name in the package (``[A-Za-z0-9._-]``),
    ``format`` the Attachment/@Format (e.g. ``json``), ``usage`` the Attachment/@Usage.
    """

    name: str
    file_name: str
    data: bytes = field(repr=False)
    format: str
    visible: bool = False
    usage: str = "none"


# --- XML and ZIP helpers (shared with signing) -------------------------------------------------------------


def serialize_xml(root: etree._Element) -> bytes:
    """The bytes of an XML part: a double-quoted UTF-8 declaration and the element, no pretty-printing."""
    return n.XML_DECLARATION + etree.tostring(root, encoding="UTF-8", xml_declaration=False)


#: Already-compressed formats are STORED: deflating them again gains nothing and costs every reader an inflate.
_STORED_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".esl", ".dat")


def write_package(entries: Iterable[tuple[str, bytes]]) -> bytes:
    """A deterministic ZIP of ``entries`` in the given order (:func:`.archive.zip_entries`): DEFLATE (STORED
    for already-compressed images, seals and signature values), fixed timestamps and permissions."""
    seen: set[str] = set()
    listed: list[tuple[str, bytes, bool]] = []
    for name, data in entries:
        if name in seen:
            raise OfdBuildError(f"package path {name!r} written twice")
        seen.add(name)
        listed.append((name, data, not name.lower().endswith(_STORED_SUFFIXES)))
    try:
        return zip_entries(listed)
    except ArchiveError as exc:
        raise OfdBuildError(str(exc)) from exc


def read_package(data: bytes) -> dict[str, bytes]:
    """The files of an OFD ZIP, in archive order (directory entries dropped).

    Raises :class:`ValueError` for what this writer could not re-emit faithfully: not a ZIP, duplicate or
    absolute entry names, ``..`` segments, backslashes.
    """
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as exc:
        raise ValueError(f"not an OFD package (ZIP): {exc}") from exc
    files: dict[str, bytes] = {}
    with archive:
        for info in archive.infolist():
            name = info.filename
            if name.endswith("/"):
                continue
            parts = name.split("/")
            if name.startswith("/") or "\\" in name or any(p in ("", ".", "..") for p in parts):
                raise ValueError(f"unsupported ZIP entry name {name!r}")
            if name in files:
                raise ValueError(f"duplicate ZIP entry {name!r}")
            files[name] = archive.read(info)
    return files


def _num(value: float) -> str:
    """A length in mm as OFD writes it: at most 3 decimals, no trailing zeros, no ``-0``."""
    text = f"{value:.3f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


@lru_cache(maxsize=4096)
def _delta(value: float) -> str:
    """:func:`_num` of a glyph advance: a line repeats a few advances (every hanzi of a size has the same)."""
    return _num(value)


def _box(box: Box) -> str:
    return " ".join(_num(v) for v in (box.x, box.y, box.w, box.h))


def _element(parent: etree._Element, name: str, text: str | None = None, **attrs: str) -> etree._Element:
    child = etree.SubElement(parent, n.q(name), attrs)
    if text is not None:
        child.text = text
    return child


def _root(name: str, **attrs: str) -> etree._Element:
    return etree.Element(n.q(name), attrs, nsmap=n.NSMAP)


def _check_xml_text(value: str, what: str) -> str:
    if not isinstance(value, str):
        raise OfdBuildError(f"{what} must be a string, got {type(value).__name__}")
    bad = _XML_ILLEGAL.search(value)
    if bad:
        raise OfdBuildError(
            f"{what} contains U+{ord(bad.group()):04X}, which XML 1.0 cannot carry: {value!r}"
        )
    return value


def _check_finite(what: str, *values: float) -> None:
    if not all(isinstance(v, int | float) and math.isfinite(v) for v in values):
        raise OfdBuildError(f"{what} must be finite numbers, got {values!r}")


# --- fonts ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _FontProgram:
    """The embedded font: its name, TTF bytes, the advance width (in em) of every character it maps, and how
    far its glyphs reach above and below the baseline (in em, from the font's bounding box)."""

    name: str
    data: bytes = field(repr=False)
    advances: Mapping[str, float] = field(repr=False)
    ascent: float
    descent: float


@lru_cache(maxsize=32)
def _font_program(characters: str, font: int = 0) -> _FontProgram:
    """Face font number ``font`` (:data:`certstore.packaging.fonts.FACE_FONTS`; 0 is the main font, the others
    the fallbacks for rare characters) subset to ``characters``, with its advances.

    Advances are the embedded program's own (:func:`certstore.packaging.fonts.subset_metrics`), so DeltaX
    matches exactly what a reader draws.
    """
    try:
        fonts.require_font()
    except fonts.FontMissingError as exc:
        raise OfdBuildError(str(exc)) from exc
    missing = fonts.missing_glyphs(characters)
    elsewhere = "".join(ch for ch in characters if ch not in missing and (fonts.font_of(ch) or 0) != font)
    if missing or elsewhere:
        shown = ", ".join(f"{ch!r} (U+{ord(ch):04X})" for ch in (missing or elsewhere)[:10])
        fonts_meant = (
            "the face fonts have" if missing else f"the face font {fonts.FACE_FONTS[font].family} has"
        )
        raise OfdBuildError(f"{fonts_meant} no glyph for {shown}; the text cannot be drawn")
    data = fonts.subset_font(characters, font)  # reproducible: the same characters give the same bytes
    metrics = fonts.subset_metrics(characters, font)
    name = fonts.FACE_FONTS[font].family
    # the main font's extent is the whole working font's, so a line's Boundary does not depend on the other
    # characters of the face (its text object is the same on every face: _text_object_xml)
    ascent, descent = (
        fonts.face_extent()
        if font == 0 and fonts.in_working_font(characters)
        else (metrics.ascent, metrics.descent)
    )
    return _FontProgram(
        name, data, metrics.advances, max(ascent, metrics.ascent), max(descent, metrics.descent)
    )


def _font_programs(characters: str) -> dict[int, _FontProgram]:
    """One program per face font that ``characters`` need (the main font first), each subset to its own
    characters."""
    by_font: dict[int, str] = {}
    for font, run in fonts.font_runs(characters):
        by_font[font] = by_font.get(font, "") + run
    return {font: _font_program(by_font[font], font) for font in sorted(by_font)}


# --- page content -----------------------------------------------------------------------------------------


class _Ids:
    """Allocator of ST_ID values: unique across the document, MaxUnitID is the last one given."""

    def __init__(self) -> None:
        self.last = 0

    def next(self) -> int:
        self.last += 1
        return self.last


@lru_cache(maxsize=4096)
def _text_item_problem(item: TextItem) -> str | None:
    """Why ``item`` cannot be written (what :func:`_check_text_item` raises, without the index), or None;
    remembered, since a type's shared lines recur on every face."""
    try:
        _check_text_item(item, -1)
    except OfdBuildError as exc:
        return str(exc)
    return None


def _check_text_item(item: TextItem, index: int) -> None:
    what = f"text item {index} ({item.role})"
    _check_xml_text(item.text, what)
    _check_xml_text(item.role, f"role of {what}")
    for ch in item.text:
        if unicodedata.category(ch) in ("Cc", "Cs"):
            raise OfdBuildError(
                f"{what} contains control character U+{ord(ch):04X}; a text line cannot draw it"
            )
    _check_finite(
        f"box of {what}", item.box.x, item.box.y, item.box.w, item.box.h, item.size_mm, item.letter_spacing_mm
    )
    if item.size_mm <= 0 or item.box.w < 0 or item.box.h < 0:
        raise OfdBuildError(
            f"{what} needs a positive size and a non-negative box, got {item.box}, {item.size_mm}"
        )
    if len(item.color) != 3 or not all(isinstance(c, int) and 0 <= c <= 255 for c in item.color):
        raise OfdBuildError(f"{what} colour must be three integers 0–255, got {item.color!r}")


def _text_object_xml(
    item: TextItem,
    programs: Mapping[int, _FontProgram],
    font_ids: Mapping[int, int],
    fonts_key: tuple[Any, ...],
    first_id: int,
) -> tuple[str, tuple[int, ...]]:
    """The TextObject(s) of one line as XML text, and their IDs (``first_id`` on) — one object per run of the
    line drawn in the same face font (a line with rare characters is cut where the fallback font takes over; all
    its objects share the line's Boundary and each run's TextCode starts where the previous one ended). Lines
    come from a bounded cache keyed by the line, the fonts and the first ID: a type's shared lines (title,
    labels, 落款: the compiled template of :mod:`certstore.packaging.template`) and the values that recur from
    certificate to certificate (issuing authority, dates, categories) are written once — glyph advances depend
    only on the face font and the character, never on the subset, so a cached object is exact.

    The Boundary is the line's box grown to the fonts' glyph extents (their bounding boxes reach above 0.8 em
    and below the box) and to the text's width, plus a small padding, so no reader clips a glyph. TextCode
    X/Y put the first glyph's origin on the layout's baseline; DeltaX gives every following glyph's advance in
    the embedded font plus the item's letter spacing. Lines made by ``lay_out_face`` have ``box.w`` equal to
    their measured width, so every alignment starts at ``box.x``.

    Written as text, not through lxml (≈40 % less per line): the only free text is the TextCode's, checked for
    XML 1.0 (:func:`_check_xml_text`) by the caller and escaped as lxml escapes it; every attribute is a number,
    an ID or a colour. A test compares the bytes with lxml's serialisation.
    """
    key: tuple[Any, ...] | None = (item, fonts_key, first_id)
    try:
        hash(key)
    except TypeError:  # unhashable parts (a list for a colour, already checked): written without the cache
        key = None
    if key is not None:
        with _TEXT_XML_LOCK:
            hit = _TEXT_XML.get(key)
            if hit is not None:
                _TEXT_XML.move_to_end(key)
                return hit
    spacing = item.letter_spacing_mm
    size = item.size_mm
    runs = fonts.font_runs(item.text)
    advances = [programs[font].advances[ch] * size + spacing for font, run in runs for ch in run]
    total = sum(advances) - spacing  # no spacing after the last character
    box = item.box
    if item.align is Align.CENTER:
        start = box.x + (box.w - total) / 2
    elif item.align is Align.RIGHT:
        start = box.x + box.w - total
    else:
        start = box.x
    used = [programs[font] for font in dict.fromkeys(font for font, _ in runs)]
    pad = _TEXT_PAD_EM * size
    left = min(box.x, start) - pad
    right = max(box.x + box.w, start + total) + pad
    baseline = box.y + _BASELINE_EM * size
    top = min(box.y, baseline - max(p.ascent for p in used) * size) - pad
    bottom = max(box.y + box.h, baseline + max(p.descent for p in used) * size) + pad
    # positions of every glyph from rounded cumulative advances, so rounding never accumulates along the line
    positions = [0.0]
    for advance in advances[:-1]:
        positions.append(positions[-1] + advance)
    rounded = [round(p, 3) for p in positions]
    common = (
        f'" Boundary="{_box(Box(left, top, right - left, bottom - top))}" Font="'  # ID and Font around it
    )
    tail = f'" Size="{_num(size)}"' + (' Weight="700"' if item.bold else "")
    fill = f'><{_O}:{n.FILL_COLOR} Value="{" ".join(map(str, item.color))}"/><{_O}:{n.TEXT_CODE} X="'
    y = f'" Y="{_num(baseline - top)}"'
    parts: list[str] = []
    object_ids: list[int] = []
    first = 0
    object_id = first_id
    for font, run in runs:
        parts += (f'<{_O}:{n.TEXT_OBJECT} ID="{object_id}', common, str(font_ids[font]), tail, fill,
                  _num(start - left + rounded[first]), y)  # fmt: skip
        if len(run) > 1:
            mine = rounded[first : first + len(run)]
            parts += (' DeltaX="', " ".join([_delta(b - a) for a, b in pairwise(mine)]), '"')
        parts += (">", _escape_text(run), f"</{_O}:{n.TEXT_CODE}></{_O}:{n.TEXT_OBJECT}>")
        object_ids.append(object_id)
        object_id += 1
        first += len(run)
    result = ("".join(parts), tuple(object_ids))
    if key is not None:
        with _TEXT_XML_LOCK:
            _TEXT_XML[key] = result
            while len(_TEXT_XML) > _TEXT_XML_SIZE:
                _TEXT_XML.popitem(last=False)
    return result


def _escape_text(text: str) -> str:
    """Character data as lxml writes it: ``&``, ``<``, ``>`` and carriage returns escaped."""
    if "&" in text or "<" in text or ">" in text or "\r" in text:
        text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("\r", "&#13;")
    return text


#: Serialised text objects by (item, fonts, first object ID): a line written once is reused whenever it recurs on
#: a face — a type's shared lines always, recurring values often (:func:`_text_object_xml`); bounded.
_TEXT_XML: OrderedDict[tuple[Any, ...], tuple[str, tuple[int, ...]]] = OrderedDict()
_TEXT_XML_SIZE = 4096
_TEXT_XML_LOCK = threading.Lock()
_O = n.OFD_PREFIX


def _image_object_xml(image: ImageItem, resource_id: int, object_id: int) -> str:
    return (
        f'<{_O}:{n.IMAGE_OBJECT} ID="{object_id}" Boundary="{_box(image.box)}" '
        f'CTM="{_num(image.box.w)} 0 0 {_num(image.box.h)} 0 0" ResourceID="{resource_id}"/>'
    )


def _image_format(image: ImageItem, index: int) -> tuple[str, str]:
    what = f"image {index} ({image.role})"
    spec = n.IMAGE_FORMATS.get(image.media_type)
    if spec is None:
        raise OfdBuildError(
            f"{what}: unsupported media type {image.media_type!r} (use one of {sorted(n.IMAGE_FORMATS)})"
        )
    fmt, ext, magics = spec
    if not image.data.startswith(magics):
        raise OfdBuildError(f"{what}: the data is not {image.media_type}")
    _check_finite(f"box of {what}", image.box.x, image.box.y, image.box.w, image.box.h)
    if image.box.w <= 0 or image.box.h <= 0:
        raise OfdBuildError(f"{what}: the box needs a positive width and height, got {image.box}")
    _check_xml_text(image.role, f"role of {what}")
    return fmt, ext


# --- metadata --------------------------------------------------------------------------------------------


def _metadata_text(key: object, value: Any) -> tuple[str, str]:
    if not isinstance(key, str) or not key.strip():
        raise OfdBuildError(f"metadata names must be non-empty strings, got {key!r}")
    _check_xml_text(key, "metadata name")
    if isinstance(value, str):
        text = value
    elif isinstance(value, date):
        text = value.isoformat()
    else:
        try:
            text = json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
        except (TypeError, ValueError) as exc:
            raise OfdBuildError(f"metadata {key!r}: {type(value).__name__} has no text form") from exc
    return key, _check_xml_text(text, f"metadata {key!r}")


def _metadata_xml(items: Sequence[tuple[str, str]]) -> bytes:
    root = etree.Element(f"{{{n.METADATA_NS}}}Metadata", nsmap={None: n.METADATA_NS})
    for key, value in items:
        attrs = {"Name": key}
        if key in n.METADATA_TITLES:
            attrs["Title"] = n.METADATA_TITLES[key]
        etree.SubElement(root, f"{{{n.METADATA_NS}}}Item", attrs).text = value
    return serialize_xml(root)


def _tag_xml(page_id: int, tags: Sequence[tuple[str, list[int]]]) -> bytes:
    """Tag_Certificate.xml: one Field per semantic role with the IDs of the objects drawing it (written as text:
    the bytes lxml writes for the same tree, ``tests/packaging/ofd/test_writer.py`` compares them)."""
    root = f'<Certificate xmlns="{n.TAG_NS}" Version="1"'
    if not tags:
        return n.XML_DECLARATION + f"{root}/>".encode()
    parts = [root, ">"]
    for role, object_ids in tags:
        opening = _tag_field_opening(role)
        if not object_ids:
            parts.append(f"{opening}/>")
            continue
        parts.append(f"{opening}>")
        parts.extend(f'<ObjectRef PageRef="{page_id}">{object_id}</ObjectRef>' for object_id in object_ids)
        parts.append("</Field>")
    parts.append("</Certificate>")
    return n.XML_DECLARATION + "".join(parts).encode()


@lru_cache(maxsize=1024)
def _tag_field_opening(role: str) -> str:
    """``<Field Name="…" Metadata="…"`` as lxml escapes it (made once per role)."""
    attrs = {"Name": role}
    if role in n.ROLE_METADATA:
        attrs["Metadata"] = n.ROLE_METADATA[role]
    return etree.tostring(etree.Element("Field", attrs), encoding="unicode").removesuffix("/>")


def _default_doc_id(items: Sequence[tuple[str, str]]) -> str:
    """32 hex digits derived from the certificate identifier (or, lacking one, all metadata)."""
    values = dict(items)
    basis = values.get(n.META_IDENTIFIER) or json.dumps(items, ensure_ascii=False)
    return sm3_hex(f"certstore-ofd-docid:{basis}".encode())[:32]


def _default_creation_date(items: Sequence[tuple[str, str]]) -> date:
    issued = dict(items).get(n.META_ISSUE_DATE)
    if issued:
        try:
            return date.fromisoformat(issued)
        except ValueError:
            pass
    return datetime.now(UTC).date()


def _check_attachments(attachments: Sequence[Attachment]) -> None:
    seen = {n.METADATA_FILE_NAME, "Attachments.xml"}
    for attachment in attachments:
        what = f"attachment {attachment.file_name!r}"
        if not _SAFE_FILE_NAME.fullmatch(attachment.file_name):
            raise OfdBuildError(f"{what}: file names must match [A-Za-z0-9][A-Za-z0-9._-]*")
        if attachment.file_name in seen:
            raise OfdBuildError(f"{what}: the name is taken (reserved or given twice)")
        seen.add(attachment.file_name)
        for label, text in (
            ("name", attachment.name),
            ("format", attachment.format),
            ("usage", attachment.usage),
        ):
            if not text or not text.strip():
                raise OfdBuildError(f"{what}: {label} must not be empty")
            _check_xml_text(text, f"{what} {label}")
        if not isinstance(attachment.data, bytes):
            raise OfdBuildError(f"{what}: data must be bytes")


# --- the package -----------------------------------------------------------------------------------------


def build_ofd(
    layout: FaceLayout,
    *,
    metadata: Mapping[str, object],
    attachments: Sequence[Attachment] = (),
    doc_id: str | None = None,
    creation_date: date | None = None,
) -> bytes:
    """Build the unsigned OFD package of one certificate face; returns the ZIP bytes (see
    :func:`build_ofd_files`)."""
    files = build_ofd_files(
        layout, metadata=metadata, attachments=attachments, doc_id=doc_id, creation_date=creation_date
    )
    return write_package(files.items())


def build_ofd_files(
    layout: FaceLayout,
    *,
    metadata: Mapping[str, object],
    attachments: Sequence[Attachment] = (),
    doc_id: str | None = None,
    creation_date: date | None = None,
) -> dict[str, bytes]:
    """The files of the unsigned OFD package of one certificate face, in package order (path → bytes): what
    :func:`build_ofd` zips, and what :func:`certstore.packaging.ofd.signing.add_seal` can seal directly, so a
    file sealed at issuance is compressed once.

    ``metadata`` (GB/T 36903-style elements, ``ZZBS``, ``ZZMC``, …) goes into DocInfo/CustomDatas and the
    ``metadata.xml`` attachment in the given order; non-string values are written as JSON (dates as ISO
    dates). ``doc_id`` defaults to 32 hex digits derived from ``ZZBS``; ``creation_date`` to ``ZZBFRQ``
    (else today). Images of role ``seal`` are not drawn: the seal appears through the signature's
    StampAnnot (:func:`certstore.packaging.ofd.signing.add_seal`, at ``layout.seal_box``).

    Raises :class:`OfdBuildError` for input the package cannot represent.
    """
    _check_finite("page size", layout.width_mm, layout.height_mm)
    if layout.width_mm <= 0 or layout.height_mm <= 0:
        raise OfdBuildError(f"page size must be positive, got {layout.width_mm} × {layout.height_mm} mm")
    meta_items = [_metadata_text(k, v) for k, v in metadata.items()]
    for index, item in enumerate(layout.texts):
        try:
            problem = _text_item_problem(item)
        except TypeError:  # an item with unhashable parts (a list for a colour): checked in full
            problem = "unhashable"
        if problem is not None:
            _check_text_item(item, index)  # raises, naming the item's index
    images = [img for img in layout.images if img.role != "seal"]
    formats = [_image_format(img, i) for i, img in enumerate(images)]
    _check_attachments(attachments)
    values = dict(meta_items)
    title = _check_xml_text(layout.title or values.get(n.META_NAME, ""), "title")
    author = values.get(n.META_ISSUER, "")
    doc_id = _check_xml_text(doc_id, "doc_id") if doc_id is not None else _default_doc_id(meta_items)
    if not doc_id.strip():
        raise OfdBuildError("doc_id must not be empty")
    created = creation_date if creation_date is not None else _default_creation_date(meta_items)
    characters = layout.characters()
    programs = _font_programs(characters) if characters else {}

    ids = _Ids()
    page_id = ids.next()
    font_ids = {font: ids.next() for font in programs}
    image_ids = [ids.next() for _ in images]
    files: list[tuple[str, bytes]] = []
    res_files: list[tuple[str, bytes]] = []

    # Doc_0/PublicRes.xml: fonts
    public_res = None
    if programs:
        public_res = _root(n.RES, BaseLoc=n.RES_DIR_NAME)
        font_list = _element(public_res, n.FONTS)
        for number, program in programs.items():
            font_id = font_ids[number]
            file_name = f"font_{font_id}.ttf"
            font = _element(
                font_list, n.FONT, ID=str(font_id), FontName=program.name, FamilyName=program.name
            )
            _element(font, n.FONT_FILE, file_name)
            res_files.append((f"{n.RES_DIR}/{file_name}", program.data))

    # Doc_0/DocumentRes.xml: images
    document_res = None
    if images:
        document_res = _root(n.RES, BaseLoc=n.RES_DIR_NAME)
        medias = _element(document_res, n.MULTI_MEDIAS)
        for image_id, image, (fmt, ext) in zip(image_ids, images, formats, strict=True):
            file_name = f"image_{image_id}.{ext}"
            media = _element(medias, n.MULTI_MEDIA, ID=str(image_id), Type="Image", Format=fmt)
            _element(media, n.MEDIA_FILE, file_name)
            res_files.append((f"{n.RES_DIR}/{file_name}", image.data))

    # Doc_0/Pages/Page_0/Content.xml, written as text: the text objects come from the cache of
    # _text_object_xml (a type's shared lines are serialised once), the rest is a handful of elements
    tags: dict[str, list[int]] = {}
    image_resources = list(zip(images, image_ids, strict=True))
    background = [(img, rid) for img, rid in image_resources if img.role == "base_image"]
    foreground = [(img, rid) for img, rid in image_resources if img.role != "base_image"]
    parts = [f'<{_O}:{n.PAGE} xmlns:{_O}="{n.OFD_NS}"><{_O}:{n.CONTENT}>']
    if background:
        parts.append(f'<{_O}:{n.LAYER} ID="{ids.next()}" Type="Background">')
        for image, resource_id in background:
            object_id = ids.next()
            parts.append(_image_object_xml(image, resource_id, object_id))
            tags.setdefault(image.role, []).append(object_id)
        parts.append(f"</{_O}:{n.LAYER}>")
    parts.append(f'<{_O}:{n.LAYER} ID="{ids.next()}" Type="Body">')
    fonts_key = tuple(
        (number, font_ids[number], program.ascent, program.descent) for number, program in programs.items()
    )
    for item in layout.texts:
        if item.text and programs:
            xml, object_ids = _text_object_xml(item, programs, font_ids, fonts_key, ids.last + 1)
            ids.last += len(object_ids)
            parts.append(xml)
            tags.setdefault(item.role, []).extend(object_ids)
    for image, resource_id in foreground:
        object_id = ids.next()
        parts.append(_image_object_xml(image, resource_id, object_id))
        tags.setdefault(image.role, []).append(object_id)
    parts.append(f"</{_O}:{n.LAYER}></{_O}:{n.CONTENT}></{_O}:{n.PAGE}>")
    page_xml = n.XML_DECLARATION + "".join(parts).encode("utf-8")

    # Doc_0/Document.xml
    document = _root(n.DOCUMENT)
    common = _element(document, n.COMMON_DATA)
    _element(common, n.MAX_UNIT_ID, str(ids.last))
    area = _element(common, n.PAGE_AREA)
    _element(area, n.PHYSICAL_BOX, _box(Box(0, 0, layout.width_mm, layout.height_mm)))
    if public_res is not None:
        _element(common, n.PUBLIC_RES, Path(n.PUBLIC_RES_XML).name)
    if document_res is not None:
        _element(common, n.DOCUMENT_RES, Path(n.DOCUMENT_RES_XML).name)
    pages = _element(document, n.PAGES)
    page_path = n.page_content_path(0)
    _element(pages, n.PAGE, ID=str(page_id), BaseLoc=page_path.removeprefix(n.DOC_DIR + "/"))
    _element(document, n.CUSTOM_TAGS, n.CUSTOM_TAGS_XML.removeprefix(n.DOC_DIR + "/"))
    _element(document, n.ATTACHMENTS, n.ATTACHMENTS_XML.removeprefix(n.DOC_DIR + "/"))

    # Doc_0/Attachs
    attachment_list = _root(n.ATTACHMENTS)
    metadata_xml = _metadata_xml(meta_items)
    stamp = f"{created.isoformat()}T00:00:00"
    attached = [
        (Attachment("metadata", n.METADATA_FILE_NAME, metadata_xml, "xml", False, "metadata"), metadata_xml),
        *((a, a.data) for a in attachments),
    ]
    for number, (attachment, data) in enumerate(attached, start=1):
        entry = _element(
            attachment_list,
            n.ATTACHMENT,
            ID=f"att{number}",
            Name=attachment.name,
            Format=attachment.format,
            CreationDate=stamp,
            Size=_num(len(data) / 1024),
            Visible="true" if attachment.visible else "false",
            Usage=attachment.usage,
        )
        _element(entry, n.FILE_LOC, attachment.file_name)

    # Doc_0/Tags
    custom_tags = _root(n.CUSTOM_TAGS)
    custom_tag = _element(custom_tags, n.CUSTOM_TAG, TypeID=n.TAG_TYPE_ID, NameSpace=n.TAG_NS)
    _element(custom_tag, n.FILE_LOC, n.TAG_FILE_NAME)

    # OFD.xml
    ofd = _root(n.OFD, Version="1.0", DocType="OFD")
    doc_body = _element(ofd, n.DOC_BODY)
    info = _element(doc_body, n.DOC_INFO)
    _element(info, n.DOC_ID, doc_id)
    if title:
        _element(info, n.TITLE, title)
    if author:
        _element(info, n.AUTHOR, author)
    _element(info, n.CREATION_DATE, created.isoformat())
    _element(info, n.CREATOR, n.CREATOR_NAME)
    _element(info, n.CREATOR_VERSION, n.creator_version())
    if meta_items:
        datas = _element(info, n.CUSTOM_DATAS)
        for key, value in meta_items:
            _element(datas, n.CUSTOM_DATA, value, Name=key)
    _element(doc_body, n.DOC_ROOT, n.DOCUMENT_XML)

    files.append((n.OFD_XML, serialize_xml(ofd)))
    files.append((n.DOCUMENT_XML, serialize_xml(document)))
    if public_res is not None:
        files.append((n.PUBLIC_RES_XML, serialize_xml(public_res)))
    if document_res is not None:
        files.append((n.DOCUMENT_RES_XML, serialize_xml(document_res)))
    files.extend(res_files)
    files.append((page_path, page_xml))
    files.append((n.ATTACHMENTS_XML, serialize_xml(attachment_list)))
    files.extend((f"{n.ATTACHS_DIR}/{a.file_name}", data) for a, data in attached)
    files.append((n.CUSTOM_TAGS_XML, serialize_xml(custom_tags)))
    files.append((n.TAG_FILE_XML, _tag_xml(page_id, list(tags.items()))))
    package: dict[str, bytes] = {}
    for name, data in files:
        if name in package:
            raise OfdBuildError(f"package path {name!r} written twice")
        package[name] = data
    return package
