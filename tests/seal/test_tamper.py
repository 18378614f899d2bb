"""Every single-byte alteration of a seal or a seal signature is detected: never VALID, at least one FAILED
check with a reason. (GmSSL prints trace lines to stderr for each failed verification; that is expected.)"""

from __future__ import annotations

from collections.abc import Callable

from certstore.checks import CheckResult, Indication
from certstore.seal import verify_seal, verify_seal_signature
from tests.seal.seal_builders import DATA, NOW, Hierarchy


def _undetected(original: bytes, verify: Callable[[bytes], object]) -> list[tuple[int, str]]:
    missed = []
    for position in range(len(original)):
        damaged = bytearray(original)
        damaged[position] ^= 0x01
        verification = verify(bytes(damaged))
        checks = verification.checks  # type: ignore[attr-defined]
        failed = [c for c in checks if c.result is CheckResult.FAILED and c.reason]
        if verification.indication is Indication.VALID or not failed:  # type: ignore[attr-defined]
            missed.append((position, verification.indication.value))  # type: ignore[attr-defined]
    return missed


def test_baseline_is_valid(pki: Hierarchy, seal_der: bytes, signature_der: bytes) -> None:
    assert verify_seal(seal_der, trust=pki.trust, at=NOW).indication is Indication.VALID
    assert verify_seal_signature(signature_der, data=DATA, trust=pki.trust).indication is Indication.VALID


def test_every_byte_of_the_seal(pki: Hierarchy, seal_der: bytes) -> None:
    assert len(seal_der) < 2000  # a 1×1 picture keeps this fast
    assert _undetected(seal_der, lambda der: verify_seal(der, trust=pki.trust, at=NOW)) == []


def test_every_byte_of_the_seal_signature(pki: Hierarchy, signature_der: bytes) -> None:
    assert len(signature_der) < 3000
    missed = _undetected(signature_der, lambda der: verify_seal_signature(der, data=DATA, trust=pki.trust))
    assert missed == []
