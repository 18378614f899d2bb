"""The time-stamp authority: requests in, replies out — the token's fields, its SM2 signature (cross-checked with
OpenSSL), the failure bits of refused requests, and OpenSSL's own reading of a reply (``openssl ts -reply``,
``openssl asn1parse``)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from asn1crypto import cms, core, tsp

from certstore.crypto import oids
from certstore.crypto.sm3 import sm3
from certstore.tsa import (
    TSA_POLICY,
    TimeStampAuthority,
    TimeStampAuthorityError,
    build_request,
    check_reply,
    parse_response,
    read_token,
)
from tests.openssl import OPENSSL_BINARY, OpenSSL, verifies
from tests.tsa.conftest import NOW, Pki


def _request(**fields: object) -> bytes:
    """A DER TimeStampReq: an SM3 imprint of b"data", changed by ``fields``."""
    value: dict[str, object] = {
        "version": 1,
        "message_imprint": {"hash_algorithm": {"algorithm": oids.SM3}, "hashed_message": sm3(b"data")},
        "cert_req": True,
    }
    value.update(fields)
    return tsp.TimeStampReq(value).dump()


def test_a_granted_reply_carries_a_token_for_the_request(pki: Pki) -> None:
    request = build_request(b"the signature value", nonce=0x0123456789ABCDEF)
    reply = pki.authority().respond(request.der)
    parsed = parse_response(reply)
    assert (parsed.status, parsed.failure_info, parsed.granted) == ("granted", frozenset(), True)

    info = read_token(check_reply(reply, request))
    assert info.der == parsed.token
    assert info.policy == TSA_POLICY
    assert (info.hash_algorithm, info.hashed_message) == (oids.SM3, sm3(b"the signature value"))
    assert info.nonce == 0x0123456789ABCDEF
    assert info.gen_time == NOW
    assert 0 < info.serial_number < 1 << 127
    assert info.tst_info["version"].native == "v1"
    assert info.tst_info["accuracy"].native == {"seconds": 1, "millis": None, "micros": None}
    assert info.tst_info["tsa"].chosen == pki.tsa.certificate.subject_name
    assert set(info.certificates) == {
        pki.tsa.certificate,
        pki.root.certificate,
    }  # certReq: certificate, chain
    assert info.tsa_certificate == pki.tsa.certificate
    assert info.signature_verifies()
    assert not info.signature_verifies(pki.signer.certificate)


def test_the_signed_attributes_and_the_sm2_signature_openssl_accepts(pki: Pki, tmp_path: Path) -> None:
    info = read_token(pki.authority().issue(oids.SM3, sm3(b"x")))
    signed = info.signed_data
    assert signed["version"].native == "v3"
    assert [a["algorithm"].dotted for a in signed["digest_algorithms"]] == [oids.SM3]
    signer_info = signed["signer_infos"][0]
    assert signer_info["digest_algorithm"]["algorithm"].dotted == oids.SM3
    assert signer_info["signature_algorithm"]["algorithm"].dotted == oids.SM2_WITH_SM3
    attributes = {a["type"].native: a["values"][0] for a in signer_info["signed_attrs"]}
    assert attributes["content_type"].native == "tst_info"
    assert attributes["message_digest"].native == sm3(info.tst_bytes)
    (cert_id,) = attributes["signing_certificate_v2"]["certs"]
    assert cert_id["hash_algorithm"]["algorithm"].dotted == oids.SM3
    assert cert_id["cert_hash"].native == sm3(pki.tsa.certificate.der)
    assert cert_id["issuer_serial"]["serial_number"].native == pki.tsa.certificate.serial
    # what a CMS verifier signs over: the attributes as a DER SET OF (RFC 5652 §5.4), default SM2 ID
    message = cms.CMSAttributes.load(signer_info["signed_attrs"].untag().dump()).dump()
    if OPENSSL_BINARY is None:
        pytest.skip("openssl is not installed")
    assert verifies(tmp_path, pki.tsa.certificate, message, signer_info["signature"].native)


def test_the_signer_info_is_read_once_as_a_cms_verifier_reads_it(pki: Pki) -> None:
    """``read_token`` keeps what the signature check needs as plain values: the signed attributes' message is the
    one a CMS verifier computes (asn1crypto's re-encoding with the SET OF tag), the two attributes checked and
    the signature; a token whose contentType attribute names something else, or whose attributes were altered,
    does not verify."""
    token = pki.authority().issue(oids.SM3, sm3(b"x"))
    info = read_token(token)
    signer_info = info.signed_data["signer_infos"][0]
    assert info.signed_attributes == cms.CMSAttributes.load(signer_info["signed_attrs"].untag().dump()).dump()
    assert info.message_digest == (sm3(info.tst_bytes),)
    assert info.content_type == ("1.2.840.113549.1.9.16.1.4",)
    assert (info.signature_algorithm, info.digest_algorithm) == (oids.SM2_WITH_SM3, oids.SM3)
    assert info.signature == signer_info["signature"].native
    assert info.signature_problem() is None

    tst_info_oid = core.ObjectIdentifier("1.2.840.113549.1.9.16.1.4").dump()
    data_oid = core.ObjectIdentifier("1.2.840.113549.1.9.16.1.2").dump()  # id-ct-authData: same length
    at = token.rindex(tst_info_oid)  # the last one: the contentType attribute's value, after the TSTInfo's
    other_type = read_token(token[:at] + data_oid + token[at + len(tst_info_oid) :])
    assert other_type.signature_problem() == "TSA contentType attribute is not id-ct-TSTInfo"

    digest_at = token.index(sm3(info.tst_bytes))  # the messageDigest value, flipped in its last byte
    end = digest_at + 31
    altered = read_token(token[:end] + bytes([token[end] ^ 1]) + token[end + 1 :])
    assert altered.signature_problem() == "TSA messageDigest attribute does not match the TSTInfo"


def test_cert_req_false_leaves_the_certificates_out(pki: Pki) -> None:
    request = build_request(b"data", cert_req=False)
    info = read_token(check_reply(pki.authority().respond(request.der), request))
    assert info.certificates == () and info.tsa_certificate is None
    assert info.signature_verifies(pki.tsa.certificate)


def test_sha256_imprints_and_our_policy_are_accepted(pki: Pki) -> None:
    request = build_request(b"data", hash_algorithm=oids.SHA256)
    info = read_token(check_reply(pki.authority().respond(request.der), request))
    assert (info.hash_algorithm, info.hashed_message) == (oids.SHA256, request.digest)
    reply = parse_response(pki.authority().respond(_request(req_policy=TSA_POLICY)))
    assert reply.granted


def test_serial_numbers_are_unique(pki: Pki) -> None:
    authority = pki.authority()
    serials = {read_token(authority.issue(oids.SM3, sm3(b"same"))).serial_number for _ in range(20)}
    assert len(serials) == 20


@pytest.mark.parametrize(
    ("request_der", "failure", "text"),
    [
        (b"not DER at all", "bad_data_format", "not a DER TimeStampReq"),
        (_request() + b"\x00", "bad_data_format", "not a DER TimeStampReq"),  # trailing bytes
        (_request(version=2), "bad_request", "version 2 is not 1"),
        (
            _request(message_imprint={"hash_algorithm": {"algorithm": "sha1"}, "hashed_message": bytes(20)}),
            "bad_alg",
            "1.3.14.3.2.26 is not SM3",
        ),
        (
            _request(
                message_imprint={"hash_algorithm": {"algorithm": oids.SM3}, "hashed_message": bytes(20)}
            ),
            "bad_data_format",
            "hashedMessage has 20 bytes",
        ),
        (_request(req_policy="1.2.3.4"), "unaccepted_policy", "policy 1.2.3.4"),
        (
            _request(extensions=[{"extn_id": "1.2.3.4", "extn_value": b"x"}]),
            "unaccepted_extensions",
            "extensions are not supported",
        ),
        (_request(nonce=-5), "bad_data_format", "nonce"),
    ],
    ids=["junk", "trailing", "version", "sha1", "length", "policy", "extension", "nonce"],
)
def test_malformed_requests_are_refused_with_their_failure_info(
    pki: Pki, request_der: bytes, failure: str, text: str
) -> None:
    reply = parse_response(pki.authority().respond(request_der))
    assert reply.status == "rejection" and not reply.granted
    assert reply.failure_info == {failure}
    assert text in reply.status_text
    assert reply.token is None


def test_the_authority_needs_a_time_stamping_certificate_for_its_key(pki: Pki) -> None:
    with pytest.raises(TimeStampAuthorityError, match="id-kp-timeStamping"):
        TimeStampAuthority(pki.signer.signer, pki.signer.certificate)
    with pytest.raises(TimeStampAuthorityError, match="does not hold the key"):
        TimeStampAuthority(pki.signer.signer, pki.tsa.certificate)
    with pytest.raises(ValueError, match="not an SM3 or SHA-256 digest"):
        pki.authority().issue(oids.SM3, bytes(20))
    naive = TimeStampAuthority(pki.tsa.signer, pki.tsa.certificate, clock=lambda: datetime(2026, 1, 1))
    with pytest.raises(ValueError, match="timezone-aware"):
        naive.issue(oids.SM3, bytes(32))


def _hex_dump(text: str, label: str) -> bytes:
    """The bytes of an ``openssl ts -text`` hex dump that follows ``label``."""
    block = text.split(label, 1)[1]
    octets: list[str] = []
    for line in block.splitlines()[1:]:
        match = re.match(r"^\s+[0-9a-f]{4} - ((?:[0-9a-f]{2}[ -]){1,16})", line)
        if match is None:
            break
        octets += re.findall(r"[0-9a-f]{2}", match.group(1))
    return bytes.fromhex("".join(octets))


def test_openssl_reads_the_same_time_serial_imprint_and_nonce(pki: Pki, tmp_path: Path) -> None:
    if OPENSSL_BINARY is None:
        pytest.skip("openssl is not installed")
    openssl = OpenSSL(OPENSSL_BINARY, tmp_path)
    gen_time = NOW + timedelta(seconds=7)
    request = build_request(b"seal signature value")
    reply = pki.authority(gen_time).respond(request.der)
    info = read_token(check_reply(reply, request))
    openssl.write("resp.tsr", reply)

    text = openssl.run("ts", "-reply", "-in", "resp.tsr", "-text").stdout.decode()
    assert "Status: Granted." in text and "Version: 1" in text
    assert f"Policy OID: {TSA_POLICY}" in text and "Hash Algorithm: sm3" in text
    serial = re.search(r"^Serial number: 0x([0-9A-F]+)$", text, re.M)
    assert serial is not None and int(serial.group(1), 16) == info.serial_number
    stamp = re.search(r"^Time stamp: (.+) GMT$", text, re.M)
    assert stamp is not None
    assert datetime.strptime(stamp.group(1), "%b %d %H:%M:%S %Y").replace(tzinfo=UTC) == gen_time
    nonce = re.search(r"^Nonce: 0x([0-9A-F]+)$", text, re.M)
    assert nonce is not None and int(nonce.group(1), 16) == request.nonce
    assert _hex_dump(text, "Message data:") == sm3(b"seal signature value")

    # the token alone, and its TSTInfo read by OpenSSL's generic DER parser
    openssl.run("ts", "-reply", "-in", "resp.tsr", "-token_out", "-out", "token.der")
    assert openssl.read("token.der") == info.der
    outer = openssl.run("asn1parse", "-inform", "DER", "-in", "token.der").stdout.decode()
    assert ":pkcs7-signedData" in outer and ":id-smime-ct-TSTInfo" in outer and ":SM2-with-SM3" in outer
    offset = re.search(r"^\s*(\d+):d=5 .*prim: OCTET STRING", outer, re.M)
    assert offset is not None  # the eContent octets: the DER TSTInfo
    inner = openssl.run(
        "asn1parse", "-inform", "DER", "-in", "token.der", "-strparse", offset.group(1)
    ).stdout.decode()
    assert f":{TSA_POLICY}" in inner
    assert f":{gen_time:%Y%m%d%H%M%S}Z" in inner  # GeneralizedTime, seconds, UTC
    integers = [int(v, 16) for v in re.findall(r"prim: INTEGER\s+:([0-9A-F]+)$", inner, re.M)]
    assert integers == [1, info.serial_number, 1, request.nonce]  # version, serialNumber, accuracy s, nonce
    assert f"[HEX DUMP]:{sm3(b'seal signature value').hex().upper()}" in inner


def test_openssl_reads_a_rejection(pki: Pki, tmp_path: Path) -> None:
    if OPENSSL_BINARY is None:
        pytest.skip("openssl is not installed")
    openssl = OpenSSL(OPENSSL_BINARY, tmp_path)
    sha1 = {"hash_algorithm": {"algorithm": "sha1"}, "hashed_message": bytes(20)}
    openssl.write("rejected.tsr", pki.authority().respond(_request(message_imprint=sha1)))
    text = openssl.run("ts", "-reply", "-in", "rejected.tsr", "-text").stdout.decode()
    assert "Status: Rejected." in text
    assert "Failure info: unrecognized or unsupported algorithm identifier" in text
    assert "TST info:\nNot included." in text


def test_a_granted_reply_without_token_or_with_junk_is_unreadable(pki: Pki) -> None:
    from certstore.tsa import TokenError
    from certstore.tsa.tokens import TimeStampResp

    bare = TimeStampResp({"status": {"status": "granted"}}).dump()
    assert parse_response(bare).token is None
    with pytest.raises(TokenError):
        parse_response(core.OctetString(b"x").dump())
    with pytest.raises(TokenError):
        read_token(b"\x30\x03\x02\x01\x01")
