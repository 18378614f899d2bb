"""The same write path on PostgreSQL-free SQLite + a real S3 server (SeaweedFS): files land in S3, rows point
only at blobs that exist, and the orphan sweep works on S3 listings."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

from certstore.services import certificates
from certstore.services.catalogue import load_shipped
from certstore.store.blobs import blob_store_from_url
from certstore.store.db import Database
from certstore.store.repository import Repository
from tests.services.conftest import Clock, DraftMaker
from tests.support import issuing


def test_issue_and_sweep_on_s3(s3_server, tmp_path: Path, draft: DraftMaker, clock: Clock) -> None:
    database = Database(f"sqlite:///{tmp_path / 'certstore.db'}")
    database.upgrade()
    env = {**s3_server.env()}
    blobs = blob_store_from_url(
        f"s3://{s3_server.endpoint}/certs-{os.urandom(4).hex()}", data_dir=tmp_path, env=env
    )
    repo = Repository(db=database, blobs=blobs, holder_key=os.urandom(32), clock=clock)
    load_shipped(repo)
    cert = issuing.issue(repo, draft(), file=b"an OFD file", file_media_type="application/ofd")
    key = cert.certificate.file_key
    assert key is not None and blobs.get(key) == b"an OFD file"
    assert blobs.stat(key).media_type == "application/ofd"  # type: ignore[union-attr]
    orphan = blobs.put(b"left by a crash")
    clock.advance(hours=2)
    assert certificates.sweep_orphan_blobs(repo, older_than=timedelta(hours=1)) == [orphan.key]
    assert blobs.exists(key) and not blobs.exists(orphan.key)
