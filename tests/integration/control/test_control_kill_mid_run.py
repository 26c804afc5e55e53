"""The control plane SIGKILLed in the middle of a real run (workers launcher, two real `dashrl
worker`s running the real services on a tiny model) and started again: the run goes on without
it, completes, is reported finished by the new control plane, and passes the same audit as the
other fault runs (tests/helpers/fault_run.py)."""

import signal

import pytest

from tests.helpers.control_server import ControlServer, tiny_run_config
from tests.helpers.polling import wait_for
from tests.helpers.fault_run import FaultRun
from tests.helpers.tiny_model import build_tiny_model
from tests.integration.control.test_control_worker import start_worker

pytestmark = pytest.mark.slow
STEPS = 60  # ~30 ms a step here; more steps drift the random policy into outputs slow to verify


def test_control_plane_killed_mid_run_and_restarted(redis_proc, redis_client, tmp_path):
    model = build_tiny_model(tmp_path / "model")
    workers = [start_worker(role, redis_proc.url, tmp_path) for role in ("learner", "sampler")]
    try:
        server = ControlServer(redis_proc.url, tmp_path, launcher="workers").start()
        with server.client() as api:
            cfg = tiny_run_config(tmp_path / "runs", model, max_steps=STEPS, sampler={"eval_every": 0})
            created = api.post("/v1/runs", json=cfg)
            assert created.status_code == 201, created.text
            run_id = created.json()["id"]
            wait_for(lambda: api.get(f"/v1/runs/{run_id}").json()["state"] == "running", "state running", 120)
            # the step line itself, not the learner's 2 s heartbeat: by the heartbeat a fast run may be over
            metrics = tmp_path / "runs" / run_id / "metrics.jsonl"
            wait_for(lambda: metrics.exists() and len(metrics.read_text().splitlines()) >= 2, "step 2", 120)
        server.proc.send_signal(signal.SIGKILL)
        server.proc.wait(10)
        at_kill = len(metrics.read_text().splitlines())
        assert at_kill < STEPS, "the run finished before the control plane was killed"
        wait_for(lambda: len(metrics.read_text().splitlines()) > at_kill, "a step while the control plane is down", 60)
        with ControlServer(redis_proc.url, tmp_path, launcher="workers", port=server.port) as again, \
                again.client() as api:
            view = wait_for(lambda: api.get(f"/v1/runs/{run_id}").json()["state"] == "finished"
                            and api.get(f"/v1/runs/{run_id}").json(), "state finished", 180)
            assert view["learner_step"] == STEPS and view["failure"] is None
        assert [w.wait(60) for w in workers] == [0, 0]
    finally:
        for w in workers:
            if w.poll() is None:
                w.terminate()
                w.wait(30)
    (tmp_path / "audit").mkdir()
    run = FaultRun(tmp_path / "audit", redis_proc.url, model, run_id=run_id, max_steps=STEPS)
    run.run_dir = tmp_path / "runs" / run_id
    run.learner_logs = sorted((run.run_dir / "logs").glob("learner-*.log"))
    run.sampler_logs = sorted((run.run_dir / "logs").glob("sampler-*.log"))
    assert run.learner_logs and run.sampler_logs
    print(run.audit(redis_client))
