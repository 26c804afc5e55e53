"""SIGKILL the learner mid-run, restart it with --resume: every batch is trained exactly once.

The test paces the producer so that the kill lands at a known point: after step 4 was
trained (its metrics line is written) but before it was committed (checkpoints every 3
steps), so its entry is still unacked and Redis must redeliver it to the resumed learner,
which must train it again — once — because the checkpoint it resumed from never saw it.
A second kill lands while it waits for data with step 7 trained but not committed.
"""

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


def _kill(proc):
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)


def test_sigkill_and_resume_trains_each_batch_exactly_once(redis_proc, redis_client, tmp_path):
    model_dir = build_tiny_model(tmp_path / "tiny")
    pol = ScriptedPolicy(model_dir)
    run, steps = "resume", 10
    texts = prompts(4 * steps)
    batches = [pol.batch(run, texts[4 * i : 4 * i + 4], first_group=4 * i) for i in range(steps)]
    cfg = write_config(tmp_path / "cfg.yaml", run_id=run, model=model_dir, output_dir=tmp_path / "runs",
                       learner={"max_steps": steps, "checkpoint_every": 3})
    run_dir, log = tmp_path / "runs" / run, tmp_path / "learner.log"
    metrics = run_dir / "metrics.jsonl"

    def steps_logged():
        return [r["step"] for r in read_steps(metrics)]

    # run 1: four batches; killed after step 4 was trained, before its commit
    write_batches(redis_client, run, batches[:4])
    proc = start_learner(cfg, redis_proc.url, log)
    wait_for(lambda: steps_logged() == [1, 2, 3, 4], "step 4", 120, procs=proc, log=log)
    _kill(proc)
    assert [s for s, _ in list_checkpoints(run_dir)] == [3]
    assert redis_client.xlen(RunKeys(run).rollouts) == 1  # step 4's entry: trained, never acked

    # a restart without --resume is refused rather than training everything again
    refused = start_learner(cfg, redis_proc.url, log)
    assert refused.wait(120) == 2

    # run 2: resumes at step 3, redoes step 4, trains 5-7; killed while waiting for step 8's data
    write_batches(redis_client, run, batches[4:7])
    proc = start_learner(cfg, redis_proc.url, log, "--resume")
    wait_for(lambda: steps_logged() == [1, 2, 3, 4, 5, 6, 7], "step 7", 120, procs=proc, log=log)
    _kill(proc)

    # run 3: the rest, to the end
    write_batches(redis_client, run, batches[7:])
    proc = start_learner(cfg, redis_proc.url, log, "--resume")
    assert proc.wait(180) == 0, log.read_text()[-3000:]

    recs = read_steps(metrics)
    assert [r["step"] for r in recs] == list(range(1, steps + 1))
    trained = [b for r in recs for b in r["batch_ids"]]
    assert sorted(trained) == sorted(b.batch_id for b in batches)  # each exactly once
    assert len(set(trained)) == len(trained) == steps
    keys = RunKeys(run)
    assert {m.decode() for m in redis_client.smembers(keys.trained)} == set(trained)
    assert redis_client.xlen(keys.rollouts) == 0
    assert int(redis_client.hget(keys.backlog, "committed")) == steps
    assert RunState(redis_client, run).learner_done()
    text = log.read_text()
    assert "resuming from" in text and "dropped 1 lines of steps after the checkpoint" in text
