"""The benchmarks' data directory is an application like any entry point's: dev keys, the newest schema, the
shipped catalogue; a certificate a benchmark issues goes through the use case with the operator's call and leaves
its audit entry."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from datetime import date
from pathlib import Path

from bench._setup import bench_call, prepared_data_dir
from certstore.access import Role
from certstore.app import Application
from certstore.records import example_draft
from certstore.services import auditing, certificates
from certstore.services.auditing import AuditFilters
from certstore.services.catalogue import get_entry, list_entries

CATALOGUE = "11410100990000025A001"
REPO = Path(__file__).resolve().parents[2]


def test_the_prepared_data_directory_is_an_application(tmp_path: Path) -> None:
    app = prepared_data_dir(tmp_path / "data", {})
    try:
        assert isinstance(app, Application)
        assert len(list_entries(app.repo)) >= 6
        assert app.trust.anchors and app.keystore.exists()
        entry = get_entry(app.repo, CATALOGUE)
        draft = replace(
            example_draft(entry, issue_date=date(2026, 11, 26)), certificate_number="410100202611260001"
        )
        issued = certificates.issue(app, bench_call("test"), draft).certificate
        assert issued.file_key is not None and app.repo.blobs.get(issued.file_key)[:2] == b"PK"
        page = auditing.search(app, AuditFilters(certificate_identifier=issued.identifier))
        [entry_] = page.entries
        assert entry_.event.action == "certificate.issue" and entry_.event.role == Role.OPERATOR.value
        assert entry_.event.details["source"] == "bench:test"
    finally:
        app.close()


def test_the_benchmarks_need_neither_pytest_nor_the_test_suite() -> None:
    """``python -m bench`` runs where pytest is not installed (issue 20, item 5): with ``pytest`` and ``tests``
    unimportable, every benchmark module and the throwaway servers they start (``devservers``) import, and
    ``python -m bench --list`` answers. (The import map itself — nothing imports ``tests`` — is
    tests/test_architecture.py's.)"""
    script = (
        "import sys, runpy, pkgutil, importlib\n"
        "sys.modules['pytest'] = None; sys.modules['tests'] = None\n"
        "import bench, devservers\n"
        "for package in (bench, devservers):\n"
        "    for info in pkgutil.iter_modules(package.__path__):\n"
        "        if info.name != '__main__':\n"
        "            importlib.import_module(f'{package.__name__}.{info.name}')\n"
        "sys.argv = ['bench', '--list']\n"
        "runpy.run_module('bench', run_name='__main__')\n"
    )
    completed = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=120, check=False
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    assert "exchange" in completed.stdout and "import" in completed.stdout
