"""Object identifiers of the Chinese commercial-cryptography (GM/T 0006, GB/T 33560) algorithms we use.

Importing this module also teaches ``asn1crypto`` the few of them it must know by name to encode keys (the
SM2 curve, whose private keys are 32 bytes) and to decrypt PKCS#8 files made with ``-v2 sm4-cbc``.
"""

from __future__ import annotations

from asn1crypto import algos, core, keys, x509

__all__ = [
    "EC_PUBLIC_KEY",
    "SEAL_MAKER_PURPOSE",
    "SEAL_SIGNER_PURPOSE",
    "SM2_CURVE",
    "SM2_SIGN",
    "SM2_WITH_SM3",
    "SM3",
    "SM4_CBC",
    "TIME_STAMPING",
]

EC_PUBLIC_KEY = "1.2.840.10045.2.1"  # id-ecPublicKey (RFC 5480), the algorithm of SM2 keys in SPKI/PKCS#8
SM2_CURVE = "1.2.156.10197.1.301"  # sm2p256v1; also used (non-standard) as a key algorithm by some tools
SM2_SIGN = "1.2.156.10197.1.301.1"  # SM2-1 digital signature
SM2_WITH_SM3 = "1.2.156.10197.1.501"  # SM2 signature with SM3 (X.509, SES signAlgID)
SM3 = "1.2.156.10197.1.401"
SM3_WITHOUT_KEY = "1.2.156.10197.1.401.1"
# Hashes other signers use (message imprints, OFD CheckMethod, CMS digest algorithms)
SHA1 = "1.3.14.3.2.26"
SHA256 = "2.16.840.1.101.3.4.2.1"
SHA384 = "2.16.840.1.101.3.4.2.2"
SHA512 = "2.16.840.1.101.3.4.2.3"
HMAC_SM3 = "1.2.156.10197.1.401.3.1"  # hmacWithSM3, a PBKDF2 PRF OpenSSL can write
SM4_CBC = "1.2.156.10197.1.104.2"

# Extended key usages (RFC 5280 §4.2.1.12). No public standard names the key purposes of GB/T 38540 seal makers
# (制章者) and seal users (签章者), so certstore names them under its own UUID-derived arc (X.667, ``2.25``): a
# seal-maker certificate asserts SEAL_MAKER_PURPOSE, a seal user's certificate SEAL_SIGNER_PURPOSE (and so can
# never pass as a maker). TIME_STAMPING is id-kp-timeStamping (RFC 3161 §2.3).
SEAL_MAKER_PURPOSE = "2.25.143000650996900968528382962274727371181"
SEAL_SIGNER_PURPOSE = "2.25.312020103765845457717730560747177916326"
TIME_STAMPING = "1.3.6.1.5.5.7.3.8"

# CMS (RFC 5652: signedData, the signed attributes of §11) and the RFC 3161 content type, read and written by
# the time-stamp authority, its token reader, the PDF writer and the signature verifiers.
SIGNED_DATA = "1.2.840.113549.1.7.2"  # id-signedData (PKCS #7)
CONTENT_TYPE = "1.2.840.113549.1.9.3"
MESSAGE_DIGEST = "1.2.840.113549.1.9.4"
TST_INFO = "1.2.840.113549.1.9.16.1.4"


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
_register(x509.KeyPurposeId, SEAL_MAKER_PURPOSE, "certstore_seal_maker")
_register(x509.KeyPurposeId, SEAL_SIGNER_PURPOSE, "certstore_seal_signer")
