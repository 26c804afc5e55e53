"""Liveness, readiness (Redis reachable) and the control plane's Prometheus metrics."""

from __future__ import annotations

import redis
from fastapi import APIRouter, Request, Response, status
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from services.control.deps import Store

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    """The process is up (no dependency checked)."""
    return {"status": "ok"}


@router.get("/readyz", responses={503: {"description": "Redis unreachable"}})
def readyz(store: Store, response: Response) -> dict[str, str]:
    """Ready to serve: Redis answers a PING."""
    try:
        store.r.ping()
    except redis.RedisError as err:
        response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
        return {"status": "unavailable", "redis": f"{type(err).__name__}: {err}"}
    return {"status": "ok", "redis": "ok"}


@router.get("/metrics", response_class=Response)
def metrics(request: Request) -> Response:
    """Prometheus text format: the control plane's own metrics (runs by state, API requests)."""
    return Response(generate_latest(request.app.state.registry), media_type=CONTENT_TYPE_LATEST)
