"""The audit log on each database backend, the repository's checkpoint key, and an attacker's hands.

- ``keystore`` (session): a dev key store; ``key`` its repository key (signs checkpoints); ``trust`` /
  ``pinned``: what verification checks signers against.
- ``database`` (from tests/conftest.py): a migrated database on SQLite and on PostgreSQL.
- :func:`tampering`: a connection with the retention triggers out of the way — what an attacker holding the
  database owner's (or the file's) rights can do, and what verification must still catch.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection

from certstore.audit import AuditEvent, Outcome, append_events
from certstore.audit.checkpoints import CheckpointKey
from certstore.crypto.trust import TrustStore
from certstore.crypto.x509 import Certificate
from certstore.keystore import KeyStore
from certstore.services.copies import repository_sealing_key
from certstore.services.keys import init_dev_keys
from certstore.store.db import Database

SQLITE_TRIGGERS = (
    "audit_events_no_update",
    "audit_events_retain",
    "audit_chain_guard",
    "audit_chain_no_delete",
    "audit_checkpoints_no_update",
    "audit_checkpoints_no_delete",
)


@pytest.fixture(scope="session")
def keystore(tmp_path_factory: pytest.TempPathFactory) -> KeyStore:
    store = KeyStore(tmp_path_factory.mktemp("audit-keys") / "keys")
    init_dev_keys(store)
    return store


@pytest.fixture(scope="session")
def key(keystore: KeyStore) -> CheckpointKey:
    return repository_sealing_key(keystore)


@pytest.fixture(scope="session")
def trust(keystore: KeyStore) -> TrustStore:
    return keystore.trust_store()


@pytest.fixture(scope="session")
def pinned(key: CheckpointKey) -> list[Certificate]:
    return [key.certificate]


def event(i: int = 0, *, at: datetime | None = None, **changes: Any) -> AuditEvent:
    """A plausible API-call event; ``changes`` override fields."""
    values: dict[str, Any] = {
        "at": at or datetime.now(UTC),
        "request_id": f"req-{i}",
        "action": "holder_certificates" if i % 3 else "issue_certificate",
        "outcome": Outcome.DENY if i % 7 == 0 else Outcome.ALLOW,
        "status_code": 403 if i % 7 == 0 else 200,
        "principal": f"12410100MB000000{i % 4}X/staff{i % 5}",
        "organisation_code": f"12410100MB000000{i % 4}X",
        "role": "window",
        "resource": "GET /api/v1/holders/{id_type}/{id_number}/certificates",
        "matter": f"ZZ{i:08d}",
        "holder_digest": f"{i % 11:016x}",
        "client": "10.0.0.7",
        "user_agent": "pytest/9 (证照)",
        "details": {"ms": 1.5, "i": i, "名称": "测试"},
    }
    values.update(changes)
    return AuditEvent(**values)


def fill(
    db: Database,
    count: int,
    *,
    key: CheckpointKey | None = None,
    every: int = 0,
    now: datetime | None = None,
    start: int = 0,
) -> None:
    """Append ``count`` events; with ``key`` and ``every``, a checkpoint after every ``every`` entries."""
    step = every or count
    done = 0
    while done < count:
        batch = [event(start + done + i) for i in range(min(step, count - done))]
        with db.session() as session:
            append_events(session, batch, key=key, force_checkpoint=key is not None and every > 0, now=now)
        done += len(batch)


@contextmanager
def tampering(db: Database) -> Iterator[Connection]:
    """One transaction with the audit triggers out of the way (an attacker with the owner's rights)."""
    with db.engine.begin() as conn:
        if db.backend == "postgresql":
            conn.exec_driver_sql("SET LOCAL session_replication_role = replica")  # superuser: triggers off
        else:
            for name in SQLITE_TRIGGERS:
                conn.exec_driver_sql(f"DROP TRIGGER IF EXISTS {name}")
        yield conn


def months_ago(months: int, *, day: int = 10) -> datetime:
    """Noon on ``day`` of the month ``months`` before this one (UTC)."""
    now = datetime.now(UTC)
    year, month = now.year, now.month - months
    while month <= 0:
        year, month = year - 1, month + 12
    return datetime(year, month, day, 12, tzinfo=UTC)


@pytest.fixture
def spool_dir(tmp_path: Path) -> Path:
    return tmp_path / "spool"
