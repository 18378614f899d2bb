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
    metrics,
    public,
    reviews,
    sharing,
    system,
    upstream,
)

ROUTERS = [
    system.router,
    public.router,
    catalogue.router,
    certificates.router,
    certificates.identifiers_router,
    batches.router,
    sharing.router,
    reviews.router,
    inspections.router,
    admin.router,
    audit.router,
    upstream.router,
    aggregate.router,
    exchange.router,
    metrics.router,
]
