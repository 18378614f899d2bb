"""年检 (第二十二条): annual-inspection results on certificates whose catalogue type requires them.

A result belongs to the certificate as a whole — its issuing agency and serial (流水号), shared by every
version — and a year: one result per (issuer, serial, year). Recording the same result again returns the
stored one (a retried push); a different result for a year already recorded is refused with
:class:`InspectionConflictError`: a stored result is never overwritten (there is no correction operation yet).

Whether a type requires inspection is read from the catalogue entry version the certificate was issued under
(``CatalogueEntry.annual_inspection``), and so is what a result does (``inspection.on_failure``,
:class:`~certstore.catalogue.InspectionFailure`): with ``suspend`` a failed result suspends (挂起) the certificate's
current version if it is valid, and a passed result of a later year resumes (恢复) a version that a failed
inspection suspended — through the lifecycle use case (:func:`certstore.services.certificates.act_in`), in the
transaction that stores the result: one lifecycle event (its details name the inspection year), one
``certificate.act`` audit entry, the holder notified. A suspension the agency made for another reason is never
lifted by an inspection. A year before the certificate was issued (its first version's issue date) is refused.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from typing import TYPE_CHECKING

from sqlalchemy import and_, exists, or_, select, tuple_
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, aliased

from certstore.access import AccessDeniedError
from certstore.catalogue import CatalogueEntry, InspectionFailure
from certstore.lifecycle import Action, Status, effective_status
from certstore.services import certificates
from certstore.services.calls import Call
from certstore.services.catalogue import get_entry
from certstore.services.transaction import Within, run_within
from certstore.store.models import CatalogueEntryRow, CertificateRow, InspectionRow
from certstore.store.repository import Repository
from certstore.workdays import local_date

if TYPE_CHECKING:
    from certstore.app import Application

__all__ = [
    "DueInspection",
    "Inspection",
    "InspectionConflictError",
    "InspectionNotRequiredError",
    "InspectionResult",
    "due_inspections",
    "list_inspections",
    "record_inspection",
]

FIRST_YEAR = 1900


class InspectionResult(StrEnum):
    PASSED = "passed"  # 年检合格
    FAILED = "failed"  # 年检不合格


class InspectionNotRequiredError(ValueError):
    """The certificate's catalogue type has no annual inspection (年检)."""


class InspectionConflictError(ValueError):
    """A different result was already recorded for that certificate and year."""


@dataclass(frozen=True)
class Inspection:
    """One 年检 result. ``certificate_identifier`` is the version it was recorded on."""

    id: int
    certificate_identifier: str
    issuer_code: str
    serial: str
    year: int
    result: InspectionResult
    inspected_on: date
    remarks: str
    inspector: str  # principal "ORGCODE/name"
    recorded_at: datetime
    #: What recording it did to the certificate (``suspend``/``resume``, the type's ``inspection.on_failure``);
    #: None when nothing, and for a stored result read back.
    consequence: Action | None = None


@dataclass(frozen=True)
class DueInspection:
    """A current, valid certificate of an annual-inspection type with no result for the year asked about."""

    identifier: str  # the current version
    issuer_code: str
    serial: str
    certificate_number: str
    name: str  # 证照名称
    catalogue_code: str
    holder_name: str
    valid_until: date | None


def _view(row: InspectionRow) -> Inspection:
    return Inspection(
        id=row.id,
        certificate_identifier=row.certificate_identifier,
        issuer_code=row.issuer_code,
        serial=row.serial,
        year=row.year,
        result=InspectionResult(row.result),
        inspected_on=row.inspected_on,
        remarks=row.remarks,
        inspector=row.inspector,
        recorded_at=row.recorded_at,
    )


def _find(session: Session, issuer_code: str, serial: str, year: int) -> InspectionRow | None:
    return session.scalars(
        select(InspectionRow).where(
            InspectionRow.issuer_code == issuer_code,
            InspectionRow.serial == serial,
            InspectionRow.year == year,
        )
    ).first()


def _same_or_conflict(
    existing: InspectionRow, result: InspectionResult, inspected_on: date, remarks: str
) -> Inspection:
    differences = []
    if existing.result != result:
        differences.append(f"result {existing.result}, not {result.value}")
    if existing.inspected_on != inspected_on:
        differences.append(f"inspected on {existing.inspected_on}, not {inspected_on}")
    if existing.remarks != remarks:
        differences.append("other remarks")
    if differences:
        raise InspectionConflictError(
            f"the {existing.year} annual inspection (年检) of {existing.issuer_code} serial {existing.serial} "
            f"was already recorded by {existing.inspector} with {'; '.join(differences)}"
        )
    return _view(existing)


def record_inspection(
    app: Application,
    call: Call,
    identifier: str,
    *,
    year: int,
    result: InspectionResult | str,
    inspected_on: date,
    remarks: str = "",
    within: Within | None = None,
) -> Inspection:
    """Record the ``year`` 年检 result of the certificate ``identifier`` (any of its versions), as ``call``'s actor
    (an agency principal: the inspector), and apply what the type declares for it (module docstring).

    Raises :class:`certstore.services.certificates.CertificateNotFoundError`, :class:`AccessDeniedError` when
    the inspector's organisation did not issue the certificate, :class:`InspectionNotRequiredError` when its
    type has no annual inspection, :class:`InspectionConflictError` when another result is recorded for that
    year, and ``ValueError`` for a year in the future or before the certificate's issue year, or an inspection
    date in the future. The same result again (same result, date and remarks) returns the stored one and changes
    nothing. ``within`` (:mod:`certstore.services.transaction`) runs in the transaction that stores a new result
    (not for a repeat), after its consequence."""
    repo = app.repo
    try:
        result = InspectionResult(result)
    except ValueError:
        raise ValueError(f"result must be 'passed' or 'failed', got {result!r}") from None
    if not isinstance(inspected_on, date) or isinstance(inspected_on, datetime):
        raise TypeError(f"inspected_on must be a datetime.date, got {type(inspected_on).__name__}")
    remarks = remarks.strip()
    today = local_date(repo.now())
    if isinstance(year, bool) or not isinstance(year, int) or not FIRST_YEAR <= year <= today.year:
        raise ValueError(f"year must be between {FIRST_YEAR} and {today.year}, got {year!r}")
    if inspected_on > today:
        raise ValueError(f"inspection date {inspected_on} is in the future (today is {today})")

    certificate = certificates.get(repo, identifier)
    inspector = call.actor
    if inspector.organisation_code != certificate.issuer_code:
        raise AccessDeniedError(
            f"{identifier} was issued by {certificate.issuer_code}; only that agency records its annual "
            f"inspection (年检), not {inspector.organisation_code or inspector.ref}"
        )
    entry = get_entry(repo, certificate.catalogue_code, certificate.catalogue_version)
    if not entry.annual_inspection:
        raise InspectionNotRequiredError(
            f"{entry.name} ({entry.code} version {entry.version}) has no annual inspection (年检): its catalogue "
            "entry does not require one"
        )
    issued = _first_issue_date(repo, certificate.issuer_code, certificate.serial)
    if year < issued.year:
        raise ValueError(
            f"year {year} is before the certificate was issued ({issued.isoformat()}): there was no {year} "
            "annual inspection (年检) of it"
        )
    key = (certificate.issuer_code, certificate.serial, year)
    try:
        with repo.db.session() as session:
            existing = _find(session, *key)
            if existing is not None:
                return _same_or_conflict(existing, result, inspected_on, remarks)
            row = InspectionRow(
                certificate_identifier=certificate.identifier,
                issuer_code=certificate.issuer_code,
                serial=certificate.serial,
                year=year,
                result=result.value,
                inspected_on=inspected_on,
                remarks=remarks,
                inspector=inspector.ref,
                recorded_at=repo.now(),
            )
            session.add(row)
            session.flush()
            consequence = _apply_consequence(session, app, call, entry, row)
            run_within(session, within)
            return dataclasses.replace(_view(row), consequence=consequence)
    except IntegrityError:  # a concurrent recording of the same year won the race
        with repo.db.session(readonly=True) as session:
            existing = _find(session, *key)
            if existing is None:
                raise
            return _same_or_conflict(existing, result, inspected_on, remarks)


def _first_issue_date(repo: Repository, issuer_code: str, serial: str) -> date:
    """The issue date of the certificate's first version (when it came to exist)."""
    with repo.db.session(readonly=True) as session:
        first = session.scalars(
            select(CertificateRow.issue_date)
            .where(CertificateRow.issuer_code == issuer_code, CertificateRow.serial == serial)
            .order_by(CertificateRow.version)
            .limit(1)
        ).one()
        return first


def _apply_consequence(
    session: Session, app: Application, call: Call, entry: CatalogueEntry, inspection: InspectionRow
) -> Action | None:
    """What the type declares for the result just stored, applied to the certificate's current version in
    ``session``'s transaction: a failed result suspends a valid version; a passed result resumes a version
    whose suspension came from a failed inspection of an earlier year. Returns the action taken, if any."""
    if entry.inspection_on_failure is not InspectionFailure.SUSPEND:
        return None
    current = session.scalars(
        select(CertificateRow)
        .where(
            CertificateRow.issuer_code == inspection.issuer_code,
            CertificateRow.serial == inspection.serial,
            CertificateRow.superseded_by_id.is_(None),
        )
        .order_by(CertificateRow.version.desc())
        .limit(1)
        .with_for_update()  # the status read here is the one the transition starts from
    ).one()
    status = effective_status(Status(current.status), current.valid_until, app.now())
    year = inspection.year
    if inspection.result == InspectionResult.FAILED.value and status is Status.VALID:
        action, reason = Action.SUSPEND, f"{year}年度年检不合格"
    elif inspection.result == InspectionResult.PASSED.value and status is Status.SUSPENDED:
        last = current.events[-1] if current.events else None
        suspended_for = (last.details or {}).get("inspection") if last is not None else None
        if last is None or last.action != Action.SUSPEND.value or not isinstance(suspended_for, int):
            return None  # suspended by the agency for another reason: not an inspection's to lift
        if suspended_for >= year:
            return None  # a result for an earlier year, recorded late, does not lift a later failure
        action, reason = Action.RESUME, f"{year}年度年检合格"
    else:
        return None
    if inspection.remarks:
        reason = f"{reason}：{inspection.remarks}"
    cause = {"inspection": year, "inspection_result": inspection.result}
    certificates.act_in(session, app, call, current.identifier, action, reason=reason, cause=cause)
    return action


def list_inspections(repo: Repository, identifier: str) -> list[Inspection]:
    """Every 年检 result of the certificate ``identifier`` belongs to (all versions), oldest year first."""
    certificate = certificates.get(repo, identifier)
    with repo.db.session(readonly=True) as session:
        rows = session.scalars(
            select(InspectionRow)
            .where(
                InspectionRow.issuer_code == certificate.issuer_code,
                InspectionRow.serial == certificate.serial,
            )
            .order_by(InspectionRow.year)
        ).all()
        return [_view(row) for row in rows]


def due_inspections(repo: Repository, *, year: int, issuer_code: str | None = None) -> list[DueInspection]:
    """Certificates that still need their ``year`` 年检 result: the current version (not superseded) is valid
    today (stored VALID, not expired in China Standard Time), its type requires annual inspection, the
    certificate existed in ``year`` (its first version was issued by 31 December), and no result for ``year``
    is recorded. Ordered by issuer, catalogue type and certificate number."""
    if isinstance(year, bool) or not isinstance(year, int):
        raise TypeError(f"year must be an int, got {year!r}")
    today = local_date(repo.now())
    with repo.db.session(readonly=True) as session:
        types = [
            (row.code, row.version)
            for row in session.scalars(select(CatalogueEntryRow))
            if row.definition.get("annual_inspection") is True
        ]
        if not types:
            return []
        first = aliased(CertificateRow)
        query = select(
            CertificateRow.identifier,
            CertificateRow.issuer_code,
            CertificateRow.serial,
            CertificateRow.certificate_number,
            CertificateRow.name,
            CertificateRow.catalogue_code,
            CertificateRow.holder_name,
            CertificateRow.valid_until,
        ).where(
            CertificateRow.superseded_by_id.is_(None),
            CertificateRow.status == Status.VALID.value,
            or_(CertificateRow.valid_until.is_(None), CertificateRow.valid_until >= today),
            tuple_(CertificateRow.catalogue_code, CertificateRow.catalogue_version).in_(types),
            exists().where(
                and_(
                    first.issuer_code == CertificateRow.issuer_code,
                    first.serial == CertificateRow.serial,
                    first.issue_date <= date(year, 12, 31),
                )
            ),
            ~exists().where(
                and_(
                    InspectionRow.issuer_code == CertificateRow.issuer_code,
                    InspectionRow.serial == CertificateRow.serial,
                    InspectionRow.year == year,
                )
            ),
        )
        if issuer_code is not None:
            query = query.where(CertificateRow.issuer_code == issuer_code)
        query = query.order_by(
            CertificateRow.issuer_code, CertificateRow.catalogue_code, CertificateRow.certificate_number
        )
        return [
            DueInspection(
                identifier=row.identifier,
                issuer_code=row.issuer_code,
                serial=row.serial,
                certificate_number=row.certificate_number,
                name=row.name,
                catalogue_code=row.catalogue_code,
                holder_name=row.holder_name,
                valid_until=row.valid_until,
            )
            for row in session.execute(query)
        ]
