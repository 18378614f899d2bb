"""Object identifiers of the Chinese commercial-cryptography (GM/T 0006, GB/T 33560) algorithms we use.

Importing this module also teaches ``asn1crypto`` the few of them it must know by name to encode keys (the
SM2 curve, whose private keys are 32 bytes) and to decrypt PKCS#8 files made with ``-v2 sm4-cbc``.
"""

from __future__ import annotations

from asn1crypto import algos, core, keys

__all__ = [
    "EC_PUBLIC_KEY",
    "SM2_CURVE",
    "SM2_SIGN",
    "SM2_WITH_SM3",
    "SM3",
    "SM4_CBC",
]

EC_PUBLIC_KEY = "1.2.840.10045.2.1"  # id-ecPublicKey (RFC 5480), the algorithm of SM2 keys in SPKI/PKCS#8
SM2_CURVE = "1.2.156.10197.1.301"  # sm2p256v1; also used (non-standard) as a key algorithm by some tools
SM2_SIGN = "1.2.156.10197.1.301.1"  # SM2-1 digital signature
SM2_WITH_SM3 = "1.2.156.10197.1.501"  # SM2 signature with SM3 (X.509, SES signAlgID)
SM3 = "1.2.156.10197.1.401"
SM3_WITHOUT_KEY = "1.2.156.10197.1.401.1"
HMAC_SM3 = "1.2.156.10197.1.401.3.1"  # hmacWithSM3, a PBKDF2 PRF OpenSSL can write
SM4_CBC = "1.2.156.10197.1.104.2"


def _register(oid_class: type[core.ObjectIdentifier], oid: str, name: str) -> None:
    mapping = oid_class._map
    assert mapping is not None
    mapping.setdefault(oid, name)
    if oid_class._reverse_map is not None:
        oid_class._reverse_map.setdefault(name, oid)


keys.NamedCurve.register("sm2p256v1", SM2_CURVE, 32)
_register(algos.EncryptionAlgorithmId, SM4_CBC, "sm4_cbc")
algos.EncryptionAlgorithm._oid_specs.setdefault("sm4_cbc", core.OctetString)
_register(algos.HmacAlgorithmId, HMAC_SM3, "sm3")
