"""Authorised use (证照授权使用): a holder (证照持有人, role holder — ``call.actor``) authorises a using unit (用证单位)
to use one named certificate, or all of the holder's certificates of one catalogue type, for one matter (办件) or
for any matter the unit's case-handling system registered, until a time; and may revoke it at any time.

The window look-up honours an active authorisation (:mod:`certstore.services.scope`): a clerk of the authorised
unit may read the authorised certificates of that holder under the matter it names — or, when it names none,
under any active matter registered for that unit (:mod:`certstore.services.matters`), whichever holder that matter
is for (a family member's certificate used in the applicant's matter). Nothing else of the holder is opened by it.

Each grant and revocation is one transaction with its audit entry (``authorisation.grant``,
``authorisation.revoke``, :func:`certstore.services.calls.audit_in`; the holder digest, the matter and the
certificate in the entry); a refusal (not a holder, a certificate the holder does not hold, an authorisation of
someone else) is recorded as a denial through ``app.audit`` before :class:`~certstore.access.AccessDeniedError`
goes on. Bad input raises a :class:`AuthorisationInputError` (a :class:`ValueError`) naming the field.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.orm import Session

from certstore.access import AccessDeniedError, Role
from certstore.audit import Outcome
from certstore.services.calls import Call, audit_in, audit_now
from certstore.store.models import CertificateRow, HolderAuthorisationRow, OrganisationRow

if TYPE_CHECKING:
    from certstore.app import Application

__all__ = [
    "PURPOSE_MAX",
    "Authorisation",
    "AuthorisationInputError",
    "active_for",
    "grant",
    "holder_digest_range",
    "list_for_holder",
    "revoke",
]

#: The longest purpose (用途) accepted.
PURPOSE_MAX = 200
_MATTER_MAX = 100


class AuthorisationInputError(ValueError):
    """Bad input to :func:`grant` (the message names the field)."""


@dataclass(frozen=True)
class Authorisation:
    """A holder's authorisation of a using unit (证照授权使用)."""

    id: int
    holder_ref: str
    using_unit: str  # organisation code of the using unit (用证单位)
    using_unit_name: str | None
    certificate_identifier: str | None  # one named certificate, or
    catalogue_code: str | None  # all of the holder's certificates of one type
    matter: str | None  # the matter it is for (None: any registered matter of that unit)
    purpose: str
    valid_until: datetime
    created_at: datetime
    revoked_at: datetime | None
    #: The repository's time when this view was read (``app.now()``): what :attr:`active` is judged against.
    checked_at: datetime | None = field(default=None, compare=False, repr=False)

    @property
    def active(self) -> bool:
        """Not revoked and ``valid_until`` still ahead (of the repository's clock when read)."""
        now = self.checked_at or datetime.now(UTC)
        return self.revoked_at is None and self.valid_until > now

    def covers(self, identifier: str, catalogue_code: str) -> bool:
        """Whether the authorisation names this certificate (by identifier) or its type."""
        if self.certificate_identifier is not None:
            return identifier == self.certificate_identifier
        return catalogue_code == self.catalogue_code


def _view(row: HolderAuthorisationRow, at: datetime) -> Authorisation:
    return Authorisation(
        id=row.id,
        holder_ref=row.holder_digest,
        using_unit=row.using_unit,
        using_unit_name=row.using_unit_name,
        certificate_identifier=row.certificate_identifier,
        catalogue_code=row.catalogue_code,
        matter=row.matter,
        purpose=row.purpose,
        valid_until=row.valid_until,
        created_at=row.created_at,
        revoked_at=row.revoked_at,
        checked_at=at,
    )


def holder_digest_range(holder_ref: str) -> tuple[bytes, bytes]:
    """The bounds of the 32-byte holder digests whose reference (the first 8 bytes in hex) is ``holder_ref``:
    certificates of that holder are found by an index range on ``certificates.holder_id_digest``."""
    prefix = bytes.fromhex(holder_ref)
    return prefix + b"\x00" * (32 - len(prefix)), prefix + b"\xff" * (32 - len(prefix))


def _holder(call: Call) -> str:
    actor = call.actor
    if actor.role is not Role.HOLDER or not actor.holder_ref:
        raise AccessDeniedError(
            f"role {actor.role.value} does not authorise the use of certificates (holders do)"
        )
    return actor.holder_ref


@contextmanager
def _denials_recorded(app: Application, call: Call, action: str, **about: object) -> Iterator[None]:
    """Record an :class:`AccessDeniedError` as a denial of ``action`` (through ``app.audit``), then let it go on."""
    try:
        yield
    except AccessDeniedError as exc:
        if app.audit is not None:
            holder = call.actor.holder_ref if call.actor.role is Role.HOLDER else None
            event = call.event(
                action, outcome=Outcome.DENY, status_code=403, reason=str(exc), holder_digest=holder,
                **about,  # type: ignore[arg-type]
            )  # fmt: skip
            audit_now(app.audit, call, event)
        raise


def _holds(session: Session, holder_ref: str, *, identifier: str | None, catalogue_code: str | None) -> bool:
    low, high = holder_digest_range(holder_ref)
    query = select(CertificateRow.id).where(
        CertificateRow.holder_id_digest >= low, CertificateRow.holder_id_digest <= high
    )
    if identifier is not None:
        query = query.where(CertificateRow.identifier == identifier)
    else:
        query = query.where(CertificateRow.catalogue_code == catalogue_code)
    return session.scalar(query.limit(1)) is not None


def _text(value: str | None, name: str, longest: int) -> str | None:
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    if len(value) > longest:
        raise AuthorisationInputError(f"{name}: at most {longest} characters")
    if any(ord(ch) < 32 for ch in value):
        raise AuthorisationInputError(f"{name}: no control characters")
    return value


def grant(
    app: Application,
    call: Call,
    *,
    using_unit: str,
    certificate_identifier: str | None = None,
    catalogue_code: str | None = None,
    matter: str | None = None,
    purpose: str,
    valid_until: datetime,
) -> Authorisation:
    """The calling holder authorises ``using_unit`` (an organisation code the repository knows) to use one named
    certificate (``certificate_identifier``) or all of the holder's certificates of one type
    (``catalogue_code``) — exactly one of the two — for ``matter`` (None: any matter registered for the unit)
    and ``purpose``, until ``valid_until`` (a time ahead, with a time zone). The holder must hold the certificate
    (or at least one of the type): :class:`AccessDeniedError` otherwise, as for a caller who is not a holder."""
    unit = _text(using_unit, "using_unit", 32)
    identifier = _text(certificate_identifier, "certificate_identifier", 128)
    code = _text(catalogue_code, "catalogue_code", 32)
    stated_matter = _text(matter, "matter", _MATTER_MAX)
    about = {"certificate": identifier, "matter": stated_matter}
    with _denials_recorded(app, call, "authorisation.grant", **about):
        holder = _holder(call)
    if unit is None:
        raise AuthorisationInputError(
            "using_unit: the organisation code of the using unit (用证单位) is required"
        )
    if (identifier is None) == (code is None):
        raise AuthorisationInputError(
            "name either one certificate (certificate_identifier) or one type (catalogue_code), not both or neither"
        )
    reason = _text(purpose, "purpose", PURPOSE_MAX)
    if reason is None:
        raise AuthorisationInputError("purpose: state what the using unit may use the certificate for (用途)")
    if valid_until.tzinfo is None:
        raise AuthorisationInputError("valid_until: a time with its time zone")
    now = app.now()
    if valid_until <= now:
        raise AuthorisationInputError("valid_until: must lie in the future")
    with app.repo.db.session() as session:
        organisation = session.scalar(select(OrganisationRow).where(OrganisationRow.code == unit))
        if organisation is None:
            raise AuthorisationInputError(f"using_unit: no organisation {unit} is known to the repository")
        held = _holds(session, holder, identifier=identifier, catalogue_code=code)
        if held:
            unit_named = (unit, organisation.name)
            return _store(
                session, call, holder, unit_named, identifier, code, stated_matter, reason, valid_until, now
            )
    with _denials_recorded(
        app, call, "authorisation.grant", **about
    ):  # after the transaction: nothing written
        what = f"certificate {identifier}" if identifier else f"certificate of type {code}"
        raise AccessDeniedError(f"you hold no {what}; a holder authorises only their own certificates")


def _store(
    session: Session,
    call: Call,
    holder: str,
    unit: tuple[str, str | None],
    identifier: str | None,
    code: str | None,
    stated_matter: str | None,
    reason: str,
    valid_until: datetime,
    now: datetime,
) -> Authorisation:
    """Write the grant and its entry in ``session``'s transaction."""
    row = HolderAuthorisationRow(
        holder_digest=holder,
        using_unit=unit[0],
        using_unit_name=unit[1],
        certificate_identifier=identifier,
        catalogue_code=code,
        matter=stated_matter,
        purpose=reason,
        valid_until=valid_until.astimezone(UTC),
        created_at=now,
    )
    session.add(row)
    session.flush()
    details = {
        "authorisation": row.id,
        "using_unit": unit[0],
        "catalogue_code": code,
        "purpose": reason,
        "valid_until": valid_until.astimezone(UTC).isoformat(),
    }
    event = call.event(
        "authorisation.grant",
        certificate=identifier,
        holder_digest=holder,
        matter=stated_matter,
        details=details,
    )
    audit_in(session, call, event)
    return _view(row, now)


def revoke(app: Application, call: Call, authorisation_id: int) -> Authorisation:
    """The granting holder revokes an authorisation (at once; look-ups under it are refused from then on).
    Revoking one already revoked returns it unchanged and records nothing new; an authorisation of someone else
    (or none of that id) is :class:`AccessDeniedError`."""
    about = {"details": {"authorisation": authorisation_id}}
    with _denials_recorded(app, call, "authorisation.revoke", **about):
        holder = _holder(call)
        now = app.now()
        with app.repo.db.session() as session:
            row = session.get(HolderAuthorisationRow, authorisation_id, with_for_update=True)
            if row is None or row.holder_digest != holder:
                raise AccessDeniedError(f"no authorisation {authorisation_id} of yours")
            if row.revoked_at is not None:
                return _view(row, now)
            row.revoked_at = now
            session.flush()
            audit_in(
                session,
                call,
                call.event(
                    "authorisation.revoke",
                    certificate=row.certificate_identifier,
                    holder_digest=holder,
                    matter=row.matter,
                    details={"authorisation": row.id, "using_unit": row.using_unit},
                ),
            )
            return _view(row, now)


def list_for_holder(app: Application, call: Call) -> list[Authorisation]:
    """The calling holder's authorisations, newest first (active, expired and revoked alike)."""
    holder = _holder(call)
    now = app.now()
    with app.repo.db.session(readonly=True) as session:
        rows = session.scalars(
            select(HolderAuthorisationRow)
            .where(HolderAuthorisationRow.holder_digest == holder)
            .order_by(HolderAuthorisationRow.id.desc())
        )
        return [_view(row, now) for row in rows]


def active_for(session: Session, holder_ref: str, using_unit: str, at: datetime) -> list[Authorisation]:
    """The authorisations of ``holder_ref`` for ``using_unit`` active at ``at`` (not revoked, not expired), as
    the window look-up reads them in its own session (:mod:`certstore.services.scope`)."""
    rows = session.scalars(
        select(HolderAuthorisationRow).where(
            HolderAuthorisationRow.holder_digest == holder_ref,
            HolderAuthorisationRow.using_unit == using_unit,
            HolderAuthorisationRow.revoked_at.is_(None),
            HolderAuthorisationRow.valid_until > at,
        )
    )
    return [_view(row, at) for row in rows]
