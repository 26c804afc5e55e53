"""A run's shared state in Redis: lifecycle state, stop flag, heartbeats, progress.

Owns the `RunKeys.state` and `RunKeys.heartbeats` hashes. Services write heartbeats and
progress here; the control plane reads them, so it can restart without losing a run.
Services pass `retry_s` so that a Redis outage is retried (logged, counted) instead of killing
them on their first stop-flag poll; the control plane keeps the default (fail fast, no retry).
"""

from __future__ import annotations

import time

from typing import Callable, TypeVar

import redis

from shared.keys import RunKeys
from shared.protocol import Heartbeat, ProtocolError, Report, decode, encode
from shared.redis_client import with_retry

T = TypeVar("T")

STATES = ("pending", "running", "stopping", "stopped", "finished", "failed")


class RunState:
    def __init__(self, r: redis.Redis, run_id: str, *, retry_s: float = 0.0) -> None:
        self.r, self.run_id, self.keys, self.retry_s = r, run_id, RunKeys(run_id), retry_s

    def _call(self, fn: Callable[[], T], what: str) -> T:
        if self.retry_s <= 0:
            return fn()
        return with_retry(fn, what=f"run state {self.run_id}: {what}", max_wait_s=self.retry_s)

    def heartbeat(self, instance_id: str, state: str, report: Report) -> None:
        """Record that `instance_id` (of the service whose report this is) is alive in `state`."""
        hb = Heartbeat(self.run_id, instance_id, state, time.time(), report)
        payload = encode(hb)
        self._call(lambda: self.r.hset(self.keys.heartbeats, f"{hb.service}/{instance_id}", payload), "heartbeat")

    def heartbeats(self) -> list[Heartbeat]:
        out = []
        for raw in self._call(lambda: self.r.hvals(self.keys.heartbeats), "heartbeats"):
            try:
                out.append(decode(raw, expect=Heartbeat))
            except ProtocolError:
                continue  # a foreign or corrupt value must not hide the others
        return out

    def set_fields(self, **fields: str | int | float) -> None:
        mapping = {k: str(v) for k, v in fields.items()}
        self._call(lambda: self.r.hset(self.keys.state, mapping=mapping), "set fields")

    def fields(self) -> dict[str, str]:
        raw = self._call(lambda: self.r.hgetall(self.keys.state), "fields")
        return {k.decode(): v.decode() for k, v in raw.items()}

    def request_stop(self, reason: str = "") -> None:
        self.set_fields(stop_requested=1, stop_reason=reason)

    def stop_requested(self) -> bool:
        return self._call(lambda: self.r.hget(self.keys.state, "stop_requested"), "stop flag") == b"1"

    def mark_learner_done(self) -> None:
        self.set_fields(learner_done=1)

    def learner_done(self) -> bool:
        return self._call(lambda: self.r.hget(self.keys.state, "learner_done"), "learner done") == b"1"

    def should_stop(self) -> bool:
        """Samplers stop when a stop was requested or the learner has finished."""
        vals = self._call(lambda: self.r.hmget(self.keys.state, ["stop_requested", "learner_done"]), "should stop")
        return b"1" in vals
