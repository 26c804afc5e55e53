"""A 2-rank FSDP2 learner (torchrun, gloo) SIGKILLed mid-run resumes from its DCP checkpoint
and trains every batch exactly once, as the data-parallel one does (test_learner_resume.py).

The kill lands after step 4 was trained (its metrics line written) but before it was committed
(checkpoints every 3 steps), so step 4's entry is still unacked: the resumed ranks load the
step-3 shards, get it redelivered and train it again, once. Weight versions and the final model
are gathered from the shards on rank 0; the final one must load as a plain Hugging Face model.
"""

import os
import signal
import time
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM

from services.learner.checkpoint import list_checkpoints
from services.learner.steplog import read_steps
from shared.keys import RunKeys
from tests.helpers.learner_run import start_learner, write_batches, write_config
from tests.helpers.polling import wait_for
from tests.helpers.scripted_rollouts import ScriptedPolicy, prompts
from tests.helpers.tiny_model import build_tiny_model

pytestmark = pytest.mark.slow


def _descendants(pid: int) -> list[int]:
    try:
        kids = [int(k) for k in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except FileNotFoundError:
        return []
    return [d for k in kids for d in (k, *_descendants(k))]


def _kill_all(proc):
    """SIGKILL the ranks and torchrun (the ranks run in sessions of their own: a process-group
    kill of torchrun's would leave them training)."""
    ranks = _descendants(proc.pid)
    assert ranks or proc.poll() is not None
    for pid in [*ranks, proc.pid]:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    proc.wait(10)
    deadline = time.monotonic() + 10
    while any(Path(f"/proc/{pid}").exists() and "Z" not in _state(pid) for pid in ranks):
        assert time.monotonic() < deadline, "ranks survived SIGKILL"
        time.sleep(0.05)


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return "Z"


def test_fsdp_sigkill_and_resume_trains_each_batch_exactly_once(redis_proc, redis_client, tmp_path):
    model_dir = build_tiny_model(tmp_path / "tiny")
    pol = ScriptedPolicy(model_dir)
    run, steps = "fsdp-resume", 6
    texts = prompts(4 * steps)
    batches = [pol.batch(run, texts[4 * i : 4 * i + 4], first_group=4 * i) for i in range(steps)]
    cfg = write_config(tmp_path / "cfg.yaml", run_id=run, model=model_dir, output_dir=tmp_path / "runs",
                       learner={"max_steps": steps, "checkpoint_every": 3, "parallel": "fsdp",
                                "micro_batch_tokens": 64, "micro_batch_size": 4})
    run_dir, log = tmp_path / "runs" / run, tmp_path / "learner.log"

    def steps_logged():
        return [r["step"] for r in read_steps(run_dir / "metrics.jsonl")]

    write_batches(redis_client, run, batches[:4])
    proc = start_learner(cfg, redis_proc.url, log, nproc=2)
    try:
        wait_for(lambda: steps_logged() == [1, 2, 3, 4], "step 4", 300, procs=proc, log=log)
    finally:
        _kill_all(proc)
    (step, ckpt), = list_checkpoints(run_dir)
    assert step == 3 and (ckpt / "dcp" / ".metadata").exists() and not (ckpt / "model").exists()
    assert redis_client.xlen(RunKeys(run).rollouts) == 1  # step 4's entry: trained, never acked

    write_batches(redis_client, run, batches[4:])
    proc = start_learner(cfg, redis_proc.url, log, "--resume", nproc=2)
    try:
        assert proc.wait(300) == 0, log.read_text()[-4000:]
    finally:
        if proc.poll() is None:
            _kill_all(proc)

    recs = read_steps(run_dir / "metrics.jsonl")
    trained = [b for r in recs for b in r["batch_ids"]]
    assert [r["step"] for r in recs] == list(range(1, steps + 1))
    assert sorted(trained) == sorted(b.batch_id for b in batches) and len(set(trained)) == steps
    keys = RunKeys(run)
    assert {m.decode() for m in redis_client.smembers(keys.trained)} == set(trained)
    assert redis_client.xlen(keys.rollouts) == 0
    text = log.read_text()
    assert "resuming from" in text and "dropped 1 lines of steps after the checkpoint" in text  # step 4 redone
    final = AutoModelForCausalLM.from_pretrained(run_dir / "final").state_dict()
    start = AutoModelForCausalLM.from_pretrained(model_dir).state_dict()
    assert final.keys() == start.keys()
    assert max((final[k] - start[k]).abs().max().item() for k in start) > 1e-3  # trained, and gathered whole
    assert all(torch.isfinite(t).all() for t in final.values())
