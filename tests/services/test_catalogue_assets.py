"""Uploaded base images (底图): what the upload accepts and turns into a stored PNG, what it refuses (hostile files
included) before decoding them, and how an entry naming ``asset:<digest>`` gets its bytes — on both databases."""

from __future__ import annotations

import io
import struct
import zlib

import pytest
from PIL import Image

from certstore.access import AccessDeniedError, Principal, Role
from certstore.crypto.sm3 import sm3_hex
from certstore.services.catalogue import get_entry, get_submission, submit_entry
from certstore.services.catalogue_assets import AssetError, asset_digest, check_image, store_asset
from certstore.store.repository import Repository
from tests.support import catalogue_entries as ce

AGENCY = Principal(7, "li.si", Role.AGENCY, ce.ISSUER["credit_code"], ce.ISSUER["name"])
WINDOW = Principal(8, "zhang.san", Role.WINDOW, "12410100MB0000001X", "郑州市政务服务中心")


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _bomb(width: int, height: int) -> bytes:
    """A PNG header announcing ``width`` × ``height`` pixels, with 300 dpi and a few bytes of data."""
    header = _png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
    phys = _png_chunk(b"pHYs", struct.pack(">IIB", 11811, 11811, 1))
    data = _png_chunk(b"IDAT", zlib.compress(b"\0" * 1024))
    return b"\x89PNG\r\n\x1a\n" + header + phys + data + _png_chunk(b"IEND", b"")


def test_a_png_is_checked_and_stored_as_an_opaque_png_with_its_resolution() -> None:
    """An RGB PNG at 150 dpi passes; what is stored is a re-encoded PNG of the same size and resolution."""
    checked = check_image(ce.base_image_png())
    assert (checked.width_px, checked.height_px, checked.dpi) == (1240, 1754, 150)
    assert round(checked.width_mm) == 210 and round(checked.height_mm) == 297
    with Image.open(io.BytesIO(checked.png)) as image:
        assert image.format == "PNG" and image.mode == "RGB" and round(image.info["dpi"][0]) == 150


def test_an_svg_is_rasterised_at_its_size_in_millimetres() -> None:
    """An SVG with width/height in mm becomes a 200-dpi PNG of that page (resvg), on white."""
    checked = check_image(ce.BASE_IMAGE_SVG)
    assert checked.source_type == "image/svg+xml" and checked.dpi == 200
    assert abs(checked.width_mm - 210) < 0.5 and abs(checked.height_mm - 297) < 0.5
    with Image.open(io.BytesIO(checked.png)) as image:
        assert image.mode == "RGB"
        assert image.getpixel((5, 5)) == (250, 246, 236)  # the page colour, not transparent black


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"GIF89a not what we take", "neither a PNG nor an SVG"),
        (b"\x89PNG\r\n\x1a\n" + b"\0" * 40, "not a readable PNG"),
        (ce.base_image_png(dpi=100), "at least 150 dpi"),
        (ce.base_image_png(size_mm=(60, 60)), "between 90 and 450 mm"),
        (ce.base_image_png(mode="RGBA"), None),  # fully opaque RGBA: accepted, flattened to RGB
        (ce.base_image_png(mode="I;16"), "colour mode"),
        (_bomb(60000, 60000), "at most 8000 pixels a side"),
        (_bomb(7000, 7000), "30,000,000 in all"),
        (b"x" * (8 * 1024 * 1024 + 1), "at most 8,388,608"),
    ],
    ids=["gif", "truncated", "low-dpi", "tiny-page", "opaque-rgba", "16-bit", "huge-side", "bomb", "too-big"],
)
def test_raster_uploads_are_refused_with_the_reason(data: bytes, reason: str | None) -> None:
    """Non-images, low resolutions, odd pages, 16-bit, and decompression bombs (refused from the header, never
    inflated) are refused, each with its reason in English and Chinese."""
    if reason is None:
        assert check_image(data).png
        return
    with pytest.raises(AssetError, match=reason) as refused:
        check_image(data)
    assert refused.value.reason_zh


def test_transparency_is_refused() -> None:
    """A base image with see-through pixels (alpha, or a palette's transparent colour) is refused."""
    image = Image.new("RGBA", (1240, 1754), (255, 255, 255, 255))
    image.putpixel((10, 10), (255, 255, 255, 0))
    out = io.BytesIO()
    image.save(out, "PNG", dpi=(150, 150))
    with pytest.raises(AssetError, match="transparent"):
        check_image(out.getvalue())
    palette = Image.new("P", (1240, 1754), 0)
    out = io.BytesIO()
    palette.save(out, "PNG", dpi=(150, 150), transparency=0)
    with pytest.raises(AssetError, match="transparent"):
        check_image(out.getvalue())


@pytest.mark.parametrize(
    ("svg", "reason"),
    [
        (b'<!DOCTYPE svg [<!ENTITY x "y">]><svg xmlns="http://www.w3.org/2000/svg" width="210mm" height="297mm"/>',
         "DOCTYPE"),
        (b'<svg xmlns="http://www.w3.org/2000/svg" width="210mm" height="297mm"><script>alert(1)</script></svg>',
         "<script>"),
        (b'<svg xmlns="http://www.w3.org/2000/svg" xmlns:x="http://www.w3.org/1999/xlink" width="210mm" '
         b'height="297mm"><use x:href="file:///etc/passwd#a"/></svg>', "refers to"),
        (b'<svg xmlns="http://www.w3.org/2000/svg" width="210mm" height="297mm"><rect fill="url(http://e.x/p)" '
         b'width="1" height="1"/></svg>', "external url"),
        (b'<svg xmlns="http://www.w3.org/2000/svg" width="210mm" height="297mm"><style>@import "http://e.x/s.css";'
         b"</style></svg>", "style sheet"),
        (b'<svg xmlns="http://www.w3.org/2000/svg" width="100%" height="297mm"/>', "absolute width"),
        (b"<svg", "well-formed"),
    ],
    ids=["doctype", "script", "external-use", "external-url", "style-import", "relative-size", "broken"],
)  # fmt: skip
def test_hostile_svgs_are_refused(svg: bytes, reason: str) -> None:
    """DTDs and entities, scripts, references outside the document and relative sizes are refused before any
    rendering."""
    with pytest.raises(AssetError, match=reason):
        check_image(svg)


def test_assets_are_stored_once_and_entries_carry_their_bytes(repo: Repository) -> None:
    """An upload is stored under the SM3 of the stored PNG, once; an entry naming ``asset:<digest>`` comes back
    from the repository with ``base_image_data`` set; only agencies and the bureau upload."""
    asset, created = store_asset(repo, ce.base_image_png(), principal=AGENCY)
    again, created_again = store_asset(repo, ce.base_image_png(), principal=AGENCY)
    assert created and not created_again and again == asset
    assert asset.name == f"asset:{asset.digest}" and asset_digest(asset.name) == asset.digest
    assert asset.issuer_code == AGENCY.organisation_code and asset.size > 0
    with pytest.raises(AccessDeniedError):
        store_asset(repo, ce.base_image_png(), principal=WINDOW)

    document = ce.entry_document(base_image=asset.name)
    document["face_template"] = ce.template()
    submitted, _ = submit_entry(repo, document, principal=AGENCY)
    data = submitted.entry.base_image_data
    assert data is not None and sm3_hex(data) == asset.digest
    assert get_submission(repo, ce.CODE, 1).entry.base_image_data == data
    with pytest.raises(LookupError):
        get_entry(repo, ce.CODE)  # pending: not yet for issuance
