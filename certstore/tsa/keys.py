"""Which time-stamp authority a process uses: the key store's ``tsa`` key, or an external TSA by URL.

* ``CERTSTORE_TSA_URL`` set (``http://`` or ``https://``): an :class:`~certstore.tsa.HttpTimeStamper` to that
  URL (timeout ``CERTSTORE_TSA_TIMEOUT`` seconds, default 10);
* else the key store's signer ``tsa`` (role ``tsa``, made by ``certstore keys init``): a
  :class:`~certstore.tsa.LocalTimeStamper`;
* else none: seals carry no token and verification reports the timestamp SKIPPED ("no timestamp") — key stores
  made before trusted time was added.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping

from certstore.keystore import TSA_SIGNER_NAME, KeyStore, KeyStoreError, SignerRole

from .authority import TimeStampAuthority, TimeStampAuthorityError
from .stampers import HttpTimeStamper, LocalTimeStamper, TimeStamper

__all__ = ["TSA_TIMEOUT_ENV", "TSA_URL_ENV", "local_authority", "time_stamper"]

TSA_URL_ENV = "CERTSTORE_TSA_URL"
TSA_TIMEOUT_ENV = "CERTSTORE_TSA_TIMEOUT"


def local_authority(keystore: KeyStore) -> TimeStampAuthority | None:
    """The TSA of the key store's ``tsa`` signer, or None when the store has none. Raises
    :class:`~certstore.keystore.KeyStoreError` when that signer cannot serve as a TSA (wrong role, certificate
    without the critical id-kp-timeStamping purpose)."""
    if TSA_SIGNER_NAME not in keystore.signer_names():
        return None
    entry = keystore.signer_entry(TSA_SIGNER_NAME)
    if entry.role is not SignerRole.TSA:
        raise KeyStoreError(
            f"signer {TSA_SIGNER_NAME!r} has role {entry.role.value!r}, not {SignerRole.TSA.value!r}"
        )
    try:
        return TimeStampAuthority(keystore.signer(entry.name), entry.certificate, entry.chain)
    except TimeStampAuthorityError as exc:
        raise KeyStoreError(f"signer {TSA_SIGNER_NAME!r}: {exc}") from exc


def time_stamper(keystore: KeyStore, env: Mapping[str, str] = os.environ) -> TimeStamper | None:
    """The time stamper for ``keystore`` under ``env`` (see the module docstring), or None."""
    url = env.get(TSA_URL_ENV, "").strip()
    if url:
        raw = env.get(TSA_TIMEOUT_ENV, "10")
        try:
            timeout = float(raw)
        except ValueError:
            timeout = math.nan
        if not math.isfinite(timeout) or timeout <= 0:
            raise ValueError(f"{TSA_TIMEOUT_ENV} must be a positive number of seconds, got {raw!r}")
        return HttpTimeStamper(url, timeout)
    authority = local_authority(keystore)
    return None if authority is None else LocalTimeStamper.of(authority)
