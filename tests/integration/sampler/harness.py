"""What the sampler integration tests check, for any backend: run the real loop against a real
Redis and a real tiny model, then check the batches, their log-probs against a transformers
forward pass, and a weight hot-swap (the version stamp moves and the outputs change)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from services.sampler.backends import SamplingSettings
from services.sampler.parts import build_loop
from shared.algo.logprobs import SamplingDistribution, processed_logprobs
from shared.broadcast import Broadcast
from shared.configio import load_config
from shared.keys import RunKeys
from shared.metrics import sampler_metrics
from shared.protocol import RolloutBatch, decode
from shared.run_folder import run_dir
from shared.weights import make_store
from tests.helpers.polling import wait_for

M, G, NEW = 6, 4, 12


def sampler_config(model_dir: Path, out_dir: Path, backend: str, run_id: str = "t1", extra: list[str] = ()):
    return load_config(None, [
        f"run_id={run_id}", f"output_dir={out_dir}", f"model.path={model_dir}", "model.dtype=float32",
        f"sampler.backend={backend}", f"sampler.sampling_batch_prompts={M}", f"sampler.group_size={G}",
        f"sampler.max_new_tokens={NEW}", "sampler.max_prompt_tokens=160", "sampler.eval_every=1",
        "learner.micro_batch_size=4", "task.source.kind=reasoning_gym", "task.source.name=chain_sum",
        "task.source.size=50", "task.eval_size=4", "task.system_prompt=''", "task.reward_workers=1",
        # A random model never solves chain_sum; partial credit keeps groups non-flat (see helper).
        "task.reward=tests.helpers.sampler_rewards:digit_fraction", "task.reward_allowlist=[tests.helpers.]",
        *extra,
    ])


def read_batches(r, run_id: str) -> list[RolloutBatch]:
    return [decode(fields[b"m"], expect=RolloutBatch) for _, fields in r.xrange(RunKeys(run_id).rollouts)]


def check_shapes(batch: RolloutBatch, threshold: float) -> None:
    n = len(batch)
    assert 0 < n <= M * G
    for name in ("completion_lens", "rewards", "advantages", "group_ids", "finish_reasons"):
        assert getattr(batch, name).shape == (n,), name
    assert batch.prompt_ids.shape == (int(batch.prompt_lens.sum()),)
    assert batch.completion_ids.shape == batch.logprobs.shape == (int(batch.completion_lens.sum()),)
    assert batch.completion_lens.min() >= 1 and batch.completion_lens.max() <= NEW
    assert (np.abs(batch.advantages) > threshold).all()  # gradient filtering happened here
    assert batch.stats["num_samples"] == M * G and batch.stats["num_kept"] == n
    assert 0 < batch.stats["kept_fraction"] <= 1


def max_logprob_error(model_dir: Path, batch: RolloutBatch, cfg) -> float:
    """Largest |sampler log-prob - transformers forward log-prob| over every completion token,
    the forward's under the sampling distribution (temperature, top-k, top-p) as the learner's."""
    dist = SamplingDistribution.of(cfg.sampler.temperature, cfg.sampler.top_k, cfg.sampler.top_p)
    model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32).eval()
    worst = 0.0
    with torch.no_grad():
        for s in batch.samples():
            ids = torch.tensor(np.concatenate([s.prompt_ids, s.completion_ids]), dtype=torch.long)[None]
            logp = processed_logprobs(model(ids).logits[0].float(), dist)  # (T, V)
            p = len(s.prompt_ids)
            ref = logp[p - 1 : -1].gather(-1, ids[0, p:, None])[:, 0].numpy()  # (C,)
            worst = max(worst, float(np.abs(ref - s.logprobs).max()))
    return worst


def publish_perturbed(r, cfg, model_dir: Path, version: int, scale: float = 0.5, damage=None):
    """What the learner does: write version `version` to the store and announce it (after
    `damage(folder)`, if given: a version damaged before any reader can see it)."""
    model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32)
    torch.manual_seed(100 + version)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * scale)
    store = make_store("fs", run_id=cfg.run_id, root=run_dir(cfg) / "weights", r=r)
    msg = store.publish(model, AutoTokenizer.from_pretrained(str(model_dir)), version, version)
    if damage is not None:
        damage(Path(msg.location))
    Broadcast(r, RunKeys(cfg.run_id).weights).publish(msg)
    return Path(msg.location)


def wait_prefetched(follower, version: int) -> None:
    """Async mode fetches announced versions on a thread (`sampler.prefetch_weights`): wait until
    `version` is fetched (or already served), so the next call serves it, as call-by-call checks
    expect. A no-op when the follower fetches inline."""
    if follower.prefetch is not None:
        wait_for(lambda: follower.version >= version or (follower.prefetch.ready_version() or 0) >= version,
                 f"v{version} prefetched", 60)


def run_sampler_checks(r, cfg, model_dir: Path, tmp: Path, backend=None, tol: float = 1e-3) -> None:
    metrics, reg = sampler_metrics()
    loop = build_loop(cfg, r, cfg.run_id, metrics, tmp / "local", backend=backend)
    try:
        probe = loop.renderer.ids(loop.task.train[0])
        greedy = SamplingSettings(n=1, temperature=0.0, max_new_tokens=NEW)
        before = loop.backend.generate([probe], greedy)[0][0].token_ids.tolist()
        loop.run(lambda: False, max_calls=2)
        loop.finisher.flush()
        batches = read_batches(r, cfg.run_id)
        assert len(batches) == 2 and {b.policy_version for b in batches} == {0}
        for b in batches:
            check_shapes(b, cfg.algo.filter_threshold)
        assert max_logprob_error(model_dir, batches[0], cfg) < tol

        v1_dir = publish_perturbed(r, cfg, model_dir, version=1)
        wait_prefetched(loop.follower, 1)
        loop.run(lambda: False, max_calls=3)
        loop.finisher.flush()
        newest = read_batches(r, cfg.run_id)[-1]
        assert newest.policy_version == 1 and loop.follower.version == 1
        check_shapes(newest, cfg.algo.filter_threshold)
        assert max_logprob_error(v1_dir, newest, cfg) < tol  # the new policy, not the old one, sampled it
        after = loop.backend.generate([probe], greedy)[0][0].token_ids.tolist()
        assert after != before
        assert reg.get_sample_value("dashrl_policy_version") == 1
        assert reg.get_sample_value("dashrl_weight_sync_seconds_count") == 1
        assert reg.get_sample_value("dashrl_sampler_batches_total") == 3
        evals = [json.loads(line) for line in (run_dir(cfg) / "eval.jsonl").read_text().splitlines()]
        assert [e["version"] for e in evals] == [0, 1] and all(e["num_problems"] == 4 for e in evals)
        report = loop.report()
        assert report.policy_version == 1 and 0 < report.kept_fraction <= 1 and report.tokens_per_s > 0
        assert report.samples == 3 * M * G and report.batches == 3 and 0 < report.samples_kept <= report.samples
    finally:
        loop.close()
