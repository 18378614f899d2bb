"""SM2 signature verification through the system's OpenSSL 3 ``libcrypto`` (a speed path, public data only).

GmSSL (``gmssl-pyx``) stays the implementation for everything secret: key generation and signing. Verifying
uses only public values (the key, the digest e and r, s), so no side channel is at stake, and OpenSSL's
verification is about 2.3× faster than GmSSL's on this class of machine (``python -m bench crypto``). This
module loads ``libcrypto.so.3`` — the library Python's own ``hashlib`` is linked against — with :mod:`ctypes`
and exposes a single operation: verify a DER signature against a precomputed digest e = SM3(Z_A ‖ M).

When the library cannot be loaded, is older than OpenSSL 3, or refuses an SM2 key, :func:`verify_digest`
returns None and the caller falls back to GmSSL. ``CERTSTORE_SM2_VERIFY=gmssl`` forces that fallback (tests
compare the two backends on the same inputs). ctypes releases the GIL around each call, so API worker threads
verify in parallel.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from functools import lru_cache

__all__ = ["available", "verify_digest"]

#: SubjectPublicKeyInfo prefix for an uncompressed point on sm2p256v1 (id-ecPublicKey, curve 1.2.156.10197.1.301).
_SPKI_PREFIX = bytes.fromhex("3059301306072a8648ce3d020106082a811ccf5501822d03420004")


class _LibCrypto:
    def __init__(self, lib: ctypes.CDLL) -> None:
        pointer = ctypes.c_void_p
        lib.OpenSSL_version_num.restype = ctypes.c_ulong
        if lib.OpenSSL_version_num() < 0x30000000:
            raise OSError("OpenSSL older than 3.0 (no SM2 key type)")
        lib.d2i_PUBKEY.restype = pointer
        lib.d2i_PUBKEY.argtypes = [pointer, ctypes.POINTER(ctypes.c_char_p), ctypes.c_long]
        lib.EVP_PKEY_free.argtypes = [pointer]
        lib.EVP_PKEY_CTX_new.restype = pointer
        lib.EVP_PKEY_CTX_new.argtypes = [pointer, pointer]
        lib.EVP_PKEY_CTX_free.argtypes = [pointer]
        lib.EVP_PKEY_verify_init.argtypes = [pointer]
        lib.EVP_PKEY_verify.argtypes = [
            pointer,
            ctypes.c_char_p,
            ctypes.c_size_t,
            ctypes.c_char_p,
            ctypes.c_size_t,
        ]
        lib.ERR_clear_error.argtypes = []
        self.lib = lib

    def verify(self, key: _PublicKey, digest: bytes, der_signature: bytes) -> bool | None:
        lib = self.lib
        ctx = lib.EVP_PKEY_CTX_new(key.handle, None)
        if not ctx:
            lib.ERR_clear_error()
            return None
        try:
            if lib.EVP_PKEY_verify_init(ctx) != 1:
                lib.ERR_clear_error()
                return None
            result = lib.EVP_PKEY_verify(ctx, der_signature, len(der_signature), digest, len(digest))
            if result != 1:
                lib.ERR_clear_error()  # a failed verify leaves its reason on this thread's error queue
            return result == 1
        finally:
            lib.EVP_PKEY_CTX_free(ctx)


class _PublicKey:
    """An ``EVP_PKEY`` for one SM2 point, freed with this object."""

    def __init__(self, library: _LibCrypto, point: bytes) -> None:
        self._library = library
        der = _SPKI_PREFIX + point
        cursor = ctypes.c_char_p(der)
        self.handle = library.lib.d2i_PUBKEY(None, ctypes.byref(cursor), len(der))
        if not self.handle:
            library.lib.ERR_clear_error()

    def __del__(self) -> None:
        if getattr(self, "handle", None):
            self._library.lib.EVP_PKEY_free(self.handle)
            self.handle = None


@lru_cache(maxsize=1)
def _library() -> _LibCrypto | None:
    if os.environ.get("CERTSTORE_SM2_VERIFY", "").lower() == "gmssl":
        return None
    name = ctypes.util.find_library("crypto")
    if name is None:
        return None
    try:
        return _LibCrypto(ctypes.CDLL(name))
    except (OSError, AttributeError):
        return None


@lru_cache(maxsize=4096)
def _public_key(point: bytes) -> _PublicKey | None:
    library = _library()
    if library is None:
        return None
    key = _PublicKey(library, point)
    return key if key.handle else None


def available() -> bool:
    """True when verification runs through libcrypto."""
    return _library() is not None


def verify_digest(point: bytes, digest: bytes, der_signature: bytes) -> bool | None:
    """Verify the DER SM2 signature of the 32-byte ``digest`` by the 64-byte public ``point``; None when
    libcrypto is unavailable for this key (the caller then verifies with GmSSL)."""
    library = _library()
    if library is None:
        return None
    key = _public_key(point)
    if key is None:
        return None
    return library.verify(key, digest, der_signature)
