"""Graceful exits: SIGTERM commits and leaves the run resumable; a stop request finishes the run."""

import signal

import pytest

from services.learner.checkpoint import list_checkpoints
from services.learner.steplog import read_steps
from shared.keys import RunKeys
from shared.runstate import RunState
from tests.helpers.learner_run import start_learner, write_batches, write_config
from tests.helpers.polling import wait_for
from tests.helpers.scripted_rollouts import ScriptedPolicy, prompts
from tests.helpers.tiny_model import build_tiny_model

pytestmark = pytest.mark.slow


def test_sigterm_commits_then_stop_request_finishes(redis_proc, redis_client, tmp_path):
    model_dir = build_tiny_model(tmp_path / "tiny")
    pol = ScriptedPolicy(model_dir)
    run, texts = "stop", prompts(12)
    batches = [pol.batch(run, texts[4 * i : 4 * i + 4], first_group=4 * i) for i in range(3)]
    cfg = write_config(tmp_path / "cfg.yaml", run_id=run, model=model_dir, output_dir=tmp_path / "runs",
                       learner={"max_steps": 50, "checkpoint_every": 10})
    run_dir, log, keys, state = tmp_path / "runs" / run, tmp_path / "learner.log", RunKeys(run), RunState(redis_client, run)

    write_batches(redis_client, run, batches[:2])
    proc = start_learner(cfg, redis_proc.url, log)
    wait_for(lambda: len(read_steps(run_dir / "metrics.jsonl")) == 2, "step 2", 120, procs=proc, log=log)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(60) == 0, log.read_text()[-3000:]
    assert [s for s, _ in list_checkpoints(run_dir)] == [2]  # committed on the way out
    assert redis_client.xlen(keys.rollouts) == 0 and redis_client.scard(keys.trained) == 2
    assert not (run_dir / "final").exists() and not state.learner_done()  # resumable, not finished

    write_batches(redis_client, run, batches[2:])
    proc = start_learner(cfg, redis_proc.url, log, "--resume")
    wait_for(lambda: len(read_steps(run_dir / "metrics.jsonl")) == 3, "step 3", 120, procs=proc, log=log)
    state.request_stop("test")
    assert proc.wait(60) == 0, log.read_text()[-3000:]
    assert state.learner_done() and (run_dir / "final" / "model.safetensors").exists()
    assert [r["batch_ids"] for r in read_steps(run_dir / "metrics.jsonl")] == [[b.batch_id] for b in batches]
    beats = {hb.instance_id: hb for hb in state.heartbeats() if hb.service == "learner"}
    assert beats["learner-0"].state == "finished" and beats["learner-0"].info["step"] == 3
