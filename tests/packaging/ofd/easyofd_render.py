"""Render an OFD file with easyofd (PyPI ``easyofd``, an independent OFD reader) — run as a script by the
interpreter that has easyofd, possibly a separate virtual environment (it pulls PyMuPDF, reportlab, numpy).

Usage: ``python easyofd_render.py FILE.ofd OUT_PREFIX`` → writes ``OUT_PREFIX_0.png`` … (100 dpi) and prints a
JSON object ``{"pages": N, "text": [...page texts...]}`` on the last line of standard output.

easyofd parses the package (OFD.xml → Document.xml → pages, resources, embedded fonts, signatures) and draws it
into a PDF with reportlab; seals are drawn from SignedValue.dat at each StampAnnot. Its text drawing uses a
face named "宋体" whatever the TextObject's Font says, so the embedded font program of the file is registered
under that name first: the glyphs drawn are the file's own.
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
        font_name = next(name for name in archive.namelist() if name.endswith(".ttf"))
        font_program = archive.read(font_name)
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
    print(json.dumps({"pages": len(document), "text": texts}, ensure_ascii=False))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
