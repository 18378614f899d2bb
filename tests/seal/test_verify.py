"""Verification procedures (GB/T 38540 §6.3, §7.3): ordered named steps with precise reasons."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from hashlib import sha256, sha512

import pytest
from asn1crypto import core

from certstore.checks import CheckResult, Indication
from certstore.crypto import oids
from certstore.crypto.sm2 import decode_signature
from certstore.crypto.sm3 import sm3
from certstore.crypto.trust import TrustStore
from certstore.seal import (
    SealLayout,
    attach_timestamp,
    make_seal,
    parse_seal_signature,
    sign_seal,
    verify,
    verify_seal,
    verify_seal_signature,
)
from certstore.seal import asn1 as ses
from certstore.seal.build import _assemble_signature
from tests.seal.seal_builders import (
    DATA,
    NOW,
    PROPERTY_INFO,
    Hierarchy,
    build_digest_list_seal,
    build_v1_seal,
    build_v1_signature,
    make_hierarchy,
    make_timestamp_token,
    replace_at,
    tiny_picture,
)

# The names of the project's verification report, in order (spelled out: they are an interface).
SIGNATURE_STEPS = [
    "structure",
    "signature",
    "signer_in_seal",
    "seal_signature",
    "seal_maker",
    "seal_validity",
    "signer_chain",
    "signing_time",
    "data_hash",
    "timestamp",
]
PASSED, FAILED, UNKNOWN, SKIPPED = (
    CheckResult.PASSED,
    CheckResult.FAILED,
    CheckResult.UNKNOWN,
    CheckResult.SKIPPED,
)


def results(verification: object) -> dict[str, CheckResult]:
    return {c.name: c.result for c in verification.checks}  # type: ignore[attr-defined]


# --- Seals ------------------------------------------------------------------------------------------------


def test_seal_round_trip_is_valid(pki: Hierarchy, seal_der: bytes) -> None:
    verification = verify_seal(seal_der, trust=pki.trust, at=NOW)
    assert verification.indication is Indication.VALID
    assert [c.name for c in verification.checks] == [
        "structure",
        "seal_signature",
        "seal_maker",
        "maker_chain",
        "seal_validity",
    ]
    assert all(c.result is PASSED and c.reason for c in verification.checks)
    assert "DER(SES_SealInfo)" in verification.check("seal_signature").reason
    assert verification.seal is not None and verification.seal.es_id == "41010000000001"
    json.dumps(verification.to_dict(), ensure_ascii=False)


def test_seal_outside_validity(pki: Hierarchy, seal_der: bytes) -> None:
    verification = verify_seal(seal_der, trust=pki.trust, at=NOW + timedelta(days=301))
    assert verification.indication is Indication.INVALID
    check = verification.check("seal_validity")
    assert check.result is FAILED
    assert check.reason.startswith("seal expired: validEnd 2026-03-28T08:00:00+00:00 is before")


def test_seal_with_unknown_maker_ca_is_indeterminate(seal_der: bytes) -> None:
    verification = verify_seal(
        seal_der, trust=TrustStore([make_hierarchy("外部根 CA").root.certificate]), at=NOW
    )
    assert verification.indication is Indication.INDETERMINATE
    assert results(verification)["maker_chain"] is UNKNOWN
    assert results(verification)["seal_signature"] is PASSED


def test_malformed_seal(pki: Hierarchy) -> None:
    verification = verify_seal(b"\x30\x03\x02\x01\x04", trust=pki.trust, at=NOW)
    assert verification.indication is Indication.INVALID
    assert results(verification) == {
        "structure": FAILED,
        "seal_signature": SKIPPED,
        "seal_maker": SKIPPED,
        "maker_chain": SKIPPED,
        "seal_validity": SKIPPED,
    }
    assert verification.seal is None


def test_gmt0031_seal_is_verified_with_the_v1_rule(pki: Hierarchy) -> None:
    seal = build_v1_seal(pki.maker, [pki.signer.certificate], created=NOW, valid_end=NOW + timedelta(days=9))
    verification = verify_seal(seal, trust=pki.trust, at=NOW)
    assert verification.indication is Indication.VALID
    assert "SEQUENCE{SES_SealInfo, cert, signatureAlgorithm}" in verification.check("seal_signature").reason


# --- Seal signatures: the good path -------------------------------------------------------------------


def test_signature_round_trip_is_valid(pki: Hierarchy, signature_der: bytes) -> None:
    assert list(verify.SIGNATURE_STEPS) == SIGNATURE_STEPS
    verification = verify_seal_signature(signature_der, data=DATA, trust=pki.trust)
    assert verification.indication is Indication.VALID
    assert [c.name for c in verification.checks] == SIGNATURE_STEPS
    assert results(verification) == {name: PASSED for name in SIGNATURE_STEPS} | {"timestamp": SKIPPED}
    assert verification.check("timestamp").reason == "no timestamp"
    assert verification.signing_time == NOW
    assert verification.signer == {
        "subject": pki.signer.certificate.subject,
        "issuer": pki.root.certificate.subject,
        "serial": pki.signer.certificate.serial_hex,
    }
    assert verification.seal_info == {
        "id": "41010000000001",
        "name": "郑州市测试局电子证照专用章",
        "version": 4,
        "layout": "GB/T 38540-2020",
    }
    report = verification.to_dict()
    json.dumps(report, ensure_ascii=False)
    assert report["indication"] == "VALID"
    assert [c["name"] for c in report["checks"]] == SIGNATURE_STEPS  # type: ignore[index]


def test_validity_is_judged_at_signing_time_not_now(pki: Hierarchy, signature_der: bytes) -> None:
    later = NOW + timedelta(days=5000)  # everything has expired by then
    assert verify_seal_signature(signature_der, data=DATA, trust=pki.trust).indication is Indication.VALID
    verification = verify_seal_signature(signature_der, data=DATA, trust=pki.trust, at=later)
    assert verification.indication is Indication.INVALID
    assert results(verification)["seal_validity"] is FAILED
    assert results(verification)["signer_chain"] is FAILED
    assert results(verification)["signing_time"] is PASSED  # timeInfo itself was inside every window


def test_raw_r_s_signature_is_accepted(pki: Hierarchy, signature_der: bytes) -> None:
    parsed = parse_seal_signature(signature_der)
    r, s = decode_signature(parsed.signature_value)
    raw = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    der = replace_at(signature_der, [3], core.OctetBitString(raw).dump())
    verification = verify_seal_signature(der, data=DATA, trust=pki.trust)
    assert verification.indication is Indication.VALID
    assert verification.check("signature").reason.startswith("raw r‖s SM2 signature")


def test_gmt0031_signature_is_verified_with_the_v1_rule(pki: Hierarchy) -> None:
    seal = build_v1_seal(pki.maker, [pki.signer.certificate], created=NOW, valid_end=NOW + timedelta(days=9))
    time_info = ses.TimeInfoV1(name="bit_string", value=b"2025-06-01T08:00:00.000Z")
    der = build_v1_signature(seal, pki.signer, DATA, time_info)
    verification = verify_seal_signature(der, data=DATA, trust=pki.trust)
    assert verification.indication is Indication.VALID, verification.to_dict()
    assert verification.signature is not None and verification.signature.layout is SealLayout.GMT0031
    # In GM/T 0031 the certificate is inside TBS_Sign: replacing it breaks the signature.
    other = replace_at(der, [0, 5], core.OctetString(pki.other_signer.certificate.der).dump())
    broken = verify_seal_signature(other, data=DATA, trust=pki.trust)
    assert results(broken)["signature"] is FAILED
    assert results(broken)["signer_in_seal"] is FAILED


def test_data_not_supplied(pki: Hierarchy, signature_der: bytes) -> None:
    verification = verify_seal_signature(signature_der, data=None, trust=pki.trust)
    assert verification.indication is Indication.INDETERMINATE
    check = verification.check("data_hash")
    assert check.result is UNKNOWN
    assert check.reason == f"signed data not supplied: dataHash of {PROPERTY_INFO!r} not checked"


# --- Seal signatures: failures, table-driven ---------------------------------------------------------------


def _assembled(pki: Hierarchy, seal_der: bytes, party: str = "signer", **changes: object) -> bytes:
    """A signature made without sign_seal's policy checks: what a careless or hostile signer could produce."""
    signer = getattr(pki, party)
    kwargs: dict[str, object] = {
        "seal": seal_der,
        "signer": signer.signer,
        "signer_certificate": signer.certificate,
        "data_hash": sm3(DATA),
        "property_info": PROPERTY_INFO,
        "signing_time": NOW,
    }
    kwargs.update(changes)
    return _assemble_signature(**kwargs)  # type: ignore[arg-type]


FAILURES = [
    # case, how the signature is made, data verified, expected non-PASSED results, reason fragment
    (
        "wrong data",
        lambda pki, seal: _assembled(pki, seal),
        DATA + b" ",
        {"data_hash": FAILED},
        "differs from dataHash",
    ),
    (
        "signer not in the seal",
        lambda pki, seal: _assembled(pki, seal, "other_signer"),
        DATA,
        {"signer_in_seal": FAILED},
        "is not byte-identical to any of the 2 certificate(s) listed in the seal",
    ),
    (
        "signed after the seal expired",
        lambda pki, seal: _assembled(pki, seal, signing_time=NOW + timedelta(days=301)),
        DATA,
        {"seal_validity": FAILED, "signing_time": FAILED},
        "after the seal's validEnd 2026-03-28T08:00:00+00:00",
    ),
    (
        "signed before the seal was valid",
        lambda pki, seal: _assembled(pki, seal, signing_time=NOW - timedelta(days=31)),
        DATA,
        {"seal_validity": FAILED, "signing_time": FAILED},
        "before the seal's validStart",
    ),
    (
        "expired signer certificate",
        lambda pki, seal: _assembled(pki, seal, "expired_signer"),
        DATA,
        {"signer_chain": FAILED, "signing_time": FAILED},
        "after the signer certificate's notAfter",
    ),
    (
        "signature by another key",
        lambda pki, seal: replace_at(
            _assembled(pki, seal), [1], core.OctetString(pki.expired_signer.certificate.der).dump()
        ),
        DATA,
        {"signature": FAILED, "signer_chain": FAILED, "signing_time": FAILED},
        "does not verify with the key of",
    ),
]


@pytest.mark.parametrize(
    ("case", "make", "data", "expected", "fragment"), FAILURES, ids=[f[0] for f in FAILURES]
)
def test_signature_failures(
    pki: Hierarchy,
    seal_der: bytes,
    case: str,
    make: object,
    data: bytes,
    expected: dict[str, CheckResult],
    fragment: str,
) -> None:
    verification = verify_seal_signature(make(pki, seal_der), data=data, trust=pki.trust)  # type: ignore[operator]
    assert verification.indication is Indication.INVALID
    observed = {name: result for name, result in results(verification).items() if result is not PASSED}
    assert observed == expected | {"timestamp": SKIPPED}
    reasons = " | ".join(verification.check(name).reason for name in expected)
    assert fragment in reasons
    # every step ran: the report shows all problems at once
    assert [c.name for c in verification.checks] == SIGNATURE_STEPS
    assert all(c.reason for c in verification.checks)


def test_unknown_trust_anchor_is_indeterminate(signature_der: bytes) -> None:
    verification = verify_seal_signature(signature_der, data=DATA, trust=TrustStore([]))
    assert verification.indication is Indication.INDETERMINATE
    assert results(verification)["seal_validity"] is UNKNOWN
    assert results(verification)["signer_chain"] is UNKNOWN
    assert "no trust anchor" in verification.check("signer_chain").reason


def test_maker_certificate_expired_before_signing_is_a_warning(pki: Hierarchy) -> None:
    """GB/T 38540 §7.3 d): the maker certificate alone expired, it was valid when the seal was made."""
    seal = make_seal(
        maker=pki.short_maker.signer,
        maker_certificate=pki.short_maker.certificate,
        es_id="41010000000003",
        name="制章者证书已过期",
        seal_type=1,
        signer_certificates=[pki.signer.certificate],
        picture=tiny_picture(),
        valid_start=NOW - timedelta(days=100),
        valid_end=NOW + timedelta(days=100),
        created=NOW - timedelta(days=100),
    )
    assert pki.short_maker.certificate.not_after < NOW
    signature = sign_seal(
        seal=seal,
        signer=pki.signer.signer,
        signer_certificate=pki.signer.certificate,
        data=DATA,
        property_info=PROPERTY_INFO,
        signing_time=NOW,
    )
    verification = verify_seal_signature(signature, data=DATA, trust=pki.trust)
    assert verification.indication is Indication.VALID
    check = verification.check("seal_validity")
    assert check.result is PASSED
    assert len(check.warnings) == 1 and "accepted with a warning (GB/T 38540 §7.3 d)" in check.warnings[0]
    # the standalone seal verification (§6.3) at the same time is strict
    assert results(verify_seal(seal, trust=pki.trust, at=NOW))["maker_chain"] is FAILED


def test_maker_certificate_expired_before_the_seal_was_made_fails(pki: Hierarchy, seal_der: bytes) -> None:
    seal = build_digest_list_seal(
        pki.short_maker,
        [("SM3", sm3(pki.signer.certificate.der))],
        created=NOW - timedelta(days=10),  # after the maker certificate expired
        valid_end=NOW + timedelta(days=10),
    )
    signature = _assembled(pki, seal)
    check = verify_seal_signature(signature, data=DATA, trust=pki.trust).check("seal_validity")
    assert check.result is FAILED
    assert check.reason.endswith(f"(checked at {(NOW - timedelta(days=10)).isoformat()})")


@pytest.mark.parametrize(
    ("label", "digest_of", "expected"),
    [
        ("SM3", lambda der: sm3(der), PASSED),
        ("SHA-256", lambda der: sha256(der).digest(), PASSED),
        ("SM3", lambda der: sm3(der + b"x"), FAILED),
    ],
    ids=["sm3", "sha256", "no match"],
)
def test_cert_list_type_2(pki: Hierarchy, label: str, digest_of: object, expected: CheckResult) -> None:
    digest = digest_of(pki.signer.certificate.der)  # type: ignore[operator]
    seal = build_digest_list_seal(
        pki.maker,
        [("SM3", sm3(b"someone else")), (label, digest)],
        created=NOW,
        valid_end=NOW + timedelta(days=1),
    )
    verification = verify_seal_signature(_assembled(pki, seal), data=DATA, trust=pki.trust)
    check = verification.check("signer_in_seal")
    assert check.result is expected
    if expected is PASSED:
        assert check.reason.endswith(f"{label} digest 2 of 2 in the seal's certDigestList")
        assert verification.indication is Indication.VALID
    else:
        assert "matches none of the 2 digest(s) listed in the seal (SM3, SHA-256 tried)" in check.reason


def test_signature_algorithm_must_be_sm2_with_sm3(pki: Hierarchy, signature_der: bytes) -> None:
    der = replace_at(signature_der, [2], core.ObjectIdentifier("1.2.840.113549.1.1.11").dump())
    check = verify_seal_signature(der, data=DATA, trust=pki.trust).check("signature")
    assert check.result is UNKNOWN
    assert check.reason == "signatureAlgID is SHA256withRSA (1.2.840.113549.1.1.11); RSA is not supported"
    der = replace_at(signature_der, [2], core.ObjectIdentifier("1.2.156.10197.1.502").dump())
    check = verify_seal_signature(der, data=DATA, trust=pki.trust).check("signature")
    assert check.result is FAILED
    assert "1.2.156.10197.1.502 is not SM2-with-SM3" in check.reason


def test_malformed_signature_skips_the_other_steps(pki: Hierarchy) -> None:
    verification = verify_seal_signature(b"\x30\x00", data=DATA, trust=pki.trust)
    assert verification.indication is Indication.INVALID
    assert results(verification) == {"structure": FAILED} | {name: SKIPPED for name in SIGNATURE_STEPS[1:]}
    assert verification.signature is None and verification.signer is None
    json.dumps(verification.to_dict())


# --- Time stamps ------------------------------------------------------------------------------------------


def _stamped(pki: Hierarchy, signature_der: bytes, **kwargs: object) -> bytes:
    value = parse_seal_signature(signature_der).signature_value
    gen_time = kwargs.pop("gen_time", NOW + timedelta(minutes=1))
    tsa = kwargs.pop("tsa", pki.tsa)
    token = make_timestamp_token(tsa, value, gen_time, **kwargs)  # type: ignore[arg-type]
    return attach_timestamp(signature_der, token)


def test_attach_timestamp_keeps_the_signed_bytes(pki: Hierarchy, signature_der: bytes) -> None:
    stamped = _stamped(pki, signature_der)
    before, after = parse_seal_signature(signature_der), parse_seal_signature(stamped)
    assert after.signed_bytes == before.signed_bytes
    assert after.signature_value == before.signature_value
    assert after.timestamp is not None and stamped.startswith(signature_der[:2])


def test_valid_timestamp(pki: Hierarchy, signature_der: bytes) -> None:
    verification = verify_seal_signature(_stamped(pki, signature_der), data=DATA, trust=pki.trust)
    check = verification.check("timestamp")
    assert check.result is PASSED, check.reason
    assert check.reason == (
        "timestamp genTime 2025-06-01T08:01:00+00:00: token verifies, imprint matches, genTime ≥ timeInfo"
    )
    assert verification.indication is Indication.VALID


@pytest.mark.parametrize(
    ("case", "kwargs", "result", "fragment"),
    [
        ("imprint", {"imprint": b"\x00" * 32}, FAILED, "message imprint does not match the signature value"),
        ("genTime early", {"gen_time": NOW - timedelta(minutes=10)}, FAILED, "is before the signing time"),
        (
            "unknown TSA",
            {"tsa": make_hierarchy("外部根 CA").tsa},
            UNKNOWN,
            "TSA certificate: no trust anchor",
        ),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_bad_timestamps(
    pki: Hierarchy,
    signature_der: bytes,
    case: str,
    kwargs: dict[str, object],
    result: CheckResult,
    fragment: str,
) -> None:
    check = verify_seal_signature(_stamped(pki, signature_der, **kwargs), data=DATA, trust=pki.trust).check(
        "timestamp"
    )
    assert check.result is result
    assert fragment in check.reason


@pytest.mark.parametrize(
    ("algorithm", "digest", "result", "fragment"),
    [
        ("2.16.840.1.101.3.4.2.1", lambda value: sha256(value).digest(), PASSED, "imprint matches"),
        ("2.16.840.1.101.3.4.2.3", lambda value: sha512(value).digest(), PASSED, "imprint matches"),
        ("1.2.840.113549.2.5", lambda value: b"\x00" * 16, UNKNOWN, "hash 1.2.840.113549.2.5 not supported"),
    ],
    ids=["sha256", "sha512", "md5"],
)
def test_the_imprint_hash_is_named_by_its_oid(
    pki: Hierarchy,
    signature_der: bytes,
    algorithm: str,
    digest: Callable[[bytes], bytes],
    result: CheckResult,
    fragment: str,
) -> None:
    """A token's message imprint may use another hash than SM3 (RFC 3161 lets the requester choose): SHA-2 is
    checked, a hash the verifier does not know leaves the timestamp UNKNOWN, never PASSED."""
    value = parse_seal_signature(signature_der).signature_value
    stamped = _stamped(pki, signature_der, imprint=digest(value), imprint_algorithm=algorithm)
    check = verify_seal_signature(stamped, data=DATA, trust=pki.trust).check("timestamp")
    assert check.result is result, check.reason
    assert fragment in check.reason


def test_a_tsa_clock_a_little_behind_the_signers_is_tolerated_with_a_warning(
    pki: Hierarchy, signature_der: bytes
) -> None:
    """timeInfo is the signer's clock; a TSA running 30 s behind it is within the allowed skew, and its genTime
    — the time a third party vouches for — becomes the signing time."""
    signing_time = parse_seal_signature(signature_der).signing_time
    stamped = _stamped(pki, signature_der, gen_time=signing_time - timedelta(seconds=30))
    verification = verify_seal_signature(stamped, data=DATA, trust=pki.trust)
    check = verification.check("timestamp")
    assert check.result is PASSED and any("within the" in w for w in check.warnings), check
    assert verification.signing_time == signing_time - timedelta(seconds=30)


def test_timestamp_that_is_not_a_token(pki: Hierarchy, signature_der: bytes) -> None:
    stamped = attach_timestamp(signature_der, b"\x30\x03\x02\x01\x01")
    check = verify_seal_signature(stamped, data=DATA, trust=pki.trust).check("timestamp")
    assert check.result is FAILED
    assert check.reason.startswith("timeStamp: not an RFC 3161 TimeStampToken")


def test_tampered_timestamp_signature(pki: Hierarchy, signature_der: bytes) -> None:
    stamped = _stamped(pki, signature_der)
    token = parse_seal_signature(stamped).timestamp
    assert token is not None
    serial = (20250601).to_bytes(4, "big")
    altered = attach_timestamp(signature_der, token.replace(serial, (20250602).to_bytes(4, "big")))
    check = verify_seal_signature(altered, data=DATA, trust=pki.trust).check("timestamp")
    assert check.result is FAILED
    assert "TSA messageDigest attribute does not match the TSTInfo" in check.reason


# --- The maker's authority (seal_maker) -------------------------------------------------------------------


def _seal_made_by(maker: object, listed: list[object], name: str = "郑州市公安局电子证照专用章") -> bytes:
    return make_seal(
        maker=maker.signer,  # type: ignore[attr-defined]
        maker_certificate=maker.certificate,  # type: ignore[attr-defined]
        es_id="41010000000099",
        name=name,
        seal_type=1,
        signer_certificates=[p.certificate for p in listed],  # type: ignore[attr-defined]
        picture=tiny_picture(),
        valid_start=NOW - timedelta(days=1),
        valid_end=NOW + timedelta(days=30),
        created=NOW - timedelta(days=1),
    )


def test_a_seal_made_with_a_seal_users_key_is_invalid(pki: Hierarchy) -> None:
    """An agency's signer key "makes" a seal under another name, listing itself: the maker is a seal user."""
    seal = _seal_made_by(pki.signer, [pki.signer])
    verification = verify_seal(seal, trust=pki.trust, at=NOW)
    assert verification.check("seal_signature").result is PASSED  # the signature itself is sound
    check = verification.check("seal_maker")
    assert check.result is FAILED and "its own user" in check.reason
    assert verification.indication is Indication.INVALID
    signature = sign_seal(
        seal=seal, signer=pki.signer.signer, signer_certificate=pki.signer.certificate, data=DATA,
        property_info=PROPERTY_INFO, signing_time=NOW,
    )  # fmt: skip
    assert verify_seal_signature(signature, data=DATA, trust=pki.trust).indication is Indication.INVALID


def test_a_seal_made_with_another_trusted_key_is_invalid(pki: Hierarchy) -> None:
    """Another signer's key (a seal user's certificate: seal-signer purpose) listing a third party."""
    check = verify_seal(_seal_made_by(pki.other_signer, [pki.signer]), trust=pki.trust, at=NOW).check(
        "seal_maker"
    )
    assert check.result is FAILED
    assert "not a seal-maker certificate" in check.reason and oids.SEAL_SIGNER_PURPOSE in check.reason


def test_a_configured_trusted_maker_is_accepted(pki: Hierarchy) -> None:
    seal = _seal_made_by(pki.other_signer, [pki.signer])
    trust = pki.trust.with_makers([pki.other_signer.certificate])
    check = verify_seal(seal, trust=trust, at=NOW).check("seal_maker")
    assert check.result is PASSED and "configured trusted seal maker" in check.reason


def test_the_maker_profile_asserts_the_seal_maker_purpose(pki: Hierarchy, seal_der: bytes) -> None:
    assert pki.maker.certificate.extended_key_usage == {oids.SEAL_MAKER_PURPOSE}
    check = verify_seal(seal_der, trust=pki.trust, at=NOW).check("seal_maker")
    assert check.result is PASSED and "asserts the seal-maker purpose" in check.reason
