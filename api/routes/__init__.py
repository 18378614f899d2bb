"""The routers, one per service (ARCHITECTURE.md): thin adapters over ``certstore.services``."""

from __future__ import annotations

from api.routes import (
    admin,
    aggregate,
    audit,
    batches,
    catalogue,
    certificates,
    exchange,
    inspections,
    matters,
    metrics,
    public,
    reviews,
    seals,
    sharing,
    system,
    timestamps,
    upstream,
)

ROUTERS = [
    system.router,
    public.router,
    timestamps.router,
    catalogue.router,
    certificates.router,
    certificates.identifiers_router,
    batches.router,
    sharing.router,
    matters.router,
    reviews.router,
    inspections.router,
    seals.router,
    admin.router,
    audit.router,
    upstream.router,
    aggregate.router,
    exchange.router,
    metrics.router,
]
