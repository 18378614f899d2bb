"""The base image as embedded in files (:mod:`certstore.packaging.base_image`): a smaller indexed PNG that no
eye can tell from the catalogue's, on every shipped type; images it cannot make smaller within the tolerance
are embedded as given."""

from __future__ import annotations

import dataclasses
import io

import pytest
from PIL import Image, ImageChops, ImageDraw, ImageStat

from certstore.catalogue import CatalogueEntry, base_image_path, shipped_entries
from certstore.packaging.base_image import EMBED_TOLERANCE, embedded_base_image
from certstore.packaging.face import lay_out_face, page_frame
from certstore.packaging.layout import FaceData
from certstore.packaging.preview import render_image
from certstore.records import example_draft, prepare_version

ENTRIES = [entry for entry in shipped_entries() if entry.base_image]


def _rgb(data: bytes) -> Image.Image:
    with Image.open(io.BytesIO(data)) as image:
        return image.convert("RGB")


def _png(image: Image.Image, **options: object) -> bytes:
    out = io.BytesIO()
    image.save(out, format="PNG", **options)
    return out.getvalue()


@pytest.mark.parametrize("entry", ENTRIES, ids=lambda e: e.base_image)
def test_shipped_base_images_get_lighter_and_look_the_same(entry: CatalogueEntry) -> None:
    """Every shipped base image: smaller, indexed at 4 bits a pixel, same size and resolution, no pixel
    further than the tolerance from the catalogue's and on average a small fraction of one level."""
    path = base_image_path(entry)
    assert path is not None
    original = path.read_bytes()
    embedded = embedded_base_image(original)
    assert len(embedded) < 0.8 * len(original)
    with Image.open(io.BytesIO(embedded)) as image:
        assert image.mode == "P" and len(image.getpalette() or []) // 3 <= 16
        assert image.size == _rgb(original).size
        assert round(image.info["dpi"][0]) == 150
        assert "certstore-layout" not in image.info  # the geometry is read from the catalogue's file
    difference = ImageChops.difference(_rgb(original), _rgb(embedded))
    assert max(high for _low, high in difference.getextrema()) <= EMBED_TOLERANCE  # type: ignore[union-attr]
    assert max(ImageStat.Stat(difference).mean) < 0.25
    assert page_frame(entry).image == embedded


def test_the_rendered_face_is_the_same() -> None:
    """The densest type's face drawn at 150 dpi with the catalogue's base image and with the embedded one: no
    pixel differs by more than the tolerance."""
    entry = next(e for e in ENTRIES if e.base_image == "construction-permit.png")
    prepared = prepare_version(
        entry,
        example_draft(entry),
        version=1,
        holder_key=b"h" * 32,
        serial_key=b"s" * 32,
    )
    layout = lay_out_face(FaceData.from_prepared(prepared))
    path = base_image_path(entry)
    assert path is not None
    images = tuple(
        dataclasses.replace(item, data=path.read_bytes()) if item.role == "base_image" else item
        for item in layout.images
    )
    assert images != layout.images
    with_catalogue_image = render_image(dataclasses.replace(layout, images=images), dpi=150)
    with_embedded_image = render_image(layout, dpi=150)
    difference = ImageChops.difference(with_catalogue_image, with_embedded_image.convert("RGB"))
    assert max(high for _low, high in difference.getextrema()) <= EMBED_TOLERANCE  # type: ignore[union-attr]


def test_images_it_cannot_improve_are_embedded_as_given() -> None:
    """Transparency, more than 256 colours, non-PNG and unreadable data: the bytes come back unchanged. An image
    whose colours are all further apart than the tolerance keeps every pixel (at most re-compressed)."""
    gradient = Image.new("RGB", (64, 64))
    gradient.putdata([(x * 4, y * 4, (x + y) * 2) for y in range(64) for x in range(64)])
    transparent = Image.new("RGBA", (8, 8), (255, 0, 0, 0))
    distinct = Image.new("P", (32, 32))
    distinct.putpalette([0, 0, 0, 255, 255, 255])
    ImageDraw.Draw(distinct).rectangle((8, 8, 23, 23), fill=1)
    cases = [
        _png(gradient),
        _png(transparent),
        b"\x89PNG not really",
        _rgb(_png(distinct)).tobytes()[:64],
    ]
    jpeg = io.BytesIO()
    gradient.save(jpeg, format="JPEG")
    cases.append(jpeg.getvalue())
    for data in cases:
        assert embedded_base_image(data) == data
    given = _png(distinct, optimize=True, bits=1)
    kept = embedded_base_image(given)
    assert len(kept) <= len(given)
    assert _rgb(kept).tobytes() == _rgb(given).tobytes()
