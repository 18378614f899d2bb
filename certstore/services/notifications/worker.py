"""The delivery loop (通知投递): claim due outbox rows, send each through its channel, record the outcome.

:class:`NotificationWorker` is what ``certstore notify run`` drives (``--once``: until nothing is due, then exit);
:class:`NotificationThread` runs it in a background daemon thread of ``certstore serve`` when
``CERTSTORE_NOTIFY_WORKER=1`` (off by default: a deployment usually runs one ``notify run`` beside its API
processes; any number of workers may run, the leases keep them apart). Settings: ``CERTSTORE_NOTIFY_LEASE``
(seconds a claimed row is held, 60), ``CERTSTORE_NOTIFY_MAX_ATTEMPTS`` (8), ``CERTSTORE_NOTIFY_BACKOFF`` (the first
retry's wait in seconds, 30; doubled per attempt, at most 6 h), ``CERTSTORE_NOTIFY_INTERVAL`` (the idle poll, 5 s).
Logs name the row and key, never an address.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING

from certstore.services.notifications import outbox
from certstore.services.notifications.channels import Channel, DeliveryError, Outgoing, channels_from_env
from certstore.services.notifications.messages import compose

if TYPE_CHECKING:
    from certstore.app import Application

__all__ = ["DeliveryReport", "NotificationThread", "NotificationWorker", "WorkerSettings"]

logger = logging.getLogger("certstore.notifications")

#: :meth:`NotificationWorker.deliver`'s answer for a row whose lease another worker holds now (not sent).
LOST = "lost"


@dataclass(frozen=True)
class WorkerSettings:
    """How a worker claims and retries (module docstring)."""

    lease: timedelta = outbox.DEFAULT_LEASE
    max_attempts: int = outbox.DEFAULT_MAX_ATTEMPTS
    backoff: timedelta = outbox.BACKOFF_BASE
    interval: float = 5.0
    batch: int = 20

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> WorkerSettings:
        return cls(
            lease=timedelta(seconds=float(env.get("CERTSTORE_NOTIFY_LEASE", "60"))),
            max_attempts=int(env.get("CERTSTORE_NOTIFY_MAX_ATTEMPTS", str(outbox.DEFAULT_MAX_ATTEMPTS))),
            backoff=timedelta(seconds=float(env.get("CERTSTORE_NOTIFY_BACKOFF", "30"))),
            interval=float(env.get("CERTSTORE_NOTIFY_INTERVAL", "5")),
        )


@dataclass
class DeliveryReport:
    """What one pass did."""

    sent: int = 0
    retrying: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)

    def add(self, other: DeliveryReport) -> None:
        self.sent += other.sent
        self.retrying += other.retrying
        self.failed += other.failed
        self.errors += other.errors


def _default_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class NotificationWorker:
    """Delivers the outbox through ``channels`` (default: those the environment configures)."""

    def __init__(
        self,
        app: Application,
        channels: Mapping[str, Channel] | None = None,
        *,
        name: str | None = None,
        settings: WorkerSettings | None = None,
    ) -> None:
        self.app = app
        env = app.environment or os.environ
        self.channels = dict(channels) if channels is not None else channels_from_env(env)
        self.name = name or _default_name()
        self.settings = settings or WorkerSettings.from_env(env)

    def _channel(self, row_channel: str) -> Channel:
        return self.channels[row_channel.partition(":")[0]]

    def deliver(self, row: outbox.Claimed) -> str:
        """Send one claimed row and record the outcome: ``sent``, ``pending`` (retried later) or ``failed`` — or
        :data:`LOST` without sending, when its lease could not be renewed (another worker holds it)."""
        repo, settings = self.app.repo, self.settings
        message = compose(row.kind, row.payload, public_url=self.app.public_url)
        outgoing = Outgoing(row.idempotency_key, row.kind, row.address, message, row.created_at, row.secret)
        if not outbox.renew(repo, row.id, self.name, lease=settings.lease):
            logger.warning("notification %s: the lease passed to another worker before sending", row.id)
            return LOST
        try:
            try:
                self._channel(row.channel).send(outgoing)
            except DeliveryError:
                raise
            except (
                Exception
            ) as exc:  # a channel's own fault counts as a failed attempt too, never a stuck row
                logger.exception("notification %s: the %s channel failed", row.id, row.channel)
                raise DeliveryError(f"{type(exc).__name__}: {exc}") from exc
        except DeliveryError as exc:
            status = outbox.mark_failed(
                repo, row.id, self.name, str(exc), attempts=row.attempts, max_attempts=settings.max_attempts,
                base=settings.backoff,
            )  # fmt: skip
            log = logger.error if status == outbox.FAILED else logger.warning
            log("notification %s (%s, %s) attempt %d failed: %s", row.id, row.idempotency_key, row.channel,
                row.attempts, exc)  # fmt: skip
            return status
        if not outbox.mark_sent(repo, row.id, self.name):
            logger.warning("notification %s was sent but its lease had passed to another worker", row.id)
        return outbox.SENT

    def run_once(self, stop: threading.Event | None = None) -> DeliveryReport:
        """Deliver everything due now (claiming in batches until none is left) and report; when ``stop`` is set
        meanwhile, the rows claimed and not yet sent are given back and the pass ends."""
        report = DeliveryReport()
        while stop is None or not stop.is_set():
            claimed = outbox.claim(
                self.app.repo, self.name, channels=self.channels, limit=self.settings.batch,
                lease=self.settings.lease,
            )  # fmt: skip
            if not claimed:
                return report
            for index, row in enumerate(claimed):
                if stop is not None and stop.is_set():
                    for left in claimed[index:]:
                        outbox.release(self.app.repo, left.id, self.name)
                    return report
                status = self.deliver(row)
                if status == LOST:
                    continue
                if status == outbox.SENT:
                    report.sent += 1
                elif status == outbox.FAILED:
                    report.failed += 1
                    report.errors.append(f"{row.idempotency_key} ({row.channel}): failed for good")
                else:
                    report.retrying += 1
        return report

    def run(self, stop: threading.Event) -> None:
        """Deliver until ``stop`` is set, polling every ``interval`` seconds when idle; a failing database is
        logged and tried again at the next poll."""
        while not stop.is_set():
            try:
                self.run_once(stop)
            except Exception:
                logger.exception("notification worker %s: a pass failed", self.name)
            stop.wait(self.settings.interval)


class NotificationThread:
    """The worker in a daemon thread (``certstore serve`` with ``CERTSTORE_NOTIFY_WORKER=1``)."""

    def __init__(self, worker: NotificationWorker) -> None:
        self.worker = worker
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @classmethod
    def from_env(cls, app: Application, env: Mapping[str, str] = os.environ) -> NotificationThread | None:
        """The thread when ``CERTSTORE_NOTIFY_WORKER`` is ``1``/``true``/``yes``; None otherwise."""
        if env.get("CERTSTORE_NOTIFY_WORKER", "0").lower() not in ("1", "true", "yes"):
            return None
        return cls(NotificationWorker(app, channels_from_env(env), settings=WorkerSettings.from_env(env)))

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        """Start the thread (again, after :meth:`stop`)."""
        if self.running:
            raise RuntimeError("the notification thread is running already")
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self.worker.run, args=(self._stop,), name=f"notify {self.worker.name}", daemon=True
        )
        self._thread.start()

    def stop(self, timeout: float | None = 10.0) -> bool:
        self._stop.set()
        if self._thread is None:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()
