"""Where an independent reader puts the text of our files — run as a script by the interpreter that has easyofd
(see ``easyofd_render.py``), once for several files, since starting easyofd costs seconds.

Usage: ``python easyofd_positions.py JOBS.json`` where the JSON lists ``{"name", "ofd", "pdf"}`` objects (file
paths). For each job, easyofd (PyPI ``easyofd``) reads the OFD package and draws it into a PDF; PyMuPDF (an
easyofd dependency) then lists the glyphs of that drawing and of our own PDF rendition. Prints one JSON
object on the last line: ``{name: {"easyofd": [...], "pdf": [...]}}``, one ``[character, x_mm, baseline_mm,
size_mm]`` per glyph drawn — its origin in millimetres from the page's top-left corner.
"""

from __future__ import annotations

import json
import sys
import tempfile
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from easyofd_render import _merged


def _glyphs(pdf: bytes, width_mm: float | None = None) -> list[list[object]]:
    import fitz  # PyMuPDF

    document = fitz.open(stream=pdf, filetype="pdf")
    page = document[0]
    scale = (width_mm / page.rect.width) if width_mm else 25.4 / 72
    found: list[list[object]] = []
    for block in page.get_text("rawdict")["blocks"]:
        for line in block.get("lines", []):
            for span in line["spans"]:
                for char in span["chars"]:
                    if char["c"].strip():
                        x, y = char["origin"]
                        found.append([char["c"], x * scale, y * scale, span["size"] * scale])
    return found


def main(jobs_path: str) -> None:
    import io

    from easyofd.ofd import OFD
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.ttfonts import TTFont

    jobs = json.loads(Path(jobs_path).read_text(encoding="utf-8"))
    files = [Path(job["ofd"]).read_bytes() for job in jobs]
    # easyofd draws with the face registered as 宋体, registered once per process: the font programs of all
    # the files merged into one (they are subsets of the same face font)
    programs = []
    for data in files:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            programs += [archive.read(n) for n in sorted(archive.namelist()) if n.endswith(".ttf")]
    font_program, _ = _merged(programs)
    with tempfile.NamedTemporaryFile(suffix=".ttf", delete=False) as handle:
        handle.write(font_program)
    pdfmetrics.registerFont(TTFont("宋体", handle.name))
    result = {}
    for job, data in zip(jobs, files, strict=True):
        ofd = OFD()
        ofd.read(data, fmt="binary")
        result[job["name"]] = {
            "easyofd": _glyphs(ofd.to_pdf(), job["width_mm"]),
            "pdf": _glyphs(Path(job["pdf"]).read_bytes()),
        }
    print(json.dumps(result, ensure_ascii=False))


if __name__ == "__main__":
    main(sys.argv[1])
