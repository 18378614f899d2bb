"""The working-day calendar (工作日历) that deadlines in working days (工作日) are counted with.

Pure, no I/O. The week is Monday–Friday; a :class:`WorkCalendar` adds the exceptions the State Council
publishes every year: 节假日 (holidays) take a weekday off, 调休上班 (make-up workdays) turn a Saturday or
Sunday into a working day. The repository keeps the exceptions in the ``calendar_days`` table
(:mod:`certstore.services.calendar`); the 复核 deadline of 第二十条 (5 working days) is counted here.

The measures are local: a moment is turned into a calendar day in China Standard Time (UTC+8, no daylight
saving) by :func:`local_date` before it is counted.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from types import MappingProxyType

from certstore.timezones import CHINA_STANDARD_TIME

__all__ = ["CHINA_STANDARD_TIME", "CalendarError", "WorkCalendar", "local_date"]

#: China Standard Time (北京时间), the zone the measures' calendar days are in.

_WEEKDAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


def local_date(at: datetime) -> date:
    """The calendar day (in China Standard Time) of the timezone-aware moment ``at``."""
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError("naive datetime: give a timezone-aware moment")
    return at.astimezone(CHINA_STANDARD_TIME).date()


class CalendarError(ValueError):
    """An inconsistent calendar. ``problems`` lists every problem found, one sentence each."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("invalid working-day calendar: " + "; ".join(problems))
        self.problems = problems


def _check_day(value: object) -> date:
    # datetime is a subclass of date but never equal to one: a datetime key or argument would silently miss.
    if not isinstance(value, date) or isinstance(value, datetime):
        raise TypeError(f"expected a datetime.date, got {type(value).__name__}: {value!r}")
    return value


def _weekdays_through(ordinal: int) -> int:
    """Monday–Friday days among proleptic ordinals 1 … ``ordinal`` (ordinal 1, 0001-01-01, is a Monday)."""
    weeks, rest = divmod(ordinal, 7)
    return weeks * 5 + min(rest, 5)


@dataclass(frozen=True)
class WorkCalendar:
    """A Monday–Friday week with exceptions: ``holidays`` (节假日, weekdays that are not working days) and
    ``workdays`` (调休上班, Saturdays or Sundays that are), each mapping the day to its name, e.g.
    ``{date(2026, 10, 1): "国庆节"}``.

    Refused with :class:`CalendarError` (a ``ValueError``) listing every problem: a day in both, a holiday on
    a weekend (it changes nothing — probably a mistyped date) or a make-up workday on a weekday (likewise),
    and a name that is not a non-empty string. The mappings are copied; the calendar is immutable.
    """

    holidays: Mapping[date, str] = field(default_factory=dict)
    workdays: Mapping[date, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        holidays = {_check_day(day): name for day, name in self.holidays.items()}
        workdays = {_check_day(day): name for day, name in self.workdays.items()}
        problems: list[str] = []
        for day in sorted(holidays.keys() & workdays.keys()):
            problems.append(f"{day} is both a holiday (节假日) and a make-up workday (调休上班)")
        for day, name in sorted(holidays.items()):
            if day.weekday() >= 5 and day not in workdays:
                problems.append(
                    f"holiday {day} ({name}) is a {_WEEKDAY_NAMES[day.weekday()]}, not a working day anyway: "
                    "list only weekdays as holidays (节假日)"
                )
        for day, name in sorted(workdays.items()):
            if day.weekday() < 5 and day not in holidays:
                problems.append(
                    f"make-up workday {day} ({name}) is a {_WEEKDAY_NAMES[day.weekday()]}, a working day "
                    "anyway: list only Saturdays and Sundays as make-up workdays (调休上班)"
                )
        for kind, days in (("holiday", holidays), ("make-up workday", workdays)):
            for day, name in sorted(days.items()):
                if not isinstance(name, str) or not name.strip():
                    problems.append(f"{kind} {day} needs a name, got {name!r}")
        if problems:
            raise CalendarError(problems)
        object.__setattr__(self, "holidays", MappingProxyType(dict(sorted(holidays.items()))))
        object.__setattr__(self, "workdays", MappingProxyType(dict(sorted(workdays.items()))))

    def __hash__(self) -> int:
        return hash((frozenset(self.holidays.items()), frozenset(self.workdays.items())))

    def is_working_day(self, day: date) -> bool:
        """Whether ``day`` is a working day (工作日): a weekday that is not a holiday, or a make-up workday."""
        day = _check_day(day)
        if day in self.workdays:
            return True
        return day.weekday() < 5 and day not in self.holidays

    def add_working_days(self, start: date, n: int) -> date:
        """The ``n``-th working day after ``start`` (``start`` itself never counts, whatever it is): a request
        made on a Friday is due 5 working days later on the next Friday, one made on a Saturday is counted from
        Monday. ``n`` = 0 gives ``start``; a negative ``n`` is refused."""
        day = _check_day(start)
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ValueError(f"the number of working days must be a whole number ≥ 0, got {n!r}")
        while n > 0:
            day += timedelta(days=1)
            if self.is_working_day(day):
                n -= 1
        return day

    def working_days_between(self, a: date, b: date) -> int:
        """The number of working days in (``a``, ``b``]: after ``a``, up to and including ``b``. So
        ``working_days_between(d, add_working_days(d, n)) == n``. Negative when ``b`` is before ``a``."""
        a, b = _check_day(a), _check_day(b)
        if b < a:
            return -self.working_days_between(b, a)
        count = _weekdays_through(b.toordinal()) - _weekdays_through(a.toordinal())
        # Validation guarantees holidays are weekdays and make-up workdays are weekend days.
        count -= sum(1 for day in self.holidays if a < day <= b)
        count += sum(1 for day in self.workdays if a < day <= b)
        return count
