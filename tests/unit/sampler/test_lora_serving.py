"""The transformers backend serves LoRA versions by merging each adapter into the base weights:
after a swap its log-probs are those of the learner's merged model, versions never accumulate,
and an adapter that does not fit is refused with the old policy intact."""

import copy
import json
from pathlib import Path

import pytest
from transformers import AutoModelForCausalLM

from services.sampler.backends import IncompatibleWeights, SamplingSettings
from services.sampler.backends.hf_backend import HFBackend
from shared.weights import make_store
from tests.helpers.lora_models import completion_logprobs, lora_policy
from tests.helpers.tiny_model import build_tiny_model

PROMPT = [5, 6, 7, 8]
GREEDY = SamplingSettings(n=1, temperature=0.0, max_new_tokens=6)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return build_tiny_model(tmp_path_factory.mktemp("m") / "tiny")


def _served(backend):
    c = backend.generate([PROMPT], GREEDY)[0][0]
    return c.token_ids.tolist(), c.logprobs.tolist()


def test_adapter_versions_hot_swap_to_the_merged_policy(model_dir, tmp_path):
    store = make_store("fs", run_id="serve", root=tmp_path / "w", r=None)
    backend = HFBackend(model_dir, dtype="float32")
    base_ids, base_lps = _served(backend)
    for version, seed in ((1, 1), (2, 2)):
        policy, _ = lora_policy(model_dir, seed=seed)
        merged = copy.deepcopy(policy).merge_and_unload()  # what the learner's final/ holds
        path = store.fetch(store.publish(policy, None, version, version))
        backend.load_weights(path)
        ids, lps = _served(backend)
        assert lps == pytest.approx(completion_logprobs(merged, PROMPT, ids), abs=1e-5)
        assert lps != pytest.approx(completion_logprobs(AutoModelForCausalLM.from_pretrained(model_dir), PROMPT, ids),
                                    abs=1e-3)  # not the base policy any more
    # version 2 replaced version 1 on the base (no accumulation): equal to a fresh backend + v2 alone
    fresh = HFBackend(model_dir, dtype="float32")
    fresh.load_weights(store.folder(2))
    assert _served(fresh) == (ids, lps)
    # a whole-model version after adapters replaces the base too
    backend.load_weights(model_dir)
    assert _served(backend) == (base_ids, pytest.approx(base_lps, abs=1e-6))


def test_misfit_adapter_is_refused_and_the_old_policy_keeps_serving(model_dir, tmp_path):
    backend = HFBackend(model_dir, dtype="float32")
    policy, _ = lora_policy(model_dir)
    store = make_store("fs", run_id="misfit", root=tmp_path / "w", r=None)
    backend.load_weights(store.fetch(store.publish(policy, None, 1, 1)))
    before = _served(backend)
    wider = build_tiny_model(tmp_path / "wider", hidden_size=96, num_heads=3)
    other, _ = lora_policy(wider)
    bad = store.fetch(store.publish(other, None, 2, 2))
    with pytest.raises(IncompatibleWeights, match="do not fit"):
        backend.load_weights(bad)
    cfg_path = Path(bad) / "adapter_config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg_path.write_text(json.dumps({**cfg, "use_dora": True}))
    with pytest.raises(IncompatibleWeights, match="plain LoRA"):
        backend.load_weights(bad)
    assert _served(backend) == before
