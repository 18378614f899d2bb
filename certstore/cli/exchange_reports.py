"""``certstore exchange late``: agencies whose certificates reached the repository after their deadline
(第十一条; the offenders list of 第二十九条). Attached to the ``exchange`` group as :data:`late_command`."""

from __future__ import annotations

from datetime import datetime, timedelta

import click

from certstore.cli.common import Context, Failure, handle_errors, parse_time, pass_context, print_json
from certstore.services.deadlines import ArrivalError, OffenderSummary, offenders
from certstore.workdays import CHINA_STANDARD_TIME

__all__ = ["late_command"]


def _time(value: str | None, option: str) -> datetime | None:
    """ISO 8601; without an offset in China Standard Time (the report is about China working days), so
    ``--from 2026-11-01 --to 2026-12-01`` is November in Beijing time."""
    return parse_time(value, option, zone=CHINA_STANDARD_TIME)


def _duration(value: timedelta) -> str:
    seconds = int(value.total_seconds())
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    return f"{days}d{hours:02d}h{minutes:02d}m" if days else f"{hours}h{minutes:02d}m"


def _as_json(summary: OffenderSummary) -> dict[str, object]:
    return {
        "issuer_code": summary.issuer_code,
        "issuer_name": summary.issuer_name,
        "total": summary.total,
        "late": summary.late,
        "late_share": round(summary.late_share, 4),
        "worst_lateness_seconds": summary.worst_lateness.total_seconds(),
        "by_channel": [
            {
                "channel": c.channel.value,
                "label": c.channel.label,
                "total": c.total,
                "late": c.late,
                "late_share": round(c.late_share, 4),
                "worst_lateness_seconds": c.worst_lateness.total_seconds() if c.worst_lateness else None,
            }
            for c in summary.by_channel
        ],
    }


@click.command("late")
@click.option(
    "--from", "start", metavar="ISO", help="Arrivals at or after this time (no offset: China time)."
)
@click.option("--to", "end", metavar="ISO", help="Arrivals before this time (no offset: China time).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_context
@handle_errors
def late_command(ctx: Context, start: str | None, end: str | None, as_json: bool) -> None:
    """List agencies with late arrivals (第十一条 deadlines), most late arrivals first."""
    try:
        found = offenders(ctx.repository(), start=_time(start, "--from"), end=_time(end, "--to"))
    except ArrivalError as exc:
        raise Failure(str(exc)) from None
    if as_json:
        print_json([_as_json(s) for s in found])
        return
    if not found:
        click.echo("no late arrivals", err=True)
        return
    for s in found:
        name = f"  {s.issuer_name}" if s.issuer_name else ""
        click.echo(
            f"{s.issuer_code}{name}: {s.late}/{s.total} late ({s.late_share:.1%}), "
            f"worst {_duration(s.worst_lateness)}"
        )
        for c in s.by_channel:
            worst = f", worst {_duration(c.worst_lateness)}" if c.worst_lateness else ""
            click.echo(f"    {c.channel.value:8} {c.channel.label}: {c.late}/{c.total} late{worst}")
