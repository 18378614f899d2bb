"""SM2 key files: PKCS#8, SEC1 and SubjectPublicKeyInfo, PEM or DER, optionally password-encrypted.

Everything written here is read by ``openssl pkey`` (OpenSSL 3) and everything OpenSSL writes for SM2 is read
here: keys from ``openssl genpkey -algorithm SM2`` (PKCS#8), ``openssl ecparam -name SM2 -genkey`` (SEC1) and
``openssl pkcs8 -topk8 -v2 aes-256-cbc`` (encrypted PKCS#8, PBES2). Encrypted keys are written as PBES2 with
PBKDF2-HMAC-SHA256 and AES-256-CBC (RFC 8018), the scheme OpenSSL itself uses by default.
"""

from __future__ import annotations

import binascii
import os
from typing import Literal

from asn1crypto import algos, core, keys, pem
from cryptography.hazmat.primitives import hashes, padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC

from certstore.crypto import oids
from certstore.crypto.sm2 import InvalidKeyError, SM2PrivateKey, SM2PublicKey

__all__ = [
    "KeyEncodingError",
    "WrongPasswordError",
    "dump_private_key",
    "dump_public_key",
    "load_private_key",
    "load_public_key",
]

Encoding = Literal["pem", "der"]
PrivateFormat = Literal["pkcs8", "sec1"]

#: PBKDF2 iterations for keys we encrypt. OWASP 2023 guidance for PBKDF2-HMAC-SHA256 is 600,000.
DEFAULT_KDF_ITERATIONS = 600_000

_PRF_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "sha1": hashes.SHA1,
    "sha224": hashes.SHA224,
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
    "sm3": hashes.SM3,
}
_CIPHERS: dict[str, tuple[type[algorithms.AES] | type[algorithms.SM4], int]] = {
    "aes128_cbc": (algorithms.AES, 16),
    "aes192_cbc": (algorithms.AES, 24),
    "aes256_cbc": (algorithms.AES, 32),
    "sm4_cbc": (algorithms.SM4, 16),
}


class _PrivateKeyInfo(core.Sequence):
    """PKCS#8 PrivateKeyInfo with the key left as octets (asn1crypto's spec raises KeyError on unknown OIDs)."""

    _fields = [  # noqa: RUF012
        ("version", core.Integer),
        ("private_key_algorithm", keys.PrivateKeyAlgorithm),
        ("private_key", core.OctetString),
        ("attributes", keys.Attributes, {"implicit": 0, "optional": True}),
    ]


class _PublicKeyInfo(core.Sequence):
    _fields = [("algorithm", keys.PublicKeyAlgorithm), ("public_key", core.OctetBitString)]  # noqa: RUF012


class KeyEncodingError(ValueError):
    """A key file is unreadable, not SM2, or in a form we do not support. The message says which."""


class WrongPasswordError(KeyEncodingError):
    """An encrypted private key could not be decrypted with the password given (or none was given)."""


def _unarmor(data: bytes) -> tuple[str | None, bytes]:
    """(PEM type or None for DER, DER bytes). Skips parameter blocks (``EC PARAMETERS``, ``SM2 PARAMETERS``)."""
    if not pem.detect(data):
        return None, data
    try:
        blocks = list(pem.unarmor(data, multiple=True))
    except (ValueError, binascii.Error) as exc:
        raise KeyEncodingError(f"malformed PEM: {exc}") from exc
    for kind, _headers, der in blocks:
        if not kind.endswith(" PARAMETERS"):
            return kind, der
    raise KeyEncodingError("PEM data holds only EC PARAMETERS, no key")


def _require_sm2_curve(parameters: keys.ECDomainParameters | None, where: str) -> None:
    if parameters is None or parameters.name != "named":
        raise KeyEncodingError(f"{where}: only named-curve SM2 keys are supported")
    if parameters.chosen.dotted != oids.SM2_CURVE:
        raise KeyEncodingError(f"{where}: curve {parameters.chosen.dotted} is not SM2 ({oids.SM2_CURVE})")


def _from_ec_private_key(ec: keys.ECPrivateKey, where: str) -> SM2PrivateKey:
    public = ec["public_key"].native if ec["public_key"].native is not None else None
    try:
        return SM2PrivateKey.from_scalar(int.from_bytes(ec["private_key"].contents, "big"), public)
    except InvalidKeyError as exc:
        raise KeyEncodingError(f"{where}: {exc}") from exc


def _from_private_key_info(info: keys.PrivateKeyInfo | _PrivateKeyInfo) -> SM2PrivateKey:
    algorithm = info["private_key_algorithm"]
    oid = algorithm["algorithm"].dotted
    if oid == oids.EC_PUBLIC_KEY:
        _require_sm2_curve(algorithm["parameters"], "PKCS#8")
    elif oid != oids.SM2_CURVE:  # some GM tools put the curve OID in place of id-ecPublicKey
        raise KeyEncodingError(f"PKCS#8: key algorithm {oid} is not SM2")
    try:
        ec = keys.ECPrivateKey.load(info["private_key"].native, strict=True)
        ec.native  # noqa: B018 - forces a full parse so malformed keys fail here
    except (ValueError, TypeError) as exc:
        raise KeyEncodingError(f"PKCS#8: malformed EC private key: {exc}") from exc
    return _from_ec_private_key(ec, "PKCS#8")


MAX_KDF_ITERATIONS = 10_000_000


def _decrypt_pkcs8(der: bytes, password: bytes | None) -> bytes:
    try:
        encrypted = keys.EncryptedPrivateKeyInfo.load(der, strict=True)
        scheme = encrypted["encryption_algorithm"]
        if scheme["algorithm"].native != "pbes2":
            raise KeyEncodingError(
                f"encrypted key uses {scheme['algorithm'].native}; only PBES2 is supported"
            )
        params = scheme["parameters"]
        kdf = params["key_derivation_func"]
        if kdf["algorithm"].native != "pbkdf2":
            raise KeyEncodingError(
                f"encrypted key uses KDF {kdf['algorithm'].native}; only PBKDF2 is supported"
            )
        kdf_params = kdf["parameters"]
        cipher_name = params["encryption_scheme"]["algorithm"].native
        iv = params["encryption_scheme"]["parameters"].native
        ciphertext = encrypted["encrypted_data"].native
        prf_name = kdf_params["prf"]["algorithm"].native
        salt = kdf_params["salt"].native
        iterations = kdf_params["iteration_count"].native
    except KeyEncodingError:
        raise
    except (ValueError, TypeError, KeyError) as exc:
        raise KeyEncodingError(f"malformed encrypted private key: {exc}") from exc
    if cipher_name not in _CIPHERS:
        raise KeyEncodingError(f"encrypted key uses cipher {cipher_name}; supported: {', '.join(_CIPHERS)}")
    if prf_name not in _PRF_HASHES:
        raise KeyEncodingError(
            f"encrypted key uses PRF hmacWith{prf_name}; supported: {', '.join(_PRF_HASHES)}"
        )
    if not isinstance(salt, bytes) or not isinstance(iv, bytes) or len(iv) != 16:
        raise KeyEncodingError("malformed encrypted private key: bad salt or IV")
    if not 1 <= iterations <= MAX_KDF_ITERATIONS:
        raise KeyEncodingError(
            f"encrypted key asks for {iterations} PBKDF2 iterations (1..{MAX_KDF_ITERATIONS})"
        )
    if not ciphertext or len(ciphertext) % 16:
        raise KeyEncodingError("malformed encrypted private key: ciphertext is not whole cipher blocks")
    if password is None:
        raise WrongPasswordError("the private key is encrypted: a password is required")
    cipher_cls, key_len = _CIPHERS[cipher_name]
    key = PBKDF2HMAC(_PRF_HASHES[prf_name](), key_len, salt, iterations).derive(password)
    decryptor = Cipher(cipher_cls(key), modes.CBC(iv)).decryptor()
    padded = decryptor.update(ciphertext) + decryptor.finalize()
    unpadder = padding.PKCS7(128).unpadder()
    try:
        plain = unpadder.update(padded) + unpadder.finalize()
        _PrivateKeyInfo.load(plain, strict=True).native  # noqa: B018 - a wrong key decrypts to garbage
    except (ValueError, TypeError, KeyError) as exc:
        raise WrongPasswordError("wrong password for the encrypted private key") from exc
    return plain


def load_private_key(data: bytes, password: bytes | None = None) -> SM2PrivateKey:
    """Read an SM2 private key from PEM or DER: PKCS#8, encrypted PKCS#8 (PBES2) or SEC1."""
    kind, der = _unarmor(data)
    if kind == "ENCRYPTED PRIVATE KEY":
        der, kind = _decrypt_pkcs8(der, password), "PRIVATE KEY"
    elif kind is not None and kind not in ("PRIVATE KEY", "EC PRIVATE KEY", "SM2 PRIVATE KEY"):
        raise KeyEncodingError(f"PEM block '{kind}' is not a private key")
    if kind == "PRIVATE KEY":
        return _from_private_key_info(_parse(_PrivateKeyInfo, der, "PKCS#8"))
    if kind in ("EC PRIVATE KEY", "SM2 PRIVATE KEY"):
        return _sec1(der)
    # Bare DER: an EncryptedPrivateKeyInfo is recognisable without the password; otherwise try PKCS#8 and
    # SEC1 and report the most specific reason.
    if _is_encrypted_pkcs8(der):
        return load_private_key(pem.armor("ENCRYPTED PRIVATE KEY", der), password)
    errors: list[KeyEncodingError] = []
    for attempt in (
        lambda: _from_private_key_info(_parse(_PrivateKeyInfo, der, "PKCS#8")),
        lambda: _sec1(der),
    ):
        try:
            return attempt()
        except KeyEncodingError as exc:
            errors.append(exc)
    specific = [exc for exc in errors if "malformed DER" not in str(exc)]
    if specific:
        raise specific[0]
    raise KeyEncodingError("not an SM2 private key in PKCS#8, encrypted PKCS#8 or SEC1 form")


def _is_encrypted_pkcs8(der: bytes) -> bool:
    try:
        encrypted = keys.EncryptedPrivateKeyInfo.load(der, strict=True)
        return encrypted["encryption_algorithm"]["algorithm"].dotted != "" and bool(
            encrypted["encrypted_data"].native
        )
    except (ValueError, TypeError, KeyError):
        return False


def _sec1(der: bytes) -> SM2PrivateKey:
    ec = _parse(keys.ECPrivateKey, der, "SEC1")
    if ec["parameters"].native is not None:
        _require_sm2_curve(ec["parameters"], "SEC1")
    return _from_ec_private_key(ec, "SEC1")


def _parse(spec: type[core.Asn1Value], der: bytes, where: str) -> core.Asn1Value:
    try:
        value = spec.load(der, strict=True)
        value.native  # noqa: B018 - forces a full parse
    except (ValueError, TypeError, KeyError, OverflowError) as exc:
        raise KeyEncodingError(f"{where}: malformed DER: {exc}") from exc
    return value


def _sm2_parameters() -> keys.ECDomainParameters:
    return keys.ECDomainParameters(name="named", value=oids.SM2_CURVE)


def _armor(kind: str, der: bytes, encoding: Encoding) -> bytes:
    return pem.armor(kind, der) if encoding == "pem" else der


def dump_private_key(
    key: SM2PrivateKey,
    *,
    encoding: Encoding = "pem",
    format: PrivateFormat = "pkcs8",
    password: bytes | None = None,
    kdf_iterations: int = DEFAULT_KDF_ITERATIONS,
) -> bytes:
    """Serialise ``key``. With ``password``, PKCS#8 encrypted by PBES2/PBKDF2-HMAC-SHA256/AES-256-CBC."""
    ec = keys.ECPrivateKey(
        {
            "version": "ecPrivkeyVer1",
            "private_key": int.from_bytes(key.scalar, "big"),
            "public_key": key.public_key.uncompressed,
        }
    )
    ec["private_key"].set_encoded_width(32)  # RFC 5915: ceiling(log2(n) / 8) octets, leading zeros kept
    if format == "sec1":
        if password is not None:
            raise ValueError("SEC1 keys cannot be encrypted in a form OpenSSL 3 reads; use PKCS#8")
        ec["parameters"] = _sm2_parameters()
        return _armor("EC PRIVATE KEY", ec.dump(), encoding)
    info = keys.PrivateKeyInfo(
        {
            "version": 0,
            "private_key_algorithm": keys.PrivateKeyAlgorithm(
                {"algorithm": "ec", "parameters": _sm2_parameters()}
            ),
            "private_key": ec,
        }
    )
    if password is None:
        return _armor("PRIVATE KEY", info.dump(), encoding)
    salt, iv = os.urandom(16), os.urandom(16)
    aes_key = PBKDF2HMAC(hashes.SHA256(), 32, salt, kdf_iterations).derive(password)
    padder = padding.PKCS7(128).padder()
    padded = padder.update(info.dump()) + padder.finalize()
    encryptor = Cipher(algorithms.AES(aes_key), modes.CBC(iv)).encryptor()
    ciphertext = encryptor.update(padded) + encryptor.finalize()
    encrypted = keys.EncryptedPrivateKeyInfo(
        {
            "encryption_algorithm": {
                "algorithm": "pbes2",
                "parameters": {
                    "key_derivation_func": {
                        "algorithm": "pbkdf2",
                        "parameters": {
                            "salt": algos.Pbkdf2Salt(name="specified", value=salt),
                            "iteration_count": kdf_iterations,
                            "prf": {"algorithm": "sha256", "parameters": core.Null()},
                        },
                    },
                    "encryption_scheme": {"algorithm": "aes256_cbc", "parameters": iv},
                },
            },
            "encrypted_data": ciphertext,
        }
    )
    return _armor("ENCRYPTED PRIVATE KEY", encrypted.dump(), encoding)


def public_key_info(key: SM2PublicKey) -> keys.PublicKeyInfo:
    """The SubjectPublicKeyInfo structure (id-ecPublicKey, namedCurve SM2) for ``key``."""
    return keys.PublicKeyInfo(
        {
            "algorithm": keys.PublicKeyAlgorithm({"algorithm": "ec", "parameters": _sm2_parameters()}),
            "public_key": key.uncompressed,
        }
    )


def public_key_from_info(
    info: keys.PublicKeyInfo | _PublicKeyInfo, where: str = "SubjectPublicKeyInfo"
) -> SM2PublicKey:
    """The SM2 key inside a SubjectPublicKeyInfo; refuses other algorithms and curves."""
    algorithm = info["algorithm"]
    oid = algorithm["algorithm"].dotted
    if oid == oids.EC_PUBLIC_KEY:
        _require_sm2_curve(algorithm["parameters"], where)
    elif oid != oids.SM2_CURVE:
        raise KeyEncodingError(f"{where}: key algorithm {oid} is not SM2")
    bits = bytes(info["public_key"].contents)
    if bits[:1] != b"\x00":
        raise KeyEncodingError(f"{where}: public key BIT STRING has unused bits")
    try:
        return SM2PublicKey.from_bytes(bits[1:])
    except InvalidKeyError as exc:
        raise KeyEncodingError(f"{where}: {exc}") from exc


def load_public_key(data: bytes) -> SM2PublicKey:
    """Read an SM2 SubjectPublicKeyInfo from PEM (``PUBLIC KEY``) or DER."""
    kind, der = _unarmor(data)
    if kind is not None and kind != "PUBLIC KEY":
        raise KeyEncodingError(f"PEM block '{kind}' is not a public key")
    return public_key_from_info(_parse(_PublicKeyInfo, der, "SubjectPublicKeyInfo"))


def dump_public_key(key: SM2PublicKey, *, encoding: Encoding = "pem") -> bytes:
    return _armor("PUBLIC KEY", public_key_info(key).dump(), encoding)
