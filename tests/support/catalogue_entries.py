"""A catalogue type an agency designs itself, for the upload-and-approval tests: 城市道路挖掘许可证 of the
construction bureau (11410100990000025A, whose dev seal is ``default``), an A4 base image (PNG or SVG) and a face
template placing its three fields — and the ways to spoil it (another organisation's seal, a value box too small
for the longest example)."""

from __future__ import annotations

import copy
import io
from functools import cache
from typing import Any

from PIL import Image, ImageDraw

ISSUER = {"name": "郑州市城乡建设局", "credit_code": "11410100990000025A"}
CODE = "11410100990000025A901"
NAME = "城市道路挖掘许可证"
NUMBER = "郑挖字〔2026〕第0001号"
LONG_NAME = "示例·金水区农业路（花园路至文化路段）燃气管道改造及雨污分流工程第三标段"

FACE_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "城市道路挖掘许可证照面",
    "type": "object",
    "additionalProperties": False,
    "required": ["project_name", "location", "area"],
    "properties": {
        "project_name": {
            "type": "string", "title": "工程名称", "x-label": "工程名称", "x-order": 1,
            "minLength": 2, "maxLength": 60, "examples": ["燃气管道改造工程", LONG_NAME],
        },
        "location": {
            "type": "string", "title": "挖掘地点", "x-label": "挖掘地点", "x-order": 2,
            "minLength": 2, "maxLength": 80, "examples": ["金水区农业路与花园路交叉口东北角人行道"],
        },
        "area": {
            "type": "number", "title": "挖掘面积", "x-label": "挖掘面积", "x-unit": "平方米", "x-order": 3,
            "exclusiveMinimum": 0, "examples": [126.5, 1288.75],
        },
    },
}  # fmt: skip


def _field(y: float, *, value_h: float = 16.0, max_lines: int = 2) -> dict[str, Any]:
    return {
        "label": {"box": [26, y, 30, 7], "size": 12, "align": "spread"},
        "value": {"box": [62, y, 122, value_h], "size": [12, 9], "max_lines": max_lines},
    }


TEMPLATE: dict[str, Any] = {
    "page": {"width": 210, "height": 297},
    "title": {"box": [26, 40, 158, 16], "size": 26, "align": "center", "letter_spacing": 0.3},
    "fields": {"project_name": _field(90), "location": _field(115), "area": _field(140, value_h=8, max_lines=1)},
    "fixed": {
        "number": {"value": {"box": [110, 70, 74, 7], "size": [11, 8], "align": "right"}},
        "holder": {"label": {"box": [26, 160, 30, 7], "size": 12, "align": "spread"},
                   "value": {"box": [62, 160, 122, 8], "size": [12, 9]}},
        "issuer": {"value": {"box": [110, 232, 74, 8], "size": [14, 10], "align": "center"}},
        "issue_date": {"value": {"box": [110, 242, 74, 8], "size": [14, 10], "align": "center"}},
        "identifier": {"value": {"box": [26, 275, 158, 5], "size": [6.5, 5], "align": "center"}},
    },
    "seal": {"x": 126, "y": 215, "size": 42},
    "qr": {"x": 30, "y": 228, "size": 24, "caption": {"box": [26, 254, 32, 4], "size": 7.5, "align": "center"}},
}  # fmt: skip


def entry_document(
    *, base_image: str | None = None, seal: str = "default", version: int = 1
) -> dict[str, Any]:
    """The entry document (without a template: add ``face_template``)."""
    return {
        "code": CODE,
        "version": version,
        "name": NAME,
        "category": "licence",
        "issuer": dict(ISSUER),
        "holder_type": "legal_person",
        "base_image": base_image,
        "seal": seal,
        "number_format": {"pattern": "^郑挖字〔20[0-9]{2}〕第[0-9]{4}号$", "example": NUMBER},
        "validity": {"kind": "fixed", "years": 1},
        "providing_unit": ISSUER["name"],
        "level": "city",
        "annual_inspection": False,
        "face_schema": copy.deepcopy(FACE_SCHEMA),
    }


def template(*, cramped: bool = False) -> dict[str, Any]:
    """The face template; ``cramped``: the project name gets one short line, too small for the longest example."""
    result = copy.deepcopy(TEMPLATE)
    if cramped:
        result["fields"]["project_name"] = _field(90, value_h=6, max_lines=1)
        result["fields"]["project_name"]["value"]["box"][2] = 60
    return result


@cache
def base_image_png(*, dpi: int = 150, size_mm: tuple[float, float] = (210, 297), mode: str = "RGB") -> bytes:
    """A plain cream page with a red frame, at ``dpi``, as an agency's designer would export it."""
    width, height = round(size_mm[0] / 25.4 * dpi), round(size_mm[1] / 25.4 * dpi)
    image = Image.new("RGB", (width, height), (250, 246, 236))
    draw = ImageDraw.Draw(image)
    inset = round(12 / 25.4 * dpi)
    draw.rectangle(
        [inset, inset, width - inset, height - inset], outline=(163, 31, 36), width=max(2, dpi // 30)
    )
    if mode != "RGB":
        image = image.convert(mode)
    out = io.BytesIO()
    image.save(out, "PNG", dpi=(dpi, dpi))
    return out.getvalue()


BASE_IMAGE_SVG = b"""<?xml version="1.0" encoding="UTF-8"?>
<svg xmlns="http://www.w3.org/2000/svg" width="210mm" height="297mm" viewBox="0 0 210 297">
  <rect width="210" height="297" fill="#faf6ec"/>
  <rect x="12" y="12" width="186" height="273" fill="none" stroke="#a31f24" stroke-width="1.2"/>
  <rect x="15" y="15" width="180" height="267" fill="none" stroke="#a31f24" stroke-width="0.4"/>
</svg>
"""
