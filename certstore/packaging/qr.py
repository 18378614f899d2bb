"""The QR code of the face (二维码, ISO/IEC 18004): text → module matrix → PNG.

Encoding is done by **libqrencode** (Debian ``libqrencode4``, the reference C encoder) through ctypes when the
library is installed, else by **segno** (pure Python). Both choose the version automatically, use error
correction level M and evaluate all eight masks as the standard's penalty rules require; libqrencode does it in
~0.1 ms against segno's ~4 ms — a quarter of the time of issuing a certificate (``python -m bench import``).
The two may pick different versions or masks for the same text; every reader decodes either (the tests decode
both with zbar).

``CERTSTORE_QR_ENCODER=segno`` forces the fallback (for comparison and for machines without the library).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import io
import os
from functools import cache

import segno
from PIL import Image

__all__ = ["QR_ENCODER_ENV", "encoder_name", "qr_matrix", "qr_png"]

QR_ENCODER_ENV = "CERTSTORE_QR_ENCODER"

_QR_ECLEVEL_M = 1  # QRecLevel: L=0, M=1, Q=2, H=3
_QR_MODE_8 = 2  # QRencodeMode: NUM=0, AN=1, 8=2 (byte mode, as segno uses for a URL with lower-case letters)


class _QRcode(ctypes.Structure):
    _fields_ = [("version", ctypes.c_int), ("width", ctypes.c_int), ("data", ctypes.POINTER(ctypes.c_ubyte))]


@cache
def _libqrencode() -> ctypes.CDLL | None:
    if os.environ.get(QR_ENCODER_ENV, "").lower() == "segno":
        return None
    name = ctypes.util.find_library("qrencode") or "libqrencode.so.4"
    try:
        library = ctypes.CDLL(name)
    except OSError:
        return None
    library.QRcode_encodeString.restype = ctypes.POINTER(_QRcode)
    library.QRcode_encodeString.argtypes = [ctypes.c_char_p, ctypes.c_int, ctypes.c_int, ctypes.c_int,
                                            ctypes.c_int]  # fmt: skip
    library.QRcode_free.restype = None
    library.QRcode_free.argtypes = [ctypes.POINTER(_QRcode)]
    return library


def encoder_name() -> str:
    """``libqrencode`` or ``segno``: which encoder :func:`qr_matrix` uses in this process."""
    return "libqrencode" if _libqrencode() is not None else "segno"


def qr_matrix(text: str) -> list[bytes]:
    """The symbol for ``text`` (level M) as rows of modules, 1 = dark, without a quiet zone."""
    library = _libqrencode()
    if library is None:
        code = segno.make(text, error="m", micro=False, boost_error=False)
        return [bytes(1 if dark else 0 for dark in row) for row in code.matrix]
    data = text.encode("utf-8")
    if b"\0" in data:
        raise ValueError("a QR code text cannot contain NUL")
    symbol = library.QRcode_encodeString(data, 0, _QR_ECLEVEL_M, _QR_MODE_8, 1)
    if not symbol:
        raise ValueError(f"text of {len(data)} bytes does not fit a QR code at level M")
    try:
        width = symbol.contents.width
        raw = ctypes.string_at(symbol.contents.data, width * width)
    finally:
        library.QRcode_free(symbol)
    modules = raw.translate(_DARK_BIT)
    return [modules[i : i + width] for i in range(0, width * width, width)]


def qr_png(text: str, *, scale: int = 8, border: int = 2) -> bytes:
    """A black-on-white PNG of the QR code of ``text``: ``scale`` px per module, a ``border``-module quiet zone
    (the light page around it adds to it)."""
    rows = qr_matrix(text)
    width = len(rows) + 2 * border
    light = b"\xff" * width
    pixels = [light] * border
    pixels += [b"\xff" * border + row.translate(_TO_GREY) + b"\xff" * border for row in rows]
    pixels += [light] * border
    image = Image.frombytes("L", (width, width), b"".join(pixels)).convert("1")
    image = image.resize((width * scale, width * scale), Image.Resampling.NEAREST)
    out = io.BytesIO()
    image.save(out, format="PNG", compress_level=1)  # 1-bit, a few hundred bytes at any level
    return out.getvalue()


_TO_GREY = bytes([255, 0] + [0] * 254)  # module 0 → white, 1 → black
_DARK_BIT = bytes(b & 1 for b in range(256))  # libqrencode's module byte → 1 when bit 0 (dark) is set
