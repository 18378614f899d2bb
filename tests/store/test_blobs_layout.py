"""``certstore.store.blobs`` is split along its responsibilities (issue 14): the contract, the file store, the S3
store, construction from URLs. Every public name stays importable from the package, and the file backend and the
contract do not depend on the S3 client."""

from __future__ import annotations

import ast
from pathlib import Path

import certstore.store.blobs as blobs

PACKAGE = Path(blobs.__file__).parent


def _imported_modules(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
        elif isinstance(node, ast.ImportFrom) and node.level == 1:
            found.add(f".{node.module}")
    return found


def test_every_public_name_is_exported_by_the_package() -> None:
    for name in blobs.__all__:
        assert getattr(blobs, name) is not None
    assert {
        "BlobStore",
        "BlobRef",
        "FileBlobStore",
        "S3BlobStore",
        "blob_store_from_url",
        "fsync_dir",
    } <= set(blobs.__all__)


def test_each_module_holds_one_responsibility() -> None:
    assert sorted(p.stem for p in PACKAGE.glob("*.py")) == ["__init__", "contract", "files", "s3", "urls"]
    contract = _imported_modules(PACKAGE / "contract.py")
    files = _imported_modules(PACKAGE / "files.py")
    s3 = _imported_modules(PACKAGE / "s3.py")
    assert "minio" not in contract and "minio" not in files
    assert ".s3" not in files and ".files" not in s3  # the two backends know only the contract
    assert ".contract" in files and ".contract" in s3
    assert blobs.FileBlobStore.__module__ == "certstore.store.blobs.files"
    assert blobs.S3Archive.__module__ == "certstore.store.blobs.s3"
