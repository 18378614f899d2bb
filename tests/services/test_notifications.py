"""Notifications through the transactional outbox (issue 19 item 5): written in the event's transaction, delivered
by a real SMTP server (aiosmtpd, its own process) and a signed-webhook receiver (its own process, checking the
SM3-HMAC signature), at least once per idempotency key, retried with back-off, a permanently failing address
stopped after N attempts and reported; the holder's contact is theirs and audited."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import event as orm_event
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from certstore.access import AccessDeniedError, Actor, Principal, Role
from certstore.app import Application
from certstore.identifiers import HolderIdType, holder_id_digest, holder_ref
from certstore.lifecycle import Action
from certstore.records import draft_from_json, prepare_version
from certstore.services import certificates, notifications
from certstore.services.calls import Call, Origin, Via
from certstore.services.catalogue import get_entry
from certstore.services.certificate_batch import CertificateBatch
from certstore.services.certificates import NO_FILE
from certstore.services.notifications import outbox
from certstore.services.notifications.channels import Outgoing, SmtpChannel, WebhookChannel, message_id
from certstore.services.notifications.worker import (
    LOST,
    NotificationThread,
    NotificationWorker,
    WorkerSettings,
)
from certstore.services.reviews import answer_review, submit_review
from certstore.store.models import CertificateRow, NotificationOutboxRow
from certstore.store.repository import Repository
from tests.exchange import support as exchange
from tests.servers.smtp import SmtpServer
from tests.servers.webhook import WebhookReceiver
from tests.services.conftest import CREDIT_CODES, Clock, DraftMaker
from tests.support import issuing

SITE_OPINION = "11410100990000017F001"  # 建设项目选址意见书, 3 years, issued by the planning bureau
PLANNING_BUREAU = Principal(1, "zhou.jiu", Role.AGENCY, "11410100990000017F", "郑州市自然资源和规划局")
SETTINGS = WorkerSettings(lease=timedelta(seconds=60), max_attempts=3, backoff=timedelta(seconds=30))


@pytest.fixture(scope="module")
def smtp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SmtpServer]:
    with SmtpServer(tmp_path_factory.mktemp("smtp")) as server:
        yield server


@pytest.fixture
def app(repo: Repository) -> Application:
    return issuing.application(repo)


def _holder(repo: Repository, number: str = CREDIT_CODES[0]) -> Actor:
    return Actor.holder(
        holder_ref(holder_id_digest(repo.holder_key, HolderIdType.CREDIT_CODE, number)), "示例置业"
    )


def _holder_call(repo: Repository) -> Call:
    return Call(_holder(repo), Origin(Via.PAGE, source="test"))


def _worker(app: Application, smtp: SmtpServer | None = None) -> NotificationWorker:
    channels: dict = {"webhook": WebhookChannel(timeout=5)}
    if smtp is not None:
        channels["email"] = SmtpChannel("127.0.0.1", smtp.port, sender="certstore@zz.gov.example", timeout=10)
    return NotificationWorker(app, channels, name="test-worker", settings=SETTINGS)


def _mails_to(smtp: SmtpServer, address: str) -> list:
    return [m for m in smtp.messages() if m["To"] == address]


def _rows(repo: Repository) -> list[NotificationOutboxRow]:
    with repo.db.session(readonly=True) as session:
        rows = session.scalars(select(NotificationOutboxRow).order_by(NotificationOutboxRow.id)).all()
        session.expunge_all()
        return list(rows)


def _issue(app: Application, draft: DraftMaker, n: int = 1) -> str:
    return issuing.issue(app, draft(SITE_OPINION, f"选字第4101002026{n:05d}号")).certificate.identifier


def test_issuance_mail_reaches_the_smtp_server_once(
    repo: Repository, app: Application, draft: DraftMaker, smtp: SmtpServer, database_backend: str
) -> None:
    """The issuance writes its outbox row in its transaction; the worker mails it in Chinese with the name, number
    and public status URL (no ID number), Message-ID derived from the key; a second pass sends nothing."""
    address = f"issue-{database_backend}@holder.example"
    notifications.set_contact(app, _holder_call(repo), email=address)
    identifier = _issue(app, draft)
    [row] = _rows(repo)
    assert (row.kind, row.channel, row.status, row.idempotency_key) == (
        "issued", "email", "pending", f"issued:{identifier}",
    )  # fmt: skip

    report = _worker(app, smtp).run_once()
    assert (report.sent, report.retrying, report.failed) == (1, 0, 0)
    [mail] = smtp.wait_for(1) and _mails_to(smtp, address)
    body = mail.get_content()
    assert "选址意见书" in mail["Subject"] and "签发" in mail["Subject"]
    assert "选字第410100202600001号" in body
    assert f"{issuing.PUBLIC_URL}/v/" in body
    assert CREDIT_CODES[0] not in body and CREDIT_CODES[0] not in mail.as_string()
    assert mail["Message-ID"] == message_id(f"issued:{identifier}", "zz.gov.example")
    assert mail["X-Certstore-Idempotency-Key"] == f"issued:{identifier}"

    assert _worker(app, smtp).run_once().sent == 0
    assert len(_mails_to(smtp, address)) == 1
    assert [r.status for r in _rows(repo)] == ["sent"]


def test_a_rolled_back_issuance_leaves_no_notification(
    repo: Repository, app: Application, draft: DraftMaker
) -> None:
    """The outbox row is written in the issuance's transaction: seen there just before the commit, and gone with
    everything else when that commit fails."""
    notifications.set_contact(app, _holder_call(repo), email="rollback@holder.example")
    seen: list[int] = []

    def refuse(session: Session) -> None:
        count = session.scalar(select(func.count()).select_from(NotificationOutboxRow))
        if session.scalar(select(func.count()).select_from(CertificateRow)):
            seen.append(count or 0)
            raise RuntimeError("the commit fails")

    orm_event.listen(Session, "before_commit", refuse)
    try:
        with pytest.raises(RuntimeError, match="the commit fails"):
            certificates.issue(app, issuing.call(), draft(SITE_OPINION), file_maker=NO_FILE)
    finally:
        orm_event.remove(Session, "before_commit", refuse)
    assert seen == [1]
    with repo.db.session(readonly=True) as session:
        assert session.scalar(select(func.count()).select_from(CertificateRow)) == 0
    assert _rows(repo) == []


def test_one_row_per_key_and_none_without_a_contact(
    repo: Repository, app: Application, draft: DraftMaker
) -> None:
    """A holder without a contact gets no row; the same idempotency key written twice is one row."""
    _issue(app, draft, 1)
    assert _rows(repo) == []
    holder = _holder(repo).holder_ref
    assert holder is not None
    notifications.set_contact(app, _holder_call(repo), email="twice@holder.example")
    for _ in range(2):
        with repo.db.session() as session:
            notifications.enqueue(session, app, kind="expiry_reminder", holder_ref=holder, subject_id="x",
                                  payload={"name": "选址意见书"}, idempotency_key="expiry_reminder:x:30")  # fmt: skip
    assert [r.idempotency_key for r in _rows(repo)] == ["expiry_reminder:x:30"]
    with repo.db.session() as session, pytest.raises(ValueError, match="unknown notification kind"):
        notifications.enqueue(session, app, kind="spam", holder_ref=holder, subject_id="x", payload={},
                              idempotency_key="k")  # fmt: skip


def test_status_change_and_review_answer_are_mailed(
    repo: Repository, app: Application, draft: DraftMaker, smtp: SmtpServer, database_backend: str
) -> None:
    """挂起 (a status change) and the answer to a 复核 request reach the holder, each once."""
    address = f"status-{database_backend}@holder.example"
    notifications.set_contact(app, _holder_call(repo), email=address)
    identifier = _issue(app, draft)
    issuing.act(app, identifier, Action.SUSPEND, reason="核查中")
    review = submit_review(repo, identifier, requester=PLANNING_BUREAU, reason="面积有误")
    answer_review(repo, review.id, responder=PLANNING_BUREAU, outcome="confirmed", answer="经核，登记无误")
    kinds = [r.kind for r in _rows(repo)]
    assert kinds == ["issued", "status_changed", "review_answered"]

    assert _worker(app, smtp).run_once().sent == 3
    smtp.wait_for(1)
    subjects = sorted(m["Subject"] for m in _mails_to(smtp, address))
    assert any("挂起" in s for s in subjects) and any("复核" in s for s in subjects)
    review_mail = next(m for m in _mails_to(smtp, address) if "复核" in m["Subject"])
    assert "维持" in review_mail.get_content() and "经核，登记无误" in review_mail.get_content()


def test_the_contact_is_the_holders_own_and_audited(repo: Repository, app: Application) -> None:
    """Only a holder sets their contact; bad addresses are refused; the change is audited without the address;
    a new webhook URL gets a new secret, the same URL keeps it, an omitted one is left as it is, None removes it."""
    with pytest.raises(AccessDeniedError):
        notifications.set_contact(app, issuing.call(), email="x@y.example")
    with pytest.raises(notifications.ContactError):
        notifications.set_contact(app, _holder_call(repo), email="not an address")
    with pytest.raises(notifications.ContactError, match="https"):
        notifications.set_contact(app, _holder_call(repo), email=None, webhook_url="http://example.com/hook")
    assert notifications.contact_of(app, _holder_call(repo)) is None

    first = notifications.set_contact(app, _holder_call(repo), email=" me@holder.example ",
                                      webhook_url="https://hooks.example/a")  # fmt: skip
    assert first.email == "me@holder.example" and first.webhook_secret
    same = notifications.set_contact(app, _holder_call(repo), email="me@holder.example",
                                     webhook_url="https://hooks.example/a")  # fmt: skip
    assert same.webhook_secret == first.webhook_secret
    moved = notifications.set_contact(
        app, _holder_call(repo), email=None, webhook_url="https://hooks.example/b"
    )
    assert moved.webhook_secret != first.webhook_secret and moved.email is None
    assert notifications.contact_of(app, _holder_call(repo)) == moved
    login = notifications.set_contact(app, _holder_call(repo), email="claim@holder.example")  # webhook kept
    assert (login.email, login.webhook_url, login.webhook_secret) == (
        "claim@holder.example", "https://hooks.example/b", moved.webhook_secret,
    )  # fmt: skip
    cleared = notifications.set_contact(app, _holder_call(repo), email=None, webhook_url=None)
    assert (cleared.email, cleared.webhook_url) == (None, None)

    entries = [e for e in issuing.audit_entries(repo) if e.action == "holder.contact"]
    assert len(entries) == 5
    assert entries[0].principal == f"holder:{_holder(repo).holder_ref}"
    assert entries[0].holder_digest == _holder(repo).holder_ref
    assert "me@holder.example" not in str(entries[0].details) and entries[0].details["email"] is True


def test_webhook_is_signed_and_the_receiver_refuses_a_wrong_signature(
    repo: Repository, app: Application, draft: DraftMaker, tmp_path: Path
) -> None:
    """The holder's webhook gets a POST signed with HMAC-SM3 under their secret; the receiver (its own process,
    its own check) accepts it, and refuses a request whose signature is wrong."""
    with WebhookReceiver(tmp_path / "hooks") as receiver:
        contact = notifications.set_contact(app, _holder_call(repo), email=None, webhook_url=receiver.url)
        assert contact.webhook_secret is not None
        receiver.set_secret(contact.webhook_secret)
        identifier = _issue(app, draft)
        assert _worker(app).run_once().sent == 1
        [delivery] = receiver.deliveries()
        assert delivery["headers"]["x-certstore-idempotency-key"] == f"issued:{identifier}"
        assert delivery["body"]["kind"] == "issued"
        assert delivery["body"]["data"]["number"] == "选字第410100202600001号"
        assert delivery["body"]["data"]["status_url"].startswith(f"{issuing.PUBLIC_URL}/v/")

        forged = dict(delivery["headers"])
        body = b'{"id":"forged"}'
        answer = httpx.post(receiver.url, content=body, headers={
            "X-Certstore-Timestamp": forged["x-certstore-timestamp"],
            "X-Certstore-Signature": forged["x-certstore-signature"],
        })  # fmt: skip
        assert answer.status_code == 401
        assert len(receiver.rejected()) == 1 and len(receiver.deliveries()) == 1


def test_failures_are_retried_with_back_off_then_delivered(
    repo: Repository, app: Application, draft: DraftMaker, clock: Clock, tmp_path: Path
) -> None:
    """A receiver that answers 503 twice: the row is retried after 30 s, then 60 s (exponential), visible in the
    status with its last error meanwhile, and delivered on the third attempt."""
    with WebhookReceiver(tmp_path / "hooks", fail_first=2) as receiver:
        contact = notifications.set_contact(app, _holder_call(repo), email=None, webhook_url=receiver.url)
        receiver.set_secret(contact.webhook_secret or "")
        _issue(app, draft)
        worker = _worker(app)
        assert worker.run_once().retrying == 1
        state = outbox.outbox_status(repo)
        assert state.counts["pending"] == 1 and state.due == 0
        [retrying] = state.retrying
        assert retrying.attempts == 1 and "503" in (retrying.last_error or "")
        assert retrying.next_attempt_at == clock.now + timedelta(seconds=30)

        assert worker.run_once().sent == 0  # not due yet
        clock.advance(seconds=30)
        assert worker.run_once().retrying == 1
        assert outbox.outbox_status(repo).retrying[0].next_attempt_at == clock.now + timedelta(seconds=60)
        clock.advance(seconds=60)
        assert worker.run_once().sent == 1
        assert len(receiver.deliveries()) == 1
        assert outbox.outbox_status(repo).counts == {"pending": 0, "sent": 1, "failed": 0}


def test_a_permanently_failing_address_stops_after_n_attempts(
    repo: Repository, app: Application, draft: DraftMaker, clock: Clock, smtp: SmtpServer
) -> None:
    """A mailbox the server refuses (550) is tried ``max_attempts`` times, then marked failed and reported."""
    notifications.set_contact(app, _holder_call(repo), email="nobody@bounce.test")
    _issue(app, draft)
    worker = _worker(app, smtp)
    failed = 0
    for _ in range(SETTINGS.max_attempts):
        failed += worker.run_once().failed
        clock.advance(hours=1)
    assert failed == 1
    state = outbox.outbox_status(repo)
    [row] = state.failed
    assert row.attempts == SETTINGS.max_attempts and "550" in (row.last_error or "")
    assert state.counts["failed"] == 1 and state.retrying == []
    clock.advance(days=1)
    assert worker.run_once().failed == 0  # never tried again


def test_a_claimed_row_belongs_to_one_worker_until_its_lease_ends(
    repo: Repository, app: Application, draft: DraftMaker, clock: Clock
) -> None:
    """Two workers: the first claims the row, the second finds nothing until the first's lease has run out (it
    stalled), then takes it over — each claim counting as an attempt; the first can then neither renew its lease
    nor send nor mark the row sent."""
    notifications.set_contact(app, _holder_call(repo), email="lease@holder.example")
    _issue(app, draft)
    [mine] = outbox.claim(repo, "a", channels=["email"], lease=timedelta(seconds=60))
    assert outbox.claim(repo, "b", channels=["email"]) == []
    clock.advance(seconds=61)
    [theirs] = outbox.claim(repo, "b", channels=["email"])
    assert (mine.id, mine.attempts, theirs.attempts) == (theirs.id, 1, 2)
    late = NotificationWorker(app, {"email": SmtpChannel("127.0.0.1", 1)}, name="a", settings=SETTINGS)
    assert late.deliver(mine) == LOST  # its lease cannot be renewed: not sent (port 1 was never tried)
    assert not outbox.renew(repo, mine.id, "a") and not outbox.mark_sent(repo, mine.id, "a")
    assert outbox.renew(repo, theirs.id, "b")
    assert outbox.mark_sent(repo, theirs.id, "b")
    assert outbox.claim(repo, "c", channels=["email", "webhook"]) == []


def test_the_serve_thread_delivers_when_configured(
    repo: Repository, app: Application, draft: DraftMaker, smtp: SmtpServer, database_backend: str
) -> None:
    """``certstore serve`` runs the worker in a thread only with CERTSTORE_NOTIFY_WORKER=1; then an issuance's mail
    goes out without any other process, and the thread stops (and starts again) cleanly."""
    assert NotificationThread.from_env(app, {**smtp.env()}) is None
    thread = NotificationThread.from_env(
        app, {"CERTSTORE_NOTIFY_WORKER": "1", "CERTSTORE_NOTIFY_INTERVAL": "0.05", **smtp.env()}
    )
    assert thread is not None and set(thread.worker.channels) == {"email", "webhook"}
    address = f"serve-{database_backend}@holder.example"
    notifications.set_contact(app, _holder_call(repo), email=address)
    thread.start()
    try:
        _issue(app, draft)
        deadline = time.monotonic() + 15
        while not _mails_to(smtp, address):
            assert time.monotonic() < deadline, "the thread sent nothing"
            time.sleep(0.05)
    finally:
        assert thread.stop(timeout=10)
    thread.start()
    assert thread.running and thread.stop(timeout=10)
    assert len(_mails_to(smtp, address)) == 1


def test_the_exchange_and_import_batches_notify_like_the_use_cases(
    repo: Repository, app: Application
) -> None:
    """Writes through a CertificateBatch (the exchange's chunks) notify in the batch's transaction — issuance and
    status change — while a legacy import (``certificate.import``) does not; a rolled-back chunk leaves none."""
    notifications.set_contact(app, _holder_call(repo), email="batch@holder.example")
    entry = get_entry(repo, exchange.CATALOGUE)

    def prepared(i: int):
        return prepare_version(entry, draft_from_json(exchange.document(i, 1)), version=1,
                               holder_key=repo.holder_key, serial_key=repo.serial_key)  # fmt: skip

    agency = Call(Actor.agency_system(exchange.ISSUER, "exchange:test"), Origin(Via.CLI, source="test"))
    with pytest.raises(RuntimeError), repo.db.session() as session:
        batch = CertificateBatch(
            repo, session, issuer_code=exchange.ISSUER, numbers=[exchange.number(1)], call=agency
        )
        batch.issue(prepared(1))
        batch.flush()
        raise RuntimeError("killed before the commit")
    assert _rows(repo) == []

    with repo.db.session() as session:
        numbers = [exchange.number(1), exchange.number(2)]
        batch = CertificateBatch(repo, session, issuer_code=exchange.ISSUER, numbers=numbers, call=agency)
        first, _ = batch.issue(prepared(1))
        batch.issue(prepared(2), audit_action="certificate.import")
        batch.flush()
    with repo.db.session() as session:
        batch = CertificateBatch(
            repo, session, issuer_code=exchange.ISSUER, numbers=[exchange.number(1)], call=agency
        )
        batch.act(exchange.number(1), None, Action.SUSPEND, reason="核查中")
        batch.flush()
    assert [(r.kind, r.subject_id) for r in _rows(repo)] == [("issued", first), ("status_changed", first)]


def test_agency_subscriptions_are_the_operators(repo: Repository, app: Application) -> None:
    """Only the operator subscribes an agency (inspection_due only), each subscription with its own secret;
    a disabled one receives nothing more; both changes are audited."""
    agency = Call(Actor.of(PLANNING_BUREAU), Origin(Via.API))
    with pytest.raises(AccessDeniedError):
        notifications.subscribe(app, agency, organisation_code=PLANNING_BUREAU.organisation_code,
                                url="https://agency.example/hook")  # fmt: skip
    with pytest.raises(notifications.ContactError, match="inspection_due"):
        notifications.subscribe(
            app, issuing.call(), organisation_code="X", url="https://a.example/", kinds=("issued",)
        )
    one = notifications.subscribe(
        app, issuing.call(), organisation_code="11410100990000017F", url="https://a.example/"
    )
    two = notifications.subscribe(
        app, issuing.call(), organisation_code="11410100990000017F", url="https://b.example/"
    )
    assert one.secret != two.secret and len(bytes.fromhex(one.secret)) == 32
    notifications.unsubscribe(app, issuing.call(), one.id)
    with repo.db.session() as session:
        notifications.enqueue(session, app, kind="inspection_due", holder_ref="0" * 16, subject_id="c",
                              payload={"issuer_code": "11410100990000017F"}, idempotency_key="inspection_due:t")  # fmt: skip
    assert [(r.channel, r.address) for r in _rows(repo)] == [(f"webhook:{two.id}", "https://b.example/")]
    actions = [e.action for e in issuing.audit_entries(repo)]
    assert actions.count("notification.subscribe") == 2 and actions.count("notification.unsubscribe") == 1


def test_starttls_upgrades_and_verifies_the_relay(
    repo: Repository, app: Application, draft: DraftMaker, tmp_path: Path
) -> None:
    """A relay that takes mail only after STARTTLS: with CERTSTORE_SMTP_STARTTLS=1 and the relay's CA the mail goes
    through the upgraded connection; without STARTTLS the relay refuses it, and with STARTTLS but a certificate the
    system does not trust the attempt fails — both retried, never sent in clear."""
    notifications.set_contact(app, _holder_call(repo), email="tls@holder.example")
    _issue(app, draft)
    with SmtpServer(tmp_path / "tls-smtp", starttls=True) as relay:
        base = {**relay.env(), "CERTSTORE_SMTP_TIMEOUT": "10"}
        plain = SmtpChannel.from_env(base)
        untrusted = SmtpChannel.from_env({**base, "CERTSTORE_SMTP_STARTTLS": "1"})
        trusted = SmtpChannel.from_env(
            {**base, "CERTSTORE_SMTP_STARTTLS": "1", "CERTSTORE_SMTP_CAFILE": str(relay.ca_file)}
        )
        assert plain and untrusted and trusted and trusted.starttls and trusted.cafile
        errors = []
        for channel in (plain, untrusted):
            worker = NotificationWorker(app, {"email": channel}, name="t", settings=WorkerSettings())
            assert worker.run_once().retrying == 1
            errors.append(outbox.outbox_status(repo).retrying[0].last_error or "")
            with repo.db.session() as session:  # due again at once
                session.execute(update(NotificationOutboxRow).values(next_attempt_at=app.now()))
        assert "530" in errors[0] and "CERTIFICATE_VERIFY_FAILED" in errors[1]
        assert relay.messages() == []
        worker = NotificationWorker(app, {"email": trusted}, name="t", settings=WorkerSettings())
        assert worker.run_once().sent == 1
        [mail] = relay.wait_for(1)
        assert mail["To"] == "tls@holder.example"


def test_a_stopping_worker_gives_back_what_it_has_not_sent(
    repo: Repository, app: Application, draft: DraftMaker, smtp: SmtpServer, database_backend: str
) -> None:
    """SIGTERM (the stop event) during a pass: the row being sent is finished, the others claimed with it are given
    back unsent — due at once for the next worker, their claim not counted."""
    address = f"stop-{database_backend}@holder.example"
    notifications.set_contact(app, _holder_call(repo), email=address)
    for n in (1, 2, 3):
        _issue(app, draft, n)
    stop = threading.Event()
    mail = SmtpChannel("127.0.0.1", smtp.port, sender="certstore@zz.gov.example")

    class StopAfterOne:
        """The real mail channel, and the operator's SIGTERM arriving during the first send."""

        name = "email"

        def send(self, outgoing: Outgoing) -> None:
            mail.send(outgoing)
            stop.set()

    report = NotificationWorker(app, {"email": StopAfterOne()}, name="t", settings=SETTINGS).run_once(stop)
    assert report.sent == 1
    rows = _rows(repo)
    assert sorted((r.status, r.attempts, r.lease_owner) for r in rows) == [
        ("pending", 0, None), ("pending", 0, None), ("sent", 1, None),
    ]  # fmt: skip
    assert outbox.outbox_status(repo).due == 2
    assert _worker(app, smtp).run_once().sent == 2
    assert len(_mails_to(smtp, address)) == 3


def test_a_channel_that_breaks_counts_as_a_failed_attempt(
    repo: Repository, app: Application, draft: DraftMaker
) -> None:
    """A channel raising something else than DeliveryError (its own bug) does not leave the row stuck: the attempt
    is recorded as failed with the error, and retried like any other."""

    class Broken:
        name = "email"

        def send(self, outgoing: Outgoing) -> None:
            raise ValueError("header folding went wrong")

    notifications.set_contact(app, _holder_call(repo), email="broken@holder.example")
    _issue(app, draft)
    report = NotificationWorker(app, {"email": Broken()}, name="t", settings=SETTINGS).run_once()
    assert report.retrying == 1
    [row] = outbox.outbox_status(repo).retrying
    assert row.last_error == "ValueError: header folding went wrong" and row.attempts == 1
