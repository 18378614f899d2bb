"""The signer checks of every signature the repository verifies (签章者/签名者证书): one policy, one place.

Seal signatures (:mod:`certstore.seal.verify`, GB/T 38540 §7.3 e–f), OFD ``Type="Sign"`` values
(:mod:`certstore.verify.sign`, GB/T 35275) and PDF CMS signatures (:mod:`certstore.verify.pdf`) all ask the same
two questions of their signer, as pyHanko routes every CMS signer check through one place; here they get one
answer. :func:`signer_checks` yields the report's ``signer_chain`` and ``signing_time`` checks:

* ``signer_chain`` — :func:`~certstore.crypto.trust.validate_chain` of the signer certificate to the trust
  anchors (issuer signatures, validity of every certificate, CA flags, key usage digitalSignature or
  nonRepudiation: :data:`SIGNING_KEY_USAGES`), judged at the caller's ``at`` when given, else at the claimed
  signing time, else now (:func:`judgement_time`). A signature made while its certificate was valid stays valid
  after the certificate expires (GB/T 38540 §7.3 e, GM/T 0031 §6.2.3).
* ``signing_time`` — the claimed signing time lies within the signer certificate's validity (notBefore …
  notAfter), within any further window the format adds (a seal's validStart … validEnd), and is not in the
  future: later than the verifier's clock plus :data:`CLOCK_SKEW` is FAILED — a signature cannot have been made
  after it was presented, and a signing time in the future would otherwise move the judgement time to a date the
  certificate might still cover. No claimed time: UNKNOWN; no signer certificate: SKIPPED (the ``signature``
  check says why).

The module sits with the certificate-path code in :mod:`certstore.crypto`, below both :mod:`certstore.seal` and
:mod:`certstore.verify`, so each format's verifier imports it without importing another format's verifier.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from certstore.checks import Check, CheckResult
from certstore.crypto.trust import TrustStore, validate_chain
from certstore.crypto.x509 import Certificate

__all__ = [
    "CLOCK_SKEW",
    "SIGNER_CHAIN",
    "SIGNING_KEY_USAGES",
    "SIGNING_TIME",
    "ClaimedTime",
    "SignerChecks",
    "ValidityWindow",
    "judgement_time",
    "signer_chain_check",
    "signer_checks",
    "signing_time_check",
]

#: Key usages that allow a certificate to sign seals, seal signatures and signatures (any one suffices).
SIGNING_KEY_USAGES = frozenset({"digital_signature", "non_repudiation"})

#: How far a claimed signing time may lie ahead of the verifier's clock (clocks of signers and verifiers
#: drift); also the difference a PDF's ``/M`` may have from its signed signingTime without a warning.
CLOCK_SKEW = timedelta(minutes=5)

SIGNER_CHAIN = "signer_chain"
SIGNING_TIME = "signing_time"

_NO_SIGNER = "not run: no signer certificate (see signature)"


@dataclass(frozen=True)
class ClaimedTime:
    """When a signature says it was made, and where that comes from (``timeInfo``, the signed signingTime
    attribute, the unsigned ``/M`` …); ``warnings`` travel to the ``signing_time`` check."""

    time: datetime
    source: str
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class ValidityWindow:
    """A further span the signing time must lie in, e.g. a seal's ``validStart`` … ``validEnd``: named in the
    reasons as "before {owner}'s {start_field} …"."""

    owner: str
    start: datetime
    end: datetime
    start_field: str
    end_field: str


@dataclass(frozen=True)
class SignerChecks:
    """The two signer checks of one signature, and the time validity was judged at."""

    chain: Check
    signing_time: Check
    judged_at: datetime


def _iso(when: datetime) -> str:
    return when.astimezone(UTC).isoformat()


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def judgement_time(at: datetime | None, signing_time: datetime | None) -> datetime:
    """When validity is judged: the caller's ``at``, else the claimed signing time, else now."""
    if at is not None:
        if at.tzinfo is None:
            raise ValueError("the verification time must be a timezone-aware datetime")
        return at
    if signing_time is not None:
        return signing_time
    return _now()


def signer_chain_check(
    certificate: Certificate | None,
    *,
    trust: TrustStore,
    at: datetime,
    intermediates: Sequence[Certificate] = (),
) -> Check:
    """``signer_chain``: the path from ``certificate`` to an anchor of ``trust`` at ``at``, with a signing key
    usage; SKIPPED without a certificate."""
    if certificate is None:
        return Check(SIGNER_CHAIN, CheckResult.SKIPPED, _NO_SIGNER)
    others = [c for c in intermediates if c != certificate]
    chain = validate_chain(
        certificate, trust=trust, at=at, intermediates=others, key_usage=SIGNING_KEY_USAGES
    )
    check = chain.to_check(SIGNER_CHAIN)
    return Check(SIGNER_CHAIN, check.result, f"signer certificate: {check.reason}", check.warnings)


def signing_time_check(
    certificate: Certificate | None,
    claimed: ClaimedTime | None,
    *,
    windows: Sequence[ValidityWindow] = (),
    missing_time: str = "the signature states no signing time",
    now: datetime | None = None,
) -> Check:
    """``signing_time``: ``claimed`` within the certificate's validity and ``windows``, and not after ``now``
    (default: the clock) plus :data:`CLOCK_SKEW`. UNKNOWN without a claimed time (``missing_time`` says why),
    SKIPPED without a certificate."""
    if claimed is None:
        return Check(SIGNING_TIME, CheckResult.UNKNOWN, f"signing time not established: {missing_time}")
    if certificate is None:
        return Check(SIGNING_TIME, CheckResult.SKIPPED, _NO_SIGNER, claimed.warnings)
    t = claimed.time
    own = ValidityWindow(
        "the signer certificate", certificate.not_before, certificate.not_after, "notBefore", "notAfter"
    )
    spans = (own, *windows)
    problems = []
    for span in spans:
        if t < span.start:
            problems.append(f"before {span.owner}'s {span.start_field} {_iso(span.start)}")
        if t > span.end:
            problems.append(f"after {span.owner}'s {span.end_field} {_iso(span.end)}")
    clock = now if now is not None else _now()
    if t > clock + CLOCK_SKEW:
        problems.append(f"in the future (the verifier's clock reads {_iso(clock)})")
    stated = f"signing time {_iso(t)} ({claimed.source})"
    if problems:
        return Check(
            SIGNING_TIME, CheckResult.FAILED, f"{stated} is " + " and ".join(problems), claimed.warnings
        )
    within = " and ".join(f"{span.owner}'s validity" for span in spans)
    return Check(SIGNING_TIME, CheckResult.PASSED, f"{stated} is within {within}", claimed.warnings)


def signer_checks(
    certificate: Certificate | None,
    *,
    trust: TrustStore,
    claimed: ClaimedTime | None,
    at: datetime | None = None,
    intermediates: Sequence[Certificate] = (),
    windows: Sequence[ValidityWindow] = (),
    missing_time: str = "the signature states no signing time",
    now: datetime | None = None,
) -> SignerChecks:
    """``signer_chain`` and ``signing_time`` of one signature under the one policy of this module: the chain is
    judged at ``at``, else at the claimed signing time, else now; the signing time must lie within the signer
    certificate's validity (and ``windows``) and not in the future."""
    when = judgement_time(at, None if claimed is None else claimed.time)
    return SignerChecks(
        chain=signer_chain_check(certificate, trust=trust, at=when, intermediates=intermediates),
        signing_time=signing_time_check(
            certificate, claimed, windows=windows, missing_time=missing_time, now=now
        ),
        judged_at=when,
    )
