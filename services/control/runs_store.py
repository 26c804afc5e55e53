"""Run records in Redis: the control plane keeps nothing in memory that it cannot rebuild.

Owns `RUNS_INDEX` (a sorted set of run ids by creation time) and the control plane's fields of
each run's `RunKeys.state` hash: `state`, `config` (the validated config as JSON), timestamps,
`metrics_ports`, and the failure record (`failed_service`, `exit_code`, `log_tail`). The
services write their own flags into the same hash through `shared.runstate.RunState`. A
restarted control plane therefore sees every run, its state and its progress.
"""

from __future__ import annotations

import json
import time

import redis

from services.control.status import TERMINAL, RunView, derive_state, series_field, series_point, summarize
from shared.config import RunConfig
from shared.keys import RUNS_INDEX, RunKeys
from shared.protocol import Heartbeat, ProtocolError, decode
from shared.run_folder import run_dir
from shared.runstate import RunState
from shared.streams import read_backlog

SERIES_MAXLEN = 5000
"""Dashboard samples kept per run (one every couple of seconds: a few hours)."""


def _decode_heartbeats(raw: list[bytes]) -> list[Heartbeat]:
    out = []
    for value in raw:
        try:
            out.append(decode(value, expect=Heartbeat))
        except ProtocolError:
            continue  # RunState.heartbeats() skips these too
    return out


class RunExists(ValueError):
    """A run with this id is already recorded."""


class RunsStore:
    def __init__(self, r: redis.Redis) -> None:
        self.r = r

    # --- records -------------------------------------------------------------------------
    def create(self, cfg: RunConfig, launcher: str) -> str:
        """Record a new pending run (its config must carry a run_id). Raises RunExists."""
        assert cfg.run_id, "create() needs a config with run_id set"
        run_id, keys, now = cfg.run_id, RunKeys(cfg.run_id), time.time()
        if not self.r.hsetnx(keys.state, "created_at", repr(now)):
            raise RunExists(f"run {run_id!r} already exists")
        pipe = self.r.pipeline()
        pipe.hset(keys.state, mapping={
            "state": "pending", "config": cfg.model_dump_json(), "launcher": launcher,
            "run_dir": str(run_dir(cfg)),
        })
        pipe.zadd(RUNS_INDEX, {run_id: now})
        pipe.execute()
        return run_id

    def run_ids(self, limit: int = 100) -> list[str]:
        """Newest first."""
        return [x.decode() for x in self.r.zrevrange(RUNS_INDEX, 0, limit - 1)]

    def exists(self, run_id: str) -> bool:
        return self.r.zscore(RUNS_INDEX, run_id) is not None

    def fields(self, run_id: str) -> dict[str, str]:
        return RunState(self.r, run_id).fields()

    def config(self, run_id: str) -> RunConfig:
        return RunConfig.model_validate_json(self.r.hget(RunKeys(run_id).state, "config") or b"{}")

    def set_fields(self, run_id: str, **fields: str | int | float) -> None:
        RunState(self.r, run_id).set_fields(**fields)

    def record_failure(self, run_id: str, service: str, exit_code: int | None, log_tail: str) -> bool:
        """Mark the run failed because `service` exited badly; the first failure is kept.

        Returns False (and records nothing) when the run had already ended or failed."""
        keys = RunKeys(run_id)
        with self.r.pipeline() as pipe:
            try:
                pipe.watch(keys.state)
                state = (pipe.hget(keys.state, "state") or b"").decode()
                if state in TERMINAL or pipe.hexists(keys.state, "failed_service"):
                    return False
                pipe.multi()
                pipe.hset(keys.state, mapping={
                    "failed_service": service, "exit_code": "" if exit_code is None else str(exit_code),
                    "log_tail": log_tail[-4000:], "state": "failed", "ended_at": repr(time.time()),
                })
                pipe.execute()
                return True
            except redis.WatchError:
                return self.record_failure(run_id, service, exit_code, log_tail)

    def request_stop(self, run_id: str, reason: str) -> str:
        """Ask the run's services to stop gracefully; returns the run's state after the request."""
        state = self.refresh(run_id)
        if state in TERMINAL:
            return state
        RunState(self.r, run_id).request_stop(reason)
        return self.refresh(run_id)

    # --- state ---------------------------------------------------------------------------
    def refresh(self, run_id: str) -> str:
        """Re-derive the run's state from its flags and heartbeats; write it if it changed."""
        keys = RunKeys(run_id)
        with self.r.pipeline() as pipe:
            try:
                pipe.watch(keys.state, keys.heartbeats)
                fields = {k.decode(): v.decode() for k, v in pipe.hgetall(keys.state).items()}
                current = fields.get("state", "pending")
                new = derive_state(current, fields, _decode_heartbeats(pipe.hvals(keys.heartbeats)), time.time())
                if new == current:
                    pipe.unwatch()
                    return current
                pipe.multi()
                update = {"state": new}
                if new == "running" and "started_at" not in fields:
                    update["started_at"] = repr(time.time())
                if new in TERMINAL and "ended_at" not in fields:
                    update["ended_at"] = repr(time.time())
                pipe.hset(keys.state, mapping=update)
                pipe.execute()
                return new
            except redis.WatchError:
                return self.refresh(run_id)

    def view(self, run_id: str, with_config: bool = False) -> RunView:
        state = self.refresh(run_id)
        rs = RunState(self.r, run_id)
        fields = rs.fields()
        view = summarize(run_id, state, fields, rs.heartbeats(), read_backlog(self.r, RunKeys(run_id).backlog),
                         time.time())
        if with_config and fields.get("config"):
            view.config = json.loads(fields["config"])
        return view

    def states(self, run_ids: list[str]) -> list[str]:
        """The recorded state of each run (as last written; `refresh` re-derives it)."""
        pipe = self.r.pipeline()
        for run_id in run_ids:
            pipe.hget(RunKeys(run_id).state, "state")
        return [(s or b"pending").decode() for s in pipe.execute()] if run_ids else []

    def active_run_ids(self, limit: int = 200) -> list[str]:
        ids = self.run_ids(limit)
        return [i for i, s in zip(ids, self.states(ids)) if s not in TERMINAL]

    # --- dashboard time series -----------------------------------------------------------
    def record_series(self, view: RunView) -> None:
        """Append one chart sample (bounded stream), skipping it when nothing changed."""
        point = series_point(view)
        if not point:
            return
        key = RunKeys(view.id).series
        last = self.r.xrevrange(key, count=1)
        if last and {k.decode(): float(v) for k, v in last[0][1].items()} == point:
            return
        self.r.xadd(key, {k: repr(v) for k, v in point.items()}, maxlen=SERIES_MAXLEN, approximate=True)

    def series(self, run_id: str, since_ms: int = 0, limit: int = SERIES_MAXLEN) -> list[dict[str, float]]:
        """Chart samples after `since_ms` (stream time, ms), oldest first; each has `t` (s)."""
        out = []
        start = str(since_ms + 1) if since_ms > 0 else "-"
        for raw_id, values in self.r.xrange(RunKeys(run_id).series, min=start, count=limit):
            point = {k.decode(): float(v) for k, v in values.items() if series_field(k.decode())}
            point["t"] = int(raw_id.decode().split("-")[0]) / 1000.0
            out.append(point)
        return out
