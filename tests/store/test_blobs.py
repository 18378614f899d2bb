"""Blob stores and archives: one behavioural suite over the file backend and S3 on a real SeaweedFS."""

from __future__ import annotations

import hashlib
import io
import json
import multiprocessing
import os
import secrets
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from minio import Minio
from minio.commonconfig import COMPLIANCE as MINIO_COMPLIANCE
from minio.commonconfig import GOVERNANCE
from minio.error import S3Error
from minio.retention import Retention

from certstore.store.blobs import (
    Archive,
    BlobIntegrityError,
    BlobNotFoundError,
    BlobStore,
    BlobStoreError,
    FileArchive,
    FileBlobStore,
    RetentionError,
    S3Archive,
    S3BlobStore,
    archive_from_url,
    blob_key,
    blob_store_from_url,
)
from devservers.seaweedfs import S3Server
from tests.servers.seaweedfs import s3_server  # noqa: F401

SM3_ABC = "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0"  # GB/T 32905 example 1


def sm3_hex(data: bytes) -> str:
    """An independent SM3 (OpenSSL through hashlib), not the store's own helper."""
    return hashlib.new("sm3", data).hexdigest()


def new_bucket() -> str:
    return f"t-{secrets.token_hex(6)}"


def file_blob_path(root: Path, key: str) -> Path:
    return root / key[:2] / key[2:4] / key


@dataclass
class Backend:
    name: str
    store: BlobStore
    corrupt: Callable[[str, bytes], None]  # replace a stored blob's bytes behind the store's back


@pytest.fixture(params=["file", "s3"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    if request.param == "file":
        store = FileBlobStore(tmp_path / "blobs")

        def corrupt_file(key: str, data: bytes) -> None:
            file_blob_path(store.root, key).write_bytes(data)

        return Backend("file", store, corrupt_file)

    server: S3Server = request.getfixturevalue("s3_server")
    s3 = S3BlobStore(server.client(), new_bucket())
    s3.ensure_bucket()
    raw = server.client()  # a separate client, as an outsider would use

    def corrupt_object(key: str, data: bytes) -> None:
        raw.put_object(s3.bucket, s3.object_name(key), io.BytesIO(data), len(data))

    return Backend("s3", s3, corrupt_object)


@pytest.fixture(params=["file", "s3"])
def archive(request: pytest.FixtureRequest, tmp_path: Path) -> Archive:
    if request.param == "file":
        return FileArchive(tmp_path / "archive")
    server: S3Server = request.getfixturevalue("s3_server")
    store = S3Archive(server.client(), new_bucket())
    store.ensure_bucket()
    return store


# ---------------------------------------------------------------------------------------------------------
# The blob store contract, on both backends


def test_put_many_stores_each_as_put_would(backend: Backend) -> None:
    store = backend.store
    present = store.put(b"already stored", media_type="application/ofd")
    items = [(b"first", "application/ofd"), (b"already stored", "application/ofd"), (b"second", "text/plain"),
             (b"first", "application/ofd"), *[(f"file {i}".encode(), "application/ofd") for i in range(20)]]  # fmt: skip
    refs = store.put_many(items)
    assert [r.key for r in refs] == [sm3_hex(d) for d, _ in items]
    assert refs[1] == present and refs[0] == refs[3]
    for ref, (data, media_type) in zip(refs, items, strict=True):
        assert store.get(ref.key) == data and ref.size == len(data)
        assert store.stat(ref.key).media_type == media_type  # type: ignore[union-attr]
    assert store.put_many([]) == []
    with pytest.raises(ValueError):
        store.put_many([(b"x", "not a media type")])


def test_put_many_leaves_no_temporary_files(tmp_path: Path) -> None:
    store = FileBlobStore(tmp_path / "blobs")
    store.put_many([(bytes([i]) * 100, "application/ofd") for i in range(30)])
    assert list((tmp_path / "blobs" / ".tmp").iterdir()) == []
    assert sorted(store.iter_keys()) == sorted(sm3_hex(bytes([i]) * 100) for i in range(30))


def test_put_get_stat_exists_delete(backend: Backend) -> None:
    store = backend.store
    assert isinstance(store, BlobStore)
    data = b"%OFD certificate bytes \x00\xff"
    ref = store.put(data, media_type="application/ofd")
    assert (ref.key, ref.size, ref.media_type) == (sm3_hex(data), len(data), "application/ofd")

    assert store.exists(ref.key)
    assert store.get(ref.key) == data
    info = store.stat(ref.key)
    assert info is not None
    assert (info.key, info.size, info.media_type) == (ref.key, len(data), "application/ofd")
    assert abs(info.created - datetime.now(UTC)) < timedelta(minutes=1)
    assert store.verify(ref.key)

    store.delete(ref.key)
    assert not store.exists(ref.key)
    assert store.stat(ref.key) is None
    with pytest.raises(BlobNotFoundError):
        store.get(ref.key)
    store.delete(ref.key)  # deleting a missing blob is not an error


def test_key_is_the_sm3_hex_of_the_content(backend: Backend) -> None:
    assert blob_key(b"abc") == SM3_ABC == sm3_hex(b"abc")
    assert backend.store.put(b"abc").key == SM3_ABC
    for data in (b"", b"x", os.urandom(1000)):
        key = backend.store.put(data).key
        assert key == sm3_hex(data)
        assert len(key) == 64
        assert key == key.lower()
    assert backend.store.put(b"abd").key != SM3_ABC


def test_put_is_idempotent(backend: Backend) -> None:
    store = backend.store
    data = b"same bytes, same key"
    first = store.put(data, media_type="application/pdf")
    second = store.put(data, media_type="image/png")  # present: not rewritten, keeps its metadata
    assert second == first
    assert second.media_type == "application/pdf"
    assert store.stat(first.key).media_type == "application/pdf"  # type: ignore[union-attr]
    assert list(store.iter_keys()) == [first.key]
    assert store.get(first.key) == data


def test_put_of_present_content_refreshes_its_time(backend: Backend) -> None:
    """A deduplicated put must look young to an orphan sweep, like a new one."""
    store = backend.store
    ref = store.put(b"refreshed by a second put")
    if backend.name == "file":
        path = file_blob_path(store.root, ref.key)  # type: ignore[attr-defined]
        os.utime(path, (time.time() - 3600, time.time() - 3600))
    else:
        time.sleep(1.1)  # S3 times have one-second resolution
    before = store.stat(ref.key).created  # type: ignore[union-attr]
    store.put(b"refreshed by a second put")
    after = store.stat(ref.key).created  # type: ignore[union-attr]
    assert after > before


def test_put_stream_of_a_multi_mib_file(backend: Backend, tmp_path: Path) -> None:
    data = os.urandom(6 * 1024 * 1024 + 12345)  # above the 5 MiB multipart threshold on S3
    source = tmp_path / "large.ofd"
    source.write_bytes(data)
    with source.open("rb") as f:
        ref = backend.store.put_stream(f, media_type="application/ofd")
    assert (ref.key, ref.size) == (sm3_hex(data), len(data))
    assert backend.store.stat(ref.key).size == len(data)  # type: ignore[union-attr]

    digest = hashlib.new("sm3")
    with backend.store.open(ref.key) as reader:
        while chunk := reader.read(64 * 1024):
            digest.update(chunk)
    assert digest.hexdigest() == ref.key
    assert backend.store.get(ref.key) == data
    assert backend.store.verify(ref.key)
    with source.open("rb") as f:
        assert backend.store.put_stream(f, media_type="application/ofd") == ref


def test_corrupted_content_is_detected(backend: Backend) -> None:
    store = backend.store
    data = b"original certificate content" * 100
    ref = store.put(data)
    tampered = bytearray(data)
    tampered[10] ^= 0x01
    backend.corrupt(ref.key, bytes(tampered))

    with pytest.raises(BlobIntegrityError, match=ref.key):
        store.get(ref.key)
    with pytest.raises(BlobIntegrityError), store.open(ref.key) as reader:
        reader.read()
    assert store.verify(ref.key) is False


BAD_KEYS = [
    "../../etc/passwd",
    SM3_ABC.upper(),
    SM3_ABC[:-1],
    SM3_ABC + "0",
    "",
    SM3_ABC[:62] + "/x",
    "g" * 64,
    SM3_ABC + "\n",
]


@pytest.mark.parametrize("key", BAD_KEYS)
def test_invalid_keys_are_refused(backend: Backend, key: str) -> None:
    store = backend.store
    for op in (store.get, store.open, store.stat, store.exists, store.delete, store.verify):
        with pytest.raises(ValueError, match="invalid blob key"):
            op(key)


def test_missing_key(backend: Backend) -> None:
    store = backend.store
    key = sm3_hex(b"never stored")
    with pytest.raises(BlobNotFoundError) as caught:
        store.get(key)
    assert isinstance(caught.value, KeyError)
    assert key in str(caught.value)
    with pytest.raises(BlobNotFoundError):
        store.open(key)
    with pytest.raises(BlobNotFoundError):
        store.verify(key)
    assert store.stat(key) is None
    assert not store.exists(key)
    store.delete(key)


def test_iter_keys_lists_exactly_what_was_put(backend: Backend) -> None:
    store = backend.store
    assert list(store.iter_keys()) == []
    blobs = [os.urandom(n) for n in (1, 10, 100, 1000)]
    keys = {store.put(b).key for b in blobs}
    store.put(blobs[0])
    assert sorted(store.iter_keys()) == sorted(keys)
    infos = {i.key: i for i in store.iter_infos()}
    assert {k: i.size for k, i in infos.items()} == {sm3_hex(b): len(b) for b in blobs}
    assert all(abs(i.created - datetime.now(UTC)) < timedelta(minutes=1) for i in infos.values())
    store.delete(sm3_hex(blobs[1]))
    assert sorted(store.iter_keys()) == sorted(keys - {sm3_hex(blobs[1])})


@pytest.mark.parametrize("media_type", ["", "text", "text/plain\r\nX-Injected: 1", "/plain", 7])
def test_bad_media_type_is_refused(backend: Backend, media_type: object) -> None:
    with pytest.raises(ValueError, match="media type"):
        backend.store.put(b"x", media_type=media_type)  # type: ignore[arg-type]
    assert list(backend.store.iter_keys()) == []


# ---------------------------------------------------------------------------------------------------------
# File backend specifics: layout, crash safety, concurrency


def test_file_layout_sidecar_and_no_temp_files(tmp_path: Path) -> None:
    store = FileBlobStore(tmp_path / "blobs")
    ref = store.put(b"abc", media_type="application/ofd")
    path = tmp_path / "blobs" / "66" / "c7" / SM3_ABC
    assert path.read_bytes() == b"abc"
    meta = json.loads(path.with_name(SM3_ABC + ".json").read_text())
    assert meta == {"sm3": SM3_ABC, "media_type": "application/ofd"}
    assert list((tmp_path / "blobs" / ".tmp").iterdir()) == []
    assert sorted(p.name for p in path.parent.iterdir()) == [ref.key, ref.key + ".json"]
    store.delete(ref.key)
    assert list(path.parent.iterdir()) == []


def test_file_failed_put_leaves_neither_blob_nor_temp(tmp_path: Path) -> None:
    class Broken(io.RawIOBase):
        def __init__(self) -> None:
            self.sent = 0

        def readable(self) -> bool:
            return True

        def read(self, n: int = -1) -> bytes:
            if self.sent >= 3:
                raise OSError("disk unplugged")
            self.sent += 1
            return b"x" * 1024

    store = FileBlobStore(tmp_path / "blobs")
    with pytest.raises(BlobStoreError, match="disk unplugged"):
        store.put_stream(Broken())  # type: ignore[arg-type]
    assert list(store.iter_keys()) == []
    assert list((tmp_path / "blobs" / ".tmp").iterdir()) == []


def test_file_stray_entries_are_not_listed(tmp_path: Path) -> None:
    store = FileBlobStore(tmp_path / "blobs")
    ref = store.put(b"real")
    (tmp_path / "blobs" / ".tmp" / "put-leftover").write_bytes(b"crash leftover")
    (tmp_path / "blobs" / "README").write_text("not a blob")
    misplaced = tmp_path / "blobs" / "00" / "00"
    misplaced.mkdir(parents=True)
    (misplaced / SM3_ABC).write_bytes(b"abc")  # a valid key in the wrong fan-out directory
    assert list(store.iter_keys()) == [ref.key]


def _put_repeatedly(root: str, payload: bytes, rounds: int) -> list[str]:
    store = FileBlobStore(Path(root))
    return [store.put(payload, media_type="application/ofd").key for _ in range(rounds)]


def _put_and_delete(root: str, payload: bytes, rounds: int, deleter: bool) -> None:
    store = FileBlobStore(Path(root))
    key = sm3_hex(payload)
    for _ in range(rounds):
        if deleter:
            store.delete(key)
        else:
            store.put(payload, media_type="application/ofd")
            info = store.stat(key)  # may be gone again, but never present without its metadata
            assert info is None or info.media_type == "application/ofd"


def test_file_put_racing_delete_never_leaves_a_blob_without_metadata(tmp_path: Path) -> None:
    root = tmp_path / "blobs"
    payload = b"put and swept at the same time"
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(4) as pool:
        pool.starmap(_put_and_delete, [(str(root), payload, 300, i % 2 == 1) for i in range(4)])
    path = file_blob_path(root, sm3_hex(payload))
    if path.exists():
        assert path.with_name(path.name + ".json").exists()
    assert not any(p.name.endswith(".tmp") for p in path.parent.iterdir())
    assert list((root / ".tmp").iterdir()) == []


def test_file_concurrent_puts_of_the_same_content_from_processes(tmp_path: Path) -> None:
    root = tmp_path / "blobs"
    payload = os.urandom(512 * 1024)
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(4) as pool:
        results = pool.starmap(_put_repeatedly, [(str(root), payload, 10)] * 4)
    assert {k for keys in results for k in keys} == {sm3_hex(payload)}
    store = FileBlobStore(root)
    assert list(store.iter_keys()) == [sm3_hex(payload)]
    assert store.get(sm3_hex(payload)) == payload
    assert store.stat(sm3_hex(payload)).media_type == "application/ofd"  # type: ignore[union-attr]
    assert list((root / ".tmp").iterdir()) == []


# ---------------------------------------------------------------------------------------------------------
# S3 specifics: a real separate server, bucket creation, errors


def test_seaweedfs_is_a_separate_process_speaking_s3(s3_server: S3Server) -> None:  # noqa: F811
    assert s3_server.pid != os.getpid()
    cmdline = Path(f"/proc/{s3_server.pid}/cmdline").read_bytes().split(b"\0")
    assert Path(cmdline[0].decode()).name == "weed"
    assert b"mini" in cmdline

    with pytest.raises(urllib.error.HTTPError) as anonymous:
        urllib.request.urlopen(f"http://{s3_server.endpoint}/", timeout=5)
    assert anonymous.value.code == 403
    assert "SeaweedFS" in anonymous.value.headers.get("Server", "")

    store = S3BlobStore(s3_server.client(), new_bucket())
    ref = store.put(b"seen from outside", media_type="application/ofd")  # creates the bucket on first put
    outsider = Minio(
        s3_server.endpoint, access_key=s3_server.access_key, secret_key=s3_server.secret_key, secure=False
    )
    assert store.bucket in {b.name for b in outsider.list_buckets()}
    st = outsider.stat_object(store.bucket, "blobs/" + ref.key)
    assert st.content_type == "application/ofd"
    assert st.metadata.get("x-amz-meta-sm3") == ref.key
    resp = outsider.get_object(store.bucket, "blobs/" + ref.key)
    try:
        assert resp.read() == b"seen from outside"
    finally:
        resp.close()
        resp.release_conn()


def test_s3_objects_outside_the_prefix_are_not_listed(s3_server: S3Server) -> None:  # noqa: F811
    client = s3_server.client()
    store = S3BlobStore(client, new_bucket(), prefix="certs/blobs")
    assert store.prefix == "certs/blobs/"
    ref = store.put(b"mine")
    client.put_object(store.bucket, "other/" + SM3_ABC, io.BytesIO(b"abc"), 3)
    client.put_object(store.bucket, "certs/blobs/not-a-key", io.BytesIO(b"x"), 1)
    assert list(store.iter_keys()) == [ref.key]


def test_s3_errors_are_clear(s3_server: S3Server) -> None:  # noqa: F811
    env = s3_server.env() | {"CERTSTORE_S3_SECRET_KEY": "wrong-secret"}
    store = blob_store_from_url(
        f"s3://{s3_server.endpoint}/{new_bucket()}", data_dir=Path("/nonexistent"), env=env
    )
    with pytest.raises(BlobStoreError, match="SignatureDoesNotMatch") as caught:
        store.put(b"x")
    assert "wrong-secret" not in str(caught.value)

    env = s3_server.env() | {"CERTSTORE_S3_SECURE": "true"}  # TLS against a plain-HTTP server
    store = blob_store_from_url(
        f"s3://{s3_server.endpoint}/{new_bucket()}", data_dir=Path("/nonexistent"), env=env
    )
    with pytest.raises(BlobStoreError, match="cannot reach the S3 endpoint"):
        store.get(SM3_ABC)


def test_s3_store_from_url_round_trip(s3_server: S3Server, tmp_path: Path) -> None:  # noqa: F811
    bucket = new_bucket()
    store = blob_store_from_url(
        f"s3://{s3_server.endpoint}/{bucket}/x/y", data_dir=tmp_path, env=s3_server.env()
    )
    ref = store.put(b"through the URL")
    assert s3_server.client().stat_object(bucket, "x/y/" + ref.key).size == len(b"through the URL")
    assert store.get(ref.key) == b"through the URL"


# ---------------------------------------------------------------------------------------------------------
# Archive: COMPLIANCE retention, on both backends


def days(n: float) -> datetime:
    return datetime.now(UTC) + timedelta(days=n)


def test_archive_put_get_and_retention(archive: Archive) -> None:
    assert isinstance(archive, Archive)
    until = days(30).replace(microsecond=0)
    ref = archive.put(b"revoked certificate", retain_until=until, media_type="application/ofd")
    assert ref.key == sm3_hex(b"revoked certificate")
    assert archive.get(ref.key) == b"revoked certificate"
    assert archive.stat(ref.key).media_type == "application/ofd"  # type: ignore[union-attr]
    assert list(archive.iter_keys()) == [ref.key]
    retention = archive.retention(ref.key)
    assert retention is not None
    assert (retention.mode, retention.retain_until) == ("COMPLIANCE", until)
    assert retention.active()


def test_archive_refuses_delete_inside_retention(archive: Archive) -> None:
    ref = archive.put(b"must be kept", retain_until=days(1))
    with pytest.raises(RetentionError, match="retention until"):
        archive.delete(ref.key)
    assert archive.get(ref.key) == b"must be kept"


def test_archive_retention_can_be_extended_not_shortened(archive: Archive) -> None:
    until = days(10).replace(microsecond=0)
    ref = archive.put(b"extend me", retain_until=until)
    with pytest.raises(RetentionError, match="cannot be moved earlier"):
        archive.extend_retention(ref.key, days(5))
    assert archive.retention(ref.key).retain_until == until  # type: ignore[union-attr]
    later = days(20).replace(microsecond=0)
    assert archive.extend_retention(ref.key, later).retain_until == later
    assert archive.retention(ref.key).retain_until == later  # type: ignore[union-attr]

    # Archiving the same content again keeps one copy and the later of the two dates.
    assert archive.put(b"extend me", retain_until=days(2)) == ref
    assert archive.retention(ref.key).retain_until == later  # type: ignore[union-attr]
    even_later = days(40).replace(microsecond=0)
    archive.put(b"extend me", retain_until=even_later)
    assert archive.retention(ref.key).retain_until == even_later  # type: ignore[union-attr]


def test_archive_delete_allowed_once_retention_has_passed(archive: Archive) -> None:
    ref = archive.put(b"short-lived", retain_until=datetime.now(UTC) + timedelta(seconds=2))
    with pytest.raises(RetentionError):
        archive.delete(ref.key)
    retention = archive.retention(ref.key)
    assert retention is not None
    time.sleep(max(0.0, (retention.retain_until - datetime.now(UTC)).total_seconds()) + 0.5)
    assert not retention.active()
    archive.delete(ref.key)
    assert not archive.exists(ref.key)
    assert list(archive.iter_keys()) == []
    archive.delete(ref.key)  # missing is not an error
    if isinstance(archive, S3Archive):  # every version is gone, not hidden behind a delete marker
        versions = archive.client.list_objects(archive.bucket, prefix=archive.prefix, include_version=True)
        assert list(versions) == []


@pytest.mark.parametrize(
    "retain_until",
    [datetime(2030, 1, 1), datetime.now(UTC) - timedelta(seconds=1), "2030-01-01"],
    ids=["naive", "past", "not-a-datetime"],
)
def test_archive_retain_until_must_be_an_aware_future_datetime(
    archive: Archive, retain_until: object
) -> None:
    with pytest.raises(ValueError, match="retain_until"):
        archive.put(b"x", retain_until=retain_until)  # type: ignore[arg-type]
    assert list(archive.iter_keys()) == []


def test_archive_corruption_and_bad_keys(archive: Archive) -> None:
    with pytest.raises(ValueError, match="invalid blob key"):
        archive.delete("../../etc/passwd")
    with pytest.raises(ValueError, match="invalid blob key"):
        archive.retention(SM3_ABC.upper())
    with pytest.raises(BlobNotFoundError):
        archive.retention(SM3_ABC)
    assert archive.verify(archive.put(b"abc", retain_until=days(1)).key)


def test_file_archive_retention_sidecar(tmp_path: Path) -> None:
    archive = FileArchive(tmp_path / "archive")
    until = days(3).replace(microsecond=0)
    ref = archive.put(b"abc", retain_until=until)
    sidecar = file_blob_path(tmp_path / "archive", ref.key).with_name(ref.key + ".retain")
    assert json.loads(sidecar.read_text()) == {"mode": "COMPLIANCE", "retain_until": until.isoformat()}
    sidecar.write_text("{not json")  # unreadable retention must not make the record deletable
    with pytest.raises(BlobStoreError, match="unreadable"):
        archive.delete(ref.key)
    assert archive.exists(ref.key)


# ---------------------------------------------------------------------------------------------------------
# What SeaweedFS itself enforces (through a plain minio client, bypassing certstore)


def test_seaweedfs_object_lock_compliance_is_enforced_by_the_server(s3_server: S3Server) -> None:  # noqa: F811
    archive = S3Archive(s3_server.client(), new_bucket())
    ref = archive.put(b"locked record", retain_until=days(1))
    raw = s3_server.client()
    name = archive.object_name(ref.key)
    version = raw.stat_object(archive.bucket, name).version_id
    assert version

    with pytest.raises(S3Error) as refused:
        raw.remove_object(archive.bucket, name, version_id=version)
    assert (refused.value.code, refused.value.response.status) == ("AccessDenied", 403)

    with pytest.raises(S3Error) as shorten:
        raw.set_object_retention(
            archive.bucket, name, Retention(MINIO_COMPLIANCE, days(0.5)), version_id=version
        )
    assert shorten.value.code == "AccessDenied"
    with pytest.raises(S3Error) as downgrade:
        raw.set_object_retention(archive.bucket, name, Retention(GOVERNANCE, days(2)), version_id=version)
    assert downgrade.value.code == "AccessDenied"

    # A DELETE without a version id is accepted: it only adds a delete marker on top of the locked version.
    raw.remove_object(archive.bucket, name)
    assert not archive.exists(ref.key)
    resp = raw.get_object(archive.bucket, name, version_id=version)
    try:
        assert resp.read() == b"locked record"
    finally:
        resp.close()
        resp.release_conn()
    with pytest.raises(RetentionError):
        archive.delete(ref.key)  # the locked version still cannot be removed
    markers = [
        o.is_delete_marker for o in raw.list_objects(archive.bucket, prefix=name, include_version=True)
    ]
    assert sorted(markers) == [False, True]


def test_s3_archive_refuses_a_bucket_without_object_lock(s3_server: S3Server) -> None:  # noqa: F811
    bucket = new_bucket()
    s3_server.client().make_bucket(bucket)  # plain bucket
    archive = S3Archive(s3_server.client(), bucket)
    with pytest.raises(BlobStoreError, match="without Object Lock"):
        archive.ensure_bucket()
    with pytest.raises(BlobStoreError, match="without Object Lock"):
        archive.put(b"x", retain_until=days(1))


# ---------------------------------------------------------------------------------------------------------
# Configuration URLs (no server needed)

CREDS = {"CERTSTORE_S3_ACCESS_KEY": "ak", "CERTSTORE_S3_SECRET_KEY": "sk-very-secret"}


@pytest.mark.parametrize(
    ("url", "root"),
    [
        (None, "DATA/blobs"),
        ("", "DATA/blobs"),
        ("file:///srv/certstore/blobs", "/srv/certstore/blobs"),
        ("file://localhost/srv/b", "/srv/b"),
        ("file:///srv/with%20space", "/srv/with space"),
    ],
)
def test_file_urls(url: str | None, root: str, tmp_path: Path) -> None:
    store = blob_store_from_url(url, data_dir=tmp_path / "DATA", env={})
    assert isinstance(store, FileBlobStore)
    assert store.root == (tmp_path / root if root.startswith("DATA") else Path(root))
    arch = archive_from_url(url, data_dir=tmp_path / "DATA", env={})
    assert isinstance(arch, FileArchive)
    assert arch.root == (tmp_path / "DATA/archive" if root.startswith("DATA") else Path(root))


@pytest.mark.parametrize(
    ("url", "bucket", "blob_prefix", "archive_prefix"),
    [
        ("s3://127.0.0.1:8333/certs", "certs", "blobs/", "archive/"),
        ("s3://s3.example.gov.cn:443/e-certs", "e-certs", "blobs/", "archive/"),
        ("s3://minio.local/certs", "certs", "blobs/", "archive/"),
        ("s3://[::1]:9000/certs/city/files", "certs", "city/files/", "city/files/"),
        ("s3://h:9000/certs/p/", "certs", "p/", "p/"),
        ("S3://h:9000/certs", "certs", "blobs/", "archive/"),
    ],
)
def test_s3_urls(url: str, bucket: str, blob_prefix: str, archive_prefix: str) -> None:
    for secure in ("", "false", "TRUE", "1", "no"):
        store = blob_store_from_url(url, data_dir=Path("/d"), env=CREDS | {"CERTSTORE_S3_SECURE": secure})
        assert isinstance(store, S3BlobStore)
        assert (store.bucket, store.prefix) == (bucket, blob_prefix)
    arch = archive_from_url(url, data_dir=Path("/d"), env=CREDS)
    assert isinstance(arch, S3Archive)
    assert (arch.bucket, arch.prefix) == (bucket, archive_prefix)


@pytest.mark.parametrize(
    "url",
    [
        "http://host/bucket",
        "ftp://host/x",
        "file://otherhost/srv/blobs",
        "file:relative/path",
        "file:///srv/blobs?x=1",
        "s3://host:9000",
        "s3://host:9000/",
        "s3:///bucket",
        "s3://host:notaport/bucket",
        "s3://host:99999/bucket",
        "s3://ak:secret@host:9000/bucket",
        "s3://host:9000/Upper_Case",
        "s3://host:9000/ab",
        "s3://host:9000/bucket?region=x",
        "s3://host:9000/bucket#frag",
        "s3://host:9000/bucket/a/../b",
        "s3://host:9000/bucket/a//b",
    ],
)
def test_bad_urls_are_refused(url: str) -> None:
    with pytest.raises(ValueError) as caught:
        blob_store_from_url(url, data_dir=Path("/d"), env=CREDS)
    assert "secret" not in str(caught.value)
    with pytest.raises(ValueError):
        archive_from_url(url, data_dir=Path("/d"), env=CREDS)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({}, "CERTSTORE_S3_ACCESS_KEY and CERTSTORE_S3_SECRET_KEY"),
        ({"CERTSTORE_S3_ACCESS_KEY": "ak"}, "set CERTSTORE_S3_SECRET_KEY"),
        ({"CERTSTORE_S3_SECRET_KEY": "sk-very-secret"}, "set CERTSTORE_S3_ACCESS_KEY"),
        (CREDS | {"CERTSTORE_S3_SECURE": "maybe"}, "CERTSTORE_S3_SECURE must be true or false"),
    ],
)
def test_s3_settings_errors(env: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message) as caught:
        blob_store_from_url("s3://host:9000/bucket", data_dir=Path("/d"), env=env)
    assert "sk-very-secret" not in str(caught.value)


def test_s3_first_put_many_into_a_new_bucket_creates_it_once(s3_server: S3Server) -> None:  # noqa: F811
    """The first chunk of an import into a new deployment: eight uploads at once find no bucket, and each asks
    for it. SeaweedFS answers concurrent creations with NoSuchBucket; every blob must still be stored."""
    for _ in range(3):
        store = S3BlobStore(s3_server.client(), new_bucket())
        items = [(os.urandom(2048), "application/ofd") for _ in range(16)]
        refs = store.put_many(items)
        assert [store.get(ref.key) for ref in refs] == [data for data, _ in items]


def test_s3_bucket_creation_that_races_another_client_is_not_an_error(
    s3_server: S3Server,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Another client creates the bucket while this one asks for it, and the server answers this creation with
    NoSuchBucket (what SeaweedFS does under concurrent CreateBucket): the bucket is found, the put goes on. A
    refusal for any other reason is still an error."""
    client = s3_server.client()
    bucket = new_bucket()
    made = client.make_bucket

    def racing(name: str, *args: object, **kwargs: object) -> None:
        made(name)  # the other client wins
        raise S3Error(None, "NoSuchBucket", "The specified bucket does not exist", name, "r", "h")  # type: ignore[arg-type]

    monkeypatch.setattr(client, "make_bucket", racing)
    store = S3BlobStore(client, bucket)
    ref = store.put(b"first file of a new deployment")
    assert store.get(ref.key) == b"first file of a new deployment"

    def refused(name: str, *args: object, **kwargs: object) -> None:
        raise S3Error(None, "AccessDenied", "Access Denied", name, "r", "h")  # type: ignore[arg-type]

    monkeypatch.setattr(client, "make_bucket", refused)
    with pytest.raises(BlobStoreError, match="AccessDenied"):
        S3BlobStore(client, new_bucket()).put(b"x")
