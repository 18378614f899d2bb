"""Making seals (制作印章, GB/T 38540 §6.2) and applying them (电子签章, §7.2) — GB/T 38540 v4 only.

:func:`make_seal` is the seal maker's (制章者) operation: it lists the signers' certificates (certListType 1),
the validity window and the picture, and signs DER(SES_SealInfo). :func:`sign_seal` is the signer's (签章者)
operation: it refuses to sign unless the seal is intact, lists the signer, and is valid at the signing
time, then signs DER(TBS_Sign) whose dataHash is SM3 of the data (for OFD: the exact bytes of
``Signature.xml``). Private keys are only reached through the :class:`~certstore.crypto.sm2.Signer` protocol.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from functools import lru_cache

from asn1crypto import core

from certstore.crypto import der, oids
from certstore.crypto.sm2 import Signer
from certstore.crypto.sm3 import sm3
from certstore.crypto.x509 import Certificate

from . import asn1
from .model import ExtData, SealLayout, SealPicture, parse_seal, parse_seal_signature

__all__ = [
    "SEAL_VERSION",
    "SigningRefusedError",
    "attach_timestamp",
    "make_seal",
    "sign_seal",
    "stamp_signature",
]

#: The SES_Header / TBS_Sign version this module writes (GB/T 38540-2020).
SEAL_VERSION = 4


class SigningRefusedError(ValueError):
    """A signer asked to apply a seal it may not use (not listed, outside validity, seal damaged …)."""


def _utc_seconds(when: datetime, what: str) -> datetime:
    if when.tzinfo is None:
        raise ValueError(f"{what} must be a timezone-aware datetime")
    return when.astimezone(UTC).replace(microsecond=0)


def _ia5(text: str, what: str) -> str:
    if not text or not text.isascii() or not text.isprintable():
        raise ValueError(f"{what} must be non-empty printable ASCII (IA5String), got {text!r}")
    return text


def _ext_datas(ext_datas: Sequence[ExtData] | None) -> asn1.ExtensionDatas | None:
    if not ext_datas:
        return None
    return asn1.ExtensionDatas(
        [
            asn1.ExtData({"extnID": e.oid, "critical": e.critical, "extnValue": e.value})
            if e.critical
            else asn1.ExtData({"extnID": e.oid, "extnValue": e.value})
            for e in ext_datas
        ]
    )


def make_seal(
    *,
    maker: Signer,
    maker_certificate: Certificate,
    es_id: str,
    name: str,
    seal_type: int,
    signer_certificates: Sequence[Certificate],
    picture: SealPicture,
    valid_start: datetime,
    valid_end: datetime,
    vendor_id: str = "CERTSTORE",
    created: datetime | None = None,
) -> bytes:
    """Make a GB/T 38540 v4 electronic seal (电子印章); returns DER SESeal.

    ``maker`` signs DER(SES_SealInfo) with SM2-with-SM3; ``maker_certificate`` must hold its key and be valid
    at ``created`` (default: now). The seal lists ``signer_certificates`` (certListType 1).
    """
    created_at = _utc_seconds(created if created is not None else datetime.now(UTC), "created")
    start = _utc_seconds(valid_start, "valid_start")
    end = _utc_seconds(valid_end, "valid_end")
    if end <= start:
        raise ValueError(f"valid_end {end.isoformat()} must be later than valid_start {start.isoformat()}")
    if maker.public_key != maker_certificate.public_key:
        raise ValueError(f"the maker signer does not hold the key of {maker_certificate.subject!r}")
    if not maker_certificate.valid_at(created_at):
        raise ValueError(
            f"maker certificate {maker_certificate.subject!r} is not valid at {created_at.isoformat()} "
            f"({maker_certificate.not_before.isoformat()} … {maker_certificate.not_after.isoformat()})"
        )
    if not signer_certificates:
        raise ValueError("a seal must list at least one signer certificate")
    if not name:
        raise ValueError("the seal name must not be empty")
    if picture.width_mm <= 0 or picture.height_mm <= 0 or not picture.data:
        raise ValueError("the seal picture needs data and a positive size in millimetres")
    info = asn1.SESSealInfo(
        {
            "header": {"ID": "ES", "version": SEAL_VERSION, "Vid": _ia5(vendor_id, "vendor_id")},
            "esID": _ia5(es_id, "es_id"),
            "property": {
                "type": seal_type,
                "name": name,
                "certListType": asn1.CERT_LIST_CERTIFICATES,
                "certList": asn1.CertInfoList([c.der for c in signer_certificates]),
                "createDate": created_at,
                "validStart": start,
                "validEnd": end,
            },
            "picture": {
                "type": _ia5(picture.type, "picture type"),
                "data": picture.data,
                "width": picture.width_mm,
                "height": picture.height_mm,
            },
        }
    )
    info_der = info.dump()
    seal = asn1.SESSeal(
        {
            "eSealInfo": asn1.SESSealInfo.load(info_der),
            "cert": maker_certificate.der,
            "signAlgID": oids.SM2_WITH_SM3,
            "signedValue": maker.sign(info_der),
        }
    )
    return seal.dump()


def sign_seal(
    *,
    seal: bytes,
    signer: Signer,
    signer_certificate: Certificate,
    data: bytes,
    property_info: str,
    signing_time: datetime | None = None,
    ext_datas: Sequence[ExtData] | None = None,
) -> bytes:
    """Apply ``seal`` to ``data`` (电子签章); returns DER SES_Signature (GB/T 38540 v4).

    ``property_info`` describes the signed data (for OFD: the path of ``Signature.xml``). Raises
    :class:`SigningRefusedError` when the seal is not a GB/T 38540 seal, its maker signature does not verify,
    the signer certificate is not listed in it or not valid at ``signing_time``, or ``signing_time`` lies
    outside the seal's validity.
    """
    parsed = parse_seal(seal)
    when = _utc_seconds(signing_time if signing_time is not None else datetime.now(UTC), "signing_time")
    if parsed.layout is not SealLayout.GBT38540:
        raise SigningRefusedError(
            f"only GB/T 38540 seals can be applied; this is a {parsed.layout.value} seal"
        )
    if not _maker_signature_verifies(parsed.der):
        raise SigningRefusedError(f"seal {parsed.es_id!r}: the maker signature does not verify; seal damaged")
    if signer.public_key != signer_certificate.public_key:
        raise SigningRefusedError(f"the signer does not hold the key of {signer_certificate.subject!r}")
    if parsed.match_signer(signer_certificate) is None:
        raise SigningRefusedError(
            f"signer certificate {signer_certificate.subject!r} is not listed in seal {parsed.es_id!r}"
        )
    if not parsed.valid_at(when):
        raise SigningRefusedError(
            f"signing time {when.isoformat()} is outside the validity of seal {parsed.es_id!r} "
            f"({parsed.valid_start.isoformat()} … {parsed.valid_end.isoformat()})"
        )
    if not signer_certificate.valid_at(when):
        raise SigningRefusedError(
            f"signer certificate {signer_certificate.subject!r} is not valid at {when.isoformat()} "
            f"({signer_certificate.not_before.isoformat()} … {signer_certificate.not_after.isoformat()})"
        )
    return _assemble_signature(
        seal=parsed.der,
        signer=signer,
        signer_certificate=signer_certificate,
        data_hash=sm3(data),
        property_info=property_info,
        signing_time=when,
        ext_datas=ext_datas,
    )


@lru_cache(maxsize=64)
def _maker_signature_verifies(seal: bytes) -> bool:
    """Whether the seal maker's signature over the seal verifies — once per seal and process (a sealing worker
    applies the same seal to thousands of files; the bytes, not a name, are the key)."""
    parsed = parse_seal(seal)
    return parsed.maker_certificate.public_key.verify(parsed.signed_bytes, parsed.signature_value)


def _assemble_signature(
    *,
    seal: bytes,
    signer: Signer,
    signer_certificate: Certificate,
    data_hash: bytes,
    property_info: str,
    signing_time: datetime,
    ext_datas: Sequence[ExtData] | None = None,
) -> bytes:
    """Encode and sign a v4 SES_Signature without any policy check (``sign_seal`` does those).

    The DER is assembled from its parts — the seal as given, the pre-encoded version and algorithm, the extension
    data (if any) encoded by asn1crypto under its ``[0] EXPLICIT`` tag — the bytes asn1crypto writes for the whole
    structure (``tests/seal/test_build.py`` compares them), without building its objects for every signature
    (sealing at bulk-import rates)."""
    extensions = _ext_datas(ext_datas)
    tbs_der = der.encode(
        der.SEQUENCE,
        _VERSION_DER
        + seal
        + core.GeneralizedTime(_utc_seconds(signing_time, "signing_time")).dump()
        + der.encode(der.BIT_STRING, b"\0" + data_hash)
        + der.encode(der.IA5_STRING, _ia5(property_info, "property_info").encode("ascii"))
        + (b"" if extensions is None else der.encode(der.CONTEXT_0, extensions.dump())),
    )
    return der.encode(
        der.SEQUENCE,
        tbs_der
        + der.encode(der.OCTET_STRING, signer_certificate.der)
        + _SM2_WITH_SM3_DER
        + der.encode(der.BIT_STRING, b"\0" + signer.sign(tbs_der)),
    )


def attach_timestamp(signature: bytes, token: bytes) -> bytes:
    """Add a time-stamp token (RFC 3161 / GB/T 20520 TimeStampToken, DER) over the signature value to a v4
    SES_Signature (GB/T 38540 §7.2 b) 5). TBS_Sign, certificate and signature are kept byte for byte.

    Obtaining the token is the caller's business: the imprint must be a digest of :attr:`signature_value`
    (the signature octets inside the BIT STRING).
    """
    parsed = parse_seal_signature(signature)
    if parsed.layout is SealLayout.GMT0031:
        raise ValueError("GM/T 0031 seal signatures have no timeStamp field")
    if parsed.timestamp is not None:
        raise ValueError("the seal signature already carries a timestamp")
    spec = asn1.SESSignatureV5 if parsed.layout is SealLayout.V5 else asn1.SESSignature
    original = spec.load(parsed.der)
    stamped = spec(
        {
            "toSign": original["toSign"],
            "cert": original["cert"],
            "signatureAlgID": original["signatureAlgID"],
            "signature": original["signature"],
            "timeStamp": core.OctetBitString(token),
        }
    )
    return stamped.dump()


def stamp_signature(signature: bytes, stamp: Callable[[bytes], bytes]) -> bytes:
    """A v4 SES_Signature just made by :func:`sign_seal`, with the time-stamp token ``stamp`` returns for its
    signature value (a :class:`certstore.tsa.TimeStamper`'s ``stamp``: a token whose imprint is SM3 of the
    octets inside the signature BIT STRING) — GB/T 38540 §7.2 b) 5). What :func:`attach_timestamp` does for
    any seal signature, without parsing the seal again: the other fields are re-emitted byte for byte."""
    fields = _signature_fields(signature)
    if fields is not None:  # the four fields sign_seal writes: the token appended as [0] EXPLICIT BIT STRING
        token = stamp(fields[1])
        stamped = der.encode(der.CONTEXT_0, der.encode(der.BIT_STRING, b"\0" + token))
        return der.encode(der.SEQUENCE, fields[0] + stamped)
    parsed = parse_seal_signature(signature)  # any other signature: the general path
    if parsed.timestamp is not None:  # refused before a token is asked for
        raise ValueError("the seal signature already carries a timestamp")
    return attach_timestamp(signature, stamp(parsed.signature_value))


def _signature_fields(signature: bytes) -> tuple[bytes, bytes] | None:
    """(the contents of the outer SEQUENCE, the signature octets) of a SES_Signature of exactly the four fields
    :func:`sign_seal` writes — TBS_Sign, OCTET STRING, OID, whole-octet BIT STRING — in canonical DER; None for
    anything else (asn1crypto then reads it)."""
    outer = der.tlv(signature, 0, len(signature))
    if outer is None or outer[0] != der.SEQUENCE or outer[2] != len(signature):
        return None
    fields = der.children(signature, outer[1], outer[2], 4)
    if fields is None or [f[0] for f in fields] != _V4_FIELD_TAGS:
        return None
    octets = der.bit_string_octets(signature, fields[3][2], fields[3][3])
    return None if octets is None else (signature[outer[1] : outer[2]], octets)


_VERSION_DER = core.Integer(SEAL_VERSION).dump()
_SM2_WITH_SM3_DER = core.ObjectIdentifier(oids.SM2_WITH_SM3).dump()
_V4_FIELD_TAGS = [der.SEQUENCE, der.OCTET_STRING, der.OID, der.BIT_STRING]
