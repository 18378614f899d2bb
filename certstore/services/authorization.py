"""Who may issue and manage what — the one home of the issuer rules, which every entry point meets through the
use cases (API, pages, command line, exchange, batches, import):

- an agency (发证机构) issues only the catalogue types it is the issuer of, and manages only certificates it
  issued; an agency's own system (its exchange source) acts under the same rule;
- the operator at the repository's command line acts for the repository and may do both (it is audited as such);
- nobody else issues or manages certificates.
"""

from __future__ import annotations

from certstore.access import AccessDeniedError, Actor, Role
from certstore.catalogue import CatalogueEntry

__all__ = ["require_issuer_of", "require_issuer_of_type"]


def require_issuer_of_type(actor: Actor, entry: CatalogueEntry) -> None:
    """:class:`AccessDeniedError` unless ``actor`` may issue certificates of catalogue type ``entry``."""
    if actor.role is Role.OPERATOR:
        return
    if actor.role is not Role.AGENCY:
        raise AccessDeniedError(f"role {actor.role.value} does not issue certificates")
    if entry.issuer.credit_code != actor.organisation_code:
        raise AccessDeniedError(
            f"catalogue type {entry.code} is issued by {entry.issuer.credit_code}; agencies issue only their own "
            "catalogue types"
        )


def require_issuer_of(actor: Actor, issuer_code: str) -> None:
    """:class:`AccessDeniedError` unless ``actor`` may manage a certificate issued by ``issuer_code``."""
    if actor.role is Role.OPERATOR:
        return
    if actor.role is not Role.AGENCY or actor.organisation_code != issuer_code:
        raise AccessDeniedError(f"only the issuing agency ({issuer_code}) manages this certificate")
