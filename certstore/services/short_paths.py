"""The QR code's short path (``/v/<short code>``): from the short code back to the certificate identifier.

The face's QR code carries :func:`~certstore.identifiers.short_code` — the serial (流水号) and the version in base32,
28 characters — instead of the ~70-character identifier, so the code stays sparse enough for zbar at 96 dpi. The
code names no issuer: it is resolved by (serial, version) over the index ``ix_certificates_serial_version``.
Serials are keyed (HMAC-SM3 with the repository's serial key) for certificates issued since issue 15, so neither
the short code nor the identifier follows from a certificate number."""

from __future__ import annotations

from sqlalchemy import select

from certstore.identifiers import parse_short_code
from certstore.store.models import CertificateRow
from certstore.store.repository import Repository

__all__ = ["resolve_short_code"]


def resolve_short_code(repo: Repository, code: str) -> str | None:
    """The identifier of the certificate version the short ``code`` names; None when ``code`` is not a short code
    or names no stored version (or, for serials that are not the repository's own, more than one)."""
    parsed = parse_short_code(code)
    if parsed is None:
        return None
    serial, version = parsed
    with repo.db.session(readonly=True) as session:
        found = session.scalars(
            select(CertificateRow.identifier)
            .where(CertificateRow.serial == serial, CertificateRow.version == version)
            .limit(2)
        ).all()
    return found[0] if len(found) == 1 else None
