"""Archive round trip: a month of the log sealed into the Object Lock archive (SeaweedFS with PostgreSQL, the file
archive with SQLite), verified offline from the objects alone, removed from the hot table (PostgreSQL: its
partition dropped) — while the rest of the log still verifies and proves — and the objects cannot be deleted inside
their retention."""

from __future__ import annotations

import json
import secrets
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy import func, select

from certstore.audit import verify_log
from certstore.audit.archive import ArchiveError, archive_month, verify_archive
from certstore.audit.checkpoints import CheckpointKey
from certstore.audit.merkle import leaf_hash, verify_consistency, verify_inclusion
from certstore.audit.partitions import ensure_partitions, list_partitions, partition_name
from certstore.audit.tree import prove_consistency, prove_inclusion
from certstore.crypto.trust import TrustStore
from certstore.crypto.x509 import Certificate
from certstore.store.blobs import Archive, FileArchive, RetentionError, archive_from_url
from certstore.store.db import Database
from certstore.store.models import AuditEventRow
from devservers.seaweedfs import S3Server
from tests.audit.conftest import fill, months_ago


def _month(moment: datetime) -> str:
    return moment.strftime("%Y-%m")


def _seed(db: Database, key: CheckpointKey) -> tuple[str, str]:
    """120 entries two months ago, 80 last month, 50 now, checkpoints along the way."""
    old, last = months_ago(2), months_ago(1)
    ensure_partitions(db, months_ahead=1, now=old)  # PostgreSQL: the months' partitions exist (else DEFAULT)
    fill(db, 120, key=key, every=50, now=old)
    fill(db, 80, key=key, every=50, now=last, start=120)
    fill(db, 50, key=key, every=25, start=200)
    return _month(old), _month(last)


def _hot(db: Database) -> tuple[int, int]:
    with db.session(readonly=True) as session:
        low, count = session.execute(
            select(func.min(AuditEventRow.seq), func.count()).select_from(AuditEventRow)
        ).one()
    return int(low), int(count)


def _round_trip(
    db: Database, archive: Archive, key: CheckpointKey, trust: TrustStore, pinned: list[Certificate]
) -> None:
    old, last = _seed(db, key)
    with pytest.raises(ArchiveError, match="archive it first"):
        archive_month(db, archive, key, last, trust=trust)
    with pytest.raises(ArchiveError, match="must be over"):
        archive_month(db, archive, key, _month(datetime.now(UTC)), trust=trust)

    first = archive_month(db, archive, key, old, trust=trust, pinned=pinned)
    assert (first.first_seq, first.end_seq, first.removed) == (0, 120, 120)
    assert first.retain_until > datetime.now(UTC).replace(year=datetime.now(UTC).year + 2)
    assert _hot(db) == (120, 130)
    if db.backend == "postgresql":
        assert partition_name(old) not in list_partitions(db)  # the partition itself was dropped

    # Offline: the objects alone (no database) verify, with every entry, the chain and the sealing checkpoint.
    offline = verify_archive(archive, first.manifest_key, trust=trust, pinned=pinned)
    assert offline.intact, offline.findings
    assert offline.entries == 120
    manifest = json.loads(archive.get(first.manifest_key))
    assert manifest["previous_manifest"] is None and manifest["checkpoint"]["tree_size"] == 120
    lines = archive.get(manifest["segments"][0]["key"]).decode().splitlines()
    assert json.loads(lines[0])["seq"] == 0 and json.loads(lines[-1])["entry_hash"] == manifest["last_hash"]

    # Inside the retention the objects cannot be deleted (nor their retention shortened).
    for object_key in (first.manifest_key, *first.segments):
        with pytest.raises(RetentionError):
            archive.delete(object_key)
        assert archive.exists(object_key)

    # The hot log still verifies from where the archive ends, and still proves.
    result = verify_log(db, trust=trust, pinned=pinned)
    assert result.intact, result.findings
    assert (result.first_seq, result.entries, result.archived_months) == (120, 130, 1)
    with db.session(readonly=True) as session:
        inclusion = prove_inclusion(session, 150)
        assert verify_inclusion(
            150,
            inclusion.tree_size,
            leaf_hash(inclusion.entry.entry_hash),
            inclusion.path,
            inclusion.root_hash,
        )
        consistency = prove_consistency(session, 120)
        assert verify_consistency(
            120, consistency.second, first.checkpoint.root_hash, consistency.second_root, consistency.path
        )

    # The next month links to the first; its rows go too.
    second = archive_month(db, archive, key, last, trust=trust, pinned=pinned)
    assert (second.first_seq, second.end_seq) == (120, 200)
    assert json.loads(archive.get(second.manifest_key))["previous_manifest"] == first.manifest_key
    assert verify_archive(archive, second.manifest_key, trust=trust, pinned=pinned).intact
    assert _hot(db) == (200, 50)
    assert verify_log(db, trust=trust, pinned=pinned).intact
    with pytest.raises(ArchiveError, match="archived already"):
        archive_month(db, archive, key, old, trust=trust)


def test_archive_round_trip_against_seaweedfs_and_postgresql(
    postgres_database: str,
    s3_server: S3Server,
    key: CheckpointKey,
    trust: TrustStore,
    pinned: list[Certificate],
    tmp_path: Path,
) -> None:
    bucket = f"audit-archive-{secrets.token_hex(4)}"
    archive = archive_from_url(f"s3://{s3_server.endpoint}/{bucket}", data_dir=tmp_path, env=s3_server.env())
    with Database(postgres_database) as db:
        db.upgrade()
        _round_trip(db, archive, key, trust, pinned)


def test_archive_round_trip_with_sqlite_and_the_file_archive(
    tmp_path: Path, key: CheckpointKey, trust: TrustStore, pinned: list[Certificate]
) -> None:
    with Database(f"sqlite:///{tmp_path / 'log.db'}") as db:
        db.upgrade()
        _round_trip(db, FileArchive(tmp_path / "archive"), key, trust, pinned)


def test_a_month_that_does_not_verify_is_not_archived(
    tmp_path: Path, key: CheckpointKey, trust: TrustStore
) -> None:
    with Database(f"sqlite:///{tmp_path / 'log.db'}") as db:
        db.upgrade()
        old, _ = _seed(db, key)
        with db.engine.begin() as conn:
            conn.exec_driver_sql("DROP TRIGGER audit_events_no_update")
            conn.execute(sa.text("UPDATE audit_events SET principal = 'ORG/x' WHERE seq = 5"))
        with pytest.raises(ArchiveError, match="does not verify, nothing was removed"):
            archive_month(db, FileArchive(tmp_path / "archive"), key, old, trust=trust)
        assert _hot(db) == (0, 250)
