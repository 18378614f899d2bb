"""Fixtures for the SM2/SM3 and key-encoding tests: an OpenSSL 3 command-line runner.

Tests that run ``openssl`` carry ``@pytest.mark.openssl`` and use the ``openssl`` fixture, which works in the
test's ``tmp_path`` and skips the test when no ``openssl`` binary is on PATH.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.openssl import OPENSSL_BINARY, KeyText, OpenSSL, distid_option, parse_key_text  # noqa: F401


@pytest.fixture
def openssl(tmp_path: Path) -> OpenSSL:
    if OPENSSL_BINARY is None:
        pytest.skip("no openssl binary on PATH")
    return OpenSSL(OPENSSL_BINARY, tmp_path)


@pytest.fixture(scope="session")
def openssl_keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Keys generated once per session by OpenSSL: ``sm2``, ``sm2_other``, ``p256``, ``rsa``, ``ed25519``
    (PKCS#8 PEM files)."""
    if OPENSSL_BINARY is None:
        pytest.skip("no openssl binary on PATH")
    tool = OpenSSL(OPENSSL_BINARY, tmp_path_factory.mktemp("openssl-keys"))
    specs = {
        "sm2": ["-algorithm", "SM2"],
        "sm2_other": ["-algorithm", "SM2"],
        "p256": ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"],
        "rsa": ["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:1024"],
        "ed25519": ["-algorithm", "ED25519"],
    }
    paths = {}
    for name, options in specs.items():
        paths[name] = tool.path(f"{name}.pem")
        tool.run("genpkey", *options, "-out", paths[name])
    return paths
