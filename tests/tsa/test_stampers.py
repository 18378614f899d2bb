"""The client side: what :class:`HttpTimeStamper` sends and which replies it refuses (an in-memory transport in
front of a real :class:`TimeStampAuthority`), :class:`LocalTimeStamper`, and which stamper a key store and an
environment give (:func:`time_stamper`)."""

from __future__ import annotations

import pickle
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
from asn1crypto import tsp

from certstore.crypto import oids
from certstore.crypto.sm3 import sm3
from certstore.keystore import KeyStore, KeyStoreError, SignerRole
from certstore.tsa import (
    HttpTimeStamper,
    LocalTimeStamper,
    TimeStamper,
    TimeStampRejectedError,
    TimeStampReplyError,
    TimeStampTransportError,
    build_request,
    local_authority,
    read_token,
    time_stamper,
)
from certstore.tsa.authority import FailureInfo, TimeStampAuthority
from certstore.tsa.stampers import check_token
from tests.tsa.conftest import NOW, Pki

URL = "http://tsa.test/api/v1/tsa"


def _stamper(handler: Callable[[httpx.Request], httpx.Response]) -> HttpTimeStamper:
    return HttpTimeStamper(URL, 5.0, transport=httpx.MockTransport(handler))


def _reply(data: bytes, status: int = 200, media_type: str = "application/timestamp-reply") -> httpx.Response:
    return httpx.Response(status, content=data, headers={"Content-Type": media_type})


def test_the_request_and_a_good_reply(pki: Pki) -> None:
    seen: list[httpx.Request] = []
    authority = pki.authority()

    def tsa(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return _reply(authority.respond(request.content))

    stamper = _stamper(tsa)
    assert isinstance(stamper, TimeStamper)
    token = read_token(stamper.stamp(b"signature value"))
    assert (token.hash_algorithm, token.hashed_message) == (oids.SM3, sm3(b"signature value"))
    assert token.gen_time == NOW and token.tsa_certificate == pki.tsa.certificate
    (request,) = seen
    assert request.method == "POST" and str(request.url) == URL
    assert request.headers["content-type"] == "application/timestamp-query"
    assert request.headers["accept"] == "application/timestamp-reply"
    sent = tsp.TimeStampReq.load(request.content)
    assert sent["cert_req"].native is True
    assert sent["nonce"].native == token.nonce and token.nonce is not None


def _tamper_nonce(authority: TimeStampAuthority) -> Callable[[httpx.Request], httpx.Response]:
    def tsa(request: httpx.Request) -> httpx.Response:
        sent = tsp.TimeStampReq.load(request.content)
        other = tsp.TimeStampReq(
            {"version": 1, "message_imprint": sent["message_imprint"], "nonce": 7, "cert_req": True}
        )
        return _reply(authority.respond(other.dump()))

    return tsa


def _other_imprint(authority: TimeStampAuthority) -> Callable[[httpx.Request], httpx.Response]:
    def tsa(request: httpx.Request) -> httpx.Response:
        sent = tsp.TimeStampReq.load(request.content)
        other = tsp.TimeStampReq(
            {
                "version": 1,
                "message_imprint": {
                    "hash_algorithm": {"algorithm": oids.SM3},
                    "hashed_message": sm3(b"other"),
                },
                "nonce": sent["nonce"].native,
                "cert_req": True,
            }
        )
        return _reply(authority.respond(other.dump()))

    return tsa


@pytest.mark.parametrize(
    ("make", "error", "fragment"),
    [
        (_tamper_nonce, TimeStampReplyError, "nonce 7 is not the request's"),
        (_other_imprint, TimeStampReplyError, "message imprint is not the one requested"),
        (
            lambda a: lambda r: _reply(a.rejection(FailureInfo.SYSTEM_FAILURE, "clock unsynchronised")),
            TimeStampRejectedError,
            "rejection (system_failure): clock unsynchronised",
        ),
        (lambda a: lambda r: _reply(b"\x30\x00"), TimeStampReplyError, "not an RFC 3161 TimeStampResp"),
        (lambda a: lambda r: _reply(b"busy", status=503), TimeStampTransportError, "answered HTTP 503"),
        (
            lambda a: lambda r: _reply(a.respond(r.content), media_type="text/html"),
            TimeStampTransportError,
            "answered text/html",
        ),
    ],
    ids=["nonce", "imprint", "rejected", "junk", "http-error", "media-type"],
)
def test_replies_that_do_not_answer_are_refused(
    pki: Pki,
    make: Callable[[TimeStampAuthority], Callable[[httpx.Request], httpx.Response]],
    error: type[Exception],
    fragment: str,
) -> None:
    with pytest.raises(error, match=None) as raised:
        _stamper(make(pki.authority())).stamp(b"signature value")
    assert fragment in str(raised.value)
    if isinstance(raised.value, TimeStampRejectedError):
        assert raised.value.status == "rejection" and raised.value.failure_info == {"system_failure"}


def test_a_token_signed_by_another_key_is_refused(pki: Pki) -> None:
    authority = pki.authority()
    impostor = TimeStampAuthority(pki.tsa.signer, pki.tsa.certificate, clock=lambda: NOW)
    impostor.signer = pki.signer.signer  # the TSA's certificate, somebody else's signature

    def tsa(request: httpx.Request) -> httpx.Response:
        return _reply(impostor.respond(request.content))

    with pytest.raises(TimeStampReplyError, match="signature does not verify"):
        _stamper(tsa).stamp(b"x")
    assert authority.respond(b"")  # the genuine one still answers


def test_a_token_from_a_certificate_without_the_time_stamping_purpose_is_refused(pki: Pki) -> None:
    from tests.seal.seal_builders import make_timestamp_token

    request = replace(build_request(b"x"), nonce=None)  # as if sent without a nonce: the token has none
    forged = make_timestamp_token(pki.signer, b"x", NOW)  # a seal user's key, signature and imprint fine
    with pytest.raises(TimeStampReplyError, match="lacks the extended key usage id-kp-timeStamping"):
        check_token(forged, request)
    with pytest.raises(TimeStampReplyError, match="nonce None is not the request's"):
        check_token(forged, build_request(b"x"))


def test_an_unreachable_tsa_is_a_transport_error() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    with pytest.raises(TimeStampTransportError, match="ConnectError"):
        _stamper(refuse).stamp(b"x")


def test_the_http_stamper_pickles_without_its_connection_pool() -> None:
    stamper = HttpTimeStamper(URL, 3.0)
    copy = pickle.loads(pickle.dumps(stamper))
    assert (copy.url, copy.timeout) == (URL, 3.0)
    with pytest.raises(ValueError, match="not an http"):
        HttpTimeStamper("ftp://tsa.test/")


def test_the_local_stamper_signs_one_token_per_message(pki: Pki) -> None:
    stamper = LocalTimeStamper(pki.tsa.signer, pki.tsa.certificate, (pki.root.certificate,), lambda: NOW)
    token = read_token(stamper.stamp(b"value"))
    assert token.hashed_message == sm3(b"value") and token.gen_time == NOW and token.signature_verifies()
    assert token.nonce is None


def _store(tmp_path: Path, pki: Pki, *, name: str = "tsa", role: SignerRole = SignerRole.TSA) -> KeyStore:
    store = KeyStore(tmp_path / "keys")
    party = pki.tsa if role is SignerRole.TSA else pki.signer
    store.add_signer(
        name,
        role=role,
        key=party.signer.private_key,
        certificate=party.certificate,
        chain=(pki.root.certificate,),
    )
    return store


def test_which_stamper_a_key_store_and_an_environment_give(pki: Pki, tmp_path: Path) -> None:
    store = _store(tmp_path, pki)
    local = time_stamper(store, {})
    assert isinstance(local, LocalTimeStamper)
    assert local.authority.certificate == pki.tsa.certificate and local.authority.chain == (
        pki.root.certificate,
    )
    remote = time_stamper(store, {"CERTSTORE_TSA_URL": URL, "CERTSTORE_TSA_TIMEOUT": "2.5"})
    assert isinstance(remote, HttpTimeStamper) and (remote.url, remote.timeout) == (URL, 2.5)
    with pytest.raises(ValueError, match="CERTSTORE_TSA_TIMEOUT"):
        time_stamper(store, {"CERTSTORE_TSA_URL": URL, "CERTSTORE_TSA_TIMEOUT": "soon"})
    assert time_stamper(KeyStore(tmp_path / "old-keys"), {}) is None  # a key store from before trusted time


def test_a_tsa_key_that_cannot_time_stamp_is_refused(pki: Pki, tmp_path: Path) -> None:
    with pytest.raises(KeyStoreError, match="role 'signer'"):
        local_authority(_store(tmp_path / "a", pki, role=SignerRole.SIGNER))
    store = KeyStore(tmp_path / "b" / "keys")
    store.add_signer(
        "tsa", role=SignerRole.TSA, key=pki.signer.signer.private_key, certificate=pki.signer.certificate
    )
    with pytest.raises(KeyStoreError, match="id-kp-timeStamping"):
        local_authority(store)
