"""Render an OFD file with easyofd (PyPI ``easyofd``, an independent OFD reader) — run as a script by the
interpreter that has easyofd, possibly a separate virtual environment (it pulls PyMuPDF, reportlab, numpy).

Usage: ``python easyofd_render.py FILE.ofd OUT_PREFIX`` → writes ``OUT_PREFIX_0.png`` … (100 dpi) and prints a
JSON object ``{"pages": N, "text": [...page texts...]}`` on the last line of standard output.

easyofd parses the package (OFD.xml → Document.xml → pages, resources, embedded fonts, signatures) and draws it
into a PDF with reportlab; seals are drawn from SignedValue.dat at each StampAnnot. Its text drawing uses a
face named "宋体" whatever the TextObject's Font says, so the embedded font program of the file is registered
under that name first: the glyphs drawn are the file's own. A file with rare characters (生僻字) embeds a second
font (the fallback font's subset): its glyphs are copied into the first, scaled to its em, so the one face
easyofd draws with has them all. ``"missing"`` in the output lists the characters of the file's text objects that face lacks.
"""

from __future__ import annotations

import io
import json
import sys
import tempfile
import zipfile
from pathlib import Path


def main(source: str, prefix: str) -> None:
    data = Path(source).read_bytes()
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.ttfonts import TTFont

    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        programs = [archive.read(name) for name in sorted(archive.namelist()) if name.endswith(".ttf")]
    font_program, covered = _merged(programs)
    with tempfile.NamedTemporaryFile(suffix=".ttf", delete=False) as handle:
        handle.write(font_program)
    pdfmetrics.registerFont(TTFont("宋体", handle.name))

    import fitz  # PyMuPDF, an easyofd dependency
    from easyofd.ofd import OFD

    ofd = OFD()
    ofd.read(data, fmt="binary")
    pdf = ofd.to_pdf()
    document = fitz.open(stream=pdf, filetype="pdf")
    texts = []
    for index, page in enumerate(document):
        page.get_pixmap(dpi=100).save(f"{prefix}_{index}.png")
        texts.append(page.get_text())
    missing = sorted({ch for ch in _drawn_text(data) if not ch.isspace() and ord(ch) not in covered})
    print(json.dumps({"pages": len(document), "text": texts, "missing": missing}, ensure_ascii=False))


def _drawn_text(data: bytes) -> str:
    """Every character of the package's ``TextCode`` elements (what easyofd is asked to draw)."""
    import xml.etree.ElementTree as ElementTree

    found = []
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        for name in archive.namelist():
            if name.endswith("Content.xml"):
                root = ElementTree.fromstring(archive.read(name))
                found.extend(e.text or "" for e in root.iter() if e.tag.endswith("TextCode"))
    return "".join(found)


def _merged(programs: list[bytes]) -> tuple[bytes, set[int]]:
    """The package's font programs as one TrueType font (the first, plus the glyphs of the others for the
    characters it lacks, scaled to its units per em) and the code points it maps."""
    from fontTools.pens.recordingPen import DecomposingRecordingPen
    from fontTools.pens.transformPen import TransformPen
    from fontTools.pens.ttGlyphPen import TTGlyphPen
    from fontTools.ttLib import TTFont as FontFile
    from fontTools.ttLib.tables._c_m_a_p import CmapSubtable

    main = FontFile(io.BytesIO(programs[0]))
    mapping = dict(main.getBestCmap())
    if len(programs) > 1:
        glyf, hmtx = main["glyf"], main["hmtx"]
        order = list(main.getGlyphOrder())
        for program in programs[1:]:
            other = FontFile(io.BytesIO(program))
            factor = main["head"].unitsPerEm / other["head"].unitsPerEm
            glyphs = other.getGlyphSet()
            for code, name in other.getBestCmap().items():
                if code in mapping:
                    continue
                new = f"u{code:04X}"
                recording = DecomposingRecordingPen(glyphs)  # composites drawn as outlines
                glyphs[name].draw(recording)
                pen = TTGlyphPen(None)
                recording.replay(TransformPen(pen, (factor, 0, 0, factor, 0, 0)))
                glyph = pen.glyph()
                order.append(new)
                glyf.glyphs[new] = glyph
                glyph.recalcBounds(glyf)
                hmtx.metrics[new] = (round(other["hmtx"][name][0] * factor), getattr(glyph, "xMin", 0))
                mapping[code] = new
        glyf.glyphOrder = order
        main.setGlyphOrder(order)
        table = CmapSubtable.newSubtable(12)
        table.platformID, table.platEncID, table.language, table.cmap = 3, 10, 0, dict(mapping)
        bmp = CmapSubtable.newSubtable(4)
        bmp.platformID, bmp.platEncID, bmp.language = 3, 1, 0
        bmp.cmap = {code: name for code, name in mapping.items() if code <= 0xFFFF}
        main["cmap"].tables = [bmp, table]
    out = io.BytesIO()
    main.save(out)
    return out.getvalue(), set(mapping)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
