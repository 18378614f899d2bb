"""Smoke test of ``python -m bench exchange --quick``: one cycle applies every row and the output ends with
``cycle_100k_s=`` and ``peak_rss_mb=``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_exchange_quick_ends_with_the_two_figures() -> None:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
    }
    completed = subprocess.run(
        [sys.executable, "-m", "bench", "exchange", "--quick"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr[-2000:]
    last = completed.stdout.strip().splitlines()[-2:]
    assert [line.split("=")[0] for line in last] == ["cycle_100k_s", "peak_rss_mb"]
    assert all(float(line.split("=")[1]) > 0 for line in last)
    assert "rows=10000" in completed.stdout
