"""Arrival deadlines (第十一条) and the report of agencies that miss them (第二十九条).

Every certificate version that reaches the repository carries its business completion time (业务办结时间) and
the channel (办理渠道) the matter was handled through. 第十一条 sets how soon after completion the certificate
data must be in the repository:

=========== ============ ===============================================================================
channel     label        deadline (:func:`deadline_for`)
=========== ============ ===============================================================================
``online``  在线办理     real time: ``completed_at`` + :data:`REAL_TIME_TOLERANCE` (10 minutes), any day
``offline`` 线下办理     1 working day (工作日)
``bulk``    批量/存量    3 working days
=========== ============ ===============================================================================

**Real time (实时) is 10 minutes.** An online matter's system pushes through the API the moment it is
completed (seconds), or writes the front-end database (数据库前置机), which the exchange task reads every
2 minutes (规范§四). Ten minutes is five exchange cycles: it absorbs a slow or missed cycle and a few minutes of
clock difference between the agency's system and the repository, while anything later shows a delivery
that did not happen "in real time" by any reading. It is a parameter (``real_time=``) of every function that
computes a deadline, so the bureau can tighten it. Online matters are completed around the clock, so the
calendar plays no part.

**Working days** come from the configurable calendar (:class:`certstore.workdays.WorkCalendar`, loaded with
:func:`certstore.services.calendar.load_calendar`) and are counted in China Standard Time (UTC+8):

- completion on a working day D at local time T: the deadline is T on the N-th working day after D
  (offline, N = 1: completed Friday 15:00 → due Monday 15:00; Saturday and Sunday do not count);
- completion on a non-working day (weekend, 节假日): counted as if completed at 00:00 of the next working
  day W, so the deadline is 00:00 of the N-th working day after W — the agency has the whole of W (offline)
  or W and the next two working days (bulk). Completed Sunday → due Tuesday 00:00 (the end of Monday);
  completed on the 国庆节 holiday → counted from the first working day after the block;
- make-up workdays (调休上班) are working days like any other.

An arrival is *late* when it reached the repository strictly after the deadline; exactly at the deadline
is on time. The deadline is fixed when the arrival is recorded and not recomputed when the calendar changes.

**Inputs.** Naive datetimes are refused (:class:`ArrivalError`, a ``ValueError`` naming the field). A
completion time more than :data:`CLOCK_SKEW` (5 minutes) after the arrival (or, for a push, after "now") is
refused: a matter cannot be completed after its certificate arrived. Completion times before
:data:`EARLIEST_COMPLETION` are refused as implausible (stock data, 存量, may be old, but not that old).

The ``arrivals`` table holds one row per certificate version (identifier); :func:`record_arrival` writes it
inside the caller's transaction (the API after issuing, the exchange worker in its apply transaction) and
leaves an existing row unchanged, so a replayed delivery keeps its first arrival time. The reports count
arrivals by their arrival time (``arrived_at``) in a half-open period ``[start, end)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import ColumnElement, case, extract, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from certstore.store.models import ArrivalRow, OrganisationRow
from certstore.store.repository import Repository
from certstore.workdays import CHINA_STANDARD_TIME, WorkCalendar

__all__ = [
    "CLOCK_SKEW",
    "EARLIEST_COMPLETION",
    "LIST_LIMIT_MAX",
    "REAL_TIME_TOLERANCE",
    "Arrival",
    "ArrivalError",
    "Channel",
    "ChannelSummary",
    "OffenderSummary",
    "check_completed_at",
    "deadline_for",
    "get_arrival",
    "late_arrivals",
    "offenders",
    "record_arrival",
]

#: "Real time" (实时) for online matters: five 2-minute exchange cycles (see the module docstring).
REAL_TIME_TOLERANCE = timedelta(minutes=10)

#: How far a stated completion time may lie after the arrival (or "now"): clocks of agency systems drift.
CLOCK_SKEW = timedelta(minutes=5)

#: Completion times before this are refused as implausible.
EARLIEST_COMPLETION = datetime(1900, 1, 1, tzinfo=CHINA_STANDARD_TIME)

LIST_LIMIT_MAX = 1000

# Column lengths of the arrivals table.
_IDENTIFIER_MAX, _ISSUER_MAX, _SOURCE_MAX = 128, 18, 100


class Channel(StrEnum):
    """How the matter was handled (办理渠道), which sets the deadline of 第十一条."""

    ONLINE = "online"  # 在线办理: real time
    OFFLINE = "offline"  # 线下办理: 1 working day
    BULK = "bulk"  # 批量/存量: 3 working days

    @property
    def label(self) -> str:
        return {"online": "在线办理", "offline": "线下办理", "bulk": "批量/存量"}[self.value]

    @property
    def working_days(self) -> int | None:
        """The deadline in working days; None for online (real time)."""
        return {"online": None, "offline": 1, "bulk": 3}[self.value]


class ArrivalError(ValueError):
    """An invalid input to the deadline functions; ``field`` names it (``completed_at``, ``channel``, …)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def _aware(value: object, field: str) -> datetime:
    if not isinstance(value, datetime):
        raise ArrivalError(field, f"expected a datetime, got {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ArrivalError(field, "naive datetime: give a timezone-aware moment (e.g. +08:00)")
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ArrivalError(field, f"{value.isoformat()} is out of range") from None


def _channel(value: object) -> Channel:
    try:
        return Channel(value)
    except ValueError:
        allowed = ", ".join(f"{c.value} ({c.label})" for c in Channel)
        raise ArrivalError("channel", f"one of {allowed}, got {value!r}") from None


def _text(value: object, field: str, longest: int) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ArrivalError(field, "required: a non-empty string")
    if len(value) > longest:
        raise ArrivalError(field, f"longer than {longest} characters")
    return value


def _real_time(value: timedelta) -> timedelta:
    if not isinstance(value, timedelta) or value < timedelta(0):
        raise ValueError(f"real_time must be a timedelta ≥ 0, got {value!r}")
    return value


def check_completed_at(completed_at: datetime, *, now: datetime, skew: timedelta = CLOCK_SKEW) -> datetime:
    """The business completion time (业务办结时间), checked and in UTC: timezone-aware, not before
    :data:`EARLIEST_COMPLETION`, and not more than ``skew`` after ``now`` (the arrival). Raises
    :class:`ArrivalError` with ``field == "completed_at"``."""
    completed = _aware(completed_at, "completed_at")
    reference = _aware(now, "now")
    if completed < EARLIEST_COMPLETION:
        raise ArrivalError(
            "completed_at", f"before {EARLIEST_COMPLETION.date()}: not a plausible completion time"
        )
    if completed > reference + skew:
        raise ArrivalError(
            "completed_at",
            f"{completed.isoformat()} is in the future (after the arrival at {reference.isoformat()} by more "
            f"than {int(skew.total_seconds())} s): a matter cannot be completed after its certificate arrived",
        )
    return completed


def deadline_for(
    channel: Channel | str,
    completed_at: datetime,
    calendar: WorkCalendar,
    *,
    real_time: timedelta = REAL_TIME_TOLERANCE,
) -> datetime:
    """When a certificate completed at ``completed_at`` through ``channel`` must have reached the repository
    (UTC, timezone-aware). Online: ``completed_at + real_time``; offline and bulk: the same China-time clock
    time 1 or 3 working days later, a completion on a non-working day counting from 00:00 of the next working
    day (module docstring)."""
    channel = _channel(channel)
    completed = _aware(completed_at, "completed_at")
    days = channel.working_days
    try:
        if days is None:
            return completed + _real_time(real_time)
        local = completed.astimezone(CHINA_STANDARD_TIME)
        if calendar.is_working_day(local.date()):
            start_day, clock = local.date(), local.time()
        else:
            start_day, clock = calendar.add_working_days(local.date(), 1), time(0)
        due_day = calendar.add_working_days(start_day, days)
        return datetime.combine(due_day, clock, tzinfo=CHINA_STANDARD_TIME).astimezone(UTC)
    except OverflowError:
        raise ArrivalError("completed_at", f"{completed.isoformat()}: the deadline is out of range") from None


def record_arrival(
    session: Session,
    *,
    identifier: str,
    issuer_code: str,
    source: str,
    channel: Channel | str,
    completed_at: datetime,
    arrived_at: datetime,
    calendar: WorkCalendar,
    real_time: timedelta = REAL_TIME_TOLERANCE,
) -> ArrivalRow | None:
    """Record that the certificate version ``identifier`` of ``issuer_code`` arrived at ``arrived_at`` from
    ``source`` ("api" or an exchange source), with its deadline and whether it was late.

    Runs in the caller's transaction (nothing is committed here) and is idempotent: when a row for
    ``identifier`` exists — written earlier or by a concurrent transaction — it is left unchanged and None is
    returned; otherwise the new row. The insert never raises on a duplicate (``ON CONFLICT DO NOTHING`` on
    SQLite and PostgreSQL, a savepoint elsewhere), so the caller's transaction stays usable. Invalid input
    raises :class:`ArrivalError` naming the field."""
    identifier = _text(identifier, "identifier", _IDENTIFIER_MAX)
    issuer_code = _text(issuer_code, "issuer_code", _ISSUER_MAX)
    source = _text(source, "source", _SOURCE_MAX)
    channel = _channel(channel)
    arrived = _aware(arrived_at, "arrived_at")
    completed = check_completed_at(completed_at, now=arrived)
    deadline = deadline_for(channel, completed, calendar, real_time=real_time)
    values: dict[str, Any] = {
        "identifier": identifier,
        "issuer_code": issuer_code,
        "source": source,
        "channel": channel.value,
        "completed_at": completed,
        "arrived_at": arrived,
        "deadline_at": deadline,
        "late": arrived > deadline,
    }
    name = session.get_bind().dialect.name
    if name in ("postgresql", "sqlite"):
        dialect = postgresql if name == "postgresql" else sqlite
        statement = (
            dialect.insert(ArrivalRow)
            .values(**values)
            .on_conflict_do_nothing(index_elements=[ArrivalRow.identifier])
            .returning(ArrivalRow.id)
        )
        new_id = session.execute(statement).scalar()
        return None if new_id is None else session.get(ArrivalRow, new_id)
    if session.scalar(select(ArrivalRow.id).where(ArrivalRow.identifier == identifier)) is not None:
        return None
    row = ArrivalRow(**values)
    try:
        with session.begin_nested():
            session.add(row)
    except IntegrityError:  # a concurrent transaction recorded it first
        return None
    return row


# --- reports ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Arrival:
    """One recorded arrival as readers see it."""

    identifier: str
    issuer_code: str
    source: str
    channel: Channel
    completed_at: datetime
    arrived_at: datetime
    deadline_at: datetime
    late: bool

    @property
    def lateness(self) -> timedelta:
        """How long after the deadline it arrived; zero when on time."""
        return max(self.arrived_at - self.deadline_at, timedelta(0))


@dataclass(frozen=True)
class ChannelSummary:
    """One agency's arrivals through one channel in the period."""

    channel: Channel
    total: int
    late: int
    worst_lateness: timedelta | None  # None when nothing was late

    @property
    def late_share(self) -> float:
        return self.late / self.total if self.total else 0.0


@dataclass(frozen=True)
class OffenderSummary:
    """An agency (发证机构) with late arrivals in the period (第二十九条): all its arrivals, the late ones,
    the worst lateness, and the same per channel (only channels it used, in the order online, offline, bulk).
    ``issuer_name`` is the registered organisation's name, None when the agency has no API account."""

    issuer_code: str
    issuer_name: str | None
    total: int
    late: int
    worst_lateness: timedelta
    by_channel: tuple[ChannelSummary, ...]

    @property
    def late_share(self) -> float:
        return self.late / self.total if self.total else 0.0


def _view(row: ArrivalRow) -> Arrival:
    return Arrival(
        identifier=row.identifier,
        issuer_code=row.issuer_code,
        source=row.source,
        channel=Channel(row.channel),
        completed_at=row.completed_at,
        arrived_at=row.arrived_at,
        deadline_at=row.deadline_at,
        late=row.late,
    )


def _period(start: datetime | None, end: datetime | None) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if start is not None:
        conditions.append(ArrivalRow.arrived_at >= _aware(start, "start"))
    if end is not None:
        conditions.append(ArrivalRow.arrived_at < _aware(end, "end"))
    if start is not None and end is not None and not start < end:
        raise ArrivalError("end", f"the period is empty: end {end.isoformat()} is not after start")
    return conditions


def get_arrival(repo: Repository, identifier: str) -> Arrival | None:
    """The recorded arrival of the certificate version ``identifier``, if any."""
    with repo.db.session(readonly=True) as session:
        row = session.scalars(select(ArrivalRow).where(ArrivalRow.identifier == identifier)).first()
        return _view(row) if row is not None else None


def late_arrivals(
    repo: Repository,
    *,
    issuer_code: str | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    limit: int = 100,
    offset: int = 0,
) -> list[Arrival]:
    """Late arrivals (all agencies, or one ``issuer_code``) that arrived in ``[start, end)``, newest first."""
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= LIST_LIMIT_MAX:
        raise ArrivalError("limit", f"a whole number from 1 to {LIST_LIMIT_MAX}, got {limit!r}")
    if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
        raise ArrivalError("offset", f"a whole number ≥ 0, got {offset!r}")
    query = select(ArrivalRow).where(ArrivalRow.late.is_(True), *_period(start, end))
    if issuer_code is not None:
        query = query.where(ArrivalRow.issuer_code == issuer_code)
    query = query.order_by(ArrivalRow.arrived_at.desc(), ArrivalRow.id.desc()).limit(limit).offset(offset)
    with repo.db.session(readonly=True) as session:
        return [_view(row) for row in session.scalars(query)]


def _seconds_late(dialect: str) -> ColumnElement[Any] | None:
    """``arrived_at - deadline_at`` in seconds, in SQL; None for a dialect without a known expression."""
    if dialect == "postgresql":
        return extract("epoch", ArrivalRow.arrived_at - ArrivalRow.deadline_at)
    if dialect == "sqlite":  # stored as UTC text; julianday has millisecond precision
        return (func.julianday(ArrivalRow.arrived_at) - func.julianday(ArrivalRow.deadline_at)) * 86400.0
    return None


def _seconds(value: Any) -> timedelta:
    return timedelta(milliseconds=round(float(value) * 1000))


def offenders(
    repo: Repository, *, start: datetime | None = None, end: datetime | None = None
) -> list[OffenderSummary]:
    """Agencies with at least one late arrival in ``[start, end)`` (by arrival time), most late arrivals
    first (then the higher late share, then the code). Counted in the database, grouped by agency and channel."""
    period = _period(start, end)
    late_count = func.sum(case((ArrivalRow.late.is_(True), 1), else_=0))
    with repo.db.session(readonly=True) as session:
        seconds = _seconds_late(session.get_bind().dialect.name)
        worst_column = (
            func.max(case((ArrivalRow.late.is_(True), seconds), else_=None)) if seconds is not None else None
        )
        columns: list[Any] = [ArrivalRow.issuer_code, ArrivalRow.channel, func.count(), late_count]
        if worst_column is not None:
            columns.append(worst_column)
        grouped = session.execute(
            select(*columns).where(*period).group_by(ArrivalRow.issuer_code, ArrivalRow.channel)
        ).all()
        worst: dict[tuple[str, str], timedelta] = {}
        if worst_column is not None:
            worst = {(g[0], g[1]): _seconds(g[4]) for g in grouped if g[4] is not None}
        else:  # another dialect: the late rows' times, compared here
            late_rows = session.execute(
                select(
                    ArrivalRow.issuer_code, ArrivalRow.channel, ArrivalRow.arrived_at, ArrivalRow.deadline_at
                ).where(ArrivalRow.late.is_(True), *period)
            ).all()
            for issuer, channel, arrived, deadline in late_rows:
                key = (issuer, channel)
                worst[key] = max(worst.get(key, timedelta(0)), arrived - deadline)
        codes = sorted({g[0] for g in grouped if g[3]})
        names = (
            dict(
                session.execute(
                    select(OrganisationRow.code, OrganisationRow.name).where(OrganisationRow.code.in_(codes))
                ).all()
            )
            if codes
            else {}
        )
    by_issuer: dict[str, list[ChannelSummary]] = {}
    for group in grouped:
        issuer, channel = group[0], group[1]
        by_issuer.setdefault(issuer, []).append(
            ChannelSummary(Channel(channel), int(group[2]), int(group[3] or 0), worst.get((issuer, channel)))
        )
    order = list(Channel)
    summaries = []
    for issuer in codes:
        channels = tuple(sorted(by_issuer[issuer], key=lambda c: order.index(c.channel)))
        summaries.append(
            OffenderSummary(
                issuer_code=issuer,
                issuer_name=names.get(issuer),
                total=sum(c.total for c in channels),
                late=sum(c.late for c in channels),
                worst_lateness=max(c.worst_lateness for c in channels if c.worst_lateness is not None),
                by_channel=channels,
            )
        )
    summaries.sort(key=lambda s: (-s.late, -s.late_share, s.issuer_code))
    return summaries
