"""Keyed serials (issue 15, item 6): identifiers do not follow from certificate numbers, a repeated push keeps its
identifier, and certificates issued with the former unkeyed serial keep it — they resolve, a repeated push returns
them, and their later versions carry the same serial. The QR code's short code resolves to the version."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

from sqlalchemy import update

from certstore.identifiers import CertificateIdentifier, legacy_serial_for, serial_for, short_code
from certstore.services import certificates
from certstore.services.short_paths import resolve_short_code
from certstore.store.models import CertificateRow
from certstore.store.repository import Repository
from tests.services.conftest import DraftMaker
from tests.support import issuing


def test_serial_is_keyed_and_stable(repo: Repository, draft: DraftMaker) -> None:
    first = issuing.issue(repo, draft(number=None)).certificate
    identifier = CertificateIdentifier.parse(first.identifier)
    assert identifier.serial == serial_for(first.issuer_code, first.certificate_number, key=repo.serial_key)
    assert identifier.serial != legacy_serial_for(first.issuer_code, first.certificate_number)
    again = issuing.issue(repo, draft(number=None))
    assert not again.created and again.certificate.identifier == first.identifier  # idempotent


def _as_if_issued_before_the_key(repo: Repository, identifier: str) -> str:
    """Rewrite a stored version 1 to the unkeyed serial it would have had before issue 15."""
    cert = certificates.get(repo, identifier)
    parsed = CertificateIdentifier.parse(identifier)
    legacy = CertificateIdentifier.build(
        parsed.type_code, parsed.issuer_code, legacy_serial_for(cert.issuer_code, cert.certificate_number), 1
    )
    with repo.db.session() as session:
        session.execute(
            update(CertificateRow)
            .where(CertificateRow.identifier == identifier)
            .values(identifier=str(legacy), serial=legacy.serial, meta={**cert.metadata, "ZZBS": str(legacy)})
        )
    return str(legacy)


def test_certificates_issued_with_the_unkeyed_serial_keep_it(repo: Repository, draft: DraftMaker) -> None:
    old = _as_if_issued_before_the_key(repo, issuing.issue(repo, draft()).certificate.identifier)
    assert certificates.get(repo, old).identifier == old  # still resolves
    repeat = issuing.issue(repo, draft())
    assert not repeat.created and repeat.certificate.identifier == old  # a repeated push returns it
    v2 = issuing.change(repo, old, replace(draft(), metadata={"note": "变更"}), reason="变更")
    assert v2.serial == CertificateIdentifier.parse(old).serial
    assert v2.identifier == str(CertificateIdentifier.parse(old).with_version(2))
    v3 = issuing.renew(repo, v2.identifier, valid_until=date(2040, 1, 1), reason="延续")
    assert v3.serial == v2.serial and v3.version == 3
    assert [c.identifier for c in certificates.history(repo, v3.identifier)] == [
        old,
        v2.identifier,
        v3.identifier,
    ]
    for identifier in (old, v2.identifier, v3.identifier):
        assert resolve_short_code(repo, short_code(identifier) or "") == identifier


def test_short_code_resolves_only_stored_versions(repo: Repository, draft: DraftMaker) -> None:
    cert = issuing.issue(repo, draft()).certificate
    code = short_code(cert.identifier)
    assert code is not None and resolve_short_code(repo, code) == cert.identifier
    absent = short_code(str(CertificateIdentifier.parse(cert.identifier).with_version(2)))
    assert absent is not None and resolve_short_code(repo, absent) is None
    assert resolve_short_code(repo, cert.identifier) is None  # not a short code
    assert resolve_short_code(repo, "a" * 28) is None
