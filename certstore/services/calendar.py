"""The stored working-day calendar (工作日历): holidays (节假日) and make-up workdays (调休上班).

The ``calendar_days`` table holds only the exceptions to the Monday–Friday week; :func:`load_calendar` turns
them into a :class:`certstore.workdays.WorkCalendar`. Every write is validated by the same rules (a holiday is
a weekday, a make-up workday a Saturday or Sunday, a name is given) and refused with
:class:`certstore.workdays.CalendarError` listing every problem.

An import document, as the big-data bureau keeps it from the State Council's yearly notice::

    {"holidays": {"2026-10-01": "国庆节", ...}, "workdays": {"2026-10-10": "国庆调休", ...}}

Importing merges: the listed days are written (a day already stored takes the new kind and name), the others
stay. Deadlines already computed (复核 due dates) are not recomputed when the calendar changes.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from certstore.services.transaction import Within, run_within
from certstore.store.models import CalendarDayRow
from certstore.store.repository import Repository
from certstore.workdays import CalendarError, WorkCalendar

__all__ = [
    "CalendarDay",
    "DayKind",
    "import_days",
    "list_days",
    "load_calendar",
    "remove_day",
    "set_day",
]

NAME_MAX = 100  # calendar_days.name
_ISO_DAY = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")


class DayKind(StrEnum):
    HOLIDAY = "holiday"  # 节假日: a weekday off
    WORKDAY = "workday"  # 调休上班: a Saturday or Sunday worked

    @property
    def label(self) -> str:
        return "节假日" if self is DayKind.HOLIDAY else "调休上班"


@dataclass(frozen=True)
class CalendarDay:
    """One exception to the Monday–Friday week."""

    day: date
    kind: DayKind
    name: str


def _kind(value: object) -> DayKind:
    try:
        return DayKind(value)
    except ValueError:
        raise ValueError(f"kind must be 'holiday' or 'workday', got {value!r}") from None


def _validate(days: list[CalendarDay]) -> None:
    """The rules of :class:`WorkCalendar` plus the stored name's length, all problems at once."""
    problems = [
        f"{d.kind.value} {d.day}: name longer than {NAME_MAX} characters"
        for d in days
        if isinstance(d.name, str) and len(d.name) > NAME_MAX
    ]
    try:
        WorkCalendar(
            holidays={d.day: d.name for d in days if d.kind is DayKind.HOLIDAY},
            workdays={d.day: d.name for d in days if d.kind is DayKind.WORKDAY},
        )
    except CalendarError as error:
        problems = error.problems + problems
    if problems:
        raise CalendarError(problems)


def _upsert(session: Session, days: list[CalendarDay]) -> None:
    if not days:
        return
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    statement = dialect.insert(CalendarDayRow).values(
        [{"day": d.day, "kind": d.kind.value, "name": d.name} for d in days]
    )
    statement = statement.on_conflict_do_update(
        index_elements=[CalendarDayRow.day],
        set_={"kind": statement.excluded.kind, "name": statement.excluded.name},
    )
    session.execute(statement)


def _to_day(row: CalendarDayRow) -> CalendarDay:
    return CalendarDay(row.day, DayKind(row.kind), row.name)


def load_calendar(repo: Repository) -> WorkCalendar:
    """The working-day calendar from the stored exceptions."""
    with repo.db.session(readonly=True) as session:
        rows = session.scalars(select(CalendarDayRow)).all()
        return WorkCalendar(
            holidays={r.day: r.name for r in rows if r.kind == DayKind.HOLIDAY},
            workdays={r.day: r.name for r in rows if r.kind == DayKind.WORKDAY},
        )


def set_day(
    repo: Repository, day: date, kind: DayKind | str, name: str, *, within: Within | None = None
) -> CalendarDay:
    """Store ``day`` as a holiday (节假日) or a make-up workday (调休上班); an existing entry is replaced.
    ``within`` (:mod:`certstore.services.transaction`) runs in the transaction that stores it."""
    if not isinstance(day, date) or isinstance(day, datetime):
        raise TypeError(f"expected a datetime.date, got {type(day).__name__}")
    entry = CalendarDay(day, _kind(kind), name.strip() if isinstance(name, str) else name)
    _validate([entry])
    with repo.db.session() as session:
        _upsert(session, [entry])
        run_within(session, within)
    return entry


def remove_day(repo: Repository, day: date, *, within: Within | None = None) -> bool:
    """Remove the stored exception for ``day``; False when there was none. ``within`` runs in the transaction
    that removes it (not when there was nothing to remove)."""
    with repo.db.session() as session:
        result = session.execute(delete(CalendarDayRow).where(CalendarDayRow.day == day))
        removed = bool(result.rowcount)  # type: ignore[attr-defined]
        if removed:
            run_within(session, within)
        return removed


def list_days(repo: Repository, year: int | None = None) -> list[CalendarDay]:
    """The stored exceptions in date order, all or those of one ``year``."""
    query = select(CalendarDayRow).order_by(CalendarDayRow.day)
    if year is not None:
        query = query.where(CalendarDayRow.day >= date(year, 1, 1), CalendarDayRow.day <= date(year, 12, 31))
    with repo.db.session(readonly=True) as session:
        return [_to_day(row) for row in session.scalars(query)]


def _parse_document(document: object) -> list[CalendarDay]:
    if not isinstance(document, Mapping):
        raise CalendarError([f"the document must be a JSON object, got {type(document).__name__}"])
    problems: list[str] = []
    unknown = sorted(str(key) for key in document if key not in ("holidays", "workdays"))
    if unknown:
        problems.append(f"unknown keys {', '.join(unknown)}: only 'holidays' and 'workdays' are allowed")
    if "holidays" not in document and "workdays" not in document:
        problems.append("the document has neither 'holidays' nor 'workdays'")
    days: list[CalendarDay] = []
    for key, kind in (("holidays", DayKind.HOLIDAY), ("workdays", DayKind.WORKDAY)):
        section: Any = document.get(key, {})
        if not isinstance(section, Mapping):
            problems.append(f"{key} must be an object mapping YYYY-MM-DD to a name")
            continue
        for text, name in section.items():
            try:
                if not isinstance(text, str) or not _ISO_DAY.match(text):
                    raise ValueError
                day = date.fromisoformat(text)
            except ValueError:
                problems.append(f"{key}.{text}: not a date in the form YYYY-MM-DD")
                continue
            if not isinstance(name, str):
                problems.append(f"{key}.{text}: the name must be a string, got {name!r}")
                continue
            days.append(CalendarDay(day, kind, name.strip()))
    try:
        _validate(days)
    except CalendarError as error:
        problems.extend(error.problems)
    if problems:
        raise CalendarError(problems)
    return days


def import_days(repo: Repository, document: object, *, within: Within | None = None) -> list[CalendarDay]:
    """Write every day of an import document (see the module docstring) in one transaction: all or nothing.
    Returns the days written, in date order; :class:`CalendarError` lists every problem of a bad document.
    ``within`` runs in that transaction."""
    days = sorted(_parse_document(document), key=lambda d: d.day)
    with repo.db.session() as session:
        _upsert(session, days)
        run_within(session, within)
    return days
