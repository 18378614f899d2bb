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

Each figure has its CPU twin (``*_cpu_s``: median user + system time of the same processes), which a machine
shared with other work inflates much less than the wall time: compare loaded runs by it and by the ratios.

The file is issued beforehand in a throwaway data directory (``keys init``, ``catalogue example``, ``issue``),
through the same command line. Quick mode runs each command 3 times instead of 9.

Every process runs with compiled bytecode, as an installed certstore does (pip compiles it at install): the
commands write and read their ``.pyc`` files in a throwaway cache (``PYTHONPYCACHEPREFIX``), made by the first,
untimed run of each command, whatever ``PYTHONDONTWRITEBYTECODE`` says in the caller's environment — with it set,
each run would compile certstore's sources anew (0.1–0.2 s of CPU per command) and time the compiler.
"""

from __future__ import annotations

import os
import resource
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


def _env(pycache: Path) -> dict[str, str]:
    """The caller's environment without certstore's settings, with bytecode cached in ``pycache``."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("CERTSTORE_") and k not in ("PYTHONDONTWRITEBYTECODE", "PYTHONPYCACHEPREFIX")
    }
    env["PYTHONPYCACHEPREFIX"] = str(pycache)
    return env


def _run(
    args: list[str], env: dict[str, str], *, ok: tuple[int, ...] = (0,)
) -> subprocess.CompletedProcess[bytes]:
    result = subprocess.run(args, capture_output=True, env=env, timeout=300, check=False)
    if result.returncode not in ok:
        raise RuntimeError(
            f"{' '.join(args)} exited {result.returncode}: {result.stderr.decode(errors='replace')}"
        )
    return result


def _medians(
    args: list[str], env: dict[str, str], runs: int, *, ok: tuple[int, ...] = (0,)
) -> tuple[float, float]:
    """The median wall time and the median CPU time (user + system) of ``runs`` new processes."""
    _run(args, env, ok=ok)  # warm the page cache and the .pyc files
    walls, cpus = [], []
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        _run(args, env, ok=ok)
        walls.append(time.perf_counter() - start)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
    return statistics.median(walls), statistics.median(cpus)


@register("cli", "certstore command-line start: --help, --version, verify of a small file, vs python -c pass")
def cli_start(ctx: BenchContext) -> Results:
    runs = int(ctx.pick(full=9, quick=3))
    certstore = _command()
    with tempfile.TemporaryDirectory(prefix="bench-cli-") as tmp:
        env = _env(Path(tmp) / "pycache")
        data = ["--data-dir", str(Path(tmp) / "data")]
        example = Path(tmp) / "example.json"
        ofd = Path(tmp) / "example.ofd"
        _run([*certstore, *data, "keys", "init", "--public-url", "http://127.0.0.1:8000"], env)
        example.write_bytes(_run([*certstore, *data, "catalogue", "example", DEMO_TYPE], env).stdout)
        _run(
            [*certstore, *data, "issue", "--catalogue", DEMO_TYPE, "--data", str(example), "--out", str(ofd)],
            env,
        )
        ctx.log(f"issued {ofd.stat().st_size} bytes; {runs} runs of each command, median wall and CPU time")

        figures = {
            "python_start": _medians([sys.executable, "-c", "pass"], env, runs),
            "help": _medians([*certstore, "--help"], env, runs),
            "version": _medians([*certstore, "--version"], env, runs),
            "verify": _medians([*certstore, *data, "verify", str(ofd)], env, runs),
            "verify_offline": _medians(
                [*certstore, *data, "verify", "--offline", str(ofd)], env, runs, ok=(2,)
            ),
        }

    python_s = figures["python_start"][0]
    for key, name, target in (
        ("python_start", "python -c pass", None),
        ("help", "certstore --help", 0.3),
        ("version", "certstore --version", None),
        ("verify", "certstore verify FILE", 0.6),
        ("verify_offline", "certstore verify --offline FILE", 0.6),
    ):
        wall, cpu = figures[key]
        verdict = (
            "" if target is None else f"  (target ≤ {target} s: {'met' if wall <= target else 'NOT met'})"
        )
        ctx.log(
            f"{name:<34} {wall * 1000:7.0f} ms  ×{wall / python_s:5.1f} python  (CPU {cpu * 1000:5.0f} ms){verdict}"
        )
    results: Results = {}
    for key, (wall, cpu) in figures.items():
        results[f"{key}_s"] = wall
        results[f"{key}_cpu_s"] = cpu
    for key in ("help", "version", "verify", "verify_offline"):
        results[f"{key}_vs_python_ratio"] = figures[key][0] / python_s
    return results
