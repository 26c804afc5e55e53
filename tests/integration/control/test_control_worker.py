"""The compose/Kubernetes path: the control plane publishes RunAssignments and two real
`dashrl worker`s (one per role) take them, run the real services, and ack when done."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from shared.keys import ASSIGNMENTS
from tests.helpers.control_server import ROOT, ControlServer, tiny_run_config
from tests.helpers.polling import wait_for
from tests.helpers.tiny_model import build_tiny_model

pytestmark = pytest.mark.slow


def start_worker(role: str, redis_url: str, tmp_path) -> subprocess.Popen:
    env = {**os.environ, "DASHRL_REDIS_URL": redis_url, "DASHRL_METRICS_PORT": "0", "PYTHONPATH": str(ROOT),
           "OMP_NUM_THREADS": "1"}
    log = open(tmp_path / f"worker-{role}.log", "wb")
    return subprocess.Popen([sys.executable, "-m", "services.cli", "worker", "--role", role, "--once",
                             "--name", f"test-{role}"], cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT)


def test_workers_take_assignments_and_finish_the_run(redis_proc, redis_client, tmp_path):
    model = build_tiny_model(tmp_path / "model")
    workers = [start_worker(role, redis_proc.url, tmp_path) for role in ("learner", "sampler")]
    try:
        with ControlServer(redis_proc.url, tmp_path, launcher="workers") as server, server.client() as api:
            created = api.post("/v1/runs", json=tiny_run_config(tmp_path / "runs", model, max_steps=4))
            assert created.status_code == 201, created.text
            run_id = created.json()["id"]
            for w in workers:
                w.wait(timeout=240)
            logs = {p.name: p.read_text()[-2000:] for p in tmp_path.glob("worker-*.log")}
            assert [w.returncode for w in workers] == [0, 0], logs
            view = wait_for(lambda: api.get(f"/v1/runs/{run_id}").json()["state"] == "finished"
                            and api.get(f"/v1/runs/{run_id}").json(), "state finished", 30)
            assert view["learner_step"] == 4 and view["failure"] is None
    finally:
        for w in workers:
            if w.poll() is None:
                w.terminate()
                w.wait(30)
    folder = tmp_path / "runs" / run_id
    assert (folder / "final" / "model.safetensors").is_file()
    assert (folder / "logs" / "learner-test-learner.log").is_file()
    for group in ("learner-workers", "sampler-workers"):  # every assignment acked once its service exited
        assert redis_client.xpending(ASSIGNMENTS, group)["pending"] == 0


def test_a_restarted_worker_resumes_its_unacked_assignment(redis_proc, redis_client):
    from services.control.launcher import AssignmentLauncher
    from services.control.worker import Worker
    from shared.config import RunConfig

    AssignmentLauncher(redis_client).launch("w-1", RunConfig(run_id="w-1"))
    first = Worker(redis_client, "learner", "pod-0", redis_proc.url, 0)
    first.ensure_group()
    entry_id, assignment, resumed = first.next_assignment(block_ms=100)
    assert (assignment.run_id, assignment.role, resumed) == ("w-1", "learner", False)
    # pod-0 dies before its service exits: nothing acked. Its replacement has the same name.
    again = Worker(redis_client, "learner", "pod-0", redis_proc.url, 0)
    again.ensure_group()
    entry_again, assignment_again, resumed_again = again.next_assignment(block_ms=100)
    assert (entry_again, assignment_again.run_id, resumed_again) == (entry_id, "w-1", True)
    # another learner worker does not get it; the learner group saw the sampler entry as well
    other = Worker(redis_client, "learner", "pod-1", redis_proc.url, 0)
    _id, sampler_entry, _ = other.next_assignment(block_ms=100)
    assert sampler_entry.role == "sampler"  # serve() skips it in a learner worker, and acks it
    other.ack(_id)
    assert other.next_assignment(block_ms=100) is None
