"""Prometheus metrics for operators: the exchange's per-source gauges and this process's counters (exchange;
window look-ups and look-up bursts, :mod:`certstore.services.lookup_limits`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Response
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.concurrency import run_in_threadpool

from api.deps import ServicesDep
from api.security import allow
from certstore.access import Principal, Role
from certstore.services import lookup_limits
from certstore.services.exchange_metrics import metrics_text

router = APIRouter(tags=["system"])

Bureau = Annotated[Principal, Depends(allow(Role.BUREAU))]


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "Prometheus text exposition"}},
    summary="Prometheus metrics (exchange lag, rows seen/accepted/rejected, cycle duration); bureau token",
)
async def metrics(services: ServicesDep, principal: Bureau) -> Response:
    body = await run_in_threadpool(metrics_text, services.repo)
    body += lookup_limits.metrics_text()  # this process's window look-ups and look-up bursts
    return Response(body, media_type=CONTENT_TYPE_LATEST)
