"""A run's shared state in Redis: lifecycle state, stop flag, heartbeats, progress.

Owns the `RunKeys.state` and `RunKeys.heartbeats` hashes. Services write heartbeats and
progress here; the control plane reads them, so it can restart without losing a run.
"""

from __future__ import annotations

import time

import redis

from shared.keys import RunKeys
from shared.protocol import Heartbeat, ProtocolError, decode, encode

STATES = ("pending", "running", "stopping", "stopped", "finished", "failed")


class RunState:
    def __init__(self, r: redis.Redis, run_id: str) -> None:
        self.r, self.run_id, self.keys = r, run_id, RunKeys(run_id)

    def heartbeat(self, service: str, instance_id: str, state: str, info: dict[str, float]) -> None:
        hb = Heartbeat(self.run_id, service, instance_id, state, time.time(), dict(info))
        self.r.hset(self.keys.heartbeats, f"{service}/{instance_id}", encode(hb))

    def heartbeats(self) -> list[Heartbeat]:
        out = []
        for raw in self.r.hvals(self.keys.heartbeats):
            try:
                out.append(decode(raw, expect=Heartbeat))
            except ProtocolError:
                continue  # a foreign or corrupt value must not hide the others
        return out

    def set_fields(self, **fields: str | int | float) -> None:
        self.r.hset(self.keys.state, mapping={k: str(v) for k, v in fields.items()})

    def fields(self) -> dict[str, str]:
        return {k.decode(): v.decode() for k, v in self.r.hgetall(self.keys.state).items()}

    def request_stop(self, reason: str = "") -> None:
        self.set_fields(stop_requested=1, stop_reason=reason)

    def stop_requested(self) -> bool:
        return self.r.hget(self.keys.state, "stop_requested") == b"1"

    def mark_learner_done(self) -> None:
        self.set_fields(learner_done=1)

    def learner_done(self) -> bool:
        return self.r.hget(self.keys.state, "learner_done") == b"1"

    def should_stop(self) -> bool:
        """Samplers stop when a stop was requested or the learner has finished."""
        vals = self.r.hmget(self.keys.state, ["stop_requested", "learner_done"])
        return b"1" in vals
