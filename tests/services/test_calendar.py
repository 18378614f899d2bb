"""The stored working-day calendar on SQLite and PostgreSQL: set, replace, remove, list, import all-or-nothing."""

from __future__ import annotations

import re
from datetime import date

import pytest

from certstore.services.calendar import (
    CalendarDay,
    DayKind,
    import_days,
    list_days,
    load_calendar,
    remove_day,
    set_day,
)
from certstore.store.repository import Repository
from certstore.workdays import CalendarError, WorkCalendar

# TEST DATA, not an authoritative calendar (shaped like the State Council's 2026 National Day notice).
NATIONAL_DAY_DOCUMENT = {
    "holidays": {f"2026-10-0{d}": "国庆节" for d in (1, 2, 5, 6, 7)},
    "workdays": {"2026-09-20": "国庆调休", "2026-10-10": "国庆调休"},
}


def test_empty_calendar_is_the_plain_week(repo: Repository) -> None:
    assert load_calendar(repo) == WorkCalendar()
    assert list_days(repo) == []


def test_set_replace_and_remove(repo: Repository) -> None:
    assert set_day(repo, date(2026, 10, 1), "holiday", " 国庆节 ") == CalendarDay(
        date(2026, 10, 1), DayKind.HOLIDAY, "国庆节"
    )
    set_day(repo, date(2026, 10, 10), DayKind.WORKDAY, "国庆调休")
    set_day(repo, date(2026, 10, 1), "holiday", "国庆节·中秋节")  # upsert: same day, new name
    assert list_days(repo) == [
        CalendarDay(date(2026, 10, 1), DayKind.HOLIDAY, "国庆节·中秋节"),
        CalendarDay(date(2026, 10, 10), DayKind.WORKDAY, "国庆调休"),
    ]
    calendar = load_calendar(repo)
    assert not calendar.is_working_day(date(2026, 10, 1))
    assert calendar.is_working_day(date(2026, 10, 10))
    assert remove_day(repo, date(2026, 10, 1)) is True
    assert remove_day(repo, date(2026, 10, 1)) is False
    assert load_calendar(repo).is_working_day(date(2026, 10, 1))
    assert [d.day for d in list_days(repo)] == [date(2026, 10, 10)]


@pytest.mark.parametrize(
    ("day", "kind", "name", "error", "message"),
    [
        (date(2026, 10, 3), "holiday", "国庆节", CalendarError, "is a Saturday"),
        (date(2026, 10, 9), "workday", "国庆调休", CalendarError, "is a Friday"),
        (date(2026, 10, 1), "holiday", "  ", CalendarError, "needs a name"),
        (date(2026, 10, 1), "holiday", "节" * 101, CalendarError, "longer than 100"),
        (date(2026, 10, 1), "day-off", "国庆节", ValueError, "'holiday' or 'workday'"),
    ],
)
def test_set_day_refuses_bad_days(
    repo: Repository, day: date, kind: str, name: str, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=re.escape(message)):
        set_day(repo, day, kind, name)
    assert list_days(repo) == []


def test_import_and_list_by_year(repo: Repository) -> None:
    set_day(repo, date(2025, 10, 1), "holiday", "国庆节")
    set_day(repo, date(2026, 10, 1), "holiday", "旧名称")
    imported = import_days(repo, NATIONAL_DAY_DOCUMENT)
    assert [d.day for d in imported] == sorted(d.day for d in imported)
    assert len(imported) == 7
    days_2026 = list_days(repo, 2026)
    assert [(d.day.isoformat(), d.kind.value) for d in days_2026] == [
        ("2026-09-20", "workday"),
        ("2026-10-01", "holiday"),
        ("2026-10-02", "holiday"),
        ("2026-10-05", "holiday"),
        ("2026-10-06", "holiday"),
        ("2026-10-07", "holiday"),
        ("2026-10-10", "workday"),
    ]
    assert days_2026[1].name == "国庆节"  # the import replaced the stored name
    assert [d.day for d in list_days(repo, 2025)] == [date(2025, 10, 1)]  # other days stay
    assert len(list_days(repo)) == 8
    calendar = load_calendar(repo)
    assert calendar.add_working_days(date(2026, 9, 30), 5) == date(2026, 10, 13)
    assert calendar.is_working_day(date(2026, 9, 20))  # a Sunday worked


@pytest.mark.parametrize(
    ("document", "messages"),
    [
        ([], ["must be a JSON object"]),
        ({}, ["neither 'holidays' nor 'workdays'"]),
        ({"holidays": {}, "extra": {}}, ["unknown keys extra"]),
        ({"holidays": ["2026-10-01"]}, ["holidays must be an object"]),
        ({"holidays": {"2026-10-1": "国庆节"}}, ["holidays.2026-10-1: not a date"]),
        ({"holidays": {"2026-02-30": "春节"}}, ["holidays.2026-02-30: not a date"]),
        ({"holidays": {"2026-10-01": 1}}, ["the name must be a string"]),
        (
            {
                "holidays": {"2026-10-01": "国庆节", "2026-10-03": "国庆节"},
                "workdays": {"2026-10-09": "调休"},
            },
            ["2026-10-03 (国庆节) is a Saturday", "2026-10-09 (调休) is a Friday"],
        ),
    ],
)
def test_bad_import_writes_nothing(repo: Repository, document: object, messages: list[str]) -> None:
    set_day(repo, date(2026, 5, 1), "holiday", "劳动节")
    with pytest.raises(CalendarError) as refused:
        import_days(repo, document)
    for message in messages:
        assert any(message in problem for problem in refused.value.problems), refused.value.problems
    assert list_days(repo) == [CalendarDay(date(2026, 5, 1), DayKind.HOLIDAY, "劳动节")]


def test_import_is_idempotent(repo: Repository) -> None:
    first = import_days(repo, NATIONAL_DAY_DOCUMENT)
    assert import_days(repo, NATIONAL_DAY_DOCUMENT) == first
    assert list_days(repo) == first
