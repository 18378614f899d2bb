"""The time-stamp authority (时间戳服务, RFC 3161 / GB/T 20520): TimeStampReq in, TimeStampResp out.

:class:`TimeStampAuthority` holds the TSA's SM2 signer and certificate (which must carry the critical extended
key usage id-kp-timeStamping, RFC 3161 §2.3). :meth:`~TimeStampAuthority.respond` answers any bytes with a DER
TimeStampResp — granted with a token, or a rejection naming the PKIFailureInfo bit:

* ``bad_data_format``: not a DER TimeStampReq, or an imprint whose length is not the hash's;
* ``bad_request``: a version other than 1;
* ``bad_alg``: an imprint hash other than SM3 (1.2.156.10197.1.401) or SHA-256;
* ``unaccepted_policy``: a reqPolicy other than :data:`TSA_POLICY`;
* ``unaccepted_extensions``: any request extension (none is supported).

The token (:meth:`~TimeStampAuthority.issue`) is a CMS SignedData (version 3) encapsulating the DER TSTInfo:
version 1, policy :data:`TSA_POLICY`, the request's message imprint, a random 127-bit serial number, genTime
in UTC to the second (accuracy 1 s: the clock is truncated, not rounded), the request's nonce, the TSA's
subject as ``tsa``. One SignerInfo (issuerAndSerialNumber, digest SM3, signature SM2-with-SM3 under the default
ID 1234567812345678) signs the DER ``SET OF`` signed attributes: contentType id-ct-TSTInfo, messageDigest SM3 of
the TSTInfo, and signingCertificateV2 (RFC 5816) whose ESSCertIDv2 is the SM3 of the TSA certificate with its
issuer and serial. The TSA certificate and its chain are included when the request asks (certReq). The token
is assembled from DER pieces, the constant ones encoded once per authority: a token costs about 0.4 ms, most of
it the SM2 signature.

No public GB/T 20520 policy OID is known to us, so certstore's TSA policy is a UUID-derived OID (X.667 arc 2.25).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from enum import StrEnum

from asn1crypto import cms, core, tsp
from asn1crypto import x509 as asn1_x509

from certstore.crypto import der, oids
from certstore.crypto.sm2 import Signer
from certstore.crypto.sm3 import sm3
from certstore.crypto.x509 import Certificate

from .tokens import ACCEPTED_HASHES, TimeStampResp

__all__ = [
    "ACCEPTED_HASHES",
    "TSA_POLICY",
    "FailureInfo",
    "TimeStampAuthority",
    "TimeStampAuthorityError",
]

#: certstore's time-stamping policy (TSA policy, RFC 3161 §2.4.2 ``policy``): genTime from the TSA host's UTC
#: clock truncated to the second, accuracy 1 s, one token per request, no ordering.
TSA_POLICY = "2.25.168014045913154061610305676131849993454"

_DIGEST_LENGTHS = {oids.SM3: 32, oids.SHA256: 32}
_MAX_NONCE_BITS = 512
_DECODE_ERRORS = (ValueError, TypeError, KeyError, IndexError, OverflowError, AttributeError)


class FailureInfo(StrEnum):
    """PKIFailureInfo bits (RFC 3161 §2.4.2), by their asn1crypto names."""

    BAD_ALG = "bad_alg"
    BAD_REQUEST = "bad_request"
    BAD_DATA_FORMAT = "bad_data_format"
    TIME_NOT_AVAILABLE = "time_not_available"
    UNACCEPTED_POLICY = "unaccepted_policy"
    UNACCEPTED_EXTENSIONS = "unaccepted_extensions"
    SYSTEM_FAILURE = "system_failure"


class TimeStampAuthorityError(ValueError):
    """The TSA cannot be set up with this key and certificate (key mismatch, no timeStamping purpose)."""


class _RefusedError(Exception):
    def __init__(self, failure: FailureInfo, text: str) -> None:
        super().__init__(text)
        self.failure, self.text = failure, text


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _random_serial() -> int:
    """127 random bits (a positive INTEGER of at most 16 octets), never 0."""
    return (int.from_bytes(os.urandom(16), "big") >> 1) or 1


class TimeStampAuthority:
    """An RFC 3161 TSA over an SM2 :class:`~certstore.crypto.sm2.Signer` (see the module docstring).

    ``chain``: the certificates between the TSA certificate and a trust anchor (included on certReq);
    ``clock``: the TSA's time (timezone-aware). Thread-safe: nothing changes after construction.
    """

    def __init__(
        self,
        signer: Signer,
        certificate: Certificate,
        chain: Sequence[Certificate] = (),
        *,
        clock: Callable[[], datetime] = _utc_now,
        policy: str = TSA_POLICY,
    ) -> None:
        if signer.public_key != certificate.public_key:
            raise TimeStampAuthorityError(f"the TSA signer does not hold the key of {certificate.subject!r}")
        purposes = certificate.extended_key_usage
        if purposes is None or oids.TIME_STAMPING not in purposes:
            raise TimeStampAuthorityError(
                f"{certificate.subject!r} lacks the extended key usage id-kp-timeStamping ({oids.TIME_STAMPING})"
            )
        if "extended_key_usage" not in certificate.critical_extensions:
            raise TimeStampAuthorityError(
                f"{certificate.subject!r}: the extendedKeyUsage of a TSA must be critical (RFC 3161 §2.3)"
            )
        self.signer, self.certificate, self.chain = signer, certificate, tuple(chain)
        self.clock, self.policy = clock, policy
        # Everything but the imprint, serial, time and nonce is the same in every token: encoded once here.
        issuer_serial = {
            "issuer": [asn1_x509.GeneralName(name="directory_name", value=certificate.issuer_name)],
            "serial_number": certificate.serial,
        }
        signing_certificate = tsp.SigningCertificateV2(
            {
                "certs": [
                    {
                        "hash_algorithm": {"algorithm": oids.SM3},
                        "cert_hash": sm3(certificate.der),
                        "issuer_serial": issuer_serial,
                    }
                ]
            }
        )
        self._attributes = (
            cms.CMSAttribute({"type": "content_type", "values": ["tst_info"]}).dump(),
            cms.CMSAttribute({"type": "signing_certificate_v2", "values": [signing_certificate]}).dump(),
        )
        self._sid = cms.IssuerAndSerialNumber(
            {"issuer": certificate.issuer_name, "serial_number": certificate.serial}
        ).dump()
        self._policy = core.ObjectIdentifier(policy).dump()
        self._tsa_name = der.encode(
            der.CONTEXT_0, asn1_x509.GeneralName(name="directory_name", value=certificate.subject_name).dump()
        )
        self._certificates = der.encode(
            der.CONTEXT_0, b"".join(sorted(c.der for c in (certificate, *self.chain)))
        )

    # --- requests ------------------------------------------------------------------------------------------

    def respond(self, request: bytes) -> bytes:
        """The DER TimeStampResp answering the DER TimeStampReq ``request`` (never raises for bad input)."""
        try:
            hash_oid, digest, nonce, cert_req = self._read_request(request)
        except _RefusedError as refused:
            return self.rejection(refused.failure, refused.text)
        token = self.issue(hash_oid, digest, nonce=nonce, cert_req=cert_req)
        return der.encode(der.SEQUENCE, _GRANTED + token)

    @staticmethod
    def rejection(failure: FailureInfo, text: str) -> bytes:
        """A DER TimeStampResp with status rejection, ``failure`` and ``text`` (and no token)."""
        return TimeStampResp(
            {
                "status": {
                    "status": "rejection",
                    "status_string": [text],
                    "fail_info": {failure.value},
                }
            }
        ).dump()

    def _read_request(self, data: bytes) -> tuple[str, bytes, int | None, bool]:
        try:
            request = tsp.TimeStampReq.load(data, strict=True)
            request.native  # noqa: B018 - a full parse
            version = int.from_bytes(request["version"].contents, "big", signed=True)
            imprint = request["message_imprint"]
            hash_oid = imprint["hash_algorithm"]["algorithm"].dotted
            digest = imprint["hashed_message"].native
            policy = request["req_policy"]
            nonce = request["nonce"].native
            cert_req = bool(request["cert_req"].native)
            extensions = request["extensions"]
        except _DECODE_ERRORS as exc:
            raise _RefusedError(FailureInfo.BAD_DATA_FORMAT, f"not a DER TimeStampReq: {exc}") from None
        if version != 1:
            raise _RefusedError(FailureInfo.BAD_REQUEST, f"TimeStampReq version {version} is not 1")
        if hash_oid not in ACCEPTED_HASHES:
            raise _RefusedError(
                FailureInfo.BAD_ALG, f"message imprint hash {hash_oid} is not SM3 ({oids.SM3}) or SHA-256"
            )
        if len(digest) != _DIGEST_LENGTHS[hash_oid]:
            raise _RefusedError(
                FailureInfo.BAD_DATA_FORMAT,
                f"hashedMessage has {len(digest)} bytes; {hash_oid} digests have {_DIGEST_LENGTHS[hash_oid]}",
            )
        if not isinstance(policy, core.Void) and policy.dotted != self.policy:
            raise _RefusedError(FailureInfo.UNACCEPTED_POLICY, f"policy {policy.dotted} is not {self.policy}")
        if not isinstance(extensions, core.Void) and len(extensions):
            raise _RefusedError(FailureInfo.UNACCEPTED_EXTENSIONS, "request extensions are not supported")
        if nonce is not None and (nonce < 0 or nonce.bit_length() > _MAX_NONCE_BITS):
            raise _RefusedError(
                FailureInfo.BAD_DATA_FORMAT, f"nonce must be a non-negative ≤ {_MAX_NONCE_BITS}-bit integer"
            )
        return hash_oid, digest, nonce, cert_req

    # --- tokens --------------------------------------------------------------------------------------------

    def issue(
        self, hash_oid: str, digest: bytes, *, nonce: int | None = None, cert_req: bool = True
    ) -> bytes:
        """A DER TimeStampToken for the imprint (``hash_oid``, ``digest``) at the clock's time now."""
        if hash_oid not in ACCEPTED_HASHES or len(digest) != _DIGEST_LENGTHS[hash_oid]:
            raise ValueError(f"imprint ({hash_oid}, {len(digest)} bytes) is not an SM3 or SHA-256 digest")
        now = self.clock()
        if now.tzinfo is None:
            raise ValueError("the TSA clock must give timezone-aware datetimes")
        tst_info = der.encode(
            der.SEQUENCE,
            _INTEGER_1
            + self._policy
            + der.encode(
                der.SEQUENCE, _algorithm(hash_oid) + der.encode(der.OCTET_STRING, digest)
            )  # messageImprint
            + core.Integer(_random_serial()).dump()
            + core.GeneralizedTime(now.astimezone(UTC).replace(microsecond=0)).dump()
            + _ACCURACY_1S
            + (b"" if nonce is None else core.Integer(nonce).dump())
            + self._tsa_name,
        )
        message_digest = der.encode(
            der.SEQUENCE,
            _MESSAGE_DIGEST_OID + der.encode(der.SET, der.encode(der.OCTET_STRING, sm3(tst_info))),
        )
        attributes = b"".join(sorted((*self._attributes, message_digest)))  # DER: a SET OF is sorted
        signature = self.signer.sign(der.encode(der.SET, attributes))  # signed as SET OF (RFC 5652 §5.4)
        signer_info = der.encode(
            der.SEQUENCE,
            _INTEGER_1
            + self._sid
            + _SM3
            + der.encode(der.CONTEXT_0, attributes)  # signedAttrs [0] IMPLICIT
            + _SM2_WITH_SM3
            + der.encode(der.OCTET_STRING, signature),
        )
        signed_data = der.encode(
            der.SEQUENCE,
            _INTEGER_3
            + der.encode(der.SET, _SM3)  # digestAlgorithms
            + der.encode(
                der.SEQUENCE,
                _TST_INFO_OID + der.encode(der.CONTEXT_0, der.encode(der.OCTET_STRING, tst_info)),
            )  # encapContentInfo
            + (self._certificates if cert_req else b"")  # certificates [0] IMPLICIT
            + der.encode(der.SET, signer_info),
        )
        return der.encode(der.SEQUENCE, _SIGNED_DATA_OID + der.encode(der.CONTEXT_0, signed_data))


def _algorithm(oid: str) -> bytes:
    """AlgorithmIdentifier without parameters."""
    return der.encode(der.SEQUENCE, core.ObjectIdentifier(oid).dump())


_INTEGER_1 = core.Integer(1).dump()
_GRANTED = tsp.PKIStatusInfo({"status": "granted"}).dump()
_INTEGER_3 = core.Integer(3).dump()
_ACCURACY_1S = der.encode(der.SEQUENCE, _INTEGER_1)  # Accuracy { seconds 1 }
_SM3 = _algorithm(oids.SM3)
_SM2_WITH_SM3 = _algorithm(oids.SM2_WITH_SM3)
_SIGNED_DATA_OID = core.ObjectIdentifier(oids.SIGNED_DATA).dump()
_TST_INFO_OID = core.ObjectIdentifier(oids.TST_INFO).dump()
_MESSAGE_DIGEST_OID = core.ObjectIdentifier(oids.MESSAGE_DIGEST).dump()
