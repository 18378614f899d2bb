"""Independent readers of our OFD packages: the OpenSSL command line on a seal's SM2 signature, easyofd (PyPI)
rendering a package."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from asn1crypto import core

from certstore.crypto.x509 import Certificate
from tests.openssl import verifies as openssl_verifies

EASYOFD_RENDER = Path(__file__).parents[1] / "packaging" / "ofd" / "easyofd_render.py"


def assert_openssl_verifies_seal(
    tmp_path: Path, files: Mapping[str, bytes], signer: Certificate, sign_dir: str = "Doc_0/Signs/Sign_0"
) -> None:
    """The electronic seal signature (SES_Signature) in ``sign_dir``: its to-be-signed part covers the SM3 of
    Signature.xml, it carries ``signer``'s certificate, and OpenSSL accepts its SM2 signature by that key."""
    ses = core.load(files[f"{sign_dir}/SignedValue.dat"])
    tbs_der, signature_value = ses[0].dump(), ses[3].contents[1:]
    assert ses[0][3].contents[1:] == hashlib.new("sm3", files[f"{sign_dir}/Signature.xml"]).digest()
    carried = Certificate.from_der(ses[1].contents)
    assert carried == signer
    assert openssl_verifies(tmp_path, carried, tbs_der, signature_value)


def easyofd_python() -> str | None:
    """A Python with easyofd: ``CERTSTORE_EASYOFD_PYTHON``, or this one if it has easyofd."""
    configured = os.environ.get("CERTSTORE_EASYOFD_PYTHON")
    if configured:
        return configured
    return sys.executable if importlib.util.find_spec("easyofd") is not None else None


def easyofd_render(data: bytes, workdir: Path, name: str) -> dict[str, Any]:
    """Render ``data`` with easyofd into ``workdir / f"{name}_<page>.png"``; returns what easyofd_render.py
    prints (pages, text per page). Skips the test when easyofd is not installed."""
    python = easyofd_python()
    if python is None:
        pytest.skip("easyofd is not installed (pip install easyofd, or set CERTSTORE_EASYOFD_PYTHON)")
    source = workdir / f"{name}.ofd"
    source.write_bytes(data)
    run = subprocess.run(
        [python, str(EASYOFD_RENDER), str(source), str(workdir / name)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=workdir,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    return json.loads(run.stdout.strip().splitlines()[-1])
