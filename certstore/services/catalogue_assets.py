"""Uploaded base images (底图) of catalogue entries: checked on upload, stored once in the repository under the SM3
digest of their bytes, named in an entry document as ``asset:<digest>``.

An agency uploads a PNG or an SVG (the SVG is rasterised to a PNG on upload with resvg, through ``resvg-py``). What
is stored is always a PNG re-encoded from the decoded pixels (no ancillary chunks, no alpha channel), after these
checks (:class:`AssetError` names the first one that fails, in English and Chinese):

- at most :data:`MAX_UPLOAD_BYTES`; a PNG must decode, an SVG must parse without a DTD, entities, scripts, foreign
  objects, embedded or external images or references outside the document;
- pixel dimensions read from the header before any pixel is decoded: each side at most :data:`MAX_SIDE_PX`, at
  most :data:`MAX_PIXELS` in all (decompression bombs are refused before they are inflated);
- the resolution the file declares (PNG ``pHYs``; an SVG is rendered at :data:`SVG_DPI`) at least
  :data:`MIN_DPI`, and the page it gives between :data:`MIN_PAGE_MM` and :data:`MAX_PAGE_MM` on each side;
- colour: RGB, greyscale or indexed; CMYK, 16-bit and other modes are refused, and so is any transparency (a
  base image is an opaque page: a hidden alpha channel would show differently in different readers).

The approval checks (:mod:`certstore.services.catalogue_checks`) compare the page size with the entry's face
template.
"""

from __future__ import annotations

import io
import re
import warnings
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy.orm import Session

from certstore.access import AccessDeniedError, Principal, Role, require_role
from certstore.crypto.sm3 import sm3_hex
from certstore.services.transaction import Within, run_within
from certstore.store.models import CatalogueAssetRow
from certstore.store.repository import Repository

if TYPE_CHECKING:  # Pillow is imported where an image is checked: reading a stored asset needs none
    from PIL import Image

__all__ = [
    "ASSET_PREFIX",
    "MAX_UPLOAD_BYTES",
    "AssetError",
    "CheckedImage",
    "StoredAsset",
    "add_asset",
    "asset_data",
    "asset_digest",
    "check_image",
    "get_asset",
    "store_asset",
]

ASSET_PREFIX = "asset:"
MAX_UPLOAD_BYTES = 8 * 1024 * 1024
MAX_SIDE_PX = 8000
MAX_PIXELS = 30_000_000
MIN_DPI = 150
SVG_DPI = 200
MIN_PAGE_MM = 90.0
MAX_PAGE_MM = 450.0
_ASSET_NAME = re.compile(r"asset:([0-9a-f]{64})")
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_SVG_UNITS_MM = {
    "mm": 1.0,
    "cm": 10.0,
    "in": 25.4,
    "pt": 25.4 / 72,
    "pc": 25.4 / 6,
    "px": 25.4 / 96,
    "": 25.4 / 96,
}


class AssetError(ValueError):
    """An uploaded base image is refused: ``str(exc)`` in English (API problems), :attr:`reason_zh` for pages."""

    def __init__(self, message: str, reason_zh: str) -> None:
        super().__init__(message)
        self.reason_zh = reason_zh
        self.errors = [("file", message)]


class _Measured:
    """Pixels and resolution, as millimetres (OFD's unit)."""

    width_px: int
    height_px: int
    dpi: int

    @property
    def width_mm(self) -> float:
        return self.width_px / self.dpi * 25.4

    @property
    def height_mm(self) -> float:
        return self.height_px / self.dpi * 25.4


@dataclass(frozen=True)
class CheckedImage(_Measured):
    """A base image that passed :func:`check_image`: the PNG to store and what it measures."""

    png: bytes
    width_px: int
    height_px: int
    dpi: int
    source_type: str


@dataclass(frozen=True)
class StoredAsset(_Measured):
    """A stored base image (without its bytes: :func:`asset_data`)."""

    digest: str
    name: str  # asset:<digest>, as the entry document names it
    width_px: int
    height_px: int
    dpi: int
    source_type: str
    issuer_code: str
    size: int


def asset_digest(name: str | None) -> str | None:
    """The digest an entry's ``base_image`` names (``asset:<64 hex>``), or None for a shipped file name."""
    if name is None:
        return None
    match = _ASSET_NAME.fullmatch(name)
    return match.group(1) if match else None


# --- checking ------------------------------------------------------------------------------------------------


def _page_problem(width_px: int, height_px: int, dpi: float) -> AssetError | None:
    if dpi < MIN_DPI:
        return AssetError(
            f"the image declares {dpi:g} dpi; a base image needs at least {MIN_DPI} dpi",
            f"分辨率为 {dpi:g} dpi，底图至少需要 {MIN_DPI} dpi",
        )
    width_mm, height_mm = width_px / dpi * 25.4, height_px / dpi * 25.4
    if not all(MIN_PAGE_MM <= side <= MAX_PAGE_MM for side in (width_mm, height_mm)):
        return AssetError(
            f"the page is {width_mm:.1f} × {height_mm:.1f} mm at {dpi:g} dpi; each side must be between "
            f"{MIN_PAGE_MM:g} and {MAX_PAGE_MM:g} mm",
            f"按 {dpi:g} dpi 计幅面为 {width_mm:.1f} × {height_mm:.1f} 毫米，每边应在 {MIN_PAGE_MM:g}–{MAX_PAGE_MM:g} 毫米之间",
        )
    return None


def _dimension_problem(width_px: int, height_px: int) -> AssetError | None:
    if (
        width_px < 1
        or height_px < 1
        or max(width_px, height_px) > MAX_SIDE_PX
        or width_px * height_px > MAX_PIXELS
    ):
        return AssetError(
            f"the image is {width_px} × {height_px} pixels; at most {MAX_SIDE_PX} pixels a side and "
            f"{MAX_PIXELS:,} in all are accepted",
            f"图像为 {width_px} × {height_px} 像素，超过上限（每边 {MAX_SIDE_PX} 像素，总计 {MAX_PIXELS:,} 像素）",
        )
    return None


def _opaque(image: Image.Image) -> Image.Image:
    """``image`` as RGB, greyscale or indexed without transparency; :class:`AssetError` otherwise."""
    if image.mode in ("CMYK", "YCbCr", "LAB", "HSV") or image.mode.startswith(("I", "F")):
        return _refuse_mode(image.mode)
    if image.mode == "P":
        if "transparency" in image.info:
            raise AssetError(
                "the palette has a transparent colour; a base image must be opaque",
                "调色板含透明色：底图必须不透明",
            )
        return image
    if image.mode in ("RGBA", "LA", "PA"):
        low, _high = image.getchannel("A").getextrema()
        if low < 255:
            raise AssetError(
                "the image has transparent pixels; a base image must be opaque (flatten it onto the page colour)",
                "图像含透明像素：底图必须不透明（请合并到底色上）",
            )
        return image.convert("RGB" if image.mode == "RGBA" else "L")
    if image.mode in ("RGB", "L", "1"):
        if "transparency" in image.info:
            raise AssetError("the image declares a transparent colour; a base image must be opaque",
                             "图像声明了透明色：底图必须不透明")  # fmt: skip
        return image
    return _refuse_mode(image.mode)


def _refuse_mode(mode: str) -> Image.Image:
    raise AssetError(
        f"colour mode {mode} is not accepted: use RGB, greyscale or an indexed palette (no CMYK, no 16-bit)",
        f"不支持颜色模式 {mode}：请使用 RGB、灰度或索引色（不接受 CMYK 或 16 位）",
    )


def _encode(image: Image.Image, dpi: int, source_type: str) -> CheckedImage:
    out = io.BytesIO()
    image.save(out, "PNG", dpi=(dpi, dpi))
    return CheckedImage(out.getvalue(), image.width, image.height, dpi, source_type)


def _check_png(data: bytes) -> CheckedImage:
    from PIL import Image, UnidentifiedImageError

    if data[12:16] == b"IHDR":  # the size from the header, before Pillow reads anything
        problem = _dimension_problem(int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big"))
        if problem:
            raise problem
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=["PNG"])
            problem = _dimension_problem(*image.size)
            if problem:
                raise problem
            dpi_x, dpi_y = (float(v) for v in image.info.get("dpi", (0.0, 0.0)))
            if not dpi_x:
                raise AssetError(
                    "the PNG declares no resolution (pHYs chunk): save it with its dpi so that its size in mm "
                    "is known",
                    "PNG 未声明分辨率（pHYs）：请保存时写入 dpi，以确定其毫米尺寸",
                )
            if abs(dpi_x - dpi_y) > 1:
                raise AssetError(f"the horizontal and vertical resolutions differ ({dpi_x:g}/{dpi_y:g} dpi)",
                                 f"水平与垂直分辨率不同（{dpi_x:g}/{dpi_y:g} dpi）")  # fmt: skip
            problem = _page_problem(image.width, image.height, dpi_x)
            if problem:
                raise problem
            image.load()
    except AssetError:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError,
            Image.DecompressionBombWarning) as exc:  # fmt: skip
        raise AssetError(f"not a readable PNG image ({exc})", "不是可读取的 PNG 图像") from None
    return _encode(_opaque(image), round(dpi_x), "image/png")


def _svg_length_mm(value: str | None, what: str) -> float:
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*(mm|cm|in|pt|pc|px|)\s*", value or "")
    if match is None:
        raise AssetError(
            f"the SVG root needs an absolute {what} (e.g. 210mm); got {value!r}",
            f"SVG 根元素需要以绝对单位给出{'宽度' if what == 'width' else '高度'}（如 210mm）",
        )
    return float(match.group(1)) * _SVG_UNITS_MM[match.group(2)]


def _check_svg(data: bytes) -> CheckedImage:
    from lxml import etree
    from PIL import Image

    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)
    try:
        root = etree.fromstring(data, parser)
    except etree.XMLSyntaxError as exc:
        raise AssetError(f"not a well-formed SVG document ({exc})", "不是格式正确的 SVG 文档") from None
    tree = root.getroottree()
    if tree.docinfo.doctype or tree.docinfo.internalDTD is not None:
        raise AssetError(
            "the SVG has a DOCTYPE; documents with a DTD are refused", "SVG 含 DOCTYPE 声明，不予接受"
        )
    if etree.QName(root).localname != "svg":
        raise AssetError("the document is not an SVG image", "文件不是 SVG 图像")
    count = 0
    for element in root.iter():
        count += 1
        if not isinstance(element.tag, str):
            continue
        name = etree.QName(element).localname
        if name == "style" and re.search(r"@import|url\(\s*['\"]?[^#'\"\s]", element.text or ""):
            raise AssetError("the SVG's style sheet imports or refers to something outside the document",
                             "SVG 样式表引用了文档外部的资源，不予接受")  # fmt: skip
        if name in ("script", "foreignObject", "image", "iframe", "audio", "video"):
            raise AssetError(f"the SVG contains <{name}>: scripts, foreign objects and embedded images are "
                             "refused (upload a raster base image as PNG)",
                             f"SVG 含 <{name}> 元素：不接受脚本、外部对象或内嵌图像（位图底图请上传 PNG）")  # fmt: skip
        for attribute, value in element.attrib.items():
            local = etree.QName(attribute).localname
            if local == "href" and not value.startswith("#"):
                raise AssetError(f"the SVG refers to {value[:80]!r}: only references within the document are "
                                 "accepted", "SVG 引用了文档外部的资源，不予接受")  # fmt: skip
            for target in re.findall(r"url\(\s*['\"]?([^)'\"]*)", value):
                if not target.startswith("#"):
                    raise AssetError("the SVG refers to an external url(): only url(#…) is accepted",
                                     "SVG 引用了外部 url()，只接受文档内引用")  # fmt: skip
    uses = len(root.findall(".//{http://www.w3.org/2000/svg}use"))
    if count > 50_000 or uses > 500:
        raise AssetError(f"the SVG has {count} elements and {uses} <use> references; at most 50,000 and 500",
                         "SVG 元素或 <use> 引用过多")  # fmt: skip
    width_mm = _svg_length_mm(root.get("width"), "width")
    height_mm = _svg_length_mm(root.get("height"), "height")
    width_px, height_px = round(width_mm / 25.4 * SVG_DPI), round(height_mm / 25.4 * SVG_DPI)
    problem = _dimension_problem(width_px, height_px) or _page_problem(width_px, height_px, SVG_DPI)
    if problem:
        raise problem
    import resvg_py

    try:
        png = resvg_py.svg_to_bytes(  # 96 dpi: CSS px; the size asked for scales it to SVG_DPI
            svg_string=data.decode("utf-8"), dpi=96.0, width=width_px, height=height_px, background="#ffffff"
        )
    except (ValueError, UnicodeDecodeError) as exc:
        raise AssetError(f"the SVG cannot be rendered ({exc})", "SVG 无法渲染") from None
    with Image.open(io.BytesIO(bytes(png)), formats=["PNG"]) as image:
        rendered = image.convert("RGB")
    return _encode(rendered, SVG_DPI, "image/svg+xml")


def check_image(data: bytes) -> CheckedImage:
    """Check an uploaded base image (PNG or SVG, told apart by content) and give the PNG to store;
    :class:`AssetError` names what is wrong (see the module's list)."""
    if len(data) > MAX_UPLOAD_BYTES:
        raise AssetError(f"the file has {len(data):,} bytes; at most {MAX_UPLOAD_BYTES:,} are accepted",
                         f"文件大小 {len(data):,} 字节，超过上限 {MAX_UPLOAD_BYTES:,} 字节")  # fmt: skip
    if data.startswith(_PNG_SIGNATURE):
        return _check_png(data)
    head = data[:512].lstrip(b"\xef\xbb\xbf \t\r\n")
    if head.startswith((b"<?xml", b"<svg", b"<!--", b"<!DOCTYPE", b"<!doctype")):
        return _check_svg(data)
    raise AssetError("the file is neither a PNG nor an SVG image", "文件既不是 PNG 也不是 SVG 图像")


# --- storing and reading ---------------------------------------------------------------------------------------


def _stored(row: CatalogueAssetRow) -> StoredAsset:
    return StoredAsset(
        digest=row.digest,
        name=ASSET_PREFIX + row.digest,
        width_px=row.width_px,
        height_px=row.height_px,
        dpi=row.dpi,
        source_type=row.source_type,
        issuer_code=row.issuer_code,
        size=len(row.data),
    )


def store_asset(
    repo: Repository, data: bytes, *, principal: Principal, within: Within | None = None
) -> tuple[StoredAsset, bool]:
    """An agency (or the bureau) uploads a base image: checked (:func:`check_image`), stored once under its SM3
    digest. Returns (asset, created); the same image again is the same asset. ``within`` runs in the transaction
    that stores a new one (its audit entry)."""
    require_role(principal, Role.AGENCY, Role.BUREAU)
    if principal.organisation_code is None:
        raise AccessDeniedError("uploading a base image needs an organisation")
    checked = check_image(data)
    digest = sm3_hex(checked.png)
    with repo.db.session() as session:
        row = session.get(CatalogueAssetRow, digest)
        if row is not None:
            return _stored(row), False
        row = add_asset(
            session, checked, checked.png, issuer_code=principal.organisation_code, uploaded_by=principal.ref,
            at=repo.now(),
        )  # fmt: skip
        run_within(session, within)
        return _stored(row), True


def add_asset(
    session: Session, checked: CheckedImage, data: bytes, *, issuer_code: str, uploaded_by: str, at: datetime
) -> CatalogueAssetRow:
    """Insert the asset row of ``data`` (a PNG that passed :func:`check_image` as ``checked``) under the SM3 of
    ``data``, in the caller's transaction: an upload stores the checked PNG, the province's intake the bytes the
    city delivered (:mod:`certstore.services.aggregation`)."""
    row = CatalogueAssetRow(
        digest=sm3_hex(data),
        media_type="image/png",
        data=data,
        width_px=checked.width_px,
        height_px=checked.height_px,
        dpi=checked.dpi,
        source_type=checked.source_type,
        issuer_code=issuer_code,
        uploaded_by=uploaded_by,
        created_at=at,
    )
    session.add(row)
    session.flush()
    return row


def get_asset(session: Session, digest: str) -> StoredAsset | None:
    row = session.get(CatalogueAssetRow, digest)
    return None if row is None else _stored(row)


#: Asset bytes by digest: content-addressed and never changed, so one process-wide cache is right everywhere.
_KNOWN: dict[str, bytes] = {}


def asset_data(session: Session, digest: str) -> bytes | None:
    """The stored PNG of ``digest`` (read once per process: assets never change), or None."""
    known = _KNOWN.get(digest)
    if known is not None:
        return known
    row = session.get(CatalogueAssetRow, digest)
    if row is None:
        return None
    if sm3_hex(row.data) != digest:  # a stored row altered behind the application's back
        return None
    if len(_KNOWN) >= 64:
        _KNOWN.pop(next(iter(_KNOWN)))
    _KNOWN[digest] = row.data
    return row.data
