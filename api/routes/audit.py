"""The access log for auditors (审计): read-only, no certificate content (holder IDs only as keyed digests)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query

from api.deps import ServicesDep
from api.models import MAX_ID, Page
from api.security import allow
from certstore.access import Principal, Role
from certstore.audit import Outcome, query_events

router = APIRouter(prefix="/api/v1/audit", tags=["audit"])

Auditor = Annotated[Principal, Depends(allow(Role.AUDITOR))]


@router.get("/events", response_model=Page, summary="Audit events in a time range, oldest first (paged)")
def list_events(
    services: ServicesDep,
    principal: Auditor,
    start: Annotated[datetime | None, Query(alias="from", description="Inclusive (ISO 8601)")] = None,
    end: Annotated[datetime | None, Query(alias="to", description="Exclusive (ISO 8601)")] = None,
    actor: Annotated[str | None, Query(max_length=200, description="ORGCODE/name")] = None,
    action: Annotated[str | None, Query(max_length=100)] = None,
    outcome: Literal["allow", "deny", "error"] | None = None,
    after: Annotated[int, Query(ge=0, le=MAX_ID)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Page:
    events = query_events(
        services.repo.db,
        start=start,
        end=end,
        principal=actor,
        action=action,
        outcome=Outcome(outcome) if outcome else None,
        after_id=after,
        limit=limit + 1,
    )
    items: list[dict[str, Any]] = [e.to_dict() for e in events[:limit]]
    return Page(items=items, next_after=events[limit - 1].id if len(events) > limit else None)
