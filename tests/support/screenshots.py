"""The page tests' screenshots, listed at the end of the run — also when the suite runs in parallel
(``pytest -n``, pytest-xdist): each worker takes its shots into the one folder of the run and hands their paths to
the controlling process, which prints the list (:func:`pytest_terminal_summary` in ``tests/conftest.py``)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

__all__ = ["WORKER_KEY", "WorkerShots", "folder", "record", "taken"]

#: Where a worker leaves the paths of its shots for the controlling process (``config.workeroutput``).
WORKER_KEY = "certstore-screenshots"

_TAKEN = pytest.StashKey[list[Path]]()


def taken(config: pytest.Config) -> list[Path]:
    """The screenshots of this run so far (in a worker: its own; in the controlling process: every worker's)."""
    return config.stash.setdefault(_TAKEN, [])


def record(config: pytest.Config, path: Path) -> None:
    taken(config).append(path)


def folder(basetemp: Path) -> Path:
    """``CERTSTORE_SCREENSHOTS``, else ``screenshots`` in the run's temporary directory: a worker's ``basetemp``
    is a folder of its own inside the run's (``popen-gw0``…), so its shots go one level up, beside the others'."""
    configured = os.environ.get("CERTSTORE_SCREENSHOTS")
    if configured:
        return Path(configured)
    run = basetemp.parent if os.environ.get("PYTEST_XDIST_WORKER") else basetemp
    return run / "screenshots"


class WorkerShots:
    """Registered in the controlling process of a parallel run: collects what each worker took."""

    def pytest_testnodedown(self, node: Any, error: object) -> None:
        output = getattr(node, "workeroutput", None) or {}
        taken(node.config).extend(Path(p) for p in output.get(WORKER_KEY, ()))
