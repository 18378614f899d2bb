"""Smoke test of ``python -m bench http --quick`` on SQLite + files (the PostgreSQL + S3 path of the same
servers is exercised by ``tests/test_scale_out.py``): every figure is a positive number and no request failed."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
KEY_VALUE = re.compile(r"^([a-z0-9_]+)=(\S+)$")


@pytest.mark.skipif(
    shutil.which("wrk") is None, reason="wrk is not installed (scripts/install-system-deps --test)"
)
def test_http_quick_ends_with_positive_figures() -> None:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
        "CERTSTORE_BENCH_HTTP_STORE": "sqlite",
    }
    completed = subprocess.run(
        [sys.executable, "-m", "bench", "http", "--quick"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stdout[-2000:] + completed.stderr[-2000:]
    values = dict(m.groups() for line in completed.stdout.splitlines() if (m := KEY_VALUE.match(line)))
    assert values["http_store_postgres"] == "0" and values["http_workers"] == "2"
    assert values["http_errors"] == "0"
    for name in ("verify", "public_status", "status", "health"):
        for suffix in ("per_s", "p50_ms", "p99_ms"):
            assert float(values[f"http_{name}_{suffix}"]) > 0, f"http_{name}_{suffix}"
    assert float(values["http_verify_vs_inprocess_x2_ratio"]) > 0
