"""Arrival deadlines (第十一条) and the offenders report (第二十九条): the deadline arithmetic on a calendar with
weekends, holidays and make-up workdays; record_arrival inside a caller's transaction, idempotent; the reports
on SQLite and PostgreSQL; the CLI command."""

from __future__ import annotations

import json
import os
import threading
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from certstore.cli.common import Context
from certstore.cli.exchange_reports import late_command
from certstore.services.deadlines import (
    CLOCK_SKEW,
    REAL_TIME_TOLERANCE,
    ArrivalError,
    Channel,
    check_completed_at,
    deadline_for,
    get_arrival,
    late_arrivals,
    offenders,
    record_arrival,
)
from certstore.store.blobs import FileBlobStore
from certstore.store.db import Database
from certstore.store.models import ArrivalRow, OrganisationRow
from certstore.store.repository import Repository
from certstore.workdays import CHINA_STANDARD_TIME, WorkCalendar
from tests.services.conftest import Clock

# TEST DATA, not an authoritative calendar (as in tests/test_workdays.py): Thursday 2026-10-01 … Wednesday
# 2026-10-07 off, the weekend inside it, Saturday 2026-10-10 worked (调休上班).
NATIONAL_DAY = WorkCalendar(
    holidays={date(2026, 10, d): "国庆节" for d in (1, 2, 5, 6, 7)},
    workdays={date(2026, 10, 10): "国庆调休"},
)
PLAIN = WorkCalendar()
AGENCY = "11410100990000025A"
PLANNING = "11410100990000017F"
HOUSING = "11410100990000033B"


@pytest.fixture
def deadline_repo(database: Database, tmp_path: Path) -> Repository:
    """A repository on each backend (the ``database`` fixture of tests/conftest.py)."""
    return Repository(
        db=database, blobs=FileBlobStore(tmp_path / "blobs"), holder_key=os.urandom(32), clock=Clock()
    )


def cst(text: str) -> datetime:
    """A China Standard Time moment from 'YYYY-MM-DD HH:MM'."""
    return datetime.fromisoformat(text).replace(tzinfo=CHINA_STANDARD_TIME)


# --- deadline_for ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("channel", "completed", "due"),
    [
        # offline: the same China time on the next working day
        ("offline", "2026-09-28 10:00", "2026-09-29 10:00"),  # Monday → Tuesday
        ("offline", "2026-09-25 15:00", "2026-09-28 15:00"),  # Friday → Monday, the weekend skipped
        ("offline", "2026-09-25 23:59", "2026-09-28 23:59"),
        ("offline", "2026-09-26 10:00", "2026-09-29 00:00"),  # Saturday: counted from Monday 00:00
        ("offline", "2026-09-27 23:00", "2026-09-29 00:00"),  # Sunday: the same
        ("offline", "2026-09-30 17:30", "2026-10-08 17:30"),  # before the holiday block → after it
        ("offline", "2026-10-01 09:00", "2026-10-09 00:00"),  # on a holiday: counted from 10-08 00:00
        ("offline", "2026-10-04 12:00", "2026-10-09 00:00"),  # a weekend inside the block: the same
        ("offline", "2026-10-09 11:00", "2026-10-10 11:00"),  # Friday → the make-up Saturday
        ("offline", "2026-10-10 11:00", "2026-10-12 11:00"),  # completed on the make-up Saturday
        ("offline", "2026-10-11 11:00", "2026-10-13 00:00"),  # the Sunday after it is a day off
        # bulk: three working days
        ("bulk", "2026-09-28 10:00", "2026-10-01 10:00"),  # Monday → Thursday (plain calendar below)
        ("bulk", "2026-09-30 12:00", "2026-10-10 12:00"),  # 10-08, 10-09, 10-10 (make-up)
        ("bulk", "2026-10-03 12:00", "2026-10-12 00:00"),  # from 10-08: 10-08, 10-09, 10-10 in full
        ("bulk", "2026-09-29 00:00", "2026-10-09 00:00"),  # 09-30, 10-08, 10-09 at 00:00
    ],
)
def test_working_day_deadlines(channel: str, completed: str, due: str) -> None:
    calendar = PLAIN if completed == "2026-09-28 10:00" and channel == "bulk" else NATIONAL_DAY
    deadline = deadline_for(channel, cst(completed), calendar)
    assert deadline == cst(due)
    assert deadline.tzinfo is not None and deadline.utcoffset() == timedelta(0)


def test_the_day_is_the_china_day_whatever_the_offset_given() -> None:
    # Friday 16:30 UTC is Saturday 00:30 in Beijing: a weekend completion, counted from Monday.
    completed = datetime(2026, 9, 25, 16, 30, tzinfo=UTC)
    assert deadline_for(Channel.OFFLINE, completed, PLAIN) == cst("2026-09-29 00:00")
    # Friday 15:59 UTC is Friday 23:59 in Beijing: due Monday 23:59.
    completed = datetime(2026, 9, 25, 15, 59, tzinfo=UTC)
    assert deadline_for(Channel.OFFLINE, completed, PLAIN) == cst("2026-09-28 23:59")


def test_online_is_real_time_on_any_day() -> None:
    for when in ("2026-09-28 10:00", "2026-10-01 03:00", "2026-10-04 23:55"):  # workday, holiday, weekend
        assert deadline_for("online", cst(when), NATIONAL_DAY) == cst(when) + REAL_TIME_TOLERANCE
    assert timedelta(minutes=10) == REAL_TIME_TOLERANCE
    tight = deadline_for(Channel.ONLINE, cst("2026-09-28 10:00"), PLAIN, real_time=timedelta(minutes=2))
    assert tight == cst("2026-09-28 10:02")
    with pytest.raises(ValueError, match="real_time"):
        deadline_for(Channel.ONLINE, cst("2026-09-28 10:00"), PLAIN, real_time=timedelta(minutes=-1))


def test_channel_labels_and_working_days() -> None:
    assert [(c.value, c.label, c.working_days) for c in Channel] == [
        ("online", "在线办理", None),
        ("offline", "线下办理", 1),
        ("bulk", "批量/存量", 3),
    ]


def test_bad_inputs_name_the_field() -> None:
    with pytest.raises(ArrivalError) as caught:
        deadline_for("paper", cst("2026-09-28 10:00"), PLAIN)
    assert caught.value.field == "channel"
    with pytest.raises(ArrivalError) as caught:
        deadline_for("offline", datetime(2026, 9, 28, 10, 0), PLAIN)
    assert caught.value.field == "completed_at" and "naive" in str(caught.value)
    now = cst("2026-09-28 10:00")
    assert check_completed_at(now + CLOCK_SKEW, now=now) == now + CLOCK_SKEW  # clock skew tolerated
    with pytest.raises(ArrivalError, match="future") as caught:
        check_completed_at(now + CLOCK_SKEW + timedelta(seconds=1), now=now)
    assert caught.value.field == "completed_at"
    with pytest.raises(ArrivalError, match="plausible"):
        check_completed_at(datetime(1, 1, 1, tzinfo=UTC), now=now)


# --- record_arrival --------------------------------------------------------------------------------------


def _record(session: Session, identifier: str, /, **changes: object) -> ArrivalRow | None:
    fields: dict[str, object] = {
        "identifier": identifier,
        "issuer_code": AGENCY,
        "source": "api",
        "channel": Channel.OFFLINE,
        "completed_at": cst("2026-09-25 15:00"),
        "arrived_at": cst("2026-09-28 15:00"),
        "calendar": NATIONAL_DAY,
    }
    fields.update(changes)
    return record_arrival(session, **fields)  # type: ignore[arg-type]


def test_arriving_exactly_at_the_deadline_is_on_time(deadline_repo: Repository) -> None:
    repo = deadline_repo
    with repo.db.session() as session:
        on_time = _record(session, "id-at-deadline", arrived_at=cst("2026-09-28 15:00"))
        late = _record(
            session, "id-just-after", arrived_at=cst("2026-09-28 15:00") + timedelta(microseconds=1)
        )
        assert on_time is not None and late is not None
        assert (on_time.late, late.late) == (False, True)
    stored = get_arrival(repo, "id-at-deadline")
    assert stored is not None
    assert stored.deadline_at == cst("2026-09-28 15:00") and not stored.late
    assert stored.lateness == timedelta(0)
    just_after = get_arrival(repo, "id-just-after")
    assert just_after is not None and just_after.lateness == timedelta(microseconds=1)


def test_record_arrival_is_idempotent_inside_the_callers_transaction(deadline_repo: Repository) -> None:
    repo = deadline_repo
    with repo.db.session() as session:
        first = _record(session, "id-1")
        assert first is not None and first.id is not None
        # A replay with other values, in the same transaction: nothing changes and the transaction stays usable.
        assert _record(session, "id-1", arrived_at=cst("2026-10-20 09:00"), channel="bulk") is None
        assert _record(session, "id-2") is not None
    with repo.db.session() as session:
        assert _record(session, "id-1", source="frontend-a", arrived_at=cst("2026-12-01 09:00")) is None
    stored = get_arrival(repo, "id-1")
    assert stored is not None
    assert (stored.source, stored.channel, stored.arrived_at) == (
        "api",
        Channel.OFFLINE,
        cst("2026-09-28 15:00"),
    )
    with repo.db.session(readonly=True) as session:
        assert session.scalar(select(func.count()).select_from(ArrivalRow)) == 2


def test_a_rolled_back_caller_leaves_no_arrival(deadline_repo: Repository) -> None:
    repo = deadline_repo
    with pytest.raises(RuntimeError), repo.db.session() as session:
        assert _record(session, "id-rolled-back") is not None
        raise RuntimeError("the apply transaction failed")
    assert get_arrival(repo, "id-rolled-back") is None


def test_concurrent_recorders_make_one_row(deadline_repo: Repository) -> None:
    repo = deadline_repo
    """Two transactions record the same identifier: the second waits for the first, then does nothing."""
    results: list[ArrivalRow | BaseException | None] = []
    inserted = threading.Event()

    def second() -> None:
        inserted.wait(10)
        try:
            with repo.db.session() as session:
                results.append(_record(session, "id-race", source="second"))
        except BaseException as exc:  # pragma: no cover - reported below
            results.append(exc)

    worker = threading.Thread(target=second)
    worker.start()
    with repo.db.session() as session:
        assert _record(session, "id-race", source="first") is not None
        inserted.set()
        worker.join(0.5)  # the second transaction is blocked (or has not begun) while this one is open
    worker.join(30)
    assert results == [None]
    stored = get_arrival(repo, "id-race")
    assert stored is not None and stored.source == "first"


def test_record_arrival_refuses_bad_input(deadline_repo: Repository) -> None:
    repo = deadline_repo
    cases: list[tuple[dict[str, object], str]] = [
        ({"completed_at": cst("2026-09-28 15:06")}, "completed_at"),  # after the arrival by > 5 minutes
        ({"completed_at": datetime(2026, 9, 25, 15, 0)}, "completed_at"),
        ({"arrived_at": datetime(2026, 9, 28, 15, 0)}, "arrived_at"),
        ({"channel": "fax"}, "channel"),
        ({"identifier": ""}, "identifier"),
        ({"identifier": "x" * 129}, "identifier"),
        ({"issuer_code": "1" * 19}, "issuer_code"),
        ({"source": " "}, "source"),
    ]
    with repo.db.session() as session:
        for changes, field in cases:
            with pytest.raises(ArrivalError) as caught:
                _record(session, "id-bad", **changes)
            assert caught.value.field == field, changes
        # within the clock skew: accepted, and on time (arrived before it was completed)
        row = _record(session, "id-skew", completed_at=cst("2026-09-28 15:04"))
        assert row is not None and not row.late
    assert get_arrival(repo, "id-bad") is None


# --- reports ---------------------------------------------------------------------------------------------


def _seed(repo: Repository) -> None:
    """Arrivals in the week of 2026-11-02 (Monday), plus one in October (outside the period).

    AGENCY: 4 arrivals, 3 late (offline 2 h, online 50 min, bulk 1 day), 1 on time.
    PLANNING: 3 arrivals, 1 late (offline 30 min).
    HOUSING: 2 arrivals, none late; and one late in October only.
    """
    plan = [
        # identifier, issuer, channel, completed, arrived
        ("a-off-late", AGENCY, "offline", "2026-11-02 09:00", "2026-11-03 11:00"),
        ("a-on-late", AGENCY, "online", "2026-11-03 10:00", "2026-11-03 11:00"),
        ("a-bulk-late", AGENCY, "bulk", "2026-11-02 09:00", "2026-11-06 09:00"),
        ("a-off-ok", AGENCY, "offline", "2026-11-04 09:00", "2026-11-04 09:30"),
        ("p-off-late", PLANNING, "offline", "2026-11-02 09:00", "2026-11-03 09:30"),
        ("p-on-ok", PLANNING, "online", "2026-11-03 10:00", "2026-11-03 10:01"),
        ("p-bulk-ok", PLANNING, "bulk", "2026-11-02 09:00", "2026-11-05 09:00"),
        ("h-on-ok", HOUSING, "online", "2026-11-03 10:00", "2026-11-03 10:05"),
        ("h-off-ok", HOUSING, "offline", "2026-11-03 10:00", "2026-11-04 10:00"),
        ("h-oct-late", HOUSING, "offline", "2026-10-12 10:00", "2026-10-20 10:00"),
    ]
    with repo.db.session() as session:
        for identifier, issuer, channel, completed, arrived in plan:
            row = record_arrival(
                session,
                identifier=identifier,
                issuer_code=issuer,
                source="api",
                channel=channel,
                completed_at=cst(completed),
                arrived_at=cst(arrived),
                calendar=PLAIN,
            )
            assert row is not None
        session.add(OrganisationRow(code=AGENCY, name="郑州市城乡建设局", created_at=datetime.now(UTC)))


WEEK = {"start": cst("2026-11-02 00:00"), "end": cst("2026-11-09 00:00")}


def test_offenders_per_agency_and_channel(deadline_repo: Repository) -> None:
    repo = deadline_repo
    _seed(repo)
    found = offenders(repo, **WEEK)
    assert [(o.issuer_code, o.total, o.late) for o in found] == [(AGENCY, 4, 3), (PLANNING, 3, 1)]
    agency, planning = found
    assert agency.issuer_name == "郑州市城乡建设局" and planning.issuer_name is None
    assert agency.late_share == pytest.approx(0.75)
    assert agency.worst_lateness == timedelta(days=1)  # bulk: due 11-05 09:00, arrived 11-06 09:00
    assert [(c.channel, c.total, c.late, c.worst_lateness) for c in agency.by_channel] == [
        (Channel.ONLINE, 1, 1, timedelta(minutes=50)),
        (Channel.OFFLINE, 2, 1, timedelta(hours=2)),
        (Channel.BULK, 1, 1, timedelta(days=1)),
    ]
    assert [(c.channel, c.total, c.late, c.worst_lateness) for c in planning.by_channel] == [
        (Channel.ONLINE, 1, 0, None),
        (Channel.OFFLINE, 1, 1, timedelta(minutes=30)),
        (Channel.BULK, 1, 0, None),
    ]
    # Without a period, HOUSING's October arrival makes it an offender too.
    everything = offenders(repo)
    assert [(o.issuer_code, o.total, o.late) for o in everything] == [
        (AGENCY, 4, 3),
        (PLANNING, 3, 1),  # the same late share as HOUSING: by code
        (HOUSING, 3, 1),
    ]
    assert offenders(repo, start=cst("2026-12-01 00:00")) == []


def test_late_arrivals_filtered_and_paged(deadline_repo: Repository) -> None:
    repo = deadline_repo
    _seed(repo)
    newest_first = [a.identifier for a in late_arrivals(repo)]
    assert newest_first == ["a-bulk-late", "a-on-late", "a-off-late", "p-off-late", "h-oct-late"]
    assert [a.identifier for a in late_arrivals(repo, issuer_code=AGENCY, limit=2)] == [
        "a-bulk-late",
        "a-on-late",
    ]
    assert [a.identifier for a in late_arrivals(repo, issuer_code=AGENCY, limit=2, offset=2)] == [
        "a-off-late"
    ]
    assert [a.identifier for a in late_arrivals(repo, **WEEK, issuer_code=HOUSING)] == []
    bulk = late_arrivals(repo, issuer_code=AGENCY, start=cst("2026-11-06 00:00"))
    assert [(a.identifier, a.channel, a.lateness) for a in bulk] == [
        ("a-bulk-late", Channel.BULK, timedelta(days=1))
    ]
    with pytest.raises(ArrivalError) as caught:
        late_arrivals(repo, start=cst("2026-11-09 00:00"), end=cst("2026-11-02 00:00"))
    assert caught.value.field == "end"
    with pytest.raises(ArrivalError):
        late_arrivals(repo, start=datetime(2026, 11, 2))
    with pytest.raises(ArrivalError):
        late_arrivals(repo, limit=0)


# --- CLI -------------------------------------------------------------------------------------------------


def test_late_command(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    context = Context(data_dir=data_dir)
    _seed(context.repository())
    runner = CliRunner()
    result = runner.invoke(
        late_command, ["--from", "2026-11-02", "--to", "2026-11-09", "--json"], obj=context
    )
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert [(r["issuer_code"], r["late"], r["total"]) for r in rows] == [(AGENCY, 3, 4), (PLANNING, 1, 3)]
    assert rows[0]["worst_lateness_seconds"] == 86400
    text = runner.invoke(late_command, [], obj=context)
    assert text.exit_code == 0
    assert text.stdout.splitlines()[0] == f"{AGENCY}  郑州市城乡建设局: 3/4 late (75.0%), worst 1d00h00m"
    assert f"{HOUSING}: 1/3 late" in text.stdout
    bad = runner.invoke(late_command, ["--from", "yesterday"], obj=context)
    assert bad.exit_code != 0 and "--from" in bad.output


def test_moments_at_the_ends_of_the_calendar_are_refused_not_crashed() -> None:
    with pytest.raises(ArrivalError) as caught:
        check_completed_at(datetime.min.replace(tzinfo=CHINA_STANDARD_TIME), now=cst("2026-09-28 10:00"))
    assert caught.value.field == "completed_at"
    with pytest.raises(ArrivalError) as caught:
        deadline_for(Channel.BULK, datetime.max.replace(tzinfo=UTC), PLAIN)
    assert caught.value.field == "completed_at"
