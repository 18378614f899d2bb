"""Health."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel
from sqlalchemy import text

from api.deps import ServicesDep
from certstore import __version__

router = APIRouter(tags=["system"])


class Health(BaseModel):
    status: str
    database: str
    version: str


@router.get("/api/v1/health", response_model=Health, summary="Liveness and database reachability")
def health(services: ServicesDep) -> Health:
    try:
        with services.repo.db.connect(readonly=True) as conn:
            conn.execute(text("SELECT 1"))
        database = "ok"
    except Exception as exc:  # reported, not raised: health must answer
        database = f"unavailable: {type(exc).__name__}"
    return Health(status="ok" if database == "ok" else "degraded", database=database, version=__version__)
