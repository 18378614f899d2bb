"""Certificates for tests, written through the use cases (there is no other way): as the operator at the command
line by default, or as the actor a test names. Without ``file``/``file_maker`` a record is stored without a
sealed file (``NO_FILE``), which is fast; ``file_maker=None`` explicitly seals with the application's keys."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import select

from certstore.access import Actor
from certstore.app import Application
from certstore.audit.events import AuditEvent, entry_from_row, event_from_payload
from certstore.keystore import KeyStore
from certstore.lifecycle import Action
from certstore.records import Certificate, CertificateDraft
from certstore.services import certificates
from certstore.services.calls import Call, Origin, Via
from certstore.services.certificates import NO_FILE, IssueResult
from certstore.store.models import AuditEventRow, AuditPendingRow
from certstore.store.repository import Repository

__all__ = ["PUBLIC_URL", "act", "application", "audit_entries", "call", "change", "issue", "renew"]

_NO_KEYS = Path("/nonexistent/certstore-test-keys")

#: The public URL the tests seal with (``CERTSTORE_PUBLIC_URL`` for the whole session: ``tests/conftest.py``).
PUBLIC_URL = "https://certstore.test.example"

Target = Application | Repository


def application(target: Target, keystore: KeyStore | None = None) -> Application:
    """The application around ``target`` (a repository gets a key store without keys unless one is given, and
    :data:`PUBLIC_URL`)."""
    if isinstance(target, Application):
        return target
    return Application(target, keystore or KeyStore(_NO_KEYS), public_url=PUBLIC_URL)


def call(
    actor: Actor | None = None, *, via: Via = Via.CLI, source: str | None = "test", **origin: Any
) -> Call:
    """A call of ``actor`` (default: the operator) through ``via``."""
    return Call(actor or Actor.operator("test", "localhost"), Origin(via, source=source, **origin))


def _files(options: dict[str, Any]) -> dict[str, Any]:
    if "file" not in options and "file_maker" not in options:
        options["file_maker"] = NO_FILE
    return options


def issue(
    target: Target, draft: CertificateDraft, *, actor: Actor | None = None, **options: Any
) -> IssueResult:
    return certificates.issue(application(target), call(actor), draft, **_files(options))


def change(target: Target, identifier: str, draft: CertificateDraft, *, reason: str = "变更",
           actor: Actor | None = None, **options: Any) -> Certificate:  # fmt: skip
    return certificates.change(application(target), call(actor), identifier, draft, reason=reason,
                               **_files(options))  # fmt: skip


def renew(target: Target, identifier: str, *, reason: str = "延续", actor: Actor | None = None,
          **options: Any) -> Certificate:  # fmt: skip
    return certificates.renew(application(target), call(actor), identifier, reason=reason, **_files(options))


def act(target: Target, identifier: str, action: Action, *, reason: str, actor: Actor | None = None,
        **options: Any) -> Certificate:  # fmt: skip
    return certificates.act(application(target), call(actor), identifier, action, reason=reason, **options)


def audit_entries(repo: Repository) -> list[AuditEvent]:
    """Every audit event stored so far, chained (``audit_events``) or waiting to be chained (``audit_pending``),
    each once, in the order written."""
    found: dict[str, AuditEvent] = {}
    with repo.db.session(readonly=True) as session:
        for pending in session.scalars(select(AuditPendingRow).order_by(AuditPendingRow.id)):
            event = event_from_payload(pending.payload)
            found[event.event_id] = event
        for row in session.scalars(select(AuditEventRow).order_by(AuditEventRow.seq)):
            event = entry_from_row(row).event
            found[event.event_id] = event
    return sorted(found.values(), key=lambda event: event.at)
