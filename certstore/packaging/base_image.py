"""The base image (证照底图) as embedded in issued files: a small indexed PNG.

The catalogue's base images are palette PNGs drawn at 150 dpi with anti-aliased edges
(``schemas/catalogue/make_base_images.py``); their palettes hold runs of near-identical colours (the cream page
at 255/252/242, 254/251/241, 253/248/238 …) that cost bytes in every file and nothing to the eye. Before a base
image goes into a face, :func:`embedded_base_image` merges every colour into the most frequent colour within
:data:`EMBED_TOLERANCE` of it on every channel (greedy, by pixel count), writes 4 bits a pixel when 16 colours
or fewer remain, and drops the text chunks (the ``certstore-layout`` geometry is read from the catalogue's file,
not from the embedded one). No pixel moves by more than the tolerance — the face looks the same (a test
compares the renderings) — and the construction permit's base image goes from 76.5 KB to about 58 KB. An image
that has transparency, more than 256 colours, or would not get smaller is embedded as given.
"""

from __future__ import annotations

import io
from functools import lru_cache

from PIL import Image, ImageChops

__all__ = ["EMBED_TOLERANCE", "embedded_base_image"]

#: The largest change, per channel (0–255), of any pixel of an embedded base image.
EMBED_TOLERANCE = 8


def _distance(a: tuple[int, ...], b: tuple[int, ...]) -> int:
    return max(abs(x - y) for x, y in zip(a, b, strict=True))


@lru_cache(maxsize=32)
def embedded_base_image(data: bytes) -> bytes:
    """``data`` (a PNG) as embedded in files: near-identical colours merged, 4 bits a pixel when possible, no
    text chunks; ``data`` itself when that does not apply or would not be smaller. Memoised per image."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            if image.format != "PNG" or "transparency" in image.info or image.mode not in ("P", "RGB", "L"):
                return data
            rgb = image.convert("RGB")
            dpi = image.info.get("dpi")
    except (OSError, ValueError):
        return data
    counted = rgb.getcolors(256)
    if counted is None:  # more than 256 colours: not a palette image
        return data
    colours = [colour for _count, colour in sorted(counted, key=lambda c: (-c[0], c[1]))]
    kept: list[tuple[int, int, int]] = []
    for colour in colours:
        if all(_distance(colour, other) > EMBED_TOLERANCE for other in kept):
            kept.append(colour)
    palette = Image.new("P", (1, 1))
    palette.putpalette([value for colour in kept for value in colour])
    # Without dithering each pixel takes its nearest kept colour, which is within the tolerance of it by
    # construction; checked on the pixels all the same before the image is used.
    indexed = rgb.quantize(palette=palette, dither=Image.Dither.NONE)
    extrema = ImageChops.difference(rgb, indexed.convert("RGB")).getextrema()
    if max(high for _low, high in extrema) > EMBED_TOLERANCE:  # type: ignore[union-attr]
        return data
    options: dict[str, object] = {"dpi": dpi} if dpi else {}
    if len(kept) <= 16:
        options["bits"] = 4
    # zlib's default strategy at level 9 and Pillow's ``optimize`` (filtered) each win on some images: the smaller.
    lighter = min(
        (
            _png(indexed, optimize=True, **options),
            _png(indexed, compress_level=9, compress_type=0, **options),
        ),
        key=len,
    )
    return lighter if len(lighter) < len(data) else data


def _png(image: Image.Image, **options: object) -> bytes:
    out = io.BytesIO()
    image.save(out, format="PNG", **options)
    return out.getvalue()
