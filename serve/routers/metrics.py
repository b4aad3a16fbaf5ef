"""``GET /metrics``: the service's Prometheus metrics (text exposition format)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST

router = APIRouter(tags=["metrics"])


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def metrics(request: Request) -> Response:
    service = request.app.state.service
    service.refresh_gauges()
    return Response(service.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)
