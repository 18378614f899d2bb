"""Knowledge scope (知悉范围, 第十八条, 规范§七(二)4): who may see which certificate, decided by the service layer
from the repository's own state — never from the audit log.

- An issuing agency reads only certificates of its own organisation (issuer code).
- Window staff of a using unit state, on every look-up, the matter (事项/办件编号) and the holder they serve
  (:class:`Serving`), and see only that holder's certificates. **One matter serves one holder**: the first look-up
  under a matter binds it to its holder (``matter_bindings``, unique per organisation and matter), and a look-up
  under that matter for any other holder is refused — so a matter number cannot be reused to walk through
  holders.
- Everyone else is refused here (bulk queries go through grants, :func:`certstore.services.access.active_grant`).

The binding is written atomically under its unique key: ``INSERT … ON CONFLICT DO NOTHING`` followed by a
``SELECT`` of the row that is there now (PostgreSQL: the insert waits for a concurrent transaction inserting the
same key and then sees its row; SQLite: one writer at a time). Of any number of concurrent first look-ups of
different holders under one new matter, exactly one holder is served. A binding is never updated or deleted by
the application.

A look-up of a certificate the served holder does not hold fails with :class:`NotHeldError`, a
:class:`~certstore.services.certificates.CertificateNotFoundError` whose message is the one of a certificate that
does not exist (:func:`not_found`): the caller cannot tell "not yours" from "no such certificate"; the audit entry
(:mod:`certstore.services.sharing`) can.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from certstore.access import AccessDeniedError, Actor, Role
from certstore.identifiers import HolderIdType, holder_id_digest, holder_ref, validate_holder_id
from certstore.records import Certificate
from certstore.services.calls import Call
from certstore.services.certificates import CertificateNotFoundError
from certstore.store.models import MatterBindingRow

if TYPE_CHECKING:
    from certstore.app import Application

__all__ = [
    "MATTER_MAX",
    "MatterBoundError",
    "NotHeldError",
    "Served",
    "Serving",
    "authorize",
    "bound_holder",
    "declared",
    "not_found",
    "serve",
]

#: The longest matter number (事项/办件编号) accepted.
MATTER_MAX = 100


@dataclass(frozen=True)
class Serving:
    """What window staff declare on every look-up: the matter and the holder they are serving (raw, as sent)."""

    matter: str | None = None
    holder_id_type: str | None = None
    holder_id: str | None = None


@dataclass(frozen=True)
class Served:
    """A checked declaration: the matter (trimmed) and the served holder's reference (keyed digest form,
    :func:`certstore.identifiers.holder_ref` — what certificates and audit entries show)."""

    matter: str
    holder_ref: str


class MatterBoundError(AccessDeniedError):
    """The matter already serves another holder (one matter serves one holder, 知悉范围)."""


class NotHeldError(CertificateNotFoundError):
    """The certificate is not held by the holder being served. Its message is :func:`not_found`'s: to the caller it
    is a certificate that does not exist."""


def not_found(identifier: str) -> CertificateNotFoundError:
    """The answer to a look-up of ``identifier`` that finds nothing the caller may see — the same whether the
    certificate does not exist or is held by someone else."""
    return CertificateNotFoundError(f"no certificate {identifier}")


def declared(holder_key: bytes, serving: Serving) -> Served:
    """Check a window declaration: the matter stated, the holder a valid ID. :class:`AccessDeniedError` saying
    what is missing otherwise. Writes nothing."""
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
        raise AccessDeniedError(f"the holder being served is not a valid ID: {exc}") from None
    return Served(matter, holder_ref(holder_id_digest(holder_key, id_type, number)))


def _organisation(actor: Actor) -> str:
    if actor.role is not Role.WINDOW or not actor.organisation_code:
        raise AccessDeniedError(f"role {actor.role.value} does not serve holders under a matter")
    return actor.organisation_code


def bound_holder(session: Session, organisation_code: str, matter: str) -> str | None:
    """The holder reference ``matter`` of ``organisation_code`` is bound to, or None while it is unused."""
    return session.scalar(
        select(MatterBindingRow.holder_digest).where(
            MatterBindingRow.organisation_code == organisation_code, MatterBindingRow.matter == matter
        )
    )


def _bind(session: Session, organisation_code: str, served: Served, principal: str, at: datetime) -> str:
    """Bind ``served.matter`` to ``served.holder_ref`` unless it is bound already; the holder it is bound to now.
    Never raises on a concurrent first use (the caller's transaction stays usable)."""
    values = {
        "organisation_code": organisation_code,
        "matter": served.matter,
        "holder_digest": served.holder_ref,
        "principal": principal[:200],
        "first_used_at": at,
    }
    name = session.get_bind().dialect.name
    if name in ("postgresql", "sqlite"):
        dialect = postgresql if name == "postgresql" else sqlite
        session.execute(
            dialect.insert(MatterBindingRow)
            .values(**values)
            .on_conflict_do_nothing(
                index_elements=[MatterBindingRow.organisation_code, MatterBindingRow.matter]
            )
        )
    elif bound_holder(session, organisation_code, served.matter) is None:
        try:
            with session.begin_nested():
                session.add(MatterBindingRow(**values))
        except IntegrityError:  # a concurrent first use won
            pass
    bound = bound_holder(session, organisation_code, served.matter)
    assert bound is not None, "the binding was just written or found"
    return bound


def serve(app: Application, call: Call, serving: Serving, *, session: Session | None = None) -> Served:
    """Window staff (``call.actor``) serve the holder of ``serving`` under its matter: the declaration is checked
    (:func:`declared`) and the matter bound to that holder if it is new; :class:`MatterBoundError` when it
    already serves another holder. Returns the checked declaration.

    ``session``: the transaction to bind in (the caller's look-up); without one the binding is looked up
    read-only first and, for a new matter only, written in a short transaction of its own that has committed
    when this returns."""
    organisation = _organisation(call.actor)
    served = declared(app.repo.holder_key, serving)
    if session is not None:
        bound = _bind(session, organisation, served, call.actor.ref, app.now())
    else:
        with app.repo.db.session(readonly=True) as reading:
            bound = bound_holder(reading, organisation, served.matter)
        if bound is None:
            with app.repo.db.session() as writing:
                bound = _bind(writing, organisation, served, call.actor.ref, app.now())
    if bound != served.holder_ref:
        raise MatterBoundError(
            f"matter {served.matter} already serves another holder; one matter serves one holder (知悉范围)"
        )
    return served


def authorize(app: Application, call: Call, certificate: Certificate, serving: Serving) -> Served | None:
    """May ``call.actor`` read ``certificate``? Returns the window's checked declaration (None for an agency);
    :class:`AccessDeniedError` with the rule, or :class:`NotHeldError` for a certificate of another holder."""
    actor = call.actor
    if actor.role is Role.AGENCY:
        if not actor.organisation_code or certificate.issuer_code != actor.organisation_code:
            raise AccessDeniedError(
                f"certificate issued by {certificate.issuer_code}; agencies read only their own certificates"
            )
        return None
    if actor.role is Role.WINDOW:
        served = serve(app, call, serving)
        if certificate.holder_ref != served.holder_ref:
            raise NotHeldError(str(not_found(certificate.identifier)))
        return served
    raise AccessDeniedError(f"role {actor.role.value} does not read certificates")
