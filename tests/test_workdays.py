"""The working-day calendar: counting, the Chinese holiday pattern with make-up weekends, validation."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from certstore.workdays import CHINA_STANDARD_TIME, CalendarError, WorkCalendar, local_date

# TEST DATA, not an authoritative calendar: a National Day block shaped like the State Council's notices
# (Thursday 2026-10-01 … Wednesday 2026-10-07 off, the weekend inside it, Saturday 2026-10-10 worked).
NATIONAL_DAY = WorkCalendar(
    holidays={date(2026, 10, d): "国庆节" for d in (1, 2, 5, 6, 7)},
    workdays={date(2026, 10, 10): "国庆调休"},
)
PLAIN = WorkCalendar()


def d(text: str) -> date:
    return date.fromisoformat(text)


@pytest.mark.parametrize(
    ("calendar", "start", "n", "due"),
    [
        # plain Monday–Friday week
        (PLAIN, "2026-09-25", 5, "2026-10-02"),  # Friday → next Friday
        (PLAIN, "2026-09-26", 5, "2026-10-02"),  # Saturday → counted from Monday
        (PLAIN, "2026-09-27", 5, "2026-10-02"),  # Sunday → likewise
        (PLAIN, "2026-09-28", 5, "2026-10-05"),  # Monday → next Monday
        (PLAIN, "2026-09-28", 1, "2026-09-29"),
        (PLAIN, "2026-09-25", 1, "2026-09-28"),  # Friday + 1 → Monday
        (PLAIN, "2026-09-25", 0, "2026-09-25"),
        (PLAIN, "2026-09-28", 10, "2026-10-12"),
        # the holiday block: 10-08 Thu, 10-09 Fri, 10-10 Sat (make-up), 10-12 Mon, 10-13 Tue
        (NATIONAL_DAY, "2026-09-30", 5, "2026-10-13"),
        (NATIONAL_DAY, "2026-10-01", 5, "2026-10-13"),  # submitted on a holiday: counted from after it
        (NATIONAL_DAY, "2026-10-04", 1, "2026-10-08"),
        (NATIONAL_DAY, "2026-10-09", 1, "2026-10-10"),  # the make-up Saturday counts
        (NATIONAL_DAY, "2026-10-10", 1, "2026-10-12"),  # start never counts, even when it is a working day
        (NATIONAL_DAY, "2026-09-29", 1, "2026-09-30"),
        (NATIONAL_DAY, "2026-09-29", 2, "2026-10-08"),
        (NATIONAL_DAY, "2026-09-25", 5, "2026-10-09"),  # 28, 29, 30, 8, 9
    ],
)
def test_add_working_days(calendar: WorkCalendar, start: str, n: int, due: str) -> None:
    assert calendar.add_working_days(d(start), n) == d(due)
    assert calendar.working_days_between(d(start), d(due)) == n


@pytest.mark.parametrize(
    ("day", "working"),
    [
        ("2026-09-30", True),  # Wednesday
        ("2026-10-01", False),  # holiday (Thursday)
        ("2026-10-03", False),  # Saturday inside the block
        ("2026-10-05", False),  # holiday (Monday)
        ("2026-10-08", True),
        ("2026-10-10", True),  # make-up Saturday
        ("2026-10-11", False),  # ordinary Sunday
        ("2026-10-17", False),  # ordinary Saturday
    ],
)
def test_is_working_day(day: str, working: bool) -> None:
    assert NATIONAL_DAY.is_working_day(d(day)) is working
    assert PLAIN.is_working_day(d(day)) is (d(day).weekday() < 5)


@pytest.mark.parametrize(
    ("a", "b", "count"),
    [
        ("2026-09-30", "2026-09-30", 0),
        ("2026-09-30", "2026-10-07", 0),  # the whole block off
        ("2026-09-30", "2026-10-09", 2),  # 8, 9
        ("2026-09-30", "2026-10-10", 3),  # + the make-up Saturday
        ("2026-09-27", "2026-10-18", 11),  # 28, 29, 30 · 8, 9, 10 · 12 … 16
        ("2026-01-01", "2026-12-31", 260 - 5 + 1),  # 261 weekdays in 2026, 1 January (a Thursday) excluded
    ],
)
def test_working_days_between(a: str, b: str, count: int) -> None:
    assert NATIONAL_DAY.working_days_between(d(a), d(b)) == count
    assert NATIONAL_DAY.working_days_between(d(b), d(a)) == -count


def test_counting_agrees_with_day_by_day_walk() -> None:
    """The arithmetic count and the forward walk agree with a naive day-by-day count everywhere near the block."""
    base = date(2026, 9, 14)
    for offset in range(0, 40):
        start = base + timedelta(days=offset)
        for n in range(0, 12):
            due = NATIONAL_DAY.add_working_days(start, n)
            walked = [start + timedelta(days=i) for i in range(1, (due - start).days + 1)]
            assert sum(map(NATIONAL_DAY.is_working_day, walked)) == n
            assert n == 0 or NATIONAL_DAY.is_working_day(due)  # the deadline is itself a working day
        for length in range(0, 30):
            end = start + timedelta(days=length)
            naive = sum(NATIONAL_DAY.is_working_day(start + timedelta(days=i)) for i in range(1, length + 1))
            assert NATIONAL_DAY.working_days_between(start, end) == naive


@pytest.mark.parametrize(
    ("holidays", "workdays", "message"),
    [
        ({date(2026, 10, 3): "国庆节"}, {}, "holiday 2026-10-03 (国庆节) is a Saturday"),
        ({}, {date(2026, 10, 9): "国庆调休"}, "make-up workday 2026-10-09 (国庆调休) is a Friday"),
        ({date(2026, 10, 10): "x"}, {date(2026, 10, 10): "y"}, "2026-10-10 is both a holiday"),
        ({date(2026, 10, 1): " "}, {}, "holiday 2026-10-01 needs a name"),
    ],
)
def test_pointless_or_contradictory_days_are_refused(
    holidays: dict[date, str], workdays: dict[date, str], message: str
) -> None:
    with pytest.raises(CalendarError, match=re.escape(message)) as refused:
        WorkCalendar(holidays=holidays, workdays=workdays)
    assert isinstance(refused.value, ValueError)
    assert len(refused.value.problems) == 1


def test_every_problem_is_listed() -> None:
    with pytest.raises(CalendarError) as refused:
        WorkCalendar(
            holidays={date(2026, 10, 3): "a", date(2026, 10, 4): "b"}, workdays={date(2026, 10, 9): "c"}
        )
    assert len(refused.value.problems) == 3


def test_datetimes_are_not_dates() -> None:
    # datetime(2026, 10, 1) != date(2026, 10, 1): a datetime would silently miss every holiday.
    with pytest.raises(TypeError):
        NATIONAL_DAY.is_working_day(datetime(2026, 10, 1))
    with pytest.raises(TypeError):
        WorkCalendar(holidays={datetime(2026, 10, 1): "国庆节"})


def test_negative_count_is_refused() -> None:
    with pytest.raises(ValueError, match="≥ 0"):
        PLAIN.add_working_days(date(2026, 10, 1), -1)


def test_calendar_is_immutable_and_hashable() -> None:
    source = {date(2026, 10, 1): "国庆节"}
    calendar = WorkCalendar(holidays=source)
    source[date(2026, 10, 2)] = "国庆节"  # the caller's dict changing does not change the calendar
    assert calendar.is_working_day(date(2026, 10, 2))
    with pytest.raises(TypeError):
        calendar.holidays[date(2026, 10, 5)] = "x"  # type: ignore[index]
    assert calendar == WorkCalendar(holidays={date(2026, 10, 1): "国庆节"})
    assert hash(calendar) == hash(WorkCalendar(holidays={date(2026, 10, 1): "国庆节"}))


@pytest.mark.parametrize(
    ("moment", "day"),
    [
        (datetime(2026, 10, 9, 15, 59, tzinfo=UTC), date(2026, 10, 9)),  # 23:59 in Beijing
        (datetime(2026, 10, 9, 16, 0, tzinfo=UTC), date(2026, 10, 10)),  # midnight in Beijing
        (datetime(2026, 10, 10, 0, 30, tzinfo=CHINA_STANDARD_TIME), date(2026, 10, 10)),
        (datetime(2026, 10, 9, 12, 0, tzinfo=timezone(timedelta(hours=-5))), date(2026, 10, 10)),
    ],
)
def test_local_date_is_china_standard_time(moment: datetime, day: date) -> None:
    assert local_date(moment) == day


def test_local_date_refuses_naive_datetimes() -> None:
    with pytest.raises(ValueError, match="naive"):
        local_date(datetime(2026, 10, 9, 12, 0))
