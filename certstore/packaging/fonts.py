"""The fonts of the face (照面字体): where they are, how wide text is, and the subsets embedded in OFD/PDF.

Every rendition of a face — the OFD text objects, the PDF, the PNG preview — and the seal picture use the main
font, so text measured here is text drawn there. It is **WenQuanYi Micro Hei** (文泉驿微米黑, Debian package
``fonts-wqy-microhei``, Apache-2.0; installed by ``scripts/install-system-deps``): the CJK glyphs of Droid
Sans Fallback plus Latin letters, digits and Western punctuation. Droid Sans Fallback itself
(``fonts-droid-fallback``) has no ASCII glyphs at all, so certificate numbers, dates and identifiers would
show as empty boxes.

Rare characters (生僻字) — the CJK Extensions A–G that names of people and places use (𡈽, 䶮, 𠮷) — are drawn
in a **fallback font**, used for exactly the characters the main font lacks (:data:`FACE_FONTS`, first font
that has the character wins): **HanaMinA** and **HanaMinB** (花園明朝, Debian ``fonts-hanazono``, SIL OFL 1.1 or
the Hanazono Font License; together all of Extensions A–F) and **BabelStone Han** (Debian
``fonts-babelstone-han``, Arphic Public License / CC BY-SA; what HanaMin lacks — part of Extensions G and H). A line is split into runs
by font (:func:`font_runs`); every rendition embeds one subset per font used, each cut per certificate like the
main one. A character no face font has is refused when the face is laid out.

Sizes: ``size_mm`` is the em size in millimetres (1 pt = 25.4 / 72 ≈ 0.3528 mm); widths are the font's
linear (unhinted) advances, character by character without kerning — which is how an OFD reader places a
``TextCode`` without ``DeltaX`` and how the preview draws.
"""

from __future__ import annotations

import io
import os
import struct
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache, lru_cache
from itertools import accumulate
from pathlib import Path
from typing import Any

from PIL import ImageFont

__all__ = [
    "FACE_FONTS",
    "FALLBACK_RANGES",
    "FONT_FAMILY",
    "FONT_INDEX",
    "FONT_PACKAGE",
    "FONT_PATH",
    "MM_PER_PT",
    "FaceFont",
    "FontMissingError",
    "SubsetMetrics",
    "char_advance_em",
    "font_of",
    "font_runs",
    "load_font",
    "missing_fallback_packages",
    "missing_font_message",
    "missing_glyphs",
    "mm_to_pt",
    "pt_to_mm",
    "require_font",
    "subset_font",
    "subset_metrics",
    "text_width_mm",
]

#: The font file (a TrueType collection; the face at :data:`FONT_INDEX` is the proportional one).
FONT_PATH = Path("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc")
FONT_INDEX = 0
FONT_FAMILY = "WenQuanYi Micro Hei"
#: The Debian package that installs :data:`FONT_PATH`.
FONT_PACKAGE = "fonts-wqy-microhei"


@dataclass(frozen=True)
class FaceFont:
    """One font of the face: its family name, file (face ``index`` in a collection) and Debian package."""

    family: str
    path: Path
    index: int
    package: str


#: The face fonts in order of preference: the main font, then the fallbacks for rare characters (生僻字). A
#: character is drawn in the first of them that maps it (:func:`font_of`).
FACE_FONTS: tuple[FaceFont, ...] = (
    FaceFont(FONT_FAMILY, FONT_PATH, FONT_INDEX, FONT_PACKAGE),
    FaceFont("HanaMinA", Path("/usr/share/fonts/truetype/hanazono/HanaMinA.ttf"), 0, "fonts-hanazono"),
    FaceFont("HanaMinB", Path("/usr/share/fonts/truetype/hanazono/HanaMinB.ttf"), 0, "fonts-hanazono"),
    FaceFont(
        "BabelStone Han",
        Path("/usr/share/fonts/truetype/babelstone/BabelStoneHan.ttf"),
        0,
        "fonts-babelstone-han",
    ),
)

#: The code points the fallback fonts are used for: CJK radicals, strokes, ideographs (the unified block, its
#: compatibility forms, Extension A and the supplementary planes 2 and 3 — Extensions B to H). Anything else the
#: main font lacks (emoji, U+202E …) stays missing, and the face refuses it.
FALLBACK_RANGES: tuple[tuple[int, int], ...] = (
    (0x2E80, 0x2FFF),
    (0x3005, 0x3007),
    (0x31C0, 0x31EF),
    (0x3400, 0x4DBF),
    (0x4E00, 0x9FFF),
    (0xF900, 0xFAFF),
    (0x20000, 0x3FFFF),
)

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
def load_font(size_px: float, font: int = 0) -> ImageFont.FreeTypeFont:
    """Face font number ``font`` of :data:`FACE_FONTS` (0: the main font) at ``size_px`` pixels per em
    (fractional sizes allowed), for drawing with Pillow."""
    if font == 0:
        return ImageFont.truetype(str(require_font()), size_px, index=FONT_INDEX)
    face = FACE_FONTS[font]
    return ImageFont.truetype(str(face.path), size_px, index=face.index)


@lru_cache(maxsize=8192)
def char_advance_em(char: str) -> float:
    """The advance width of one character in ems (linear, from the metrics of the font that draws it)."""
    return load_font(_REFERENCE_PX, font_of(char) or 0).getlength(char) / _REFERENCE_PX


def text_width_mm(text: str, size_mm: float, *, letter_spacing_mm: float = 0.0) -> float:
    """Width of ``text`` set at ``size_mm`` (em size), with ``letter_spacing_mm`` after every character but
    the last — the sum of the characters' advances, as the preview draws and an OFD reader places them."""
    if not text:
        return 0.0
    return sum(map(char_advance_em, text)) * size_mm + letter_spacing_mm * (len(text) - 1)


@cache
def _cmap(font: int = 0) -> frozenset[int]:
    """The code points face font number ``font`` maps; empty for a fallback font that is not installed (its
    characters are then missing, and the layout's refusal names its package)."""
    from fontTools.ttLib import TTFont

    if font == 0:
        path, index = require_font(), FONT_INDEX
    else:
        path, index = FACE_FONTS[font].path, FACE_FONTS[font].index
        if not path.is_file():
            return frozenset()
    with TTFont(str(path), fontNumber=index, lazy=True) as opened:
        return frozenset(opened.getBestCmap())


@lru_cache(maxsize=65536)
def font_of(char: str) -> int | None:
    """Which face font draws ``char``: its number in :data:`FACE_FONTS` (0 — the main font — for control
    characters and everything it maps), or None when no face font has it (a fallback is used only within
    :data:`FALLBACK_RANGES`, never for unassigned or private-use code points)."""
    code = ord(char)
    if code < 0x20 or code in _cmap(0):
        return 0
    if not any(low <= code <= high for low, high in FALLBACK_RANGES) or unicodedata.category(char) in (
        "Cn",
        "Co",
    ):
        return (
            None  # the fallbacks are for hanzi only: their emoji, symbols, private-use glyphs are not taken
        )
    for number in range(1, len(FACE_FONTS)):
        if code in _cmap(number):
            return number
    return None


def font_runs(text: str) -> list[tuple[int, str]]:
    """``text`` cut into runs of consecutive characters drawn in the same face font: ``(font, run)`` pairs in
    order, joined they give ``text`` back. A character no font has goes with the main font (it is refused
    earlier, by :func:`missing_glyphs` at layout)."""
    runs: list[tuple[int, str]] = []
    for ch in text:
        font = font_of(ch) or 0
        if runs and runs[-1][0] == font:
            runs[-1] = (font, runs[-1][1] + ch)
        else:
            runs.append((font, ch))
    return runs


def missing_glyphs(text: str) -> str:
    """The distinct characters of ``text`` no face font can draw (control characters ignored), in order."""
    seen: dict[str, None] = {}
    for ch in text:
        if font_of(ch) is None:
            seen.setdefault(ch)
    return "".join(seen)


def missing_fallback_packages() -> list[str]:
    """The Debian packages of fallback fonts that are not installed (rare characters need them)."""
    return sorted({face.package for face in FACE_FONTS[1:] if not face.path.is_file()})


def subset_font(characters: str, font: int = 0) -> bytes:
    """A TrueType (``glyf``) font holding only ``characters`` (plus the space and ``.notdef``) of face font
    number ``font`` (0: the main font), for embedding in OFD (``Res/font_N.ttf``, ``FontFile``) or PDF
    (``FontFile2``).

    Glyph outlines, advances and the Unicode ``cmap`` are kept; hinting and OpenType layout tables are
    dropped. A typical face (a few hundred distinct characters) gives 50–100 KB against 5 MB for the full
    font. Results are cached by character set, so the order and repetition of ``characters`` do not matter.
    """
    if font:
        return _fallback_subset(font, _character_set(characters))
    return _subset(_character_set(characters))


@lru_cache(maxsize=32)
def _fallback_subset(font: int, characters: str) -> bytes:
    """The subset of fallback font ``font``: fontTools' subsetter over the full file, read lazily (≈0.3–0.5 s;
    only faces with rare characters pay it, and the same characters hit the cache)."""
    from fontTools.ttLib import TTFont

    face = FACE_FONTS[font]
    with TTFont(str(face.path), fontNumber=face.index, lazy=True, recalcTimestamp=False) as opened:
        return _subset_of(opened, characters)


def _character_set(characters: str) -> str:
    """``characters`` as the caches key them: each once, sorted, with the space."""
    return "".join(sorted(set(characters) | {" "}))


@dataclass(frozen=True)
class SubsetMetrics:
    """What the subset of some characters says about them: each character's advance (em), and how far the
    subset's glyphs reach above and below the baseline (em, from its ``head`` bounding box)."""

    advances: Mapping[str, float] = field(repr=False)
    ascent: float
    descent: float


def subset_metrics(characters: str, font: int = 0) -> SubsetMetrics:
    """The metrics of :func:`subset_font` of ``characters`` — taken from the parsed working font when the subset
    comes from it (no need to parse the subset back), else read from the subset."""
    return _metrics(_character_set(characters), font)


@lru_cache(maxsize=32)
def _metrics(characters: str, font_number: int = 0) -> SubsetMetrics:
    from fontTools.ttLib import TTFont

    if font_number:
        return _read_metrics(TTFont(io.BytesIO(_fallback_subset(font_number, characters)), lazy=True))
    source, covered = _glyph_source()
    if set(characters) <= covered:
        return source.metrics(characters)
    return _read_metrics(TTFont(io.BytesIO(_subset(characters)), lazy=True))


def _read_metrics(font: Any) -> SubsetMetrics:
    units = font["head"].unitsPerEm
    hmtx = font["hmtx"].metrics
    advances = {chr(cp): hmtx[glyph][0] / units for cp, glyph in font.getBestCmap().items()}
    return SubsetMetrics(advances, font["head"].yMax / units, -font["head"].yMin / units)


def _subset_options() -> Any:
    from fontTools import subset

    options = subset.Options()
    options.layout_features = []
    options.hinting = False
    options.notdef_outline = True
    options.recalc_bounds = True
    options.recalc_timestamp = False  # the same characters give the same bytes (reproducible files)
    options.glyph_names = False  # post format 3: embedded fonts need no glyph names
    options.drop_tables += ["GSUB", "GPOS", "GDEF", "FFTM", "BASE", "prop", "meta"]
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


#: Bumped when what the working font holds or how it is cut changes (the on-disk copies then miss).
_WORKING_FONT_FORMAT = 1


def _working_font_cache() -> Path | None:
    """Where the working font is kept between processes: ``$CERTSTORE_CACHE_DIR``, else
    ``$XDG_CACHE_HOME/certstore`` or ``~/.cache/certstore``; the name changes with the font file, fontTools and
    :data:`_WORKING_FONT_FORMAT`, so a stale copy is never read. None when no home directory is known."""
    import hashlib

    from fontTools import version as fonttools_version

    configured = os.environ.get("CERTSTORE_CACHE_DIR")
    if configured:
        base = Path(configured)
    else:
        xdg, home = os.environ.get("XDG_CACHE_HOME"), os.environ.get("HOME")
        if not xdg and not home:
            return None
        base = (Path(xdg) if xdg else Path(home or "") / ".cache") / "certstore"
    stat = require_font().stat()
    identity = f"{FONT_PATH}|{FONT_INDEX}|{stat.st_size}|{stat.st_mtime_ns}|{fonttools_version}|{_WORKING_FONT_FORMAT}"
    digest = hashlib.sha256(identity.encode()).hexdigest()[:24]
    return base / f"working-font-{digest}.ttf"


@cache
def _working_font(*, trust_cache: bool = True) -> bytes:
    """The full font cut down to :data:`WORKING_CHARACTERS` (≈1.2 MB instead of 5 MB, no glyph names, no
    hinting): subsets are assembled from it. Cutting it takes ~1.5 s, so it is kept on disk
    (:func:`_working_font_cache`) and read back by every later process (API workers, import workers, CLI runs);
    an unwritable cache only costs that time again."""
    from fontTools.ttLib import TTFont

    cached = _working_font_cache()
    if cached is not None and trust_cache:
        try:
            return cached.read_bytes()
        except OSError:
            pass
    with TTFont(str(require_font()), fontNumber=FONT_INDEX, lazy=True, recalcTimestamp=False) as font:
        covered = sorted(ch for ch in WORKING_CHARACTERS if ord(ch) in font.getBestCmap())
        data = _subset_of(font, "".join(covered))
    if cached is not None:
        try:
            cached.parent.mkdir(parents=True, exist_ok=True)
            partial = cached.with_name(f".{cached.name}.{os.getpid()}.tmp")
            partial.write_bytes(data)
            partial.replace(cached)  # whole or absent, whatever runs concurrently
        except OSError:
            pass
    return data


#: A glyph as subsets copy it: padded ``glyf`` record, ``hmtx`` and ``vmtx`` entries, for a composite each component
#: index's position, source glyph index and half of its word (a shift of 16 or 0),
#: and the TrueType checksums of the three (the record's, each entry's one 32-bit word).
_Piece = tuple[bytes, bytes, bytes, tuple[tuple[int, int, int], ...], int, int, int]
#: Beyond any font unit (int16): the box of a glyph without outline, so that min/max never pick it.
_NO_BOX = 1 << 20


class _GlyphSource:
    """The working font parsed once, from which subsets are assembled glyph by glyph (快速子集).

    fontTools' ``Subsetter`` re-reads and prunes all ~13k glyphs of its input for every subset (≈180 ms per
    certificate). Here the input is parsed once and every glyph is worked with by its index: its raw ``glyf``
    record is copied as it is (outlines, header bounding box; the working font has no hinting), a composite's
    component indices renumbered in the copy. A subset is then the closure of the wanted glyphs over their
    components, under a fresh cmap, with the source's metrics and header tables (≈0.3 ms for a face, the same
    outlines and advances). The tables of the source are copied per subset, never mutated, so threads may share
    it.
    """

    def __init__(self, data: bytes) -> None:
        from fontTools.ttLib import TTFont

        font = TTFont(
            io.BytesIO(data), recalcTimestamp=False
        )  # not kept: what subsets need is copied out below
        self.cmap: dict[int, str] = dict(font.getBestCmap())
        self.order = font.getGlyphOrder()
        self.index = {name: i for i, name in enumerate(self.order)}
        self.units_per_em: int = font["head"].unitsPerEm
        self.hmtx: dict[str, tuple[int, int]] = dict(font["hmtx"].metrics)
        self.vmtx: dict[str, tuple[int, int]] | None = dict(font["vmtx"].metrics) if "vmtx" in font else None
        glyf = font["glyf"]
        components: dict[str, tuple[str, ...]] = {}
        self.bounds: dict[str, tuple[int, int, int, int]] = {}
        for name in self.order:
            raw = getattr(glyf.glyphs[name], "data", b"")
            if not raw:
                continue
            contours, x_min, y_min, x_max, y_max = struct.unpack(">hhhhh", raw[:10])
            self.bounds[name] = (x_min, y_min, x_max, y_max)
            if contours < 0:  # composite: expand once so components are named, not numbered
                components[name] = tuple(c.glyphName for c in glyf[name].components)
        # the same by glyph index, as a subset works (integers hash, compare and sort faster than names)
        index = self.index
        self._gid: dict[int, int] = {code: index[name] for code, name in self.cmap.items()}
        self._composite: dict[int, tuple[int, ...]] = {
            index[name]: tuple(index[c] for c in parts) for name, parts in components.items()
        }
        self._components: dict[int, tuple[int, ...]] = {}  # a composite's whole closure (_components_of)
        self._advance: list[int] = [self.hmtx[name][0] for name in self.order]
        # per glyph index its box; a glyph without outline gets one that no min/max picks (:meth:`_closures`)
        empty = (_NO_BOX, _NO_BOX, -_NO_BOX, -_NO_BOX)
        boxes = [self.bounds.get(name, empty) for name in self.order]
        self._x_min, self._y_min, self._x_max, self._y_max = (
            list(column) for column in zip(*boxes, strict=True)
        )
        # the raw tables: a subset is assembled from bytes (:meth:`subset`)
        reader = font.reader
        self._tables = {tag: reader[tag] for tag in ("head", "hhea", "maxp", "OS/2", "name", "post", "gasp", "vhea")
                        if tag in reader}  # fmt: skip
        self._glyf: bytes = reader["glyf"]
        self._loca: list[int] = list(font["loca"])
        self._pieces: dict[int, _Piece] = {}
        self._table_sums = {  # the tables a subset copies unpatched
            tag: _checksum(data)
            for tag, data in self._tables.items()
            if tag in ("OS/2", "name", "post", "gasp")
        }

    def _closure(self, characters: str) -> tuple[dict[int, int], list[int], tuple[int, int, int, int]]:
        """The cmap of ``characters`` (code point → glyph index in the source), the glyph order of their subset
        (.notdef, their glyphs and every component those use, in the source's order) and its bounding box; the
        last few kept: metrics and subset ask in turn."""
        return self._closures(characters)

    @lru_cache(maxsize=8)  # noqa: B019 (one source per process, kept for its life)
    def _closures(self, characters: str) -> tuple[dict[int, int], list[int], tuple[int, int, int, int]]:
        gid = self._gid
        mapping = {code: gid[code] for code in map(ord, characters) if code in gid}
        wanted = {0, *mapping.values()}  # .notdef is glyph 0 in the source too
        composite = self._composite
        used = [self._components_of(glyph) for glyph in wanted if glyph in composite]
        wanted.update(*used)
        order = sorted(wanted)
        box = (
            min(map(self._x_min.__getitem__, order)),
            min(map(self._y_min.__getitem__, order)),
            max(map(self._x_max.__getitem__, order)),
            max(map(self._y_max.__getitem__, order)),
        )
        return mapping, order, box if box[0] <= box[2] else (0, 0, 0, 0)

    def _components_of(self, glyph: int) -> tuple[int, ...]:
        """Every glyph composite ``glyph`` is built from, components of components included (worked out once
        per glyph and process)."""
        found = self._components.get(glyph)
        if found is None:
            closure: set[int] = set()
            stack = list(self._composite[glyph])
            while stack:
                component = stack.pop()
                if component not in closure:
                    closure.add(component)
                    stack.extend(self._composite.get(component, ()))
            found = self._components[glyph] = tuple(closure)  # the same value whichever thread writes it
        return found

    def metrics(self, characters: str) -> SubsetMetrics:
        """What :meth:`subset` of ``characters`` will say about itself, without building it."""
        mapping, _, box = self._closure(characters)
        units = self.units_per_em
        advance = self._advance
        advances = {chr(cp): advance[glyph] / units for cp, glyph in mapping.items()}
        return SubsetMetrics(advances, box[3] / units, -box[1] / units)

    def subset(self, characters: str) -> bytes:
        """The subset font program of ``characters``, assembled from per-glyph pieces (≈0.3 ms for a face): raw
        ``glyf`` records (composite components renumbered), ``loca``, ``hmtx``/``vmtx`` and a format 4
        ``cmap`` for the subset; ``head`` (bounding box, long ``loca``, the modification time set to the
        creation time so the same characters give the same bytes), ``hhea``, ``maxp`` and ``vhea`` patched
        with the glyph count; ``OS/2``, ``name``, ``post`` (format 3) and ``gasp`` as the source has them."""
        mapping, order, box = self._closure(characters)
        new_index = {glyph: i for i, glyph in enumerate(order)}
        known = self._pieces
        pieces = [known.get(glyph) or self._piece(glyph) for glyph in order]
        glyphs = [piece[0] for piece in pieces]
        glyf_sum = sum([piece[4] for piece in pieces])
        composite = self._composite
        for i in [i for i, glyph in enumerate(order) if glyph in composite]:
            # a composite: its components' glyph indices become the subset's; each is a 16-bit half of a word
            # of the record, so the checksum moves by the change in that half (no re-summing of the record)
            record = bytearray(glyphs[i])
            for position, component, shift in pieces[i][3]:
                renumbered = new_index[component]
                struct.pack_into(">H", record, position, renumbered)
                glyf_sum += (renumbered - component) << shift
            glyphs[i] = bytes(record)
        offsets = [0, *accumulate(map(len, glyphs))]
        horizontal = [piece[1] for piece in pieces]
        hmtx_sum = sum([piece[5] for piece in pieces])
        vertical = [piece[2] for piece in pieces]
        vmtx_sum = sum([piece[6] for piece in pieces])
        # every piece is 4-byte aligned, so a table's checksum is the sum of its pieces' (and loca's, of its
        # offsets); the source's tables copied as they are have theirs computed once
        sums = {
            **self._table_sums,
            "glyf": glyf_sum,
            "hmtx": hmtx_sum,
            "vmtx": vmtx_sum,
            "loca": sum(offsets),
        }
        count = len(order)
        tables = self._tables
        head = bytearray(tables["head"])
        head[8:12] = b"\0\0\0\0"  # checkSumAdjustment, set below
        head[28:36] = head[20:28]  # modified = created
        head[36:44] = struct.pack(">hhhh", *box)
        head[50:52] = struct.pack(">h", 1)  # long loca
        hhea = bytearray(tables["hhea"])
        hhea[34:36] = struct.pack(">H", count)
        maxp = bytearray(tables["maxp"])
        maxp[4:6] = struct.pack(">H", count)
        out: dict[str, bytes] = {
            "OS/2": tables["OS/2"],
            "cmap": _cmap_table(mapping, new_index),
            "glyf": b"".join(glyphs),
            "head": bytes(head),
            "hhea": bytes(hhea),
            "hmtx": b"".join(horizontal),
            "loca": struct.pack(f">{count + 1}I", *offsets),
            "maxp": bytes(maxp),
            "name": tables["name"],
            "post": tables["post"],
        }
        if "gasp" in tables:
            out["gasp"] = tables["gasp"]
        if self.vmtx is not None and "vhea" in tables:
            vhea = bytearray(tables["vhea"])
            vhea[34:36] = struct.pack(">H", count)
            out["vhea"] = bytes(vhea)
            out["vmtx"] = b"".join(vertical)
        return _sfnt(out, sums)

    def _piece(self, glyph: int) -> _Piece:
        """What a subset copies of glyph index ``glyph``: its ``glyf`` record padded to 4 bytes, its ``hmtx`` and
        its ``vmtx`` entry (empty without one), and for a composite where each component's glyph index sits and
        which glyph of the source it names — read once per glyph and process, then joined per subset."""
        raw = self._glyf[self._loca[glyph] : self._loca[glyph + 1]]
        component_at: list[tuple[int, int, int]] = []
        if glyph in self._composite:
            position = 10
            while True:
                flags, index = struct.unpack_from(">HH", raw, position)
                at = position + 2  # records start 4-byte aligned: the high half of a word when at % 4 == 0
                component_at.append((at, index, 16 if at % 4 == 0 else 0))
                position += 4 + (4 if flags & 0x0001 else 2)
                if flags & 0x0008:
                    position += 2
                elif flags & 0x0040:
                    position += 4
                elif flags & 0x0080:
                    position += 8
                if not flags & 0x0020:
                    break
        padded = raw + b"\0" * (-len(raw) % 4)
        name = self.order[glyph]
        advance = struct.pack(">Hh", *self.hmtx[name])
        vertical = struct.pack(">Hh", *self.vmtx[name]) if self.vmtx is not None else b""
        piece = (
            padded,
            advance,
            vertical,
            tuple(component_at),
            _checksum(padded),
            int.from_bytes(advance, "big"),
            int.from_bytes(vertical, "big"),
        )
        self._pieces[glyph] = piece  # the same value whichever thread writes it first
        return piece


def _checksum(data: bytes) -> int:
    padded = data + b"\0" * (-len(data) % 4)
    return sum(struct.unpack(f">{len(padded) // 4}I", padded)) & 0xFFFFFFFF


def _sfnt(tables: Mapping[str, bytes], sums: Mapping[str, int] | None = None) -> bytes:
    """A TrueType font file of ``tables``: the table directory (tags sorted), each table 4-byte aligned, the
    checksums and head's checkSumAdjustment. ``sums``: checksums the caller already knows (any multiple of
    2**32 off: reduced here); a table whose bytes were patched (head, hhea, maxp, vhea) must not be in it."""
    tags = sorted(tables)
    count = len(tags)
    power = 1 << (count.bit_length() - 1)
    header = struct.pack(
        ">IHHHH", 0x00010000, count, power * 16, power.bit_length() - 1, count * 16 - power * 16
    )
    offset = 12 + 16 * count
    directory = bytearray()
    body: list[bytes] = []
    head_at = 0
    total = 0
    for tag in tags:
        data = tables[tag]
        if tag == "head":
            head_at = offset
        checksum = sums[tag] & 0xFFFFFFFF if sums is not None and tag in sums else _checksum(data)
        total += checksum
        directory += struct.pack(">4sIII", tag.encode("latin-1"), checksum, offset, len(data))
        body += (data, b"\0" * (-len(data) % 4))
        offset += len(data) + (-len(data) % 4)
    # every table starts 4-byte aligned and is zero-padded, so the file's checksum is the header's plus theirs
    adjustment = (0xB1B0AFBA - _checksum(header + directory) - total) & 0xFFFFFFFF
    font = bytearray(header + directory + b"".join(body))
    struct.pack_into(">I", font, head_at + 8, adjustment)
    return bytes(font)


def _cmap_table(mapping: Mapping[int, str], new_index: Mapping[str, int]) -> bytes:
    """A cmap with one format 4 subtable (Unicode BMP) for (0, 3) and (3, 1): runs of consecutive code points
    with consecutive glyph indices make one segment each."""
    codes = sorted(code for code in mapping if code < 0xFFFF)
    segments: list[tuple[int, int, int]] = []  # start, end, delta
    for code in codes:
        glyph = new_index[mapping[code]]
        if segments:
            start, end, delta = segments[-1]
            if code == end + 1 and (code + delta) & 0xFFFF == glyph:
                segments[-1] = (start, code, delta)
                continue
        segments.append((code, code, (glyph - code) & 0xFFFF))
    segments.append((0xFFFF, 0xFFFF, 1))
    count = len(segments)
    power = 1 << (count.bit_length() - 1)
    body = struct.pack(">HHHH", count * 2, power * 2, power.bit_length() - 1, count * 2 - power * 2)
    body += struct.pack(f">{count}H", *(end for _, end, _ in segments)) + b"\0\0"
    body += struct.pack(f">{count}H", *(start for start, _, _ in segments))
    body += struct.pack(f">{count}H", *(delta for _, _, delta in segments))
    body += b"\0\0" * count  # idRangeOffset
    subtable = struct.pack(">HHH", 4, 6 + len(body), 0) + body
    return struct.pack(">HHHHIHHI", 0, 2, 0, 3, 20, 3, 1, 20) + subtable


@cache
def _glyph_source() -> tuple[_GlyphSource, frozenset[str]]:
    """The working font parsed for subsetting, and the characters it maps."""
    try:
        source = _GlyphSource(_working_font())
    except Exception:  # a damaged cached copy: cut the font again (and replace the copy)
        source = _GlyphSource(_working_font(trust_cache=False))
    return source, frozenset(chr(cp) for cp in source.cmap)


@cache
def face_extent() -> tuple[float, float]:
    """How far the glyphs of the whole working font reach above and below the baseline (em): the extent every
    subset of it stays within."""
    source, _ = _glyph_source()
    boxes = source.bounds.values()
    units = source.units_per_em
    return max(b[3] for b in boxes) / units, -min(b[1] for b in boxes) / units


def in_working_font(characters: str) -> bool:
    """Whether the working font (the main face font cut to GB 2312 and Latin) has all of ``characters``."""
    return set(characters) <= _glyph_source()[1]


@lru_cache(maxsize=32)
def _subset(characters: str) -> bytes:
    from fontTools.ttLib import TTFont

    source, covered = _glyph_source()
    if set(characters) <= covered:
        return source.subset(characters)
    # Beyond GB 2312 (rare names, 生僻字): the full collection through fontTools' subsetter, hinting dropped.
    with TTFont(str(require_font()), fontNumber=FONT_INDEX, lazy=True, recalcTimestamp=False) as font:
        return _subset_of(font, characters)
