"""The one font of the face (照面字体): where it is, how wide text is, and the subset embedded in OFD/PDF.

Every rendition of a face — the OFD text objects, the PDF, the PNG preview — and the seal picture use this one
font, so text measured here is text drawn there. It is **WenQuanYi Micro Hei** (文泉驿微米黑, Debian package
``fonts-wqy-microhei``, Apache-2.0; installed by ``scripts/install-system-deps``): the CJK glyphs of Droid
Sans Fallback plus Latin letters, digits and Western punctuation. Droid Sans Fallback itself
(``fonts-droid-fallback``) has no ASCII glyphs at all, so certificate numbers, dates and identifiers would
show as empty boxes.

Sizes: ``size_mm`` is the em size in millimetres (1 pt = 25.4 / 72 ≈ 0.3528 mm); widths are the font's
linear (unhinted) advances, character by character without kerning — which is how an OFD reader places a
``TextCode`` without ``DeltaX`` and how the preview draws.
"""

from __future__ import annotations

import io
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

from PIL import ImageFont

__all__ = [
    "FONT_FAMILY",
    "FONT_INDEX",
    "FONT_PACKAGE",
    "FONT_PATH",
    "MM_PER_PT",
    "FontMissingError",
    "char_advance_em",
    "load_font",
    "missing_font_message",
    "missing_glyphs",
    "mm_to_pt",
    "pt_to_mm",
    "require_font",
    "subset_font",
    "text_width_mm",
]

#: The font file (a TrueType collection; the face at :data:`FONT_INDEX` is the proportional one).
FONT_PATH = Path("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc")
FONT_INDEX = 0
FONT_FAMILY = "WenQuanYi Micro Hei"
#: The Debian package that installs :data:`FONT_PATH`.
FONT_PACKAGE = "fonts-wqy-microhei"

#: Millimetres per typographic point (1/72 inch).
MM_PER_PT = 25.4 / 72

#: Pixel size at which advances are read: the font's own units per em, so Pillow returns exact advances.
_REFERENCE_PX = 2048


class FontMissingError(RuntimeError):
    """The face font is not installed; the message names the Debian package to install."""


def missing_font_message(path: Path = FONT_PATH) -> str:
    """The explanation given when the font file at ``path`` is absent."""
    return (
        f"CJK font {path} not found: install the Debian package {FONT_PACKAGE} (scripts/install-system-deps "
        "does this; fonts-droid-fallback, used before, has no Latin letters or digits)"
    )


def require_font() -> Path:
    """:data:`FONT_PATH`, or :class:`FontMissingError` if it is not installed."""
    if not FONT_PATH.is_file():
        raise FontMissingError(missing_font_message())
    return FONT_PATH


def pt_to_mm(points: float) -> float:
    return points * MM_PER_PT


def mm_to_pt(millimetres: float) -> float:
    return millimetres / MM_PER_PT


@lru_cache(maxsize=64)
def load_font(size_px: float) -> ImageFont.FreeTypeFont:
    """The face font at ``size_px`` pixels per em (fractional sizes allowed), for drawing with Pillow."""
    return ImageFont.truetype(str(require_font()), size_px, index=FONT_INDEX)


@lru_cache(maxsize=8192)
def char_advance_em(char: str) -> float:
    """The advance width of one character in ems (linear, from the font's metrics)."""
    return load_font(_REFERENCE_PX).getlength(char) / _REFERENCE_PX


def text_width_mm(text: str, size_mm: float, *, letter_spacing_mm: float = 0.0) -> float:
    """Width of ``text`` set at ``size_mm`` (em size), with ``letter_spacing_mm`` after every character but
    the last — the sum of the characters' advances, as the preview draws and an OFD reader places them."""
    if not text:
        return 0.0
    return sum(char_advance_em(ch) for ch in text) * size_mm + letter_spacing_mm * (len(text) - 1)


@cache
def _cmap() -> frozenset[int]:
    from fontTools.ttLib import TTFont

    with TTFont(str(require_font()), fontNumber=FONT_INDEX, lazy=True) as font:
        return frozenset(font.getBestCmap())


def missing_glyphs(text: str) -> str:
    """The distinct characters of ``text`` the font cannot draw (control characters ignored), in order."""
    cmap = _cmap()
    seen: dict[str, None] = {}
    for ch in text:
        if ord(ch) >= 0x20 and ord(ch) not in cmap:
            seen.setdefault(ch)
    return "".join(seen)


def subset_font(characters: str) -> bytes:
    """A TrueType (``glyf``) font holding only ``characters`` (plus the space and ``.notdef``), for
    embedding in OFD (``Res/font_N.ttf``, ``FontFile``) or PDF (``FontFile2``).

    Glyph outlines, advances and the Unicode ``cmap`` are kept; hinting and OpenType layout tables are
    dropped. A typical face (a few hundred distinct characters) gives 50–100 KB against 5 MB for the full
    font. Results are cached by character set, so the order and repetition of ``characters`` do not matter.
    """
    return _subset("".join(sorted(set(characters) | {" "})))


def _subset_options() -> Any:
    from fontTools import subset

    options = subset.Options()
    options.layout_features = []
    options.hinting = False
    options.notdef_outline = True
    options.recalc_bounds = True
    options.recalc_timestamp = False  # the same characters give the same bytes (reproducible files)
    options.glyph_names = False  # post format 3: embedded fonts need no glyph names
    options.drop_tables += ["GSUB", "GPOS", "GDEF", "FFTM"]
    return options


def _subset_of(font: Any, characters: str) -> bytes:
    from fontTools import subset

    subsetter = subset.Subsetter(_subset_options())
    subsetter.populate(unicodes=[ord(ch) for ch in characters])
    subsetter.subset(font)
    out = io.BytesIO()
    font.save(out)
    return out.getvalue()


def _gb2312_hanzi() -> set[str]:
    found = set()
    for high in range(0xB0, 0xF8):
        for low in range(0xA1, 0xFF):
            try:
                found.add(bytes((high, low)).decode("gb2312"))
            except UnicodeDecodeError:
                continue
    return found


#: What the working font holds: printable ASCII and Latin-1, general and CJK punctuation, letter-like symbols,
#: full-width forms and the 6,763
#: hanzi of GB 2312 — the characters of nearly every face.
WORKING_CHARACTERS = frozenset(
    {chr(c) for c in range(0x20, 0x7F)}
    | {chr(c) for c in range(0xA0, 0x100)}
    | {chr(c) for c in range(0x2000, 0x2070)}
    | {chr(c) for c in range(0x2100, 0x2200)}
    | {chr(c) for c in range(0x3000, 0x3040)}
    | {chr(c) for c in range(0xFF00, 0xFFF0)}
    | _gb2312_hanzi()
)


@cache
def _working_font() -> tuple[bytes, frozenset[str]]:
    """The full font cut down once per process to :data:`WORKING_CHARACTERS` (≈1.2 MB instead of 5 MB, no glyph
    names): subsetting from it is ~10× faster than re-reading the whole collection for every certificate."""
    from fontTools.ttLib import TTFont

    with TTFont(str(require_font()), fontNumber=FONT_INDEX, lazy=True, recalcTimestamp=False) as font:
        covered = frozenset(ch for ch in WORKING_CHARACTERS if ord(ch) in font.getBestCmap())
        return _subset_of(font, "".join(sorted(covered))), covered


@lru_cache(maxsize=32)
def _subset(characters: str) -> bytes:
    from fontTools.ttLib import TTFont

    working, covered = _working_font()
    if set(characters) <= covered:
        with TTFont(io.BytesIO(working), lazy=True, recalcTimestamp=False) as font:
            return _subset_of(font, characters)
    with TTFont(str(require_font()), fontNumber=FONT_INDEX, lazy=True, recalcTimestamp=False) as font:
        return _subset_of(font, characters)
