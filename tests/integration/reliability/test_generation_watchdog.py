"""A generation call past `sampler.generate_timeout_s` (here 1 ms, so the first real call of the
real sampler overruns it): the sampler logs why, leaves a `failed` heartbeat naming the call,
and exits 3 for its supervisor to restart it — it does not heartbeat "running" while stuck."""

import os
import signal
import subprocess
import sys

import pytest
import yaml

from shared.runstate import RunState
from tests.helpers.control_server import tiny_run_config
from tests.helpers.learner_run import ROOT
from tests.helpers.tiny_model import build_tiny_model

pytestmark = pytest.mark.slow


def test_stalled_generation_fails_loudly(redis_proc, redis_client, tmp_path):
    cfg = tiny_run_config(tmp_path / "runs", build_tiny_model(tmp_path / "tiny"), sampler={"generate_timeout_s": 0.001})
    cfg["run_id"] = "stall"
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(cfg))
    env = {**os.environ, "DASHRL_REDIS_URL": redis_proc.url, "DASHRL_METRICS_PORT": "0", "OMP_NUM_THREADS": "1",
           "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "services.cli", "sampler", str(path)], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # reward workers left by the hard exit
        except ProcessLookupError:
            pass
    text = out.decode(errors="replace")
    assert proc.returncode == 3, text[-3000:]
    assert "generate call running for" in text and "over its 0.001s bound" in text, text[-3000:]
    beats = [h for h in RunState(redis_client, "stall").heartbeats() if h.service == "sampler"]
    assert len(beats) == 1 and beats[0].state == "failed" and beats[0].report.stalled["generate"] > 0.001
