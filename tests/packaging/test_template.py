"""Face templates (照面模板): checking a template document, the fields it places, values shrunk to fit their box
or refused with the field named, formats, uploaded base images, and the process-wide compiled templates."""

from __future__ import annotations

import copy
import dataclasses
import io
import os
from datetime import date
from typing import Any

import pytest
from PIL import Image

from certstore.catalogue import CatalogueEntry, shipped_entries
from certstore.packaging import fonts
from certstore.packaging.face import LayoutError, lay_out_face, page_frame
from certstore.packaging.layout import FaceData
from certstore.packaging.template import FaceTemplate, TemplateError, compiled
from certstore.records import example_draft, prepare_version

ENTRY = next(e for e in shipped_entries() if e.base_image == "construction-permit.png")


def _document() -> dict[str, Any]:
    assert ENTRY.face_template is not None
    return copy.deepcopy(ENTRY.face_template)


def _data(entry: CatalogueEntry, **face: object) -> FaceData:
    draft = example_draft(entry, issue_date=date(2026, 11, 26))
    draft = dataclasses.replace(draft, face={**draft.face, **face})
    return FaceData.from_prepared(
        prepare_version(entry, draft, version=1, holder_key=os.urandom(32), serial_key=os.urandom(32))
    )


def test_every_shipped_type_places_every_face_field() -> None:
    """The six shipped templates are valid and place every field of their face schema."""
    for entry in shipped_entries():
        assert entry.face_template is not None, entry.name
        template = FaceTemplate.from_document(entry.face_template)
        assert template.placed_fields == frozenset(entry.face_schema["properties"]), entry.name


@pytest.mark.parametrize(
    ("change", "path", "message"),
    [
        (lambda d: d.pop("seal"), "", "'seal' is a required property"),
        (lambda d: d["fields"]["builder"]["value"].update(box=[26, 100, 158]), "/fields/builder/value/box", ""),
        (lambda d: d["fields"]["builder"]["value"].update(box=[150, 100, 70, 5]), "/fields/builder/value/box",
         "leaves the 210 × 297 mm page"),
        (lambda d: d["fields"]["builder"]["value"].update(size=[8, 12]), "/fields/builder/value/size",
         "the size range is inverted"),
        (lambda d: d["fields"]["builder"]["value"].update(format="roman"), "/fields/builder/value/format",
         "unknown format 'roman'"),
        (lambda d: d["qr"].update(y=290), "/qr", "leaves the"),
    ],
    ids=["schema", "box-shape", "off-page", "inverted", "format", "qr-off-page"],
)  # fmt: skip
def test_bad_templates_are_refused_with_a_path(change: Any, path: str, message: str) -> None:
    """Schema and semantic problems raise TemplateError (a ValueError) pointing at the culprit."""
    document = _document()
    change(document)
    with pytest.raises(TemplateError) as caught:
        FaceTemplate.from_document(document)
    assert isinstance(caught.value, ValueError)
    assert caught.value.path == path
    assert message in caught.value.message


def test_a_long_value_shrinks_and_wraps_inside_its_box() -> None:
    """A value longer than its box at the largest size is set smaller, over up to max_lines lines, inside it."""
    spec = _document()["fields"]["project_name"]["value"]
    x, y, w, h = spec["box"]
    long_name = "示例·锦华园住宅小区项目（一期）1#—3#楼、地下车库及配套商业用房、幼儿园" * 3
    layout = lay_out_face(_data(ENTRY, project_name=long_name))
    lines = layout.items_for("value:project_name")
    assert len(lines) >= 2 and layout.text_of("value:project_name") == long_name
    assert lines[0].size_mm < fonts.pt_to_mm(spec["size"][0])
    for line in lines:
        assert x - 1e-6 <= line.box.x and line.box.x + line.box.w <= x + w + 1e-6
        assert y - 1e-6 <= line.box.y and line.box.y + line.box.h <= y + h + 1e-6


def test_a_value_that_cannot_fit_names_its_field() -> None:
    """Beyond the smallest size within max_lines: LayoutError with the field's name."""
    with pytest.raises(LayoutError, match=r"建设单位 \(builder\)") as caught:
        lay_out_face(_data(ENTRY, builder="郑州示例置业有限公司" * 20))
    assert caught.value.field == "builder"


def test_formats_and_fixed_items() -> None:
    """Money with two decimals and separators; the upper-case date (二〇二六年十一月二十六日) of a 落款; the fixed
    items with their roles (number with its prefix, identifier, issuer)."""
    document = _document()
    document["fixed"]["issue_date"]["value"]["format"] = "date-upper"
    entry = dataclasses.replace(ENTRY, face_template=document)
    data = _data(entry, contract_price=1234567.5)
    layout = lay_out_face(data)
    assert layout.text_of("value:contract_price") == "1,234,567.50万元"
    assert layout.text_of("date") == "二〇二六年十一月二十六日"
    assert layout.text_of("number") == f"编号：{data.certificate_number}"
    assert layout.text_of("identifier") == f"证照标识：{data.identifier}"
    assert layout.text_of("issuer") == entry.issuer.name


def test_validity_and_holder_are_placed_like_fields() -> None:
    """The optional fixed items: 有效期限 (from 至 until, or 长期) and 持证主体, with a label from the template."""
    document = _document()
    document["fixed"]["validity"] = {
        "label": {"box": [26, 203, 20, 4.3], "size": 10.5},
        "value": {"box": [50, 203, 70, 4.63], "size": [10.5, 7], "format": "date-dotted"},
    }
    document["fixed"]["holder"] = {"value": {"box": [26, 208, 100, 4.63], "size": [10.5, 7]}}
    entry = dataclasses.replace(ENTRY, face_template=document)
    data = _data(entry)
    layout = lay_out_face(data)
    assert data.valid_until is None and layout.text_of("validity") == "长期"  # the permit has no end date
    assert layout.text_of("label:validity") == "有效期限"
    assert layout.text_of("holder") == data.holder.name
    dated = lay_out_face(dataclasses.replace(data, valid_until=date(2029, 11, 25)))
    assert dated.text_of("validity") == "2026.11.26至2029.11.25"


def test_an_uploaded_base_image_is_used() -> None:
    """page_frame and the face take entry.base_image_data (an uploaded PNG) over the shipped file."""
    image = Image.new("RGB", (1240, 1754), (250, 240, 220))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", dpi=(150, 150))
    entry = dataclasses.replace(ENTRY, base_image="asset:test", base_image_data=buffer.getvalue())
    frame = page_frame(entry)
    assert frame.width_mm == pytest.approx(1240 / 150 * 25.4, rel=1e-3)  # pHYs holds pixels per metre
    base = next(i for i in lay_out_face(_data(entry)).images if i.role == "base_image")
    assert base.data == frame.image and base.data != page_frame(ENTRY).image


def test_compiled_templates_are_built_once_per_version() -> None:
    """The shared texts are laid out once per (code, version) and document; another document is compiled anew."""
    first = compiled(ENTRY)
    assert compiled(ENTRY) is first
    assert compiled(dataclasses.replace(ENTRY)) is first  # an equal copy (e.g. unpickled in a worker)
    document = _document()
    document["title"]["size"] = [24, 18]
    other = compiled(dataclasses.replace(ENTRY, face_template=document))
    assert other is not first
    assert {t.role for t in first.static} >= {"title", "heading", "label:builder", "issuer", "qr_caption"}


def test_entries_without_a_template_keep_the_generic_layout() -> None:
    """No template: the generic label/value grid (it reports its body size; a template's faces do not)."""
    layout = lay_out_face(_data(dataclasses.replace(ENTRY, face_template=None)))
    assert "body_size_pt" in layout.extras and "template" not in layout.extras
