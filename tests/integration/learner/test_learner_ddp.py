"""Two learner ranks under torchrun (gloo, CPU) train exactly what one rank trains.

Rank 0 reads the stream and broadcasts each step's samples; each rank runs half of the
micro-batches and the gradients are summed. The final weights must match a single-process
run on the same rollouts (up to float32 summation order).
"""

import pytest
from transformers import AutoModelForCausalLM

from services.learner.steplog import read_steps
from shared.keys import RunKeys
from tests.helpers.learner_run import start_learner, write_batches, write_config
from tests.helpers.scripted_rollouts import ScriptedPolicy, prompts
from tests.helpers.tiny_model import build_tiny_model

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("normalize_by", ["kept", "generated"])
def test_two_ranks_match_one(redis_proc, redis_client, tmp_path, normalize_by):
    """With `normalize_by: generated` the batches say twice as many samples were generated as
    kept: rank 1 gets that count only through rank 0's broadcast, and must use it too."""
    model_dir = build_tiny_model(tmp_path / "tiny")
    pol = ScriptedPolicy(model_dir)
    steps, texts = 3, prompts(12)
    finals, processed = {}, {}
    for run, nproc in (("ddp", 2), ("single", 1)):
        batches = [pol.batch(run, texts[4 * i : 4 * i + 4], first_group=4 * i) for i in range(steps)]
        for b in batches:
            b.stats["num_samples"] *= 2
            b.stats["completion_tokens"] *= 2
        write_batches(redis_client, run, batches)
        # 16 samples of <= 14 tokens, 64-token budget: 4+ micro-batches per step, split over ranks
        cfg = write_config(tmp_path / f"{run}.yaml", run_id=run, model=model_dir, output_dir=tmp_path / "runs",
                           learner={"max_steps": steps, "micro_batch_tokens": 64, "micro_batch_size": 4},
                           algo={"normalize_by": normalize_by})
        log = tmp_path / f"{run}.log"
        proc = start_learner(cfg, redis_proc.url, log, nproc=nproc)
        try:
            assert proc.wait(300) == 0, log.read_text()[-4000:]
        finally:
            if proc.poll() is None:
                proc.kill()
        recs = read_steps(tmp_path / "runs" / run / "metrics.jsonl")
        assert [r["batch_ids"] for r in recs] == [[b.batch_id] for b in batches]
        # prompt sharing runs each group's prompt once: fewer tokens through backprop than in the samples
        assert all(0 < r["tokens_processed"] < r["tokens"] for r in recs)
        processed[run] = [r["tokens_processed"] for r in recs]
        assert redis_client.xlen(RunKeys(run).rollouts) == 0
        finals[run] = AutoModelForCausalLM.from_pretrained(tmp_path / "runs" / run / "final").state_dict()
    assert processed["ddp"] == processed["single"]  # both ranks' tokens counted
    start = AutoModelForCausalLM.from_pretrained(model_dir).state_dict()
    moved = max((finals["single"][k] - start[k]).abs().max().item() for k in start)
    assert moved > 1e-3  # training happened
    diff = max((finals["ddp"][k] - finals["single"][k]).abs().max().item() for k in start)
    assert diff < 1e-5, diff
