"""The `dashrl sampler` process with a tracker on: its generation and reward figures per call and
its held-out eval reach TensorBoard (read back with TensorBoard's own reader)."""

import os
import subprocess
import sys

import pytest

from shared.configio import dump_config
from shared.runstate import RunState
from shared.tracking_config import TensorBoardTracker
from tests.conftest import ROOT
from tests.helpers.polling import wait_for
from tests.helpers.tiny_model import build_tiny_model
from tests.integration.sampler.harness import read_batches, sampler_config

pytestmark = pytest.mark.slow


def test_sampler_figures_and_evals_reach_tensorboard(redis_proc, redis_client, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    model_dir = build_tiny_model(tmp_path / "model")
    cfg = sampler_config(model_dir, tmp_path / "runs", "transformers", run_id="tb1", extra=["streams.max_backlog=2"])
    cfg.tracking = [TensorBoardTracker(flush_s=1)]
    cfg_path = tmp_path / "run.yaml"
    cfg_path.write_text(dump_config(cfg))
    env = {**os.environ, "DASHRL_REDIS_URL": redis_proc.url, "DASHRL_METRICS_PORT": "0",
           "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "services.cli", "sampler", str(cfg_path)], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_for(lambda: len(read_batches(redis_client, "tb1")) == 2, "two batches", 90, procs=proc)
        RunState(redis_client, "tb1").request_stop("test done")
        assert proc.wait(timeout=90) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    acc = EventAccumulator(str(tmp_path / "runs" / "tb1" / "tensorboard" / "sampler-0"))
    acc.Reload()
    tags = acc.Tags()["scalars"]
    calls = [e.step for e in acc.Scalars("sampler/tokens_per_s")]
    assert calls[:2] == [1, 2] and all(v.value > 0 for v in acc.Scalars("sampler/tokens_per_s"))
    assert "sampler/reward_mean" in tags and "sampler/policy_version" in tags
    [held_out] = acc.Scalars("eval/held_out/greedy_accuracy")  # eval_every=1: version 0, once
    assert held_out.step == 0 and 0.0 <= held_out.value <= 1.0
