"""Test-only builders: a certificate hierarchy, and structures the product does not write itself
(GM/T 0031 seals and signatures, certListType 2 seals, RFC 3161 time-stamp tokens), assembled with
asn1crypto."""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from asn1crypto import cms, core, parser, tsp
from asn1crypto.x509 import Time
from PIL import Image

from certstore.crypto import oids
from certstore.crypto.sm3 import sm3
from certstore.crypto.trust import TrustStore
from certstore.crypto.x509 import Certificate, CertificateProfile
from certstore.seal import SealPicture
from certstore.seal import asn1 as ses
from tests.pki import Party, make_party

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "third-party"
OFDRW_ROOT_PEM = FIXTURES / "trust" / "ofdrw-gm__ROOT_cert.pem"


def ofdrw_maker() -> Certificate:
    """The maker certificate of the ofdrw test seals ("Test Certificate", extended key usage clientAuth): not a
    certstore seal-maker certificate, so a verifier trusts it as a maker only when configured to."""
    from certstore.seal import parse_seal

    return parse_seal((FIXTURES / "esl" / "ofdrw-gm__UserV4.esl").read_bytes()).maker_certificate


def ofdrw_trust(*, maker: bool = True) -> TrustStore:
    """The ofdrw test root as the one trust anchor, and (``maker``) the ofdrw maker as a trusted seal maker: the
    configuration under which the third-party fixtures have their documented verdicts."""
    return TrustStore(
        [Certificate.load(OFDRW_ROOT_PEM.read_bytes())], makers=[ofdrw_maker()] if maker else ()
    )


#: The fixed "present" of the generated hierarchy, so the tests never depend on the wall clock.
NOW = datetime(2025, 6, 1, 8, 0, 0, tzinfo=UTC)

#: The signed data of the generated signatures (for OFD it would be Signature.xml) and its propertyInfo.
DATA = b'<?xml version="1.0" encoding="UTF-8"?><ofd:Signature xmlns:ofd="http://www.ofdspec.org/2016"/>'
PROPERTY_INFO = "/Doc_0/Signs/Sign_0/Signature.xml"


@dataclass(frozen=True)
class Hierarchy:
    root: Party
    maker: Party  # 制章者
    signer: Party  # 签章者, listed in the seal
    expired_signer: Party  # listed in the seal, certificate expired before NOW
    other_signer: Party  # same CA, not listed in the seal
    short_maker: Party  # a maker whose certificate expires before NOW
    tsa: Party
    trust: TrustStore


def make_hierarchy(root_cn: str = "测试根 CA") -> Hierarchy:
    """Root CA → maker, signers, TSA. Give another ``root_cn`` for an unrelated PKI (a same-named CA is
    treated as the issuer whose signature fails, not as an unknown one)."""
    start, end = NOW - timedelta(days=400), NOW + timedelta(days=3650)
    root = make_party(root_cn, CertificateProfile.ROOT_CA, None, start, end)

    def leaf(cn: str, profile: CertificateProfile, days_before: int, days_after: int) -> Party:
        return make_party(
            cn, profile, root, NOW - timedelta(days=days_before), NOW + timedelta(days=days_after)
        )

    return Hierarchy(
        root=root,
        maker=leaf("制章者", CertificateProfile.SEAL_MAKER, 200, 365),
        signer=leaf("签章者", CertificateProfile.SIGNER, 200, 365),
        expired_signer=leaf("过期签章者", CertificateProfile.SIGNER, 300, -30),
        other_signer=leaf("其他签章者", CertificateProfile.SIGNER, 200, 365),
        short_maker=leaf("短期制章者", CertificateProfile.SEAL_MAKER, 200, -60),
        tsa=leaf("时间戳服务", CertificateProfile.TSA, 200, 365),
        trust=TrustStore([root.certificate]),
    )


def tiny_picture() -> SealPicture:
    """A 1×1 transparent PNG: keeps seals small where the picture does not matter."""
    out = io.BytesIO()
    Image.new("RGBA", (1, 1), (0, 0, 0, 0)).save(out, format="PNG")
    return SealPicture("PNG", out.getvalue(), 40, 40)


# --- Surgery on encodings ----------------------------------------------------------------------------------


class AnyList(core.SequenceOf):
    _child_spec = core.Any


def replace_at(der: bytes, path: Sequence[int], new: bytes) -> bytes:
    """``der`` with the element at ``path`` (indices into nested SEQUENCEs) replaced by the encoding ``new``;
    enclosing lengths are recomputed, every other element keeps its bytes."""
    items = AnyList.load(der)
    index, *rest = path
    replacement = new if not rest else replace_at(items[index].dump(), rest, new)
    items[index] = core.Any.load(replacement)
    return items.dump()


def element_at(der: bytes, path: Sequence[int]) -> bytes:
    """The encoding of the element at ``path``."""
    for index in path:
        contents = parser.parse(der)[4]
        offset = 0
        for _ in range(index + 1):
            _class, _method, _tag, header, value, trailer = parser.parse(contents[offset:])
            der = header + value + trailer
            offset += len(der)
    return der


# --- GM/T 0031-2014 ----------------------------------------------------------------------------------------


def build_v1_seal(
    maker: Party,
    signers: Sequence[Certificate],
    *,
    version: int = 1,
    created: datetime,
    valid_end: datetime,
    extra_entries: Sequence[core.Asn1Value] = (),
) -> bytes:
    """A GM/T 0031 seal, maker signature over DER(SEQUENCE{SES_SealInfo, cert, signatureAlgorithm})."""
    picture = tiny_picture()
    info = ses.SESSealInfoV1(
        {
            "header": {"ID": "ES", "version": version, "Vid": "TESTV1"},
            "esID": "V1-0001",
            "property": {
                "type": 1,
                "name": "GM/T 0031 测试章",
                "certList": [core.OctetString(c.der) for c in signers] + list(extra_entries),
                "createDate": Time(name="utc_time", value=created),
                "validStart": Time(name="utc_time", value=created),
                "validEnd": Time(name="utc_time", value=valid_end),
            },
            "picture": {"type": "PNG", "data": picture.data, "width": 40, "height": 40},
        }
    )
    info_der = info.dump()
    cert = core.OctetString(maker.certificate.der)
    algorithm = core.ObjectIdentifier(oids.SM2_WITH_SM3)
    signed = ses.SESSealV1SignedRange(
        {
            "esealInfo": core.Any.load(info_der),
            "cert": core.Any.load(cert.dump()),
            "signatureAlgorithm": algorithm,
        }
    ).dump()
    return ses.SESSealV1(
        {
            "esealInfo": ses.SESSealInfoV1.load(info_der),
            "signInfo": {
                "cert": cert,
                "signatureAlgorithm": algorithm,
                "signData": maker.signer.sign(signed),
            },
        }
    ).dump()


def build_v1_signature(
    seal: bytes,
    signer: Party,
    data: bytes,
    time_info: ses.TimeInfoV1,
    *,
    data_hash_as_octets: bool = False,
) -> bytes:
    """A GM/T 0031 SES_Signature; the signer signs DER(TBS_Sign), which includes cert and algorithm."""
    digest = sm3(data)
    tbs = ses.TBSSignV1(
        {
            "version": 1,
            "eseal": ses.SESSealV1.load(seal),
            "timeInfo": time_info,
            "dataHash": ses.OctetOrBitString(
                name="octet_string" if data_hash_as_octets else "bit_string", value=digest
            ),
            "propertyInfo": "/Doc_0/Signs/Sign_0/Signature.xml",
            "cert": signer.certificate.der,
            "signatureAlgorithm": oids.SM2_WITH_SM3,
        }
    )
    tbs_der = tbs.dump()
    return ses.SESSignatureV1(
        {"toSign": ses.TBSSignV1.load(tbs_der), "signature": signer.signer.sign(tbs_der)}
    ).dump()


# --- GB/T 38540 certListType 2 ------------------------------------------------------------------------------


def build_digest_list_seal(
    maker: Party, digests: Sequence[tuple[str, bytes]], *, created: datetime, valid_end: datetime
) -> bytes:
    """A v4 seal that lists signers by certificate digest (certListType 2)."""
    info = ses.SESSealInfo(
        {
            "header": {"ID": "ES", "version": 4, "Vid": "TESTV4"},
            "esID": "DIGEST-0001",
            "property": {
                "type": 1,
                "name": "摘要列表测试章",
                "certListType": ses.CERT_LIST_DIGESTS,
                "certList": ses.CertDigestList([{"type": kind, "value": value} for kind, value in digests]),
                "createDate": created,
                "validStart": created,
                "validEnd": valid_end,
            },
            "picture": {"type": "PNG", "data": tiny_picture().data, "width": 40, "height": 40},
        }
    )
    info_der = info.dump()
    return ses.SESSeal(
        {
            "eSealInfo": ses.SESSealInfo.load(info_der),
            "cert": maker.certificate.der,
            "signAlgID": oids.SM2_WITH_SM3,
            "signedValue": maker.signer.sign(info_der),
        }
    ).dump()


# --- RFC 3161 / GB/T 20520 time-stamp tokens ----------------------------------------------------------------


def make_timestamp_token(
    tsa: Party,
    message: bytes,
    gen_time: datetime,
    *,
    imprint: bytes | None = None,
    imprint_algorithm: str = oids.SM3,
) -> bytes:
    """A TimeStampToken signed with SM2 by ``tsa`` whose imprint is SM3(message) (or ``imprint``, under the hash
    ``imprint_algorithm``, a dotted OID)."""
    tst = tsp.TSTInfo(
        {
            "version": "v1",
            "policy": "1.2.156.10197.6.99",
            "message_imprint": {
                "hash_algorithm": {"algorithm": imprint_algorithm},
                "hashed_message": imprint if imprint is not None else sm3(message),
            },
            "serial_number": 20250601,
            "gen_time": gen_time,
        }
    )
    tst_der = tst.dump()
    attributes = cms.CMSAttributes(
        [
            {"type": "content_type", "values": ["tst_info"]},
            {"type": "message_digest", "values": [sm3(tst_der)]},
        ]
    )
    signer_info = cms.SignerInfo(
        {
            "version": "v1",
            "sid": cms.SignerIdentifier(
                name="issuer_and_serial_number",
                value={"issuer": tsa.certificate.issuer_name, "serial_number": tsa.certificate.serial},
            ),
            "digest_algorithm": {"algorithm": oids.SM3},
            "signed_attrs": attributes,
            "signature_algorithm": {"algorithm": oids.SM2_WITH_SM3},
            "signature": tsa.signer.sign(attributes.dump()),
        }
    )
    signed_data = cms.SignedData(
        {
            "version": "v3",
            "digest_algorithms": [{"algorithm": oids.SM3}],
            "encap_content_info": {"content_type": "tst_info", "content": tsp.TSTInfo.load(tst_der)},
            "certificates": [tsa.certificate.asn1],
            "signer_infos": [signer_info],
        }
    )
    return cms.ContentInfo({"content_type": "signed_data", "content": signed_data}).dump()


# --- Certificates with a malformed extension ---------------------------------------------------------------


def _tlv(tag: int, contents: bytes) -> bytes:
    length = len(contents)
    if length < 0x80:
        return bytes([tag, length]) + contents
    octets = length.to_bytes((length.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(octets)]) + octets + contents


#: authorityKeyIdentifier whose authorityCertIssuer [1] GeneralNames is encoded as a *primitive* ([1] 0x81
#: instead of the constructed 0xA1), as in GM/T 0031 maker certificates seen in the wild.
def primitive_general_names_aki(key_id: bytes) -> bytes:
    directory_name = b"\x30\x00"  # an empty Name, the bytes that would sit inside the GeneralNames
    return _tlv(0x30, _tlv(0x80, key_id) + _tlv(0x81, _tlv(0xA4, directory_name)) + _tlv(0x82, b"\x01"))


def _elements(der: bytes) -> list[bytes]:
    """The encodings of the elements inside the constructed value ``der``."""
    contents = parser.parse(der)[4]
    found, offset = [], 0
    while offset < len(contents):
        _class, _method, _tag, header, value, trailer = parser.parse(contents[offset:])
        found.append(header + value + trailer)
        offset += len(found[-1])
    return found


def with_malformed_extension(
    party: Party,
    issuer: Party,
    *,
    critical: bool = False,
    oid: str = "2.5.29.35",
    value: bytes | None = None,
) -> Party:
    """``party`` with a certificate whose extension ``oid`` (default authorityKeyIdentifier) holds ``value``
    (default :func:`primitive_general_names_aki`) marked ``critical`` — the TBS re-signed by ``issuer``, so the
    certificate signature still verifies. Every other field keeps its bytes."""
    tbs = _elements(element_at(party.certificate.der, [0]))
    index = next(i for i, item in enumerate(tbs) if item[:1] == b"\xa3")  # [3] EXPLICIT Extensions
    extensions = _elements(parser.parse(tbs[index])[4])
    raw = (
        value if value is not None else primitive_general_names_aki(party.certificate.authority_key_id or b"")
    )
    new_extension = _tlv(
        0x30,
        core.ObjectIdentifier(oid).dump()
        + (core.Boolean(True).dump() if critical else b"")
        + core.OctetString(raw).dump(),
    )
    kept = [e for e in extensions if core.ObjectIdentifier.load(_elements(e)[0]).dotted != oid]
    tbs[index] = _tlv(0xA3, _tlv(0x30, b"".join([*kept, new_extension])))
    new_tbs = _tlv(0x30, b"".join(tbs))
    algorithm = element_at(party.certificate.der, [1])
    signature = core.OctetBitString(issuer.signer.sign(new_tbs)).dump()
    der = _tlv(0x30, new_tbs + algorithm + signature)
    return Party(party.signer, Certificate.from_der(der))
