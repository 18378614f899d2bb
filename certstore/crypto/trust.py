"""Trust anchors and certificate-path validation (RFC 5280 §6, the parts a seal verifier needs).

:func:`validate_chain` builds a path from a leaf to a configured trust anchor and checks, in order:
path building with issuer signatures, validity of every certificate at the given time, CA flags and path
lengths, unknown critical extensions, and the leaf's key usage. Issuers are matched by name *or* by key
identifier, so a certificate whose bytes were altered still meets its real issuer and fails on the signature
(INVALID) rather than on a missing anchor (INDETERMINATE).

Revocation (CRL/OCSP) is not checked here: the repository has no revocation source yet, and the result says so.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from pathlib import Path

from certstore.checks import Check, CheckResult
from certstore.crypto.x509 import Certificate, encoded_names_equal, load_certificates

__all__ = ["ChainStatus", "ChainValidation", "TrustStore", "validate_chain"]

MAX_PATH_LENGTH = 8

# Extensions whose semantics we implement or which carry no constraint on path validation.
_UNDERSTOOD_EXTENSIONS = frozenset(
    {
        "basic_constraints",
        "key_usage",
        "extended_key_usage",
        "key_identifier",
        "authority_key_identifier",
        "subject_alt_name",
        "issuer_alt_name",
        "certificate_policies",
        "crl_distribution_points",
        "authority_information_access",
        "freshest_crl",
    }
)


class TrustStore:
    """A set of trust anchors (usually self-signed roots) that paths must end in, and the trusted seal makers.

    ``makers`` (受信任的制章者) are maker certificates accepted as seal makers although they do not assert
    certstore's seal-maker purpose (:data:`certstore.crypto.oids.SEAL_MAKER_PURPOSE`): another vendor's 制章系统
    whose certificates the deployment has vetted (``keys/makers/*.pem``, ``certstore verify --maker``)."""

    def __init__(self, anchors: Iterable[Certificate] = (), *, makers: Iterable[Certificate] = ()) -> None:
        self._anchors: dict[bytes, Certificate] = {}
        self._makers: dict[bytes, Certificate] = {maker.der: maker for maker in makers}
        for anchor in anchors:
            self.add(anchor)

    @classmethod
    def from_pem_files(cls, paths: Iterable[Path]) -> TrustStore:
        store = cls()
        for path in paths:
            for cert in load_certificates(Path(path).read_bytes()):
                store.add(cert)
        return store

    def add(self, anchor: Certificate) -> None:
        self._anchors[anchor.der] = anchor

    def extended(self, extra: Iterable[Certificate]) -> TrustStore:
        """A new store with this store's anchors plus ``extra`` (and the same makers)."""
        return TrustStore([*self._anchors.values(), *extra], makers=self._makers.values())

    def with_makers(self, makers: Iterable[Certificate]) -> TrustStore:
        """A new store with the same anchors and ``makers`` added to the trusted seal makers."""
        return TrustStore(self._anchors.values(), makers=[*self._makers.values(), *makers])

    @property
    def makers(self) -> tuple[Certificate, ...]:
        return tuple(self._makers.values())

    def is_trusted_maker(self, certificate: Certificate) -> bool:
        return certificate.der in self._makers

    @property
    def anchors(self) -> tuple[Certificate, ...]:
        return tuple(self._anchors.values())

    def __contains__(self, cert: object) -> bool:
        return isinstance(cert, Certificate) and cert.der in self._anchors

    def __len__(self) -> int:
        return len(self._anchors)


class ChainStatus(Enum):
    VALID = "valid"
    NO_TRUST_ANCHOR = "no trust anchor"
    BAD_SIGNATURE = "bad signature"
    EXPIRED = "expired"
    NOT_YET_VALID = "not yet valid"
    NOT_CA = "issuer is not a CA"
    KEY_USAGE = "key usage not permitted"
    MALFORMED = "malformed or unsupported"
    #: A certificate of the path carries a malformed critical extension: it cannot be relied upon, which says
    #: nothing about tampering (INDETERMINATE, not INVALID).
    UNRELIABLE = "certificate cannot be relied upon"


@dataclass(frozen=True)
class ChainValidation:
    """The outcome of :func:`validate_chain`. ``path`` runs from the leaf to the anchor when one was found."""

    status: ChainStatus
    reason: str
    path: tuple[Certificate, ...]
    at: datetime
    #: Malformed non-critical extensions of the issuers on the path (the leaf's own are the business of the
    #: check that uses its key).
    warnings: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.status is ChainStatus.VALID

    def to_check(self, name: str) -> Check:
        """VALID → PASSED; no anchor or an unreliable certificate → UNKNOWN (trust could not be established);
        anything else → FAILED."""
        if self.status is ChainStatus.VALID:
            result = CheckResult.PASSED
        elif self.status in (ChainStatus.NO_TRUST_ANCHOR, ChainStatus.UNRELIABLE):
            result = CheckResult.UNKNOWN
        else:
            result = CheckResult.FAILED
        return Check(name, result, self.reason, self.warnings)


def _issuer_candidates(cert: Certificate, pool: Sequence[Certificate]) -> list[Certificate]:
    """Certificates that may have issued ``cert``: same name as its issuer, or the key its authority key
    identifier names.

    A certificate that names a trusted CA as issuer but does not verify with that CA's key is what a forgery
    looks like, so a same-named CA with another key still counts as a candidate (and the result is
    BAD_SIGNATURE, not "unknown CA"); the reason then points out the key-identifier mismatch."""
    aki = cert.authority_key_id
    issuer = cert.issuer_der
    by_name = [c for c in pool if encoded_names_equal(c.subject_der, issuer)]
    by_key = [c for c in pool if aki is not None and c.subject_key_id == aki and c not in by_name]
    return by_name + by_key


def _build_path(
    leaf: Certificate, trust: TrustStore, intermediates: Sequence[Certificate]
) -> tuple[ChainStatus, str, tuple[Certificate, ...]]:
    path = [leaf]
    current = leaf
    anchors = list(trust.anchors)
    pool = anchors + [c for c in intermediates if c not in trust]
    while current not in trust:
        if len(path) > MAX_PATH_LENGTH:
            return ChainStatus.MALFORMED, f"path longer than {MAX_PATH_LENGTH} certificates", tuple(path)
        candidates = [c for c in _issuer_candidates(current, pool) if c not in path]
        if not candidates:
            if current.is_self_issued and current.is_signed_by(current.public_key):
                why = f"self-signed certificate {current.subject!r} is not a trust anchor"
            else:
                why = f"no trust anchor or intermediate for issuer {current.issuer!r} of {current.subject!r}"
            return ChainStatus.NO_TRUST_ANCHOR, why, tuple(path)
        issuer = next((c for c in candidates if current.is_signed_by(c.public_key)), None)
        if issuer is None:
            named = candidates[0]
            why = f"signature of {current.subject!r} does not verify with the key of {named.subject!r}"
            aki = current.authority_key_id
            if aki is not None and named.subject_key_id is not None and named.subject_key_id != aki:
                why += f" (its authority key identifier {aki.hex()} names another key: damaged or forged)"
            return ChainStatus.BAD_SIGNATURE, why, tuple(path)
        path.append(issuer)
        current = issuer
    return ChainStatus.VALID, "", tuple(path)


def validate_chain(
    leaf: Certificate,
    *,
    trust: TrustStore,
    at: datetime,
    intermediates: Sequence[Certificate] = (),
    key_usage: frozenset[str] = frozenset(),
) -> ChainValidation:
    """Validate ``leaf`` at time ``at``. ``key_usage`` lists acceptable usages: when the leaf has a keyUsage
    extension it must assert at least one of them. A certificate of the path with a malformed critical extension
    makes the result UNRELIABLE; malformed non-critical extensions of the issuers become ``warnings``."""
    result = _validate_chain(leaf, trust=trust, at=at, intermediates=intermediates, key_usage=key_usage)
    warnings = tuple(w for cert in result.path[1:] for w in cert.extension_warnings)
    if not warnings:
        return result
    return ChainValidation(result.status, result.reason, result.path, result.at, warnings)


def _validate_chain(
    leaf: Certificate,
    *,
    trust: TrustStore,
    at: datetime,
    intermediates: Sequence[Certificate],
    key_usage: frozenset[str],
) -> ChainValidation:
    status, reason, path = _build_path(leaf, trust, intermediates)
    if status is not ChainStatus.VALID:
        return ChainValidation(status, reason, path, at)

    for cert in path:
        if at < cert.not_before:
            return ChainValidation(
                ChainStatus.NOT_YET_VALID,
                f"{cert.subject!r} is not valid before {cert.not_before.isoformat()} (checked at {at.isoformat()})",
                path,
                at,
            )
        if at > cert.not_after:
            return ChainValidation(
                ChainStatus.EXPIRED,
                f"{cert.subject!r} expired {cert.not_after.isoformat()} (checked at {at.isoformat()})",
                path,
                at,
            )
        if cert.unreliable_reason is not None:
            return ChainValidation(ChainStatus.UNRELIABLE, cert.unreliable_reason, path, at)
        unknown = cert.critical_extensions - _UNDERSTOOD_EXTENSIONS
        if unknown:
            return ChainValidation(
                ChainStatus.MALFORMED,
                f"{cert.subject!r} has unsupported critical extension(s): {', '.join(sorted(unknown))}",
                path,
                at,
            )

    for depth, issuer in enumerate(path[1:]):
        if issuer in trust:
            # RFC 5280 §6.1: a trust anchor is trusted by configuration, not by its extensions (the ofdrw test
            # root, for one, is a CA without keyCertSign).
            continue
        if not issuer.is_ca:
            return ChainValidation(
                ChainStatus.NOT_CA, f"{issuer.subject!r} issued a certificate but is not a CA", path, at
            )
        usages = issuer.key_usage
        if usages is not None and "key_cert_sign" not in usages:
            return ChainValidation(
                ChainStatus.KEY_USAGE,
                f"{issuer.subject!r} lacks keyCertSign but issued a certificate",
                path,
                at,
            )
        limit = issuer.path_length
        if limit is not None and depth > limit:
            return ChainValidation(
                ChainStatus.NOT_CA, f"{issuer.subject!r} path length constraint {limit} exceeded", path, at
            )

    if key_usage and leaf.key_usage is not None and not (leaf.key_usage & key_usage):
        return ChainValidation(
            ChainStatus.KEY_USAGE,
            f"{leaf.subject!r} key usage {sorted(leaf.key_usage)} permits none of {sorted(key_usage)}",
            path,
            at,
        )
    names = " → ".join(c.common_name or c.subject for c in path)
    return ChainValidation(
        ChainStatus.VALID,
        f"chain {names} valid at {at.isoformat()} (revocation not checked: no CRL source configured)",
        path,
        at,
    )
