"""Audit events: the record, appending it, reading a time range back."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import select

from certstore.store.db import Database
from certstore.store.models import AuditEventRow

__all__ = ["AuditEvent", "Outcome", "query_events", "record_event"]


class Outcome(StrEnum):
    ALLOW = "allow"  # the operation was permitted (it may still have failed on bad input: see status_code)
    DENY = "deny"  # refused by authentication or authorization
    ERROR = "error"  # the server failed


@dataclass(frozen=True)
class AuditEvent:
    """One audited operation. ``principal`` is ``ORGCODE/name`` (None for anonymous calls)."""

    at: datetime
    request_id: str
    action: str
    outcome: Outcome
    status_code: int
    principal: str | None = None
    organisation_code: str | None = None
    role: str | None = None
    resource: str | None = None
    matter: str | None = None
    holder_digest: str | None = None
    reason: str | None = None
    client: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict, hash=False)
    id: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "at": self.at.isoformat(),
            "request_id": self.request_id,
            "principal": self.principal,
            "organisation_code": self.organisation_code,
            "role": self.role,
            "action": self.action,
            "resource": self.resource,
            "matter": self.matter,
            "holder_digest": self.holder_digest,
            "outcome": self.outcome.value,
            "status_code": self.status_code,
            "reason": self.reason,
            "client": self.client,
            "details": dict(self.details),
        }


def record_event(db: Database, event: AuditEvent) -> int:
    """Append ``event``; returns its id."""
    with db.session() as session:
        row = AuditEventRow(
            at=event.at,
            request_id=event.request_id,
            principal=event.principal,
            organisation_code=event.organisation_code,
            role=event.role,
            action=event.action,
            resource=event.resource,
            matter=event.matter,
            holder_digest=event.holder_digest,
            outcome=event.outcome.value,
            status_code=event.status_code,
            reason=event.reason,
            client=event.client,
            details=dict(event.details),
        )
        session.add(row)
        session.flush()
        return row.id


def _event(row: AuditEventRow) -> AuditEvent:
    return AuditEvent(
        id=row.id,
        at=row.at,
        request_id=row.request_id,
        action=row.action,
        outcome=Outcome(row.outcome),
        status_code=row.status_code,
        principal=row.principal,
        organisation_code=row.organisation_code,
        role=row.role,
        resource=row.resource,
        matter=row.matter,
        holder_digest=row.holder_digest,
        reason=row.reason,
        client=row.client,
        details=dict(row.details or {}),
    )


def query_events(
    db: Database,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    principal: str | None = None,
    action: str | None = None,
    outcome: Outcome | None = None,
    after_id: int | None = None,
    limit: int = 100,
) -> list[AuditEvent]:
    """Events in [start, end), oldest first, optionally filtered; page with ``after_id`` (the last id seen)."""
    query = select(AuditEventRow).order_by(AuditEventRow.id).limit(max(1, min(limit, 1000)))
    if start is not None:
        query = query.where(AuditEventRow.at >= start)
    if end is not None:
        query = query.where(AuditEventRow.at < end)
    if principal is not None:
        query = query.where(AuditEventRow.principal == principal)
    if action is not None:
        query = query.where(AuditEventRow.action == action)
    if outcome is not None:
        query = query.where(AuditEventRow.outcome == outcome.value)
    if after_id is not None:
        query = query.where(AuditEventRow.id > after_id)
    with db.session(readonly=True) as session:
        return [_event(row) for row in session.scalars(query).all()]
