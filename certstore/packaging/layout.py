"""The face (照面) as positioned objects: the one model every rendition draws from.

:class:`FaceLayout` is produced once per certificate version (``certstore.packaging.face.lay_out_face``) and
consumed by the OFD writer (text objects and image objects on a page), the PDF rendition and the PNG preview,
so the three always show the same thing. Coordinates are millimetres from the top-left corner of the page,
as in OFD (GB/T 33190 uses mm and a top-left origin); the PDF writer converts.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum
from typing import Any

from certstore.catalogue import CatalogueEntry
from certstore.packaging.fonts import FONT_FAMILY, FONT_PATH
from certstore.records import Certificate, Holder, PreparedVersion

__all__ = ["Align", "Box", "FaceData", "FaceLayout", "ImageItem", "TextItem"]


@dataclass(frozen=True)
class FaceData:
    """Everything printed on a face: the catalogue entry (layout, base image, field labels) and the values."""

    entry: CatalogueEntry
    identifier: str
    certificate_number: str
    holder: Holder
    issue_date: date
    valid_from: date
    valid_until: date | None  # None: 长期
    face: Mapping[str, Any]
    metadata: Mapping[str, Any]

    @classmethod
    def from_prepared(cls, prepared: PreparedVersion) -> FaceData:
        """For a version being issued (the file is made before the row is stored)."""
        draft = prepared.draft
        return cls(
            entry=prepared.entry,
            identifier=str(prepared.identifier),
            certificate_number=draft.certificate_number,
            holder=Holder(draft.holder.name, draft.holder.id_type, prepared.holder_id),
            issue_date=draft.issue_date,
            valid_from=prepared.valid_from,
            valid_until=prepared.valid_until,
            face=prepared.face,
            metadata=prepared.metadata,
        )

    @classmethod
    def from_certificate(cls, certificate: Certificate, entry: CatalogueEntry) -> FaceData:
        """For a stored version (previews, copies)."""
        return cls(
            entry=entry,
            identifier=certificate.identifier,
            certificate_number=certificate.certificate_number,
            holder=certificate.holder,
            issue_date=certificate.issue_date,
            valid_from=certificate.valid_from,
            valid_until=certificate.valid_until,
            face=certificate.face,
            metadata=certificate.metadata,
        )


@dataclass(frozen=True)
class Box:
    """A rectangle in mm: left, top, width, height (OFD's ``Boundary="x y w h"``)."""

    x: float
    y: float
    w: float
    h: float

    def as_ofd(self) -> str:
        return " ".join(f"{v:.3f}".rstrip("0").rstrip(".") for v in (self.x, self.y, self.w, self.h))


class Align(StrEnum):
    LEFT = "left"
    CENTER = "center"
    RIGHT = "right"


@dataclass(frozen=True)
class TextItem:
    """One line of text. ``box`` is the line's box; the baseline sits at ``box.y + 0.8 * size_mm``.

    ``role`` names what the text is (``title``, ``label:<field>``, ``value:<field>``, ``number``, ``issuer``,
    ``date``, ``identifier``) so readers of the file (and tests) can find a field's text again. A value
    wrapped over several lines is several items with the same role (:meth:`FaceLayout.text_of` joins them).

    ``letter_spacing_mm`` is extra space after every character but the last (OFD ``DeltaX``, PDF ``Tc``);
    titles and short labels use it. Items made by ``lay_out_face`` have ``box.x`` at the first glyph and
    ``box.w`` equal to the measured width (``certstore.packaging.fonts.text_width_mm``), whatever ``align``
    says, so a writer may place every line at ``box.x`` without measuring."""

    text: str
    box: Box
    size_mm: float
    role: str
    align: Align = Align.LEFT
    bold: bool = False
    color: tuple[int, int, int] = (0, 0, 0)
    letter_spacing_mm: float = 0.0

    @property
    def baseline_y(self) -> float:
        return self.box.y + 0.8 * self.size_mm


@dataclass(frozen=True)
class ImageItem:
    """A raster placed on the page: base image (底图), QR code, seal picture."""

    role: str  # "base_image" | "qr_code" | "seal"
    data: bytes
    media_type: str  # "image/png" | "image/jpeg"
    box: Box


@dataclass(frozen=True)
class FaceLayout:
    """One page: size, background, texts and images in painting order, and where the seal goes."""

    width_mm: float
    height_mm: float
    texts: tuple[TextItem, ...]
    images: tuple[ImageItem, ...] = ()
    seal_box: Box | None = None  # where the issuer's seal is stamped (StampAnnot / PDF widget)
    font_family: str = FONT_FAMILY
    font_path: str = str(FONT_PATH)  # a TrueType collection: embed certstore.packaging.fonts.subset_font()
    title: str = ""
    extras: dict[str, str] = field(default_factory=dict)

    def text_for(self, role: str) -> str | None:
        """The text of the first item with ``role`` (e.g. ``value:project_name``)."""
        return next((t.text for t in self.texts if t.role == role), None)

    def items_for(self, role: str) -> tuple[TextItem, ...]:
        """Every text item with ``role``, in painting order (the lines of a wrapped value, top to bottom)."""
        return tuple(t for t in self.texts if t.role == role)

    def text_of(self, role: str) -> str | None:
        """The whole text of ``role``: its lines joined (wrapping never drops a character), or None."""
        items = self.items_for(role)
        return "".join(t.text for t in items) if items else None

    def characters(self) -> str:
        """Every character drawn, for font subsetting."""
        return "".join(sorted({ch for t in self.texts for ch in t.text}))
