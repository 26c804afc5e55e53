"""A run's stream keys, metrics, writers and readers on one Redis, for the streams tests."""

from __future__ import annotations

import uuid

from prometheus_client import CollectorRegistry

from shared.keys import RunKeys
from shared.metrics import stream_metrics
from shared.protocol import StopRun, encode
from shared.streams import StreamReader, StreamWriter



class Rig:
    """A run's keys, metrics and helpers to build writers and readers on one Redis."""

    def __init__(self, r, max_backlog=4, claim_idle_ms=60000):
        self.r, self.keys = r, RunKeys(f"t{uuid.uuid4().hex[:8]}")
        self.reg = CollectorRegistry()
        self.metrics = stream_metrics(self.reg, "test")
        self.max_backlog, self.claim_idle_ms = max_backlog, claim_idle_ms

    def writer(self, **kw):
        return StreamWriter(self.r, self.keys.rollouts, backlog_key=self.keys.backlog,
                            max_backlog=kw.pop("max_backlog", self.max_backlog), metrics=self.metrics, **kw)

    def reader(self, consumer="c1", expect=StopRun, **kw):
        kw.setdefault("claim_idle_ms", self.claim_idle_ms)
        return StreamReader(self.r, self.keys.rollouts, self.keys.rollouts_group, consumer,
                            backlog_key=self.keys.backlog, deadletter=self.keys.deadletter,
                            expect=expect, metrics=self.metrics, **kw)

    def metric(self, name, **labels):
        return self.reg.get_sample_value(f"dashrl_test_{name}", labels or None) or 0.0

    def pending_gauge(self):
        return self.reg.get_sample_value("dashrl_stream_pending_entries")

    def counters(self):
        h = self.r.hgetall(self.keys.backlog)
        return int(h.get(b"produced", 0)), int(h.get(b"committed", 0))


def stop(i) -> bytes:
    return encode(StopRun("run", reason=f"msg-{i}"))
