"""年检 (第二十二条): annual-inspection results on certificates whose catalogue type requires them.

A result belongs to the certificate as a whole — its issuing agency and serial (流水号), shared by every
version — and a year: one result per (issuer, serial, year). Recording the same result again returns the
stored one (a retried push); a different result for a year already recorded is refused with
:class:`InspectionConflictError`: a stored result is never overwritten (there is no correction operation yet).

Whether a type requires inspection is read from the catalogue entry version the certificate was issued under
(``CatalogueEntry.annual_inspection``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum

from sqlalchemy import and_, exists, or_, select, tuple_
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, aliased

from certstore.access import AccessDeniedError, Principal
from certstore.lifecycle import Status
from certstore.services import certificates
from certstore.services.catalogue import get_entry
from certstore.services.transaction import Within, run_within
from certstore.store.models import CatalogueEntryRow, CertificateRow, InspectionRow
from certstore.store.repository import Repository
from certstore.workdays import local_date

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
    repo: Repository,
    identifier: str,
    *,
    year: int,
    result: InspectionResult | str,
    inspected_on: date,
    remarks: str = "",
    inspector: Principal,
    within: Within | None = None,
) -> Inspection:
    """Record the ``year`` 年检 result of the certificate ``identifier`` (any of its versions).

    Raises :class:`certstore.services.certificates.CertificateNotFoundError`, :class:`AccessDeniedError` when
    the inspector's organisation did not issue the certificate, :class:`InspectionNotRequiredError` when its
    type has no annual inspection, :class:`InspectionConflictError` when another result is recorded for that
    year, and ``ValueError`` for a year or inspection date in the future. The same result again (same result,
    date and remarks) returns the stored one. ``within`` (:mod:`certstore.services.transaction`) runs in the
    transaction that stores a new result (not for a repeat)."""
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
    if inspector.organisation_code != certificate.issuer_code:
        raise AccessDeniedError(
            f"{identifier} was issued by {certificate.issuer_code}; only that agency records its annual "
            f"inspection (年检), not {inspector.organisation_code}"
        )
    entry = get_entry(repo, certificate.catalogue_code, certificate.catalogue_version)
    if not entry.annual_inspection:
        raise InspectionNotRequiredError(
            f"{entry.name} ({entry.code} version {entry.version}) has no annual inspection (年检): its catalogue "
            "entry does not require one"
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
            run_within(session, within)
            return _view(row)
    except IntegrityError:  # a concurrent recording of the same year won the race
        with repo.db.session(readonly=True) as session:
            existing = _find(session, *key)
            if existing is None:
                raise
            return _same_or_conflict(existing, result, inspected_on, remarks)


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
