"""API settings, from ``CERTSTORE_*`` environment variables (documented in the README)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

__all__ = ["MODES", "Settings"]

#: Repository modes (``CERTSTORE_MODE``).
MODES = ("city", "province")


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    #: Base URL printed in QR codes and links (``CERTSTORE_PUBLIC_URL``).
    public_url: str = "http://127.0.0.1:8000"
    #: Header in which a TLS-terminating proxy passes the verified client certificate's SHA-256 fingerprint
    #: (``CERTSTORE_MTLS_HEADER``, e.g. ``X-Client-Cert-SHA256``); unset: client certificates are not accepted.
    mtls_header: str | None = None
    #: Largest upload accepted for verification and batch pushes (bytes).
    max_upload_bytes: int = 20 * 1024 * 1024
    #: Run batch jobs in this process (``CERTSTORE_BATCH_WORKER=0`` leaves them to another process).
    batch_worker: bool = True
    #: ``city`` (default) or ``province`` (``CERTSTORE_MODE``): a provincial repository accepts the batches
    #: cities aggregate upward (``POST /api/v1/aggregate/batches``); a city answers them 404.
    mode: str = "city"

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"CERTSTORE_MODE: one of {', '.join(MODES)}, not {self.mode!r}")

    @property
    def province(self) -> bool:
        return self.mode == "province"

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ, *, data_dir: Path | None = None) -> Settings:
        return cls(
            data_dir=data_dir or Path(env.get("CERTSTORE_DATA_DIR", ".certstore")),
            public_url=env.get("CERTSTORE_PUBLIC_URL", cls.public_url).rstrip("/"),
            mtls_header=env.get("CERTSTORE_MTLS_HEADER") or None,
            max_upload_bytes=int(env.get("CERTSTORE_MAX_UPLOAD_BYTES", cls.max_upload_bytes)),
            batch_worker=env.get("CERTSTORE_BATCH_WORKER", "1") not in ("0", "false", "no"),
            mode=env.get("CERTSTORE_MODE", cls.mode).strip().lower() or cls.mode,
        )
