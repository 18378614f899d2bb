"""The settable clock every repository test injects."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta


class Clock:
    """A settable clock, so tests can move time (expiry, sweeps, leases, gaps) without sleeping. It starts at the
    real time because blob stores stamp blobs with the real time."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)
