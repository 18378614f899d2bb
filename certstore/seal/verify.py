"""Verification of electronic seals (印章验证, GB/T 38540 §6.3) and seal signatures (签章验证, §7.3).

Each verification is a fixed sequence of named steps; every step yields a :class:`~certstore.checks.Check`
whose reason names the field, certificate or time concerned. A step whose inputs exist still runs after an
earlier step failed, so a report shows every problem at once; a step without inputs is SKIPPED with the
reason.

Seal (:func:`verify_seal`): ``structure`` → ``seal_signature`` → ``seal_maker`` → ``maker_chain`` →
``seal_validity``.

Seal signature (:func:`verify_seal_signature`): ``structure`` → ``signature`` → ``signer_in_seal`` →
``seal_signature`` → ``seal_maker`` → ``seal_validity`` → ``signer_chain`` → ``signing_time`` → ``data_hash`` →
``timestamp``.

``seal_maker``: whoever signed the seal must be a seal maker (制章者) — a certificate asserting certstore's
seal-maker purpose (:data:`certstore.crypto.oids.SEAL_MAKER_PURPOSE`) or one of the trust store's configured
trusted makers (:attr:`certstore.crypto.trust.TrustStore.makers`). A seal "made" with any other trusted key — a
seal user's own certificate standing in as the maker, a TLS client certificate — is FAILED: anyone holding a
signing key could otherwise mint a seal under any name. A maker outside the trust anchors is UNKNOWN (nothing
about it can be known).

Times are judged at the signing time unless the caller gives ``at``: certificates and seals expire, and a
signature made while they were valid stays valid (GB/T 38540 §7.3 d–f, GM/T 0031 §6.2.3). The signing time is
the genTime of the signature's time-stamp token (时间戳, RFC 3161 / GB/T 20520) when the token verifies — a time
a third party vouches for — and otherwise the signer's own ``timeInfo``.
``signer_chain`` and ``signing_time`` are the signer checks every verifier shares
(:func:`certstore.crypto.signer.signer_checks`: chain at the judgement time; signing time within the signer
certificate's validity — here also the seal's — and not in the future); the seal adds only its own window.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from functools import lru_cache

from asn1crypto import core

from certstore.checks import Check, CheckResult, Indication, indication_of, worst_result
from certstore.crypto import oids
from certstore.crypto.signer import CLOCK_SKEW, SIGNING_KEY_USAGES, ClaimedTime, ValidityWindow, signer_checks
from certstore.crypto.sm2 import SM2PublicKey, signature_form
from certstore.crypto.sm3 import sm3
from certstore.crypto.trust import ChainStatus, TrustStore, validate_chain
from certstore.crypto.x509 import Certificate, CertificateError
from certstore.tsa import TokenError, TokenInfo, read_token
from certstore.tsa.tokens import TSA_SIGNATURE_ALGORITHMS

from .model import (
    Seal,
    SealFormatError,
    SealLayout,
    SealSignature,
    parse_seal,
    parse_seal_signature,
)

__all__ = [
    "SEAL_STEPS",
    "SIGNATURE_STEPS",
    "SIGNING_KEY_USAGES",
    "SealVerification",
    "SignatureVerification",
    "verify_seal",
    "verify_seal_signature",
]

#: Signature algorithms of GM/T 0031 RSA seals: recognised, but not verifiable here.
_RSA_SIGNATURE_ALGORITHMS = {
    "1.2.840.113549.1.1.5": "SHA1withRSA",
    "1.2.840.113549.1.1.11": "SHA256withRSA",
}

#: Message-imprint hashes of a seal's time-stamp token, by dotted OID.
_HASHES: dict[str, Callable[[bytes], bytes]] = {
    oids.SM3: sm3,
    oids.SHA1: lambda data: hashlib.sha1(data).digest(),
    oids.SHA256: lambda data: hashlib.sha256(data).digest(),
    oids.SHA384: lambda data: hashlib.sha384(data).digest(),
    oids.SHA512: lambda data: hashlib.sha512(data).digest(),
}


# Step names: the names of the project's verification report.
STRUCTURE = "structure"
SIGNATURE = "signature"
SIGNER_IN_SEAL = "signer_in_seal"
SEAL_SIGNATURE = "seal_signature"
SEAL_MAKER = "seal_maker"
MAKER_CHAIN = "maker_chain"
SEAL_VALIDITY = "seal_validity"
SIGNER_CHAIN = "signer_chain"
SIGNING_TIME = "signing_time"
DATA_HASH = "data_hash"
TIMESTAMP = "timestamp"

#: The steps of :func:`verify_seal` and of :func:`verify_seal_signature`, in order.
SEAL_STEPS = (STRUCTURE, SEAL_SIGNATURE, SEAL_MAKER, MAKER_CHAIN, SEAL_VALIDITY)
SIGNATURE_STEPS = (
    STRUCTURE,
    SIGNATURE,
    SIGNER_IN_SEAL,
    SEAL_SIGNATURE,
    SEAL_MAKER,
    SEAL_VALIDITY,
    SIGNER_CHAIN,
    SIGNING_TIME,
    DATA_HASH,
    TIMESTAMP,
)


# --- Results ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SealVerification:
    """Outcome of :func:`verify_seal`: the bottom line, the ordered checks, and the parsed seal (or None)."""

    indication: Indication
    checks: tuple[Check, ...]
    seal: Seal | None
    at: datetime

    def check(self, name: str) -> Check:
        """The check called ``name``."""
        return next(c for c in self.checks if c.name == name)

    def to_dict(self) -> dict[str, object]:
        return {
            "indication": self.indication.value,
            "at": self.at.isoformat(),
            "seal": None if self.seal is None else _seal_summary(self.seal),
            "checks": [c.to_dict() for c in self.checks],
        }


@dataclass(frozen=True)
class SignatureVerification:
    """Outcome of :func:`verify_seal_signature` (签章验证结果)."""

    indication: Indication
    checks: tuple[Check, ...]
    signature: SealSignature | None
    signing_time: datetime | None = None
    signer: dict[str, str] | None = None
    seal_info: dict[str, object] | None = None

    def check(self, name: str) -> Check:
        """The check called ``name``."""
        return next(c for c in self.checks if c.name == name)

    def to_dict(self) -> dict[str, object]:
        return {
            "indication": self.indication.value,
            "signing_time": None if self.signing_time is None else self.signing_time.isoformat(),
            "signer": self.signer,
            "seal": self.seal_info,
            "property_info": None if self.signature is None else self.signature.property_info,
            "layout": None if self.signature is None else self.signature.layout.value,
            "checks": [c.to_dict() for c in self.checks],
        }


def _seal_summary(seal: Seal) -> dict[str, object]:
    return {"id": seal.es_id, "name": seal.name, "version": seal.version, "layout": seal.layout.value}


def _signer_summary(cert: Certificate) -> dict[str, str]:
    return {"subject": cert.subject, "issuer": cert.issuer, "serial": cert.serial_hex}


# --- Shared steps ----------------------------------------------------------------------------------------


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def _iso(when: datetime) -> str:
    return when.astimezone(UTC).isoformat()


def _structure_failure(exc: SealFormatError) -> Check:
    return Check(STRUCTURE, CheckResult.FAILED, str(exc))


def _algorithm_problem(oid: str, field_name: str) -> tuple[CheckResult, str] | None:
    """Why ``oid`` cannot be verified here, or None for SM2-with-SM3 (the algorithm of both standards' SM2
    profiles). GM/T 0031 RSA seals are recognised but not supported (UNKNOWN); anything else is FAILED."""
    if oid == oids.SM2_WITH_SM3:
        return None
    if oid in _RSA_SIGNATURE_ALGORITHMS:
        return (
            CheckResult.UNKNOWN,
            f"{field_name} is {_RSA_SIGNATURE_ALGORITHMS[oid]} ({oid}); RSA is not supported",
        )
    return CheckResult.FAILED, f"{field_name} {oid} is not SM2-with-SM3 ({oids.SM2_WITH_SM3})"


def _judgement_time(at: datetime | None) -> datetime | None:
    if at is not None and at.tzinfo is None:
        raise ValueError("the verification time must be a timezone-aware datetime")
    return at


@lru_cache(maxsize=256)
def _maker_signature_valid(signed: bytes, signature: bytes, key: SM2PublicKey) -> bool:
    """Memoised: an agency stamps thousands of documents with the same few seals, and the maker's signature
    over a seal never changes (validity windows are judged separately, per verification)."""
    return key.verify(signed, signature)


def _seal_signature_check(seal: Seal) -> Check:
    """GB/T 38540 §6.3 b): the maker's (制章者) signature over the seal."""
    where = {
        SealLayout.GBT38540: "signAlgID",
        SealLayout.V5: "signatureAlgID",
        SealLayout.GMT0031: "signInfo.signatureAlgorithm",
    }[seal.layout]
    problem = _algorithm_problem(seal.signature_algorithm, f"seal {where}")
    if problem is not None:
        return Check(SEAL_SIGNATURE, *problem)
    covered = (
        "DER(SEQUENCE{SES_SealInfo, cert, signatureAlgorithm})"
        if seal.layout is SealLayout.GMT0031
        else "DER(SES_SealInfo)"
    )
    maker = seal.maker_certificate
    if _maker_signature_valid(seal.signed_bytes, seal.signature_value, maker.public_key):
        return Check(
            SEAL_SIGNATURE,
            CheckResult.PASSED,
            f"maker signature over {covered} ({len(seal.signed_bytes)} bytes) verifies with the key of "
            f"{maker.subject!r}",
            maker.extension_warnings,
        )
    return Check(
        SEAL_SIGNATURE,
        CheckResult.FAILED,
        f"maker signature over {covered} does not verify with the key of {maker.subject!r}: "
        "the seal was altered or not signed by its maker certificate",
        maker.extension_warnings,
    )


def _seal_maker_check(seal: Seal, trust: TrustStore) -> Check:
    """The maker (制章者) is a seal maker: its certificate asserts the seal-maker purpose or is a configured trusted
    maker; never one of the seal's own users."""
    maker = seal.maker_certificate
    for listed in seal.signer_certificates:
        try:
            user = Certificate.from_der(listed)
        except CertificateError:
            continue
        if user.public_key == maker.public_key:
            return Check(
                SEAL_MAKER,
                CheckResult.FAILED,
                f"the seal was signed with the key of its own user {user.subject!r}: a seal user cannot make "
                "seals",
            )
    purposes = maker.extended_key_usage
    if purposes is not None and oids.SEAL_MAKER_PURPOSE in purposes:
        return Check(
            SEAL_MAKER,
            CheckResult.PASSED,
            f"maker certificate {maker.subject!r} asserts the seal-maker purpose",
        )
    if trust.is_trusted_maker(maker):
        return Check(
            SEAL_MAKER, CheckResult.PASSED, f"maker {maker.subject!r} is a configured trusted seal maker"
        )
    asserted = (
        "no extended key usage" if purposes is None else f"extended key usage {', '.join(sorted(purposes))}"
    )
    if validate_chain(maker, trust=trust, at=seal.created).status is ChainStatus.NO_TRUST_ANCHOR:
        return Check(
            SEAL_MAKER,
            CheckResult.UNKNOWN,
            f"maker certificate {maker.subject!r} ({asserted}) is not under a trust anchor: its authority to make "
            "seals cannot be established",
        )
    return Check(
        SEAL_MAKER,
        CheckResult.FAILED,
        f"maker certificate {maker.subject!r} is not a seal-maker certificate ({asserted}, not a configured "
        "trusted maker): the seal was made with a key that has no authority to make seals",
    )


def _seal_window(seal: Seal, at: datetime) -> tuple[CheckResult, str]:
    if at < seal.valid_start:
        return CheckResult.FAILED, f"seal not yet valid at {_iso(at)} (validStart {_iso(seal.valid_start)})"
    if at > seal.valid_end:
        return CheckResult.FAILED, f"seal expired: validEnd {_iso(seal.valid_end)} is before {_iso(at)}"
    return (
        CheckResult.PASSED,
        f"seal valid at {_iso(at)} (validStart {_iso(seal.valid_start)}, validEnd {_iso(seal.valid_end)})",
    )


def _maker_chain_check(seal: Seal, trust: TrustStore, at: datetime) -> Check:
    chain = validate_chain(seal.maker_certificate, trust=trust, at=at, key_usage=SIGNING_KEY_USAGES)
    check = chain.to_check(MAKER_CHAIN)
    return Check(MAKER_CHAIN, check.result, f"maker certificate: {check.reason}", check.warnings)


# --- Seal verification -----------------------------------------------------------------------------------


def verify_seal(seal_der: bytes, *, trust: TrustStore, at: datetime | None = None) -> SealVerification:
    """Verify an electronic seal (GB/T 38540 §6.3 / GM/T 0031 §6.1.2) at ``at`` (default: now).

    Steps: ``structure`` (format), ``seal_signature`` (maker signature over the signed part as received),
    ``maker_chain`` (maker certificate chain, validity and key usage at ``at``), ``seal_validity``
    (validStart ≤ at ≤ validEnd).
    """
    when = _judgement_time(at) or _now()
    try:
        seal = parse_seal(seal_der)
    except SealFormatError as exc:
        reason = "not run: the seal could not be parsed (see structure)"
        checks = (
            _structure_failure(exc),
            *(Check(name, CheckResult.SKIPPED, reason) for name in SEAL_STEPS[1:]),
        )
        return SealVerification(indication_of(checks), checks, None, when)
    window_result, window_reason = _seal_window(seal, when)
    checks = (
        Check(STRUCTURE, CheckResult.PASSED, _structure_reason(seal), seal.warnings),
        _seal_signature_check(seal),
        _seal_maker_check(seal, trust),
        _maker_chain_check(seal, trust, when),
        Check(SEAL_VALIDITY, window_result, window_reason),
    )
    return SealVerification(indication_of(checks), checks, seal, when)


def _structure_reason(seal: Seal) -> str:
    return (
        f"{seal.layout.value} seal (SES_Header.version {seal.version}, vendor {seal.vendor_id!r}), "
        f"{len(seal.der)} bytes"
    )


# --- Seal signature verification -------------------------------------------------------------------------


def verify_seal_signature(
    signature_der: bytes, *, data: bytes | None, trust: TrustStore, at: datetime | None = None
) -> SignatureVerification:
    """Verify a seal signature (GB/T 38540 §7.3; GM/T 0031 §6.2.3) over ``data`` (for OFD: the exact bytes of
    the signature's ``Signature.xml``).

    ``at`` overrides the time at which seal and certificate validity are judged; by default it is the
    signing time: the time-stamp token's genTime when the token verifies, else ``timeInfo``. ``data=None`` leaves
    the document digest unchecked (``data_hash`` UNKNOWN).
    """
    at = _judgement_time(at)
    try:
        sig = parse_seal_signature(signature_der)
    except SealFormatError as exc:
        reason = "not run: the seal signature could not be parsed (see structure)"
        checks = (
            _structure_failure(exc),
            *(Check(name, CheckResult.SKIPPED, reason) for name in SIGNATURE_STEPS[1:]),
        )
        return SignatureVerification(indication_of(checks), checks, None)

    seal = sig.seal
    timestamp, stamped_at = _timestamp_check(sig, trust)
    claimed = (
        ClaimedTime(sig.signing_time, "timeInfo")
        if stamped_at is None
        else ClaimedTime(stamped_at, "the time-stamp token's genTime")
    )
    signer = signer_checks(
        sig.signer_certificate,
        trust=trust,
        claimed=claimed,
        at=at,
        windows=(ValidityWindow("the seal", seal.valid_start, seal.valid_end, "validStart", "validEnd"),),
    )
    checks = (
        Check(
            STRUCTURE, CheckResult.PASSED, _signature_structure_reason(sig), (*sig.warnings, *seal.warnings)
        ),
        _signature_check(sig),
        _signer_in_seal_check(sig),
        _seal_signature_check(seal),
        _seal_maker_check(seal, trust),
        _seal_validity_check(sig, trust, signer.judged_at),
        signer.chain,
        signer.signing_time,
        _data_hash_check(sig, data),
        timestamp,
    )
    return SignatureVerification(
        indication=indication_of(checks),
        checks=checks,
        signature=sig,
        signing_time=claimed.time,
        signer=_signer_summary(sig.signer_certificate),
        seal_info=_seal_summary(seal),
    )


def _signature_structure_reason(sig: SealSignature) -> str:
    return (
        f"{sig.layout.value} SES_Signature (TBS_Sign.version {sig.version}) holding seal {sig.seal.es_id!r} "
        f"({sig.seal.layout.value}), {len(sig.der)} bytes"
    )


def _signature_check(sig: SealSignature) -> Check:
    """§7.3 b): the signer's (签章者) signature over TBS_Sign as received."""
    where = "TBS_Sign.signatureAlgorithm" if sig.layout is SealLayout.GMT0031 else "signatureAlgID"
    problem = _algorithm_problem(sig.signature_algorithm, where)
    if problem is not None:
        return Check(SIGNATURE, *problem)
    signer = sig.signer_certificate
    if signer.public_key.verify(sig.signed_bytes, sig.signature_value):
        form = signature_form(sig.signature_value)
        return Check(
            SIGNATURE,
            CheckResult.PASSED,
            f"{form} SM2 signature over DER(TBS_Sign) ({len(sig.signed_bytes)} bytes) verifies with the key "
            f"of {signer.subject!r}",
            signer.extension_warnings,
        )
    return Check(
        SIGNATURE,
        CheckResult.FAILED,
        f"SM2 signature over DER(TBS_Sign) does not verify with the key of {signer.subject!r}: the signed "
        "information was altered or signed with another key",
        signer.extension_warnings,
    )


def _signer_in_seal_check(sig: SealSignature) -> Check:
    """§7.3 c): the signer certificate must be listed in the seal (by certificate or by digest)."""
    signer = sig.signer_certificate
    match = sig.seal.match_signer(signer)
    if match is not None:
        return Check(SIGNER_IN_SEAL, CheckResult.PASSED, f"signer certificate {signer.subject!r} is {match}")
    if sig.seal.cert_list_type == 1:
        listed = len(sig.seal.signer_certificates)
        how = f"is not byte-identical to any of the {listed} certificate(s) listed in the seal"
    else:
        count = len(sig.seal.cert_digests)
        how = f"matches none of the {count} digest(s) listed in the seal (SM3, SHA-256 tried)"
    return Check(
        SIGNER_IN_SEAL,
        CheckResult.FAILED,
        f"signer certificate {signer.subject!r} (serial {signer.serial_hex}) {how}",
    )


def _seal_validity_check(sig: SealSignature, trust: TrustStore, when: datetime) -> Check:
    """§7.3 d): the seal at time ``when``: maker certificate chain and the seal's validity window.

    When the only problem is that the maker certificate had expired by ``when`` while it was valid when the
    seal was made, the check passes with a warning (§7.3 d): a seal outlives its maker's certificate).
    """
    seal = sig.seal
    maker = seal.maker_certificate
    chain = validate_chain(maker, trust=trust, at=when, key_usage=SIGNING_KEY_USAGES)
    warnings: list[str] = list(chain.warnings)
    if chain.ok:
        maker_result, maker_reason = CheckResult.PASSED, f"maker certificate: {chain.reason}"
    elif (
        chain.status is ChainStatus.EXPIRED
        and when > maker.not_after
        and all(cert.valid_at(when) for cert in chain.path[1:])
    ):
        at_creation = validate_chain(maker, trust=trust, at=seal.created, key_usage=SIGNING_KEY_USAGES)
        if at_creation.ok:
            maker_result = CheckResult.PASSED
            maker_reason = f"maker certificate valid when the seal was made ({_iso(seal.created)})"
            warnings.append(
                f"maker certificate {maker.subject!r} expired {_iso(maker.not_after)}, before {_iso(when)}; "
                "accepted with a warning (GB/T 38540 §7.3 d)"
            )
        else:
            check = at_creation.to_check(SEAL_VALIDITY)
            maker_result = check.result
            maker_reason = f"maker certificate at seal creation {_iso(seal.created)}: {check.reason}"
    else:
        check = chain.to_check(SEAL_VALIDITY)
        maker_result, maker_reason = check.result, f"maker certificate: {check.reason}"
    window_result, window_reason = _seal_window(seal, when)
    return Check(
        SEAL_VALIDITY,
        worst_result((maker_result, window_result)),
        f"{window_reason}; {maker_reason}",
        tuple(warnings),
    )


def _data_hash_check(sig: SealSignature, data: bytes | None) -> Check:
    """§7.3 g): SM3 of the original data equals TBS_Sign.dataHash."""
    if data is None:
        return Check(
            DATA_HASH,
            CheckResult.UNKNOWN,
            f"signed data not supplied: dataHash of {sig.property_info!r} not checked",
        )
    digest = sm3(data)
    if digest == sig.data_hash:
        return Check(DATA_HASH, CheckResult.PASSED, f"SM3 of the {len(data)} data bytes equals dataHash")
    return Check(
        DATA_HASH,
        CheckResult.FAILED,
        f"SM3 of the data ({digest.hex()}) differs from dataHash ({sig.data_hash.hex()}) for "
        f"{sig.property_info!r}: the signed data was altered",
    )


# --- Time stamp (GB/T 38540 §7.3 h) ----------------------------------------------------------------------


def _timestamp_check(sig: SealSignature, trust: TrustStore) -> tuple[Check, datetime | None]:
    """§7.3 h): the time-stamp token over the signature value, when present (RFC 3161 / GB/T 20520); with the
    token's genTime when the token verifies (PASSED), else None."""
    if sig.timestamp is None:
        return Check(TIMESTAMP, CheckResult.SKIPPED, "no timestamp"), None
    try:
        token = _parse_token(sig.timestamp)
    except ValueError as exc:
        return Check(TIMESTAMP, CheckResult.FAILED, f"timeStamp: {exc}"), None
    results: list[tuple[CheckResult, str]] = []
    warnings: list[str] = []

    hash_fn = _HASHES.get(token.hash_algorithm)
    if hash_fn is None:
        results.append((CheckResult.UNKNOWN, f"message imprint hash {token.hash_algorithm} not supported"))
    else:
        hashed = token.hashed_message
        if hashed == hash_fn(sig.signature_value):
            results.append((CheckResult.PASSED, "message imprint matches the signature value"))
        elif hashed == hash_fn(core.OctetBitString(sig.signature_value).dump()):
            results.append(
                (CheckResult.PASSED, "message imprint matches the DER BIT STRING of the signature")
            )
            warnings.append("timestamp imprint covers the BIT STRING encoding, not the signature octets")
        else:
            results.append((CheckResult.FAILED, "message imprint does not match the signature value"))

    gen_time = token.gen_time
    if gen_time + CLOCK_SKEW < sig.signing_time:
        results.append(
            (
                CheckResult.FAILED,
                f"genTime {_iso(gen_time)} is before the signing time {_iso(sig.signing_time)}",
            )
        )
    elif gen_time < sig.signing_time:  # the TSA's clock a little behind the signer's: within the skew allowed
        warnings.append(
            f"genTime {_iso(gen_time)} is {sig.signing_time - gen_time} before the signing time "
            f"{_iso(sig.signing_time)} (within the {CLOCK_SKEW} clock skew allowed)"
        )
    signer = sig.signer_certificate
    if not signer.valid_at(gen_time):
        results.append(
            (CheckResult.FAILED, f"genTime {_iso(gen_time)} is outside the signer certificate's validity")
        )

    results.append(_tsa_signature(token))
    if token.tsa_certificate is not None:
        chain = validate_chain(
            token.tsa_certificate, trust=trust, at=gen_time, intermediates=token.certificates
        )
        chain_check = chain.to_check(TIMESTAMP)
        results.append((chain_check.result, f"TSA certificate: {chain_check.reason}"))
        purposes = token.tsa_certificate.extended_key_usage
        if purposes is None or oids.TIME_STAMPING not in purposes:
            results.append((CheckResult.FAILED, "TSA certificate lacks the timeStamping extended key usage"))

    result = worst_result(r for r, _ in results)
    shown = [reason for r, reason in results if r is result] if result is not CheckResult.PASSED else []
    reason = f"timestamp genTime {_iso(gen_time)}: " + (
        "; ".join(shown) if shown else "token verifies, imprint matches, genTime ≥ timeInfo"
    )
    return (
        Check(TIMESTAMP, result, reason, tuple(warnings)),
        gen_time if result is CheckResult.PASSED else None,
    )


def _parse_token(raw: bytes) -> TokenInfo:
    """The one reader of time-stamp tokens (:func:`certstore.tsa.read_token`), its errors as ValueError."""
    try:
        token = read_token(raw)
    except TokenError as exc:
        raise ValueError(f"not an RFC 3161 TimeStampToken: {exc}") from exc
    if token.gen_time.tzinfo is UTC:  # read_token gives UTC already: no copy of the token
        return token
    return replace(token, gen_time=token.gen_time.astimezone(UTC))


def _tsa_signature(token: TokenInfo) -> tuple[CheckResult, str]:
    if token.tsa_certificate is None:
        return CheckResult.UNKNOWN, "TSA certificate not included in the token; TSA signature not verified"
    if token.signature_algorithm not in TSA_SIGNATURE_ALGORITHMS:
        return CheckResult.UNKNOWN, f"TSA signature algorithm {token.signature_algorithm} not supported"
    problem = token.signature_problem()
    if problem is None:
        return CheckResult.PASSED, "TSA signature verifies"
    return CheckResult.FAILED, problem
