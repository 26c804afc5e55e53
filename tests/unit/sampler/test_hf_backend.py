"""The transformers backend on a tiny model: shapes, finish reasons, log-probs, in-place swap."""

import numpy as np
import pytest
import torch
from transformers import AutoModelForCausalLM

from services.sampler.backends import IncompatibleWeights, SamplingSettings
from services.sampler.backends.hf_backend import HFBackend
from shared.protocol import FinishReason
from tests.helpers.tiny_model import build_tiny_model


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return build_tiny_model(tmp_path_factory.mktemp("hf") / "model")


def test_generate_groups_finish_reasons_and_logprobs(tiny):
    backend = HFBackend(tiny, dtype="float32")
    prompts = [[5, 6, 7], [8, 9, 10, 11, 12]]  # different lengths: left padding must not leak
    out = backend.generate(prompts, SamplingSettings(n=3, temperature=1.0, max_new_tokens=10, seed=1))
    assert [len(g) for g in out] == [3, 3]
    model = AutoModelForCausalLM.from_pretrained(str(tiny), dtype=torch.float32)
    for prompt, group in zip(prompts, out):
        for c in group:
            assert c.token_ids.dtype == np.int32 and c.logprobs.shape == c.token_ids.shape
            if c.finish_reason == FinishReason.STOP:
                assert c.token_ids[-1] in backend.eos_ids and not set(c.token_ids[:-1].tolist()) & backend.eos_ids
            else:
                assert len(c.token_ids) == 10
            ids = torch.tensor([prompt + c.token_ids.tolist()])
            with torch.no_grad():
                logp = torch.log_softmax(model(ids).logits[0], -1)[len(prompt) - 1 : -1]
            ref = logp.gather(-1, ids[0, len(prompt):, None])[:, 0].numpy()
            np.testing.assert_allclose(c.logprobs, ref, atol=1e-4)
    again = backend.generate(prompts, SamplingSettings(n=3, temperature=1.0, max_new_tokens=10, seed=1))
    assert [c.token_ids.tolist() for g in again for c in g] == [c.token_ids.tolist() for g in out for c in g]


def test_swap_in_place_and_refuse_misfit(tiny, tmp_path):
    backend = HFBackend(tiny, dtype="float32")
    greedy = SamplingSettings(n=1, temperature=0.0, max_new_tokens=8)
    before = backend.generate([[5, 6, 7]], greedy)[0][0].token_ids.tolist()
    with pytest.raises(IncompatibleWeights):
        backend.load_weights(build_tiny_model(tmp_path / "wider", hidden_size=96, num_heads=3))
    assert backend.generate([[5, 6, 7]], greedy)[0][0].token_ids.tolist() == before  # untouched
    other = build_tiny_model(tmp_path / "other", seed=9)
    backend.load_weights(other)
    fresh = HFBackend(other, dtype="float32")
    assert backend.generate([[5, 6, 7]], greedy)[0][0].token_ids.tolist() == \
        fresh.generate([[5, 6, 7]], greedy)[0][0].token_ids.tolist() != before


def test_stops_at_the_chat_turn_end_that_is_not_the_eos(tmp_path):
    from tests.helpers.stop_checks import check_stops_at_turn_end
    from tests.helpers.tiny_qwen2 import build_tiny_qwen2

    model_dir = build_tiny_qwen2(tmp_path / "qwen2")
    check_stops_at_turn_end(HFBackend(model_dir, dtype="float32"), model_dir)
