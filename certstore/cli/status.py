"""``certstore status snapshot``: the signed status snapshot (状态快照) counters carry for offline verification
(``certstore verify --offline --status FILE``): versions not in force and withdrawn seals (format 2,
``docs/verification.md``)."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import click

from certstore.cli.common import Context, Failure, handle_errors, pass_context
from certstore.services.calls import Call
from certstore.services.status_snapshot import build_snapshot

_DURATION = re.compile(r"^\s*(\d+)\s*([smhd])\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def parse_duration(value: str) -> timedelta:
    """``90s``, ``30m``, ``24h``, ``7d`` → a positive :class:`timedelta`."""
    match = _DURATION.match(value)
    if match is None or int(match.group(1)) == 0:
        raise Failure(f"--valid-for {value!r}: a positive duration such as 30m, 24h or 7d")
    return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


@click.group("status")
def group() -> None:
    """Certificate status for verifiers without a network."""


@group.command("snapshot")
@click.option(
    "--out", "out", type=click.Path(path_type=Path, dir_okay=False), required=True, help="Where to write it."
)
@click.option("--valid-for", default="24h", show_default=True, help="Time to nextUpdate (e.g. 30m, 24h, 7d).")
@pass_context
@handle_errors
def snapshot(ctx: Context, out: Path, valid_for: str) -> None:
    """Write a status snapshot signed by the repository key: the certificate versions not in force (with when
    their status took effect) and the withdrawn seals; a version not listed was in force at its thisUpdate."""
    duration = parse_duration(valid_for)
    built = build_snapshot(
        ctx.application(),
        Call.operator(source=out.name),
        valid_for=duration,
    )
    try:
        out.write_bytes(built.data)
    except OSError as exc:
        raise Failure(f"{out}: cannot write: {exc}") from None
    click.echo(
        f"status snapshot #{built.sequence}: {built.count} of {built.versions} version(s) not in force, "
        f"{built.seals} seal(s) withdrawn, thisUpdate {built.this_update.isoformat()}, "
        f"nextUpdate {built.next_update.isoformat()}, {len(built.data)} bytes → {out}"
    )
