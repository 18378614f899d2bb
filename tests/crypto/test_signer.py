"""``certstore.crypto.signer``: the one signer policy — chain at the judgement time, signing time within the
certificate's validity (and the format's windows) and not in the future beyond the clock skew."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from certstore.checks import CheckResult
from certstore.crypto.signer import (
    CLOCK_SKEW,
    ClaimedTime,
    ValidityWindow,
    judgement_time,
    signer_checks,
    signing_time_check,
)
from certstore.crypto.trust import TrustStore
from certstore.crypto.x509 import CertificateProfile
from tests.pki import Party, make_party

T0 = datetime(2025, 6, 1, 8, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def parties() -> tuple[Party, Party]:
    root = make_party(
        "根", CertificateProfile.ROOT_CA, None, T0 - timedelta(days=400), T0 + timedelta(days=3650)
    )
    signer = make_party(
        "签名者", CertificateProfile.SIGNER, root, T0 - timedelta(days=10), T0 + timedelta(days=10)
    )
    return root, signer


def test_judgement_time_prefers_at_then_the_signing_time() -> None:
    at, signed = T0 + timedelta(days=1), T0
    assert judgement_time(at, signed) == at
    assert judgement_time(None, signed) == signed
    assert abs(judgement_time(None, None) - datetime.now(UTC)) < timedelta(seconds=5)
    with pytest.raises(ValueError, match="timezone-aware"):
        judgement_time(at.replace(tzinfo=None), None)


def test_chain_is_judged_at_the_signing_time_unless_told(parties: tuple[Party, Party]) -> None:
    root, signer = parties
    trust = TrustStore([root.certificate])
    claimed = ClaimedTime(T0, "test")
    checked = signer_checks(signer.certificate, trust=trust, claimed=claimed, now=T0)
    assert (checked.chain.result, checked.signing_time.result, checked.judged_at) == (
        CheckResult.PASSED,
        CheckResult.PASSED,
        T0,
    )
    later = signer_checks(
        signer.certificate, trust=trust, claimed=claimed, at=T0 + timedelta(days=30), now=T0
    )
    assert later.chain.result is CheckResult.FAILED and "expired" in later.chain.reason
    assert later.signing_time.result is CheckResult.PASSED  # the signature was made while it was valid


def test_signing_time_windows_and_the_future(parties: tuple[Party, Party]) -> None:
    _, signer = parties
    cert = signer.certificate
    seal = ValidityWindow(
        "the seal", T0 - timedelta(days=1), T0 + timedelta(days=1), "validStart", "validEnd"
    )

    def check(when: datetime, now: datetime = T0 + timedelta(days=5)) -> tuple[CheckResult, str]:
        result = signing_time_check(cert, ClaimedTime(when, "timeInfo"), windows=(seal,), now=now)
        return result.result, result.reason

    assert check(T0) == (
        CheckResult.PASSED,
        f"signing time {T0.isoformat()} (timeInfo) is within the signer certificate's validity and the seal's "
        "validity",
    )
    result, reason = check(T0 + timedelta(days=2))
    assert result is CheckResult.FAILED and "after the seal's validEnd" in reason
    result, reason = check(T0 - timedelta(days=11))
    assert "before the signer certificate's notBefore" in reason and "before the seal's validStart" in reason
    assert check(T0, now=T0 - CLOCK_SKEW)[0] is CheckResult.PASSED  # exactly the skew: tolerated
    result, reason = check(T0, now=T0 - CLOCK_SKEW - timedelta(seconds=1))
    assert result is CheckResult.FAILED and "in the future" in reason


def test_missing_time_or_certificate(parties: tuple[Party, Party]) -> None:
    _, signer = parties
    unknown = signing_time_check(signer.certificate, None, missing_time="no /M")
    assert (unknown.result, unknown.reason) == (CheckResult.UNKNOWN, "signing time not established: no /M")
    checked = signer_checks(None, trust=TrustStore(), claimed=ClaimedTime(T0, "x", ("w",)))
    assert checked.chain.result is CheckResult.SKIPPED
    assert checked.signing_time.result is CheckResult.SKIPPED
    assert checked.signing_time.warnings == ("w",)
