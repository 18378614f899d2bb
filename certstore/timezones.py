"""The one home of time zones: China Standard Time (UTC+8, no daylight saving), in which certificates are dated,
working days are counted and pages show times; everything stored is UTC."""

from __future__ import annotations

from datetime import timedelta, timezone

__all__ = ["CHINA_STANDARD_TIME"]

#: 中国标准时间 (UTC+08:00), labelled ``CST`` where a zone name is printed.
CHINA_STANDARD_TIME = timezone(timedelta(hours=8), "CST")
