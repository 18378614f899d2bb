"""What verification asks the repository (规范 "状态核验"): the certificate's current status, and whether the
presented file is the content the repository recorded.

:func:`repository_check` adapts the repository to :class:`certstore.verify.RepositoryCheck`. Content match:

1. the presented bytes are the stored certificate file (SM3 equals the blob key) — the usual case for an OFD
   downloaded from the repository; otherwise
2. the metadata the file carries under its signature (OFD ``CustomDatas``; PDF Info dictionary of the signed
   revision) equals the record's metadata element by element — the case for the PDF rendition, which the
   repository renders on demand and does not store.

   For an OFD the seals must match too: every seal signature of the stored file (seal and signer
   certificate) must be in the presented one, so a file re-sealed by another agency's seal does not pass for
   the record even though its metadata was copied faithfully.

   A copy (副本, :mod:`certstore.services.copies`) is a new document sealed by the repository that embeds the
   stored original as an attachment (:func:`certstore.verify.ofd.embedded_originals`). Its own seal is not the
   issuer's, so instead of the seals, the one original it embeds must be the stored file byte for byte (its
   SM3 equals the blob key) — the issuer's seals are then those of the record by construction. A copy whose
   certificate has no stored file has nothing to compare with (None).

Anything else (a file for the identifier whose signed metadata differs from the record) is a mismatch.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime

from certstore.crypto.sm3 import sm3
from certstore.packaging.ofd.reader import OfdFormatError, OfdPackage, OfdReader
from certstore.records import Certificate
from certstore.seal import SealFormatError, parse_seal_signature
from certstore.services import certificates
from certstore.store.repository import Repository
from certstore.verify import RepositoryCheck
from certstore.verify.ofd import embedded_originals
from certstore.verify.pdf import signed_metadata

__all__ = ["RepositoryStatusCheck", "repository_check"]


def _open_ofd(data: bytes) -> OfdPackage | None:
    try:
        return OfdReader.open(data)
    except OfdFormatError:
        return None


def _ofd_sealers(package: OfdPackage | None) -> set[tuple[str, bytes]]:
    """(seal id, signer certificate DER) of every readable seal signature in an OFD (none when unreadable)."""
    if package is None:
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
    """:class:`~certstore.verify.RepositoryCheck` over a repository opened on first use.

    Make one per verification (:func:`repository_check`): the record is read once and serves both questions
    of that verification (status, content match); a new verification reads it again, so a suspension or a
    revocation is seen by the next verification at once."""

    def __init__(self, open_repository: Callable[[], Repository]) -> None:
        self._open = open_repository
        self._repo: Repository | None = None
        self._records: dict[str, Certificate | None] = {}

    def _certificate(self, identifier: str) -> Certificate | None:
        if identifier not in self._records:
            try:
                self._records[identifier] = certificates.get(self.repo, identifier)
            except certificates.CertificateNotFoundError:
                self._records[identifier] = None
        return self._records[identifier]

    @property
    def repo(self) -> Repository:
        if self._repo is None:
            self._repo = self._open()
        return self._repo

    def status(self, identifier: str, at: datetime | None = None) -> tuple[str, str] | None:
        cert = self._certificate(identifier)
        if cert is None:
            return None
        status = cert.status_at(at or self.repo.now())
        return status.value, status.label

    def content_digest_matches(
        self, identifier: str, package: bytes, *, package_sm3: str | None = None
    ) -> bool | None:
        cert = self._certificate(identifier)
        if cert is None:
            return None
        if cert.file_key is not None and (package_sm3 or sm3(package).hex()) == cert.file_key:
            return True
        is_pdf = package.startswith(b"%PDF-")
        if is_pdf:
            ofd, carried = None, signed_metadata(package)
        else:
            ofd = _open_ofd(package)
            carried = {} if ofd is None else dict(ofd.doc_info.custom_datas)
        recorded: Mapping[str, object] = cert.metadata
        if not carried or any(carried.get(name) != _as_text(value) for name, value in recorded.items()):
            return False
        originals = () if ofd is None else embedded_originals(ofd)
        if originals:  # a copy (副本): the original it embeds must be the stored file
            if cert.file_key is None:
                return None
            return len(originals) == 1 and sm3(originals[0][1]).hex() == cert.file_key
        if is_pdf or cert.file_key is None:
            return True
        return _ofd_sealers(_open_ofd(self.repo.blobs.get(cert.file_key))) <= _ofd_sealers(ofd)


def repository_check(open_repository: Callable[[], Repository]) -> RepositoryCheck:
    """The repository questions of one verification (make a new one for each)."""
    return RepositoryStatusCheck(open_repository)
