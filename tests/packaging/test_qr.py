"""The face's QR code: both encoders (libqrencode through ctypes, segno as the fallback) make symbols at error
correction level M that an independent decoder (zbar) reads back to the exact text."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from certstore.packaging import qr
from tests.packaging.test_face import level_of

needs_zbar = pytest.mark.skipif(shutil.which("zbarimg") is None, reason="zbarimg (zbar-tools) not installed")

TEXTS = [
    "http://127.0.0.1:8000/v/11410100990000025A001410105202003090199",
    "https://zwfw.zhengzhou.gov.cn/certstore/v/1.2.156.3005.2.11410100990000017F001.00000123.1",
    "HTTPS://EXAMPLE.ORG/V/1",  # alphanumeric mode
    "1" * 120,  # numeric mode, a larger version
]


@pytest.fixture(params=["libqrencode", "segno"])
def encoder(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    qr._libqrencode.cache_clear()
    if request.param == "segno":
        monkeypatch.setenv(qr.QR_ENCODER_ENV, "segno")
    elif qr._libqrencode() is None:
        pytest.skip("libqrencode4 not installed (scripts/install-system-deps installs it)")
    yield request.param
    qr._libqrencode.cache_clear()


@needs_zbar
def test_symbols_decode_to_the_text_at_level_m(encoder: str, tmp_path: Path) -> None:
    assert qr.encoder_name() == encoder
    for index, text in enumerate(TEXTS):
        matrix = qr.qr_matrix(text)
        assert len(matrix) == len(matrix[0]) and (len(matrix) - 17) % 4 == 0
        assert level_of(matrix) == "M"
        path = tmp_path / f"{index}.png"
        path.write_bytes(qr.qr_png(text))
        decoded = subprocess.run(["zbarimg", "--raw", "-q", str(path)], capture_output=True, timeout=30)
        assert decoded.returncode == 0, decoded.stderr
        assert decoded.stdout.decode("utf-8").rstrip("\n") == text


def test_refusals(encoder: str) -> None:
    with pytest.raises(ValueError):
        qr.qr_matrix("x" * 4000)  # beyond version 40 at level M
    if encoder == "libqrencode":
        with pytest.raises(ValueError, match="NUL"):
            qr.qr_matrix("a\0b")
