"""Reminders (issue 19 item 5): expiry reminders N days before ``valid_until`` — N per catalogue type
(``expiry_reminder_days``, 30 when unset) — mailed through a real SMTP server once the repository clock reaches
them, once per (certificate version, reminder); annual inspections due go to the issuing agency's webhook."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from certstore.access import Actor
from certstore.app import Application
from certstore.catalogue import CatalogueEntry
from certstore.identifiers import HolderIdType, holder_id_digest, holder_ref
from certstore.lifecycle import Action
from certstore.services import notifications
from certstore.services.calls import Call, Origin, Via
from certstore.services.catalogue import get_entry, register_entry
from certstore.services.notifications import reminders
from certstore.services.notifications.channels import SmtpChannel, WebhookChannel
from certstore.services.notifications.worker import NotificationWorker, WorkerSettings
from certstore.store.models import NotificationOutboxRow
from certstore.store.repository import Repository
from certstore.timezones import CHINA_STANDARD_TIME
from tests.servers.smtp import SmtpServer
from tests.servers.webhook import WebhookReceiver
from tests.services.conftest import CREDIT_CODES, Clock, DraftMaker
from tests.support import issuing

SITE_OPINION = "11410100990000017F001"  # 建设项目选址意见书: 3 years
PLANNING_BUREAU_CODE = "11410100990000017F"


@pytest.fixture(scope="module")
def smtp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SmtpServer]:
    with SmtpServer(tmp_path_factory.mktemp("smtp")) as server:
        yield server


@pytest.fixture
def app(repo: Repository) -> Application:
    return issuing.application(repo)


def _holder_call(repo: Repository) -> Call:
    ref = holder_ref(holder_id_digest(repo.holder_key, HolderIdType.CREDIT_CODE, CREDIT_CODES[0]))
    return Call(Actor.holder(ref, "示例置业"), Origin(Via.PAGE, source="test"))


def _on(day: date) -> datetime:
    """09:00 China Standard Time on ``day``."""
    return datetime.combine(day, time(9), tzinfo=CHINA_STANDARD_TIME).astimezone(UTC)


def _keys(repo: Repository) -> list[str]:
    with repo.db.session(readonly=True) as session:
        return list(
            session.scalars(select(NotificationOutboxRow.idempotency_key).order_by(NotificationOutboxRow.id))
        )


def _with_reminder_days(
    repo: Repository, days: list[int] | None, *, inspection: bool = False
) -> CatalogueEntry:
    document = get_entry(repo, SITE_OPINION).to_document()
    document["version"] += 1
    if days is not None:
        document["expiry_reminder_days"] = days
    document["annual_inspection"] = inspection
    entry, created = register_entry(repo, CatalogueEntry.from_document(document))
    assert created
    return entry


def _issue(app: Application, draft: DraftMaker, n: int = 1) -> tuple[str, date]:
    cert = issuing.issue(app, draft(SITE_OPINION, f"选字第4101002026{n:05d}号")).certificate
    assert cert.valid_until is not None
    return cert.identifier, cert.valid_until


def test_expiry_reminder_is_mailed_once_when_the_clock_reaches_it(
    repo: Repository,
    app: Application,
    draft: DraftMaker,
    clock: Clock,
    smtp: SmtpServer,
    database_backend: str,
) -> None:
    """Unset on the type: 30 days. 31 days before nothing; 30 days before the reminder is written and mailed;
    running again writes and sends nothing more."""
    address = f"expiry-{database_backend}@holder.example"
    notifications.set_contact(app, _holder_call(repo), email=address)
    identifier, until = _issue(app, draft)
    channels = {"email": SmtpChannel("127.0.0.1", smtp.port, sender="certstore@zz.gov.example")}
    worker = NotificationWorker(app, channels, name="t", settings=WorkerSettings())
    worker.run_once()  # the issuance mail

    clock.now = _on(until - timedelta(days=31))
    reminders.expiry_reminders(app)
    assert _keys(repo) == [f"issued:{identifier}"]

    clock.now = _on(until - timedelta(days=30))
    assert reminders.expiry_reminders(app) == 1
    assert worker.run_once().sent == 1
    assert reminders.expiry_reminders(app) == 1  # considered again, written once
    clock.advance(days=1)
    reminders.expiry_reminders(app)
    assert worker.run_once().sent == 0
    assert _keys(repo) == [f"issued:{identifier}", f"expiry_reminder:{identifier}:30"]

    mails = [m for m in smtp.wait_for(2) if m["To"] == address]
    [reminder] = [m for m in mails if "到期" in m["Subject"]]
    assert until.isoformat() in reminder["Subject"]
    assert "还有 30 天" in reminder.get_content() and "选字第410100202600001号" in reminder.get_content()


def test_reminder_days_come_from_the_catalogue_type(
    repo: Repository, app: Application, draft: DraftMaker, clock: Clock
) -> None:
    """A type listing [60, 7]: a reminder at 60 and at 7 days, each once; a run that finds both reached (it did
    not run for a while) writes only the nearest; a suspended certificate gets none."""
    _with_reminder_days(repo, [60, 7])
    notifications.set_contact(app, _holder_call(repo), email="days@holder.example")
    first, until = _issue(app, draft, 1)
    late, _ = _issue(app, draft, 2)
    quiet, _ = _issue(app, draft, 3)
    issuing.act(app, quiet, Action.SUSPEND, reason="核查中")
    issued = set(_keys(repo))

    clock.now = _on(until - timedelta(days=61))
    reminders.expiry_reminders(app)
    assert set(_keys(repo)) == issued
    clock.now = _on(until - timedelta(days=60))
    reminders.expiry_reminders(app)
    new = set(_keys(repo)) - issued
    assert new == {f"expiry_reminder:{first}:60", f"expiry_reminder:{late}:60"}

    clock.now = _on(until - timedelta(days=5))
    reminders.expiry_reminders(app)
    new = set(_keys(repo)) - issued
    assert new == {f"expiry_reminder:{first}:60", f"expiry_reminder:{late}:60", f"expiry_reminder:{first}:7",
                   f"expiry_reminder:{late}:7"}  # fmt: skip
    assert not any(quiet in key for key in new)
    clock.now = _on(until + timedelta(days=1))
    assert reminders.expiry_reminders(app) == 0  # expired: no more reminders


def test_a_late_first_run_writes_only_the_nearest_reminder(
    repo: Repository, app: Application, draft: DraftMaker, clock: Clock
) -> None:
    """The reminder run first happens 5 days before expiry: of [60, 7] only the 7-day reminder is written."""
    _with_reminder_days(repo, [60, 7])
    notifications.set_contact(app, _holder_call(repo), email="late@holder.example")
    identifier, until = _issue(app, draft)
    clock.now = _on(until - timedelta(days=5))
    reminders.expiry_reminders(app)
    assert _keys(repo) == [f"issued:{identifier}", f"expiry_reminder:{identifier}:7"]


def test_inspection_due_goes_to_the_agencys_webhook(
    repo: Repository, app: Application, draft: DraftMaker, clock: Clock, tmp_path: Path
) -> None:
    """A type with annual inspection: the certificate without this year's result is reported to the issuing
    agency's signed webhook (not to the holder), once per year."""
    clock.now = datetime(2026, 12, 15, 2, 0, tzinfo=UTC)
    _with_reminder_days(repo, None, inspection=True)
    notifications.set_contact(app, _holder_call(repo), email="inspect@holder.example")
    identifier, _ = _issue(app, draft)
    with WebhookReceiver(tmp_path / "agency") as receiver:
        sub = notifications.subscribe(
            app, issuing.call(), organisation_code=PLANNING_BUREAU_CODE, url=receiver.url
        )
        receiver.set_secret(sub.secret)
        assert reminders.inspection_reminders(app) == 1
        reminders.inspection_reminders(app)
        key = f"inspection_due:{PLANNING_BUREAU_CODE}:"
        assert len([k for k in _keys(repo) if k.startswith(key)]) == 1
        worker = NotificationWorker(
            app, {"webhook": WebhookChannel(timeout=5)}, name="t", settings=WorkerSettings()
        )
        assert worker.run_once().sent == 1
        [delivery] = receiver.deliveries()
        assert delivery["body"]["kind"] == "inspection_due"
        assert (
            delivery["body"]["data"]["identifier"] == identifier and delivery["body"]["data"]["year"] == 2026
        )
