"""The learner service on a real Redis stream and a tiny model: it learns, publishes, skips stale.

The rollouts come from a scripted policy (tests/helpers/scripted_rollouts.py): fixed
completions, half rewarded, log-probs from a real forward pass of the starting model. All
are sampled up front by version 0 — preemptive sampling taken to the extreme — so the
learner trains off-policy with honest importance ratios.
"""

import json

import pytest
import torch
from transformers import AutoModelForCausalLM

from services.learner.steplog import read_steps
from shared.broadcast import Broadcast
from shared.keys import RunKeys
from shared.protocol import WeightsPublished
from shared.runstate import RunState
from shared.weights import make_store
from tests.helpers.learner_run import start_learner, write_batches, write_config
from tests.helpers.scripted_rollouts import BAD, GOOD, ScriptedPolicy, prompts
from tests.helpers.tiny_model import build_tiny_model

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def policy(tmp_path_factory):
    folder = build_tiny_model(tmp_path_factory.mktemp("model") / "tiny")
    return folder, ScriptedPolicy(folder)


def _run_to_end(cfg, redis_proc, tmp_path, timeout=180):
    log = tmp_path / "learner.log"
    proc = start_learner(cfg, redis_proc.url, log)
    try:
        proc.wait(timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, log.read_text()[-3000:]
    return log


def test_learner_learns_from_scripted_rollouts(policy, redis_proc, redis_client, tmp_path):
    model_dir, pol = policy
    run, steps = "learn", 12
    texts = prompts(4 * steps)
    batches = [pol.batch(run, texts[4 * i : 4 * i + 4], first_group=4 * i) for i in range(steps)]
    ids = write_batches(redis_client, run, batches)
    cfg = write_config(tmp_path / "cfg.yaml", run_id=run, model=model_dir, output_dir=tmp_path / "runs",
                       learner={"max_steps": steps, "checkpoint_every": 5}, algo={"loss_aggregation": "dash"})
    _run_to_end(cfg, redis_proc, tmp_path)

    run_dir = tmp_path / "runs" / run
    recs = read_steps(run_dir / "metrics.jsonl")
    assert [r["step"] for r in recs] == list(range(1, steps + 1))
    assert [r["batch_ids"] for r in recs] == [[i] for i in ids]  # one entry per step, in order
    assert all(r["samples"] == 16 and r["tokens"] > 16 for r in recs)
    # the surrogate loss falls from its on-policy value until PPO clipping (eps 0.2) holds it
    last = sum(r["loss"] for r in recs[-3:]) / 3
    assert last < recs[0]["loss"] - 0.05, [round(r["loss"], 4) for r in recs]
    assert recs[-1]["clip_fraction"] > 0.5 > recs[0]["clip_fraction"]
    assert recs[-1]["staleness"] == [steps - 1] and recs[-1]["policy_version"] == steps

    start = AutoModelForCausalLM.from_pretrained(model_dir)
    final = AutoModelForCausalLM.from_pretrained(run_dir / "final")
    probe = prompts(60)[-8:]  # prompts the learner never saw
    good0, good1 = pol.mean_logprob(start, probe, GOOD), pol.mean_logprob(final, probe, GOOD)
    bad0, bad1 = pol.mean_logprob(start, probe, BAD), pol.mean_logprob(final, probe, BAD)
    print(f"mean log-prob on unseen prompts: rewarded {good0:.3f} -> {good1:.3f}, unrewarded {bad0:.3f} -> {bad1:.3f}")
    assert good1 > good0 + 0.2, (good0, good1)
    assert bad1 < bad0 - 0.2, (bad0, bad1)

    # nothing left behind: every entry acked, every batch recorded as trained, run marked done
    keys = RunKeys(run)
    assert redis_client.xlen(keys.rollouts) == 0
    assert {m.decode() for m in redis_client.smembers(keys.trained)} == set(ids)
    assert RunState(redis_client, run).learner_done()
    # the newest announced version verifies and holds the final weights
    _, msg = Broadcast(redis_client, keys.weights, expect=WeightsPublished).latest()
    assert msg.version == steps and msg.step == steps
    folder = make_store("fs", run_id=run, root=run_dir / "weights", r=None).fetch(msg)
    fetched = AutoModelForCausalLM.from_pretrained(folder).state_dict()
    assert all(torch.equal(t, fetched[k]) for k, t in final.state_dict().items())
    assert json.loads((folder / "dashrl-manifest.json").read_text())["tie_word_embeddings"] is False


def test_stale_and_empty_rollouts_are_skipped_and_acked(policy, redis_proc, redis_client, tmp_path):
    model_dir, pol = policy
    run = "stale"
    texts = prompts(20)
    a, b, c, d = (pol.batch(run, texts[4 * i : 4 * i + 4], first_group=4 * i) for i in range(4))
    empty = pol.batch(run, texts[16:20], policy_version=2, threshold=10.0)  # filtering kept nothing
    fresh = pol.batch(run, texts[16:20], policy_version=2)
    write_batches(redis_client, run, [a, b, c, d, empty, fresh])
    cfg = write_config(tmp_path / "cfg.yaml", run_id=run, model=model_dir, output_dir=tmp_path / "runs",
                       learner={"max_steps": 3, "max_staleness": 1, "weight_store": "redis"})
    _run_to_end(cfg, redis_proc, tmp_path)

    recs = read_steps(tmp_path / "runs" / run / "metrics.jsonl")
    # step 3 runs at version 2: c and d (version 0) lag 2 > 1 versions
    assert [r["batch_ids"] for r in recs] == [[a.batch_id], [b.batch_id], [fresh.batch_id]]
    assert recs[2]["skipped"] == {"stale": [c.batch_id, d.batch_id], "empty": [empty.batch_id]}
    assert recs[2]["staleness"] == [0]
    keys = RunKeys(run)
    assert redis_client.xlen(keys.rollouts) == 0  # skipped entries were acked too
    assert int(redis_client.hget(keys.backlog, "committed")) == 6
    # the Redis weight store served the versions
    _, msg = Broadcast(redis_client, keys.weights, expect=WeightsPublished).latest()
    assert msg.format == "redis-chunks" and msg.version == 3
    assert (make_store("redis", run_id=run, root=tmp_path, r=redis_client).fetch(msg, tmp_path / "w") / "config.json").exists()
