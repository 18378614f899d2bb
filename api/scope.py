"""The finer access rules, which depend on the resource (第十八条 知悉范围, 规范§七(二)).

- An issuing agency reads and manages only certificates of its own organisation (issuer code).
- Window staff (using units) state the matter (事项/办件编号) and the holder they are serving on every look-up
  and see only that holder's certificates; a matter serves one holder, so a matter number cannot be reused to
  walk through other holders.
- Everything else is denied here; bulk queries go through grants (:func:`certstore.services.access.active_grant`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Query, Request

from api.security import flush_audit
from certstore.access import AccessDeniedError, Principal, Role
from certstore.audit.query import other_holder_under_matter
from certstore.identifiers import HolderIdType, holder_id_digest, holder_ref, validate_holder_id
from certstore.records import Certificate
from certstore.store.repository import Repository

__all__ = ["Serving", "ServingQuery", "authorize_certificate", "require_own_issuer", "serving_holder"]

_MATTER_MAX = 100


@dataclass(frozen=True)
class Serving:
    """What window staff declare on every look-up: the matter and the holder they are serving."""

    matter: str | None
    holder_id_type: str | None
    holder_id: str | None


def _serving(
    matter: Annotated[
        str | None,
        Query(
            max_length=_MATTER_MAX,
            description="事项/办件编号 — required for window staff",
            examples=["ZZ2026112600123"],
        ),
    ] = None,
    holder_id_type: Annotated[
        str | None,
        Query(
            description="Holder ID type (GB/T 36903 code) of the holder being served — window staff",
            examples=["111"],
        ),
    ] = None,
    holder_id: Annotated[
        str | None, Query(max_length=64, description="Holder ID number being served — window staff")
    ] = None,
) -> Serving:
    return Serving(matter, holder_id_type, holder_id)


ServingQuery = Annotated[Serving, Depends(_serving)]


def _matter_bound_elsewhere(
    request: Request, repo: Repository, principal: Principal, matter: str, digest: str
) -> bool:
    flush_audit(request)  # the log is written in batches: the look-ups just answered must be in it
    return other_holder_under_matter(
        repo.db, organisation_code=principal.organisation_code, matter=matter, holder_digest=digest
    )


def serving_holder(request: Request, repo: Repository, principal: Principal, serving: Serving) -> str:
    """Check a window principal's declaration; returns the served holder's reference (keyed digest form).

    Records matter and holder digest on the request for the audit event."""
    matter = (serving.matter or "").strip()
    if not matter:
        raise AccessDeniedError("window staff must state the matter (matter=事项/办件编号) for every look-up")
    request.state.matter = matter
    if not serving.holder_id_type or not serving.holder_id:
        raise AccessDeniedError(
            "window staff must state the holder they are serving (holder_id_type and holder_id) — 知悉范围"
        )
    try:
        id_type = HolderIdType(serving.holder_id_type)
        number = validate_holder_id(id_type, serving.holder_id)
    except ValueError as exc:
        raise AccessDeniedError(f"the holder being served is not a valid ID: {exc}") from None
    reference = holder_ref(holder_id_digest(repo.holder_key, id_type, number))
    request.state.holder_digest = reference
    if _matter_bound_elsewhere(request, repo, principal, matter, reference):
        raise AccessDeniedError(
            f"matter {matter} already serves another holder; one matter serves one holder (知悉范围)"
        )
    return reference


def authorize_certificate(
    request: Request, repo: Repository, principal: Principal, certificate: Certificate, serving: Serving
) -> None:
    """May ``principal`` read ``certificate``? :class:`AccessDeniedError` with the rule otherwise."""
    if principal.role is Role.AGENCY:
        if certificate.issuer_code != principal.organisation_code:
            raise AccessDeniedError(
                f"certificate issued by {certificate.issuer_code}; agencies read only their own certificates"
            )
        return
    if principal.role is Role.WINDOW:
        reference = serving_holder(request, repo, principal, serving)
        if certificate.holder_ref != reference:
            raise AccessDeniedError(
                "this certificate does not belong to the holder you are serving (知悉范围)"
            )
        return
    raise AccessDeniedError(f"role {principal.role.value} does not read certificates")


def require_own_issuer(principal: Principal, certificate: Certificate) -> None:
    """Management is for the issuing agency only."""
    if principal.role is not Role.AGENCY or certificate.issuer_code != principal.organisation_code:
        raise AccessDeniedError(
            f"only the issuing agency ({certificate.issuer_code}) manages this certificate"
        )
