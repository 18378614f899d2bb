"""The face layout (照面排版): every shipped catalogue type, field texts by role, boxes, wrapping, QR code."""

from __future__ import annotations

import dataclasses
import io
import itertools
import os
import shutil
import subprocess
from collections.abc import Sequence
from datetime import date
from functools import cache
from pathlib import Path

import pytest
import segno
from PIL import Image

from certstore.catalogue import CatalogueEntry, base_image_path, shipped_entries
from certstore.identifiers import short_code
from certstore.packaging import fonts
from certstore.packaging.base_image import embedded_base_image
from certstore.packaging.face import (
    QR_SIZE_MM,
    SEAL_SIZE_MM,
    LayoutError,
    format_date,
    format_value,
    lay_out_face,
    page_frame,
    verification_url,
    wrap_text,
)
from certstore.packaging.layout import Box, FaceData, FaceLayout, TextItem
from certstore.packaging.qr import qr_matrix
from certstore.records import example_draft, prepare_version

ISSUED = date(2026, 11, 26)
EPS = 1e-6
ENTRIES = shipped_entries()
ENTRY_IDS = [Path(e.base_image or e.code).stem for e in ENTRIES]


def face_data(entry: CatalogueEntry, **face_changes: object) -> FaceData:
    """The example draft of ``entry`` (face fields replaced by ``face_changes``) prepared for issue."""
    draft = example_draft(entry, issue_date=ISSUED)
    if face_changes:
        draft = dataclasses.replace(draft, face={**draft.face, **face_changes})
    return FaceData.from_prepared(
        prepare_version(entry, draft, version=1, holder_key=os.urandom(32), serial_key=os.urandom(32))
    )


@cache
def example_layout(code: str) -> FaceLayout:
    """The layout of the example certificate of catalogue entry ``code`` (cached: layouts are immutable)."""
    entry = next(e for e in ENTRIES if e.code == code)
    return lay_out_face(face_data(entry))


def generic(entry: CatalogueEntry) -> CatalogueEntry:
    """``entry`` without its face template: the generic label/value layout (entries without a template)."""
    return dataclasses.replace(entry, face_template=None)


def inside(inner: Box, outer: Box) -> bool:
    return (
        inner.x >= outer.x - EPS
        and inner.y >= outer.y - EPS
        and inner.x + inner.w <= outer.x + outer.w + EPS
        and inner.y + inner.h <= outer.y + outer.h + EPS
    )


def overlap(a: Box, b: Box) -> bool:
    return a.x < b.x + b.w - EPS and b.x < a.x + a.w - EPS and a.y < b.y + b.h - EPS and b.y < a.y + a.h - EPS


def expected_text(entry: CatalogueEntry, name: str, value: object) -> str:
    spec = entry.face_schema["properties"][name]
    return format_value(value, unit=spec.get("x-unit"), format_=spec.get("format"))


def zbar_decode(png: bytes, tmp_path: Path) -> str:
    """Decode the one QR code in ``png`` with zbarimg (Debian zbar-tools)."""
    path = tmp_path / "qr.png"
    path.write_bytes(png)
    result = subprocess.run(
        ["zbarimg", "--raw", "-q", str(path)], capture_output=True, text=True, timeout=30, check=False
    )
    assert result.returncode == 0, f"zbarimg found no code (rc {result.returncode}): {result.stderr}"
    return result.stdout.strip()


needs_zbar = pytest.mark.skipif(
    shutil.which("zbarimg") is None,
    reason="zbarimg not installed (Debian package zbar-tools; scripts/install-system-deps --test installs it)",
)


# --- every shipped type --------------------------------------------------------------------------------------


@pytest.mark.parametrize("entry", ENTRIES, ids=ENTRY_IDS)
def test_every_field_is_on_the_face_as_text(entry: CatalogueEntry) -> None:
    data = face_data(entry)
    layout = lay_out_face(data)
    assert layout.text_of("title") == entry.name
    assert layout.title == entry.name
    for field in entry.face_fields():
        assert layout.text_of(f"label:{field.name}") == field.label
        assert layout.text_of(f"value:{field.name}") == expected_text(
            entry, field.name, data.face[field.name]
        )
    number = layout.text_of("number")
    assert number is not None and number.endswith(data.certificate_number)
    assert layout.text_of("issuer") == entry.issuer.name
    assert layout.text_of("date") == "2026年11月26日"
    assert layout.text_of("identifier") == f"证照标识：{data.identifier}"
    # the holder's ID number is not printed unless the face schema has it (none of these does)
    assert all(data.holder.id_number not in t.text for t in layout.texts)
    assert layout.font_family == fonts.FONT_FAMILY
    assert "missing_glyphs" not in layout.extras


@pytest.mark.parametrize("entry", ENTRIES, ids=ENTRY_IDS)
def test_nothing_leaves_its_box(entry: CatalogueEntry) -> None:
    layout = example_layout(entry.code)
    frame = page_frame(entry)
    page = Box(0, 0, layout.width_mm, layout.height_mm)
    assert (layout.width_mm, layout.height_mm) == (frame.width_mm, frame.height_mm)
    for item in layout.texts:
        assert item.box.w == pytest.approx(
            fonts.text_width_mm(item.text.rstrip(), item.size_mm, letter_spacing_mm=item.letter_spacing_mm)
        )
        assert item.box.h == pytest.approx(item.size_mm)
        if item.role == "title":
            assert inside(item.box, frame.title), item
        elif item.role == "heading":
            assert frame.heading_box is not None and inside(item.box, frame.heading_box), item
        else:
            assert inside(item.box, frame.content), item
            assert item.size_mm >= fonts.pt_to_mm(5) - EPS
    for image in layout.images:
        assert inside(image.box, page), image.role
    qr = next(i for i in layout.images if i.role == "qr_code")
    assert inside(qr.box, frame.content)
    assert (qr.box.w, qr.box.h) == (QR_SIZE_MM, QR_SIZE_MM)
    assert layout.seal_box is not None and inside(layout.seal_box, frame.content)
    base = [i for i in layout.images if i.role == "base_image"]
    assert len(base) == 1 and base[0].data == embedded_base_image(base_image_path(entry).read_bytes())  # type: ignore[union-attr]


@pytest.mark.parametrize("entry", ENTRIES, ids=ENTRY_IDS)
def test_no_two_text_lines_overlap(entry: CatalogueEntry) -> None:
    layout = example_layout(entry.code)
    qr = next(i for i in layout.images if i.role == "qr_code")
    for a, b in itertools.combinations(layout.texts, 2):
        assert not overlap(a.box, b.box), (a, b)
    for item in layout.texts:
        assert not overlap(item.box, qr.box), item
    # wrapped lines of one value are stacked at one x, each below the previous
    for field in entry.face_fields():
        lines = layout.items_for(f"value:{field.name}")
        assert len({round(t.box.x, 6) for t in lines}) == 1
        assert all(b.box.y > a.box.y + a.size_mm for a, b in itertools.pairwise(lines))


@pytest.mark.parametrize("entry", ENTRIES, ids=ENTRY_IDS)
def test_seal_over_issuer_and_date_bottom_right_qr_bottom_left(entry: CatalogueEntry) -> None:
    layout = example_layout(entry.code)
    seal = layout.seal_box
    assert seal is not None and (seal.w, seal.h) == (SEAL_SIZE_MM, SEAL_SIZE_MM)
    issuer, day = layout.items_for("issuer")[0], layout.items_for("date")[0]
    assert overlap(seal, issuer.box) and overlap(seal, day.box)  # the seal covers the 落款, as on paper
    assert seal.x + seal.w / 2 > layout.width_mm * 0.6
    fields = [t for t in layout.texts if t.role.startswith(("label:", "value:"))]
    assert all(not overlap(seal, t.box) for t in fields)  # but no field text
    assert all(t.box.y + t.box.h < seal.y for t in fields if t.box.x + t.box.w > seal.x)
    qr = next(i for i in layout.images if i.role == "qr_code").box
    assert qr.x + qr.w < layout.width_mm / 2
    assert qr.y > max(t.box.y for t in fields if t.box.x < qr.x + qr.w)  # below the fields at its left
    identifier = layout.items_for("identifier")[0]
    assert identifier.box.y > max(seal.y + seal.h, qr.y + qr.h)  # the last line


@needs_zbar
@pytest.mark.parametrize("entry", ENTRIES[:2], ids=ENTRY_IDS[:2])
def test_qr_code_decodes_to_the_verification_url(entry: CatalogueEntry, tmp_path: Path) -> None:
    data = face_data(entry)
    layout = lay_out_face(data, verify_base_url="https://zz.example.gov.cn/certstore/")
    url = f"https://zz.example.gov.cn/certstore/v/{short_code(data.identifier)}"
    assert len(url) == len("https://zz.example.gov.cn/certstore/v/") + 28
    assert (
        layout.extras["verify_url"]
        == url
        == verification_url(data.identifier, "https://zz.example.gov.cn/certstore")
    )
    qr = next(i for i in layout.images if i.role == "qr_code")
    assert zbar_decode(qr.data, tmp_path) == url


def test_qr_code_carries_the_short_path_or_on_request_the_long_one() -> None:
    data = face_data(ENTRIES[0])
    code = short_code(data.identifier)
    assert code is not None and len(code) == 28
    assert lay_out_face(data).extras["verify_url"] == f"http://127.0.0.1:8000/v/{code}"
    long = lay_out_face(data, short_qr=False)  # how faces sealed before the short path were laid out
    assert long.extras["verify_url"] == f"http://127.0.0.1:8000/v/{data.identifier}"
    assert verification_url(data.identifier, "https://a.example/", short=False) == (
        f"https://a.example/v/{data.identifier}"
    )
    # an identifier whose serial is not 16 bytes of hex (imported) keeps the long path
    foreign = "1.2.156.3005.2.11410100990000017F001.11410100990000017F.00000123.001.0"
    assert verification_url(foreign, "https://a.example") == f"https://a.example/v/{foreign}"


def test_qr_code_is_the_level_m_encoding_of_the_url() -> None:
    """Without a decoder: the PNG's modules are exactly the symbol :func:`qr_matrix` makes of the URL, and that
    symbol's format information says error correction level M (tests/packaging/test_qr.py decodes it)."""
    entry = ENTRIES[0]
    layout = example_layout(entry.code)
    url = layout.extras["verify_url"]
    identifier = layout.text_of("identifier").removeprefix("证照标识：")  # type: ignore[union-attr]
    assert url == f"http://127.0.0.1:8000/v/{short_code(identifier)}"
    qr = next(i for i in layout.images if i.role == "qr_code")
    matrix = qr_matrix(url)
    assert level_of(matrix) == "M"
    image = Image.open(io.BytesIO(qr.data)).convert("L")
    modules = len(matrix)
    scale, border = 8, 2
    assert image.size == ((modules + 2 * border) * scale,) * 2
    seen = [
        [
            image.getpixel(((col + border) * scale + scale // 2, (row + border) * scale + scale // 2)) < 128
            for col in range(modules)
        ]
        for row in range(modules)
    ]
    assert seen == [[bool(v) for v in row] for row in matrix]


def _format_bits(matrix: Sequence[Sequence[int]]) -> tuple[int, ...]:
    """The 15 modules of the first copy of the format information (ISO/IEC 18004 §7.9): row 8 left of the
    timing column, then column 8 upwards."""
    positions = [(8, c) for c in (0, 1, 2, 3, 4, 5, 7, 8)] + [(r, 8) for r in (7, 5, 4, 3, 2, 1, 0)]
    return tuple(int(bool(matrix[r][c])) for r, c in positions)


def level_of(matrix: Sequence[Sequence[int]]) -> str:
    """The error correction level a symbol declares, found by comparing its format information with segno's
    symbols of the same version at each level and mask."""
    version = (len(matrix) - 17) // 4
    for level in "LMQH":
        for mask in range(8):
            code = segno.make("x", error=level.lower(), version=version, mask=mask, boost_error=False)
            if _format_bits(code.matrix) == _format_bits(matrix):
                return level
    raise AssertionError("no valid format information")


# --- values and wrapping -------------------------------------------------------------------------------------


def test_value_formatting() -> None:
    assert format_value(18650.42, unit="万元") == "18,650.42万元"
    assert format_value(1234567, unit="元") == "1,234,567.00元"
    assert format_value(0.125, unit="万元") == "0.13万元"  # 四舍五入
    assert format_value(97812.5, unit="平方米") == "97812.5平方米"
    assert format_value(35218.0, unit="平方米") == "35218平方米"
    assert format_value(912, unit="日历天") == "912日历天"
    assert format_value(1e-7) == "0.0000001"
    assert format_value("2019-03-12", format_="date") == "2019年3月12日"
    assert format_value("长期", format_="date-or-permanent") == "长期"
    assert format_value("2039-03-11", format_="date-or-permanent") == "2039年3月11日"
    assert format_value("2019-03-12") == "2019-03-12"  # only date-formatted fields are rewritten
    assert format_value(True) == "是" and format_value(False) == "否"
    assert format_value(["甲类", "乙类"]) == "甲类、乙类"
    assert format_value("  约12.6  ", unit="万平方米") == "约12.6万平方米"
    assert format_value(None) == ""
    assert format_date(date(2026, 1, 5)) == "2026年1月5日"


def test_wrapping_keeps_words_and_punctuation_rules() -> None:
    size = 4.0
    text = "经审查，该工程防空地下室设计符合《人民防空地下室设计规范》（GB 50038）要求，同意建设。项目代码2024-410105-70-03-000123。"
    for width in (30.0, 41.0, 57.5, 80.0):
        lines = wrap_text(text, width, size)
        assert "".join(lines) == text
        assert all(fonts.text_width_mm(line.rstrip(), size) <= width + EPS for line in lines)
        assert all(line[0] not in "，。、；：）》" for line in lines[1:])
        assert all(line.rstrip()[-1] not in "（《" for line in lines)
        if width >= 57.5:
            assert any("2024-410105-70-03-000123" in line for line in lines)  # a code is not split
    assert wrap_text("第一段\n第二段", 80.0, size) == ["第一段", "第二段"]
    with pytest.raises(LayoutError, match="narrower than one character"):
        wrap_text("中文", 3.0, size)


def test_a_long_value_wraps_inside_the_content_box() -> None:
    """Generic layout: a value of the schema's maximum length wraps and the body size shrinks."""
    entry = generic(next(e for e in ENTRIES if e.base_image == "construction-permit.png"))
    long_name = ("示例·锦华园住宅小区项目（一期）1#—3#楼、地下车库及配套商业用房" * 6)[
        :200
    ]  # the schema maximum
    layout = lay_out_face(face_data(entry, project_name=long_name))
    lines = layout.items_for("value:project_name")
    assert len(lines) >= 3
    assert layout.text_of("value:project_name") == long_name
    assert float(layout.extras["body_size_pt"]) < float(lay_out_face(face_data(entry)).extras["body_size_pt"])
    content = page_frame(entry).content
    assert all(inside(t.box, content) for t in layout.texts if t.role != "title" and t.role != "heading")
    for a, b in itertools.combinations(layout.texts, 2):
        assert not overlap(a.box, b.box)


@pytest.mark.parametrize("templated", [False, True], ids=["generic", "template"])
def test_an_impossibly_long_value_names_its_field(templated: bool) -> None:
    """Both layouts name the field that cannot fit (the template: its box at the smallest size)."""
    entry = next(e for e in ENTRIES if e.base_image == "business-licence.png")
    entry = entry if templated else generic(entry)
    scope = ("技术服务、技术开发、技术咨询；" * 200)[:2000]  # valid for the schema (maxLength 2000)
    with pytest.raises(LayoutError, match=r"经营范围 \(business_scope\)") as caught:
        lay_out_face(face_data(entry, business_scope=scope))
    assert caught.value.field == "business_scope"


# --- page styles ---------------------------------------------------------------------------------------------


def test_business_licence_is_landscape_in_two_columns_with_the_term_on_one_line() -> None:
    """Generic layout of a landscape page: two columns, 营业期限 … 至 … on one line, short labels spread."""
    entry = generic(next(e for e in ENTRIES if e.base_image == "business-licence.png"))
    layout = lay_out_face(face_data(entry))
    assert (layout.width_mm, layout.height_mm) == (297.0, 210.0)
    label_x = {round(t.box.x, 3) for t in layout.texts if t.role.startswith("label:") and t.text != "至"}
    assert len(label_x) == 2  # two columns of labels
    start = layout.items_for("value:business_term_start")[0]
    until = layout.items_for("label:business_term_end")[0]
    end = layout.items_for("value:business_term_end")[0]
    assert start.baseline_y == until.baseline_y == end.baseline_y
    assert start.box.x < until.box.x < end.box.x
    assert (start.text, until.text, end.text) == ("2019年3月12日", "至", "长期")
    short = layout.items_for("label:entity_name")[0]  # 名称, spread over four characters (分散对齐)
    assert short.letter_spacing_mm > 0
    assert short.box.w == pytest.approx(4 * short.size_mm)


def test_title_is_text_and_no_longer_in_the_base_image() -> None:
    for entry in ENTRIES:
        path = base_image_path(entry)
        assert path is not None
        frame = page_frame(entry)
        with Image.open(path) as image:
            assert "certstore-layout" in image.text
            rgb = image.convert("RGB")
            scale = rgb.width / frame.width_mm
            boxes = [frame.title] + ([frame.heading_box] if frame.heading_box else [])
            for box in boxes:
                crop = rgb.crop(
                    (
                        round(box.x * scale),
                        round(box.y * scale),
                        round((box.x + box.w) * scale),
                        round((box.y + box.h) * scale),
                    )
                )
                red = sum(1 for r, g, b in crop.get_flattened_data() if r > 120 and g < 90 and b < 90)
                assert red == 0, f"{path.name}: title still drawn in the base image"
        layout = example_layout(entry.code)
        title = layout.items_for("title")[0]
        assert title.bold and title.color[0] > 120 and title.size_mm > 8
        assert title.box.x + title.box.w / 2 == pytest.approx(frame.title.x + frame.title.w / 2)
        if frame.heading:
            assert layout.text_of("heading") == "中华人民共和国"


@pytest.mark.parametrize("templated", [False, True], ids=["generic", "template"])
def test_optional_fields_left_empty_are_not_printed(templated: bool) -> None:
    """An optional field left empty prints no value; the generic layout drops its row, a template keeps the
    label of its form (as the paper form does)."""
    entry = next(e for e in ENTRIES if e.base_image == "construction-permit.png")
    entry = entry if templated else generic(entry)
    draft = example_draft(entry, issue_date=ISSUED)
    face = {k: v for k, v in draft.face.items() if k not in ("remarks", "project_code")}
    prepared = prepare_version(
        entry,
        dataclasses.replace(draft, face=face),
        version=1,
        holder_key=os.urandom(32),
        serial_key=os.urandom(32),
    )
    layout = lay_out_face(FaceData.from_prepared(prepared))
    assert layout.items_for("value:remarks") == () and layout.items_for("value:project_code") == ()
    assert layout.text_of("label:remarks") == ("备注" if templated else None)
    assert layout.text_of("value:builder") == "郑州示例置业有限公司"


def test_entry_without_base_image_gets_a_plain_a4_page() -> None:
    """Generic layout without a base image: a plain A4 page with the default boxes."""
    entry = dataclasses.replace(generic(ENTRIES[0]), base_image=None)
    data = dataclasses.replace(face_data(ENTRIES[0]), entry=entry)
    layout = lay_out_face(data)
    assert (layout.width_mm, layout.height_mm) == (210.0, 297.0)
    assert [i.role for i in layout.images] == ["qr_code"]
    content = page_frame(entry).content
    assert all(inside(t.box, content) for t in layout.texts if t.role != "title")


def test_layout_is_deterministic() -> None:
    entry = ENTRIES[3]
    data = face_data(entry)
    assert lay_out_face(data) == lay_out_face(data)


def test_text_items_carry_their_baseline() -> None:
    item = example_layout(ENTRIES[0].code).items_for("issuer")[0]
    assert isinstance(item, TextItem)
    assert item.baseline_y == pytest.approx(item.box.y + 0.8 * item.size_mm)
