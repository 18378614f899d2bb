"""Crash safety (issue 3 §6): a writer SIGKILLed at random moments while issuing certificates loses no
acknowledged record, duplicates nothing, never leaves a row without its blob, and leaves only orphan blobs,
which the sweep removes. Runs on SQLite and PostgreSQL."""

from __future__ import annotations

import os
import random
import selectors
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import func, select

from certstore.services import certificates
from certstore.services.catalogue import load_shipped
from certstore.store.models import CertificateRow
from certstore.store.repository import Repository

ROOT = Path(__file__).resolve().parents[2]
TOTAL = 40  # certificate numbers per run
ROUNDS = 5


def _run_and_kill(data_dir: Path, env: dict[str, str], start: int, rng: random.Random) -> list[str]:
    """Start a worker, let it work for a random moment after it is ready, SIGKILL it; return its ack lines."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.services.crash_worker", str(data_dir), str(start), str(TOTAL)],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, bufsize=1,
    )  # fmt: skip
    assert proc.stdout is not None
    lines: list[str] = []
    selector = selectors.DefaultSelector()
    selector.register(proc.stdout, selectors.EVENT_READ)
    kill_at: float | None = None
    give_up = time.monotonic() + 60
    while proc.poll() is None and time.monotonic() < give_up:
        if kill_at is not None and time.monotonic() >= kill_at:
            proc.send_signal(signal.SIGKILL)
            break
        if selector.select(timeout=0.01):
            line = proc.stdout.readline()
            if line == "ready\n":
                kill_at = time.monotonic() + rng.uniform(0.02, 0.8)
            elif line:
                lines.append(line)
    proc.wait(timeout=30)
    lines.extend(proc.stdout.read().splitlines(keepends=True))  # acks written before the kill still count
    return [line for line in lines if line.strip() and line != "ready\n"]


def test_killed_writer_loses_and_duplicates_nothing(database_url: str, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    env = {**os.environ, "CERTSTORE_DATABASE_URL": database_url}
    repo = Repository.open(data_dir, env)
    load_shipped(repo)
    rng = random.Random(int.from_bytes(os.urandom(4), "big"))
    acknowledged: dict[int, str] = {}
    for round_ in range(ROUNDS):
        # Overlapping ranges: agencies retry what they are unsure of, which also adopts earlier orphans.
        # The last round works on numbers nobody retries, so what its kill leaves behind stays orphaned.
        start = rng.randrange(0, TOTAL // 2) if round_ < ROUNDS - 1 else 10 * TOTAL
        for line in _run_and_kill(data_dir, env, start, rng):
            index, identifier, _created = line.split()
            assert acknowledged.setdefault(int(index), identifier) == identifier  # retries: same identifier
    assert acknowledged, "the worker never got to acknowledge anything"

    # Every acknowledged certificate is there, with its file.
    for identifier in acknowledged.values():
        cert = certificates.get(repo, identifier)
        assert cert.file_key is not None and repo.blobs.verify(cert.file_key)

    with repo.db.session() as session:
        rows = session.scalars(select(CertificateRow)).all()
        numbers = session.scalar(select(func.count(func.distinct(CertificateRow.certificate_number))))
    assert len(rows) == numbers  # no certificate stored twice
    referenced = {row.file_key for row in rows}
    assert all(repo.blobs.exists(key) for key in referenced if key)  # never a row without its blob

    # Whatever the kills left behind is only orphans, and the sweep removes exactly those.
    orphans = set(repo.blobs.iter_keys()) - referenced
    repo.clock = lambda: datetime.now(UTC) + timedelta(days=1)  # every orphan is now old enough
    assert set(certificates.sweep_orphan_blobs(repo, older_than=timedelta(hours=1))) == orphans
    assert set(repo.blobs.iter_keys()) == referenced
