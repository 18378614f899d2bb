"""The checks a catalogue entry (证照目录条目) passes before the bureau may approve it (审批前检查).

:func:`check_entry` runs them all and returns one named result per check — passed or failed, with the reason in
English (API problems and JSON) and in Chinese (the pages) — and the preview of the longest example face:

``seal_owner`` (印章归属)
    the seal the entry names is registered to the issuer's credit code and not revoked
    (:func:`certstore.services.seals.check_entry_seal`, handed in as ``seal_check``);
``base_image`` (底图)
    the base image exists — a shipped file, or an uploaded one (``asset:<digest>``) stored in this repository with
    bytes that still match their digest — and is sane: a PNG of at least 150 dpi, opaque, and, with a face
    template, the size of the template's page (or of its base-image box) within 1 mm;
``template`` (照面模板)
    the face template is valid (:meth:`certstore.packaging.template.FaceTemplate.from_document`) and its fixed
    texts (title, labels, static texts, the issuer) fit their boxes; an entry without one uses the generic
    label/value layout;
``fields_placed`` (字段排布)
    every required face field has a value box in the template, and the template places no field the face schema
    does not have;
``longest_values_fit`` (最长示例排版)
    the longest allowed values fit without overlap: a face is laid out with, for every field, the longest of its
    ``examples`` (a field without examples: a string of ``maxLength`` 国 characters when it has a maximum length
    and no pattern, else its example value); the layout must succeed (a value that does not fit its box is named),
    no two text lines may overlap, none may overlap the QR code, and none may leave the page.

:func:`certstore.services.catalogue.submit_entry` refuses an entry with a failed check
(:class:`EntryCheckError`, a :class:`~certstore.catalogue.CatalogueError` listing the failed checks by field);
:func:`certstore.services.catalogue.review_entry` runs them again and refuses approval while one fails.
"""

from __future__ import annotations

import dataclasses
import io
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from typing import Any

from PIL import Image
from sqlalchemy.orm import Session

from certstore.catalogue import CatalogueEntry, CatalogueError, base_image_path
from certstore.packaging.layout import Box, FaceData, FaceLayout, TextItem
from certstore.records import CertificateDraft, RecordError, example_draft, prepare_version
from certstore.services.catalogue_assets import MIN_DPI, asset_data, asset_digest

__all__ = [
    "CheckName",
    "CheckResult",
    "EntryCheckError",
    "EntryChecks",
    "SealCheck",
    "check_entry",
    "longest_face",
]

#: Checks the seal a catalogue entry names; raises :class:`~certstore.catalogue.CatalogueError` (field ``seal``).
SealCheck = Callable[[CatalogueEntry], None]

#: How far an uploaded base image's page may differ from the template's, in mm.
PAGE_TOLERANCE_MM = 1.0
_OVERLAP_MM = 0.05  # text boxes touching within this are not overlapping
_EDGE_MM = 0.01
_WIDE = "国"


class CheckName(StrEnum):
    SEAL_OWNER = "seal_owner"
    BASE_IMAGE = "base_image"
    TEMPLATE = "template"
    FIELDS_PLACED = "fields_placed"
    LONGEST_VALUES_FIT = "longest_values_fit"

    @property
    def title_zh(self) -> str:
        return _TITLES[self]


_TITLES = {
    CheckName.SEAL_OWNER: "印章归属",
    CheckName.BASE_IMAGE: "底图",
    CheckName.TEMPLATE: "照面模板",
    CheckName.FIELDS_PLACED: "必填字段排布",
    CheckName.LONGEST_VALUES_FIT: "最长示例数据排版",
}


@dataclass(frozen=True)
class CheckResult:
    """One check: passed or not, why (English and Chinese), and the entry document's path it concerns."""

    name: CheckName
    passed: bool
    reason: str
    reason_zh: str
    path: str

    @property
    def title_zh(self) -> str:
        return self.name.title_zh

    def to_dict(self) -> dict[str, Any]:
        return {"name": str(self.name), "passed": self.passed, "reason": self.reason, "path": self.path}


@dataclass(frozen=True)
class EntryChecks:
    """The results of :func:`check_entry`, in a fixed order, and the layout of the longest example face (None
    when it could not be laid out), drawn by :meth:`preview`."""

    results: tuple[CheckResult, ...]
    layout: FaceLayout | None = dataclasses.field(default=None, repr=False)

    def preview(self, *, dpi: int = 96) -> bytes | None:
        """The PNG of the longest example face (rendered on demand: a preview costs more than the checks)."""
        from certstore.packaging.preview import render_preview

        return None if self.layout is None else render_preview(self.layout, dpi=dpi)

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.results)

    @property
    def failed(self) -> tuple[CheckResult, ...]:
        return tuple(r for r in self.results if not r.passed)


class EntryCheckError(CatalogueError):
    """An entry with a failed check (:attr:`checks`), refused at submission or approval."""

    def __init__(self, checks: EntryChecks, *, source: str) -> None:
        super().__init__([(r.path, f"{r.name}: {r.reason}") for r in checks.failed], source=source)
        self.checks = checks


def _ok(name: CheckName, reason: str, reason_zh: str, path: str) -> CheckResult:
    return CheckResult(name, True, reason, reason_zh, path)


def _fail(name: CheckName, reason: str, reason_zh: str, path: str) -> CheckResult:
    return CheckResult(name, False, reason, reason_zh, path)


# --- seal -----------------------------------------------------------------------------------------------------


def _seal(entry: CatalogueEntry, seal_check: SealCheck | None) -> CheckResult | None:
    if seal_check is None:
        return None
    name = CheckName.SEAL_OWNER
    try:
        seal_check(entry)
    except CatalogueError as exc:
        message = "; ".join(m for _, m in exc.errors) or str(exc)
        if "revoked" in message:
            zh = f"印章“{entry.seal}”已被吊销，不能用于签发"
        elif "not to the issuer" in message:
            owner = re.search(r"belongs to (.+?), not to the issuer", message)
            held = "" if owner is None or owner.group(1) == "no organisation" else f"属于 {owner.group(1)}，"
            zh = f"印章“{entry.seal}”{held}不属于颁证单位 {entry.issuer.name}（{entry.issuer.credit_code}）"
        else:
            zh = f"印章“{entry.seal}”在密钥库中不存在或无法读取"
        return _fail(name, message, zh, "seal")
    return _ok(
        name,
        f"seal {entry.seal!r} belongs to the issuer {entry.issuer.credit_code}",
        f"印章属于颁证单位 {entry.issuer.name}",
        "seal",
    )


# --- base image -----------------------------------------------------------------------------------------------


def _image_problem(data: bytes) -> tuple[str, str] | None:
    try:
        with Image.open(io.BytesIO(data), formats=["PNG"]) as image:
            dpi = float(image.info.get("dpi", (0.0, 0.0))[0])
            mode, transparent = image.mode, "transparency" in image.info
    except (OSError, SyntaxError, ValueError) as exc:
        return f"the stored base image cannot be read ({exc})", "已存储的底图无法读取"
    if dpi < MIN_DPI - 0.5:
        return (
            f"the base image has {dpi:g} dpi, below {MIN_DPI}",
            f"底图分辨率 {dpi:g} dpi，低于 {MIN_DPI} dpi",
        )
    if mode not in ("RGB", "L", "P", "1") or transparent:
        return (
            f"the base image is {mode}{' with transparency' if transparent else ''}",
            "底图颜色模式不符或含透明",
        )
    return None


def _image_page_mm(data: bytes) -> tuple[float, float]:
    with Image.open(io.BytesIO(data)) as image:
        dpi = float(image.info.get("dpi", (150.0, 150.0))[0]) or 150.0
        return image.width / dpi * 25.4, image.height / dpi * 25.4


def _base_image(entry: CatalogueEntry, session: Session, template: Any) -> tuple[CheckResult, bytes | None]:
    name, path = CheckName.BASE_IMAGE, "$.base_image"
    if entry.base_image is None:
        return _ok(name, "no base image: a plain page", "未使用底图（白底页面）", path), None
    digest = asset_digest(entry.base_image)
    if digest is None:
        file = base_image_path(entry)
        if file is None or not file.is_file():
            return _fail(name, f"the shipped base image {entry.base_image} does not exist",
                         f"底图文件 {entry.base_image} 不存在", path), None  # fmt: skip
        data = file.read_bytes()
    else:
        stored = asset_data(session, digest)
        if stored is None:
            return _fail(name, f"no uploaded base image {entry.base_image} in this repository (upload it first)",
                         "未找到所引用的已上传底图：请先上传底图", path), None  # fmt: skip
        data = stored
    problem = _image_problem(data)
    if problem:
        return _fail(name, *problem, path), None
    width, height = _image_page_mm(data)
    if template is not None:
        box = template.base_image_box or Box(0.0, 0.0, template.width_mm, template.height_mm)
        if abs(width - box.w) > PAGE_TOLERANCE_MM or abs(height - box.h) > PAGE_TOLERANCE_MM:
            return _fail(
                name,
                f"the base image measures {width:.1f} × {height:.1f} mm, the template places it in "
                f"{box.w:g} × {box.h:g} mm",
                f"底图尺寸 {width:.1f} × {height:.1f} 毫米，与模板的 {box.w:g} × {box.h:g} 毫米不符",
                path,
            ), data
    return _ok(name, f"base image present, {width:.1f} × {height:.1f} mm",
               f"底图存在，幅面 {width:.1f} × {height:.1f} 毫米", path), data  # fmt: skip


# --- template and fields --------------------------------------------------------------------------------------


def _template(entry: CatalogueEntry) -> tuple[CheckResult, Any]:
    from certstore.packaging.template import FaceTemplate, TemplateError

    name, path = CheckName.TEMPLATE, "$.face_template"
    if entry.face_template is None:
        return _ok(name, "no face template: the generic label/value layout is used",
                   "未提供照面模板，使用通用版式", path), None  # fmt: skip
    try:
        template = FaceTemplate.from_document(entry.face_template)
        template.static_texts(entry)
    except TemplateError as exc:
        where = path + exc.path.replace("/", ".") if exc.path else path
        return _fail(name, f"{exc.path or '/'}: {exc.message}", f"照面模板有误（{exc.path or '/'}）：{exc.message}",
                     where), None  # fmt: skip
    except (
        ValueError,
        KeyError,
        TypeError,
    ) as exc:  # a template the schema let through but that cannot be used
        return _fail(name, f"the face template cannot be used: {exc}", f"照面模板无法使用：{exc}", path), None
    return _ok(name, "the face template is valid", "照面模板有效", path), template


def _fields(entry: CatalogueEntry, template: Any) -> CheckResult:
    name, path = CheckName.FIELDS_PLACED, "$.face_template.fields"
    if template is None:
        return _ok(name, "the generic layout places every face field", "通用版式排布全部字段", path)
    required = list(entry.face_schema.get("required", []))
    missing = [f for f in required if f not in template.placed_fields]
    titles = {f.name: f.title for f in entry.face_fields()}
    if missing:
        return _fail(
            name,
            f"required face field(s) without a value box: {', '.join(missing)}",
            f"必填字段未在模板中排布：{'、'.join(titles.get(f, f) for f in missing)}",
            path,
        )
    unknown = sorted(set(template.placed_fields) - set(titles))
    if unknown:
        return _fail(name, f"the template places unknown field(s): {', '.join(unknown)}",
                     f"模板排布了照面中不存在的字段：{'、'.join(unknown)}", path)  # fmt: skip
    return _ok(name, f"all {len(required)} required face fields are placed",
               f"{len(required)} 个必填字段均已排布", path)  # fmt: skip


# --- the longest values ---------------------------------------------------------------------------------------


def longest_face(entry: CatalogueEntry) -> dict[str, Any]:
    """The face with the longest allowed value of every field (the rule in the module docstring)."""
    from certstore.catalogue import example_face

    properties = entry.face_schema["properties"]
    fallback = example_face(entry)
    face: dict[str, Any] = {}
    for field in entry.face_fields():
        spec = properties[field.name]
        examples = spec.get("examples") or []
        if examples:
            face[field.name] = max(examples, key=lambda v: len(str(v)))
        elif (
            spec.get("type") == "string"
            and "maxLength" in spec
            and "pattern" not in spec
            and "format" not in spec
        ):
            face[field.name] = _WIDE * int(spec["maxLength"])
        elif field.name in fallback:
            face[field.name] = fallback[field.name]
    return face


def _overlaps(a: Box, b: Box) -> bool:
    return (
        min(a.x + a.w, b.x + b.w) - max(a.x, b.x) > _OVERLAP_MM
        and min(a.y + a.h, b.y + b.h) - max(a.y, b.y) > _OVERLAP_MM
    )


def _label(item: TextItem, titles: dict[str, str]) -> tuple[str, str]:
    """(English, Chinese) name of what a text line shows."""
    kind, _, field = item.role.partition(":")
    if field:
        title = titles.get(field, field)
        return (f"the {kind} of {field}", f"{title}的{'标签' if kind == 'label' else '值'}")
    return item.role, {"title": "证照名称", "number": "证照编号", "issuer": "颁证单位", "date": "颁证日期",
                       "identifier": "证照标识", "holder": "持证主体", "validity": "有效期限",
                       "heading": "抬头", "qr_caption": "二维码说明"}.get(item.role, item.role)  # fmt: skip


def _geometry(layout: FaceLayout, titles: dict[str, str]) -> tuple[str, str, str] | None:
    """The first text line that leaves the page or overlaps another line or the QR code: (English, Chinese,
    field), or None."""
    texts: Sequence[TextItem] = layout.texts
    for item in texts:
        box = item.box
        if (
            box.x < -_EDGE_MM
            or box.y < -_EDGE_MM
            or box.x + box.w > layout.width_mm + _EDGE_MM
            or (box.y + box.h > layout.height_mm + _EDGE_MM)
        ):
            en, zh = _label(item, titles)
            return f"{en} leaves the page", f"{zh}超出页面", item.role.partition(":")[2] or item.role
    qr = next((image.box for image in layout.images if image.role == "qr_code"), None)
    for i, item in enumerate(texts):
        for other in texts[i + 1 :]:
            if _overlaps(item.box, other.box):
                (en1, zh1), (en2, zh2) = _label(item, titles), _label(other, titles)
                field = item.role.partition(":")[2] or other.role.partition(":")[2] or item.role
                return f"{en1} overlaps {en2}", f"{zh1}与{zh2}重叠", field
        if qr is not None and item.role != "qr_caption" and _overlaps(item.box, qr):
            en, zh = _label(item, titles)
            return f"{en} overlaps the QR code", f"{zh}与二维码重叠", item.role.partition(":")[2] or item.role
    return None


def _longest(entry: CatalogueEntry, data: bytes | None) -> tuple[CheckResult, FaceLayout | None]:
    from certstore.packaging.face import LayoutError, lay_out_face

    name, path = CheckName.LONGEST_VALUES_FIT, "$.face_schema"
    titles = {f.name: f.title for f in entry.face_fields()}
    fixed = {"number": "证照编号", "holder": "持证主体", "validity": "有效期限", "issuer": "颁证单位",
             "issue_date": "颁证日期", "date": "颁证日期", "identifier": "证照标识"}  # fmt: skip
    laid = dataclasses.replace(entry, base_image_data=data) if data is not None else entry
    draft = CertificateDraft(
        catalogue_code=entry.code,
        certificate_number=entry.number_example,
        holder=example_draft(entry).holder,
        face=longest_face(entry),
        issue_date=date(2026, 12, 31),
    )
    try:
        prepared = prepare_version(laid, draft, version=1, holder_key=bytes(32), serial_key=bytes(32))
        layout = lay_out_face(FaceData.from_prepared(prepared))
    except RecordError as exc:
        detail = "; ".join(f"{p}: {m}" for p, m in exc.problems) or str(exc)
        return _fail(name, f"the longest example values are not valid face data: {detail}",
                     f"最长示例数据不符合照面字段定义：{detail}", path), None  # fmt: skip
    except LayoutError as exc:
        field = exc.field or ""
        where = f"$.face_schema.properties.{field}" if field in titles else path
        zh = titles.get(field) or fixed.get(field) or field or "照面"
        return _fail(name, f"with the longest example values: {exc}",
                     f"按最长示例数据排版时，“{zh}”放不下（请加大其文本框或行数，或缩短示例）", where), None  # fmt: skip
    except Exception as exc:  # a template the packaging cannot use at all: the template check names it
        return _fail(name, f"the face cannot be laid out: {exc}", f"照面无法排版：{exc}", path), None
    geometry = _geometry(layout, titles)
    if geometry is not None:
        en, zh, field = geometry
        where = f"$.face_schema.properties.{field}" if field in titles else path
        return _fail(
            name, f"with the longest example values, {en}", f"按最长示例数据排版时，{zh}", where
        ), layout
    return _ok(
        name, "the longest example values fit without overlap", "最长示例数据排版无溢出、无重叠", path
    ), layout


# --- all of them ----------------------------------------------------------------------------------------------


def check_entry(
    entry: CatalogueEntry, session: Session, *, seal_check: SealCheck | None = None
) -> EntryChecks:
    """Run every check on ``entry`` (the seal only when ``seal_check`` is given); ``session`` reads uploaded base
    images. Never raises for a failed check: see :attr:`EntryChecks.passed`."""
    results: list[CheckResult] = []
    seal = _seal(entry, seal_check)
    if seal is not None:
        results.append(seal)
    template_result, template = _template(entry)
    image_result, data = _base_image(entry, session, template)
    results += [image_result, template_result, _fields(entry, template)]
    layout = None
    if template_result.passed and image_result.passed:
        fit, layout = _longest(entry, data)
    else:
        fit = _fail(CheckName.LONGEST_VALUES_FIT, "not run: the base image or the template check failed",
                    "未执行：底图或照面模板检查未通过", "$.face_template")  # fmt: skip
    results.append(fit)
    return EntryChecks(tuple(results), layout)
