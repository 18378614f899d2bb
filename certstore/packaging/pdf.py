"""The PDF rendition of a certificate (电子证照 PDF 版): the same face as the OFD, the metadata, the issuer's seal
visible on the page, and an SM2/SM3 CMS signature — written and signed with pyHanko.

:func:`build_pdf` draws one page from a :class:`~certstore.packaging.layout.FaceLayout`: the base image (底图),
every text line as real text in an embedded TrueType subset of the face font (``Type0``/``CIDFontType2``,
``Identity-H``, with a ``ToUnicode`` map so the text can be searched and extracted) — a second one (``/F2``)
for the fallback font when the face has rare characters (生僻字) — and the QR code. The
metadata (``ZZBS``, ``ZZMC``, …) goes into the document information dictionary and into XMP (``dc:identifier``
plus one ``ecert:`` property per element). The page is then signed in the same revision, so the signature's
``/ByteRange`` covers the whole file except the ``/Contents`` hole.

The signature (field ``IssuerSeal``, a *certification* signature with DocMDP "no changes allowed", so readers
flag any later modification) has a visible widget at ``layout.seal_box`` whose appearance is the seal picture,
and is a CMS ``SignedData`` made by :class:`SM2CmsSigner`, a pyHanko signer backed by our
:class:`certstore.crypto.sm2.Signer`:

=========================  =================================  =========================================
field                      value                              why
=========================  =================================  =========================================
ContentInfo.contentType    signedData 1.2.840.113549.1.7.2    see "OID choice" below
eContentType (detached)    id-data 1.2.840.113549.1.7.1       see "OID choice" below
digestAlgorithm            SM3 1.2.156.10197.1.401            GM/T 0006; messageDigest = SM3(byte range)
signatureAlgorithm         SM2-1 1.2.156.10197.1.301.1        GM/T 0010 / GB/T 35275 SignerInfo usage
signed attributes          contentType, messageDigest,        the SM2 signature (default ID
                           signingTime                        1234567812345678) is over their DER SET
certificates               signer certificate + chain
SubFilter                  adbe.pkcs7.detached                ETSI.CAdES.detached (PAdES) would require
                                                              signingCertificateV2 and forbid signingTime
=========================  =================================  =========================================

OID choice: GM/T 0010-2012 / GB/T 35275-2017 define their own content-type arc (data
1.2.156.10197.6.1.4.2.1, signedData …6.1.4.2.2). We use the PKCS #7 / CMS content types and GM/T algorithm
OIDs instead, because in a PDF the container must be readable by PDF software: pyHanko (like asn1crypto and
OpenSSL) only parses ``SignedData`` under 1.2.840.113549.1.7.2, and pyHanko's ``EmbeddedPdfSignature`` only
treats a signature over the byte range as a document signature when eContentType is id-data (any other type
leaves its digest algorithm undefined); ISO 32000 and Acrobat expect the same. The trade-off: a verifier that
accepts *only* GM/T 0010 content types will not recognise this container (the OFD rendition, not this PDF, is
the standard-conformant file for such consumers), while every CMS/PDF tool can parse it and the algorithms
stay SM2/SM3.

What pyHanko needed to sign with SM2/SM3: the SM3 OID registered with asn1crypto as digest algorithm ``sm3``
(:func:`register_gm_algorithms`; pyHanko hashes through ``cryptography``'s ``hashes.SM3`` by that name); an
explicit signature mechanism (pyHanko cannot derive one from an SM2 ``id-ecPublicKey`` key); a custom signed
attribute set (its defaults add a SHA-256 signingCertificateV2); and a signing time set on the signing
session (pyHanko otherwise takes the wall clock).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import io
import math
import re
from collections.abc import Coroutine, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from asn1crypto import algos, core
from fontTools.ttLib import TTFont
from lxml import etree
from PIL import Image
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.generic import pdf_name, pdf_string
from pyhanko.pdf_utils.images import PdfImage, pil_image
from pyhanko.pdf_utils.layout import AxisAlignment, BoxConstraints, InnerScaling, Margins, SimpleBoxLayoutRule
from pyhanko.pdf_utils.metadata import model as xmp
from pyhanko.pdf_utils.writer import PageObject, PdfFileWriter
from pyhanko.sign import fields, signers
from pyhanko.sign.attributes import CMSAttributeProvider, SignedAttributeProviderSpec, SigningTimeProvider
from pyhanko.sign.general import SigningError
from pyhanko.sign.signers.pdf_cms import PdfCMSSignedAttributes
from pyhanko.stamp import StaticStampStyle
from pyhanko_certvalidator.registry import SimpleCertificateStore

from certstore.crypto import oids
from certstore.crypto.sm2 import DEFAULT_SM2_ID, Signer
from certstore.crypto.sm3 import sm3
from certstore.crypto.x509 import Certificate
from certstore.packaging import fonts
from certstore.packaging.layout import Align, Box, FaceLayout, ImageItem, TextItem

__all__ = [
    "ECERT_XMP_NAMESPACE",
    "FIELD_NAME",
    "GM_DATA",
    "GM_SIGNED_DATA",
    "PKCS7_DATA",
    "PKCS7_SIGNED_DATA",
    "PdfBuildError",
    "SM2CmsSigner",
    "build_pdf",
    "register_gm_algorithms",
]

#: Name of the signature field (and of the signature in verification reports).
FIELD_NAME = "IssuerSeal"

PKCS7_DATA = "1.2.840.113549.1.7.1"
PKCS7_SIGNED_DATA = oids.SIGNED_DATA
#: GM/T 0010 / GB/T 35275 content types (not used in PDFs; see the module docstring).
GM_DATA = "1.2.156.10197.6.1.4.2.1"
GM_SIGNED_DATA = "1.2.156.10197.6.1.4.2.2"

#: XMP namespace of the certificate metadata elements (``ecert:ZZBS`` …).
ECERT_XMP_NAMESPACE = "urn:certstore:xmp:ecert:1.0/"
ECERT_XMP_PREFIX = "ecert"

_PT_PER_MM = 72 / 25.4
#: Baseline position in a text line box, as ``TextItem.baseline_y`` defines it.
_BASELINE_EM = 0.8
#: Stroke width (in em) that makes the fill-and-stroke text of bold items look bold.
_BOLD_STROKE_EM = 0.03
#: Placeholder for size estimation: the longest DER SM2 signature (SEQUENCE of two 33-byte INTEGERs).
_PLACEHOLDER_SIGNATURE = b"\x30\x46" + (b"\x02\x21\x00" + b"\x01" * 32) * 2

T = TypeVar("T")


class PdfBuildError(ValueError):
    """The layout, metadata or seal picture cannot be represented in the PDF rendition."""


# --- algorithm registration -------------------------------------------------------------------------------


def _register_oid(oid_class: type[core.ObjectIdentifier], oid: str, name: str) -> None:
    mapping = oid_class._map
    assert mapping is not None
    mapping.setdefault(oid, name)
    if oid_class._reverse_map is not None:
        oid_class._reverse_map.setdefault(mapping[oid], oid)


def register_gm_algorithms() -> None:
    """Teach asn1crypto the SM3 digest OID under the name ``sm3``.

    pyHanko names digest algorithms by their asn1crypto names and hashes with ``cryptography``'s
    ``hashes.<NAME>`` (``hashes.SM3`` exists), so this is what lets it digest the byte range, build the
    ``digestAlgorithm`` fields and read them back. Idempotent; run on import of this module.
    """
    _register_oid(algos.DigestAlgorithmId, oids.SM3, "sm3")


register_gm_algorithms()
etree.register_namespace(ECERT_XMP_PREFIX, ECERT_XMP_NAMESPACE)


# --- the pyHanko signer -----------------------------------------------------------------------------------


class _SigningTimeOnly(SignedAttributeProviderSpec):
    """Signed attributes beyond contentType and messageDigest (which pyHanko always adds): signingTime."""

    def __init__(self, signing_time: datetime) -> None:
        self._signing_time = signing_time

    def signed_attr_providers(
        self, data_digest: bytes, digest_algorithm: str
    ) -> Iterable[CMSAttributeProvider]:
        yield SigningTimeProvider(timestamp=self._signing_time)


class SM2CmsSigner(signers.Signer):
    """A pyHanko :class:`~pyhanko.sign.signers.Signer` that signs with SM2 through a
    :class:`certstore.crypto.sm2.Signer` (software key, HSM, token).

    SignerInfo: digestAlgorithm SM3, signatureAlgorithm SM2-1 (1.2.156.10197.1.301.1), signed attributes
    contentType, messageDigest and signingTime; the SM2 signature (DER ``SEQUENCE{r, s}``, default identity
    ``1234567812345678``) covers the DER encoding of the signed-attribute SET. The signer certificate and
    ``chain`` are embedded.
    """

    def __init__(
        self,
        signer: Signer,
        certificate: Certificate,
        chain: Sequence[Certificate] = (),
        *,
        signing_time: datetime,
    ) -> None:
        if signer.public_key != certificate.public_key:
            raise ValueError(f"the signing key does not belong to certificate {certificate.subject!r}")
        if signing_time.tzinfo is None:
            raise ValueError("signing_time must be timezone-aware")
        super().__init__(
            signing_cert=certificate.asn1,
            cert_registry=SimpleCertificateStore.from_certs([c.asn1 for c in chain if c != certificate]),
            signature_mechanism=algos.SignedDigestAlgorithm({"algorithm": oids.SM2_SIGN}),
            embed_roots=True,
        )
        self._signer = signer
        self.signed_attr_prov_spec = _SigningTimeOnly(signing_time)

    async def async_sign_raw(self, data: bytes, digest_algorithm: str, dry_run: bool = False) -> bytes:
        """SM2 signature of ``data`` (the DER signed attributes); SM2 hashes with SM3 itself (Z_A ‖ M)."""
        if digest_algorithm.lower() != "sm3":
            raise SigningError(f"SM2 signatures here use SM3, not {digest_algorithm}")
        if dry_run:
            return _PLACEHOLDER_SIGNATURE
        return self._signer.sign(data, DEFAULT_SM2_ID)


# --- fonts ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _EmbeddedFont:
    """The face font subset: PostScript name, TTF bytes, glyph of each character, metrics in 1000/em."""

    ps_name: str
    program: bytes
    glyphs: Mapping[str, int]
    widths: Mapping[int, int]
    bbox: tuple[int, int, int, int]
    ascent: int
    descent: int
    cap_height: int

    def advance_em(self, text: str) -> float:
        return sum(self.widths[self.glyphs[ch]] for ch in text) / 1000

    def encode(self, text: str) -> bytes:
        """``text`` as an Identity-H hex string of glyph IDs (CID = GID)."""
        return b"<" + "".join(f"{self.glyphs[ch]:04X}" for ch in text).encode("ascii") + b">"


def _fonts_for(characters: str) -> dict[int, _EmbeddedFont]:
    """One embedded font per face font ``characters`` need (0, the main font, first; the fallbacks for rare
    characters after it), each subset to its own characters."""
    by_font: dict[int, str] = {}
    for number, run in fonts.font_runs(characters):
        by_font[number] = by_font.get(number, "") + run
    return {number: _font_for(by_font[number], number) for number in sorted(by_font)}


def _font_for(characters: str, number: int = 0) -> _EmbeddedFont:
    """Face font ``number`` (:data:`certstore.packaging.fonts.FACE_FONTS`, the same program the OFD embeds)
    subset to ``characters``; refuses characters no face font can draw."""
    try:
        fonts.require_font()
    except fonts.FontMissingError as exc:
        raise PdfBuildError(str(exc)) from exc
    missing = fonts.missing_glyphs(characters)
    if missing:
        raise PdfBuildError(f"the face fonts have no glyph for {missing!r}; the text cannot be drawn")
    family = fonts.FACE_FONTS[number].family
    program = fonts.subset_font(characters, number)
    font = TTFont(io.BytesIO(program))
    scale = 1000 / font["head"].unitsPerEm
    cmap = font.getBestCmap()
    metrics = font["hmtx"].metrics
    glyphs = {
        chr(cp): font.getGlyphID(name) for cp, name in cmap.items() if chr(cp) in characters or cp == 32
    }
    absent = "".join(ch for ch in characters if ch not in glyphs)
    if absent:
        raise PdfBuildError(f"the subset of {family} lacks {absent!r}")
    widths = {font.getGlyphID(name): round(metrics[name][0] * scale) for name in cmap.values()}
    head, hhea = font["head"], font["hhea"]
    cap = getattr(font.get("OS/2"), "sCapHeight", 0)
    tag = "".join(chr(ord("A") + b % 26) for b in sm3(characters.encode())[:6])
    return _EmbeddedFont(
        ps_name=f"{tag}+{re.sub(r'[^A-Za-z0-9-]', '', family)}",
        program=program,
        glyphs=glyphs,
        widths=widths,
        bbox=(
            round(head.xMin * scale),
            round(head.yMin * scale),
            round(head.xMax * scale),
            round(head.yMax * scale),
        ),
        ascent=round(hhea.ascent * scale),
        descent=round(hhea.descent * scale),
        cap_height=round((cap or hhea.ascent) * scale),
    )


def _to_unicode_cmap(font: _EmbeddedFont) -> bytes:
    """The ToUnicode CMap: glyph ID → character, in bfchar blocks of at most 100 entries."""
    pairs = sorted({gid: ch for ch, gid in font.glyphs.items() if gid}.items())
    lines = [
        "/CIDInit /ProcSet findresource begin",
        "12 dict begin",
        "begincmap",
        "/CIDSystemInfo << /Registry (Adobe) /Ordering (UCS) /Supplement 0 >> def",
        "/CMapName /Adobe-Identity-UCS def",
        "/CMapType 2 def",
        "1 begincodespacerange",
        "<0000> <FFFF>",
        "endcodespacerange",
    ]
    for start in range(0, len(pairs), 100):
        block = pairs[start : start + 100]
        lines.append(f"{len(block)} beginbfchar")
        lines.extend(f"<{gid:04X}> <{ch.encode('utf-16-be').hex().upper()}>" for gid, ch in block)
        lines.append("endbfchar")
    lines += ["endcmap", "CMapName currentdict /CMap defineresource pop", "end", "end"]
    return "\n".join(lines).encode("ascii")


def _font_resource(writer: PdfFileWriter, font: _EmbeddedFont) -> generic.IndirectObject:
    """Type0 font → CIDFontType2 (CIDToGIDMap Identity) → FontDescriptor with FontFile2."""
    font_file = generic.StreamObject(
        {pdf_name("/Length1"): generic.NumberObject(len(font.program))}, stream_data=font.program
    )
    font_file.compress()
    descriptor = generic.DictionaryObject(
        {
            pdf_name("/Type"): pdf_name("/FontDescriptor"),
            pdf_name("/FontName"): pdf_name("/" + font.ps_name),
            pdf_name("/Flags"): generic.NumberObject(4),  # symbolic: glyphs addressed by ID
            pdf_name("/FontBBox"): generic.ArrayObject(generic.NumberObject(v) for v in font.bbox),
            pdf_name("/ItalicAngle"): generic.NumberObject(0),
            pdf_name("/Ascent"): generic.NumberObject(font.ascent),
            pdf_name("/Descent"): generic.NumberObject(font.descent),
            pdf_name("/CapHeight"): generic.NumberObject(font.cap_height),
            pdf_name("/StemV"): generic.NumberObject(80),
            pdf_name("/FontFile2"): writer.add_object(font_file),
        }
    )
    widths = generic.ArrayObject()
    for gid in sorted(font.widths):
        widths.append(generic.NumberObject(gid))
        widths.append(generic.ArrayObject([generic.NumberObject(font.widths[gid])]))
    cid_font = generic.DictionaryObject(
        {
            pdf_name("/Type"): pdf_name("/Font"),
            pdf_name("/Subtype"): pdf_name("/CIDFontType2"),
            pdf_name("/BaseFont"): pdf_name("/" + font.ps_name),
            pdf_name("/CIDSystemInfo"): generic.DictionaryObject(
                {
                    pdf_name("/Registry"): pdf_string("Adobe"),
                    pdf_name("/Ordering"): pdf_string("Identity"),
                    pdf_name("/Supplement"): generic.NumberObject(0),
                }
            ),
            pdf_name("/FontDescriptor"): writer.add_object(descriptor),
            pdf_name("/DW"): generic.NumberObject(1000),
            pdf_name("/W"): widths,
            pdf_name("/CIDToGIDMap"): pdf_name("/Identity"),
        }
    )
    to_unicode = generic.StreamObject(stream_data=_to_unicode_cmap(font))
    to_unicode.compress()
    type0 = generic.DictionaryObject(
        {
            pdf_name("/Type"): pdf_name("/Font"),
            pdf_name("/Subtype"): pdf_name("/Type0"),
            pdf_name("/BaseFont"): pdf_name("/" + font.ps_name),
            pdf_name("/Encoding"): pdf_name("/Identity-H"),
            pdf_name("/DescendantFonts"): generic.ArrayObject([writer.add_object(cid_font)]),
            pdf_name("/ToUnicode"): writer.add_object(to_unicode),
        }
    )
    return writer.add_object(type0)


# --- images -----------------------------------------------------------------------------------------------


def _open_image(data: bytes, what: str) -> Image.Image:
    try:
        image = Image.open(io.BytesIO(data))
        image.load()
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise PdfBuildError(
            f"{what} is not an image this PDF writer can read (PNG, JPEG, GIF, BMP): {exc}"
        ) from exc
    return image


def _normalised(image: Image.Image) -> Image.Image:
    """A mode pyHanko's image writer handles: RGB/L with or without alpha, or an RGB palette."""
    if image.mode == "P":
        palette = image.palette
        if "transparency" in image.info or palette is None or palette.mode != "RGB":
            return image.convert("RGBA")
        return image
    if image.mode in ("RGB", "RGBA", "L", "LA"):
        return image
    has_alpha = "A" in image.getbands() or "transparency" in image.info
    return image.convert("RGBA" if has_alpha else "RGB")


def _image_xobject(writer: PdfFileWriter, item: ImageItem, index: int) -> generic.IndirectObject:
    """An image XObject: JPEG data embedded as is (DCTDecode), everything else through Pillow (Flate)."""
    image = _open_image(item.data, f"image {index} ({item.role})")
    if image.format == "JPEG" and image.mode in ("RGB", "L"):
        stream = generic.StreamObject(
            {
                pdf_name("/Type"): pdf_name("/XObject"),
                pdf_name("/Subtype"): pdf_name("/Image"),
                pdf_name("/Width"): generic.NumberObject(image.width),
                pdf_name("/Height"): generic.NumberObject(image.height),
                pdf_name("/ColorSpace"): pdf_name("/DeviceRGB" if image.mode == "RGB" else "/DeviceGray"),
                pdf_name("/BitsPerComponent"): generic.NumberObject(8),
                pdf_name("/Filter"): pdf_name("/DCTDecode"),
            },
            encoded_data=item.data,
        )
        return writer.add_object(stream)
    return pil_image(_normalised(image), writer)


# --- page content -----------------------------------------------------------------------------------------


def _n(value: float) -> str:
    """A number for a content stream: at most 3 decimals, no trailing zeros, no ``-0``."""
    text = f"{value:.3f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def _check_finite(what: str, *values: float) -> None:
    if not all(isinstance(v, int | float) and math.isfinite(v) for v in values):
        raise PdfBuildError(f"{what} must be finite numbers, got {values!r}")


class _Page:
    """Converts layout millimetres (top-left origin) to PDF points (bottom-left origin)."""

    def __init__(self, layout: FaceLayout) -> None:
        self.width = layout.width_mm * _PT_PER_MM
        self.height = layout.height_mm * _PT_PER_MM

    def rect(self, box: Box) -> tuple[float, float, float, float]:
        """(llx, lly, urx, ury) in points."""
        return (
            box.x * _PT_PER_MM,
            self.height - (box.y + box.h) * _PT_PER_MM,
            (box.x + box.w) * _PT_PER_MM,
            self.height - box.y * _PT_PER_MM,
        )


def _text_ops(item: TextItem, embedded: Mapping[int, _EmbeddedFont], page: _Page) -> bytes:
    """One text line: placed by its alignment in its box, on the layout's baseline, in the item's colour; one
    ``Tj`` per run of the line in one face font (``/F1`` the main font, ``/F2`` … the fallbacks), the font
    switched with ``Tf`` between them inside the same text object, so the runs follow each other."""
    size_pt = item.size_mm * _PT_PER_MM
    spacing = item.letter_spacing_mm
    runs = fonts.font_runs(item.text)
    advance_em = sum(embedded[number].advance_em(run) for number, run in runs)
    width_mm = advance_em * item.size_mm + spacing * max(len(item.text) - 1, 0)
    offset = {Align.LEFT: 0.0, Align.CENTER: (item.box.w - width_mm) / 2, Align.RIGHT: item.box.w - width_mm}
    x = (item.box.x + offset[item.align]) * _PT_PER_MM
    y = page.height - (item.box.y + _BASELINE_EM * item.size_mm) * _PT_PER_MM
    r, g, b = (_n(c / 255) for c in item.color)
    ops = [f"q {r} {g} {b} rg"]
    if item.bold:
        ops.append(f"{r} {g} {b} RG {_n(size_pt * _BOLD_STROKE_EM)} w")
    first_font = runs[0][0] if runs else 0
    ops.append(f"BT /F{_font_slot(embedded, first_font)} {_n(size_pt)} Tf")
    if item.bold:
        ops.append("2 Tr")
    if spacing:
        ops.append(f"{_n(spacing * _PT_PER_MM)} Tc")
    ops.append(f"1 0 0 1 {_n(x)} {_n(y)} Tm")
    shown = b" ".join(
        (f"/F{_font_slot(embedded, number)} {_n(size_pt)} Tf ".encode("ascii") if index else b"")
        + embedded[number].encode(run)
        + b" Tj"
        for index, (number, run) in enumerate(runs)
    )
    return " ".join(ops).encode("ascii") + b" " + shown + b" ET Q"


def _font_slot(embedded: Mapping[int, _EmbeddedFont], number: int) -> int:
    """The resource name number of face font ``number`` on the page: ``/F1`` for the first font used …"""
    return list(embedded).index(number) + 1


def _check_text(item: TextItem, index: int) -> None:
    if not isinstance(item.text, str):
        raise PdfBuildError(f"text item {index} ({item.role}) is not a string")
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in item.text):
        raise PdfBuildError(f"text item {index} ({item.role}) contains control characters: {item.text!r}")
    _check_finite(
        f"text item {index} ({item.role}) box and size", item.box.x, item.box.y, item.box.w, item.box.h
    )
    _check_finite(f"text item {index} ({item.role}) size", item.size_mm, item.letter_spacing_mm)
    if item.size_mm <= 0:
        raise PdfBuildError(f"text item {index} ({item.role}) has a non-positive size {item.size_mm} mm")
    if len(item.color) != 3 or not all(isinstance(c, int) and 0 <= c <= 255 for c in item.color):
        raise PdfBuildError(
            f"text item {index} ({item.role}) colour {item.color!r} is not three 0–255 integers"
        )


def _draw_page(writer: PdfFileWriter, layout: FaceLayout) -> generic.IndirectObject:
    """Add the face as page 1: images (except the seal, which the signature widget shows), then texts."""
    page = _Page(layout)
    for index, text_item in enumerate(layout.texts):
        _check_text(text_item, index)
    resources = generic.DictionaryObject()
    ops: list[bytes] = []
    images = [img for img in layout.images if img.role != "seal"]
    if images:
        xobjects = generic.DictionaryObject()
        for index, img in enumerate(images):
            _check_finite(f"image {index} ({img.role}) box", img.box.x, img.box.y, img.box.w, img.box.h)
            name = f"/Im{index}"
            xobjects[pdf_name(name)] = _image_xobject(writer, img, index)
            llx, lly, urx, ury = page.rect(img.box)
            ops.append(f"q {_n(urx - llx)} 0 0 {_n(ury - lly)} {_n(llx)} {_n(lly)} cm {name} Do Q".encode())
        resources[pdf_name("/XObject")] = xobjects
    characters = layout.characters()
    if characters:
        embedded = _fonts_for(characters)
        resources[pdf_name("/Font")] = generic.DictionaryObject(
            {
                pdf_name(f"/F{_font_slot(embedded, number)}"): _font_resource(writer, font)
                for number, font in embedded.items()
            }
        )
        ops.extend(_text_ops(item, embedded, page) for item in layout.texts if item.text)
    content = generic.StreamObject(stream_data=b"\n".join(ops))
    content.compress()
    page_obj = PageObject(
        contents=writer.add_object(content), media_box=(0, 0, page.width, page.height), resources=resources
    )
    return writer.insert_page(page_obj)


# --- metadata ---------------------------------------------------------------------------------------------


def _metadata_values(metadata: Mapping[str, str]) -> dict[str, str]:
    values: dict[str, str] = {}
    for key, value in metadata.items():
        if not isinstance(key, str) or not key.strip():
            raise PdfBuildError(f"metadata key {key!r} is not a non-empty string")
        if not isinstance(value, str):
            raise PdfBuildError(f"metadata {key} must be a string, got {type(value).__name__}")
        if re.search("[\x00-\x08\x0b\x0c\x0e-\x1f]", key + value):
            raise PdfBuildError(f"metadata {key} contains control characters")
        values[key] = value
    return values


def _is_xml_name(name: str) -> bool:
    """Whether ``name`` can be an XMP property name (an XML NCName)."""
    try:
        etree.QName(ECERT_XMP_NAMESPACE, name)
    except ValueError:
        return False
    return True


def _write_metadata(
    writer: PdfFileWriter, layout: FaceLayout, metadata: Mapping[str, str], created: datetime
) -> None:
    """Info dictionary (standard entries + one entry per metadata element) and XMP (dc:, ecert:)."""
    values = _metadata_values(metadata)
    title = layout.title or values.get("ZZMC", "")
    author = values.get("ZZBFJG", "")
    identifier = values.get("ZZBS", "")
    subject = f"电子证照 {identifier}".strip()
    info = generic.DictionaryObject(
        {
            pdf_name("/Title"): pdf_string(title),
            pdf_name("/Author"): pdf_string(author),
            pdf_name("/Subject"): pdf_string(subject),
            pdf_name("/Creator"): pdf_string("certstore"),
            pdf_name("/CreationDate"): pdf_string(generic.pdf_date(created)),
        }
    )
    if identifier:
        info[pdf_name("/Keywords")] = pdf_string(identifier)
    for key, value in values.items():
        name = pdf_name("/" + key)
        if name in info:
            raise PdfBuildError(f"metadata key {key!r} clashes with the standard Info entry {key}")
        info[name] = pdf_string(value)
    writer.set_info(info)

    meta = writer.document_meta
    meta.title = title or None
    meta.author = author or None
    meta.subject = subject
    meta.keywords = [identifier] if identifier else []
    meta.creator = "certstore"
    meta.created = created
    fields_: list[tuple[xmp.ExpandedName, xmp.XmpValue]] = []
    if identifier:
        fields_.append((xmp.ExpandedName(ns=xmp.NS["dc"], local_name="identifier"), xmp.XmpValue(identifier)))
    fields_.extend(
        (xmp.ExpandedName(ns=ECERT_XMP_NAMESPACE, local_name=key), xmp.XmpValue(value))
        for key, value in values.items()
        if _is_xml_name(key)  # others are in the Info dictionary only
    )
    meta.xmp_extra = [xmp.XmpStructure.of(*fields_)]


# --- signing ----------------------------------------------------------------------------------------------


def _seal_style(seal_picture: bytes) -> StaticStampStyle:
    """The widget appearance: the seal picture, centred and scaled (aspect kept) to the widget, no border."""
    image = _normalised(_open_image(seal_picture, "the seal picture"))
    return StaticStampStyle(
        background=PdfImage(image, name="Seal", box=BoxConstraints(width=image.width, height=image.height)),
        background_opacity=1.0,
        border_width=0,
        background_layout=SimpleBoxLayoutRule(
            x_align=AxisAlignment.ALIGN_MID,
            y_align=AxisAlignment.ALIGN_MID,
            margins=Margins.uniform(0),
            inner_content_scaling=InnerScaling.STRETCH_TO_FIT,
        ),
    )


async def _sign(
    writer: PdfFileWriter,
    *,
    cms_signer: SM2CmsSigner,
    signing_time: datetime,
    widget: tuple[float, float, float, float] | None,
    seal_picture: bytes | None,
    reason: str,
    location: str,
    name: str | None,
) -> bytes:
    """Sign the document in ``writer`` (one revision) with a certification signature; returns the file."""
    meta = signers.PdfSignatureMetadata(
        field_name=FIELD_NAME,
        md_algorithm="sm3",
        subfilter=fields.SigSeedSubFilter.ADOBE_PKCS7_DETACHED,
        reason=reason,
        location=location,
        name=name,
        certify=True,
        docmdp_permissions=fields.MDPPerm.NO_CHANGES,
        tight_size_estimates=True,
    )
    field_spec = fields.SigFieldSpec(FIELD_NAME, on_page=0, box=widget)  # type: ignore[arg-type]  # floats work
    pdf_signer = signers.PdfSigner(
        meta,
        signer=cms_signer,
        stamp_style=_seal_style(seal_picture) if widget is not None and seal_picture is not None else None,
        new_field_spec=field_spec,
    )
    session = pdf_signer.init_signing_session(writer)
    session.system_time = signing_time  # the /M entry and the appearance; pyHanko defaults to the wall clock
    reserved = await session.estimate_signature_container_size(None, tight=True)
    tbs = session.prepare_tbs_document(validation_info=None, bytes_reserved=reserved)
    prepared, output = tbs.digest_tbs_document(output=io.BytesIO())
    post = await tbs.perform_signature(
        prepared.document_digest, PdfCMSSignedAttributes(signing_time=signing_time)
    )
    await post.post_signature_processing(output)
    assert isinstance(output, io.BytesIO)
    return output.getvalue()


def _run(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run pyHanko's async signing to completion, also when called from inside an event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


def build_pdf(
    layout: FaceLayout,
    *,
    metadata: Mapping[str, str],
    seal_picture: bytes | None,
    signer: Signer,
    signer_certificate: Certificate,
    chain: Sequence[Certificate] = (),
    signing_time: datetime | None = None,
    reason: str = "电子证照签发",
    location: str = "郑州",
) -> bytes:
    """The signed PDF rendition of one certificate face; returns the file's bytes.

    ``metadata`` (``ZZBS``, ``ZZMC``, … as strings) goes into the Info dictionary and XMP. ``seal_picture``
    (PNG/JPEG/GIF/BMP bytes, e.g. ``parse_seal(seal).picture.data``) is the appearance of the signature widget
    at ``layout.seal_box``; without a picture (or without a seal box) the signature is invisible. ``signer``
    must hold the key of ``signer_certificate``; ``chain`` (intermediates, root) is embedded in the CMS.
    ``signing_time`` (default: now) is the signingTime attribute and the signature's ``/M``.

    Raises :class:`PdfBuildError` for input the PDF cannot represent (characters without a glyph, unreadable
    images, a seal picture without a place for it), :class:`ValueError` for a key/certificate mismatch.
    """
    _check_finite("page size", layout.width_mm, layout.height_mm)
    if layout.width_mm <= 0 or layout.height_mm <= 0:
        raise PdfBuildError(f"page size must be positive, got {layout.width_mm} × {layout.height_mm} mm")
    when = (signing_time or datetime.now(UTC)).replace(microsecond=0)
    if when.tzinfo is None:
        raise ValueError("signing_time must be timezone-aware")
    if seal_picture is not None and layout.seal_box is None:
        raise PdfBuildError("a seal picture was given but the layout has no seal_box to place it")
    widget = None
    if layout.seal_box is not None and seal_picture is not None:
        box = layout.seal_box
        _check_finite("seal box", box.x, box.y, box.w, box.h)
        if box.w <= 0 or box.h <= 0:
            raise PdfBuildError(f"seal box {box} has no area")
        widget = _Page(layout).rect(box)
    cms_signer = SM2CmsSigner(signer, signer_certificate, chain, signing_time=when)

    writer = PdfFileWriter(stream_xrefs=False)
    writer.root[pdf_name("/Lang")] = pdf_string("zh-CN")
    writer.root[pdf_name("/ViewerPreferences")] = generic.DictionaryObject(
        {pdf_name("/DisplayDocTitle"): generic.BooleanObject(True)}
    )
    _draw_page(writer, layout)
    _write_metadata(writer, layout, metadata, when)
    return _run(
        _sign(
            writer,
            cms_signer=cms_signer,
            signing_time=when,
            widget=widget,
            seal_picture=seal_picture,
            reason=reason,
            location=location,
            name=signer_certificate.common_name,
        )
    )
