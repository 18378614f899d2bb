"""Annotations (注释, GB/T 33190-2016 §15) on an OFD package: the watermark (水印) of a certificate copy (副本).

:func:`add_watermark` gives every page one annotation of the standard type ``Watermark``: the given lines of
text, set diagonally and tiled over the whole page, semi-transparent (the text objects' ``Alpha``), as real
``TextObject``\\ s in a newly embedded subset of the face font — so the text can be selected and read back, and
every reader draws the same glyphs. The annotation also carries the lines as its ``Remark`` and, optionally,
named ``Parameters`` (machine-readable copy data)::

    Doc_0/Document.xml                   <ofd:Annotations>Annots/Annotations.xml</ofd:Annotations>
    Doc_0/Annots/Annotations.xml         <ofd:Annotations> <ofd:Page PageID="1"> <ofd:FileLoc>Page_0/Annotation.xml
    Doc_0/Annots/Page_0/Annotation.xml   <ofd:PageAnnot> <ofd:Annot ID Type="Watermark" Creator LastModDate>
                                           <ofd:Remark/> <ofd:Parameters/> <ofd:Appearance Boundary="page box">
                                             <ofd:TextObject ID Boundary Font Size CTM Alpha> … one per line and tile
    Doc_0/PublicRes.xml                  <ofd:Font ID FontName FamilyName> <ofd:FontFile>font_N.ttf
    Doc_0/Res/font_N.ttf                 the subset holding the watermark's characters

**Unsigned packages only.** Linking an annotation list and a font into a document means editing Document.xml
and PublicRes.xml, which every certstore seal protects; and a watermark added after a seal would be content the
seal does not vouch for. So :func:`add_watermark` works on a package that has no signature yet and refuses
(:class:`OfdAnnotationError`) one whose OFD.xml lists signatures: the watermark is added first, then the
package is sealed (a copy: :mod:`certstore.services.copies`, the repository's seal with ``protect="all"``).
An issuer-sealed original is never changed; a copy is a new document that embeds it.
"""

from __future__ import annotations

import math
import posixpath
import unicodedata
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime
from itertools import pairwise

from lxml import etree

from certstore.packaging import fonts

from . import names as n
from .signing import OfdSigningError, _Package, _resolve
from .writer import OfdBuildError, _font_programs, _FontProgram, serialize_xml, write_package

__all__ = ["ANNOT_TYPE_WATERMARK", "OfdAnnotationError", "add_watermark"]

#: Annot/@Type of a watermark (GB/T 33190 §15.2, one of Link, Path, Highlight, Stamp, Watermark).
ANNOT_TYPE_WATERMARK = "Watermark"

# element names of the annotation parts (GB/T 33190 §15)
_ANNOTATIONS = "Annotations"  # Document.xml child and root of the annotation list
_PAGE_ANNOT = "PageAnnot"
_ANNOT = "Annot"
_REMARK = "Remark"
_PARAMETERS = "Parameters"
_PARAMETER = "Parameter"
_APPEARANCE = "Appearance"

#: The annotation list created, relative to the document's folder, and the page files' names.
ANNOTATIONS_LOC = "Annots/Annotations.xml"
_PAGE_ANNOT_FILE = "Annotation.xml"
#: Document.xml children that follow Annotations in the schema order.
_AFTER_ANNOTATIONS = ("Attachments", "CustomTags", "Extensions")
#: CommonData children that follow PublicRes.
_AFTER_PUBLIC_RES = (n.DOCUMENT_RES, "TemplatePage", "DefaultCS")

_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)
_XML_ILLEGAL = frozenset(chr(c) for c in (*range(0x20), 0xFFFE, 0xFFFF)) - {"\t", "\n", "\r"}

#: Layout of the tiles, in em of the text size: line pitch, room between tiles along and across the text.
_LINE_PITCH_EM = 1.6
_GAP_ALONG_EM = 6.0
_GAP_ACROSS_EM = 3.0
_PAD_EM = 0.1
_MAX_LINES = 8
_MAX_LINE_LENGTH = 120


class OfdAnnotationError(ValueError):
    """The watermark cannot be added as asked: unusable text or parameters, a package that cannot be read, or a
    package that is already signed (watermark first, then seal)."""


# --- the package being changed ------------------------------------------------------------------------------


class _Target:
    """An unsigned package read for annotating: its files, the XML parts changed, the files added."""

    def __init__(self, data: bytes) -> None:
        try:
            self.package = _Package(data)
            signatures = self.package.existing_signatures()
        except OfdSigningError as exc:
            raise OfdAnnotationError(str(exc)) from exc
        if self.package.signatures_path is not None:
            raise OfdAnnotationError(
                f"the package is signed (/{self.package.signatures_path} lists {len(signatures)} "
                "signature(s)): a watermark changes Document.xml and PublicRes.xml, which a seal protects, and "
                "a seal must vouch for what is shown — add the watermark to the unsigned package, then seal it"
            )
        self.files = self.package.files
        self.document_path = self.package.document_path
        self.doc_dir = self.package.doc_dir
        self.document = self.package.document
        self._roots: dict[str, etree._Element] = {self.document_path: self.document}
        self._dirty: list[str] = []

    # reading

    def exists(self, path: str) -> bool:
        return path in self.files

    def xml(self, path: str) -> etree._Element:
        if path not in self._roots:
            try:
                self._roots[path] = etree.fromstring(self.files[path], _PARSER)
            except etree.XMLSyntaxError as exc:
                raise OfdAnnotationError(f"{path} is not well-formed XML: {exc}") from exc
        return self._roots[path]

    def pages(self) -> list[tuple[int, tuple[float, float, float, float]]]:
        """(ID, PhysicalBox) of every page, in order."""
        pages = self.document.find(n.q(n.PAGES))
        count = 0 if pages is None else len(pages.findall(n.q(n.PAGE)))
        if count == 0:
            raise OfdAnnotationError(f"{self.document_path} lists no page")
        try:
            return [self.package.page(index) for index in range(count)]
        except OfdSigningError as exc:
            raise OfdAnnotationError(str(exc)) from exc

    def max_id(self) -> int:
        """The largest ST_ID in use: MaxUnitID and every numeric ``ID`` attribute of the package's XML."""
        highest = _int(self.document.findtext(f"{n.q(n.COMMON_DATA)}/{n.q(n.MAX_UNIT_ID)}"))
        for name in list(self.files):
            if not name.lower().endswith(".xml"):
                continue
            try:
                root = self.xml(name)
            except OfdAnnotationError:
                continue
            for element in root.iter():
                if isinstance(element.tag, str):
                    highest = max(highest, _int(element.get("ID")))
        return highest

    # writing

    def changed(self, path: str, root: etree._Element) -> None:
        self._roots[path] = root
        if path not in self._dirty:
            self._dirty.append(path)

    def create(self, path: str, data: bytes) -> None:
        self.files[path] = data

    def free_path(self, path: str) -> str:
        """``path``, or ``stem_2.ext``, ``stem_3.ext`` … when it is taken (or about to be written)."""
        stem, ext = posixpath.splitext(path)
        number = 1
        while self.exists(path) or path in self._dirty:
            number += 1
            path = f"{stem}_{number}{ext}"
        return path

    def write(self) -> bytes:
        for path in self._dirty:
            self.files[path] = serialize_xml(self._roots[path])
        return write_package(self.files.items())


def _int(text: str | None) -> int:
    text = (text or "").strip()
    return int(text) if text.isdigit() else 0


def _insert_before(parent: etree._Element, child: etree._Element, following: Sequence[str]) -> None:
    """Insert ``child`` before the first child of ``parent`` named in ``following``, else append it."""
    names = {n.q(name) for name in following}
    for index, existing in enumerate(parent):
        if existing.tag in names:
            parent.insert(index, child)
            return
    parent.append(child)


def _element(parent: etree._Element, name: str, text: str | None = None, **attrs: str) -> etree._Element:
    child = etree.SubElement(parent, n.q(name), attrs)
    if text is not None:
        child.text = text
    return child


def _root(name: str) -> etree._Element:
    return etree.Element(n.q(name), nsmap=n.NSMAP)


def _num(value: float, places: int = 3) -> str:
    text = f"{value:.{places}f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


# --- the links: annotation list and font ------------------------------------------------------------------


def _annotation_list(target: _Target) -> str:
    """The package path of the document's annotation list, linked from Document.xml when there is none."""
    element = target.document.find(n.q(_ANNOTATIONS))
    if element is not None and (element.text or "").strip():
        try:
            return _resolve(target.doc_dir, element.text or "", "Document.xml Annotations")
        except OfdSigningError as exc:
            raise OfdAnnotationError(str(exc)) from exc
    if element is None:
        element = etree.Element(n.q(_ANNOTATIONS))
        _insert_before(target.document, element, _AFTER_ANNOTATIONS)
    path = target.free_path(posixpath.join(target.doc_dir, ANNOTATIONS_LOC))
    element.text = posixpath.relpath(path, target.doc_dir)
    target.changed(target.document_path, target.document)
    return path


def _resource_lists(target: _Target) -> list[tuple[str, str]]:
    """(CommonData child name, package path) of the document's resource lists."""
    common = target.document.find(n.q(n.COMMON_DATA))
    found = []
    for element in [] if common is None else common:
        name = etree.QName(element).localname if isinstance(element.tag, str) else ""
        if name in (n.PUBLIC_RES, n.DOCUMENT_RES) and (element.text or "").strip():
            try:
                found.append((name, _resolve(target.doc_dir, element.text or "", f"Document.xml {name}")))
            except OfdSigningError as exc:
                raise OfdAnnotationError(str(exc)) from exc
    return found


def _resource_base(path: str, res: etree._Element) -> str:
    base = posixpath.dirname(path)
    location = res.get(n.BASE_LOC)
    if location:
        try:
            return _resolve(base, location, f"{path} BaseLoc")
        except OfdSigningError as exc:
            raise OfdAnnotationError(str(exc)) from exc
    return base


def _add_font(target: _Target, font_id: int, family: str = fonts.FONT_FAMILY) -> str:
    """Declare font ``font_id`` (a face font ``family``, FontFile ``font_<id>.ttf``) in the document's first
    PublicRes — created and linked when the document has none; returns the font file's package path."""
    public = [path for name, path in _resource_lists(target) if name == n.PUBLIC_RES and target.exists(path)]
    if public:
        path = public[0]
        res = target.xml(path)
    else:
        common = target.document.find(n.q(n.COMMON_DATA))
        if common is None:
            raise OfdAnnotationError(f"{target.document_path} has no CommonData")
        path = target.free_path(posixpath.join(target.doc_dir, posixpath.basename(n.PUBLIC_RES_XML)))
        link = etree.Element(n.q(n.PUBLIC_RES))
        link.text = posixpath.relpath(path, target.doc_dir)
        _insert_before(common, link, _AFTER_PUBLIC_RES)
        target.changed(target.document_path, target.document)
        res = etree.Element(n.q(n.RES), {n.BASE_LOC: n.RES_DIR_NAME}, nsmap=n.NSMAP)
    base = _resource_base(path, res)
    fonts_element = res.find(n.q(n.FONTS))
    if fonts_element is None:
        fonts_element = etree.SubElement(res, n.q(n.FONTS))
    file_path = target.free_path(posixpath.join(base, f"font_{font_id}.ttf"))
    font = _element(fonts_element, n.FONT, ID=str(font_id), FontName=family, FamilyName=family)
    _element(font, n.FONT_FILE, posixpath.relpath(file_path, base))
    target.changed(path, res)
    return file_path


def _set_max_unit_id(target: _Target, value: int) -> None:
    """Raise MaxUnitID to ``value``."""
    element = target.document.find(f"{n.q(n.COMMON_DATA)}/{n.q(n.MAX_UNIT_ID)}")
    if element is None or _int(element.text) >= value:
        return
    element.text = str(value)
    target.changed(target.document_path, target.document)


# --- the watermark ---------------------------------------------------------------------------------------------


def _check_lines(lines: Sequence[str]) -> list[str]:
    if isinstance(lines, str) or not isinstance(lines, Sequence):
        raise OfdAnnotationError("lines must be a sequence of strings (one per line)")
    result = []
    for index, line in enumerate(lines):
        if not isinstance(line, str):
            raise OfdAnnotationError(f"line {index} must be a string, got {type(line).__name__}")
        text = line.strip()
        if not text:
            raise OfdAnnotationError(f"line {index} is empty")
        bad = next(
            (ch for ch in text if ch in _XML_ILLEGAL or unicodedata.category(ch) in ("Cc", "Cs")), None
        )
        if bad is not None:
            raise OfdAnnotationError(
                f"line {index} contains U+{ord(bad):04X}, which a text line cannot carry"
            )
        if len(text) > _MAX_LINE_LENGTH:
            raise OfdAnnotationError(f"line {index} is longer than {_MAX_LINE_LENGTH} characters")
        result.append(text)
    if not result:
        raise OfdAnnotationError("a watermark needs at least one line of text")
    if len(result) > _MAX_LINES:
        raise OfdAnnotationError(f"a watermark has at most {_MAX_LINES} lines, got {len(result)}")
    return result


def _check_style(size_mm: float, angle_deg: float, color: tuple[int, int, int], alpha: int) -> None:
    for name, value in (("size_mm", size_mm), ("angle_deg", angle_deg)):
        if not isinstance(value, int | float) or not math.isfinite(value):
            raise OfdAnnotationError(f"{name} must be a finite number, got {value!r}")
    if not 1.0 <= size_mm <= 50.0:
        raise OfdAnnotationError(f"size_mm must lie between 1 and 50 mm, got {size_mm}")
    if len(color) != 3 or not all(isinstance(c, int) and 0 <= c <= 255 for c in color):
        raise OfdAnnotationError(f"color must be three integers 0–255, got {color!r}")
    if not isinstance(alpha, int) or not 1 <= alpha <= 255:
        raise OfdAnnotationError(f"alpha must be an integer 1–255 (255 = opaque), got {alpha!r}")


def _check_parameters(parameters: Mapping[str, str]) -> list[tuple[str, str]]:
    items = []
    for name, value in parameters.items():
        for what, text in (("name", name), ("value", value)):
            if not isinstance(text, str) or any(
                ch in _XML_ILLEGAL or unicodedata.category(ch) == "Cs" for ch in text
            ):
                raise OfdAnnotationError(f"parameter {what} {text!r} must be a string XML can carry")
        if not name.strip():
            raise OfdAnnotationError("parameter names must not be empty")
        items.append((name, value))
    return items


class _Ids:
    def __init__(self, last: int) -> None:
        self.last = last

    def next(self) -> int:
        self.last += 1
        return self.last


def _tile_centres(
    box: tuple[float, float, float, float], tile_w: float, tile_h: float, size: float, cos: float, sin: float
) -> list[tuple[float, float]]:
    """Centres (relative to the page box's origin) of the tiles covering the page: a lattice along and across
    the rotated text, every other row shifted by half a step, keeping the centres that lie on the page."""
    _, _, width, height = box
    step_u = tile_w + _GAP_ALONG_EM * size
    step_v = tile_h + _GAP_ACROSS_EM * size
    corners = [(x - width / 2, y - height / 2) for x in (0, width) for y in (0, height)]
    us = [cos * x - sin * y for x, y in corners]
    vs = [sin * x + cos * y for x, y in corners]
    centres = []
    for row in range(math.floor(min(vs) / step_v) - 1, math.ceil(max(vs) / step_v) + 2):
        v = row * step_v
        shift = step_u / 2 if row % 2 else 0.0
        for column in range(math.floor(min(us) / step_u) - 1, math.ceil(max(us) / step_u) + 2):
            u = column * step_u + shift
            x = width / 2 + cos * u + sin * v
            y = height / 2 - sin * u + cos * v
            if 0 <= x <= width and 0 <= y <= height:
                centres.append((x, y))
    if not centres:  # a tile larger than the page: one in the middle
        centres.append((width / 2, height / 2))
    return centres


def _appearance(
    annot: etree._Element,
    *,
    box: tuple[float, float, float, float],
    lines: Sequence[str],
    programs: Mapping[int, _FontProgram],
    font_ids: Mapping[int, int],
    size: float,
    angle_deg: float,
    color: tuple[int, int, int],
    alpha: int,
    ids: _Ids,
) -> None:
    """The Appearance (the whole page box) with one rotated TextObject per line of every tile — per run of a
    line in one face font, when rare characters need the fallback font (the runs of a line share its Boundary
    and CTM; each run's TextCode X is where it starts on the line).

    Each TextObject's object space has the line's first baseline point at the origin (TextCode X=Y=0, DeltaX
    the embedded font's advances); its CTM rotates that space by ``angle_deg`` (counter-clockwise as seen) and
    moves it to its place in the tile, and its Boundary is the rotated box of the glyphs, so nothing is clipped.
    """
    appearance = _element(annot, _APPEARANCE, Boundary=" ".join(_num(v) for v in box))
    theta = math.radians(angle_deg)
    cos, sin = math.cos(theta), math.sin(theta)
    runs = [fonts.font_runs(line) for line in lines]
    advances = [[programs[font].advances[ch] * size for font, run in line for ch in run] for line in runs]
    widths = [sum(a) for a in advances]
    pitch = _LINE_PITCH_EM * size
    tile_w, tile_h = max(widths), pitch * len(lines)
    main = programs[min(programs)]
    ascent = max(p.ascent for p in programs.values())
    descent = max(p.descent for p in programs.values())
    # baseline inside a line slot: the glyph body (ascent above, descent below) centred in the slot
    baseline = pitch / 2 + (main.ascent - main.descent) / 2 * size
    pad = _PAD_EM * size
    glyph_top, glyph_bottom = -ascent * size - pad, descent * size + pad
    matrix = " ".join(_num(v, 6) for v in (cos, -sin, sin, cos))
    fill = " ".join(str(c) for c in color)

    def place(x: float, y: float) -> tuple[float, float]:
        return cos * x + sin * y, -sin * x + cos * y

    for cx, cy in _tile_centres(box, tile_w, tile_h, size, cos, sin):
        for index, (line_runs, line_advances, width) in enumerate(zip(runs, advances, widths, strict=True)):
            origin = (-width / 2, -tile_h / 2 + index * pitch + baseline)  # in the tile, unrotated
            corners = [
                place(origin[0] + x, origin[1] + y)
                for x in (-pad, width + pad)
                for y in (glyph_top, glyph_bottom)
            ]
            left = cx + min(x for x, _ in corners)
            top = cy + min(y for _, y in corners)
            right = cx + max(x for x, _ in corners)
            bottom = cy + max(y for _, y in corners)
            moved = place(*origin)
            positions = [0.0]
            for advance in line_advances[:-1]:
                positions.append(positions[-1] + advance)
            rounded = [round(p, 3) for p in positions]
            first = 0
            for font, run in line_runs:
                text_object = _element(
                    appearance,
                    n.TEXT_OBJECT,
                    ID=str(ids.next()),
                    Boundary=" ".join(_num(v) for v in (left, top, right - left, bottom - top)),
                    Font=str(font_ids[font]),
                    Size=_num(size),
                    CTM=f"{matrix} {_num(cx + moved[0] - left)} {_num(cy + moved[1] - top)}",
                    Alpha=str(alpha),
                )
                _element(text_object, n.FILL_COLOR, Value=fill)
                code = {"X": _num(rounded[first]), "Y": "0"}
                if len(run) > 1:
                    mine = rounded[first : first + len(run)]
                    code["DeltaX"] = " ".join(_num(b - a) for a, b in pairwise(mine))
                _element(text_object, n.TEXT_CODE, run, **code)
                first += len(run)


def add_watermark(
    package: bytes,
    *,
    lines: Sequence[str],
    size_mm: float = 4.2,
    angle_deg: float = 30.0,
    color: tuple[int, int, int] = (110, 110, 110),
    alpha: int = 90,
    modified: date | None = None,
    parameters: Mapping[str, str] | None = None,
) -> bytes:
    """Add a ``Type="Watermark"`` annotation showing ``lines`` to every page of ``package``; returns the package.

    The lines (centred on each other) form a tile that is rotated by ``angle_deg`` (counter-clockwise as seen)
    and repeated over the page; ``size_mm`` is the text's em size, ``color`` its RGB fill and ``alpha`` its
    opacity (0–255). ``modified`` is the annotation's LastModDate (default: today, UTC); ``parameters`` become
    ``Parameter`` elements of the annotation. Document.xml (annotation list link, MaxUnitID) and PublicRes.xml
    (the watermark font) are edited, so the package must be unsigned: seal it afterwards.

    Raises :class:`OfdAnnotationError` for unusable lines or style, a character the face font cannot draw, or a
    package that already lists signatures.
    """
    text_lines = _check_lines(lines)
    _check_style(size_mm, angle_deg, color, alpha)
    parameter_items = _check_parameters(parameters or {})
    day = modified if modified is not None else datetime.now(UTC).date()
    try:
        programs = _font_programs("".join(sorted(set("".join(text_lines)))))
    except OfdBuildError as exc:
        raise OfdAnnotationError(str(exc)) from exc

    target = _Target(package)
    pages = target.pages()
    list_path = _annotation_list(target)
    listing = target.xml(list_path) if target.exists(list_path) else _root(_ANNOTATIONS)
    ids = _Ids(target.max_id())
    font_ids = {number: ids.next() for number in programs}
    for number, program in programs.items():
        target.create(_add_font(target, font_ids[number], program.name), program.data)

    list_dir = posixpath.dirname(list_path)
    for index, (page_id, box) in enumerate(pages):
        entry = next((p for p in listing.findall(n.q(n.PAGE)) if p.get("PageID") == str(page_id)), None)
        page_path = None
        if entry is not None and (location := entry.findtext(n.q(n.FILE_LOC))):
            try:
                page_path = _resolve(list_dir, location, f"{list_path} FileLoc")
            except OfdSigningError as exc:
                raise OfdAnnotationError(str(exc)) from exc
        if page_path is not None and target.exists(page_path):
            page_annot = target.xml(page_path)
        else:
            if page_path is None:
                page_path = target.free_path(posixpath.join(list_dir, f"Page_{index}", _PAGE_ANNOT_FILE))
                if entry is None:
                    entry = _element(listing, n.PAGE, PageID=str(page_id))
                for old in entry.findall(n.q(n.FILE_LOC)):
                    entry.remove(old)
                _element(entry, n.FILE_LOC, posixpath.relpath(page_path, list_dir))
            page_annot = _root(_PAGE_ANNOT)
        annot = _element(
            page_annot,
            _ANNOT,
            ID=str(ids.next()),
            Type=ANNOT_TYPE_WATERMARK,
            Creator=n.CREATOR_NAME,
            LastModDate=day.isoformat(),
            ReadOnly="true",
            Print="true",
        )
        _element(annot, _REMARK, "\n".join(text_lines))
        if parameter_items:
            listed = _element(annot, _PARAMETERS)
            for name, value in parameter_items:
                _element(listed, _PARAMETER, value, Name=name)
        _appearance(
            annot,
            box=box,
            lines=text_lines,
            programs=programs,
            font_ids=font_ids,
            size=float(size_mm),
            angle_deg=float(angle_deg),
            color=color,
            alpha=alpha,
            ids=ids,
        )
        target.changed(page_path, page_annot)
    target.changed(list_path, listing)
    _set_max_unit_id(target, ids.last)
    return target.write()
