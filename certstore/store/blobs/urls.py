"""Blob stores and archives named by URL: ``CERTSTORE_BLOB_URL`` / ``CERTSTORE_ARCHIVE_URL`` values
(``file:///path`` or ``s3://HOST:PORT/BUCKET[/prefix]``; empty: the data directory's ``blobs``/``archive``)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

from .files import FileArchive, FileBlobStore

if TYPE_CHECKING:  # the S3 client (minio) is imported only for an s3:// URL: start-up of the command line
    from .s3 import S3Archive, S3BlobStore

__all__ = ["ARCHIVE_URL_ENV", "BLOB_URL_ENV", "archive_from_url", "blob_store_from_url"]

BLOB_URL_ENV = "CERTSTORE_BLOB_URL"
ARCHIVE_URL_ENV = "CERTSTORE_ARCHIVE_URL"


def _parse_file_url(url: str) -> Path:
    parts = urlsplit(url)
    if parts.netloc not in ("", "localhost") or parts.query or parts.fragment:
        raise ValueError(f"bad file URL {url!r}: expected file:///absolute/path")
    path = unquote(parts.path)
    if not path.startswith("/") or "\x00" in path:
        raise ValueError(f"bad file URL {url!r}: expected file:///absolute/path")
    return Path(path)


def blob_store_from_url(
    url: str | None, *, data_dir: Path, env: Mapping[str, str] = os.environ
) -> FileBlobStore | S3BlobStore:
    """The blob store named by a ``CERTSTORE_BLOB_URL`` value.

    ``None``/empty: ``FileBlobStore(data_dir / "blobs")``; ``file:///abs/path``: a ``FileBlobStore`` there;
    ``s3://HOST:PORT/BUCKET[/prefix]``: an ``S3BlobStore`` (prefix default ``blobs/``) with credentials from
    ``CERTSTORE_S3_ACCESS_KEY`` / ``CERTSTORE_S3_SECRET_KEY`` and TLS from ``CERTSTORE_S3_SECURE``
    (true/false, default false). No network access happens here; the bucket is created on first put.
    """
    if not url:
        return FileBlobStore(Path(data_dir) / "blobs")
    scheme = urlsplit(url).scheme.lower()
    if scheme == "file":
        return FileBlobStore(_parse_file_url(url))
    if scheme == "s3":
        from .s3 import S3BlobStore, parse_s3_url, s3_client

        loc = parse_s3_url(url)
        prefix = "blobs/" if loc.prefix is None else loc.prefix
        return S3BlobStore(s3_client(env, loc.endpoint), loc.bucket, prefix=prefix)
    raise ValueError(f"unsupported blob store URL {url!r}: use file:///path or s3://HOST:PORT/BUCKET")


def archive_from_url(
    url: str | None, *, data_dir: Path, env: Mapping[str, str] = os.environ
) -> FileArchive | S3Archive:
    """The archive named by a ``CERTSTORE_ARCHIVE_URL`` value (same forms as ``blob_store_from_url``).

    ``None``/empty: ``FileArchive(data_dir / "archive")``; ``s3://...``: an ``S3Archive`` (prefix default
    ``archive/``) whose bucket is created with Object Lock on first put.
    """
    if not url:
        return FileArchive(Path(data_dir) / "archive")
    scheme = urlsplit(url).scheme.lower()
    if scheme == "file":
        return FileArchive(_parse_file_url(url))
    if scheme == "s3":
        from .s3 import S3Archive, parse_s3_url, s3_client

        loc = parse_s3_url(url)
        prefix = "archive/" if loc.prefix is None else loc.prefix
        return S3Archive(s3_client(env, loc.endpoint), loc.bucket, prefix=prefix)
    raise ValueError(f"unsupported archive URL {url!r}: use file:///path or s3://HOST:PORT/BUCKET")
