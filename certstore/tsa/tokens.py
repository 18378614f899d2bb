"""Reading time-stamp replies and tokens (RFC 3161 §2.4.2, GB/T 20520): what a client checks before it uses one.

:func:`parse_response` reads a TimeStampResp (status, failure bits, text, the token's DER); :func:`read_token` a
TimeStampToken (ContentInfo → SignedData → TSTInfo) into a :class:`TokenInfo`, whose
:meth:`~TokenInfo.signature_verifies` checks the TSA's SM2 signature over the signed attributes (the message a
CMS verifier computes: DER ``SET OF Attribute``, default SM2 ID 1234567812345678) and that the messageDigest
attribute is SM3 (or SHA-256) of the TSTInfo. Chain and trust are the verifier's business
(``certstore.seal.verify``), not this module's.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from typing import Any

from asn1crypto import cms, core, tsp

from certstore.crypto import oids
from certstore.crypto.sm3 import sm3
from certstore.crypto.x509 import Certificate, CertificateError
from certstore.tsa.der import walk_token

__all__ = [
    "ACCEPTED_HASHES",
    "TSA_SIGNATURE_ALGORITHMS",
    "TimeStampReply",
    "TimeStampResp",
    "TokenError",
    "TokenInfo",
    "parse_response",
    "read_token",
]

#: Message-imprint (and CMS digest) algorithms this TSA accepts, by dotted OID: SM3 (GB/T 32905) and SHA-256.
ACCEPTED_HASHES: dict[str, Callable[[bytes], bytes]] = {
    oids.SM3: sm3,
    oids.SHA256: lambda data: hashlib.sha256(data).digest(),
}

#: SignerInfo signature algorithms read as SM2 (GM/T 0010 writes sm2-1, X.509 habits sm2-with-SM3).
TSA_SIGNATURE_ALGORITHMS = frozenset({oids.SM2_WITH_SM3, oids.SM2_SIGN, oids.SM2_CURVE})

_DECODE_ERRORS = (ValueError, TypeError, KeyError, IndexError, OverflowError, AttributeError)


class TimeStampResp(core.Sequence):
    """RFC 3161 TimeStampResp; asn1crypto's makes the token mandatory, which a rejection must leave out."""

    _fields = [  # noqa: RUF012 - asn1crypto's class attribute
        ("status", tsp.PKIStatusInfo),
        ("time_stamp_token", cms.ContentInfo, {"optional": True}),
    ]


class TokenError(ValueError):
    """The bytes are not a TimeStampResp / TimeStampToken this module can read."""


@dataclass(frozen=True)
class TimeStampReply:
    """A TimeStampResp: PKIStatus name (``granted`` …), failure bits (asn1crypto names: ``bad_alg`` …), the
    status text, and the token's DER when one was sent."""

    status: str
    failure_info: frozenset[str]
    status_text: str
    token: bytes | None

    @property
    def granted(self) -> bool:
        return self.status in ("granted", "granted_with_mods")


def parse_response(data: bytes) -> TimeStampReply:
    """Read a DER TimeStampResp; raises :class:`TokenError` when it is not one."""
    try:
        response = TimeStampResp.load(data, strict=True)
        status_info = response["status"]
        status = status_info["status"].native
        text_field = status_info["status_string"]
        text = "" if isinstance(text_field, core.Void) else "; ".join(text_field.native)
        fail_field = status_info["fail_info"]
        failures = frozenset() if isinstance(fail_field, core.Void) else frozenset(fail_field.native)
        token_field = response["time_stamp_token"]
        token = None if isinstance(token_field, core.Void) else token_field.dump()
    except _DECODE_ERRORS as exc:
        raise TokenError(f"not an RFC 3161 TimeStampResp: {exc}") from exc
    if not isinstance(status, str):
        raise TokenError(f"unknown PKIStatus {status!r}")
    return TimeStampReply(status, failures, text, token)


@dataclass(frozen=True)
class TokenInfo:
    """The parts of a TimeStampToken a client and a verifier look at (``signed_data`` and ``tst_info``, the
    asn1crypto forms, are parsed when first asked for)."""

    der: bytes
    tst_bytes: bytes
    policy: str
    hash_algorithm: str  # dotted OID of the message imprint's hash
    hashed_message: bytes
    serial_number: int
    gen_time: datetime
    nonce: int | None
    certificates: tuple[Certificate, ...]
    tsa_certificate: Certificate | None  # the certificate the SignerInfo names, when the token carries it
    #: the SignerInfo, read once (:func:`_signer_parts`): signature and digest algorithms (dotted OIDs), the
    #: signed attributes as signed (DER, SET OF tag; None without attributes), the values of their
    #: messageDigest and contentType attributes (None when absent), the signature value
    signature_algorithm: str
    digest_algorithm: str
    signed_attributes: bytes | None
    message_digest: tuple[Any, ...] | None
    content_type: tuple[str, ...] | None
    signature: bytes

    @cached_property
    def signed_data(self) -> cms.SignedData:
        """The token's SignedData (asn1crypto)."""
        return cms.ContentInfo.load(self.der, strict=True)["content"]

    @cached_property
    def tst_info(self) -> tsp.TSTInfo:
        """The TSTInfo (asn1crypto)."""
        return tsp.TSTInfo.load(self.tst_bytes, strict=True)

    def signature_verifies(self, certificate: Certificate | None = None) -> bool:
        """Whether the TSA's SM2 signature verifies with ``certificate`` (default: the one in the token), the
        messageDigest attribute being the digest of the TSTInfo and contentType id-ct-TSTInfo."""
        return self.signature_problem(certificate) is None

    def signature_problem(self, certificate: Certificate | None = None) -> str | None:
        """Why the TSA's signature does not verify (see :meth:`signature_verifies`), or None when it does."""
        signer_cert = certificate or self.tsa_certificate
        if signer_cert is None:
            return "the TSA certificate is not in the token"
        if self.signature_algorithm not in TSA_SIGNATURE_ALGORITHMS:
            return f"TSA signature algorithm {self.signature_algorithm} not supported"
        if self.signed_attributes is None:
            message = self.tst_bytes  # RFC 5652 allows it; RFC 3161 tokens always have attributes
        else:
            digest = ACCEPTED_HASHES.get(self.digest_algorithm)
            if digest is None:
                return f"TSA digest algorithm {self.digest_algorithm} not supported"
            if self.message_digest != (digest(self.tst_bytes),):
                return "TSA messageDigest attribute does not match the TSTInfo"
            if self.content_type != (oids.TST_INFO,):
                return "TSA contentType attribute is not id-ct-TSTInfo"
            message = self.signed_attributes
        if signer_cert.public_key.verify(message, self.signature):
            return None
        return f"TSA signature does not verify with the key of {signer_cert.subject!r}"


def _signer_parts(signer: cms.SignerInfo) -> dict[str, Any]:
    """The parts of the one SignerInfo that :meth:`TokenInfo.signature_problem` checks, read once, as plain values
    (an undecodable one raises here, inside :func:`read_token`). The signed attributes' message is their DER with
    the EXPLICIT SET OF tag in place of the IMPLICIT [0] (RFC 5652 §5.4): the same length, one byte changed."""
    attributes = signer["signed_attrs"]
    values: dict[str, tuple[Any, ...]] = {}
    signed: bytes | None = None
    if not isinstance(attributes, core.Void) and len(attributes):
        for attribute in attributes:
            kind = attribute["type"].dotted
            if kind == oids.MESSAGE_DIGEST:
                values[kind] = tuple(value.native for value in attribute["values"])
            elif kind == oids.CONTENT_TYPE:
                values[kind] = tuple(value.dotted for value in attribute["values"])
        encoded = attributes.dump()
        signed = b"\x31" + encoded[1:]
    return {
        "signature_algorithm": signer["signature_algorithm"]["algorithm"].dotted,
        "digest_algorithm": signer["digest_algorithm"]["algorithm"].dotted,
        "signed_attributes": signed,
        "message_digest": values.get(oids.MESSAGE_DIGEST),
        "content_type": values.get(oids.CONTENT_TYPE),
        "signature": bytes(signer["signature"].native),
    }


def read_token(data: bytes) -> TokenInfo:
    """Read a DER TimeStampToken; raises :class:`TokenError` when it is not one (one SignerInfo, TSTInfo v1).
    A token of the canonical layout is read by the DER walker (:mod:`certstore.tsa.der`), any other by
    asn1crypto, which also names the error of one that cannot be read."""
    if not isinstance(data, bytes | bytearray | memoryview):
        return _read_token_full(data)  # which names what it is
    data = bytes(data)
    parts = walk_token(data)
    if parts is None:
        return _read_token_full(data)
    certificates = tuple(_certificates(parts.certificates))
    return TokenInfo(
        der=data,
        tst_bytes=parts.tst_bytes,
        policy=parts.policy,
        hash_algorithm=parts.hash_algorithm,
        hashed_message=parts.hashed_message,
        serial_number=parts.serial_number,
        gen_time=parts.gen_time,
        nonce=parts.nonce,
        certificates=certificates,
        tsa_certificate=next(
            (c for c in certificates if c.matches_issuer_and_serial(parts.sid_issuer, parts.sid_serial)), None
        ),
        signature_algorithm=parts.signature_algorithm,
        digest_algorithm=parts.digest_algorithm,
        signed_attributes=parts.signed_attributes,
        message_digest=parts.message_digest,
        content_type=parts.content_type,
        signature=parts.signature,
    )


def _certificates(encoded: Iterable[bytes]) -> Iterator[Certificate]:
    """The certificates of a token that are readable (others are skipped: the TSA's may still be found)."""
    for der in encoded:
        try:
            yield Certificate.from_der(der)
        except CertificateError:
            continue


def _read_token_full(data: bytes) -> TokenInfo:
    """:func:`read_token` by asn1crypto: any layout it can read, and the error of what it cannot."""
    try:
        info = cms.ContentInfo.load(data, strict=True)
        if info["content_type"].native != "signed_data":
            raise TokenError(f"content type {info['content_type'].dotted} is not signedData")
        signed = info["content"]
        encap = signed["encap_content_info"]
        if encap["content_type"].native != "tst_info":
            raise TokenError(f"encapsulated content {encap['content_type'].dotted} is not a TSTInfo")
        tst_bytes = bytes(encap["content"].contents)
        tst = tsp.TSTInfo.load(tst_bytes, strict=True)
        if tst["version"].native != "v1":
            raise TokenError(f"TSTInfo version {tst['version'].native} is not 1")
        imprint = tst["message_imprint"]
        nonce = tst["nonce"].native
        gen_time = tst["gen_time"].native
        signer_infos = signed["signer_infos"]
        if len(signer_infos) != 1:
            raise TokenError(f"{len(signer_infos)} SignerInfos, expected 1")
        certificates = list(
            _certificates(c.chosen.dump() for c in signed["certificates"] or [] if c.name == "certificate")
        )
        sid = signer_infos[0]["sid"]
        tsa = next((c for c in certificates if c.matches_signer_identifier(sid)), None)
        signer = _signer_parts(signer_infos[0])
        return TokenInfo(
            der=bytes(data),
            tst_bytes=tst_bytes,
            policy=tst["policy"].dotted,
            hash_algorithm=imprint["hash_algorithm"]["algorithm"].dotted,
            hashed_message=imprint["hashed_message"].native,
            serial_number=tst["serial_number"].native,
            gen_time=gen_time.astimezone(UTC),
            nonce=nonce,
            certificates=tuple(certificates),
            tsa_certificate=tsa,
            **signer,
        )
    except TokenError:
        raise
    except _DECODE_ERRORS as exc:
        raise TokenError(f"not an RFC 3161 TimeStampToken: {exc}") from exc
