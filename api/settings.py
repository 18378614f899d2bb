"""API settings, from ``CERTSTORE_*`` environment variables (documented in the README)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from api.proxies import parse_trusted_proxies
from certstore.store.config import PUBLIC_URL_ENV, normalise_public_url

__all__ = ["MODES", "Settings"]

#: Repository modes (``CERTSTORE_MODE``).
MODES = ("city", "province")


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    #: Base URL printed in QR codes and links (``CERTSTORE_PUBLIC_URL``). None: the data directory's
    #: configuration (``certstore config set public-url``) decides; without one the API serves, verifies and
    #: reads, but refuses to seal (503 ``public-url-not-configured``). ``certstore serve --demo`` sets it.
    public_url: str | None = None
    #: Header in which a TLS-terminating proxy passes the verified client certificate's SHA-256 fingerprint
    #: (``CERTSTORE_MTLS_HEADER``, e.g. ``X-Client-Cert-SHA256``); unset: client certificates are not accepted.
    mtls_header: str | None = None
    #: Largest file accepted by an upload route — ``POST /api/v1/public/verify``, the pages' uploads — in bytes
    #: (``CERTSTORE_MAX_UPLOAD_BYTES``); the multipart body may exceed it by the form's own few KiB.
    max_upload_bytes: int = 20 * 1024 * 1024
    #: Largest JSON body of any other route (``CERTSTORE_MAX_JSON_BYTES``).
    max_json_bytes: int = 1024 * 1024
    #: Largest body of a batch (``POST /api/v1/batches``, ``POST /api/v1/aggregate/batches``;
    #: ``CERTSTORE_MAX_BATCH_BYTES``).
    max_batch_bytes: int = 16 * 1024 * 1024
    #: Seconds a request body may stall — no bytes arriving while the route waits for them — before the request
    #: is answered 408 and the connection closed (``CERTSTORE_BODY_TIMEOUT``; 0: no limit).
    body_timeout: float = 30.0
    #: Addresses or networks of the reverse proxies whose ``X-Forwarded-For``/``-Proto`` are believed
    #: (``CERTSTORE_TRUSTED_PROXIES``, comma-separated; ``certstore serve --trusted-proxy``). Empty: none.
    trusted_proxies: tuple[str, ...] = ()
    #: Run batch jobs in this process (``CERTSTORE_BATCH_WORKER=0`` leaves them to another process).
    batch_worker: bool = True
    #: ``city`` (default) or ``province`` (``CERTSTORE_MODE``): a provincial repository accepts the batches
    #: cities aggregate upward (``POST /api/v1/aggregate/batches``); a city answers them 404.
    mode: str = "city"
    #: The holder login's configuration (一号登录, docs/holders.md): every ``CERTSTORE_OIDC_*`` variable —
    #: ``CERTSTORE_OIDC_ISSUER``, ``_CLIENT_ID``, ``_CLIENT_SECRET``, ``_MIN_ACR``, ``_ACR_LEVELS``, ``_CLAIM_*``
    #: (api/oidc.py, certstore/services/holders.py). No issuer: no holder login.
    oidc: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"CERTSTORE_MODE: one of {', '.join(MODES)}, not {self.mode!r}")
        for name in ("max_upload_bytes", "max_json_bytes", "max_batch_bytes"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1 byte")
        if self.body_timeout < 0:
            raise ValueError("body_timeout must be ≥ 0 seconds")
        object.__setattr__(self, "trusted_proxies", parse_trusted_proxies(self.trusted_proxies))

    @property
    def province(self) -> bool:
        return self.mode == "province"

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ, *, data_dir: Path | None = None) -> Settings:
        return cls(
            data_dir=data_dir or Path(env.get("CERTSTORE_DATA_DIR", ".certstore")),
            public_url=_public_url(env),
            mtls_header=env.get("CERTSTORE_MTLS_HEADER") or None,
            max_upload_bytes=int(env.get("CERTSTORE_MAX_UPLOAD_BYTES", cls.max_upload_bytes)),
            max_json_bytes=int(env.get("CERTSTORE_MAX_JSON_BYTES", cls.max_json_bytes)),
            max_batch_bytes=int(env.get("CERTSTORE_MAX_BATCH_BYTES", cls.max_batch_bytes)),
            body_timeout=float(env.get("CERTSTORE_BODY_TIMEOUT", cls.body_timeout)),
            trusted_proxies=parse_trusted_proxies([env.get("CERTSTORE_TRUSTED_PROXIES", "")]),
            batch_worker=env.get("CERTSTORE_BATCH_WORKER", "1") not in ("0", "false", "no"),
            mode=env.get("CERTSTORE_MODE", cls.mode).strip().lower() or cls.mode,
            oidc=tuple(sorted((k, v) for k, v in env.items() if k.startswith("CERTSTORE_OIDC_"))),
        )


def _public_url(env: Mapping[str, str]) -> str | None:
    value = env.get(PUBLIC_URL_ENV, "").strip()
    return normalise_public_url(value, source=PUBLIC_URL_ENV) if value else None
