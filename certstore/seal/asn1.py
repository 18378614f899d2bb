"""ASN.1 modules of the secure electronic seal (安全电子签章) as asn1crypto specs.

Two layouts exist:

* **GB/T 38540-2020** ("v4", ``SES_Header.version`` = 4): ``SESeal`` has four fields, the maker's signature
  covers ``SES_SealInfo`` only; ``SES_Signature`` carries the signer certificate *outside* ``TBS_Sign``.
* **GM/T 0031-2014** ("v1"; version 1, 2, 3, 11 … in the wild): ``SESeal`` = ``{SES_SealInfo, SES_SignInfo}``,
  ``SES_Signature`` = ``{TBS_Sign, signature}`` with the signer certificate *inside* ``TBS_Sign``.

Class names follow the standards' structure names (``SES_ESPictrueInfo`` → :class:`SESPictrueInfo`,
keeping the standard's spelling), suffixed ``V1`` where GM/T 0031 differs. Field names are the standards' own
field names (``esID``, ``certListType``, ``validEnd`` …), so error messages and code read like the standard's
tables. Parsed values keep the bytes they were loaded from: ``value.dump()`` of an unmodified parsed value
returns exactly the received encoding, which is what signatures are verified over.

Layout choices where the texts leave room, each following real files:

* ``SES_CertList`` is a CHOICE of two ``SEQUENCE OF`` types that share the universal SEQUENCE tag, so it
  cannot be decoded by tag; the alternative is chosen by the preceding ``certListType`` (1 → certificates,
  2 → digests), as GB/T 38540 §6.1.3 intends.
* GM/T 0031 ``certList`` entries are read as any ASN.1 value: ofdrw writes OCTET STRING certificates, dms360
  writes IA5String identifiers.
* GM/T 0031 dates are UTCTime per the text, GeneralizedTime with some vendors: both are accepted.
* GM/T 0031 ``timeInfo`` and ``dataHash`` are BIT STRING per the text; OCTET STRING and (for timeInfo)
  UTCTime / GeneralizedTime occur and are accepted.
* ofdrw's "v5" layout (its "GM/T 0031-2025", unconfirmed elsewhere) is the v4 layout with header version 5
  and an optional ``[0]`` time stamp on the seal; it is read so that such seals are verified, not rejected.
* The ``[0]`` tags of v4 ``TBS_Sign.extDatas`` and ``SES_Signature.timeStamp`` are EXPLICIT (ofdrw encodes
  and decodes them so).
"""

# asn1crypto specs are declared as mutable class attributes (_fields, _alternatives, _spec_callbacks).
# ruff: noqa: RUF012

from __future__ import annotations

from asn1crypto import core
from asn1crypto.x509 import Time

__all__ = [
    "CERT_LIST_CERTIFICATES",
    "CERT_LIST_DIGESTS",
    "CertDigestList",
    "CertDigestObj",
    "CertInfoList",
    "ExtData",
    "ExtensionDatas",
    "OctetOrBitString",
    "SESHeader",
    "SESPictrueInfo",
    "SESPropertyInfo",
    "SESPropertyInfoV1",
    "SESSeal",
    "SESSealInfo",
    "SESSealInfoV1",
    "SESSealV1",
    "SESSealV1SignedRange",
    "SESSealV5",
    "SESSignInfoV1",
    "SESSignature",
    "SESSignatureV1",
    "SESSignatureV5",
    "TBSSign",
    "TBSSignV1",
    "TBSSignV5",
    "TimeInfoV1",
]

#: ``certListType`` values (GB/T 38540 §6.1.3).
CERT_LIST_CERTIFICATES = 1
CERT_LIST_DIGESTS = 2


class SESHeader(core.Sequence):
    """SES_Header ::= SEQUENCE { ID IA5String ("ES"), version INTEGER, Vid IA5String }"""

    _fields = [
        ("ID", core.IA5String),
        ("version", core.Integer),
        ("Vid", core.IA5String),
    ]


class ExtData(core.Sequence):
    """ExtData ::= SEQUENCE { extnID OID, critical BOOLEAN DEFAULT FALSE, extnValue OCTET STRING }"""

    _fields = [
        ("extnID", core.ObjectIdentifier),
        ("critical", core.Boolean, {"default": False}),
        ("extnValue", core.OctetString),
    ]


class ExtensionDatas(core.SequenceOf):
    """ExtensionDatas ::= SEQUENCE SIZE (0..MAX) OF ExtData"""

    _child_spec = ExtData


class SESPictrueInfo(core.Sequence):
    """SES_ESPictrueInfo ::= SEQUENCE { type IA5String, data OCTET STRING, width INTEGER, height INTEGER }

    ``type`` names the image format (GIF, BMP, JPG, PNG, SVG, ofd …); width and height are millimetres.
    """

    _fields = [
        ("type", core.IA5String),
        ("data", core.OctetString),
        ("width", core.Integer),
        ("height", core.Integer),
    ]


class CertInfoList(core.SequenceOf):
    """CertInfoList ::= SEQUENCE OF Cert; Cert ::= OCTET STRING (DER certificate of a signer, 签章者)"""

    _child_spec = core.OctetString


class CertDigestObj(core.Sequence):
    """CertDigestObj ::= SEQUENCE { type PrintableString, value OCTET STRING }"""

    _fields = [
        ("type", core.PrintableString),
        ("value", core.OctetString),
    ]


class CertDigestList(core.SequenceOf):
    """CertDigestList ::= SEQUENCE OF CertDigestObj"""

    _child_spec = CertDigestObj


class SESPropertyInfo(core.Sequence):
    """SES_ESPropertyInfo (GB/T 38540 §6.1.3)::

    SEQUENCE { type INTEGER, name UTF8String, certListType INTEGER, certList SES_CertList,
               createDate GeneralizedTime, validStart GeneralizedTime, validEnd GeneralizedTime }
    SES_CertList ::= CHOICE { certs CertInfoList, certDigestList CertDigestList }
    """

    def _cert_list_spec(self) -> type[core.Asn1Value]:
        if self["certListType"].native == CERT_LIST_DIGESTS:
            return CertDigestList
        return CertInfoList

    _fields = [
        ("type", core.Integer),
        ("name", core.UTF8String),
        ("certListType", core.Integer),
        ("certList", None),
        ("createDate", core.GeneralizedTime),
        ("validStart", core.GeneralizedTime),
        ("validEnd", core.GeneralizedTime),
    ]
    _spec_callbacks = {"certList": _cert_list_spec}


class SESSealInfo(core.Sequence):
    """SES_SealInfo ::= SEQUENCE { header SES_Header, esID IA5String, property SES_ESPropertyInfo,
    picture SES_ESPictrueInfo, extDatas ExtensionDatas OPTIONAL }  — the part the maker (制章者) signs."""

    _fields = [
        ("header", SESHeader),
        ("esID", core.IA5String),
        ("property", SESPropertyInfo),
        ("picture", SESPictrueInfo),
        ("extDatas", ExtensionDatas, {"optional": True}),
    ]


class SESSeal(core.Sequence):
    """SESeal (GB/T 38540 v4) ::= SEQUENCE { eSealInfo SES_SealInfo, cert OCTET STRING (maker certificate),
    signAlgID OBJECT IDENTIFIER, signedValue BIT STRING }  — the electronic seal, 电子印章."""

    _fields = [
        ("eSealInfo", SESSealInfo),
        ("cert", core.OctetString),
        ("signAlgID", core.ObjectIdentifier),
        ("signedValue", core.OctetBitString),
    ]


class TBSSign(core.Sequence):
    """TBS_Sign (GB/T 38540 §7.1.2) ::= SEQUENCE { version INTEGER, eseal SESeal, timeInfo GeneralizedTime,
    dataHash BIT STRING, propertyInfo IA5String, extDatas [0] EXPLICIT ExtensionDatas OPTIONAL }"""

    _fields = [
        ("version", core.Integer),
        ("eseal", SESSeal),
        ("timeInfo", core.GeneralizedTime),
        ("dataHash", core.OctetBitString),
        ("propertyInfo", core.IA5String),
        ("extDatas", ExtensionDatas, {"explicit": 0, "optional": True}),
    ]


class SESSignature(core.Sequence):
    """SES_Signature (GB/T 38540 §7.1.1) ::= SEQUENCE { toSign TBS_Sign, cert OCTET STRING (signer
    certificate), signatureAlgID OBJECT IDENTIFIER, signature BIT STRING,
    timeStamp [0] EXPLICIT BIT STRING OPTIONAL }  — the seal signature, 电子签章数据."""

    _fields = [
        ("toSign", TBSSign),
        ("cert", core.OctetString),
        ("signatureAlgID", core.ObjectIdentifier),
        ("signature", core.OctetBitString),
        ("timeStamp", core.OctetBitString, {"explicit": 0, "optional": True}),
    ]


class TBSSignOpaqueSeal(core.Sequence):
    """TBS_Sign as the verifier reads it: the eseal kept as raw DER (parsed on its own, once per distinct seal,
    by ``certstore.seal.model``), which also makes the GB/T 38540 and v5 layouts one shape."""

    _fields = [
        ("version", core.Integer),
        ("eseal", core.Any),
        ("timeInfo", core.GeneralizedTime),
        ("dataHash", core.OctetBitString),
        ("propertyInfo", core.IA5String),
        ("extDatas", ExtensionDatas, {"explicit": 0, "optional": True}),
    ]


class SESSignatureOpaqueSeal(core.Sequence):
    """SES_Signature (GB/T 38540, or ofdrw's v5) around :class:`TBSSignOpaqueSeal`."""

    _fields = [
        ("toSign", TBSSignOpaqueSeal),
        ("cert", core.OctetString),
        ("signatureAlgID", core.ObjectIdentifier),
        ("signature", core.OctetBitString),
        ("timeStamp", core.OctetBitString, {"explicit": 0, "optional": True}),
    ]


# --- GM/T 0031-2014 ----------------------------------------------------------------------------------------


class _AnyList(core.SequenceOf):
    _child_spec = core.Any


class SESPropertyInfoV1(core.Sequence):
    """SES_ESPropertyInfo (GM/T 0031 §6.1.1.1) ::= SEQUENCE { type INTEGER, name UTF8String,
    certList SEQUENCE OF cert, createDate UTCTime, validStart UTCTime, validEnd UTCTime }"""

    _fields = [
        ("type", core.Integer),
        ("name", core.UTF8String),
        ("certList", _AnyList),
        ("createDate", Time),
        ("validStart", Time),
        ("validEnd", Time),
    ]


class SESSealInfoV1(core.Sequence):
    """SES_SealInfo (GM/T 0031) — same fields as v4 with the GM/T 0031 property info."""

    _fields = [
        ("header", SESHeader),
        ("esID", core.IA5String),
        ("property", SESPropertyInfoV1),
        ("picture", SESPictrueInfo),
        ("extDatas", ExtensionDatas, {"optional": True}),
    ]


class SESSignInfoV1(core.Sequence):
    """SES_SignInfo ::= SEQUENCE { cert OCTET STRING, signatureAlgorithm OBJECT IDENTIFIER,
    signData BIT STRING }"""

    _fields = [
        ("cert", core.OctetString),
        ("signatureAlgorithm", core.ObjectIdentifier),
        ("signData", core.OctetBitString),
    ]


class SESSealV1(core.Sequence):
    """SESeal (GM/T 0031) ::= SEQUENCE { esealInfo SES_SealInfo, signInfo SES_SignInfo }"""

    _fields = [
        ("esealInfo", SESSealInfoV1),
        ("signInfo", SESSignInfoV1),
    ]


class SESSealV1SignedRange(core.Sequence):
    """What a GM/T 0031 maker signs (§6.1.1.2): SEQUENCE { SES_SealInfo, cert, signatureAlgorithm }.

    The fields are :class:`~asn1crypto.core.Any` so that the received encodings are reused byte for byte.
    """

    _fields = [
        ("esealInfo", core.Any),
        ("cert", core.Any),
        ("signatureAlgorithm", core.Any),
    ]


class TimeInfoV1(core.Choice):
    """GM/T 0031 ``timeInfo``: BIT STRING per the text, holding ASCII time (or a time-stamp token);
    OCTET STRING, UTCTime and GeneralizedTime occur as well."""

    _alternatives = [
        ("bit_string", core.OctetBitString),
        ("octet_string", core.OctetString),
        ("utc_time", core.UTCTime),
        ("generalized_time", core.GeneralizedTime),
    ]


class OctetOrBitString(core.Choice):
    """GM/T 0031 ``dataHash``: BIT STRING per the text, OCTET STRING with some vendors."""

    _alternatives = [
        ("bit_string", core.OctetBitString),
        ("octet_string", core.OctetString),
    ]


class TBSSignV1(core.Sequence):
    """TBS_Sign (GM/T 0031 §6.2.1) ::= SEQUENCE { version INTEGER, eseal SESeal, timeInfo BIT STRING,
    dataHash BIT STRING, propertyInfo IA5String, cert OCTET STRING, signatureAlgorithm OBJECT IDENTIFIER }"""

    _fields = [
        ("version", core.Integer),
        ("eseal", SESSealV1),
        ("timeInfo", TimeInfoV1),
        ("dataHash", OctetOrBitString),
        ("propertyInfo", core.IA5String),
        ("cert", core.OctetString),
        ("signatureAlgorithm", core.ObjectIdentifier),
    ]


class SESSignatureV1(core.Sequence):
    """SES_Signature (GM/T 0031) ::= SEQUENCE { toSign TBS_Sign, signature BIT STRING }"""

    _fields = [
        ("toSign", TBSSignV1),
        ("signature", core.OctetBitString),
    ]


# --- "v5" (ofdrw's "GM/T 0031-2025"; unconfirmed by any other source) ---------------------------


class SESSealV5(core.Sequence):
    """SESeal v5 (ofdrw ``ses.v5``) ::= SEQUENCE { eSealInfo SES_SealInfo (header version 5),
    cert OCTET STRING, signatureAlgID OBJECT IDENTIFIER, signatureValue BIT STRING,
    timeStamp [0] EXPLICIT BIT STRING OPTIONAL }"""

    _fields = [
        ("eSealInfo", SESSealInfo),
        ("cert", core.OctetString),
        ("signatureAlgID", core.ObjectIdentifier),
        ("signatureValue", core.OctetBitString),
        ("timeStamp", core.OctetBitString, {"explicit": 0, "optional": True}),
    ]


class TBSSignV5(core.Sequence):
    """TBS_Sign v5 (ofdrw): the v4 fields around a v5 seal."""

    _fields = [
        ("version", core.Integer),
        ("eseal", SESSealV5),
        ("timeInfo", core.GeneralizedTime),
        ("dataHash", core.OctetBitString),
        ("propertyInfo", core.IA5String),
        ("extDatas", ExtensionDatas, {"explicit": 0, "optional": True}),
    ]


class SESSignatureV5(core.Sequence):
    """SES_Signature v5 (ofdrw): the v4 layout around TBS_Sign v5."""

    _fields = [
        ("toSign", TBSSignV5),
        ("cert", core.OctetString),
        ("signatureAlgID", core.ObjectIdentifier),
        ("signature", core.OctetBitString),
        ("timeStamp", core.OctetBitString, {"explicit": 0, "optional": True}),
    ]
