"""SM2 signatures (GB/T 32918) and SM3 digests (GB/T 32905).

The signing arithmetic runs in C (GmSSL through ``gmssl-pyx``; verification through OpenSSL's libcrypto when
present, see :mod:`certstore.crypto.libcrypto`); this module computes the user-identity hash
Z_A itself (GB/T 32918.2 §5.5) and hands GmSSL only the final digest e = SM3(Z_A ‖ M), which is about ten times
faster than GmSSL's message API because Z_A is cached per key and identity.

Signatures are DER ``SEQUENCE { r INTEGER, s INTEGER }`` (GB/T 35276 §7.3), as OpenSSL and every standard
structure carry them. Verification also accepts the raw 64-byte ``r ‖ s`` form some vendors store.

The :class:`Signer` protocol is the only thing seal and packaging code sees of a private key, so a hardware
signer (HSM, PKCS#11 token, UKey) can replace :class:`SoftwareSigner` without touching callers.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Protocol, runtime_checkable

import gmssl_pyx
from asn1crypto.algos import DSASignature

from certstore.crypto import gmssl_sign, libcrypto
from certstore.crypto.sm3 import new as new_sm3
from certstore.crypto.sm3 import sm3

__all__ = [
    "DEFAULT_SM2_ID",
    "SM2_CURVE",
    "InvalidKeyError",
    "InvalidSignatureEncodingError",
    "SM2PrivateKey",
    "SM2PublicKey",
    "Signer",
    "SoftwareSigner",
    "compute_z",
    "decode_signature",
    "encode_signature",
    "signature_form",
]

#: The default signer identity of GM/T 0009 §10 / GB/T 35276 (ENTL = 0x0080).
DEFAULT_SM2_ID = b"1234567812345678"


@dataclass(frozen=True)
class _Curve:
    """sm2p256v1 domain parameters (GB/T 32918.5)."""

    p: int = 0xFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF00000000FFFFFFFFFFFFFFFF
    a: int = 0xFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF00000000FFFFFFFFFFFFFFFC
    b: int = 0x28E9FA9E9D9F5E344D5A9E4BCF6509A7F39789F515AB8F92DDBCBD414D940E93
    n: int = 0xFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFF7203DF6B21C6052B53BBF40939D54123
    gx: int = 0x32C4AE2C1F1981195F9904466A39C9948FE30BBFF2660BE1715A4589334C74C7
    gy: int = 0xBC3736A2F4F6779C59BDCEE36B692153D0A9877CC62A474002DF32E52139F0A0

    def contains(self, x: int, y: int) -> bool:
        return (
            0 <= x < self.p and 0 <= y < self.p and (y * y - (x * x * x + self.a * x + self.b)) % self.p == 0
        )


SM2_CURVE = _Curve()
_CURVE_BYTES = b"".join(v.to_bytes(32, "big") for v in (SM2_CURVE.a, SM2_CURVE.b, SM2_CURVE.gx, SM2_CURVE.gy))


class InvalidKeyError(ValueError):
    """A key is not a valid SM2 key (wrong length, not on the curve, scalar out of range)."""


class InvalidSignatureEncodingError(ValueError):
    """A signature is neither DER SEQUENCE{r, s} nor raw 64-byte r ‖ s, or r/s are out of range."""


def compute_z(public_point: bytes, sm2_id: bytes = DEFAULT_SM2_ID) -> bytes:
    """Z_A = SM3(ENTL ‖ ID ‖ a ‖ b ‖ x_G ‖ y_G ‖ x_A ‖ y_A) for a 64-byte public point x ‖ y."""
    if len(sm2_id) >= 8192:
        raise ValueError("SM2 user ID longer than 8191 bytes")
    entl = (len(sm2_id) * 8).to_bytes(2, "big")
    return sm3(entl + sm2_id + _CURVE_BYTES + public_point)


@lru_cache(maxsize=4096)
def _cached_z(public_point: bytes, sm2_id: bytes) -> bytes:
    return compute_z(public_point, sm2_id)


def encode_signature(r: int, s: int) -> bytes:
    """DER SEQUENCE { r, s }."""
    if 0 < r < _SHORT_FORM_LIMIT and 0 < s < _SHORT_FORM_LIMIT:
        body = _der_positive_integer(r) + _der_positive_integer(s)
        return b"\x30" + bytes((len(body),)) + body
    return DSASignature({"r": r, "s": s}).dump()


#: Positive integers below this encode in < 64 content bytes, so both lengths of the SEQUENCE are short-form.
_SHORT_FORM_LIMIT = 1 << 496


def _der_positive_integer(value: int) -> bytes:
    content = value.to_bytes((value.bit_length() + 8) // 8, "big")  # one spare bit: a leading 0x00 if needed
    return b"\x02" + bytes((len(content),)) + content


def _decode_canonical_der(signature: bytes) -> tuple[int, int] | None:
    """(r, s) when ``signature`` is exactly the canonical DER of two positive integers (what
    :func:`encode_signature` writes for them); None for anything else, which the full parser then judges."""
    size = len(signature)
    if size < 8 or signature[0] != 0x30 or signature[1] != size - 2 or signature[2] != 0x02:
        return None
    r_end = 4 + signature[3]
    if r_end + 2 > size or signature[r_end] != 0x02 or r_end + 2 + signature[r_end + 1] != size:
        return None
    r = int.from_bytes(signature[4:r_end], "big")
    s = int.from_bytes(signature[r_end + 2 :], "big")
    if not (0 < r < _SHORT_FORM_LIMIT and 0 < s < _SHORT_FORM_LIMIT) or encode_signature(r, s) != signature:
        return None  # zero, leading zeros, sign bits, long forms: the strict parser decides
    return r, s


def decode_signature(signature: bytes) -> tuple[int, int]:
    """(r, s) from a DER or raw 64-byte signature; ranges checked against the curve order.

    DER must be canonical (what :func:`encode_signature` writes), as OpenSSL requires: BER variants of one
    signature are refused so that a signature has exactly one byte form. A 64-byte value that is not such a
    DER structure is read as raw r ‖ s — also when r happens to start with 0x30.
    """
    r, s, _ = _decode(signature)
    return r, s


def signature_form(signature: bytes) -> str:
    """``"DER"`` or ``"raw r‖s"``: the form :func:`decode_signature` reads ``signature`` in.

    The one rule for reports that name the form: a raw value whose r starts with 0x30 (one in 256) is raw.
    """
    return _decode(signature)[2]


def _decode(signature: bytes) -> tuple[int, int, str]:
    r = s = None
    fast = _decode_canonical_der(signature) if signature[:1] == b"\x30" else None
    if fast is not None:
        r, s = fast
    elif signature[:1] == b"\x30":
        try:
            parsed = DSASignature.load(signature, strict=True)
            r, s = parsed["r"].native, parsed["s"].native
            if not (isinstance(r, int) and isinstance(s, int)) or encode_signature(r, s) != signature:
                raise ValueError("not canonical DER")
        except (ValueError, TypeError, OverflowError) as exc:
            r = s = None
            if len(signature) != 64:
                raise InvalidSignatureEncodingError(f"not a DER SM2 signature: {exc}") from exc
    form = "DER"
    if r is None or s is None:
        if len(signature) != 64:
            raise InvalidSignatureEncodingError(
                f"not a DER or raw 64-byte SM2 signature ({len(signature)} bytes)"
            )
        r, s = int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
        form = "raw r‖s"
    if not (1 <= r < SM2_CURVE.n and 1 <= s < SM2_CURVE.n):
        raise InvalidSignatureEncodingError("signature r or s outside [1, n-1]")
    return r, s, form


# --- Pure-integer point arithmetic, used only to derive a public key from an imported private scalar. -----


def _jacobian_double(pt: tuple[int, int, int]) -> tuple[int, int, int]:
    p, a = SM2_CURVE.p, SM2_CURVE.a
    x, y, z = pt
    if y == 0 or z == 0:
        return (0, 1, 0)
    ysq = y * y % p
    s = 4 * x * ysq % p
    m = (3 * x * x + a * pow(z, 4, p)) % p
    nx = (m * m - 2 * s) % p
    ny = (m * (s - nx) - 8 * ysq * ysq) % p
    nz = 2 * y * z % p
    return (nx, ny, nz)


def _jacobian_add(p1: tuple[int, int, int], p2: tuple[int, int, int]) -> tuple[int, int, int]:
    p = SM2_CURVE.p
    if p1[2] == 0:
        return p2
    if p2[2] == 0:
        return p1
    x1, y1, z1 = p1
    x2, y2, z2 = p2
    z1s, z2s = z1 * z1 % p, z2 * z2 % p
    u1, u2 = x1 * z2s % p, x2 * z1s % p
    s1, s2 = y1 * z2s * z2 % p, y2 * z1s * z1 % p
    if u1 == u2:
        return _jacobian_double(p1) if s1 == s2 else (0, 1, 0)
    h, r = (u2 - u1) % p, (s2 - s1) % p
    h2 = h * h % p
    h3 = h * h2 % p
    u1h2 = u1 * h2 % p
    nx = (r * r - h3 - 2 * u1h2) % p
    ny = (r * (u1h2 - nx) - s1 * h3) % p
    nz = h * z1 * z2 % p
    return (nx, ny, nz)


def _scalar_base_mult(k: int) -> bytes:
    result: tuple[int, int, int] = (0, 1, 0)
    addend = (SM2_CURVE.gx, SM2_CURVE.gy, 1)
    while k:
        if k & 1:
            result = _jacobian_add(result, addend)
        addend = _jacobian_double(addend)
        k >>= 1
    x, y, z = result
    p = SM2_CURVE.p
    zinv = pow(z, -1, p)
    zinv2 = zinv * zinv % p
    return (x * zinv2 % p).to_bytes(32, "big") + (y * zinv2 * zinv % p).to_bytes(32, "big")


# --- Keys ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SM2PublicKey:
    """An SM2 public key: the affine point x ‖ y, 32 bytes each, checked to lie on the curve."""

    point: bytes

    def __post_init__(self) -> None:
        if len(self.point) != 64:
            raise InvalidKeyError(f"SM2 public point must be 64 bytes, got {len(self.point)}")
        x, y = int.from_bytes(self.point[:32], "big"), int.from_bytes(self.point[32:], "big")
        if not SM2_CURVE.contains(x, y):
            raise InvalidKeyError("SM2 public point is not on the curve")

    @classmethod
    def from_bytes(cls, data: bytes) -> SM2PublicKey:
        """Accepts an uncompressed (04 ‖ x ‖ y), compressed (02/03 ‖ x) or bare 64-byte point."""
        if len(data) == 65 and data[0] == 0x04:
            return cls(bytes(data[1:]))
        if len(data) == 64:
            return cls(bytes(data))
        if len(data) == 33 and data[0] in (2, 3):
            try:
                return cls(gmssl_pyx.normalize_sm2_public_key(bytes(data)))
            except gmssl_pyx.InvalidValueError as exc:
                raise InvalidKeyError("compressed SM2 point is not on the curve") from exc
        raise InvalidKeyError(f"unrecognised SM2 public key encoding ({len(data)} bytes)")

    @property
    def uncompressed(self) -> bytes:
        """04 ‖ x ‖ y, the form inside SubjectPublicKeyInfo."""
        return b"\x04" + self.point

    def z(self, sm2_id: bytes = DEFAULT_SM2_ID) -> bytes:
        return _cached_z(self.point, sm2_id)

    def digest(self, message: bytes, sm2_id: bytes = DEFAULT_SM2_ID) -> bytes:
        """e = SM3(Z_A ‖ M), the value SM2 actually signs."""
        h = new_sm3(self.z(sm2_id))
        h.update(message)
        return h.digest()

    def verify(self, message: bytes, signature: bytes, sm2_id: bytes = DEFAULT_SM2_ID) -> bool:
        """True when ``signature`` (DER or raw r ‖ s) is a valid SM2 signature of ``message`` by this key."""
        return self.verify_digest(self.digest(message, sm2_id), signature)

    def verify_digest(self, e: bytes, signature: bytes) -> bool:
        """Verify against a precomputed e = SM3(Z_A ‖ M)."""
        try:
            r, s = decode_signature(signature)
        except InvalidSignatureEncodingError:
            return False
        der = encode_signature(r, s)
        verdict = libcrypto.verify_digest(self.point, e, der)
        if verdict is None:
            verdict = bool(gmssl_pyx.sm2_verify_sm3_digest(self.point, e, der))
        return verdict

    def fingerprint(self) -> str:
        """Hex SM3 of the uncompressed point, for display and key-store look-ups."""
        return sm3(self.uncompressed).hex()


@dataclass(frozen=True)
class SM2PrivateKey:
    """An SM2 private scalar d (1 ≤ d ≤ n-2) with its public key."""

    scalar: bytes = field(repr=False)
    public_key: SM2PublicKey
    #: The key prepared for signing in GmSSL (see :mod:`certstore.crypto.gmssl_sign`); made on first use.
    _prepared: gmssl_sign.PreparedSigningKey | None = field(
        default=None, init=False, repr=False, compare=False, hash=False
    )
    _prepared_tried: bool = field(default=False, init=False, repr=False, compare=False, hash=False)

    @classmethod
    def generate(cls) -> SM2PrivateKey:
        public, private = gmssl_pyx.sm2_key_generate()
        return cls(private, SM2PublicKey(public))

    @classmethod
    def from_scalar(cls, scalar: bytes | int, public_point: bytes | None = None) -> SM2PrivateKey:
        """Build from the private scalar; the public point is derived, and checked when one is given."""
        d = scalar if isinstance(scalar, int) else int.from_bytes(scalar, "big")
        if not 1 <= d <= SM2_CURVE.n - 2:
            raise InvalidKeyError("SM2 private scalar outside [1, n-2]")
        derived = _scalar_base_mult(d)
        if public_point is not None and not hmac.compare_digest(
            SM2PublicKey.from_bytes(public_point).point, derived
        ):
            raise InvalidKeyError("SM2 public key does not match the private key")
        return cls(d.to_bytes(32, "big"), SM2PublicKey(derived))

    def sign(self, message: bytes, sm2_id: bytes = DEFAULT_SM2_ID) -> bytes:
        """DER SM2 signature of ``message`` with identity ``sm2_id``."""
        return self.sign_digest(self.public_key.digest(message, sm2_id))

    def sign_digest(self, e: bytes) -> bytes:
        """DER SM2 signature of a precomputed e = SM3(Z_A ‖ M), with a fresh random nonce.

        All arithmetic on the private scalar and the nonce stays inside GmSSL's C code. The key is prepared once
        ((1 + d)^-1 mod n kept in a C buffer, :mod:`certstore.crypto.gmssl_sign`) instead of being rebuilt from
        the scalar on every call; where that is not available, the ``gmssl-pyx`` binding signs. Finishing r and
        s in Python would be faster still, but Python integers are not constant-time and nonce-length timing
        leaks are how ECDSA-family keys get recovered (Minerva); see ``docs/performance.md``.
        """
        prepared = self._prepared if self._prepared_tried else self._prepare()
        if prepared is not None:
            return encode_signature(*prepared.sign_digest(e))
        return gmssl_pyx.sm2_sign_sm3_digest(self.scalar, e)

    def __getstate__(self) -> dict[str, object]:
        """Pickle (process pools) and copy the key, not the prepared C buffer: it is made again on first use."""
        return {"scalar": self.scalar, "public_key": self.public_key}

    def __setstate__(self, state: dict[str, object]) -> None:
        for name, value in (*state.items(), ("_prepared", None), ("_prepared_tried", False)):
            object.__setattr__(self, name, value)

    def _prepare(self) -> gmssl_sign.PreparedSigningKey | None:
        public_key = self.public_key
        prepared = gmssl_sign.prepare(
            self.scalar, public_key.point, lambda e, rs: public_key.verify_digest(e, encode_signature(*rs))
        )
        object.__setattr__(self, "_prepared", prepared)  # a cache: the key's value does not change
        object.__setattr__(self, "_prepared_tried", True)
        return prepared


@runtime_checkable
class Signer(Protocol):
    """Whatever holds a signing key: software key, HSM, PKCS#11 token.

    ``sign`` returns a DER SM2-with-SM3 signature over ``message`` computed with identity ``sm2_id``.
    """

    @property
    def public_key(self) -> SM2PublicKey: ...

    def sign(self, message: bytes, sm2_id: bytes = DEFAULT_SM2_ID) -> bytes: ...


@dataclass(frozen=True)
class SoftwareSigner:
    """A :class:`Signer` over a private key held in process memory."""

    private_key: SM2PrivateKey = field(repr=False)

    @property
    def public_key(self) -> SM2PublicKey:
        return self.private_key.public_key

    def sign(self, message: bytes, sm2_id: bytes = DEFAULT_SM2_ID) -> bytes:
        return self.private_key.sign(message, sm2_id)
