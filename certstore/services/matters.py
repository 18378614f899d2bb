"""Registered matters (办件) from the case-handling system (一窗受理/审批系统, role ``case_system``): the matters under
which a using unit's window staff may look a holder up (知悉范围, :mod:`certstore.services.scope`).

The case system of a using unit — an ordinary principal of that unit's organisation with role case_system — registers
a matter when it accepts an application: its number (办件编号), the holder it is for (ID type and number: only the
keyed reference :func:`certstore.identifiers.holder_ref` is stored, never the number), the purpose and the validity
(from, until). The using unit is the case system's own organisation: a case system cannot register matters for
another unit. When the matter is finished (办结) or withdrawn (撤回) the case system closes it; look-ups under it are
refused from then on, as they are before ``valid_from`` and from ``valid_until``.

A number is registered once per unit: registering it again with the same holder, purpose and validity returns the
stored matter (a retry after a lost answer), anything else is a :class:`MatterConflictError`. Two concurrent
registrations of one number resolve on the unique key (organisation, matter): one row, the other call answers as a
retry or a conflict. Each registration and each closing is one transaction with its audit entry (``matter.register``,
``matter.close``, ``matter.withdraw``; the holder digest and the matter in the entry).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from certstore.access import AccessDeniedError, Role
from certstore.audit import Outcome
from certstore.identifiers import HolderIdType, holder_id_digest, holder_ref, validate_holder_id
from certstore.services.calls import Call, audit_in, audit_now
from certstore.store.models import MatterRow

if TYPE_CHECKING:
    from certstore.app import Application

__all__ = [
    "MATTER_MAX",
    "Matter",
    "MatterConflictError",
    "MatterInputError",
    "MatterNotFoundError",
    "MatterStateError",
    "active_matter",
    "close",
    "get",
    "register",
]

#: The longest matter number accepted (as the window declares it, :data:`certstore.services.scope.MATTER_MAX`).
MATTER_MAX = 100
PURPOSE_MAX = 200


class MatterInputError(ValueError):
    """Bad input to :func:`register` (the message names the field)."""


class MatterNotFoundError(LookupError):
    """No matter of that number is registered for the caller's unit."""


class MatterConflictError(ValueError):
    """The number is registered already, for another holder, purpose or validity."""


class MatterStateError(ValueError):
    """The matter is closed or withdrawn already."""


@dataclass(frozen=True)
class Matter:
    """A registered matter (办件) as the case system and the scope rule see it."""

    id: int
    organisation_code: str
    matter: str
    holder_ref: str
    purpose: str
    valid_from: datetime
    valid_until: datetime
    registered_by: str
    registered_at: datetime
    closed_at: datetime | None
    close_reason: str | None
    checked_at: datetime | None = field(default=None, compare=False, repr=False)

    @property
    def active(self) -> bool:
        """Open (not closed or withdrawn) and within its validity, by the repository's clock when read."""
        now = self.checked_at or datetime.now(UTC)
        return self.closed_at is None and self.valid_from <= now < self.valid_until


def _view(row: MatterRow, at: datetime) -> Matter:
    return Matter(
        id=row.id,
        organisation_code=row.organisation_code,
        matter=row.matter,
        holder_ref=row.holder_digest,
        purpose=row.purpose,
        valid_from=row.valid_from,
        valid_until=row.valid_until,
        registered_by=row.registered_by,
        registered_at=row.registered_at,
        closed_at=row.closed_at,
        close_reason=row.close_reason,
        checked_at=at,
    )


def _row(session: Session, organisation_code: str, matter: str, *, lock: bool = False) -> MatterRow | None:
    query = select(MatterRow).where(
        MatterRow.organisation_code == organisation_code, MatterRow.matter == matter
    )
    return session.scalar(query.with_for_update() if lock else query)


def active_matter(session: Session, organisation_code: str, matter: str, at: datetime) -> Matter | None:
    """The matter ``matter`` of ``organisation_code`` if it is registered and active at ``at``, else None."""
    row = _row(session, organisation_code, matter)
    if row is None:
        return None
    found = _view(row, at)
    return found if found.active else None


def _case_system(app: Application, call: Call, action: str, matter: str | None) -> str:
    actor = call.actor
    if actor.role is not Role.CASE_SYSTEM or not actor.organisation_code:
        reason = (
            f"role {actor.role.value} does not register matters (the case-handling system, case_system, does)"
        )
        if app.audit is not None:
            event = call.event(action, outcome=Outcome.DENY, status_code=403, matter=matter, reason=reason)
            audit_now(app.audit, call, event)
        raise AccessDeniedError(reason)
    return actor.organisation_code


def _clean(value: str | None, name: str, longest: int) -> str:
    text = (value or "").strip()
    if not text:
        raise MatterInputError(f"{name}: required")
    if len(text) > longest:
        raise MatterInputError(f"{name}: at most {longest} characters")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in text):
        raise MatterInputError(f"{name}: no control characters")
    return text


def register(
    app: Application,
    call: Call,
    *,
    matter: str,
    holder_id_type: HolderIdType | str,
    holder_id: str,
    purpose: str,
    valid_until: datetime,
    valid_from: datetime | None = None,
) -> Matter:
    """The case system (``call.actor``, role case_system) registers ``matter`` of its own unit for the holder
    ``holder_id_type``/``holder_id`` (stored as the keyed reference only), with ``purpose``, valid from
    ``valid_from`` (default now) until ``valid_until``. The same registration again returns the stored matter;
    a different one under the same number is :class:`MatterConflictError`."""
    number = _clean(matter, "matter", MATTER_MAX)
    organisation = _case_system(app, call, "matter.register", number)
    reason = _clean(purpose, "purpose", PURPOSE_MAX)
    try:
        kind = HolderIdType(holder_id_type)
        digest = holder_id_digest(app.repo.holder_key, kind, validate_holder_id(kind, holder_id))
    except ValueError as exc:
        raise MatterInputError(f"holder: not a valid ID: {exc}") from None
    holder = holder_ref(digest)
    now = app.now()
    if valid_until.tzinfo is None or (valid_from is not None and valid_from.tzinfo is None):
        raise MatterInputError("valid_from / valid_until: times with their time zone")
    start = (valid_from or now).astimezone(UTC)
    end = valid_until.astimezone(UTC)
    if end <= now:
        raise MatterInputError("valid_until: must lie in the future")
    if start >= end:
        raise MatterInputError("valid_from: must lie before valid_until")
    values = {
        "organisation_code": organisation,
        "matter": number,
        "holder_digest": holder,
        "purpose": reason,
        "valid_from": start.replace(microsecond=0),
        "valid_until": end.replace(microsecond=0),
    }
    for _attempt in range(2):
        try:
            with app.repo.db.session() as session:
                existing = _row(session, organisation, number)
                if existing is not None:  # a retry without valid_from keeps the stored start
                    stated = (
                        values if valid_from is not None else {**values, "valid_from": existing.valid_from}
                    )
                    return _same_or_conflict(existing, stated, now)
                row = MatterRow(**values, registered_by=call.actor.ref[:200], registered_at=now)
                session.add(row)
                session.flush()
                audit_in(
                    session,
                    call,
                    call.event(
                        "matter.register",
                        holder_digest=holder,
                        matter=number,
                        details={
                            "purpose": reason,
                            "valid_from": values["valid_from"].isoformat(),
                            "valid_until": values["valid_until"].isoformat(),
                        },
                    ),
                )
                return _view(row, now)
        except IntegrityError:  # a concurrent registration of the same number won: answer as to a retry
            continue
    raise MatterConflictError(f"matter {number} is being registered concurrently; retry")


def _same_or_conflict(existing: MatterRow, values: dict[str, object], at: datetime) -> Matter:
    stored = {key: getattr(existing, key) for key in values}
    if stored != values:
        differing = sorted(key for key in values if stored[key] != values[key])
        raise MatterConflictError(
            f"matter {existing.matter} is registered already with another {', '.join(differing)}"
        )
    return _view(existing, at)


def get(app: Application, call: Call, matter: str) -> Matter:
    """The registered matter ``matter`` of the caller's unit (case system or window staff of that unit)."""
    actor = call.actor
    if actor.role not in (Role.CASE_SYSTEM, Role.WINDOW) or not actor.organisation_code:
        raise AccessDeniedError(f"role {actor.role.value} does not read registered matters")
    number = (matter or "").strip()
    with app.repo.db.session(readonly=True) as session:
        row = _row(session, actor.organisation_code, number)
        if row is None:
            raise MatterNotFoundError(
                f"no matter {number[:MATTER_MAX]} is registered for {actor.organisation_code}"
            )
        return _view(row, app.now())


def close(
    app: Application, call: Call, matter: str, *, withdrawn: bool = False, reason: str | None = None
) -> Matter:
    """The case system closes its matter: finished (办结) or ``withdrawn`` (撤回). Look-ups under it are refused
    from then on. Closing a closed matter is :class:`MatterStateError`."""
    action = "matter.withdraw" if withdrawn else "matter.close"
    number = (matter or "").strip()
    organisation = _case_system(app, call, action, number[:MATTER_MAX] or None)
    note = (reason or "").strip()[:PURPOSE_MAX] or None
    now = app.now()
    with app.repo.db.session() as session:
        row = _row(session, organisation, number, lock=True)
        if row is None:
            raise MatterNotFoundError(f"no matter {number[:MATTER_MAX]} is registered for {organisation}")
        if row.closed_at is not None:
            raise MatterStateError(f"matter {number} was {row.close_reason} at {row.closed_at.isoformat()}")
        row.closed_at, row.closed_by = now, call.actor.ref[:200]
        row.close_reason = "withdrawn" if withdrawn else "closed"
        session.flush()
        details = {"reason": note} if note else None
        audit_in(
            session, call, call.event(action, holder_digest=row.holder_digest, matter=number, details=details)
        )
        return _view(row, now)
