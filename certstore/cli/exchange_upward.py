"""``certstore exchange push-upward``: aggregate this repository into the provincial one (省级汇聚, 第六条).

A long-running pusher (or ``--once``) over :func:`certstore.exchange.upward.push_upward`; attached to the
``exchange`` group as ``push_upward_command``.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from types import FrameType

import click

from certstore.cli.common import Context, ExitCode, Failure, exit_with, handle_errors, pass_context
from certstore.exchange.upward import UpwardTarget, push_upward
from certstore.services.calls import Call, Via

__all__ = ["push_upward_command"]

log = logging.getLogger(__name__)


def _target(value: str, token_env: str) -> UpwardTarget:
    name, sep, url = value.partition("=")
    if not sep or not name or not url:
        raise Failure(f"--target {value!r}: expected NAME=URL (e.g. province=https://zz.example.gov.cn)")
    token = os.environ.get(token_env, "").strip()
    if not token:
        raise Failure(f"--token-env {token_env}: the variable is not set or empty (the upstream token)")
    try:
        return UpwardTarget(name, url, token)
    except ValueError as exc:
        raise Failure(str(exc)) from None


@click.command("push-upward")
@click.option("--target", "target_spec", required=True, metavar="NAME=URL", help="The provincial repository.")
@click.option(
    "--token-env",
    required=True,
    metavar="VAR",
    help="Environment variable holding this city's upstream token at the province.",
)
@click.option(
    "--once",
    is_flag=True,
    help="One push, then exit: 1 when the province could not be reached, or the push was skipped (still "
    "backed off, or another pusher holds the lease: 'skipped … until <time>'), else 0.",
)
@click.option(
    "--interval",
    type=click.IntRange(min=1),
    default=120,
    show_default=True,
    help="Seconds between pushes.",
)
@click.option(
    "--batch", type=click.IntRange(1, 1000), default=100, show_default=True, help="Items per request."
)
@click.option("--force", is_flag=True, help="Push now even while the target is backing off after failures.")
@pass_context
@handle_errors
def push_upward_command(
    ctx: Context, target_spec: str, token_env: str, once: bool, interval: int, batch: int, force: bool
) -> None:
    """Deliver new and changed certificates (with their sealed files), status changes and catalogue entries to
    the provincial repository, exactly once; a province that is down is retried with backoff."""
    target = _target(target_spec, token_env)
    repo = ctx.application().repo
    call = Call.operator(
        via=Via.UPWARD, source=target.name
    )  # who pushes: the refusals' audit entries name them
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    if not once:
        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
    while True:
        try:
            stats = push_upward(repo, target, batch=batch, force=force, call=call)
        except Exception as exc:  # this repository's own trouble (database …): report, keep the worker alive
            if once:
                raise
            log.exception("push to %s failed", target.name)
            click.echo(f"{target.name}: push failed: {type(exc).__name__}: {exc}", err=True)
        else:
            click.echo(stats.summary(), err=not stats.ok)
            if once:
                exit_with(ExitCode.OK if stats.ok else ExitCode.INVALID)  # failed or skipped: 1
        if stop.wait(interval):
            return
