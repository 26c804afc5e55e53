"""Prompt sharing: the packing checked by hand, and on a real tiny Llama the same log-probs and
the same update as one row per sample (sdpa and eager attention)."""

import numpy as np
import pytest
import torch
from transformers import AutoModelForCausalLM

from services.learner.microbatches import TrainSample, collate
from services.learner.model import placement
from services.learner.prompt_sharing import (attention_weight, collate_shared, gather_predicting_logits, pack_shared,
                                             row_length, worth_sharing)
from services.learner.trainer import Trainer
from shared.algo.logprobs import token_logprobs
from shared.config import RunConfig
from tests.helpers.tiny_model import build_tiny_model


def _s(p, c, adv=1.0):
    return TrainSample("b", np.array(p, np.int32), np.array(c, np.int32), -np.arange(1, len(c) + 1, dtype=np.float32) / 10,
                       adv)


def test_pack_groups_by_prompt_under_cap_and_budget():
    samples = [_s([1, 2, 3], [4, 5]), _s([9], [8]), _s([1, 2, 3], [6]), _s([1, 2, 3], [7, 7, 7]), _s([9], [5, 5])]
    # one micro-batch: rows [0, 2, 3] (3 + 2 + 1 + 3 = 9 tokens) and [1, 4] (1 + 1 + 2 = 4)
    assert pack_shared(samples, max_tokens=100, max_samples=8) == [[[0, 2, 3], [1, 4]]]
    assert row_length(samples, [0, 2, 3]) == 9
    # the sample cap splits the prompt's group into rows; every sample lands exactly once
    capped = pack_shared(samples, max_tokens=100, max_samples=2)
    assert sorted(i for mb in capped for row in mb for i in row) == list(range(5))
    assert all(sum(len(r) for r in mb) <= 2 for mb in capped)
    # the token budget: rows x longest row <= 8, a row that alone exceeds it stands alone
    tight = pack_shared(samples, max_tokens=8, max_samples=8)
    for mb in tight:
        assert len(mb) * max(row_length(samples, r) for r in mb) <= 8 or len(mb) == 1
    assert sorted(i for mb in tight for row in mb for i in row) == list(range(5))
    with pytest.raises(ValueError):
        pack_shared(samples, 0, 1)


def test_sharing_only_where_it_is_cheaper():
    class Cfg:  # the shapes of Qwen2.5-0.5B and of the CPU demo's model
        hidden_size, intermediate_size = 896, 4864
    qwen = attention_weight(Cfg)
    assert qwen == pytest.approx(4 / (8 * 896 + 6 * 4864))
    assert not worth_sharing(100, [600] * 4, qwen)  # long solutions: the shared row's attention costs more
    assert worth_sharing(100, [150] * 4, qwen)
    assert worth_sharing(9, [6] * 8, 4 / (8 * 128 + 6 * 512)) and not worth_sharing(9, [6], 0.0)
    # a group that is not worth it keeps one row per sample
    long = [_s([1, 2], [3] * 50), _s([1, 2], [4] * 50)]
    assert pack_shared(long, 10_000, 8, attention=1.0) == [[[0], [1]]]
    assert pack_shared(long, 10_000, 8, attention=0.0) == [[[0, 1]]]


def test_collate_shared_layout():
    samples = [_s([5, 6], [7, 8], 1.5), _s([5, 6], [9], -1.0), _s([4], [3], 0.5)]
    mb = collate_shared(samples, [[0, 1], [2]], pad_id=0)
    assert mb.input_ids.tolist() == [[5, 6, 7, 8, 9], [4, 3, 0, 0, 0]]
    assert mb.position_ids.tolist() == [[0, 1, 2, 3, 2], [0, 1, 2, 3, 4]]
    m = mb.attention_mask[0, 0].int().tolist()
    assert m[4] == [1, 1, 0, 0, 1]  # the second completion sees the prompt and itself, not the first
    assert m[3] == [1, 1, 1, 1, 0] and m[1] == [1, 1, 0, 0, 0]
    assert mb.attention_mask[1, 0, 3].int().tolist() == [0, 0, 0, 1, 0]  # padding sees itself only
    assert mb.sample_row.tolist() == [0, 0, 1]
    assert mb.predictor.tolist() == [[1, 2], [1, 0], [0, 0]]  # the prompt's last position predicts each first token
    assert mb.targets.tolist() == [[7, 8], [9, 0], [3, 0]]
    assert mb.loss_mask.tolist() == [[1, 1], [1, 0], [1, 0]]
    assert mb.advantages.tolist() == [1.5, -1.0, 0.5] and mb.num_tokens == 5 + 2


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return build_tiny_model(tmp_path_factory.mktemp("m") / "tiny")


def _group_samples(seed=0, groups=3, g=4):
    rng = np.random.default_rng(seed)
    out = []
    for k in range(groups):
        prompt = rng.integers(4, 100, int(rng.integers(2, 7))).astype(np.int32)
        for _ in range(g):
            c = int(rng.integers(1, 6))
            out.append(TrainSample(f"b{k}", prompt, rng.integers(4, 100, c).astype(np.int32),
                                   (-rng.random(c) * 3).astype(np.float32), float(rng.normal())))
    return out


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_shared_logprobs_equal_one_row_per_sample(model_dir, attn):
    model = AutoModelForCausalLM.from_pretrained(model_dir, attn_implementation=attn).eval()
    samples = _group_samples()
    plain = collate(samples)
    want = token_logprobs(model(input_ids=plain.input_ids, attention_mask=plain.attention_mask).logits[:, :-1],
                          plain.targets)  # (S, L-1), completion tokens where loss_mask is 1
    [rows] = pack_shared(samples, max_tokens=10_000, max_samples=100)
    mb = collate_shared(samples, rows, float_mask=torch.float32 if attn == "eager" else None)
    logits = model(input_ids=mb.input_ids, attention_mask=mb.attention_mask, position_ids=mb.position_ids).logits
    got = token_logprobs(gather_predicting_logits(logits, mb), mb.targets)  # (S, T)
    order = [i for r in rows for i in r]
    for k, i in enumerate(order):
        ref = want[i][plain.loss_mask[i] > 0]
        assert torch.allclose(got[k][mb.loss_mask[k] > 0], ref, atol=1e-5)
    assert mb.num_tokens < plain.num_tokens  # the prompts were run once per row


def _trainer(model_dir, share, **learner):
    cfg = RunConfig.model_validate({"model": {"path": str(model_dir)},
                                    "learner": {"lr": 1e-2, "share_prompts": share, **learner}})
    return Trainer(AutoModelForCausalLM.from_pretrained(model_dir).train(), cfg, placement(cfg.model, cfg.learner))


def test_shared_update_equals_unshared(model_dir):
    shared = _trainer(model_dir, True, train_batch_size=12, micro_batch_size=4, micro_batch_tokens=64)
    plain = _trainer(model_dir, False, train_batch_size=12, micro_batch_size=4, micro_batch_tokens=64)
    assert shared.share_prompts and not plain.share_prompts
    a, b = shared.train_step(_group_samples(), step=1), plain.train_step(_group_samples(), step=1)
    assert a.loss == pytest.approx(b.loss, abs=1e-6) and a.grad_norm == pytest.approx(b.grad_norm, rel=1e-4)
    assert a.tokens == b.tokens == b.tokens_processed and a.tokens_processed < b.tokens
    sa, sb = shared.model.state_dict(), plain.model.state_dict()
    assert max((sa[k] - sb[k]).abs().max().item() for k in sa) < 1e-5
