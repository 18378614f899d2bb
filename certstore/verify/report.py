"""The verification report (docs/verification.md, "The report (JSON)"): one shape for the CLI, the API and the page.

Typed, immutable models with :meth:`VerificationReport.to_dict` producing exactly the contract's JSON (plus a
few extra fields: ``file``, ``verified_at``, per-signature ``location``, the signer's ``organization`` and
``organization_identifier`` when its certificate names them, per-check ``warnings`` and the certificate-level
``checks``) and :meth:`VerificationReport.from_dict` reading it back.

Indications: a signature's is derived from its checks (:func:`~certstore.checks.indication_of`); the file's
is the worst of its signatures', of the file-level findings and of the certificate-level checks, and INVALID
when the file has no signature at all (:func:`overall_indication`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from certstore.checks import Check, CheckResult, Indication, indication_of, worst
from certstore.crypto.x509 import Certificate

__all__ = [
    "CertificateReport",
    "FileInfo",
    "Format",
    "SealSummary",
    "SignatureKind",
    "SignatureReport",
    "SignerSummary",
    "VerificationReport",
    "check_from_dict",
    "overall_indication",
]


class Format(StrEnum):
    OFD = "ofd"
    PDF = "pdf"


class SignatureKind(StrEnum):
    SEAL = "seal"  # 安全签章: SES_Signature (GB/T 38540 / GM/T 0031)
    SIGN = "sign"  # 数字签名: raw SM2 or GB/T 35275 SignedData


@dataclass(frozen=True)
class SignerSummary:
    """The signer (签章者) certificate, for display; ``organization`` (O) and ``organization_identifier``
    (2.5.4.97, the unified social credit code) name the organisation it belongs to — what ``seal_owner``
    compares with the issuer a certificate file names (None: the certificate does not say)."""

    subject: str
    issuer: str
    serial: str
    organization: str | None = None
    organization_identifier: str | None = None

    @classmethod
    def of(cls, certificate: Certificate | None) -> SignerSummary | None:
        """The summary of a signer certificate (None for none)."""
        if certificate is None:
            return None
        return cls(
            certificate.subject,
            certificate.issuer,
            certificate.serial_hex,
            certificate.organization,
            certificate.organization_identifier,
        )

    def to_dict(self) -> dict[str, str]:
        data = {"subject": self.subject, "issuer": self.issuer, "serial": self.serial}
        if self.organization is not None:  # the organisation fields only when the certificate names one
            data["organization"] = self.organization
        if self.organization_identifier is not None:
            data["organization_identifier"] = self.organization_identifier
        return data


@dataclass(frozen=True)
class SealSummary:
    """The electronic seal a seal signature applied."""

    id: str
    name: str
    version: int

    def to_dict(self) -> dict[str, object]:
        return {"id": self.id, "name": self.name, "version": self.version}


@dataclass(frozen=True)
class SignatureReport:
    """One signature of the file with its ordered checks. ``location`` names it in the file (the package path of
    its Signature.xml, a PDF field name …)."""

    id: str
    kind: SignatureKind
    checks: tuple[Check, ...]
    signing_time: datetime | None = None
    signer: SignerSummary | None = None
    seal: SealSummary | None = None
    location: str | None = None

    @property
    def indication(self) -> Indication:
        return indication_of(self.checks)

    def check(self, name: str) -> Check:
        """The check called ``name`` (KeyError when the signature has none)."""
        for check in self.checks:
            if check.name == name:
                return check
        raise KeyError(f"signature {self.id!r} has no check {name!r}")

    def to_dict(self) -> dict[str, object]:
        return {
            "id": self.id,
            "kind": self.kind.value,
            "indication": self.indication.value,
            "signing_time": None if self.signing_time is None else self.signing_time.isoformat(),
            "signer": None if self.signer is None else self.signer.to_dict(),
            "seal": None if self.seal is None else self.seal.to_dict(),
            "checks": [c.to_dict() for c in self.checks],
            "location": self.location,
        }


@dataclass(frozen=True)
class CertificateReport:
    """The e-certificate (电子证照) the file claims to be: its identifier (证照标识) and, when the repository
    was consulted, its status there. ``checks`` are the certificate-level checks (``status``,
    ``content_match``)."""

    identifier: str
    status: str | None = None
    label: str | None = None
    checks: tuple[Check, ...] = ()

    @property
    def indication(self) -> Indication:
        return indication_of(self.checks)

    def to_dict(self) -> dict[str, object]:
        return {
            "identifier": self.identifier,
            "status": self.status,
            "label": self.label,
            "checks": [c.to_dict() for c in self.checks],
        }


@dataclass(frozen=True)
class FileInfo:
    """The presented file: size and digests (hex), so a report can be tied to the bytes it is about."""

    size: int
    sm3: str
    sha256: str
    name: str | None = None

    def to_dict(self) -> dict[str, object]:
        data: dict[str, object] = {"size": self.size, "sm3": self.sm3, "sha256": self.sha256}
        if self.name is not None:
            data["name"] = self.name
        return data


def overall_indication(
    signatures: Iterable[SignatureReport],
    *,
    file_level: Iterable[Indication] = (),
    certificate: CertificateReport | None = None,
) -> Indication:
    """Worst of the signatures', the file-level findings' and the certificate checks'; INVALID when there is
    no signature."""
    indications = [s.indication for s in signatures]
    if not indications:
        return Indication.INVALID
    indications.extend(file_level)
    if certificate is not None:
        indications.append(certificate.indication)
    return worst(indications)


@dataclass(frozen=True)
class VerificationReport:
    """The outcome of verifying one file (contract: docs/verification.md, "The report (JSON)")."""

    indication: Indication
    format: Format
    signatures: tuple[SignatureReport, ...]
    problems: tuple[str, ...] = ()
    certificate: CertificateReport | None = None
    file: FileInfo | None = None
    verified_at: datetime | None = None

    def signature(self, signature_id: str) -> SignatureReport:
        """The signature with ``signature_id`` (KeyError when absent)."""
        for signature in self.signatures:
            if signature.id == signature_id:
                return signature
        raise KeyError(f"no signature {signature_id!r}")

    def to_dict(self) -> dict[str, object]:
        data: dict[str, object] = {
            "indication": self.indication.value,
            "format": self.format.value,
            "certificate": None if self.certificate is None else self.certificate.to_dict(),
            "signatures": [s.to_dict() for s in self.signatures],
            "problems": list(self.problems),
        }
        if self.file is not None:
            data["file"] = self.file.to_dict()
        if self.verified_at is not None:
            data["verified_at"] = self.verified_at.isoformat()
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> VerificationReport:
        """Read a report produced by :meth:`to_dict` (signature indications are recomputed from the checks)."""
        certificate = data.get("certificate")
        file = data.get("file")
        verified_at = data.get("verified_at")
        return cls(
            indication=Indication(data["indication"]),
            format=Format(data["format"]),
            signatures=tuple(_signature_from_dict(s) for s in data["signatures"]),
            problems=tuple(str(p) for p in data.get("problems", ())),
            certificate=None
            if certificate is None
            else CertificateReport(
                identifier=str(certificate["identifier"]),
                status=certificate.get("status"),
                label=certificate.get("label"),
                checks=tuple(check_from_dict(c) for c in certificate.get("checks", ())),
            ),
            file=None
            if file is None
            else FileInfo(
                size=int(file["size"]),
                sm3=str(file["sm3"]),
                sha256=str(file["sha256"]),
                name=file.get("name"),
            ),
            verified_at=None if verified_at is None else datetime.fromisoformat(verified_at),
        )


def check_from_dict(data: Mapping[str, Any]) -> Check:
    """A :class:`~certstore.checks.Check` from its ``to_dict`` form."""
    return Check(
        name=str(data["name"]),
        result=CheckResult(data["result"]),
        reason=str(data["reason"]),
        warnings=tuple(str(w) for w in data.get("warnings", ())),
    )


def _signature_from_dict(data: Mapping[str, Any]) -> SignatureReport:
    signer = data.get("signer")
    seal = data.get("seal")
    signing_time = data.get("signing_time")
    return SignatureReport(
        id=str(data["id"]),
        kind=SignatureKind(data["kind"]),
        checks=tuple(check_from_dict(c) for c in data["checks"]),
        signing_time=None if signing_time is None else datetime.fromisoformat(signing_time),
        signer=None
        if signer is None
        else SignerSummary(
            signer["subject"],
            signer["issuer"],
            signer["serial"],
            signer.get("organization"),
            signer.get("organization_identifier"),
        ),
        seal=None if seal is None else SealSummary(str(seal["id"]), str(seal["name"]), int(seal["version"])),
        location=data.get("location"),
    )
