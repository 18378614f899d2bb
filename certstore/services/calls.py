"""Who asks, through which door: the :class:`Call` every use case receives, and the one place its audit entry is
made.

A use case that changes or reveals certificate data takes a ``call`` — the :class:`~certstore.access.Actor`
(principal, operator, agency system) and the :class:`Origin` (the entry point it came through: API, page, command
line, exchange source, batch, import, province; request id, client, business completion time) — and does the
whole job in one transaction: authorises, applies, records the arrival where the entry point has a deadline
(第十一条), and appends its audit entry (:func:`audit_in`). A read writes its entry through the application's
durable sink before the data is returned (:func:`audit_now`). Entry points only build the call.

Exactly once: each call records at most one entry per certificate it changes or reveals. :attr:`Call.recorded`
lists the ids of the entries written for it — for an entry written in a transaction only once that transaction
has committed — so an adapter that logs whatever was *not* recorded by the core (the API middleware: denials,
validation failures, unrouted paths) never logs a request twice.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import event as orm_event
from sqlalchemy.orm import Session

from certstore.access import Actor
from certstore.audit import AuditEvent, AuditSink, Outcome, append_in_transaction

__all__ = ["Call", "Origin", "Via", "audit_in", "audit_now"]


class Via(StrEnum):
    """The entry point a call came through (渠道)."""

    API = "api"  # the HTTP API (bearer token / client certificate)
    PAGE = "page"  # the web pages (password login, server-side session)
    CLI = "cli"  # the command line, on the repository's host
    EXCHANGE = "exchange"  # an agency's front-end database (前置库), synced every 2 minutes
    BATCH = "batch"  # a batch job pushed through the API, applied by the batch worker
    IMPORT = "import"  # bulk import of legacy certificates (历史数据)
    PROVINCE = "province"  # a city's delivery to the province (省级汇聚), received here
    UPWARD = "upward"  # this repository's own push to the province

    @property
    def has_deadline(self) -> bool:
        """Whether a certificate arriving this way is measured against the deadlines of 第十一条 (an agency's
        business completion → the repository): pushes, forms, batches and the exchange; not legacy imports, the
        operator's command line or aggregation."""
        return self in _DEADLINE_VIAS


_DEADLINE_VIAS = frozenset({Via.API, Via.PAGE, Via.EXCHANGE, Via.BATCH})


def _new_request_id() -> str:
    return uuid.uuid4().hex


@dataclass(frozen=True)
class Origin:
    """Where a call came from. ``source``: the exchange source, batch id, import file or sending city;
    ``resource``: what the caller addressed (an API route template such as ``POST /api/v1/certificates`` — never
    a raw path, which may hold an ID number); ``completed_at`` and ``channel``: the business completion time and
    the deadline channel (:class:`~certstore.services.deadlines.Channel`) an agency states with a push."""

    via: Via
    request_id: str = field(default_factory=_new_request_id)
    source: str | None = None
    resource: str | None = None
    client: str | None = None
    user_agent: str | None = None
    completed_at: datetime | None = None
    channel: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict, hash=False)


@dataclass(eq=False)
class Call:
    """One request of one actor through one entry point (see the module docstring)."""

    actor: Actor
    origin: Origin
    recorded: list[str] = field(default_factory=list)

    @classmethod
    def operator(cls, *, source: str | None = None, via: Via = Via.CLI) -> Call:
        """A call of the person at the command line of this host."""
        return cls(Actor.operator(), Origin(via, source=source))

    def event(
        self,
        action: str,
        *,
        outcome: Outcome = Outcome.ALLOW,
        status_code: int = 200,
        certificate: str | None = None,
        holder_digest: str | None = None,
        matter: str | None = None,
        grant_id: int | None = None,
        reason: str | None = None,
        details: Mapping[str, Any] | None = None,
        at: datetime | None = None,
    ) -> AuditEvent:
        """The audit event of this call doing ``action`` (a service's name for it, e.g. ``certificate.issue``) —
        the one builder of audit events about use cases."""
        actor, origin = self.actor, self.origin
        return AuditEvent(
            at=at or datetime.now(UTC),
            request_id=origin.request_id,
            action=action,
            outcome=outcome,
            status_code=status_code,
            principal=actor.ref,
            organisation_code=actor.organisation_code,
            role=actor.role.value,
            resource=origin.resource or f"{origin.via.value}:{origin.source or action}",
            matter=matter,
            holder_digest=holder_digest,
            certificate_identifier=certificate,
            grant_id=grant_id,
            reason=reason,
            client=origin.client,
            user_agent=origin.user_agent,
            details={"via": origin.via.value, **({"source": origin.source} if origin.source else {}),
                     **origin.details, **(details or {})},
        )  # fmt: skip


def audit_in(session: Session, call: Call, event: AuditEvent) -> None:
    """Append ``event`` in ``session``'s transaction (write-ahead): durable exactly when the change it records
    commits; noted in ``call.recorded`` once that commit happened (never if it rolls back)."""
    event = event.normalised()
    append_in_transaction(session, event)

    def committed(_session: Session) -> None:
        call.recorded.append(event.event_id)

    orm_event.listen(session, "after_commit", committed, once=True)


def audit_now(sink: AuditSink, call: Call, event: AuditEvent) -> None:
    """Record ``event`` durably through ``sink`` before the caller goes on (a read is never served without its
    entry); noted in ``call.recorded``."""
    event = event.normalised()
    sink.submit(event)
    call.recorded.append(event.event_id)
