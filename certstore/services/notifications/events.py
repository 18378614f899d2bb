"""What the use cases call inside their transactions to notify: one function per event, each building the payload
from the rows the transaction wrote and calling :func:`~certstore.services.notifications.enqueue` with the event's
idempotency key (one notification per event, whatever retries the caller makes)."""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from certstore.identifiers import holder_ref
from certstore.lifecycle import Status
from certstore.services.notifications import ISSUED, REVIEW_ANSWERED, STATUS_CHANGED, enqueue, enqueue_at
from certstore.store.models import CertificateRow, HolderContactRow, ReviewRequestRow, WebhookSubscriptionRow

if TYPE_CHECKING:
    from certstore.app import Application
    from certstore.store.repository import Repository

__all__ = ["BATCH_NOTIFIED", "batch_written", "certificate_payload", "certificate_written", "review_answered"]

_CHANGES = {"issue": "签发", "change": "变更", "renew": "延续", "suspend": "挂起", "resume": "恢复",
            "revoke": "吊销", "cancel": "注销", "annul": "废止"}  # fmt: skip


def _day(value: date | None) -> str | None:
    return value.isoformat() if value is not None else None


def certificate_payload(row: CertificateRow, **extra: Any) -> dict[str, Any]:
    """What a message about a certificate shows: name, number, identifier, version, status, validity, issuer —
    never the holder's ID number."""
    status = Status(row.status)
    return {
        "identifier": row.identifier, "name": row.name, "number": row.certificate_number,
        "version": row.version, "status": status.value, "status_label": status.label,
        "valid_until": _day(row.valid_until), "issuer_code": row.issuer_code, "issuer_name": row.issuer_name,
        **extra,
    }  # fmt: skip


def certificate_written(session: Session, row: CertificateRow) -> None:
    """A version was issued (签发, 变更, 延续 → ``issued``) or its status changed (→ ``status_changed``) — the
    lifecycle event just appended to ``row`` says which — in ``session``'s transaction: the holder is told. Keys:
    ``issued:<identifier>``; ``status_changed:<identifier>:<event id>``."""
    session.flush()
    last = row.events[-1]
    holder = holder_ref(row.holder_id_digest)
    change = _CHANGES.get(last.action, last.action)
    if last.action in ("issue", "change", "renew"):
        enqueue_at(session, last.at, kind=ISSUED, holder_ref=holder, subject_id=row.identifier,
                   payload=certificate_payload(row, change=change), idempotency_key=f"issued:{row.identifier}")  # fmt: skip
        return
    enqueue_at(session, last.at, kind=STATUS_CHANGED, holder_ref=holder, subject_id=row.identifier,
               payload=certificate_payload(row, change=change, reason=last.reason),
               idempotency_key=f"status_changed:{row.identifier}:{last.id}")  # fmt: skip


def review_answered(session: Session, app: Application | Repository, review: ReviewRequestRow) -> None:
    """A 复核 request was answered, in ``session``'s transaction: the holder of the certificate is told (key
    ``review_answered:<review id>``)."""
    row = session.scalars(
        select(CertificateRow).where(CertificateRow.identifier == review.certificate_identifier)
    ).first()
    if row is None:
        return
    payload = certificate_payload(row, review_id=review.id, outcome=review.outcome, answer=review.answer)
    enqueue(session, app, kind=REVIEW_ANSWERED, holder_ref=holder_ref(row.holder_id_digest),
            subject_id=str(review.id), payload=payload, idempotency_key=f"review_answered:{review.id}")  # fmt: skip


#: The audit actions of :class:`~certstore.services.certificate_batch.CertificateBatch` writes that notify (not
#: ``certificate.import``: legacy certificates arriving in bulk are not news to their holders).
BATCH_NOTIFIED = frozenset(
    {"certificate.issue", "certificate.change", "certificate.renew", "certificate.act"}
)


def batch_written(session: Session, writes: list[tuple[str, str, str]]) -> None:
    """The writes of a :class:`~certstore.services.certificate_batch.CertificateBatch` flush — (audit action,
    identifier, holder reference) each — in its transaction: as :func:`certificate_written` for the holders who
    have a contact (one query finds them; the others cost nothing more)."""
    wanted = [(identifier, holder) for action, identifier, holder in writes if action in BATCH_NOTIFIED]
    holders = {holder for _, holder in wanted}
    if not holders:
        return
    reachable = set(
        session.scalars(
            select(HolderContactRow.holder_ref).where(
                HolderContactRow.holder_ref.in_(holders), HolderContactRow.email.is_not(None)
            )
        )
    )
    reachable |= {
        subscriber.removeprefix("holder:")
        for subscriber in session.scalars(
            select(WebhookSubscriptionRow.subscriber).where(
                WebhookSubscriptionRow.subscriber.in_([f"holder:{h}" for h in holders]),
                WebhookSubscriptionRow.disabled_at.is_(None),
            )
        )
    }
    identifiers = [identifier for identifier, holder in wanted if holder in reachable]
    if not identifiers:
        return
    rows = session.scalars(
        select(CertificateRow)
        .where(CertificateRow.identifier.in_(identifiers))
        .execution_options(populate_existing=True)
    ).all()
    for row in sorted(rows, key=lambda r: identifiers.index(r.identifier)):
        certificate_written(session, row)
