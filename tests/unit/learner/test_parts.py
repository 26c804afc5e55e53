"""Parts.record_trained through a real redis-server that is down when the commit writes."""

from __future__ import annotations

import threading
import time

from services.learner.parts import Parts
from shared.metrics import learner_metrics
from shared.redis_client import connect


def test_record_trained_waits_out_an_outage(fresh_redis):
    metrics, reg = learner_metrics()
    r = connect(fresh_redis.url, socket_timeout=2)
    parts = Parts(reader=None, store=None, announce=None, runstate=None, r=r, trained_key="run:trained",
                  metrics=metrics)
    errors = lambda: reg.get_sample_value("dashrl_learner_redis_errors_total") or 0.0  # noqa: E731
    fresh_redis.stop()  # graceful: the AOF keeps what was there

    def bring_back():  # once the write has failed (and been counted) at least once
        deadline = time.monotonic() + 20
        while errors() < 1 and time.monotonic() < deadline:
            time.sleep(0.005)
        fresh_redis.start()

    t = threading.Thread(target=bring_back, daemon=True)
    t.start()
    parts.record_trained(["b1", "b2"])  # raised ConnectionError before: the learner died mid-commit
    t.join(20)
    assert errors() >= 1
    assert r.smembers("run:trained") == {b"b1", b"b2"}
