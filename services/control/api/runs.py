"""`/v1/runs`: start, list, inspect and stop runs; the dashboard's time series."""

from __future__ import annotations

import logging
import secrets
import time
from typing import Annotated, Any

from fastapi import APIRouter, Body, HTTPException, Path, Query, status
from pydantic import BaseModel, ValidationError

from services.control.deps import Authorized, CurrentLauncher, Store
from services.control.launcher import Launcher
from services.control.runs_store import RunExists, RunsStore
from services.control.status import RunView
from shared.config import RunConfig
from shared.configio import format_validation_error

log = logging.getLogger(__name__)
router = APIRouter(prefix="/v1/runs", tags=["runs"])
RunId = Annotated[str, Path(pattern=r"^[A-Za-z0-9_.-]{1,64}$", description="run id")]


class RunCreated(BaseModel):
    id: str
    state: str


class RunList(BaseModel):
    runs: list[RunView]


class StopRequest(BaseModel):
    reason: str = "stopped through the API"


class Series(BaseModel):
    id: str
    points: list[dict[str, float]]
    """Oldest first; each point has `t` (unix seconds) and the numbers known at that time."""


def new_run_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(3)


def validate_run_config(data: Any) -> RunConfig:
    """The request body as a RunConfig, or a 422 whose detail names the offending field."""
    if not isinstance(data, dict):
        raise HTTPException(422, {"field": "<root>", "message": "a run config must be a JSON object"})
    try:
        return RunConfig.model_validate(data)
    except ValidationError as err:
        first = err.errors()[0]
        message = format_validation_error(err, "config")
        field = message.split(": ", 2)[1] if message.count(": ") >= 2 else ".".join(map(str, first["loc"]))
        raise HTTPException(422, {"field": field, "message": message}) from None


def start_run(store: RunsStore, launcher: Launcher, cfg: RunConfig) -> str:
    """Record the run and hand it to the launcher (the API and `dashrl run` both come here)."""
    if not cfg.run_id:
        cfg = cfg.model_copy(update={"run_id": new_run_id()})
    run_id = store.create(cfg, launcher.name)
    try:
        launcher.launch(run_id, cfg)
    except Exception as err:
        log.exception("run %s: launch failed", run_id)
        store.record_failure(run_id, "launcher", None, f"{type(err).__name__}: {err}")
        raise
    return run_id


@router.post("", status_code=status.HTTP_201_CREATED, response_model=RunCreated, dependencies=[Authorized],
             responses={401: {"description": "missing or wrong token"}, 409: {"description": "run id taken"},
                        422: {"description": "invalid config; `detail.field` names the key"}})
def create_run(store: Store, launcher: CurrentLauncher,
               config: Annotated[dict[str, Any], Body(description="a run config (see `dashrl config`)")]) -> RunCreated:
    cfg = validate_run_config(config)
    try:
        run_id = start_run(store, launcher, cfg)
    except RunExists as err:
        raise HTTPException(status.HTTP_409_CONFLICT, str(err)) from None
    except Exception as err:
        raise HTTPException(status.HTTP_500_INTERNAL_SERVER_ERROR, f"launch failed: {err}") from None
    return RunCreated(id=run_id, state=store.refresh(run_id))


@router.get("", response_model=RunList)
def list_runs(store: Store, limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> RunList:
    return RunList(runs=[store.view(run_id) for run_id in store.run_ids(limit)])


def _known(store: RunsStore, run_id: str) -> None:
    if not store.exists(run_id):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no run {run_id!r}")


@router.get("/{run_id}", response_model=RunView)
def get_run(store: Store, run_id: RunId) -> RunView:
    _known(store, run_id)
    return store.view(run_id, with_config=True)


@router.get("/{run_id}/series", response_model=Series)
def get_series(store: Store, run_id: RunId,
               since: Annotated[float, Query(ge=0, le=1e12, description="only points after this unix time")] = 0) -> Series:
    _known(store, run_id)  # `since` is bounded: ms beyond 2^64 are no stream id (schemathesis found the 500)
    return Series(id=run_id, points=store.series(run_id, since_ms=int(since * 1000)))


@router.post("/{run_id}/stop", status_code=status.HTTP_202_ACCEPTED, response_model=RunCreated,
             dependencies=[Authorized])
def stop_run(store: Store, run_id: RunId, body: Annotated[StopRequest | None, Body()] = None) -> RunCreated:
    """Graceful: samplers stop, the learner finishes its step, checkpoints, publishes and exits."""
    _known(store, run_id)
    state = store.request_stop(run_id, (body or StopRequest()).reason)
    return RunCreated(id=run_id, state=state)
