"""Edits and readings of existing OFD packages that a new document made from one needs (a copy, 副本, is made from
the stored original): the OFD work of :mod:`certstore.services.copies`, which keeps only the use case.

* :func:`add_custom_datas` — append CustomData entries to OFD.xml's DocInfo of an *unsigned* package.
* :func:`seal_stamps` — where the seal signatures of a package show their seal pictures on a page (StampAnnot
  boundary + the picture of the seal inside the SES_Signature), and :func:`stamp_image` to draw one of them as an
  ordinary image (a picture, not a signature).
* :func:`differing_files` — the files of a package built again that are not in the original as they are
  (OFD.xml and font programs aside; images compared by their pixels).
* :func:`place_stamp` — a box for one more stamp on a page, clear of the stamps already there.
* :func:`in_custom_data_order` — metadata in the order a package carries its CustomData.

Errors that concern the package are :class:`OfdEditError` (a ``ValueError``); an unreadable package part raises
the reader's :class:`~certstore.packaging.ofd.reader.OfdFormatError`.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from lxml import etree
from PIL import Image, UnidentifiedImageError

from certstore.packaging.layout import Box, ImageItem
from certstore.seal import SealFormatError, SealPicture, parse_seal_signature

from . import names as n
from .reader import OfdPackage
from .writer import read_package, serialize_xml, write_package

__all__ = [
    "OfdEditError",
    "PageStamp",
    "add_custom_datas",
    "differing_files",
    "in_custom_data_order",
    "place_stamp",
    "seal_stamps",
    "stamp_image",
]

_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".bmp")
_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)


class OfdEditError(ValueError):
    """The package cannot be edited or read as asked (no DocInfo, a seal picture no page can show, no room for
    a stamp)."""


# --- OFD.xml -------------------------------------------------------------------------------------------------


def add_custom_datas(package: bytes, items: Mapping[str, str]) -> bytes:
    """``package`` (unsigned: a signature protecting OFD.xml would break) with ``items`` appended to OFD.xml's
    ``DocInfo/CustomDatas``, in the order given; every other file keeps its bytes."""
    files = read_package(package)
    root = etree.fromstring(files[n.OFD_XML], _PARSER)
    info = root.find(f"{n.q(n.DOC_BODY)}/{n.q(n.DOC_INFO)}")
    if info is None:
        raise OfdEditError("OFD.xml has no DocInfo")
    datas = info.find(n.q(n.CUSTOM_DATAS))
    if datas is None:
        datas = etree.SubElement(info, n.q(n.CUSTOM_DATAS))  # the last child of DocInfo in the schema
    for name, value in items.items():
        etree.SubElement(datas, n.q(n.CUSTOM_DATA), Name=name).text = value
    files[n.OFD_XML] = serialize_xml(root)
    return write_package(files.items())


def in_custom_data_order(metadata: Mapping[str, object], package: OfdPackage) -> dict[str, str]:
    """``metadata`` as text, in the order ``package`` carries its CustomData; names it lacks follow in
    ``metadata``'s order."""
    order = {name: index for index, name in enumerate(package.doc_info.custom_datas)}
    names = sorted(metadata, key=lambda name: order.get(name, len(order)))
    return {name: str(metadata[name]) for name in names}


# --- Seal pictures on a page --------------------------------------------------------------------------------


@dataclass(frozen=True)
class PageStamp:
    """A seal a package shows on a page: where (its StampAnnot's Boundary, mm) and the seal's picture."""

    box: Box
    picture: SealPicture


def _parse_box(text: str | None) -> Box | None:
    try:
        values = [float(v) for v in (text or "").split()]
    except ValueError:
        return None
    return Box(*values) if len(values) == 4 and values[2] > 0 and values[3] > 0 else None


def seal_stamps(package: OfdPackage, *, page: int = 0) -> list[PageStamp]:
    """Every seal picture the seal signatures of the first document place on page ``page`` (0-based), in
    signature order. Signatures that are not readable seal signatures (or Type="Sign") place none."""
    document = package.documents[0]
    root = package.parse_xml(document.root_path)
    pages = root.findall(f"{n.q(n.PAGES)}/{n.q(n.PAGE)}")
    page_id = pages[page].get("ID") if 0 <= page < len(pages) else None
    stamps = []
    for signature in document.signatures:
        if signature.signed_value is None or signature.signed_info is None:
            continue
        try:
            picture = parse_seal_signature(signature.signed_value).seal.picture
        except SealFormatError:
            continue
        for annot in signature.signed_info.stamp_annots:
            box = _parse_box(annot.boundary)
            if page_id is not None and annot.page_ref == page_id and box is not None:
                stamps.append(PageStamp(box, picture))
    return stamps


def stamp_image(stamp: PageStamp, role: str) -> ImageItem:
    """The stamp's seal picture as an image item of layout role ``role`` at the stamp's box."""
    data = stamp.picture.data
    for media_type, (_, _, magics) in n.IMAGE_FORMATS.items():
        if data.startswith(magics):
            return ImageItem(role, data, media_type, stamp.box)
    raise OfdEditError(
        f"the seal picture is {stamp.picture.type!r}, which a page cannot show as an image "
        f"(one of {', '.join(sorted(n.IMAGE_FORMATS))})"
    )


def _overlaps(a: Box, b: Box, gap: float) -> bool:
    return not (
        a.x + a.w + gap <= b.x or b.x + b.w + gap <= a.x or a.y + a.h + gap <= b.y or b.y + b.h + gap <= a.y
    )


def place_stamp(
    page: Box, stamps: Sequence[Box], width: float, height: float, *, gap: float = 3.0, margin: float = 8.0
) -> Box:
    """Where a ``width`` × ``height`` stamp goes on ``page``: left of the bottom-right-most of ``stamps`` (bottom
    edges aligned), else above it, else the page's bottom-right corner — the first that stays ``margin`` inside
    the page and ``gap`` clear of every stamp. :class:`OfdEditError` when none does."""
    corner = Box(page.x + page.w - margin - width, page.y + page.h - margin - height, width, height)
    candidates = []
    if stamps:
        last = max(stamps, key=lambda b: (b.x + b.w) + (b.y + b.h))
        candidates += [
            Box(last.x - gap - width, last.y + last.h - height, width, height),
            Box(last.x + last.w - width, last.y - gap - height, width, height),
        ]
    candidates.append(corner)
    for box in candidates:
        on_page = (
            box.x >= page.x + margin
            and box.y >= page.y + margin
            and box.x + box.w <= page.x + page.w - margin
            and box.y + box.h <= page.y + page.h - margin
        )
        if on_page and not any(_overlaps(box, stamp, gap) for stamp in stamps):
            return box
    raise OfdEditError("the page has no room for the stamp clear of the seals already on it")


# --- Comparing packages ---------------------------------------------------------------------------------------


def _same_pixels(first: bytes, second: bytes) -> bool:
    try:
        with Image.open(io.BytesIO(first)) as a, Image.open(io.BytesIO(second)) as b:
            return (a.mode, a.size) == (b.mode, b.size) and a.tobytes() == b.tobytes()
    except (UnidentifiedImageError, OSError, ValueError):
        return False


def differing_files(original: bytes, rebuilt: bytes) -> list[str]:
    """The files of ``rebuilt`` (a package) that ``original`` does not hold as they are, in ``rebuilt``'s order.

    OFD.xml is left aside (a seal links its signature list there; compare metadata through ``metadata.xml``),
    and so are font programs (the page content pins their advances; the subset program's bytes may differ
    between fontTools releases); images whose bytes differ are compared by their pixels (PNG encoders differ)."""
    stored = read_package(original)
    differing = []
    for path, data in read_package(rebuilt).items():
        theirs = stored.get(path)
        if path == n.OFD_XML or path.lower().endswith(".ttf") or theirs == data:
            continue
        if theirs is not None and path.lower().endswith(_IMAGE_SUFFIXES) and _same_pixels(theirs, data):
            continue
        differing.append(path)
    return differing
