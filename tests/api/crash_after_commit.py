"""Child process of the write-ahead audit test: an API process (lifespan, audit trail running) suspends a
certificate and dies by SIGKILL right after the action committed — before the handler returns, so before the
middleware could log anything.

Usage: python -m tests.api.crash_after_commit DATABASE_URL DATA_DIR TOKEN IDENTIFIER REQUEST_ID
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

import api.routes.certificates as certificate_routes
from api import create_app
from api.settings import Settings
from certstore.keystore import KeyStore
from certstore.store.blobs import FileBlobStore
from certstore.store.db import Database
from certstore.store.repository import Repository


def _die(services: Any, certificate: Any) -> Any:
    """Replaces the response builder: called once the action's transaction has committed."""
    print("committed", flush=True)
    os.kill(os.getpid(), signal.SIGKILL)


def main() -> None:
    url, data_dir, token, identifier, request_id = sys.argv[1:6]
    data = Path(data_dir)
    data.mkdir(parents=True, exist_ok=True)
    repo = Repository(db=Database(url), blobs=FileBlobStore(data / "blobs"), holder_key=os.urandom(32))
    app = create_app(Settings(data_dir=data, batch_worker=False), repo=repo, keystore=KeyStore(data / "keys"))
    certificate_routes._out = _die  # type: ignore[assignment]
    with TestClient(app, raise_server_exceptions=False) as client:
        client.post(
            f"/api/v1/certificates/{identifier}/actions",
            json={"action": "suspend", "reason": "核查"},
            headers={"Authorization": f"Bearer {token}", "X-Request-ID": request_id},
        )
    print("not reached", flush=True)


if __name__ == "__main__":
    main()
