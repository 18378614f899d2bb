"""Secure electronic seals (安全电子签章): GB/T 38540-2020 seals and seal signatures; GM/T 0031-2014
verification.

* :func:`make_seal` — a seal maker (制章者) makes a v4 electronic seal (电子印章, SESeal).
* :func:`sign_seal` — a signer (签章者) applies it to data, giving a seal signature (SES_Signature).
* :func:`parse_seal`, :func:`parse_seal_signature` — read either layout (:class:`SealFormatError` otherwise).
* :func:`verify_seal`, :func:`verify_seal_signature` — the verification procedures of GB/T 38540 §6.3 / §7.3
  as ordered, named checks.
"""

from .build import SigningRefusedError, attach_timestamp, make_seal, sign_seal
from .model import (
    CertDigest,
    ExtData,
    Seal,
    SealFormatError,
    SealLayout,
    SealPicture,
    SealSignature,
    parse_seal,
    parse_seal_signature,
)
from .verify import SealVerification, SignatureVerification, verify_seal, verify_seal_signature

__all__ = [
    "CertDigest",
    "ExtData",
    "Seal",
    "SealFormatError",
    "SealLayout",
    "SealPicture",
    "SealSignature",
    "SealVerification",
    "SignatureVerification",
    "SigningRefusedError",
    "attach_timestamp",
    "make_seal",
    "parse_seal",
    "parse_seal_signature",
    "sign_seal",
    "verify_seal",
    "verify_seal_signature",
]
