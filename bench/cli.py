"""``python -m bench cli``: how fast the ``certstore`` command line starts, in fresh processes.

Every figure is the median wall time of a new process (as a user at a terminal waits for it), measured in the
same run as the floor: ``python -c pass`` with the same interpreter (``python_start_s``), so that the ratios
(``*_vs_python_ratio``) tell how much the command itself costs whatever the machine:

- ``help_s``: ``certstore --help`` (target ≤ 0.3 s; the command modules are imported only when a command runs);
- ``version_s``: ``certstore --version``;
- ``verify_s``: ``certstore verify FILE`` of a small issued OFD to its result, with the repository's status
  (target ≤ 0.6 s; opens the application);
- ``verify_offline_s``: ``certstore verify --offline FILE`` (no repository; the verdict is INDETERMINATE
  without a status snapshot, which is the documented outcome, exit 2).

The file is issued beforehand in a throwaway data directory (``keys init``, ``catalogue example``, ``issue``),
through the same command line. Quick mode runs each command 3 times instead of 9.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import BenchContext, Results, register

DEMO_TYPE = "11410100990000025A001"


def _command() -> list[str]:
    """The installed console script next to the interpreter, else the same entry point through ``-c``."""
    script = Path(sys.executable).with_name("certstore")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from certstore.cli import main; main()"]


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("CERTSTORE_")}


def _run(args: list[str], *, ok: tuple[int, ...] = (0,)) -> subprocess.CompletedProcess[bytes]:
    result = subprocess.run(args, capture_output=True, env=_env(), timeout=300, check=False)
    if result.returncode not in ok:
        raise RuntimeError(
            f"{' '.join(args)} exited {result.returncode}: {result.stderr.decode(errors='replace')}"
        )
    return result


def _median_wall(args: list[str], runs: int, *, ok: tuple[int, ...] = (0,)) -> float:
    _run(args, ok=ok)  # warm the page cache and the .pyc files
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        _run(args, ok=ok)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


@register("cli", "certstore command-line start: --help, --version, verify of a small file, vs python -c pass")
def cli_start(ctx: BenchContext) -> Results:
    runs = int(ctx.pick(full=9, quick=3))
    certstore = _command()
    with tempfile.TemporaryDirectory(prefix="bench-cli-") as tmp:
        data = ["--data-dir", str(Path(tmp) / "data")]
        example = Path(tmp) / "example.json"
        ofd = Path(tmp) / "example.ofd"
        _run([*certstore, *data, "keys", "init", "--public-url", "http://127.0.0.1:8000"])
        example.write_bytes(_run([*certstore, *data, "catalogue", "example", DEMO_TYPE]).stdout)
        _run(
            [*certstore, *data, "issue", "--catalogue", DEMO_TYPE, "--data", str(example), "--out", str(ofd)]
        )
        ctx.log(f"issued {ofd.stat().st_size} bytes; {runs} runs of each command, median wall time")

        python_s = _median_wall([sys.executable, "-c", "pass"], runs)
        help_s = _median_wall([*certstore, "--help"], runs)
        version_s = _median_wall([*certstore, "--version"], runs)
        verify_s = _median_wall([*certstore, *data, "verify", str(ofd)], runs)
        offline_s = _median_wall([*certstore, *data, "verify", "--offline", str(ofd)], runs, ok=(2,))

    for name, value, target in (
        ("python -c pass", python_s, None),
        ("certstore --help", help_s, 0.3),
        ("certstore --version", version_s, None),
        ("certstore verify FILE", verify_s, 0.6),
        ("certstore verify --offline FILE", offline_s, 0.6),
    ):
        verdict = (
            "" if target is None else f"  (target ≤ {target} s: {'met' if value <= target else 'NOT met'})"
        )
        ctx.log(f"{name:<34} {value * 1000:7.0f} ms  ×{value / python_s:5.1f} python{verdict}")
    return {
        "python_start_s": python_s,
        "help_s": help_s,
        "version_s": version_s,
        "verify_s": verify_s,
        "verify_offline_s": offline_s,
        "help_vs_python_ratio": help_s / python_s,
        "version_vs_python_ratio": version_s / python_s,
        "verify_vs_python_ratio": verify_s / python_s,
        "verify_offline_vs_python_ratio": offline_s / python_s,
    }
