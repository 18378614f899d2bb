"""Start-up of :mod:`certstore.app`: what importing it and opening it for a verification load (issue 21 item 3).

``certstore verify FILE`` opens the application to ask the repository for the certificate's status; its start
(``python -m bench cli``, target ≤ 0.6 s) depends on what that drags in. Sealing (pyhanko, fonts), the audit
writer and queries, the migrations (Alembic, when the database is at head), the S3 client and the HTTP clients
are imported where they are used, not at start-up: these tests fail when a module-level import brings one back.
They look at ``sys.modules`` of a fresh interpreter, not at the clock, so they hold on a loaded machine.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from certstore.store.db import Database, SchemaError, _newest_revision_file, head_revision

#: What neither ``import certstore.app`` nor an online verification's start may load.
NEVER_AT_START = (
    "pyhanko",  # PDF sealing and PDF verification
    "aiohttp",  # pyhanko's time-stamp client
    "httpx",  # the HTTP time-stamp client
    "minio",  # the S3 blob store
    "urllib3",  # its transport
    "alembic",  # migrations: not needed when the database is at head
    "mako",
    "fontTools",  # PDF fonts
    "certstore.packaging.pdf",
    "certstore.packaging.face",
    "certstore.audit.trail",  # the API's batched audit writer
    "certstore.audit.query",
    "certstore.audit.verify",
    "certstore.packaging.ofd.writer",  # the OFD reader without the writer side (package ``__init__`` is lazy)
    "certstore.packaging.ofd.signing",
    "certstore.packaging.ofd.annotations",
    "certstore.packaging.fonts",
    "certstore.packaging.layout",
    "certstore.services.catalogue_checks",  # face layout for the approval checks
    "jsonschema",  # catalogue validation: no entry is made to verify a file
    "PIL",  # images: checked on upload, drawn for previews
)

#: Besides those, what importing the application alone may not load: every use case and the whole audit chain.
NOT_AT_IMPORT = (
    *NEVER_AT_START,
    "certstore.services",
    "certstore.audit",
    "certstore.verify",
    "certstore.tsa",
)


def _environment() -> dict[str, str]:
    """The test process's environment without certstore's settings (the data directory decides)."""
    return {key: value for key, value in os.environ.items() if not key.startswith("CERTSTORE_")}


def _loaded(modules: list[str], prefixes: tuple[str, ...]) -> list[str]:
    return sorted(m for m in modules if any(m == p or m.startswith(f"{p}.") for p in prefixes))


def _modules_after(code: str, *args: str) -> list[str]:
    """The modules a fresh interpreter holds after running ``code`` (which prints them as JSON, last line)."""
    result = subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        env=_environment(),
        timeout=120,
        check=False,
    )
    assert result.stdout, result.stderr
    return list(json.loads(result.stdout.splitlines()[-1]))


def test_importing_the_application_loads_no_use_case_audit_sealing_or_client() -> None:
    """``import certstore.app`` loads the repository (SQLAlchemy, the models, the key store) and nothing of the
    use cases, the audit chain, sealing, migrations, S3 or HTTP."""
    modules = _modules_after("import certstore.app, json, sys; print(json.dumps(sorted(sys.modules)))")
    assert "certstore.app" in modules
    assert "certstore.store.repository" in modules
    assert _loaded(modules, NOT_AT_IMPORT) == []


@pytest.mark.parametrize("database_backend", ["sqlite"])
def test_an_online_verification_starts_without_sealing_migrations_or_clients(
    database_url: str, tmp_path: Path
) -> None:
    """``certstore verify FILE`` (online) on a data directory whose database is at head opens the application and
    asks it for the repository's check — and loads no sealing, no Alembic, no S3 or HTTP client to do so."""
    data_dir = tmp_path / "data"  # where ``database_url`` put the SQLite database at head
    presented = tmp_path / "presented.ofd"
    presented.write_bytes(b"not a certificate file")
    dump = tmp_path / "modules.json"
    code = (
        "import atexit, json, sys\n"
        "out = sys.argv.pop()\n"
        "atexit.register(lambda: open(out, 'w').write(json.dumps(sorted(sys.modules))))\n"
        "from certstore.cli import main\n"
        "main()\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, "--data-dir", str(data_dir), "verify", str(presented), str(dump)],
        capture_output=True,
        text=True,
        env=_environment(),
        timeout=120,
        check=False,
    )
    assert result.returncode == 3, result.stderr  # unreadable: after the application was opened
    assert "neither an OFD (ZIP) nor a PDF" in result.stderr
    modules = json.loads(dump.read_text())
    assert {"certstore.app", "certstore.services.verification", "certstore.services.seals"} <= set(modules)
    assert _loaded(modules, NEVER_AT_START) == []


def test_the_console_script_pauses_the_collector_while_it_starts() -> None:
    """Run as the console script, the command line starts with the cyclic collector paused and gets it back after
    :data:`~certstore.cli.STARTUP_COLLECTOR_PAUSE_S` (a daemon timer); called with arguments it leaves the
    caller's collector alone."""
    code = (
        "import gc, time\n"
        "from certstore import cli\n"
        "cli._pause_collector()\n"
        "paused = not gc.isenabled()\n"
        "import os\n"
        "child = os.fork()\n"
        "if child == 0:\n"
        "    os._exit(0 if gc.isenabled() else 1)\n"  # a child forked during the pause collects at once
        "assert os.waitpid(child, 0)[1] == 0, 'the forked child runs without the collector'\n"
        "time.sleep(cli.STARTUP_COLLECTOR_PAUSE_S + 0.5)\n"
        "print(paused, gc.isenabled())\n"
        "try:\n"
        "    cli.main(['--version'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "print(gc.isenabled())\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=_environment(),
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "True True"  # paused at start, back after the pause
    assert lines[1].startswith("certstore ")  # main(argv): the version printed ...
    assert lines[2] == "True"  # ... and the collector left as it was


def test_the_newest_revision_file_is_the_head_alembic_knows() -> None:
    """The schema check's short cut (:meth:`certstore.store.db.Database.check_schema` without Alembic when the
    database is at head) reads the head from the file names: it must be the head Alembic computes."""
    assert _newest_revision_file() == head_revision()


@pytest.mark.parametrize("database_backend", ["sqlite"])
def test_the_short_cut_answers_as_alembic_does(database: Database) -> None:
    """At head, ``check_schema`` and ``upgrade`` answer without Alembic what Alembic answers; a database at any
    other revision still goes to Alembic, which refuses it as before (here: one a newer certstore migrated)."""
    head = head_revision()
    assert database.check_schema() == head
    assert database.upgrade() == (head, head)
    with database.engine.begin() as conn:
        conn.exec_driver_sql("UPDATE alembic_version SET version_num = '9999_from_a_newer_certstore'")
    with pytest.raises(SchemaError, match="which this version of certstore does not know"):
        database.check_schema()
