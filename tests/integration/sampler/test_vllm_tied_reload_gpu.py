"""On a GPU, a tied-embedding model is reloaded in place (no engine rebuild) and the reloaded
engine serves what a fresh engine on the new weights serves. On CUDA the tied output layer reads
the shared weight directly, so the re-pack step is a no-op there; this test shows nothing else
goes stale. Skipped without CUDA (the CPU counterpart is test_vllm_qwen2.py)."""

import numpy as np
import pytest

from tests.helpers.tiny_qwen2 import build_tiny_qwen2

pytestmark = [pytest.mark.gpu, pytest.mark.slow]  # gpu: skipped without CUDA (tests/conftest.py)
vllm = pytest.importorskip("vllm")


def test_tied_reload_on_gpu_equals_a_fresh_engine(tmp_path):
    from services.sampler.backends import SamplingSettings
    from services.sampler.backends.vllm_backend import VllmBackend

    v0, v1 = build_tiny_qwen2(tmp_path / "v0"), build_tiny_qwen2(tmp_path / "v1", seed=1)
    prompts = [[1, 20, 21, 22, 99], [1, 30, 31, 99]]
    greedy = SamplingSettings(n=1, temperature=0.0, max_new_tokens=16)
    args = dict(dtype="float32", seed=0, max_model_len=256, gpu_memory_utilization=0.2)
    backend = VllmBackend(v0, **args)
    try:
        first = backend.llm
        before = backend.generate(prompts, greedy)
        backend.load_weights(v1)
        assert backend.llm is first  # in place
        reloaded = backend.generate(prompts, greedy)
    finally:
        backend.close()
    fresh = VllmBackend(v1, **args)
    try:
        started = fresh.generate(prompts, greedy)
    finally:
        fresh.close()
    assert any(not np.allclose(b[0].logprobs[:1], r[0].logprobs[:1], atol=1e-3) for b, r in zip(before, reloaded))
    for r, f in zip(reloaded, started):
        assert r[0].token_ids.tolist() == f[0].token_ids.tolist()
        np.testing.assert_allclose(r[0].logprobs, f[0].logprobs, rtol=0, atol=1e-5)
