"""SM2 signing with a prepared key, in GmSSL's C code (the library inside ``gmssl-pyx``), via :mod:`ctypes`.

``gmssl_pyx.sm2_sign_sm3_digest(d, e)`` receives only the raw scalar, so every call rebuilds GmSSL's key:
[d]G (a full generator multiplication, ~50 µs) and (1 + d)⁻¹ mod n (~55 µs) before it draws the nonce. This
module calls the same statically linked GmSSL (``sm2_z256`` code, the one the binding uses) with the per-key
work done once:

* at preparation: d' = (1 + d)⁻¹ mod n (``sm2_fast_sign_compute_key``), kept in a C buffer;
* per signature: a fresh uniformly random k in [1, n-1] from the OS (``sm2_z256_rand_range``: ``getentropy``
  and rejection sampling), (x₁, y₁) = [k]G (``sm2_z256_point_mul_generator``), then
  r = e + x₁ mod n and s = (k + r)·d' − r mod n (``sm2_fast_sign``; equal to GB/T 32918's (1 + d)⁻¹(k − r·d)).

Every operation on d, d' and k runs in GmSSL's C code, exactly the primitives its own ``sm2_do_sign`` uses; Python
sees only the public results r and s. The nonce is never reused or precomputed ahead of the call (no pool that a
``fork`` could duplicate), and its buffer is zeroed after use. The rejections the standard requires (r = 0,
r + k = n, s = 0) are tested on the public values: r + k ≡ 0 (mod n) exactly when s ≡ −r, because d' is
invertible.

This reaches into GmSSL's internal ABI (structure sizes, function signatures), which is not a stable interface,
so it is used only for a ``gmssl-pyx`` version whose library was inspected (:data:`KNOWN_VERSIONS`), and every
prepared key passes a self-test first: the public point GmSSL derives from d must equal the key's, and a test
signature must verify. Otherwise :func:`prepare` returns None and the caller signs through the binding.
``CERTSTORE_SM2_SIGN=binding`` forces that path.
"""

from __future__ import annotations

import ctypes
import hmac
import os
from collections.abc import Callable
from functools import lru_cache

import gmssl_pyx
from gmssl_pyx import gmsslext

__all__ = ["KNOWN_VERSIONS", "PreparedSigningKey", "available", "prepare"]

#: gmssl-pyx releases whose bundled GmSSL was checked to have the z256 SM2 code and the layouts used here
#: (``SM2_KEY`` = Jacobian point X, Y, Z + scalar, 4 × 32 bytes; ``SM2_SIGN_PRE_COMP`` = k, x₁ mod n).
KNOWN_VERSIONS = frozenset({"2.1.0"})

_N = 0xFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFF7203DF6B21C6052B53BBF40939D54123
_Z256 = 32  # bytes of one sm2_z256_t (4 × uint64)
_SM2_KEY_SIZE = 4 * _Z256
_MAX_ATTEMPTS = 16  # a retry happens with probability ~2^-254; more than a few means something is broken


class _GmSSL:
    """The GmSSL functions this module calls, with their C signatures declared."""

    def __init__(self, lib: ctypes.CDLL) -> None:
        address, integer = ctypes.c_void_p, ctypes.c_int
        for name, restype, argtypes in (
            ("sm2_z256_from_bytes", None, [address, address]),
            ("sm2_z256_to_bytes", None, [address, address]),
            ("sm2_key_set_private_key", integer, [address, address]),
            ("sm2_fast_sign_compute_key", integer, [address, address]),
            ("sm2_z256_rand_range", integer, [address, address]),
            ("sm2_z256_is_zero", ctypes.c_uint64, [address]),
            ("sm2_z256_point_mul_generator", None, [address, address]),
            ("sm2_z256_point_get_xy", integer, [address, address, address]),
            ("sm2_z256_cmp", integer, [address, address]),
            ("sm2_z256_sub", ctypes.c_uint64, [address, address, address]),
            ("sm2_fast_sign", integer, [address, address, address, address]),
            ("sm2_z256_order", address, []),
        ):
            function = getattr(lib, name)
            function.restype = restype
            function.argtypes = argtypes
        self.lib = lib
        self.order: int = lib.sm2_z256_order()


@lru_cache(maxsize=1)
def _gmssl() -> _GmSSL | None:
    if os.environ.get("CERTSTORE_SM2_SIGN", "").lower() == "binding":
        return None
    if getattr(gmssl_pyx, "__version__", None) not in KNOWN_VERSIONS:
        return None
    try:
        return _GmSSL(ctypes.CDLL(gmsslext.__file__))
    except (OSError, AttributeError):
        return None


def available() -> bool:
    """True when prepared-key signing can be used with the installed gmssl-pyx."""
    return _gmssl() is not None


class PreparedSigningKey:
    """An SM2 private key prepared for signing: d' = (1 + d)⁻¹ mod n in a C buffer, zeroed when dropped.

    Thread-safe: each signature uses its own nonce buffer, and the prepared value is only read.
    """

    def __init__(self, gmssl: _GmSSL, fast_private: ctypes.Array[ctypes.c_uint8]) -> None:
        self._gmssl = gmssl
        self._fast_private = fast_private

    def sign_digest(self, e: bytes) -> tuple[int, int]:
        """SM2 signature (r, s) of the 32-byte e = SM3(Z_A ‖ M)."""
        if len(e) != 32:
            raise ValueError("SM2 signs a 32-byte SM3 digest")
        lib, order = self._gmssl.lib, self._gmssl.order
        # k (32) ‖ x₁ mod n (32) — SM2_SIGN_PRE_COMP — then the Jacobian point [k]G (96), then r ‖ s (64).
        work = (ctypes.c_uint8 * (2 * _Z256 + 3 * _Z256 + 64))()
        k = ctypes.addressof(work)
        x1, point, signature = k + _Z256, k + 2 * _Z256, k + 5 * _Z256
        fast_private = ctypes.addressof(self._fast_private)
        try:
            for _ in range(_MAX_ATTEMPTS):
                if lib.sm2_z256_rand_range(k, order) != 1 or lib.sm2_z256_is_zero(k):
                    continue
                lib.sm2_z256_point_mul_generator(point, k)
                if lib.sm2_z256_point_get_xy(point, x1, None) != 1:
                    continue
                if lib.sm2_z256_cmp(x1, order) >= 0:  # x₁ < p < 2n: one subtraction reduces it
                    lib.sm2_z256_sub(x1, x1, order)
                if lib.sm2_fast_sign(fast_private, k, e, signature) != 1:
                    continue
                raw = ctypes.string_at(signature, 64)
                r, s = int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big")
                if r == 0 or s == 0 or (r + s) % _N == 0:  # r = 0, s = 0, or r + k = n (⟺ s = −r)
                    continue
                return r, s
        finally:
            ctypes.memset(k, 0, ctypes.sizeof(work))
        raise RuntimeError("GmSSL could not produce an SM2 signature")

    def __del__(self) -> None:
        fast_private = getattr(self, "_fast_private", None)
        if fast_private is not None:
            ctypes.memset(fast_private, 0, ctypes.sizeof(fast_private))


def prepare(
    scalar: bytes, public_point: bytes, verify_digest: Callable[[bytes, tuple[int, int]], bool]
) -> PreparedSigningKey | None:
    """The prepared key for the 32-byte ``scalar`` whose public key is the 64-byte ``public_point``, or None when
    prepared signing is unavailable or fails its self-test (``verify_digest(e, (r, s))`` checks a test
    signature with the public key)."""
    gmssl = _gmssl()
    if gmssl is None or len(scalar) != 32 or len(public_point) != 64:
        return None
    lib = gmssl.lib
    key = (ctypes.c_uint8 * _SM2_KEY_SIZE)()
    d = (ctypes.c_uint8 * _Z256)()
    coordinates = (ctypes.c_uint8 * (4 * _Z256))()
    fast_private = (ctypes.c_uint8 * _Z256)()
    try:
        lib.sm2_z256_from_bytes(ctypes.addressof(d), scalar)
        if lib.sm2_key_set_private_key(ctypes.addressof(key), ctypes.addressof(d)) != 1:
            return None
        x, y = ctypes.addressof(coordinates), ctypes.addressof(coordinates) + _Z256
        if lib.sm2_z256_point_get_xy(ctypes.addressof(key), x, y) != 1:
            return None
        derived = bytearray(64)
        buffer = (ctypes.c_uint8 * 64).from_buffer(derived)
        lib.sm2_z256_to_bytes(x, ctypes.addressof(buffer))
        lib.sm2_z256_to_bytes(y, ctypes.addressof(buffer) + _Z256)
        del buffer
        if not hmac.compare_digest(bytes(derived), public_point):
            return None
        if lib.sm2_fast_sign_compute_key(ctypes.addressof(key), ctypes.addressof(fast_private)) != 1:
            return None
    finally:
        for secret in (key, d, coordinates):
            ctypes.memset(secret, 0, ctypes.sizeof(secret))
    prepared = PreparedSigningKey(gmssl, fast_private)
    probe = os.urandom(32)
    try:
        if not verify_digest(probe, prepared.sign_digest(probe)):
            return None
    except RuntimeError:
        return None
    return prepared
