"""Making and applying seals: what is written, and the refusals (拒绝签章) of sign_seal."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from asn1crypto import core

from certstore.crypto import oids
from certstore.crypto.sm3 import sm3
from certstore.crypto.x509 import CertificateProfile
from certstore.packaging.seal_picture import render_seal_picture
from certstore.seal import (
    ExtData,
    SigningRefusedError,
    build,
    make_seal,
    parse_seal,
    parse_seal_signature,
    sign_seal,
)
from certstore.seal import asn1 as ses
from tests.seal.seal_builders import (
    DATA,
    NOW,
    PROPERTY_INFO,
    Hierarchy,
    build_v1_seal,
    element_at,
    make_party,
    replace_at,
    tiny_picture,
)


def _seal_kwargs(pki: Hierarchy, **changes: Any) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "maker": pki.maker.signer,
        "maker_certificate": pki.maker.certificate,
        "es_id": "41010000000002",
        "name": "测试章",
        "seal_type": 2,
        "signer_certificates": [pki.signer.certificate],
        "picture": tiny_picture(),
        "valid_start": NOW - timedelta(days=1),
        "valid_end": NOW + timedelta(days=1),
        "created": NOW - timedelta(days=1),
    }
    kwargs.update(changes)
    return kwargs


def test_make_seal_writes_gbt38540_v4(pki: Hierarchy) -> None:
    der = make_seal(**_seal_kwargs(pki, vendor_id="ZZ-BIGDATA"))
    seal = ses.SESSeal.load(der, strict=True)
    info = seal["eSealInfo"]
    assert info["header"].native == {"ID": "ES", "version": 4, "Vid": "ZZ-BIGDATA"}
    prop = info["property"]
    assert prop["certListType"].native == 1
    assert [c.native for c in prop["certList"]] == [pki.signer.certificate.der]
    assert prop["validEnd"].dump()[:2] == b"\x18\x0f"  # GeneralizedTime, YYYYMMDDHHMMSSZ
    assert isinstance(info["extDatas"].native, type(None))
    assert seal["signAlgID"].dotted == oids.SM2_WITH_SM3
    assert pki.maker.certificate.public_key.verify(info.dump(), seal["signedValue"].native)
    assert der == seal.dump(force=True)  # canonical DER


MAKE_ERRORS: list[tuple[str, dict[str, Any], str]] = [
    ("no signers", {"signer_certificates": []}, "at least one signer"),
    ("window reversed", {"valid_end": NOW - timedelta(days=2)}, "must be later than valid_start"),
    ("naive time", {"valid_start": NOW.replace(tzinfo=None)}, "timezone-aware"),
    ("non-ASCII esID", {"es_id": "印章1"}, "es_id must be non-empty printable ASCII"),
    ("maker cert not valid", {"created": NOW + timedelta(days=400)}, "is not valid at"),
    ("empty name", {"name": ""}, "name must not be empty"),
]


@pytest.mark.parametrize(("case", "changes", "message"), MAKE_ERRORS, ids=[c[0] for c in MAKE_ERRORS])
def test_make_seal_rejects_bad_input(
    pki: Hierarchy, case: str, changes: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        make_seal(**_seal_kwargs(pki, **changes))


def test_make_seal_rejects_a_maker_key_mismatch(pki: Hierarchy) -> None:
    with pytest.raises(ValueError, match="does not hold the key"):
        make_seal(**_seal_kwargs(pki, maker=pki.signer.signer))


def test_sign_seal_writes_gbt38540_v4(pki: Hierarchy, seal_der: bytes, signature_der: bytes) -> None:
    sig = ses.SESSignature.load(signature_der, strict=True)
    tbs = sig["toSign"]
    assert tbs["version"].native == 4
    assert tbs["eseal"].dump() == seal_der
    assert tbs["timeInfo"].dump() == b"\x18\x0f20250601080000Z"
    assert tbs["dataHash"].dump() == b"\x03\x21\x00" + sm3(DATA)
    assert tbs["propertyInfo"].native == PROPERTY_INFO
    assert sig["cert"].native == pki.signer.certificate.der
    assert sig["signatureAlgID"].dotted == oids.SM2_WITH_SM3
    assert pki.signer.certificate.public_key.verify(tbs.dump(), sig["signature"].native)
    assert signature_der == sig.dump(force=True)


def test_sign_seal_with_extension_data(pki: Hierarchy, seal_der: bytes) -> None:
    ext = (ExtData("1.2.156.10197.6.99.1", False, b"\x0c\x02ab"), ExtData("1.2.156.10197.6.99.2", True, b"x"))
    der = sign_seal(
        seal=seal_der,
        signer=pki.signer.signer,
        signer_certificate=pki.signer.certificate,
        data=DATA,
        property_info=PROPERTY_INFO,
        signing_time=NOW,
        ext_datas=ext,
    )
    assert element_at(der, [0, 5])[:1] == b"\xa0"  # [0] EXPLICIT extDatas
    assert parse_seal_signature(der).ext_datas == ext


REFUSALS: list[tuple[str, Callable[[Hierarchy], dict[str, Any]], str]] = [
    (
        "signer not listed",
        lambda pki: {"signer": pki.other_signer.signer, "signer_certificate": pki.other_signer.certificate},
        "is not listed in seal",
    ),
    (
        "before seal validity",
        lambda pki: {"signing_time": NOW - timedelta(days=31)},
        "outside the validity of seal",
    ),
    (
        "after seal validity",
        lambda pki: {"signing_time": NOW + timedelta(days=301)},
        "outside the validity of seal",
    ),
    (
        "signer certificate expired",
        lambda pki: {
            "signer": pki.expired_signer.signer,
            "signer_certificate": pki.expired_signer.certificate,
        },
        "is not valid at 2025-06-01",
    ),
    ("wrong key", lambda pki: {"signer": pki.other_signer.signer}, "does not hold the key"),
]


@pytest.mark.parametrize(("case", "changes", "message"), REFUSALS, ids=[r[0] for r in REFUSALS])
def test_sign_seal_refusals(
    pki: Hierarchy, seal_der: bytes, case: str, changes: Callable[[Hierarchy], dict[str, Any]], message: str
) -> None:
    kwargs: dict[str, Any] = {
        "seal": seal_der,
        "signer": pki.signer.signer,
        "signer_certificate": pki.signer.certificate,
        "data": DATA,
        "property_info": PROPERTY_INFO,
        "signing_time": NOW,
    }
    kwargs.update(changes(pki))
    with pytest.raises(SigningRefusedError, match=message):
        sign_seal(**kwargs)


def test_sign_seal_refuses_a_damaged_seal(pki: Hierarchy, seal_der: bytes) -> None:
    damaged = replace_at(seal_der, [0, 1], b"\x16\x0e41010000000009")  # esID changed after the maker signed
    with pytest.raises(SigningRefusedError, match="maker signature does not verify"):
        sign_seal(
            seal=damaged,
            signer=pki.signer.signer,
            signer_certificate=pki.signer.certificate,
            data=DATA,
            property_info=PROPERTY_INFO,
            signing_time=NOW,
        )


def test_sign_seal_refuses_a_gmt0031_seal(pki: Hierarchy) -> None:
    v1 = build_v1_seal(pki.maker, [pki.signer.certificate], created=NOW, valid_end=NOW + timedelta(days=1))
    with pytest.raises(SigningRefusedError, match="only GB/T 38540 seals"):
        sign_seal(
            seal=v1,
            signer=pki.signer.signer,
            signer_certificate=pki.signer.certificate,
            data=DATA,
            property_info=PROPERTY_INFO,
            signing_time=NOW,
        )


def test_created_and_signing_time_default_to_now(pki: Hierarchy) -> None:
    now = datetime.now(UTC)
    window = {"not_before": now - timedelta(days=1), "not_after": now + timedelta(days=1)}
    maker = make_party("当前制章者", CertificateProfile.SEAL_MAKER, pki.root, **window)
    signer = make_party("当前签章者", CertificateProfile.SIGNER, pki.root, **window)
    kwargs = _seal_kwargs(
        pki,
        maker=maker.signer,
        maker_certificate=maker.certificate,
        signer_certificates=[signer.certificate],
        valid_start=now - timedelta(hours=1),
        valid_end=now + timedelta(hours=1),
    )
    del kwargs["created"]
    seal = make_seal(**kwargs)
    der = sign_seal(
        seal=seal, signer=signer.signer, signer_certificate=signer.certificate, data=DATA, property_info="x"
    )
    after = datetime.now(UTC)
    assert now.replace(microsecond=0) <= parse_seal(seal).created <= after
    assert now.replace(microsecond=0) <= parse_seal_signature(der).signing_time <= after


def test_rendered_picture_goes_into_a_seal(pki: Hierarchy) -> None:
    """A picture drawn by packaging.seal_picture goes into a seal and comes out of it unchanged."""
    rendered = render_seal_picture("郑州市测试局")
    seal = make_seal(
        maker=pki.maker.signer,
        maker_certificate=pki.maker.certificate,
        es_id="41010000000004",
        name="郑州市测试局",
        seal_type=1,
        signer_certificates=[pki.signer.certificate],
        picture=rendered,
        valid_start=NOW,
        valid_end=NOW + timedelta(days=1),
        created=NOW,
    )
    assert parse_seal(seal).picture == rendered


class _FixedSigner:
    """A signer whose signature is a function of the message (SM2's are random), for comparing encodings."""

    def sign(self, message: bytes) -> bytes:
        return sm3(message) + sm3(message[::-1])


EXTENSIONS = (
    ExtData("1.2.156.10197.6.99.1", False, b"\x0c\x02ab"),
    ExtData("1.2.156.10197.6.99.2", True, b"x"),
)


def _asn1crypto_signature(
    seal: bytes,
    certificate: bytes,
    data_hash: bytes,
    info: str,
    when: datetime,
    ext: tuple[ExtData, ...] = (),
) -> bytes:
    """The v4 SES_Signature as asn1crypto writes it (the builder's encoding before its assembly from parts)."""
    fields: dict[str, object] = {
        "version": 4,
        "eseal": ses.SESSeal.load(seal),
        "timeInfo": when,
        "dataHash": core.OctetBitString(data_hash),
        "propertyInfo": info,
    }
    if ext:
        fields["extDatas"] = ses.ExtensionDatas(
            [
                ses.ExtData({"extnID": e.oid, "critical": True, "extnValue": e.value})
                if e.critical
                else ses.ExtData({"extnID": e.oid, "extnValue": e.value})
                for e in ext
            ]
        )
    tbs = ses.TBSSign(fields).dump()
    signature = {
        "toSign": ses.TBSSign.load(tbs),
        "cert": certificate,
        "signatureAlgID": oids.SM2_WITH_SM3,
        "signature": _FixedSigner().sign(tbs),
    }
    return ses.SESSignature(signature).dump()


@pytest.mark.parametrize(
    ("info", "ext"),
    [
        ("/Doc_0/Signs/Sign_0/Signature.xml", ()),
        ("x", ()),
        ("p" * 300, ()),
        ("/Sign_1/Signature.xml", EXTENSIONS),
    ],
)
def test_assembled_signature_is_what_asn1crypto_writes(
    pki: Hierarchy, seal_der: bytes, info: str, ext: tuple[ExtData, ...]
) -> None:
    data_hash = sm3(info.encode())
    made = build._assemble_signature(
        seal=seal_der,
        signer=_FixedSigner(),  # type: ignore[arg-type]
        signer_certificate=pki.signer.certificate,
        data_hash=data_hash,
        property_info=info,
        signing_time=NOW.replace(microsecond=123456),
        ext_datas=ext,
    )
    assert made == _asn1crypto_signature(seal_der, pki.signer.certificate.der, data_hash, info, NOW, ext)


@pytest.mark.parametrize("path", ["fields", "general"])
def test_stamped_signature_is_what_attach_timestamp_writes(
    signature_der: bytes, path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both ways of stamping — the four fields sign_seal writes, read by the DER walker, and the general path any
    other signature takes — give attach_timestamp's bytes; a stamped signature is refused before a token is
    asked for."""
    if path == "general":
        monkeypatch.setattr(build, "_signature_fields", lambda _signature: None)
    token = bytes(range(256)) * 3
    seen: list[bytes] = []

    def stamp(octets: bytes) -> bytes:
        seen.append(octets)
        return token

    stamped = build.stamp_signature(signature_der, stamp)
    assert stamped == build.attach_timestamp(signature_der, token)
    assert seen == [parse_seal_signature(signature_der).signature_value]
    assert parse_seal_signature(stamped).timestamp is not None
    with pytest.raises(ValueError, match="already carries a timestamp"):
        build.stamp_signature(stamped, stamp)
    assert len(seen) == 1
