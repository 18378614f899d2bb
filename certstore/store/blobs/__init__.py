"""Content-addressed blob stores (对象存储) and the retention archive (归档库).

A blob's key is the SM3 digest of its bytes as 64 lower-case hex digits, so the same bytes always get the
same key and a reader can check what it got (``get`` re-hashes and raises ``BlobIntegrityError``).

Two backends behind one ``BlobStore`` protocol:

- ``FileBlobStore`` — the embedded default, ``root/ab/cd/<key>`` with a ``<key>.json`` metadata sidecar;
- ``S3BlobStore`` — any S3 server through the ``minio`` client (production: MinIO or SeaweedFS).

and two behind the ``Archive`` protocol, for records that must not be deleted before a date:

- ``S3Archive`` — an Object Lock bucket; every object version carries COMPLIANCE retention that the server
  enforces (no delete, no shortening, no downgrade until the date);
- ``FileArchive`` — the same contract enforced by the application with a ``<key>.retain`` sidecar.

Consistency with the database (write the blob, then commit the row): a crash in between leaves an orphan blob,
never a row without its blob. An orphan sweep lists ``iter_infos()``, skips blobs whose ``created`` time is
within a grace period (a ``put`` of content that is already present refreshes that time, so a deduplicated
put is protected like a new one), and deletes the unreferenced rest.

``blob_store_from_url`` and ``archive_from_url`` build a store from ``CERTSTORE_BLOB_URL`` /
``CERTSTORE_ARCHIVE_URL`` values (``file:///path`` or ``s3://HOST:PORT/BUCKET[/prefix]``).

The package is split along those responsibilities: :mod:`.contract` (keys, value types, errors, protocols, the
content checks), :mod:`.files` (the filesystem backends), :mod:`.s3` (the S3 backends and their clients),
:mod:`.urls` (construction from URLs). Import the public names from here.
"""

from typing import TYPE_CHECKING

from .contract import (
    COMPLIANCE,
    DEFAULT_MEDIA_TYPE,
    Archive,
    BlobInfo,
    BlobIntegrityError,
    BlobNotFoundError,
    BlobRef,
    BlobStore,
    BlobStoreError,
    RetentionError,
    RetentionInfo,
    blob_key,
    validate_key,
)
from .files import FileArchive, FileBlobStore, fsync_dir
from .urls import ARCHIVE_URL_ENV, BLOB_URL_ENV, archive_from_url, blob_store_from_url

if TYPE_CHECKING:
    from .s3 import S3_ACCESS_KEY_ENV, S3_SECRET_KEY_ENV, S3_SECURE_ENV, S3Archive, S3BlobStore

#: The S3 backends' names, imported from :mod:`.s3` on first use (PEP 562): its client library (minio) is
#: loaded only where S3 is used, not by every command that opens a repository on files.
_S3_NAMES = frozenset({"S3_ACCESS_KEY_ENV", "S3_SECRET_KEY_ENV", "S3_SECURE_ENV", "S3Archive", "S3BlobStore"})


def __getattr__(name: str) -> object:
    if name not in _S3_NAMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from . import s3

    value = getattr(s3, name)
    globals()[name] = value
    return value


__all__ = [
    "ARCHIVE_URL_ENV",
    "BLOB_URL_ENV",
    "COMPLIANCE",
    "DEFAULT_MEDIA_TYPE",
    "S3_ACCESS_KEY_ENV",
    "S3_SECRET_KEY_ENV",
    "S3_SECURE_ENV",
    "Archive",
    "BlobInfo",
    "BlobIntegrityError",
    "BlobNotFoundError",
    "BlobRef",
    "BlobStore",
    "BlobStoreError",
    "FileArchive",
    "FileBlobStore",
    "RetentionError",
    "RetentionInfo",
    "S3Archive",
    "S3BlobStore",
    "archive_from_url",
    "blob_key",
    "blob_store_from_url",
    "fsync_dir",
    "validate_key",
]
