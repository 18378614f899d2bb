"""Generate the base images (证照底图) of the shipped catalogue entries into ``base-images/``.

Run from anywhere: ``python schemas/catalogue/make_base_images.py`` (needs Pillow only). For every
``*.json`` entry next to this script with a ``base_image`` it draws an A4 page at 150 dpi — portrait, or
landscape for the business licence — with:

* licences (证照): a cream page with a red-and-gold guilloche frame;
* approvals (批文): a white page with a thin red double frame and a red rule under the title (红头 style);
* the national-emblem area at the top centre left empty (the emblem is not drawn here).

The title is *not* drawn: the face layout (``certstore/packaging/face.py``) sets it as real text, so it
stays searchable and selectable in the OFD. The layout in millimetres is stored in the PNG as a
``certstore-layout`` text chunk (JSON) for the face layout: ``page_mm`` [w, h], ``dpi``, ``emblem_mm``,
``title_mm`` (the title line), ``content_mm`` (boxes as [x, y, w, h] from the top-left corner), and for
documents whose printed title carries 中华人民共和国 above the name, ``heading`` (that text) with
``heading_mm`` (its line). Output is deterministic and each file is kept under 200 KB (palette PNG).
"""

from __future__ import annotations

import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw
from PIL.PngImagePlugin import PngInfo

HERE = Path(__file__).resolve().parent
OUT = HERE / "base-images"

DPI = 150
SUPERSAMPLE = 2
MAX_BYTES = 200_000
A4_MM = (210.0, 297.0)

CREAM = (255, 252, 242)
WHITE = (255, 255, 255)
RED = (163, 31, 36)
GOLD = (184, 145, 58)
INK = (40, 30, 30)

#: Documents whose printed title carries 中华人民共和国 above the name.
NATIONAL_HEADING = {
    "site-selection-opinion.png",
    "land-use-planning-permit.png",
    "engineering-planning-permit.png",
    "construction-permit.png",
}
LANDSCAPE = {"business-licence.png"}


@dataclass(frozen=True)
class Page:
    width_mm: float
    height_mm: float
    scale: float  # pixels per millimetre on the supersampled canvas

    def px(self, mm: float) -> int:
        return round(mm * self.scale)

    @property
    def size(self) -> tuple[int, int]:
        return self.px(self.width_mm), self.px(self.height_mm)


def _rounded_rect_path(page: Page, inset_mm: float, radius_mm: float, step_px: float = 2.0) -> list[tuple]:
    """Points (x, y, nx, ny) along a rounded rectangle inset from the page edge, with outward normals."""
    x0, y0 = page.px(inset_mm), page.px(inset_mm)
    x1, y1 = page.px(page.width_mm - inset_mm), page.px(page.height_mm - inset_mm)
    r = page.px(radius_mm)
    corners = [
        (x1 - r, y0 + r, -90.0),
        (x1 - r, y1 - r, 0.0),
        (x0 + r, y1 - r, 90.0),
        (x0 + r, y0 + r, 180.0),
    ]
    edges = [((x0 + r, y0), (x1 - r, y0), (0, -1)), ((x1, y0 + r), (x1, y1 - r), (1, 0))]
    edges += [((x1 - r, y1), (x0 + r, y1), (0, 1)), ((x0, y1 - r), (x0, y0 + r), (-1, 0))]
    points: list[tuple] = []
    for (start, end, normal), (cx, cy, angle0) in zip(edges, corners, strict=True):
        length = math.dist(start, end)
        for i in range(max(int(length / step_px), 1)):
            t = i / max(int(length / step_px), 1)
            points.append((start[0] + (end[0] - start[0]) * t, start[1] + (end[1] - start[1]) * t, *normal))
        arc = math.pi / 2 * r
        for i in range(max(int(arc / step_px), 1)):
            a = math.radians(angle0 + 90.0 * i / max(int(arc / step_px), 1))
            points.append((cx + r * math.cos(a), cy + r * math.sin(a), math.cos(a), math.sin(a)))
    return points


def _guilloche(draw: ImageDraw.ImageDraw, page: Page, inset_mm: float, amplitude_mm: float) -> None:
    """Interlaced sine waves along the frame, the usual security-print border."""
    path = _rounded_rect_path(page, inset_mm, 6.0)
    perimeter = sum(math.dist(path[i][:2], path[i - 1][:2]) for i in range(1, len(path)))
    waves = round(perimeter / page.px(7.0))
    amplitude = page.px(amplitude_mm)
    for phase, colour, width in (
        (0.0, RED, 2),
        (math.pi, RED, 2),
        (math.pi / 2, GOLD, 2),
        (3 * math.pi / 2, GOLD, 2),
    ):
        line = []
        travelled = 0.0
        for i, (x, y, nx, ny) in enumerate(path):
            if i:
                travelled += math.dist((x, y), path[i - 1][:2])
            offset = amplitude * math.sin(2 * math.pi * waves * travelled / perimeter + phase)
            line.append((x + nx * offset, y + ny * offset))
        line.append(line[0])
        draw.line(line, fill=colour, width=width * SUPERSAMPLE // 2 + 1, joint="curve")


def _rounded_frame(
    draw: ImageDraw.ImageDraw, page: Page, inset_mm: float, colour: tuple, width_px: int
) -> None:
    box = (
        page.px(inset_mm),
        page.px(inset_mm),
        page.px(page.width_mm - inset_mm),
        page.px(page.height_mm - inset_mm),
    )
    draw.rounded_rectangle(box, radius=page.px(3.0), outline=colour, width=width_px)


def _title_line(text: str, top_mm: float, size_mm: float, max_width_mm: float) -> tuple[float, float]:
    """The (top, bottom) in millimetres of a centred title line of ``text`` at ``size_mm``, letter-spaced as
    the face layout sets it (ideographs are one em wide), reduced to fit ``max_width_mm``."""
    spacing = size_mm * (0.6 if len(text) <= 4 else 0.12)
    width = size_mm * len(text) + spacing * (len(text) - 1)
    if width > max_width_mm:
        size_mm *= max_width_mm / width
    return top_mm, top_mm + size_mm * 1.15


def render(name: str, title: str, category: str) -> tuple[Image.Image, dict]:
    landscape = name in LANDSCAPE
    width_mm, height_mm = (A4_MM[1], A4_MM[0]) if landscape else A4_MM
    page = Page(width_mm, height_mm, DPI / 25.4 * SUPERSAMPLE)
    licence = category == "licence"
    canvas = Image.new("RGB", page.size, CREAM if licence else WHITE)
    draw = ImageDraw.Draw(canvas)

    if licence:
        _rounded_frame(draw, page, 7.0, RED, page.px(0.8))
        _guilloche(draw, page, 11.0, 2.2)
        _rounded_frame(draw, page, 15.0, GOLD, page.px(0.35))
        _rounded_frame(draw, page, 16.2, RED, page.px(0.5))
    else:
        _rounded_frame(draw, page, 9.0, RED, page.px(0.9))
        _rounded_frame(draw, page, 10.8, RED, page.px(0.3))

    emblem_size = 26.0 if landscape else 30.0
    emblem_top = 22.0 if landscape else 26.0
    emblem = [(width_mm - emblem_size) / 2, emblem_top, emblem_size, emblem_size]
    top = emblem_top + emblem_size + 5.0
    heading: tuple[float, float] | None = None
    if name in NATIONAL_HEADING:
        heading = _title_line("中华人民共和国", top, 8.5, 120.0)
        top = heading[1] + 2.0
    title_top, title_bottom = _title_line(title, top, 13.0, width_mm - 60.0)
    if not licence:
        rule_y = page.px(title_bottom + 4.0)
        draw.line((page.px(22.0), rule_y, page.px(width_mm - 22.0), rule_y), fill=RED, width=page.px(0.8))
    content_top = title_bottom + (12.0 if not licence else 8.0)  # below the rule on approvals
    margin = 26.0
    layout = {
        "page_mm": [width_mm, height_mm],
        "dpi": DPI,
        "emblem_mm": [round(v, 2) for v in emblem],
        "title_mm": [
            round(v, 2) for v in (margin, title_top, width_mm - 2 * margin, title_bottom - title_top)
        ],
        "content_mm": [
            round(v, 2)
            for v in (margin, content_top, width_mm - 2 * margin, height_mm - margin - content_top)
        ],
    }
    if heading is not None:
        layout["heading"] = "中华人民共和国"
        layout["heading_mm"] = [
            round(v, 2) for v in (margin, heading[0], width_mm - 2 * margin, heading[1] - heading[0])
        ]
    final = canvas.resize(
        (page.size[0] // SUPERSAMPLE, page.size[1] // SUPERSAMPLE), Image.Resampling.LANCZOS
    )
    return final.quantize(colors=32, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE), layout


def main() -> int:
    OUT.mkdir(exist_ok=True)
    for path in sorted(HERE.glob("*.json")):
        entry = json.loads(path.read_text(encoding="utf-8"))
        name = entry.get("base_image")
        if not name:
            continue
        image, layout = render(name, entry["name"], entry["category"])
        info = PngInfo()
        info.add_text("Title", f"{entry['name']} 底图")
        info.add_text("certstore-layout", json.dumps(layout, ensure_ascii=False, separators=(",", ":")))
        target = OUT / name
        image.save(target, format="PNG", optimize=True, dpi=(DPI, DPI), pnginfo=info)
        size = target.stat().st_size
        print(f"{target.relative_to(HERE.parent.parent)}: {image.width}x{image.height} px, {size} bytes")
        if size >= MAX_BYTES:
            print(f"  too large (limit {MAX_BYTES} bytes)", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
