"""The S3 backends, through the ``minio`` client (production: MinIO or SeaweedFS): ``S3BlobStore`` and
``S3Archive`` (an Object Lock bucket whose object versions carry COMPLIANCE retention the server enforces), and
how an ``s3://HOST:PORT/BUCKET[/prefix]`` location and the ``CERTSTORE_S3_*`` settings become a client.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import io
import re
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import BinaryIO, cast
from urllib.parse import unquote, urlsplit

import certifi
import urllib3
from minio import Minio
from minio.commonconfig import REPLACE, CopySource
from minio.datatypes import Object
from minio.error import MinioException, S3Error
from minio.retention import Retention

from .contract import (
    CHUNK,
    COMPLIANCE,
    DEFAULT_MEDIA_TYPE,
    KEY_RE,
    SPOOL_IN_MEMORY,
    BlobInfo,
    BlobNotFoundError,
    BlobRef,
    BlobStoreError,
    RetentionError,
    RetentionInfo,
    Spool,
    VerifyingReader,
    blob_key,
    check_media_type,
    checked_content,
    format_utc,
    read_verified,
    retain_until_utc,
    validate_key,
)

__all__ = [
    "S3_ACCESS_KEY_ENV",
    "S3_SECRET_KEY_ENV",
    "S3_SECURE_ENV",
    "S3Archive",
    "S3BlobStore",
    "S3Location",
    "parse_s3_url",
    "s3_client",
]

S3_ACCESS_KEY_ENV = "CERTSTORE_S3_ACCESS_KEY"
S3_SECRET_KEY_ENV = "CERTSTORE_S3_SECRET_KEY"
S3_SECURE_ENV = "CERTSTORE_S3_SECURE"

_BUCKET_RE = re.compile(r"(?!\d+\.\d+\.\d+\.\d+$)[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_SM3_META = "x-amz-meta-sm3"


# ---------------------------------------------------------------------------------------------------------
# S3 backend

_BUCKET_EXISTS_CODES = frozenset({"BucketAlreadyOwnedByYou", "BucketAlreadyExists"})
#: What servers answer a CreateBucket racing another: SeaweedFS NoSuchBucket, AWS OperationAborted.
_BUCKET_CREATION_RACE_CODES = frozenset({"NoSuchBucket", "OperationAborted"})


def _no_lock_config(exc: S3Error) -> bool:
    # AWS answers NoSuchObjectLockConfiguration, SeaweedFS ObjectLockConfigurationNotFoundError.
    return "ObjectLockConfiguration" in (exc.code or "")


class _S3Objects:
    """Shared object naming, reads and error translation of the S3 backends."""

    _kind = "blob"

    def __init__(self, client: Minio, bucket: str, *, prefix: str) -> None:
        if not _BUCKET_RE.fullmatch(bucket) or ".." in bucket:
            raise ValueError(f"invalid S3 bucket name {bucket!r}")
        if prefix and not prefix.endswith("/"):
            prefix += "/"
        self._client = client
        self._bucket = bucket
        self._prefix = prefix
        self._bucket_lock = threading.Lock()  # one creation at a time per store (put_many's threads)

    @property
    def client(self) -> Minio:
        """The minio client."""
        return self._client

    @property
    def bucket(self) -> str:
        """The bucket name."""
        return self._bucket

    @property
    def prefix(self) -> str:
        """The object-name prefix (empty or ending in ``/``)."""
        return self._prefix

    def __repr__(self) -> str:
        return f"{type(self).__name__}(bucket={self._bucket!r}, prefix={self._prefix!r})"

    def object_name(self, key: str) -> str:
        """The S3 object name of ``key``."""
        return self._prefix + validate_key(key)

    @contextlib.contextmanager
    def _errors(self, op: str, key: str | None = None) -> Iterator[None]:
        """Translate minio/urllib3 failures into the blob errors, with messages fit for a user."""
        where = f"{self._kind} {key}" if key else f"bucket {self._bucket}"
        try:
            yield
        except S3Error as exc:
            if key is not None and exc.code in {"NoSuchKey", "NoSuchVersion", "NoSuchBucket"}:
                raise BlobNotFoundError(f"{where} not found in S3 bucket {self._bucket}") from exc
            raise BlobStoreError(f"S3 {op} of {where} failed: {exc.code}: {exc.message}") from exc
        except MinioException as exc:
            raise BlobStoreError(f"S3 {op} of {where} failed: {exc}") from exc
        except urllib3.exceptions.HTTPError as exc:
            reason = getattr(exc, "reason", None) or exc
            raise BlobStoreError(
                f"S3 {op} of {where} failed: cannot reach the S3 endpoint ({reason})"
            ) from exc

    def _missing(self, key: str) -> BlobNotFoundError:
        return BlobNotFoundError(f"{self._kind} {key} not found in S3 bucket {self._bucket}")

    def _stat(self, key: str) -> Object | None:
        """``stat_object`` of the current version, or ``None`` when absent (or the bucket is)."""
        name = self.object_name(key)
        with self._errors("stat", key):
            try:
                return self._client.stat_object(self._bucket, name)
            except S3Error as exc:
                if exc.code in {"NoSuchKey", "NoSuchVersion", "NoSuchBucket"}:
                    return None
                raise

    def _create_bucket(self, *, object_lock: bool) -> None:
        """Create the bucket unless it exists. Creations race (the first chunk of an import: eight uploads in
        each worker find no bucket at once): one at a time in this store, and when the server refuses a
        creation as racing another (:data:`_BUCKET_CREATION_RACE_CODES`), the bucket is looked for again, for
        up to a second, before the refusal stands."""
        with self._errors("bucket creation"), self._bucket_lock:
            if self._client.bucket_exists(self._bucket):
                return
            try:
                self._client.make_bucket(self._bucket, object_lock=object_lock)
            except S3Error as exc:
                if exc.code in _BUCKET_EXISTS_CODES:
                    return
                if exc.code not in _BUCKET_CREATION_RACE_CODES:
                    raise
                for pause in (0.05, 0.15, 0.3, 0.5):
                    time.sleep(pause)
                    if self._client.bucket_exists(self._bucket):
                        return
                raise

    def get(self, key: str) -> bytes:
        """The content, checked against the key."""
        name = self.object_name(key)
        with self._errors("get", key):
            resp = self._client.get_object(self._bucket, name)
            try:
                data = resp.read()
            finally:
                resp.close()
                resp.release_conn()
        return checked_content(key, data)

    def open(self, key: str) -> BinaryIO:
        """A streaming reader; ``BlobIntegrityError`` is raised when the end is read if content mismatches."""
        name = self.object_name(key)
        with self._errors("get", key):
            resp = self._client.get_object(self._bucket, name)

        def close() -> None:
            resp.close()
            resp.release_conn()

        return cast(BinaryIO, io.BufferedReader(VerifyingReader(key, resp.read, close), CHUNK))

    def stat(self, key: str) -> BlobInfo | None:
        """Size, media type and time stored, or ``None`` if absent."""
        st = self._stat(key)
        if st is None:
            return None
        created = st.last_modified or datetime.now(UTC)
        return BlobInfo(key, st.size or 0, st.content_type or DEFAULT_MEDIA_TYPE, created)

    def exists(self, key: str) -> bool:
        """Whether an object is stored under ``key``."""
        return self._stat(key) is not None

    def verify(self, key: str) -> bool:
        """Re-hash the stored content: True if it still matches the key."""
        return read_verified(self.open(key))

    def iter_infos(self) -> Iterator[BlobInfo]:
        """Every stored object under the prefix whose name is a key (``media_type`` is ``None``)."""
        with self._errors("listing"):
            try:
                for obj in self._client.list_objects(self._bucket, prefix=self._prefix, recursive=True):
                    name = obj.object_name or ""
                    key = name[len(self._prefix) :]
                    if name.startswith(self._prefix) and KEY_RE.fullmatch(key):
                        yield BlobInfo(key, obj.size or 0, None, obj.last_modified or datetime.now(UTC))
            except S3Error as exc:
                if exc.code != "NoSuchBucket":
                    raise

    def iter_keys(self) -> Iterator[str]:
        """Every stored key."""
        return (info.key for info in self.iter_infos())

    def _spool_put(
        self,
        stream: BinaryIO,
        media_type: str,
        present: Callable[[str, Object], BlobRef],
        upload: Callable[[str, BinaryIO, int], None],
    ) -> BlobRef:
        """Hash while spooling to a temporary file, then either handle the present object or upload."""
        check_media_type(media_type)
        with tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY) as sink:
            spool = Spool(stream, cast(BinaryIO, sink))
            st = self._stat(spool.key)
            if st is not None:
                return present(spool.key, st)
            sink.seek(0)
            upload(spool.key, cast(BinaryIO, sink), spool.size)
        return BlobRef(spool.key, spool.size, media_type)


class S3BlobStore(_S3Objects):
    """Blobs as S3 objects ``<prefix><key>`` with the media type as Content-Type and ``x-amz-meta-sm3``.

    The bucket is created on the first put if missing (or explicitly with ``ensure_bucket``). A put of
    content that is already present does not upload it again; it refreshes the object's time with a
    server-side metadata copy so an orphan sweep's grace period applies to it.
    """

    def __init__(self, client: Minio, bucket: str, *, prefix: str = "blobs/") -> None:
        super().__init__(client, bucket, prefix=prefix)

    def ensure_bucket(self) -> None:
        """Create the bucket if it does not exist."""
        self._create_bucket(object_lock=False)

    def put(self, data: bytes, *, media_type: str = DEFAULT_MEDIA_TYPE) -> BlobRef:
        """Store ``data`` under its SM3 key; present content is not uploaded again."""
        check_media_type(media_type)
        key = blob_key(data)
        st = self._stat(key)
        if st is not None:
            return self._refresh(key, st)
        self._upload(key, io.BytesIO(data), len(data), media_type)
        return BlobRef(key, len(data), media_type)

    def put_many(self, items: Sequence[tuple[bytes, str]]) -> list[BlobRef]:
        """:meth:`put` for many blobs, eight uploads at a time (each is a HEAD and a PUT: latency, not
        bandwidth, bounds a loop of small objects)."""
        if len(items) <= 1:
            return [self.put(data, media_type=media_type) for data, media_type in items]
        with concurrent.futures.ThreadPoolExecutor(max_workers=min(8, len(items))) as pool:
            return list(pool.map(lambda item: self.put(item[0], media_type=item[1]), items))

    def put_stream(self, stream: BinaryIO, *, media_type: str = DEFAULT_MEDIA_TYPE) -> BlobRef:
        """Store a large stream: spooled to a temporary file while hashing, then uploaded (multipart)."""

        def upload(key: str, body: BinaryIO, size: int) -> None:
            self._upload(key, body, size, media_type)

        return self._spool_put(stream, media_type, self._refresh, upload)

    def delete(self, key: str) -> None:
        """Remove the object; missing is not an error."""
        name = self.object_name(key)
        with self._errors("delete", key):
            try:
                self._client.remove_object(self._bucket, name)
            except S3Error as exc:
                if exc.code not in {"NoSuchKey", "NoSuchBucket"}:
                    raise

    def _upload(self, key: str, body: BinaryIO, size: int, media_type: str) -> None:
        name = self.object_name(key)
        with self._errors("put", key):
            for attempt in (1, 2):
                try:
                    self._client.put_object(
                        self._bucket, name, body, size, content_type=media_type, metadata={_SM3_META: key}
                    )
                    return
                except S3Error as exc:
                    if exc.code != "NoSuchBucket" or attempt == 2:
                        raise
                self.ensure_bucket()  # first put into a new deployment: create the bucket, then retry
                body.seek(0)

    def _refresh(self, key: str, st: Object) -> BlobRef:
        name = self.object_name(key)
        media_type = st.content_type or DEFAULT_MEDIA_TYPE
        with self._errors("refresh", key):
            self._client.copy_object(
                self._bucket,
                name,
                CopySource(self._bucket, name),
                metadata={"Content-Type": media_type, _SM3_META: key},
                metadata_directive=REPLACE,
            )
        return BlobRef(key, st.size or 0, media_type)


class S3Archive(_S3Objects):
    """The archive as an S3 bucket with Object Lock: each object version has COMPLIANCE retention.

    The server enforces the retention: deleting a locked *version* and shortening or downgrading its
    retention are refused (SeaweedFS and AWS answer 403 AccessDenied), so this holds even against a client
    that bypasses this class. An Object Lock bucket is always versioned; a DELETE *without* a version id
    is accepted and only adds a delete marker (the object looks gone while the locked version stays
    readable by its version id). ``delete`` here therefore removes each version explicitly, so it either
    really deletes or raises ``RetentionError``.

    ``ensure_bucket`` (run before the first put) creates the bucket with Object Lock and refuses an existing
    bucket without it: some servers accept retention there without enforcing it.
    """

    _kind = "archived record"

    def __init__(self, client: Minio, bucket: str, *, prefix: str = "archive/") -> None:
        super().__init__(client, bucket, prefix=prefix)
        self._lock_checked = False

    def ensure_bucket(self) -> None:
        """Create the bucket with Object Lock if missing; check an existing one has Object Lock."""
        self._create_bucket(object_lock=True)
        with self._errors("Object Lock check"):
            try:
                self._client.get_object_lock_config(self._bucket)
            except S3Error as exc:
                if not _no_lock_config(exc):
                    raise
                raise BlobStoreError(
                    f"S3 bucket {self._bucket} exists without Object Lock; an archive bucket must be "
                    "created with Object Lock enabled, or retention is not enforced"
                ) from None
        self._lock_checked = True

    def put(self, data: bytes, *, retain_until: datetime, media_type: str = DEFAULT_MEDIA_TYPE) -> BlobRef:
        """Archive ``data`` with COMPLIANCE retention until ``retain_until``; present content keeps the later."""
        until = retain_until_utc(retain_until)
        check_media_type(media_type)
        if not self._lock_checked:
            self.ensure_bucket()

        def present(key: str, st: Object) -> BlobRef:
            current = self._retention(key, st.version_id)
            if current is None or until > current.retain_until:
                self._set_retention(key, st.version_id, until)
            return BlobRef(key, st.size or 0, st.content_type or DEFAULT_MEDIA_TYPE)

        def upload(key: str, body: BinaryIO, size: int) -> None:
            with self._errors("put", key):
                self._client.put_object(
                    self._bucket,
                    self.object_name(key),
                    body,
                    size,
                    content_type=media_type,
                    metadata={_SM3_META: key},
                    retention=Retention(COMPLIANCE, until),
                )

        return self._spool_put(io.BytesIO(data), media_type, present, upload)

    def retention(self, key: str) -> RetentionInfo | None:
        """The current version's retention, or ``None`` if it has none."""
        st = self._stat(key)
        if st is None:
            raise self._missing(key)
        return self._retention(key, st.version_id)

    def extend_retention(self, key: str, retain_until: datetime) -> RetentionInfo:
        """Move the current version's retain-until date later; an earlier date raises ``RetentionError``."""
        until = retain_until_utc(retain_until)
        st = self._stat(key)
        if st is None:
            raise self._missing(key)
        current = self._retention(key, st.version_id)
        if current is not None and until < current.retain_until:
            raise RetentionError(
                f"archived record {key} is retained until {format_utc(current.retain_until)} (COMPLIANCE); "
                f"the date cannot be moved earlier to {format_utc(until)}"
            )
        self._set_retention(key, st.version_id, until)
        return RetentionInfo(COMPLIANCE, until)

    def delete(self, key: str) -> None:
        """Delete every version of the record; ``RetentionError`` while one is retained; missing is fine."""
        name = self.object_name(key)
        with self._errors("version listing", key):
            try:
                listing = self._client.list_objects(self._bucket, prefix=name, include_version=True)
                versions = [o for o in listing if o.object_name == name]
            except S3Error as exc:
                if exc.code != "NoSuchBucket":
                    raise
                return
        # Data versions first (the ones that may be locked), then delete markers.
        for obj in sorted(versions, key=lambda o: o.is_delete_marker):
            with self._errors("delete", key):
                try:
                    self._client.remove_object(self._bucket, name, version_id=obj.version_id)
                except S3Error as exc:
                    if exc.code in {"NoSuchKey", "NoSuchVersion"}:
                        continue
                    if exc.code in {"AccessDenied", "InvalidRequest"} and not obj.is_delete_marker:
                        current = self._retention(key, obj.version_id)
                        if current is not None and current.active():
                            raise RetentionError(
                                f"archived record {key} is under COMPLIANCE retention until "
                                f"{format_utc(current.retain_until)}; the S3 server refused to delete it "
                                f"(version {obj.version_id}: {exc.code})"
                            ) from None
                    raise

    def _retention(self, key: str, version_id: str | None) -> RetentionInfo | None:
        name = self.object_name(key)
        with self._errors("retention lookup", key):
            try:
                ret = self._client.get_object_retention(self._bucket, name, version_id=version_id)
            except S3Error as exc:
                if _no_lock_config(exc):
                    return None
                raise
        if ret is None or ret.retain_until_date is None:
            return None
        return RetentionInfo(ret.mode or COMPLIANCE, ret.retain_until_date.astimezone(UTC))

    def _set_retention(self, key: str, version_id: str | None, until: datetime) -> None:
        name = self.object_name(key)
        with self._errors("retention update", key):
            try:
                self._client.set_object_retention(
                    self._bucket, name, Retention(COMPLIANCE, until), version_id=version_id
                )
            except S3Error as exc:
                if exc.code != "AccessDenied":
                    raise
                raise RetentionError(
                    f"the S3 server refused to set the retention of archived record {key} to {format_utc(until)} "
                    "(COMPLIANCE retention can only be extended)"
                ) from None


# ---------------------------------------------------------------------------------------------------------
# Locations and clients


@dataclass(frozen=True)
class S3Location:
    """Where an ``s3://`` URL points: ``HOST:PORT``, the bucket, and the object-name prefix if given."""

    endpoint: str
    bucket: str
    prefix: str | None


def parse_s3_url(url: str) -> S3Location:
    """The location of ``s3://HOST:PORT/BUCKET[/prefix]``; ``ValueError`` naming the problem (credentials in the
    URL, no bucket, an invalid bucket name or prefix …) without echoing credentials."""
    parts = urlsplit(url)
    shown = (
        url
        if "@" not in parts.netloc
        else url.replace(parts.netloc, "***@" + parts.netloc.rpartition("@")[2])
    )
    bad = f"bad S3 URL {shown!r}: expected s3://HOST:PORT/BUCKET[/prefix]"
    if parts.query or parts.fragment:
        raise ValueError(f"{bad} (no query or fragment)")
    if "@" in parts.netloc:
        raise ValueError(f"{bad} (credentials go in {S3_ACCESS_KEY_ENV} / {S3_SECRET_KEY_ENV}, not the URL)")
    try:
        host, port = parts.hostname, parts.port
    except ValueError:
        raise ValueError(f"{bad} (invalid port)") from None
    if not host:
        raise ValueError(f"{bad} (no host)")
    if port == 0:
        raise ValueError(f"{bad} (invalid port)")
    bucket, _, prefix = parts.path.lstrip("/").partition("/")
    if not bucket:
        raise ValueError(f"{bad} (no bucket)")
    if not _BUCKET_RE.fullmatch(bucket) or ".." in bucket:
        raise ValueError(f"{bad} (invalid bucket name {bucket!r})")
    prefix = unquote(prefix)
    if prefix and any(seg in ("", ".", "..") for seg in prefix.rstrip("/").split("/")):
        raise ValueError(f"{bad} (invalid prefix {prefix!r})")
    host_part = f"[{host}]" if ":" in host else host
    endpoint = f"{host_part}:{port}" if port else host_part
    return S3Location(endpoint, bucket, prefix or None)


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"", "0", "false", "no", "off"}


def s3_client(env: Mapping[str, str], endpoint: str) -> Minio:
    """A minio client for ``endpoint`` with the credentials and TLS setting of ``env`` (``CERTSTORE_S3_*``);
    ``ValueError`` when credentials are missing. No network access happens here."""
    access_key = env.get(S3_ACCESS_KEY_ENV, "")
    secret_key = env.get(S3_SECRET_KEY_ENV, "")
    missing = [
        name
        for name, value in ((S3_ACCESS_KEY_ENV, access_key), (S3_SECRET_KEY_ENV, secret_key))
        if not value
    ]
    if missing:
        raise ValueError(f"S3 storage at {endpoint} needs credentials: set {' and '.join(missing)}")
    secure_raw = env.get(S3_SECURE_ENV, "").strip().lower()
    if secure_raw not in _TRUE | _FALSE:
        raise ValueError(f"{S3_SECURE_ENV} must be true or false, not {env.get(S3_SECURE_ENV)!r}")
    secure = secure_raw in _TRUE
    http = urllib3.PoolManager(
        timeout=urllib3.Timeout(connect=10, read=120),
        maxsize=10,
        cert_reqs="CERT_REQUIRED",
        ca_certs=env.get("SSL_CERT_FILE") or certifi.where(),
        retries=urllib3.Retry(total=3, backoff_factor=0.2, status_forcelist=[500, 502, 503, 504]),
    )
    return Minio(endpoint, access_key=access_key, secret_key=secret_key, secure=secure, http_client=http)
