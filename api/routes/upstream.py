"""The change feed the province aggregates (省级汇聚): certificate versions and lifecycle events after a cursor."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from api.deps import ServicesDep
from api.models import MAX_ID, Page
from api.security import allow
from certstore.access import Principal, Role
from certstore.services.certificates import change_feed

router = APIRouter(prefix="/api/v1/upstream", tags=["upstream"])

Upstream = Annotated[Principal, Depends(allow(Role.UPSTREAM))]


@router.get(
    "/changes",
    response_model=Page,
    summary="Lifecycle events with the certificate metadata they concern (GB/T 36903 style), after a cursor",
)
def list_changes(
    services: ServicesDep,
    principal: Upstream,
    after: Annotated[int, Query(ge=0, le=MAX_ID, description="Cursor: the last event id received")] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> Page:
    items, next_after = change_feed(services.repo, after=after, limit=limit)
    return Page(items=items, next_after=next_after)
