"""Check results shared by every verification: certificate chains, seals, seal signatures, whole files.

One vocabulary everywhere (see docs/verification.md): each step of a verification yields a
:class:`Check` with a :class:`CheckResult` and a human-readable reason naming the file, field or certificate
concerned; an :class:`Indication` is the bottom line derived from the checks (ETSI EN 319 102-1 spirit).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum

__all__ = ["Check", "CheckResult", "Indication", "indication_of", "worst", "worst_result"]


class CheckResult(StrEnum):
    PASSED = "PASSED"  # the property was established
    FAILED = "FAILED"  # the property is proven false: forgery, tampering, use outside validity
    UNKNOWN = "UNKNOWN"  # could not be established (unknown trust anchor, data unavailable)
    SKIPPED = "SKIPPED"  # not applicable here, or not reached because an earlier step failed


class Indication(StrEnum):
    VALID = "VALID"
    INVALID = "INVALID"
    INDETERMINATE = "INDETERMINATE"


_SEVERITY = {Indication.VALID: 0, Indication.INDETERMINATE: 1, Indication.INVALID: 2}


@dataclass(frozen=True)
class Check:
    """One verification step's outcome. ``warnings`` carry findings that do not change the result
    (e.g. a seal maker's certificate that expired after the seal was used).

    ``reason`` (and each warning) is English — what the JSON report carries. Where the verifier builds it from
    the message catalogue it is a :class:`certstore.messages.Message`, a ``str`` that also carries its key and
    parameters, by which the pages and the Chinese CLI translate it (消息目录, docs/pages.md)."""

    name: str
    result: CheckResult
    reason: str
    warnings: tuple[str, ...] = field(default=())

    @property
    def failed(self) -> bool:
        return self.result is CheckResult.FAILED

    def to_dict(self) -> dict[str, object]:
        data: dict[str, object] = {"name": self.name, "result": self.result.value, "reason": self.reason}
        if self.warnings:
            data["warnings"] = list(self.warnings)
        return data


def indication_of(checks: Iterable[Check]) -> Indication:
    """INVALID if any check failed, INDETERMINATE if any is unknown, VALID otherwise."""
    results = {c.result for c in checks}
    if CheckResult.FAILED in results:
        return Indication.INVALID
    if CheckResult.UNKNOWN in results:
        return Indication.INDETERMINATE
    return Indication.VALID


def worst_result(results: Iterable[CheckResult]) -> CheckResult:
    """The result that decides several partial findings of one check: FAILED > UNKNOWN > SKIPPED > PASSED;
    PASSED for an empty input."""
    found = set(results)
    for result in (CheckResult.FAILED, CheckResult.UNKNOWN, CheckResult.SKIPPED):
        if result in found:
            return result
    return CheckResult.PASSED


def worst(indications: Iterable[Indication]) -> Indication:
    """The most severe indication (INVALID > INDETERMINATE > VALID); VALID for an empty input."""
    return max(indications, key=_SEVERITY.__getitem__, default=Indication.VALID)
