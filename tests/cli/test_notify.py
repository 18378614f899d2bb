"""``certstore notify`` (issue 19 item 5): the worker as a real process against a real SMTP server — kill -9 while
a mail is in flight and rows are committed but unsent, restart, and every notification arrives, once per
idempotency key as the receiver sees it (the Message-ID); status, reminders and subscriptions on the command line.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import date
from pathlib import Path

from certstore.access import Actor
from certstore.app import Application
from certstore.catalogue.definitions import example_face, shipped_entry
from certstore.identifiers import HolderIdType, holder_id_digest, holder_ref
from certstore.records import CertificateDraft, Holder
from certstore.services import certificates, notifications
from certstore.services.calls import Call, Origin, Via
from certstore.services.catalogue import load_shipped
from certstore.services.certificates import NO_FILE
from certstore.services.notifications import outbox
from certstore.services.notifications.channels import message_id
from certstore.services.notifications.worker import NotificationWorker
from tests.cli.conftest import Cli
from tests.servers.smtp import SmtpServer

SITE_OPINION = "11410100990000017F001"
CREDIT_CODE = "91410100MA44A1B2XW"
ADDRESS = "holder@holder.example"


def _env(data_dir: Path, **extra: str) -> dict[str, str]:
    env = {**os.environ, "CERTSTORE_DATA_DIR": str(data_dir), **extra}
    env.pop("CERTSTORE_DATABASE_URL", None)
    return env


def _issue_with_contact(data_dir: Path, count: int) -> list[str]:
    """A data directory with the holder's mail address and ``count`` certificates issued to them (committed: their
    outbox rows wait for a worker)."""
    app = Application.open(data_dir, _env(data_dir), upgrade_sqlite=True)
    try:
        load_shipped(app.repo)
        ref = holder_ref(holder_id_digest(app.repo.holder_key, HolderIdType.CREDIT_CODE, CREDIT_CODE))
        notifications.set_contact(app, Call(Actor.holder(ref, "示例置业"), Origin(Via.PAGE)), email=ADDRESS)
        entry = shipped_entry(SITE_OPINION)
        holder = Holder("郑州示例置业有限公司", HolderIdType.CREDIT_CODE, CREDIT_CODE)
        identifiers = []
        for n in range(1, count + 1):
            draft = CertificateDraft(catalogue_code=SITE_OPINION, certificate_number=f"选字第4101002026{n:05d}号",
                                     holder=holder, face=example_face(entry), issue_date=date(2026, 11, 26))  # fmt: skip
            result = certificates.issue(app, Call.operator(source="test"), draft, file_maker=NO_FILE)
            identifiers.append(result.certificate.identifier)
        return identifiers
    finally:
        app.close()


def _certstore(*args: str, env: dict[str, str], **options: object) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", "from certstore.cli import main; main()", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, **options)  # type: ignore[call-overload]  # fmt: skip


def test_kill_9_mid_delivery_then_restart_delivers_each_key_once(tmp_path: Path) -> None:
    """Three issuances committed with their outbox rows; the worker claims them and is killed -9 while the SMTP
    server holds back the first mail's acknowledgement (stored, never acknowledged); the two others were never sent. After a restart
    (once the dead worker's lease has run out) all three arrive; the receiver sees the first twice with one
    Message-ID — at least once, once per idempotency key — and a further run sends nothing."""
    data_dir = tmp_path / "data"
    identifiers = _issue_with_contact(data_dir, 3)
    keys = {f"issued:{i}" for i in identifiers}
    with SmtpServer(tmp_path / "smtp") as smtp:
        env = _env(data_dir, **smtp.env(), CERTSTORE_NOTIFY_LEASE="2", CERTSTORE_NOTIFY_INTERVAL="0.2")
        smtp.hold()
        worker = _certstore("notify", "run", "--no-reminders", env=env)
        try:
            smtp.wait_holding(timeout=30)
            os.kill(worker.pid, signal.SIGKILL)
        finally:
            worker.wait(10)
        assert worker.returncode == -signal.SIGKILL
        smtp.release()
        smtp.wait_for(1)  # the held mail: stored, never acknowledged

        app = Application.open(data_dir, env)
        try:
            assert outbox.outbox_status(app.repo).counts == {"pending": 3, "sent": 0, "failed": 0}
        finally:
            app.close()

        time.sleep(2.2)  # the dead worker's lease (2 s) runs out
        again = _certstore("notify", "run", "--once", "--no-reminders", env=env)
        out, err = again.communicate(timeout=60)
        assert again.returncode == 0, err.decode()
        assert json.loads(out)["sent"] == 3

        mails = [m for m in smtp.wait_for(4) if m["To"] == ADDRESS]
        ids = Counter(m["Message-ID"] for m in mails)
        assert set(ids) == {message_id(k, "zz.gov.example") for k in keys}
        assert sorted(ids.values()) == [1, 1, 2]

        app = Application.open(data_dir, env)
        try:
            assert outbox.outbox_status(app.repo).counts == {"pending": 0, "sent": 3, "failed": 0}
            assert NotificationWorker(app).run_once().sent == 0  # nothing is sent twice in the normal path
        finally:
            app.close()
        assert len(smtp.messages()) == 4


def test_status_reminders_and_subscriptions_on_the_command_line(
    cli: Cli, data_dir: Path, tmp_path: Path
) -> None:
    """``notify reminders --at`` writes the expiry reminder due then (once); ``notify subscribe`` prints the secret
    and ``subscriptions`` lists it without; ``run --once`` against a refusing mailbox retries, and ``status`` shows
    the row with its error."""
    identifiers = _issue_with_contact(data_dir, 1)
    app = Application.open(data_dir, _env(data_dir))
    try:
        until = certificates.get(app.repo, identifiers[0]).valid_until
    finally:
        app.close()
    assert until is not None
    at = f"{until.isoformat()}T00:00:00+08:00"
    result = cli("notify", "reminders", "--at", at)
    assert result.code == 0 and result.json() == {"expiry": 1, "inspections": 0}

    result = cli(
        "notify", "subscribe", "--org", "11410100990000017F", "--url", "https://agency.example/hooks"
    )
    assert result.code == 0
    secret = result.out.strip().splitlines()[-1]
    assert len(secret) == 64
    listed = cli("notify", "subscriptions", "--json").json()
    assert listed[0]["kinds"] == ["inspection_due"] and secret not in json.dumps(listed)
    assert cli("notify", "unsubscribe", str(listed[0]["id"])).code == 0
    assert cli("notify", "subscribe", "--org", "X", "--url", "http://agency.example/").code == 3

    status = cli("notify", "status", "--json").json()
    assert status["counts"]["pending"] == 2 and status["due"] == 2  # the issuance and the reminder

    with SmtpServer(tmp_path / "smtp") as smtp:
        env_before = dict(os.environ)
        os.environ.update({**smtp.env(), "CERTSTORE_SMTP_PORT": "1"})  # nothing listens on port 1
        try:
            result = cli("notify", "run", "--once", "--no-reminders")
        finally:
            os.environ.clear()
            os.environ.update(env_before)
    assert result.code == 0 and result.json()["retrying"] == 2
    text = cli("notify", "status").out
    assert "pending 2 (due now 0), sent 0, failed 0" in text and "retrying:" in text and "attempts 1" in text
