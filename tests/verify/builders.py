"""Test-only OFD packages, assembled by hand (zipfile + literal XML + asn1crypto primitives) so that the verifier
is checked against structures it did not build itself: seal signatures (``Type="Seal"``), raw SM2 and both GB/T
35275 SignedData forms (``Type="Sign"``), and hostile ZIP containers."""

from __future__ import annotations

import base64
import io
import zipfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from asn1crypto import core

from certstore.crypto import oids
from certstore.crypto.sm3 import sm3
from certstore.seal import make_seal, sign_seal
from tests.seal.seal_builders import FIXTURES, NOW, Hierarchy, Party, tiny_picture

OFD_FIXTURES = FIXTURES / "ofd"
ROOT_PEM = FIXTURES / "trust" / "ofdrw-gm__ROOT_cert.pem"
NS = "http://www.ofdspec.org/2016"
DECL = '<?xml version="1.0" encoding="UTF-8"?>\n'
SIGNING_TIME = NOW - timedelta(days=1)
IDENTIFIER = "1.2.156.3005.2.11100000000013338W011.11430000006122244L.20230000403.001.U"
#: The issuer the test certificates name (``ZZBFJG``): the organisation of every test PKI party (tests/pki.py).
ISSUER_NAME = "certstore 测试"

SIGNATURES_XML = "Doc_0/Signs/Signatures.xml"
SIGNATURE_XML = "Doc_0/Signs/Sign_0/Signature.xml"
SIGNED_VALUE = "Doc_0/Signs/Sign_0/SignedValue.dat"
SEAL_ESL = "Doc_0/Signs/Sign_0/Seal.esl"
PAGE = "Doc_0/Pages/Page_0/Content.xml"


def fixture(name: str) -> bytes:
    return (OFD_FIXTURES / name).read_bytes()


def zip_bytes(entries: Iterable[tuple[str, bytes]], *, compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    """A ZIP with the entries in order (duplicates allowed: zipfile warns, the archive keeps both)."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression) as archive:
        for name, data in entries:
            archive.writestr(
                zipfile.ZipInfo(name, date_time=(2025, 6, 1, 0, 0, 0)), data, compress_type=compression
            )
    return out.getvalue()


def entries_of(package: bytes) -> list[tuple[str, bytes]]:
    with zipfile.ZipFile(io.BytesIO(package)) as archive:
        return [(i.filename, archive.read(i)) for i in archive.infolist() if not i.is_dir()]


def with_entries(package: bytes, extra: Mapping[str, bytes]) -> bytes:
    """``package`` with ``extra`` entries replaced or added (the others keep their content)."""
    kept = [(n, d) for n, d in entries_of(package) if n not in extra]
    return zip_bytes([*kept, *extra.items()])


# --- Unsigned content --------------------------------------------------------------------------------------


def ofd_xml(*, identifier: str | None = IDENTIFIER, signatures: bool = True, doctype: str = "") -> bytes:
    custom = (  # the issuer by name: the test PKI's certificates name their organisation, not a credit code
        f'<ofd:CustomDatas><ofd:CustomData Name="ZZBS">{identifier}</ofd:CustomData>'
        f'<ofd:CustomData Name="ZZBFJG">{ISSUER_NAME}</ofd:CustomData></ofd:CustomDatas>'
        if identifier
        else ""
    )
    sigs = f"<ofd:Signatures>/{SIGNATURES_XML}</ofd:Signatures>" if signatures else ""
    return (
        f'{DECL}{doctype}<ofd:OFD xmlns:ofd="{NS}" Version="1.1" DocType="OFD"><ofd:DocBody><ofd:DocInfo>'
        f"<ofd:DocID>0123456789abcdef0123456789abcdef</ofd:DocID>{custom}</ofd:DocInfo>"
        f"<ofd:DocRoot>Doc_0/Document.xml</ofd:DocRoot>{sigs}</ofd:DocBody></ofd:OFD>"
    ).encode()


def content_files(*, identifier: str | None = IDENTIFIER, page_text: str = "测试证照") -> dict[str, bytes]:
    """A one-page document: OFD.xml, Document.xml, PublicRes.xml, DocumentRes.xml + an image, one page."""
    return {
        "OFD.xml": ofd_xml(identifier=identifier),
        "Doc_0/Document.xml": (
            f'{DECL}<ofd:Document xmlns:ofd="{NS}"><ofd:CommonData><ofd:MaxUnitID>10</ofd:MaxUnitID>'
            "<ofd:PageArea><ofd:PhysicalBox>0 0 210 297</ofd:PhysicalBox></ofd:PageArea>"
            "<ofd:PublicRes>PublicRes.xml</ofd:PublicRes><ofd:DocumentRes>DocumentRes.xml</ofd:DocumentRes>"
            '</ofd:CommonData><ofd:Pages><ofd:Page ID="1" BaseLoc="Pages/Page_0/Content.xml"/></ofd:Pages>'
            "</ofd:Document>"
        ).encode(),
        "Doc_0/PublicRes.xml": (
            f'{DECL}<ofd:Res xmlns:ofd="{NS}" BaseLoc="Res"><ofd:Fonts><ofd:Font ID="2" FontName="宋体"/>'
            "</ofd:Fonts></ofd:Res>"
        ).encode(),
        "Doc_0/DocumentRes.xml": (
            f'{DECL}<ofd:Res xmlns:ofd="{NS}" BaseLoc="Res"><ofd:MultiMedias><ofd:MultiMedia ID="3" Type="Image">'
            "<ofd:MediaFile>base.png</ofd:MediaFile></ofd:MultiMedia></ofd:MultiMedias></ofd:Res>"
        ).encode(),
        "Doc_0/Res/base.png": b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4,
        PAGE: (
            f'{DECL}<ofd:Page xmlns:ofd="{NS}"><ofd:Content><ofd:Layer ID="4"><ofd:TextObject ID="5" '
            f'Boundary="10 10 100 10" Font="2" Size="5"><ofd:TextCode X="0" Y="5">{page_text}</ofd:TextCode>'
            "</ofd:TextObject></ofd:Layer></ofd:Content></ofd:Page>"
        ).encode(),
    }


# --- Signature.xml -----------------------------------------------------------------------------------------


def _type_attribute(declared: str | None) -> str:
    return "" if declared is None else f' Type="{declared}"'


def signatures_xml(entries: Iterable[tuple[str, str | None, str]]) -> bytes:
    """Signatures.xml listing (ID, Type or None, BaseLoc)."""
    items = "".join(
        f'<ofd:Signature ID="{sid}"{_type_attribute(stype)} BaseLoc="{loc}"/>' for sid, stype, loc in entries
    )
    return f'{DECL}<ofd:Signatures xmlns:ofd="{NS}"><ofd:MaxSignId>9</ofd:MaxSignId>{items}</ofd:Signatures>'.encode()


def signature_xml(
    protected: Mapping[str, bytes],
    *,
    check_method: str | None = oids.SM3,
    signed_value: str = f"/{SIGNED_VALUE}",
    seal: str | None = None,
    date_time: str = "2025-05-31 16:00:00",
    digest: Callable[[bytes], bytes] = sm3,
) -> bytes:
    references = "".join(
        f'<ofd:Reference FileRef="/{path}"><ofd:CheckValue>{base64.b64encode(digest(data)).decode()}'
        "</ofd:CheckValue></ofd:Reference>"
        for path, data in protected.items()
    )
    method_attribute = "" if check_method is None else f' CheckMethod="{check_method}"'
    seal_element = f"<ofd:Seal><ofd:BaseLoc>{seal}</ofd:BaseLoc></ofd:Seal>" if seal else ""
    return (
        f'{DECL}<ofd:Signature xmlns:ofd="{NS}"><ofd:SignedInfo>'
        '<ofd:Provider ProviderName="certstore-tests" Version="1.0" Company="certstore"/>'
        f"<ofd:SignatureMethod>{oids.SM2_WITH_SM3}</ofd:SignatureMethod>"
        f"<ofd:SignatureDateTime>{date_time}</ofd:SignatureDateTime>"
        f"<ofd:References{method_attribute}>{references}</ofd:References>"
        f'<ofd:StampAnnot ID="9" PageRef="1" Boundary="100 100 40 40"/>{seal_element}'
        f"</ofd:SignedInfo><ofd:SignedValue>{signed_value}</ofd:SignedValue></ofd:Signature>"
    ).encode()


# --- Seals (Type="Seal") -----------------------------------------------------------------------------------


def make_test_seal(h: Hierarchy, signer: Party | None = None) -> bytes:
    return make_seal(
        maker=h.maker.signer,
        maker_certificate=h.maker.certificate,
        es_id="41010000000001",
        name="测试发证机关电子证照专用章",
        seal_type=1,
        signer_certificates=[(signer or h.signer).certificate],
        picture=tiny_picture(),
        valid_start=NOW - timedelta(days=100),
        valid_end=NOW + timedelta(days=300),
        created=NOW - timedelta(days=100),
    )


@dataclass(frozen=True)
class Built:
    package: bytes
    files: dict[str, bytes]


def sealed_ofd(
    h: Hierarchy,
    *,
    files: Mapping[str, bytes] | None = None,
    protect: Iterable[str] | None = None,
    seal_copy: bool = True,
    extra: Mapping[str, bytes] | None = None,
    signatures_entries: Iterable[tuple[str, str | None, str]] | None = None,
    check_method: str | None = oids.SM3,
    digest: Callable[[bytes], bytes] = sm3,
) -> Built:
    """An OFD with one GB/T 38540 seal signature over Signature.xml, protecting ``protect`` (default: every content
    file and Seal.esl)."""
    content = dict(files if files is not None else content_files())
    seal = make_test_seal(h)
    if seal_copy:
        content[SEAL_ESL] = seal
    names = list(protect) if protect is not None else list(content)
    xml = signature_xml(
        {n: content[n] for n in names},
        seal=f"/{SEAL_ESL}" if seal_copy else None,
        check_method=check_method,
        digest=digest,
    )
    value = sign_seal(
        seal=seal,
        signer=h.signer.signer,
        signer_certificate=h.signer.certificate,
        data=xml,
        property_info=f"/{SIGNATURE_XML}",
        signing_time=SIGNING_TIME,
    )
    entries = signatures_entries if signatures_entries is not None else [("s1", "Seal", f"/{SIGNATURE_XML}")]
    all_files = {
        **content,
        SIGNATURES_XML: signatures_xml(entries),
        SIGNATURE_XML: xml,
        SIGNED_VALUE: value,
        **(extra or {}),
    }
    return Built(zip_bytes(all_files.items()), all_files)


# --- GB/T 35275 SignedData, built from DER primitives ------------------------------------------------------


def _length(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(body)]) + body


def tlv(tag: int, content: bytes) -> bytes:
    return bytes([tag]) + _length(len(content)) + content


def seq(*items: bytes) -> bytes:
    return tlv(0x30, b"".join(items))


def der_set(*items: bytes) -> bytes:
    return tlv(0x31, b"".join(sorted(items)))


def oid(dotted: str) -> bytes:
    return core.ObjectIdentifier(dotted).dump()


def algorithm(dotted: str) -> bytes:
    return seq(oid(dotted))


GM_SIGNED_DATA = "1.2.156.10197.6.1.4.2.2"
GM_DATA = "1.2.156.10197.6.1.4.2.1"
CONTENT_TYPE = "1.2.840.113549.1.9.3"
MESSAGE_DIGEST = "1.2.840.113549.1.9.4"
SIGNING_TIME_ATTR = "1.2.840.113549.1.9.5"


def signed_data(
    party: Party,
    signature_xml_bytes: bytes,
    *,
    form: str,
    include_certificate: bool = True,
    signing_time: datetime = SIGNING_TIME,
) -> bytes:
    """ContentInfo(GB/T 35275 signedData) over Signature.xml: ``form`` is ``content`` (eContent = SM3(xml), signed
    directly), ``content-base64`` (eContent = Base64(SM3(xml)), ofdrw compatibility) or ``attributes`` (PKCS#9
    signed attributes with messageDigest, detached)."""
    digest = sm3(signature_xml_bytes)
    cert = party.certificate
    issuer_and_serial = seq(cert.asn1["tbs_certificate"]["issuer"].dump(), core.Integer(cert.serial).dump())
    if form in ("content", "content-base64"):
        econtent = digest if form == "content" else base64.b64encode(digest)
        encap = seq(oid(GM_DATA), tlv(0xA0, core.OctetString(econtent).dump()))
        signed_attrs = b""
        signature = party.signer.sign(econtent)
    elif form == "attributes":
        encap = seq(oid(GM_DATA))
        attributes = [
            seq(oid(CONTENT_TYPE), der_set(oid(GM_DATA))),
            seq(oid(SIGNING_TIME_ATTR), der_set(core.UTCTime(signing_time).dump())),
            seq(oid(MESSAGE_DIGEST), der_set(core.OctetString(digest).dump())),
        ]
        attribute_set = der_set(*attributes)
        signature = party.signer.sign(attribute_set)
        signed_attrs = b"\xa0" + attribute_set[1:]  # [0] IMPLICIT SET OF Attribute
    else:
        raise ValueError(form)
    signer_info = seq(
        core.Integer(1).dump(),
        issuer_and_serial,
        algorithm(oids.SM3),
        signed_attrs,
        algorithm(oids.SM2_SIGN),
        core.OctetString(signature).dump(),
    )
    body = seq(
        core.Integer(1).dump(),
        der_set(algorithm(oids.SM3)),
        encap,
        tlv(0xA0, cert.der) if include_certificate else b"",
        der_set(signer_info),
    )
    return seq(oid(GM_SIGNED_DATA), tlv(0xA0, body))


def signed_ofd(
    party: Party,
    *,
    form: str,
    files: Mapping[str, bytes] | None = None,
    include_certificate: bool = True,
    declared_type: str | None = "Sign",
    date_time: str = "2025-05-31 16:00:00",
) -> Built:
    """An OFD with one ``Type="Sign"`` signature: ``form`` ``raw`` (DER SM2 over Signature.xml) or a SignedData form
    of :func:`signed_data`."""
    content = dict(files if files is not None else content_files())
    xml = signature_xml(content, date_time=date_time)
    if form == "raw":
        value = party.signer.sign(xml)
    else:
        value = signed_data(party, xml, form=form, include_certificate=include_certificate)
    all_files = {
        **content,
        SIGNATURES_XML: signatures_xml([("s1", declared_type, f"/{SIGNATURE_XML}")]),
        SIGNATURE_XML: xml,
        SIGNED_VALUE: value,
    }
    return Built(zip_bytes(all_files.items()), all_files)
