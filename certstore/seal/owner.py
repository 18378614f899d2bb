"""Whose seal is it (印章归属): the organisation a seal user's certificate belongs to.

A seal belongs to one organisation, identified by its unified social credit code (统一社会信用代码). The tie is
the certificate of the seal's user (签章者): its subject names the organisation — ``organizationIdentifier``
(2.5.4.97) carries the credit code, ``O`` the name. The repository's seal registry
(:mod:`certstore.services.seals`) records the same owner for every seal it knows, and verification
(``seal_owner``) compares both with the issuer a certificate file names in its metadata.
"""

from __future__ import annotations

from dataclasses import dataclass

from certstore.crypto.x509 import Certificate

__all__ = ["Owner", "certificate_owner", "owned_by", "ties"]


@dataclass(frozen=True)
class Owner:
    """An organisation as a certificate names it: credit code (None when the certificate has none) and name."""

    credit_code: str | None
    name: str | None

    def describe(self) -> str:
        if self.credit_code and self.name:
            return f"{self.name} ({self.credit_code})"
        return self.credit_code or self.name or "no organisation"


def certificate_owner(certificate: Certificate) -> Owner:
    """The organisation ``certificate`` (a seal user's) belongs to."""
    return Owner(certificate.organization_identifier, certificate.organization)


def ties(
    certificate_code: str | None, certificate_name: str | None, code: str | None, name: str | None
) -> bool | None:
    """Whether a certificate naming the organisation (``certificate_code``, ``certificate_name``) belongs to the
    organisation (``code``, ``name``): the credit code decides when both state one; else the organisation name;
    None when neither pair can be compared."""
    if certificate_code is not None and code is not None:
        return certificate_code.strip().upper() == code.strip().upper()
    if certificate_name is not None and name is not None:
        return certificate_name.strip() == name.strip()
    return None


def owned_by(certificate: Certificate, credit_code: str | None, name: str | None) -> str | None:
    """How ``certificate`` is tied to the organisation (``credit_code``, ``name``) — a phrase for a message — or
    None when it is not (:func:`ties`). A certificate that carries a credit code is tied by it alone (never by a
    name that happens to match)."""
    owner = certificate_owner(certificate)
    if owner.credit_code is not None:
        if ties(owner.credit_code, None, credit_code, None):
            return f"its organizationIdentifier is the issuer's credit code {owner.credit_code}"
        return None
    if ties(None, owner.name, None, name):
        return f"its organisation name is the issuer's name {owner.name!r} (the certificate carries no credit code)"
    return None
