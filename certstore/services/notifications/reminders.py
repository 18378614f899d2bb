"""Reminders (提醒): expiry reminders to holders and annual inspections due to issuing agencies, written into the
outbox by a periodic run (``certstore notify reminders``, or each pass of ``notify run``).

**Expiry (到期提醒).** A current version (not superseded) that is valid and has a ``valid_until`` gets a reminder
N days before that day, for each N its catalogue type lists in ``expiry_reminder_days`` (the catalogue entry
version it was issued under; :data:`DEFAULT_REMINDER_DAYS` when the type sets none). When the run finds several
of a certificate's reminders reached (the run did not happen for a while), only the nearest is written. Key:
``expiry_reminder:<identifier>:<N>`` — once per (certificate version, reminder), however often the run repeats.
Days are counted in China Standard Time by the repository clock (tests move it).

**Annual inspection (年检).** Each certificate :func:`~certstore.services.inspections.due_inspections` lists for
the current year goes to its issuing agency's webhook subscriptions. Key:
``inspection_due:<issuer>:<serial>:<year>``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.orm import Session

from certstore.identifiers import holder_ref
from certstore.lifecycle import Status
from certstore.services.inspections import due_inspections
from certstore.services.notifications import EXPIRY_REMINDER, INSPECTION_DUE, enqueue_at
from certstore.services.notifications.events import certificate_payload
from certstore.store.models import CatalogueEntryRow, CertificateRow
from certstore.workdays import local_date

if TYPE_CHECKING:
    from certstore.app import Application

__all__ = [
    "DEFAULT_REMINDER_DAYS",
    "ReminderReport",
    "expiry_reminders",
    "inspection_reminders",
    "run_reminders",
]

#: Days before ``valid_until`` a holder is reminded when the catalogue type sets no ``expiry_reminder_days``.
DEFAULT_REMINDER_DAYS: tuple[int, ...] = (30,)

_CHUNK = 500


@dataclass(frozen=True)
class ReminderReport:
    """How many reminders a run considered (each written once; a repeat adds nothing)."""

    expiry: int
    inspections: int


def _reminder_days(session: Session, default: tuple[int, ...]) -> dict[tuple[str, int], tuple[int, ...]]:
    """``expiry_reminder_days`` of every catalogue entry version (the default where unset)."""
    days: dict[tuple[str, int], tuple[int, ...]] = {}
    for row in session.scalars(select(CatalogueEntryRow)):
        listed = row.definition.get("expiry_reminder_days")
        days[(row.code, row.version)] = tuple(sorted(listed)) if listed else default
    return days


def expiry_reminders(
    app: Application, *, at: datetime | None = None, default: tuple[int, ...] = DEFAULT_REMINDER_DAYS
) -> int:
    """Write the expiry reminders due at ``at`` (default: now by the repository clock; a later ``at`` writes
    ahead what will be due, to be sent now); returns how many certificates had one due (already written ones
    included: the key makes a repeat a no-op)."""
    written_at = app.now()
    at = at or written_at
    today = local_date(at)
    written = 0
    with app.repo.db.session() as session:
        days = _reminder_days(session, default)
        horizon = max((max(d) for d in days.values()), default=max(default))
        rows = session.scalars(
            select(CertificateRow)
            .where(
                CertificateRow.superseded_by_id.is_(None),
                CertificateRow.status == Status.VALID.value,
                CertificateRow.valid_until.is_not(None),
                CertificateRow.valid_until >= today,
                CertificateRow.valid_until <= today + timedelta(days=horizon),
            )
            .order_by(CertificateRow.id)
            .execution_options(yield_per=_CHUNK)
        )
        for row in rows:
            assert row.valid_until is not None
            left = (row.valid_until - today).days
            reached = [d for d in days.get((row.catalogue_code, row.catalogue_version), default) if left <= d]
            if not reached:
                continue
            nearest = min(reached)
            enqueue_at(
                session, written_at, kind=EXPIRY_REMINDER, holder_ref=holder_ref(row.holder_id_digest),
                subject_id=row.identifier, payload=certificate_payload(row, days_left=left, reminder_days=nearest),
                idempotency_key=f"expiry_reminder:{row.identifier}:{nearest}",
            )  # fmt: skip
            written += 1
    return written


def inspection_reminders(app: Application, *, at: datetime | None = None) -> int:
    """Tell issuing agencies (their webhook subscriptions) of every annual inspection still due this year."""
    written_at = app.now()
    at = at or written_at
    year = local_date(at).year
    due = due_inspections(app.repo, year=year)
    with app.repo.db.session() as session:
        for item in due:
            row = session.scalars(
                select(CertificateRow).where(CertificateRow.identifier == item.identifier)
            ).one()
            enqueue_at(
                session, written_at, kind=INSPECTION_DUE, holder_ref=holder_ref(row.holder_id_digest),
                subject_id=item.identifier, payload=certificate_payload(row, year=year),
                idempotency_key=f"inspection_due:{item.issuer_code}:{item.serial}:{year}",
            )  # fmt: skip
    return len(due)


def run_reminders(app: Application, *, at: datetime | None = None) -> ReminderReport:
    """Both kinds of reminders at ``at``."""
    return ReminderReport(expiry_reminders(app, at=at), inspection_reminders(app, at=at))
