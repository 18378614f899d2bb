"""The one home of time zones: China Standard Time (UTC+8, no daylight saving), in which certificates are dated,
working days are counted and pages show times; everything stored is UTC.

:func:`beijing_time` is how a time is shown to people (pages, Chinese CLI output, translated reasons): converted to
UTC+8 and labelled 北京时间, e.g. ``2026-12-07 16:05:09 (北京时间)``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

__all__ = ["BEIJING_LABEL", "CHINA_STANDARD_TIME", "beijing_time"]

#: 中国标准时间 (UTC+08:00), labelled ``CST`` where a zone name is printed.
CHINA_STANDARD_TIME = timezone(timedelta(hours=8), "CST")
#: The zone as people read it next to a time.
BEIJING_LABEL = "北京时间"


def beijing_time(value: datetime | str | None, *, seconds: bool = True, zone: bool = True) -> str:
    """``value`` (an aware datetime or ISO 8601 text; naive means UTC, as stored) in Beijing time,
    ``YYYY-MM-DD HH:MM[:SS]`` with `` (北京时间)`` unless ``zone`` is false; text that is not a time is returned
    as it is, None as ``""``."""
    if value is None:
        return ""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            return value
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    shown = value.astimezone(CHINA_STANDARD_TIME).strftime(
        "%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M"
    )
    return f"{shown} ({BEIJING_LABEL})" if zone else shown
