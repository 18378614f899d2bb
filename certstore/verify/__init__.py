"""Verification of presented e-certificate files (OFD, PDF): one pipeline, one report.

* :func:`verify_file` — bytes in, :class:`VerificationReport` out (raises only :class:`UnreadableFileError`
  for input that is neither an OFD nor a PDF); :func:`verify_and_read` also returns the OFD package it read
  (:class:`VerifiedFile`), for callers that show or copy the file.
* :class:`VerificationReport` and its parts — the JSON contract of docs/verification.md.
* :class:`RepositoryCheck` — what the verifier asks the repository (status, content), implemented by services.
* :func:`verify_ofd` / :class:`OfdOptions` — the OFD checks on their own.
"""

from .ofd import OfdOptions, verify_ofd, verify_ofd_package
from .pipeline import (
    RepositoryCheck,
    UnreadableFileError,
    VerifiedFile,
    detect_format,
    verify_and_read,
    verify_file,
)
from .report import (
    CertificateReport,
    FileInfo,
    Format,
    SealSummary,
    SignatureKind,
    SignatureReport,
    SignerSummary,
    VerificationReport,
    overall_indication,
)

__all__ = [
    "CertificateReport",
    "FileInfo",
    "Format",
    "OfdOptions",
    "RepositoryCheck",
    "SealSummary",
    "SignatureKind",
    "SignatureReport",
    "SignerSummary",
    "UnreadableFileError",
    "VerificationReport",
    "VerifiedFile",
    "detect_format",
    "overall_indication",
    "verify_and_read",
    "verify_file",
    "verify_ofd",
    "verify_ofd_package",
]
