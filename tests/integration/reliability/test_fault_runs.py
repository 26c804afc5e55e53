"""Faults during real local runs (tiny model, transformers sampler, real learner, real Redis):
SIGKILL the learner mid-run and resume it; SIGKILL the sampler and start another; restart Redis
(append-only file) under both. After each the run completes and the audit in
tests/helpers/fault_run.py holds: every pushed batch trained exactly once, skipped, or still
unread; versions never go backwards; no sampler loaded an unverified version.
(The control plane's SIGKILL + restart is in tests/integration/control/test_control_security.py.)"""

import re

import pytest

from tests.helpers.fault_run import FaultRun
from tests.helpers.polling import wait_for
from tests.helpers.control_server import free_port
from tests.helpers.tiny_model import build_tiny_model

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return build_tiny_model(tmp_path_factory.mktemp("model") / "tiny")


@pytest.mark.parametrize("transport", ["store", "broadcast"])
def test_learner_and_sampler_sigkilled_and_replaced(redis_proc, redis_client, tmp_path, model, transport):
    """With `broadcast`, both kills also break the push group: the learner's restart re-hosts
    the rendezvous, the dead sampler's seat times the push out, and the new sampler joins later."""
    port = free_port() if transport == "broadcast" else None
    run = FaultRun(tmp_path, redis_proc.url, model, run_id=f"kill-{transport}", max_steps=10, push_port=port)
    try:
        run.start_sampler()
        run.start_learner()
        run.wait_steps(4)  # checkpoint at 3; step 4 trained but not committed
        run.kill(run.learner)
        run.wait_pushed(len(run.steps()) + 2)  # the sampler keeps pushing while the learner is gone
        run.start_learner(resume=True)
        run.wait_steps(6)
        run.kill(run.sampler)
        run.start_sampler()  # a new sampler catches up on the newest announced version
        run.finish()
        numbers = run.audit(redis_client, killed_samplers=1)
    finally:
        run.cleanup()
    print(numbers)
    resumed = run.learner_logs[1].read_text()
    # resumed from the last checkpoint (every 3 steps), not from scratch
    assert re.search(r"resuming from \S+step-(3|6) \(step \1\)", resumed), resumed[-2000:]
    assert numbers["pushed"] >= numbers["trained"]
    if transport == "broadcast":  # versions did travel by the push, not only by the store
        assert numbers["served_pushed"] >= 1, numbers


def test_redis_restart_mid_run(fresh_redis, tmp_path, model):
    run = FaultRun(tmp_path, fresh_redis.url, model, run_id="redis", max_steps=8)
    try:
        run.start_sampler()
        run.start_learner()
        run.wait_steps(3)
        fresh_redis.restart()  # SIGTERM: Redis writes its append-only file, then comes back on the same port
        run.wait_steps(5)
        fresh_redis.stop(kill=False)  # a longer outage: down until the services have noticed it
        wait_for(lambda: "Redis error" in _logs(run), "the services to see Redis gone", 30)
        fresh_redis.start()
        run.finish()
        r = fresh_redis.client()
        numbers = run.audit(r)
    finally:
        run.cleanup()
    print(numbers)
    assert "retrying in" in _logs(run)  # the outage was seen, logged, and retried through


def _logs(run: FaultRun) -> str:
    return "".join(p.read_text(errors="replace") for p in run.learner_logs + run.sampler_logs)
