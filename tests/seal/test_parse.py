"""Parsing: both layouts, version detection, exact signed byte slices, tolerated deviations, precise
errors."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from asn1crypto import cms, core
from asn1crypto.x509 import Time

from certstore.crypto import oids
from certstore.crypto.sm3 import sm3
from certstore.seal import SealFormatError, SealLayout, parse_seal, parse_seal_signature
from certstore.seal import asn1 as ses
from tests.seal.seal_builders import (
    DATA,
    FIXTURES,
    NOW,
    PROPERTY_INFO,
    AnyList,
    Hierarchy,
    build_v1_seal,
    build_v1_signature,
    element_at,
    replace_at,
    tiny_picture,
)

VECTORS = Path(__file__).resolve().parent / "vectors"
USER_V4 = FIXTURES / "esl" / "ofdrw-gm__UserV4.esl"
USER_V1 = FIXTURES / "esl" / "ofdrw-gm__UserV1.esl"


def test_built_seal_fields(pki: Hierarchy, seal_der: bytes) -> None:
    seal = parse_seal(seal_der)
    assert seal.layout is SealLayout.GBT38540
    assert (seal.version, seal.vendor_id, seal.es_id, seal.seal_type) == (4, "CERTSTORE", "41010000000001", 1)
    assert seal.name == "郑州市测试局电子证照专用章"
    assert seal.cert_list_type == 1
    assert seal.signer_certificates == (pki.signer.certificate.der, pki.expired_signer.certificate.der)
    assert seal.valid_start == NOW - timedelta(days=30)
    assert seal.valid_end == NOW + timedelta(days=300)
    assert seal.maker_certificate == pki.maker.certificate
    assert seal.signature_algorithm == oids.SM2_WITH_SM3
    assert seal.der == seal_der
    assert seal.warnings == ()
    # What the maker signed is DER(SES_SealInfo), byte for byte the first element of the seal.
    info = ses.SESSeal.load(seal_der)["eSealInfo"]
    assert seal.signed_bytes == seal_der[4 : 4 + len(info.dump())]


def test_describe_is_json(pki: Hierarchy, seal_der: bytes) -> None:
    described = parse_seal(seal_der).describe()
    json.dumps(described, ensure_ascii=False)
    assert described["id"] == "41010000000001"
    assert described["version"] == 4
    assert described["vendor"] == "CERTSTORE"
    assert described["maker"] == pki.maker.certificate.subject
    assert described["signers"] == [pki.signer.certificate.subject, pki.expired_signer.certificate.subject]
    assert described["picture"] == {
        "type": "PNG",
        "width_mm": 40,
        "height_mm": 40,
        "bytes": len(tiny_picture().data),
    }
    assert described["valid_end"] == (NOW + timedelta(days=300)).isoformat()


def test_built_signature_fields(pki: Hierarchy, seal_der: bytes, signature_der: bytes) -> None:
    sig = parse_seal_signature(signature_der)
    assert sig.layout is SealLayout.GBT38540
    assert sig.version == 4
    assert sig.seal.der == seal_der  # the seal is embedded byte for byte
    assert sig.signing_time == NOW
    assert sig.data_hash == sm3(DATA)
    assert sig.property_info == PROPERTY_INFO
    assert sig.signer_certificate == pki.signer.certificate
    assert sig.timestamp is None
    tbs = ses.SESSignature.load(signature_der)["toSign"].dump()
    assert sig.signed_bytes == tbs
    assert signature_der.startswith(b"\x30\x82") and signature_der[4 : 4 + len(tbs)] == tbs


def test_third_party_v4_seal_fields() -> None:
    data = USER_V4.read_bytes()
    seal = parse_seal(data)
    assert seal.layout is SealLayout.GBT38540
    assert (seal.version, seal.vendor_id, seal.seal_type, seal.cert_list_type) == (4, "OFDR&WTest", 3, 1)
    assert seal.name == "OFD R&W 测试用印章"
    assert seal.created == datetime(2020, 4, 22, 2, 9, tzinfo=UTC)
    assert seal.valid_end == datetime(2022, 4, 22, 2, 9, tzinfo=UTC)
    assert (seal.picture.type, seal.picture.width_mm, seal.picture.height_mm) == ("PNG", 40, 40)
    assert seal.picture.data.startswith(b"\x89PNG")
    # openssl asn1parse: SES_SealInfo at offset 4, header 4 bytes, 16389 bytes of contents
    assert seal.signed_bytes == data[4 : 4 + 4 + 16389]


def test_third_party_v1_seal_signed_range() -> None:
    data = USER_V1.read_bytes()
    seal = parse_seal(data)
    assert seal.layout is SealLayout.GMT0031
    assert seal.version == 1
    assert seal.created == datetime(2020, 4, 22, 2, 18, 7, tzinfo=UTC)  # UTCTime
    assert len(seal.signer_certificates) == 1
    # signInfo (offset 16385, header 4) = cert, signatureAlgorithm, signData: the signed range is
    # SEQUENCE { SES_SealInfo (offset 4 … 16385), cert, signatureAlgorithm } with the received encodings.
    info = data[4:16385]
    cert_and_algorithm = data[16389:16929]
    assert seal.signed_bytes[4:] == info + cert_and_algorithm
    assert core.Sequence.load(seal.signed_bytes).contents == info + cert_and_algorithm


def test_non_der_encoding_is_kept_byte_for_byte() -> None:
    """The tax seal encodes ExtData critical FALSE explicitly (DER omits DEFAULT values): re-encoding would
    change the signed bytes, the received slice does not."""
    import zipfile

    with zipfile.ZipFile(FIXTURES / "ofd" / "ofdrw-sign__v4signed.ofd") as package:
        data = package.read("Doc_0/Signs/Sign_0/SignedValue.dat")
    sig = parse_seal_signature(data)
    assert sig.seal.ext_datas[0].oid == "1.2.156.10197.6.7.2.2.1"
    assert sig.seal.ext_datas[0].value == b"2.1"
    assert sig.seal.signed_bytes in data
    reencoded = ses.SESSealInfo.load(sig.seal.signed_bytes)
    assert reencoded.dump(force=True) != sig.seal.signed_bytes
    assert sig.signed_bytes in data


def test_trailing_bytes_are_tolerated_with_a_warning(seal_der: bytes, signature_der: bytes) -> None:
    seal = parse_seal(seal_der + b"\x00\x00")
    assert seal.der == seal_der
    assert seal.warnings == ("2 byte(s) after the DER SESeal ignored",)
    sig = parse_seal_signature(signature_der + b"\r\n\x00")
    assert sig.der == signature_der
    assert sig.warnings == ("3 byte(s) after the DER SES_Signature ignored",)


def test_extra_elements_are_tolerated_with_a_warning(seal_der: bytes) -> None:
    seal = parse_seal(replace_at(seal_der, [0, 3], _with_extra(element_at(seal_der, [0, 3]))))
    assert seal.warnings == (
        "SESeal.eSealInfo.picture: 1 unexpected element(s) after the last field ignored",
    )


def test_gmt0031_signature_is_detected_by_structure(pki: Hierarchy) -> None:
    seal = build_v1_seal(
        pki.maker, [pki.signer.certificate], version=2, created=NOW, valid_end=NOW + timedelta(1)
    )
    time_info = ses.TimeInfoV1(name="bit_string", value=b"2025-06-01 16:00:00")
    sig = parse_seal_signature(build_v1_signature(seal, pki.signer, DATA, time_info))
    assert sig.layout is SealLayout.GMT0031
    assert sig.seal.layout is SealLayout.GMT0031
    assert sig.seal.version == 2
    assert sig.signing_time == NOW  # 16:00 China Standard Time
    assert sig.data_hash == sm3(DATA)
    assert sig.signer_certificate == pki.signer.certificate
    assert any("China Standard Time" in w for w in sig.warnings)


def _time_info(kind: str, value: str) -> ses.TimeInfoV1:
    if kind in ("bit_string", "octet_string"):
        return ses.TimeInfoV1(name=kind, value=value.encode("ascii"))
    spec = core.UTCTime if kind == "utc_time" else core.GeneralizedTime
    return ses.TimeInfoV1(name=kind, value=spec(value))


@pytest.mark.parametrize(
    "vector",
    json.loads((VECTORS / "gmt0031_time_info.json").read_text(encoding="utf-8")),
    ids=lambda v: v["id"],
)
def test_gmt0031_time_info_forms(pki: Hierarchy, vector: dict[str, str]) -> None:
    seal = build_v1_seal(pki.maker, [pki.signer.certificate], created=NOW, valid_end=NOW + timedelta(1))
    der = build_v1_signature(seal, pki.signer, DATA, _time_info(vector["kind"], vector["value"]))
    sig = parse_seal_signature(der)
    assert sig.signing_time == datetime.fromisoformat(vector["expected"])


def test_gmt0031_cert_list_with_non_certificates(pki: Hierarchy) -> None:
    seal_der = build_v1_seal(
        pki.maker,
        [pki.signer.certificate],
        created=NOW,
        valid_end=NOW + timedelta(1),
        extra_entries=[core.IA5String("1")],
    )
    seal = parse_seal(seal_der)
    assert seal.signer_certificates == (pki.signer.certificate.der,)
    assert seal.warnings == ("SESeal.esealInfo.property.certList[1] is IA5String '1', not a certificate",)


def test_gmt0031_generalized_time_dates_are_accepted(pki: Hierarchy) -> None:
    seal = ses.SESSealV1.load(build_v1_seal(pki.maker, [pki.signer.certificate], created=NOW, valid_end=NOW))
    info = seal["esealInfo"]
    info["property"]["validEnd"] = Time(name="general_time", value=NOW)
    reassembled = ses.SESSealV1({"esealInfo": info, "signInfo": seal["signInfo"]}).dump()
    parsed = parse_seal(reassembled)
    assert parsed.valid_end == NOW
    assert any("validEnd is GeneralizedTime" in w for w in parsed.warnings)


# Element paths inside a v4 seal: SESeal[0] = eSealInfo → [0] header → [0] ID; eSealInfo[1] = esID;
# eSealInfo[2] = property → [2] certListType, [6] validEnd; SESeal[1] = cert, [3] = signedValue.
MALFORMED: list[tuple[str, Callable[[bytes], bytes], str]] = [
    ("empty", lambda seal: b"", "SESeal: not a complete DER SEQUENCE"),
    ("not a sequence", lambda seal: core.OctetString(seal).dump(), "SESeal: not a complete DER SEQUENCE"),
    ("three elements", lambda seal: _drop_last(seal), "SESeal: 3 elements"),
    ("truncated", lambda seal: seal[:-10], "SESeal"),
    ("header ID", lambda seal: replace_at(seal, [0, 0, 0], core.IA5String("EX").dump()), "header.ID: 'EX'"),
    (
        "certListType",
        lambda seal: replace_at(seal, [0, 2, 2], core.Integer(3).dump()),
        "SESeal.eSealInfo.property.certListType: 3, expected 1 (certificates) or 2 (digests)",
    ),
    (
        "esID tag",
        lambda seal: replace_at(seal, [0, 1], core.UTF8String("41010000000001").dump()),
        "SESeal.eSealInfo.esID: expected IA5String, found UTF8String",
    ),
    (
        "validEnd as UTCTime",
        lambda seal: replace_at(seal, [0, 2, 6], core.UTCTime(NOW).dump()),
        "SESeal.eSealInfo.property.validEnd: expected GeneralizedTime, found UTCTime",
    ),
    (
        "bad date text",
        lambda seal: replace_at(seal, [0, 2, 6], b"\x18\x0f2025-13-01T00:0Z"),
        "SESeal.eSealInfo.property.validEnd: expected GeneralizedTime",
    ),
    (
        "unused bits",
        lambda seal: replace_at(seal, [3], b"\x03\x03\x01\xaa\xbb"),
        "SESeal.signedValue: BIT STRING has 1 unused bits, expected 0",
    ),
    (
        "bad maker certificate",
        lambda seal: replace_at(seal, [1], core.OctetString(b"\x30\x03\x02\x01\x01").dump()),
        "SESeal.cert: malformed certificate",
    ),
]


def _drop_last(seal: bytes) -> bytes:
    items = AnyList.load(seal)
    del items[3]
    return items.dump()


def _with_extra(sequence: bytes) -> bytes:
    items = AnyList.load(sequence)
    items.append(core.Any.load(core.Integer(7).dump()))
    return items.dump()


@pytest.mark.parametrize(("case", "mutate", "message"), MALFORMED, ids=[c[0] for c in MALFORMED])
def test_malformed_seals_name_the_field(
    seal_der: bytes, case: str, mutate: Callable[[bytes], bytes], message: str
) -> None:
    with pytest.raises(SealFormatError) as raised:
        parse_seal(mutate(seal_der))
    assert message in str(raised.value)


def test_malformed_signature_names_the_field(signature_der: bytes) -> None:
    damaged = replace_at(signature_der, [0, 3], b"\x03\x03\x03\xaa\xb8")  # toSign.dataHash
    with pytest.raises(
        SealFormatError, match=r"^SES_Signature\.toSign\.dataHash: BIT STRING has 3 unused bits"
    ):
        parse_seal_signature(damaged)
    nested = replace_at(signature_der, [0, 1, 0, 2, 1], core.PrintableString("ab").dump())
    with pytest.raises(
        SealFormatError, match=r"^SES_Signature\.toSign\.eseal\.eSealInfo\.property\.name: expected"
    ):
        parse_seal_signature(nested)


def test_version_mismatch_between_tbs_and_seal(pki: Hierarchy, signature_der: bytes) -> None:
    parsed = ses.SESSignature.load(signature_der)
    tbs = ses.TBSSign.load(parsed["toSign"].dump())
    tbs["version"] = 3
    damaged = ses.SESSignature(
        {
            "toSign": tbs,
            "cert": parsed["cert"],
            "signatureAlgID": parsed["signatureAlgID"],
            "signature": parsed["signature"],
        }
    ).dump()
    with pytest.raises(SealFormatError, match=r"SES_Signature\.toSign\.version: 3, but the seal's"):
        parse_seal_signature(damaged)


def test_gbt35275_content_info_is_not_a_seal_signature() -> None:
    content_info = cms.ContentInfo(
        {"content_type": "1.2.156.10197.6.1.4.2.2", "content": core.OctetString(b"x")}
    )
    with pytest.raises(SealFormatError, match=r"ContentInfo, not a seal signature"):
        parse_seal_signature(content_info.dump())
