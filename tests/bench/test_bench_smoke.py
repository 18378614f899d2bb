"""Smoke test of the benchmark runner: ``python -m bench crypto --quick`` runs and ends in key=value lines."""

from __future__ import annotations

import math
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
KEY_VALUE = re.compile(r"^([a-z0-9_]+)=(\S+)$")
CRYPTO_KEYS = {
    "sign_per_s",
    "verify_per_s",
    "sign_ratio_vs_openssl",
    "verify_ratio_vs_openssl",
    "openssl_sign_per_s",
    "openssl_verify_per_s",
    "gmssl_py_sign_per_s",
    "gmssl_py_verify_per_s",
}
OPENSSL_KEYS = {
    "sign_ratio_vs_openssl",
    "verify_ratio_vs_openssl",
    "openssl_sign_per_s",
    "openssl_verify_per_s",
}


def _run_bench(*args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return subprocess.run(
        [sys.executable, "-m", "bench", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _trailing_key_values(stdout: str) -> dict[str, str]:
    """The key=value lines at the end of the output (the machine-readable block)."""
    block: dict[str, str] = {}
    for line in reversed(stdout.strip().splitlines()):
        match = KEY_VALUE.match(line.strip())
        if match is None:
            break
        block[match.group(1)] = match.group(2)
    return block


def test_list_names_the_crypto_benchmark() -> None:
    completed = _run_bench("--list")
    assert completed.returncode == 0, completed.stderr
    assert re.search(r"^crypto\s+\S", completed.stdout, re.M)


def test_unknown_benchmark_is_an_error() -> None:
    completed = _run_bench("no-such-benchmark")
    assert completed.returncode == 2
    assert "unknown benchmark" in completed.stderr and "crypto" in completed.stderr


def test_crypto_quick_ends_with_positive_key_values() -> None:
    completed = _run_bench("crypto", "--quick")
    assert completed.returncode == 0, completed.stdout + completed.stderr
    values = _trailing_key_values(completed.stdout)
    assert values.keys() >= CRYPTO_KEYS, (
        f"missing {sorted(CRYPTO_KEYS - values.keys())} in:\n{completed.stdout}"
    )
    have_openssl = shutil.which("openssl") is not None
    for key, text in values.items():
        value = float(text)  # every value is a number (or nan)
        if math.isnan(value):
            assert not have_openssl and key in OPENSSL_KEYS | {"openssl_sm3_mb_per_s"}, f"{key} is nan"
        else:
            assert value > 0, f"{key}={text}"
    if not have_openssl:
        assert "openssl" in completed.stdout.lower() and "not found" in completed.stdout.lower()


# Output of `openssl speed -seconds 1 sm2` and `openssl speed -seconds 1 -bytes 16384 -evp sm3` from OpenSSL
# 3.0.19 on this project's reference machine (the build-information lines are left out).
OPENSSL_SM2_OUTPUT = """\
Doing 256 bits sign CurveSM2's for 1s: 4349 256 bits CurveSM2 signs in 1.00s
Doing 256 bits verify CurveSM2's for 1s: 4663 256 bits CurveSM2 verify in 0.99s
version: 3.0.19
                              sign    verify    sign/s verify/s
 256 bits SM2 (CurveSM2)   0.0002s   0.0002s   4349.0   4710.1
"""
OPENSSL_SM3_OUTPUT = """\
The 'numbers' are in 1000s of bytes per second processed.
type          16384 bytes
sm3             515997.70k
"""


def test_openssl_speed_output_is_parsed() -> None:
    from bench.crypto import parse_openssl_sm2, parse_openssl_sm3

    assert parse_openssl_sm2(OPENSSL_SM2_OUTPUT) == (4349.0, 4710.1)
    table_less = OPENSSL_SM2_OUTPUT.split("version:")[0]  # only the progress lines
    sign, verify = parse_openssl_sm2(table_less)
    assert sign == 4349.0 and abs(verify - 4663 / 0.99) < 1e-6
    assert abs(parse_openssl_sm3(OPENSSL_SM3_OUTPUT) - 515.9977) < 1e-6
