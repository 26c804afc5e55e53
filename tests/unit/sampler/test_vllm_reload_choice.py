"""How the vLLM backend loads a new version, decided without an engine (a fake stands in for
`vllm.LLM`; the real engine is exercised by tests/integration/sampler/test_sampler_vllm.py and
test_vllm_qwen2.py): every model reloads in place and drops the prefix cache, never a new
engine; tied models also re-pack their output layer (stale on vLLM CPU after a reload)."""

import pytest

from services.sampler.backends import IncompatibleWeights
from services.sampler.backends.base import tensor_shapes
from services.sampler.backends.vllm_backend import VllmBackend
from tests.helpers.tiny_model import build_tiny_model


class FakeLLM:
    def __init__(self, path):
        self.path, self.calls, self.closed = str(path), [], False
        self.llm_engine = self
        self.engine_core = self

    def collective_rpc(self, method, kwargs=None):
        self.calls.append((method, kwargs))

    def reset_prefix_cache(self):
        self.calls.append(("reset_prefix_cache", None))

    def shutdown(self):
        self.closed = True


def fake_backend(model_dir, monkeypatch) -> VllmBackend:
    monkeypatch.setattr(VllmBackend, "_build", lambda self, path: FakeLLM(path))
    b = VllmBackend.__new__(VllmBackend)
    b.engine_args, b.shapes, b.llm = {}, tensor_shapes(model_dir), FakeLLM(model_dir)
    return b


@pytest.mark.parametrize("tied", [False, True])
def test_reload_in_place_never_rebuilds(tmp_path, monkeypatch, tied):
    start = build_tiny_model(tmp_path / "v0", tie_word_embeddings=tied)
    new = build_tiny_model(tmp_path / "v1", seed=1, tie_word_embeddings=tied)
    b = fake_backend(start, monkeypatch)
    first = b.llm
    b.load_weights(new)
    assert b.llm is first and not first.closed
    repack = [("repack_output_layers", None)] if tied else []
    assert first.calls == [("reload_weights", {"weights_path": str(new)}), *repack, ("reset_prefix_cache", None)]


def test_the_worker_extension_resolves_by_its_dotted_name():
    # vLLM imports `worker_extension_cls` by name inside the worker; a stale name fails at startup.
    import importlib

    from services.sampler.backends.vllm_worker import QUALNAME

    module, _, name = QUALNAME.rpartition(".")
    assert callable(getattr(getattr(importlib.import_module(module), name), "repack_output_layers"))


def test_misfit_refused_before_the_engine_is_touched(tmp_path, monkeypatch):
    b = fake_backend(build_tiny_model(tmp_path / "v0"), monkeypatch)
    first = b.llm
    with pytest.raises(IncompatibleWeights):
        b.load_weights(build_tiny_model(tmp_path / "wide", hidden_size=96, num_heads=3))
    assert b.llm is first and first.calls == [] and not first.closed


@pytest.mark.parametrize("push", [False, True])
def test_the_push_keeps_a_gpu_engine_in_process(tmp_path, monkeypatch, push):
    """On a GPU box vLLM's engine runs in its own process, where pushed tensors cannot reach it;
    with `weights.transport: broadcast` the backend keeps it in the sampler's process, so the
    sampler can take a seat and load pushed versions (and swap between engine steps)."""
    from services.sampler.backends import make_backend, vllm_backend
    from shared.config import RunConfig

    monkeypatch.setattr(vllm_backend, "_cuda_available", lambda: True)
    monkeypatch.setenv("VLLM_ENABLE_V1_MULTIPROCESSING", "unset")  # restored after the test...
    monkeypatch.delenv("VLLM_ENABLE_V1_MULTIPROCESSING")  # ...which starts without it
    monkeypatch.setattr(VllmBackend, "_build", lambda self, path: FakeLLM(path))
    model = build_tiny_model(tmp_path / "m")
    transport = {"kind": "broadcast", "port": 29600} if push else {"kind": "store"}
    cfg = RunConfig.model_validate({"model": {"path": str(model)}, "weights": {"transport": transport}})
    backend = make_backend(cfg)
    assert backend.loads_tensors is push and backend.swaps_mid_call is push
