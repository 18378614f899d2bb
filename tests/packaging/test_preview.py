"""PNG previews of the face: page size at the dpi, text where the layout puts it, QR code, seal multiplied."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image

from certstore.catalogue import CatalogueEntry
from certstore.packaging.layout import Box, FaceLayout
from certstore.packaging.preview import render_image, render_preview, thumbnail
from certstore.packaging.seal_picture import render_seal_picture
from tests.packaging.test_face import ENTRIES, ENTRY_IDS, example_layout, needs_zbar, zbar_decode

DPI = 110


@pytest.fixture(scope="module")
def preview_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the previews of the six example certificates are saved, to be looked at (run with ``-s``)."""
    path = tmp_path_factory.mktemp("face-previews")
    print(f"\nface previews: {path}")
    return path


def seal_png(entry: CatalogueEntry) -> bytes:
    return render_seal_picture(f"{entry.issuer.name}电子证照专用章", diameter_mm=42).data


def pixels(image: Image.Image, box: Box, dpi: float = DPI) -> list[tuple[int, int, int]]:
    scale = dpi / 25.4
    crop = image.crop(
        (
            round(box.x * scale),
            round(box.y * scale),
            round((box.x + box.w) * scale),
            round((box.y + box.h) * scale),
        )
    )
    return list(crop.convert("RGB").get_flattened_data())


def dark_share(image: Image.Image, box: Box, dpi: float = DPI) -> float:
    values = pixels(image, box, dpi)
    return sum(1 for r, g, b in values if r + g + b < 300) / max(len(values), 1)


def _sampled_values(layout: FaceLayout) -> list[Box]:
    values = [t for t in layout.texts if t.role.startswith("value:")]
    return [values[0].box, values[len(values) // 2].box, values[-1].box]


@pytest.mark.parametrize("entry", ENTRIES, ids=ENTRY_IDS)
def test_preview_shows_the_face(entry: CatalogueEntry, preview_dir: Path) -> None:
    layout = example_layout(entry.code)
    png = render_preview(layout, dpi=DPI, seal_picture=seal_png(entry))
    (preview_dir / f"{Path(entry.base_image or entry.code).stem}.png").write_bytes(png)
    image = Image.open(io.BytesIO(png))
    assert image.format == "PNG"
    assert image.size == (round(layout.width_mm / 25.4 * DPI), round(layout.height_mm / 25.4 * DPI))
    assert round(image.info["dpi"][0]) == DPI
    for box in _sampled_values(layout):
        assert dark_share(image, box) > 0.08, box  # dark text where the values are
    gap = layout.items_for("title")[0].box
    between = Box(gap.x, gap.y + gap.h + 1.0, gap.w, 2.0)  # just under the title: blank page
    assert dark_share(image, between) == 0
    title = pixels(image, layout.items_for("title")[0].box)
    assert sum(1 for r, g, b in title if r > 120 and g < 80 and b < 80) / len(title) > 0.1  # red title


def test_seal_is_multiplied_over_the_text() -> None:
    entry = ENTRIES[0]
    layout = example_layout(entry.code)
    plain = render_image(layout, dpi=DPI)
    sealed = render_image(layout, dpi=DPI, seal_picture=seal_png(entry))
    seal = layout.seal_box
    assert seal is not None
    red = [p for p in pixels(sealed, seal) if p[0] > 170 and p[1] < 90 and p[2] < 90]
    assert len(red) > 0.08 * len(pixels(sealed, seal))
    issuer = layout.items_for("issuer")[0].box
    assert dark_share(sealed, issuer) >= dark_share(plain, issuer) > 0.08  # text stays dark under the seal
    outside = Box(seal.x - 30, seal.y - 30, 25, 25)
    assert pixels(sealed, outside) == pixels(plain, outside)  # only the seal box changes
    assert plain.tobytes() != sealed.tobytes()


def test_output_is_deterministic() -> None:
    entry = ENTRIES[5]
    layout = example_layout(entry.code)
    seal = seal_png(entry)
    assert render_preview(layout, seal_picture=seal) == render_preview(layout, seal_picture=seal)
    assert thumbnail(layout) == thumbnail(layout)


@needs_zbar
def test_qr_code_in_the_preview_decodes(tmp_path: Path) -> None:
    layout = example_layout(ENTRIES[3].code)
    assert zbar_decode(render_preview(layout, dpi=150), tmp_path) == layout.extras["verify_url"]


@pytest.mark.parametrize(
    "entry", [ENTRIES[0], next(e for e in ENTRIES if e.base_image == "business-licence.png")]
)
def test_thumbnail_fits_the_longer_side(entry: CatalogueEntry) -> None:
    layout = example_layout(entry.code)
    image = Image.open(io.BytesIO(thumbnail(layout, max_px=200)))
    assert max(image.size) == 200
    assert image.size[0] / image.size[1] == pytest.approx(layout.width_mm / layout.height_mm, rel=0.02)
    with pytest.raises(ValueError, match="at least 16"):
        thumbnail(layout, max_px=8)
    with pytest.raises(ValueError, match="dpi must be positive"):
        render_preview(layout, dpi=0)


def test_webp_for_pages_is_the_same_face_lighter() -> None:
    """The WebP the pages load decodes (Pillow's libwebp) to the PNG's size and nearly its pixels, at a fraction of
    its bytes; a format the previews do not make is refused."""
    layout = example_layout(ENTRIES[0].code)
    png = render_preview(layout, dpi=96)
    lighter = render_preview(layout, dpi=96, image_format="webp")
    assert lighter[:4] == b"RIFF" and lighter[8:12] == b"WEBP" and len(lighter) < len(png) / 3
    with Image.open(io.BytesIO(png)) as a, Image.open(io.BytesIO(lighter)) as b:
        assert a.size == b.size
        small = (a.width // 8, a.height // 8)
        pa, pb = a.convert("L").resize(small).getdata(), b.convert("L").resize(small).getdata()
        assert sum(abs(x - y) for x, y in zip(pa, pb, strict=True)) / len(pa) < 4  # mean grey difference
    thumb = thumbnail(layout, max_px=320, image_format="webp")
    with Image.open(io.BytesIO(thumb)) as t:
        assert max(t.size) == 320
    with pytest.raises(ValueError, match="image format 'gif'"):
        render_preview(layout, image_format="gif")
