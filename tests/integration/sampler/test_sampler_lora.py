"""The sampler service (in-process loop, transformers backend, a real Redis) in a LoRA run: it
follows an announced adapter version like any other, and the batches sampled after the swap
carry version 1 and log-probs of the merged model (base + adapter), not of the base."""

from pathlib import Path

import pytest
from transformers import AutoTokenizer

from services.learner.lora import save_final_model
from services.sampler.parts import build_loop
from shared.broadcast import Broadcast
from shared.keys import RunKeys
from shared.metrics import sampler_metrics
from shared.weights import make_store
from tests.helpers.lora_models import lora_policy
from tests.helpers.tiny_model import build_tiny_model
from tests.integration.sampler.harness import max_logprob_error, read_batches, sampler_config, wait_prefetched


def test_sampler_serves_an_announced_adapter(redis_client, tmp_path):
    pytest.importorskip("peft")
    model_dir = build_tiny_model(tmp_path / "model")
    cfg = sampler_config(model_dir, tmp_path / "runs", "transformers", run_id="slora",
                         extra=["model.lora.r=4", "sampler.eval_every=0"])
    loop = build_loop(cfg, redis_client, cfg.run_id, sampler_metrics()[0], tmp_path / "local")
    try:
        loop.run(lambda: False, max_calls=1)
        policy, _ = lora_policy(model_dir, seed=3)
        store = make_store("fs", run_id=cfg.run_id, root=Path(cfg.output_dir) / cfg.run_id / "weights", r=None)
        msg = store.publish(policy, AutoTokenizer.from_pretrained(model_dir), 1, 1)  # what the learner does
        Broadcast(redis_client, RunKeys(cfg.run_id).weights).publish(msg)
        wait_prefetched(loop.follower, 1)
        loop.run(lambda: False, max_calls=2)
        loop.finisher.flush()
    finally:
        loop.close()
    first, newest = read_batches(redis_client, cfg.run_id)[0], read_batches(redis_client, cfg.run_id)[-1]
    assert (first.policy_version, newest.policy_version, loop.follower.version) == (0, 1, 1)
    save_final_model(policy, None, tmp_path / "merged")
    assert max_logprob_error(tmp_path / "merged", newest, cfg) < 1e-4  # base + adapter sampled it
    assert max_logprob_error(model_dir, newest, cfg) > 1e-2  # not the base
