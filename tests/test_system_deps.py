"""``scripts/install-system-deps`` (issue 21, item 7): ``make demo`` installs only what certstore runs with, ``make
test`` (``--test``) also what the tests and benchmarks use; a held apt lock is waited for, not a failure.

The script runs for real under bash with a ``PATH`` of stand-ins: no ``openssl``/``zbarimg``/``wrk``/… on it (so
those packages are "missing"), an ``id`` that says who runs it, an ``apt-get`` that records its calls and fails
with apt's lock message a given number of times, and a ``sleep`` that returns at once."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "install-system-deps"
#: The tests' packages the script finds by command (PostgreSQL and Chromium it finds by path, outside the sandbox).
TEST_ONLY = ("zbar-tools", "poppler-utils", "unzip", "wrk")

APT_GET = """#!/bin/bash
echo "$*" >> "$LOG"
count=$(cat "$COUNT" 2>/dev/null || echo 0)
if [ "$count" -lt "$LOCKED_TIMES" ]; then
  echo $((count + 1)) > "$COUNT"
  echo "E: Could not get lock /var/lib/apt/lists/lock. It is held by process 1234 (apt-get)" >&2
  exit 100
fi
"""


def _sandbox(tmp_path: Path, uid: int, locked_times: int = 0) -> dict[str, str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("grep", "date", "ls", "cat"):  # what the script needs besides the stand-ins
        found = shutil.which(tool)
        assert found is not None
        (bin_dir / tool).symlink_to(found)
    for name, body in {
        "id": f"#!/bin/bash\necho {uid}\n",
        "sleep": "#!/bin/bash\nexit 0\n",
        "apt-get": APT_GET,
    }.items():
        (bin_dir / name).write_text(body)
        (bin_dir / name).chmod(0o755)
    return {
        "PATH": str(bin_dir),
        "LOG": str(tmp_path / "apt.log"),
        "COUNT": str(tmp_path / "count"),
        "LOCKED_TIMES": str(locked_times),
        "APT_LOCK_TIMEOUT": "60",
    }


def _run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    bash = shutil.which("bash")
    assert bash is not None
    return subprocess.run(
        [bash, str(SCRIPT), *args], env={**env, "HOME": os.environ.get("HOME", "/")},
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip


def test_the_demo_asks_only_for_runtime_packages(tmp_path: Path) -> None:
    """Without ``--test`` (``make sysdeps``, what ``make demo`` runs) a non-root user is told only of the runtime
    packages — OpenSSL, libqrencode — and none of the tests' (zbar, poppler, unzip, wrk, Chromium); exit 1."""
    result = _run(_sandbox(tmp_path, uid=1000))
    assert result.returncode == 1
    assert result.stderr.startswith("certstore needs these Debian packages: ")
    assert "openssl" in result.stderr and "libqrencode4" in result.stderr
    assert not [p for p in (*TEST_ONLY, "postgresql", "chromium") if p in result.stderr]


def test_the_tests_ask_for_their_packages_too(tmp_path: Path) -> None:
    """``--test`` (``make sysdeps-test``, what ``make test`` runs) adds the tests' and benchmarks' packages."""
    result = _run(_sandbox(tmp_path, uid=1000), "--test")
    assert result.returncode == 1
    assert "openssl" in result.stderr
    assert [package for package in TEST_ONLY if package in result.stderr] == list(TEST_ONLY)


def test_a_held_apt_lock_is_waited_for(tmp_path: Path) -> None:
    """As root, with the package lists' lock held for the first three tries: the script says it waits, retries,
    then installs (exit 0); dpkg's own lock is waited for by apt-get (``DPkg::Lock::Timeout``)."""
    env = _sandbox(tmp_path, uid=0, locked_times=3)
    result = _run(env)
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("apt is busy (another process holds its lock); waiting") == 3
    calls = Path(env["LOG"]).read_text().splitlines()
    assert [c.split()[2] for c in calls] == ["update"] * 4 + ["install"]
    assert all(call.startswith("-o DPkg::Lock::Timeout=60 ") for call in calls)
    assert "openssl" in calls[-1] and not [p for p in TEST_ONLY if p in calls[-1]]


def test_a_lock_held_past_the_timeout_fails_with_apts_message(tmp_path: Path) -> None:
    """A lock never released: after ``APT_LOCK_TIMEOUT`` the script stops with apt's own message (exit ≠ 0)."""
    env = {**_sandbox(tmp_path, uid=0, locked_times=10**6), "APT_LOCK_TIMEOUT": "0"}
    result = _run(env)
    assert result.returncode != 0
    assert "Could not get lock" in result.stderr


@pytest.mark.parametrize("argument", ["--tests", "runtime"])
def test_an_unknown_argument_is_a_usage_error(tmp_path: Path, argument: str) -> None:
    """Anything but ``--test`` is a one-line usage message, exit 3."""
    result = _run(_sandbox(tmp_path, uid=1000), argument)
    assert result.returncode == 3
    assert result.stderr.strip() == "usage: scripts/install-system-deps [--test]"
