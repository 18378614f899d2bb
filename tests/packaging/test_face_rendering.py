"""Each shipped type's face through the OFD writer, the PDF writer and an independent reader (easyofd): the
texts land where the layout put them, within 0.5 mm, in all three."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Sequence
from datetime import date
from pathlib import Path

import pytest

from certstore.catalogue import CatalogueEntry, shipped_entries
from certstore.packaging import fonts
from certstore.packaging.face import lay_out_face
from certstore.packaging.layout import FaceData, FaceLayout, TextItem
from certstore.packaging.ofd import build_ofd
from certstore.records import example_draft, prepare_version
from tests.packaging.test_pdf import build
from tests.support.ofd import easyofd_python

TOLERANCE_MM = 0.5
POSITIONS = Path(__file__).parent / "ofd" / "easyofd_positions.py"
ENTRIES = shipped_entries()


def _layout(entry: CatalogueEntry) -> tuple[FaceLayout, dict[str, str]]:
    draft = example_draft(entry, issue_date=date(2026, 11, 26))
    prepared = prepare_version(entry, draft, version=1, holder_key=os.urandom(32), serial_key=os.urandom(32))
    return lay_out_face(FaceData.from_prepared(prepared)), {k: str(v) for k, v in prepared.metadata.items()}


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[FaceLayout, dict[str, list[list]]]]:
    """Every shipped type's example face: its layout, and the glyphs easyofd draws from the OFD and that our
    PDF carries — one easyofd process for all six (it takes seconds to start)."""
    python = easyofd_python()
    if python is None:
        pytest.skip("easyofd is not installed (pip install easyofd, or set CERTSTORE_EASYOFD_PYTHON)")
    workdir = tmp_path_factory.mktemp("rendering")
    layouts: dict[str, FaceLayout] = {}
    jobs = []
    for entry in ENTRIES:
        layout, metadata = _layout(entry)
        layouts[entry.code] = layout
        ofd, pdf = workdir / f"{entry.code}.ofd", workdir / f"{entry.code}.pdf"
        ofd.write_bytes(build_ofd(layout, metadata=metadata))
        pdf.write_bytes(build(layout, metadata))
        jobs.append({"name": entry.code, "ofd": str(ofd), "pdf": str(pdf), "width_mm": layout.width_mm})
    (workdir / "jobs.json").write_text(json.dumps(jobs), encoding="utf-8")
    run = subprocess.run(
        [python, str(POSITIONS), str(workdir / "jobs.json")],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=workdir,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    spans = json.loads(run.stdout.strip().splitlines()[-1])
    return {code: (layouts[code], spans[code]) for code in layouts}


def _glyph_positions(item: TextItem) -> list[tuple[str, float]]:
    """Each glyph of ``item`` and the x of its origin, as the layout places it (advances plus letter spacing)."""
    positions = []
    x = item.box.x
    for char in item.text:
        positions.append((char, x))
        x += fonts.char_advance_em(char) * item.size_mm + item.letter_spacing_mm
    return [(c, px) for c, px in positions if c.strip()]


def _nearest(char: str, x: float, baseline: float, glyphs: Sequence[list]) -> list | None:
    found = [g for g in glyphs if g[0] == char]
    return min(found, key=lambda g: abs(g[1] - x) + abs(g[2] - baseline)) if found else None


@pytest.mark.parametrize("entry", ENTRIES, ids=[e.base_image or e.code for e in ENTRIES])
@pytest.mark.parametrize("reader", ["easyofd", "pdf"])
def test_texts_are_where_the_layout_put_them(
    rendered: dict[str, tuple[FaceLayout, dict[str, list[list]]]], entry: CatalogueEntry, reader: str
) -> None:
    """Every glyph of every text line of the face (title, labels, values, number, 落款, identifier) within
    0.5 mm of where the layout put it — origin and baseline, at the layout's size — as easyofd draws the OFD
    and as our PDF carries it."""
    layout, glyphs = rendered[entry.code]
    assert layout.extras.get("template") == "1"  # the shipped types are laid out by their templates
    drawn = glyphs[reader]
    checked = 0
    for item in layout.texts:
        for char, x in _glyph_positions(item):
            glyph = _nearest(char, x, item.baseline_y, drawn)
            assert glyph is not None, f"{reader}: {item.role}: {char!r} of {item.text!r} not drawn"
            _, gx, gy, size = glyph
            assert abs(gx - x) <= TOLERANCE_MM and abs(gy - item.baseline_y) <= TOLERANCE_MM, (
                f"{reader}: {item.role}: {char!r} of {item.text!r} at ({gx:.2f}, {gy:.2f}), "
                f"laid out at ({x:.2f}, {item.baseline_y:.2f})"
            )
            assert abs(size - item.size_mm) <= 0.1, (reader, item.role, size, item.size_mm)
            checked += 1
    assert checked >= 300
