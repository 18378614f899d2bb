"""``certstore notify``: the notification worker, the outbox's status, reminders, agencies' webhook subscriptions.

Delivery settings come from the environment (``CERTSTORE_SMTP_*``, ``CERTSTORE_WEBHOOK_TIMEOUT``,
``CERTSTORE_NOTIFY_*``; :mod:`certstore.services.notifications.channels` and ``.worker``; docs/holders.md).
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from datetime import timedelta
from types import FrameType

import click

from certstore.access import AccessDeniedError
from certstore.app import Application
from certstore.cli.common import (
    Context,
    ExitCode,
    Failure,
    handle_errors,
    parse_time,
    pass_context,
    print_json,
)
from certstore.services import notifications
from certstore.services.calls import Call
from certstore.services.notifications import outbox, reminders
from certstore.services.notifications.worker import NotificationWorker, WorkerSettings

__all__ = ["group"]


@click.group("notify")
def group() -> None:
    """Notifications (通知): deliver the outbox, show its state, write reminders, webhook subscriptions."""


@group.command("run")
@click.option("--once", is_flag=True, help="Write due reminders, deliver everything due now, then exit.")
@click.option(
    "--reminders/--no-reminders",
    default=True,
    show_default=True,
    help="Also write expiry reminders and inspections due (at start, then every --reminder-interval).",
)
@click.option(
    "--reminder-interval",
    type=click.FloatRange(min=1),
    default=3600,
    show_default=True,
    help="Seconds between reminder runs.",
)
@click.option(
    "--lease",
    type=click.FloatRange(min=1),
    help="Seconds a claimed row is held (CERTSTORE_NOTIFY_LEASE, 60).",
)
@click.option(
    "--interval", type=click.FloatRange(min=0.1), help="Idle poll in seconds (CERTSTORE_NOTIFY_INTERVAL, 5)."
)
@click.option("--worker", "worker_name", help="This worker's name in leases and logs (default host:pid).")
@pass_context
@handle_errors
def run(ctx: Context, once: bool, reminders: bool, reminder_interval: float, lease: float | None,
        interval: float | None, worker_name: str | None) -> None:  # fmt: skip
    """Deliver the outbox: mail (when CERTSTORE_SMTP_HOST is set) and signed webhooks; until SIGTERM/Ctrl-C,
    or with --once until nothing is due (exit 1 when a notification failed for good in that pass)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app = ctx.application()
    settings = WorkerSettings.from_env(app.environment)
    if lease is not None:
        settings = WorkerSettings(timedelta(seconds=lease), settings.max_attempts, settings.backoff,
                                  settings.interval, settings.batch)  # fmt: skip
    if interval is not None:
        settings = WorkerSettings(
            settings.lease, settings.max_attempts, settings.backoff, interval, settings.batch
        )
    worker = NotificationWorker(app, name=worker_name, settings=settings)
    click.echo(f"notify worker {worker.name}: channels {', '.join(sorted(worker.channels))}", err=True)
    if once:
        written = _reminders(app) if reminders else None
        report = worker.run_once()
        print_json({"reminders": written, "sent": report.sent, "retrying": report.retrying,
                    "failed": report.failed, "errors": report.errors})  # fmt: skip
        if report.failed:
            raise click.exceptions.Exit(int(ExitCode.INVALID))
        return
    stop = threading.Event()

    def stopping(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, stopping)
    next_reminders = time.monotonic()
    try:
        while not stop.is_set():
            if reminders and time.monotonic() >= next_reminders:
                _reminders(app)
                next_reminders = time.monotonic() + reminder_interval
            try:
                worker.run_once(stop)
            except Exception:
                logging.getLogger("certstore.notifications").exception("a delivery pass failed")
            stop.wait(settings.interval)
    except KeyboardInterrupt:
        pass


def _reminders(app: Application) -> dict[str, int]:
    report = reminders.run_reminders(app)
    return {"expiry": report.expiry, "inspections": report.inspections}


@group.command("status")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_context
@handle_errors
def status(ctx: Context, as_json: bool) -> None:
    """The outbox: counts per state, due now, rows being retried (with the last error) and failed ones."""
    state = outbox.outbox_status(ctx.repository())
    if as_json:
        print_json(state.to_dict())
        return
    counts = state.counts
    click.echo(f"pending {counts.get('pending', 0)} (due now {state.due}), sent {counts.get('sent', 0)}, "
               f"failed {counts.get('failed', 0)}")  # fmt: skip
    for title, rows in (("retrying", state.retrying), ("failed", state.failed)):
        if rows:
            click.echo(f"{title}:")
        for row in rows:
            click.echo(f"  #{row.id} {row.kind} {row.channel} {row.address} attempts {row.attempts} "
                       f"next {row.next_attempt_at.isoformat()} — {row.last_error}")  # fmt: skip


@group.command("reminders")
@click.option("--at", "at_text", help="Write the reminders due at this time (ISO 8601; default now).")
@pass_context
@handle_errors
def reminders_command(ctx: Context, at_text: str | None) -> None:
    """Write the expiry reminders and annual inspections due into the outbox (each once per key)."""
    at = parse_time(at_text)
    report = reminders.run_reminders(ctx.application(), at=at)
    print_json({"expiry": report.expiry, "inspections": report.inspections})


@group.command("subscribe")
@click.option("--org", "org", required=True, help="The issuing agency's credit code.")
@click.option("--url", required=True, help="The agency's receiver (https://; http:// only to loopback).")
@click.option("--kind", "kinds", multiple=True, default=("inspection_due",), show_default=True,
              type=click.Choice(list(notifications.AGENCY_KINDS)), help="Notification kinds it receives (repeatable).")  # fmt: skip
@pass_context
@handle_errors
def subscribe(ctx: Context, org: str, url: str, kinds: tuple[str, ...]) -> None:
    """Subscribe an agency's system to signed webhooks; prints the secret (shown only now) on the last line."""
    try:
        sub = notifications.subscribe(ctx.application(), Call.operator(source="notify subscribe"),
                                      organisation_code=org, url=url, kinds=kinds)  # fmt: skip
    except (notifications.ContactError, AccessDeniedError) as exc:
        raise Failure(str(exc)) from None
    click.echo(f"subscription {sub.id} for {sub.subscriber}: {', '.join(sub.kinds)} → {sub.url}", err=True)
    click.echo(sub.secret)


@group.command("subscriptions")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_context
@handle_errors
def subscriptions(ctx: Context, as_json: bool) -> None:
    """List webhook subscriptions (never their secrets)."""
    rows = [
        {"id": s.id, "subscriber": s.subscriber, "url": s.url, "kinds": list(s.kinds),
         "created_at": s.created_at.isoformat(), "disabled_at": s.disabled_at.isoformat() if s.disabled_at else None}
        for s in notifications.subscriptions(ctx.application())
    ]  # fmt: skip
    if as_json:
        print_json(rows)
        return
    for row in rows:
        state = "disabled" if row["disabled_at"] else "active"
        click.echo(f"{row['id']}\t{row['subscriber']}\t{state}\t{','.join(row['kinds'])}\t{row['url']}")


@group.command("unsubscribe")
@click.argument("subscription_id", type=int)
@pass_context
@handle_errors
def unsubscribe(ctx: Context, subscription_id: int) -> None:
    """Disable a webhook subscription."""
    try:
        sub = notifications.unsubscribe(
            ctx.application(), Call.operator(source="notify unsubscribe"), subscription_id
        )
    except LookupError as exc:
        raise Failure(str(exc)) from None
    click.echo(f"subscription {sub.id} disabled")
