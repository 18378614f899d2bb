"""What verification asks the repository (规范 "状态核验"): the certificate's current status, and whether the
presented file is the content the repository recorded.

:func:`repository_check` adapts the repository to :class:`certstore.verify.RepositoryCheck`. Content match:

1. the presented bytes are the stored certificate file (SM3 equals the blob key) — the usual case for an OFD
   downloaded from the repository; otherwise
2. the metadata the file carries under its signature (OFD ``CustomDatas``; PDF Info dictionary of the signed
   revision) equals the record's metadata element by element — the case for the PDF rendition, which the
   repository renders on demand and does not store.

   For an OFD the seals must match too: every seal signature of the stored file (seal and signer
   certificate) must be in the presented one (a copy may add the repository's seal), so a file re-sealed by
   another agency's seal does not pass for the record even though its metadata was copied faithfully.

Anything else (a file for the identifier whose signed metadata differs from the record) is a mismatch.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime

from certstore.crypto.sm2 import sm3
from certstore.packaging.ofd.reader import OfdFormatError, OfdReader
from certstore.seal import SealFormatError, parse_seal_signature
from certstore.services import certificates
from certstore.services.repository import Repository
from certstore.verify import RepositoryCheck
from certstore.verify.pdf import signed_metadata

__all__ = ["RepositoryStatusCheck", "repository_check"]


def _ofd_metadata(data: bytes) -> dict[str, str]:
    try:
        return dict(OfdReader.open(data).doc_info.custom_datas)
    except OfdFormatError:
        return {}


def _ofd_sealers(data: bytes) -> set[tuple[str, bytes]]:
    """(seal id, signer certificate DER) of every readable seal signature in an OFD."""
    try:
        package = OfdReader.open(data)
    except OfdFormatError:
        return set()
    found = set()
    for document in package.documents:
        for signature in document.signatures:
            if signature.signed_value is None:
                continue
            try:
                parsed = parse_seal_signature(signature.signed_value)
            except SealFormatError:
                continue
            found.add((parsed.seal.es_id, parsed.signer_certificate.der))
    return found


def _as_text(value: object) -> str:
    return value if isinstance(value, str) else str(value)


class RepositoryStatusCheck:
    """:class:`~certstore.verify.RepositoryCheck` over a repository opened on first use."""

    def __init__(self, open_repository: Callable[[], Repository]) -> None:
        self._open = open_repository
        self._repo: Repository | None = None

    @property
    def repo(self) -> Repository:
        if self._repo is None:
            self._repo = self._open()
        return self._repo

    def status(self, identifier: str, at: datetime | None = None) -> tuple[str, str] | None:
        try:
            cert = certificates.get(self.repo, identifier)
        except certificates.CertificateNotFoundError:
            return None
        status = cert.status_at(at or self.repo.now())
        return status.value, status.label

    def content_digest_matches(self, identifier: str, package: bytes) -> bool | None:
        try:
            cert = certificates.get(self.repo, identifier)
        except certificates.CertificateNotFoundError:
            return None
        if cert.file_key is not None and sm3(package).hex() == cert.file_key:
            return True
        is_pdf = package.startswith(b"%PDF-")
        carried = signed_metadata(package) if is_pdf else _ofd_metadata(package)
        recorded: Mapping[str, object] = cert.metadata
        if not carried or any(carried.get(name) != _as_text(value) for name, value in recorded.items()):
            return False
        if is_pdf or cert.file_key is None:
            return True
        return _ofd_sealers(self.repo.blobs.get(cert.file_key)) <= _ofd_sealers(package)


def repository_check(open_repository: Callable[[], Repository]) -> RepositoryCheck:
    return RepositoryStatusCheck(open_repository)
