"""Export the OpenAPI document: ``python -m api.openapi [--check] [PATH]`` (default ``docs/openapi.json``).

``--check`` exits 1 when the file differs from what the application generates (CI keeps them in step)."""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from api.app import create_app
from api.settings import Settings
from certstore.store.blobs import FileBlobStore
from certstore.store.db import Database
from certstore.store.repository import Repository

DEFAULT_PATH = Path(__file__).resolve().parent.parent / "docs" / "openapi.json"


def openapi_document() -> dict[str, Any]:
    """The document, generated from an application on a throwaway repository (nothing is read or written)."""
    with tempfile.TemporaryDirectory(prefix="certstore-openapi-") as tmp:
        root = Path(tmp)
        database = Database(f"sqlite:///{root / 'db.sqlite'}")
        repo = Repository(db=database, blobs=FileBlobStore(root / "blobs"), holder_key=bytes(32))
        app = create_app(Settings(data_dir=root, batch_worker=False), repo=repo)
        document = app.openapi()
        database.dispose()
    return document


def render(document: dict[str, Any]) -> str:
    return json.dumps(document, ensure_ascii=False, indent=2, sort_keys=False) + "\n"


def main(argv: list[str]) -> int:
    check = "--check" in argv
    paths = [a for a in argv if not a.startswith("--")]
    path = Path(paths[0]) if paths else DEFAULT_PATH
    text = render(openapi_document())
    if check:
        current = path.read_text(encoding="utf-8") if path.exists() else ""
        if current != text:
            print(f"{path} is out of date: run python -m api.openapi", file=sys.stderr)
            return 1
        return 0
    path.write_text(text, encoding="utf-8")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
