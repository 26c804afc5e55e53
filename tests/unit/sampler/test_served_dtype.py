"""Both generation backends serve `model.dtype` resolved the same way (shared.precision): the
vLLM engine gets it explicitly (never vLLM's own config-driven "auto"), the transformers
backend loads in it. The vLLM engine is a fake here (tests/integration/sampler/test_sampler_vllm.py
loads a bfloat16 version into a real one)."""

import pytest
import torch

from services.sampler.backends import vllm_backend
from services.sampler.backends.hf_backend import HFBackend
from services.sampler.backends.vllm_backend import VllmBackend
from tests.helpers.tiny_model import build_tiny_model


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return build_tiny_model(tmp_path_factory.mktemp("sd") / "model")


@pytest.mark.parametrize("dtype, gpu, want", [
    ("auto", False, "float32"), ("auto", True, "bfloat16"),
    ("bfloat16", False, "bfloat16"), ("float32", True, "float32"),
])
def test_vllm_engine_dtype_is_the_served_dtype(tiny, monkeypatch, dtype, gpu, want):
    for var, value in (("VLLM_CPU_NUM_OF_RESERVED_CPU", "0"), ("VLLM_CPU_KVCACHE_SPACE", "1"),
                       ("VLLM_ENABLE_V1_MULTIPROCESSING", "0")):
        monkeypatch.setenv(var, value)  # the backend sets these on CPU; restored after the test
    monkeypatch.setattr(vllm_backend, "_cuda_available", lambda: gpu)
    monkeypatch.setattr(VllmBackend, "_build", lambda self, path: None)
    backend = VllmBackend(tiny, dtype=dtype, max_model_len=64)
    assert backend.engine_args["dtype"] == want


@pytest.mark.parametrize("dtype, want", [("auto", torch.float32), ("bfloat16", torch.bfloat16)])
def test_transformers_backend_serves_the_served_dtype(tiny, dtype, want):
    backend = HFBackend(tiny, dtype=dtype)  # CPU here: auto is float32
    assert backend.dtype == want and {p.dtype for p in backend.model.parameters()} == {want}
