"""Knowledge scope (知悉范围, 第十八条, 规范§七(二)4): who may see which certificate, decided by the service layer
from the repository's own state — never from the audit log.

- An issuing agency reads only certificates of its own organisation (issuer code).
- Window staff of a using unit state, on every look-up, the matter (事项/办件编号) and the holder they serve
  (:class:`Serving`). The look-up is allowed only
  1. under a **registered matter** of the clerk's own unit for that holder — registered by the unit's
     case-handling system (:mod:`certstore.services.matters`), active (not closed or withdrawn, within its
     validity): then every certificate of that holder may be read; or
  2. under an **active authorisation of the holder** for the clerk's unit (:mod:`certstore.services.authorisations`):
     the stated matter must be the one the authorisation names — or, when it names none, any active matter
     registered for the unit — and only the named certificate, or the holder's certificates of the named type,
     may be read.
  Everything else is refused (:class:`UnregisteredMatterError`, audited as a denial by the use case): a matter
  number the clerk invents opens nothing. (Until issue 19 the first look-up under a matter bound it to its holder,
  ``matter_bindings``; that table is kept read-only for history and decides nothing any more.)
- A holder (证照持有人, role holder) reads their own certificates: ``certificate.holder_ref`` must be the
  actor's ``holder_ref``.
- Everyone else is refused here (bulk queries go through grants, :func:`certstore.services.access.active_grant`).

A look-up of a certificate the served holder does not hold fails with :class:`NotHeldError`, a
:class:`~certstore.services.certificates.CertificateNotFoundError` whose message is the one of a certificate that
does not exist (:func:`not_found`): the caller cannot tell "not yours" from "no such certificate"; the audit entry
(:mod:`certstore.services.sharing`) can. A certificate of the served holder that an authorisation does not cover
answers the same way (:class:`NotAuthorisedError`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy.orm import Session

from certstore.access import AccessDeniedError, Actor, Role
from certstore.identifiers import HolderIdType, holder_id_digest, holder_ref, validate_holder_id
from certstore.records import Certificate
from certstore.services import authorisations, matters
from certstore.services.authorisations import Authorisation
from certstore.services.calls import Call
from certstore.services.certificates import CertificateNotFoundError

if TYPE_CHECKING:
    from certstore.app import Application

__all__ = [
    "MATTER_MAX",
    "InvalidHolderIdError",
    "NotAuthorisedError",
    "NotHeldError",
    "Served",
    "Serving",
    "UnregisteredMatterError",
    "authorize",
    "declared",
    "not_found",
    "own",
    "refuse_uncovered",
    "serve",
]

#: The longest matter number (事项/办件编号) accepted.
MATTER_MAX = matters.MATTER_MAX

#: What a window look-up is allowed on: a matter registered for the holder, or the holder's authorisation.
BY_MATTER = "matter"
BY_AUTHORISATION = "authorisation"


@dataclass(frozen=True)
class Serving:
    """What window staff declare on every look-up: the matter and the holder they are serving (raw, as sent)."""

    matter: str | None = None
    holder_id_type: str | None = None
    holder_id: str | None = None


@dataclass(frozen=True)
class Served:
    """A checked declaration: the matter (trimmed), the served holder's reference (keyed digest form,
    :func:`certstore.identifiers.holder_ref` — what certificates and audit entries show), and what allows it:
    ``basis`` "matter" (a matter registered for this holder: all the holder's certificates) or "authorisation"
    (the holder's ``authorisations``: only what they name)."""

    matter: str
    holder_ref: str
    basis: str = BY_MATTER
    authorisations: tuple[Authorisation, ...] = ()

    def covers(self, certificate: Certificate) -> bool:
        """Whether this look-up may show ``certificate``."""
        if certificate.holder_ref != self.holder_ref:
            return False
        if self.basis == BY_MATTER:
            return True
        return any(a.covers(certificate.identifier, certificate.catalogue_code) for a in self.authorisations)


class InvalidHolderIdError(ValueError):
    """The holder a clerk declares is not a valid ID (a bad check character, an unknown ID type): bad input, not
    a refusal (HTTP 422, not 403); the message says what is wrong with it."""


class UnregisteredMatterError(AccessDeniedError):
    """Neither a registered matter of the clerk's unit for this holder nor the holder's authorisation allows the
    look-up (知悉范围)."""


class NotHeldError(CertificateNotFoundError):
    """The certificate is not held by the holder being served. Its message is :func:`not_found`'s: to the caller it
    is a certificate that does not exist."""


class NotAuthorisedError(NotHeldError):
    """The certificate is the served holder's, but the holder's authorisation the look-up rests on does not name
    it (nor its type). Answers as :class:`NotHeldError` does."""


def not_found(identifier: str) -> CertificateNotFoundError:
    """The answer to a look-up of ``identifier`` that finds nothing the caller may see — the same whether the
    certificate does not exist or is held by someone else."""
    return CertificateNotFoundError(f"no certificate {identifier}")


def declared(holder_key: bytes, serving: Serving) -> Served:
    """Check a window declaration: the matter stated, the holder a valid ID. :class:`AccessDeniedError` saying
    what is missing otherwise, :class:`InvalidHolderIdError` for a holder ID that is not valid. Reads and writes
    nothing."""
    matter = (serving.matter or "").strip()
    if not matter:
        raise AccessDeniedError("window staff must state the matter (matter=事项/办件编号) for every look-up")
    if len(matter) > MATTER_MAX:
        raise AccessDeniedError(f"the matter number is longer than {MATTER_MAX} characters")
    if not serving.holder_id_type or not serving.holder_id:
        raise AccessDeniedError(
            "window staff must state the holder they are serving (holder_id_type and holder_id) — 知悉范围"
        )
    try:
        id_type = HolderIdType(serving.holder_id_type)
        number = validate_holder_id(id_type, serving.holder_id)
    except ValueError as exc:
        raise InvalidHolderIdError(f"the holder being served is not a valid ID: {exc}") from None
    return Served(matter, holder_ref(holder_id_digest(holder_key, id_type, number)))


def _organisation(actor: Actor) -> str:
    if actor.role is not Role.WINDOW or not actor.organisation_code:
        raise AccessDeniedError(f"role {actor.role.value} does not serve holders under a matter")
    return actor.organisation_code


def _decide(app: Application, session: Session, organisation: str, served: Served) -> Served:
    at = app.now()
    registered = matters.active_matter(session, organisation, served.matter, at)
    if registered is not None and registered.holder_ref == served.holder_ref:
        return served
    usable = tuple(
        a
        for a in authorisations.active_for(session, served.holder_ref, organisation, at)
        if a.matter == served.matter or (a.matter is None and registered is not None)
    )
    if usable:
        return Served(served.matter, served.holder_ref, BY_AUTHORISATION, usable)
    if registered is not None:
        raise UnregisteredMatterError(
            f"matter {served.matter} is registered for another holder, and this holder has not authorised "
            f"{organisation} to use their certificates for it (知悉范围)"
        )
    raise UnregisteredMatterError(
        f"matter {served.matter} is not an active matter registered for {organisation} by its case-handling "
        "system, and the holder has not authorised this unit for it: window look-ups need one of the two (知悉范围)"
    )


def serve(app: Application, call: Call, serving: Serving, *, session: Session | None = None) -> Served:
    """Window staff (``call.actor``) serve the holder of ``serving`` under its matter: the declaration is checked
    (:func:`declared`), then the registered matters and the holder's authorisations decide (module docstring);
    :class:`UnregisteredMatterError` when neither allows it. Writes nothing. ``session``: read in the caller's
    transaction (else a read-only session of its own)."""
    organisation = _organisation(call.actor)
    served = declared(app.repo.holder_key, serving)
    if session is not None:
        return _decide(app, session, organisation, served)
    with app.repo.db.session(readonly=True) as reading:
        return _decide(app, reading, organisation, served)


def refuse_uncovered(served: Served, certificate: Certificate) -> None:
    """:class:`NotHeldError` when ``certificate`` is not the served holder's, :class:`NotAuthorisedError` when it
    is but the authorisation the look-up rests on does not name it."""
    if certificate.holder_ref != served.holder_ref:
        raise NotHeldError(str(not_found(certificate.identifier)))
    if not served.covers(certificate):
        raise NotAuthorisedError(str(not_found(certificate.identifier)))


def own(actor: Actor, certificate: Certificate) -> None:
    """A holder reads only their own certificates: :class:`NotHeldError` otherwise."""
    if actor.role is not Role.HOLDER or not actor.holder_ref or certificate.holder_ref != actor.holder_ref:
        raise NotHeldError(str(not_found(certificate.identifier)))


def authorize(app: Application, call: Call, certificate: Certificate, serving: Serving) -> Served | None:
    """May ``call.actor`` read ``certificate``? Returns the window's checked declaration (None for an agency or
    the holder themself); :class:`AccessDeniedError` with the rule, or :class:`NotHeldError` for a certificate of
    another holder (or one an authorisation does not cover)."""
    actor = call.actor
    if actor.role is Role.AGENCY:
        if not actor.organisation_code or certificate.issuer_code != actor.organisation_code:
            raise AccessDeniedError(
                f"certificate issued by {certificate.issuer_code}; agencies read only their own certificates"
            )
        return None
    if actor.role is Role.WINDOW:
        served = serve(app, call, serving)
        refuse_uncovered(served, certificate)
        return served
    if actor.role is Role.HOLDER:
        own(actor, certificate)
        return None
    raise AccessDeniedError(f"role {actor.role.value} does not read certificates")
