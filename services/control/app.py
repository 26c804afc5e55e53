"""Builds the control plane's FastAPI app: routes, dashboard, middleware, background pass."""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager
from pathlib import Path

import redis
from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from services.control.api import health, runs
from services.control.launcher import AssignmentLauncher, Launcher, LocalLauncher
from services.control.middleware import BodyLimit, RequestCounter
from services.control.reconcile import reconcile_forever
from services.control.runs_store import RunsStore
from services.control.settings import ControlSettings
from shared.metrics import ControlMetrics, control_metrics
from shared.redis_client import connect

STATIC = Path(__file__).parent / "static"
# The dashboard loads only its own files and talks only to this server.
CSP = "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'"


def build_launcher(settings: ControlSettings, store: RunsStore, metrics: ControlMetrics) -> Launcher:
    if settings.launcher == "workers":
        return AssignmentLauncher(store.r, learner_nodes=settings.learner_nodes)
    return LocalLauncher(store, settings.redis_url, stop_grace_s=settings.stop_grace_s, metrics=metrics)


def create_app(settings: ControlSettings, *, r: redis.Redis | None = None, launcher: Launcher | None = None) -> FastAPI:
    """`launcher`: pass one to keep it (and its runs) beyond the app's life (`dashrl run` does)."""
    store = RunsStore(r or connect(settings.redis_url))
    metrics, registry = control_metrics()
    owned = launcher is None
    launcher = launcher or build_launcher(settings, store, metrics)

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        task = asyncio.create_task(reconcile_forever(store, metrics, settings.reconcile_every_s))
        yield
        task.cancel()
        if owned:
            await asyncio.to_thread(launcher.close, settings.stop_grace_s)

    app = FastAPI(title="dashrl control plane", version="1", lifespan=lifespan,
                  description="Start, watch and stop DASH RL runs. Mutating routes need `Authorization: Bearer`.")
    app.state.settings, app.state.store, app.state.launcher = settings, store, launcher
    app.state.metrics, app.state.registry = metrics, registry
    app.add_middleware(RequestCounter, counter=metrics.requests)
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    app.include_router(health.router)
    app.include_router(runs.router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/", include_in_schema=False)
    def dashboard() -> FileResponse:
        return FileResponse(STATIC / "index.html", headers={"Content-Security-Policy": CSP, "Cache-Control": "no-cache"})

    return app
