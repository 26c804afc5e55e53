"""Sequence packing: the row packing and layout checked by hand; on a real tiny Llama and a tiny
Qwen2 (GQA, biases, tied embeddings) the same log-probs and the same gradient as the padded
layout, in float32, with and without prompt sharing and chunked log-probs."""

import numpy as np
import pytest
import torch
from transformers import AutoModelForCausalLM

from services.learner.microbatches import TrainSample
from services.learner.model import placement
from services.learner.packing import (PACKED_ATTENTION, collate_packed, pack_rows, packed_micro_batches,
                                      packing_attention)
from services.learner.trainer import Trainer
from shared.algo.loss import BatchTotals
from shared.config import RunConfig
from tests.helpers.tiny_model import build_tiny_model
from tests.helpers.tiny_qwen2 import build_tiny_qwen2


def _s(p, c, adv=1.0):
    return TrainSample("b", np.array(p, np.int32), np.array(c, np.int32), -np.arange(1, len(c) + 1, dtype=np.float32) / 10,
                       adv)


def test_pack_rows_first_fit_decreasing_under_budget_and_cap():
    lengths = [5, 9, 3, 4, 12, 1]
    rows = pack_rows(lengths, max_tokens=10, max_samples=8)
    # longest first: 12 alone (over budget), 9 + 1, 5 + 4, 3
    assert rows == [[4], [1, 5], [0, 3], [2]]
    assert sorted(i for r in rows for i in r) == list(range(6))
    assert all(sum(lengths[i] for i in r) <= 10 for r in rows if len(r) > 1)
    # the sample cap, with items holding several samples (shared rows)
    capped = pack_rows([2, 2, 2, 2], max_tokens=100, max_samples=3, counts=[2, 1, 1, 2])
    assert capped == [[0, 1], [2, 3]]
    with pytest.raises(ValueError):
        pack_rows([1], 0, 1)


def test_collate_packed_layout():
    samples = [_s([5, 6], [7, 8], 1.5), _s([4], [3], 0.5), _s([5, 6], [9], -1.0)]
    mb = collate_packed(samples, [[0], [1]])
    assert mb.input_ids.tolist() == [[5, 6, 7, 8, 4, 3]]  # no padding
    assert mb.position_ids.tolist() == [[0, 1, 2, 3, 0, 1]]  # restarting per sample
    assert mb.cu_seq_lens.tolist() == [0, 4, 6] and mb.max_length == 4 and mb.num_tokens == 6
    assert mb.predictor.tolist() == [[1, 2], [4, 0]]  # position j predicts token j + 1 of its own sample
    assert mb.targets.tolist() == [[7, 8], [3, 0]] and mb.loss_mask.tolist() == [[1, 1], [1, 0]]
    assert mb.segment_masks == [None, None] and "dashrl_segment_masks" not in mb.model_inputs()
    # a shared row as one segment: prompt once, then both completions, its own block mask
    shared = collate_packed(samples, [[1], [0, 2]])
    assert shared.input_ids.tolist() == [[4, 3, 5, 6, 7, 8, 9]]
    assert shared.position_ids.tolist() == [[0, 1, 0, 1, 2, 3, 2]]
    assert shared.cu_seq_lens.tolist() == [0, 2, 7] and shared.segment_masks[0] is None
    assert shared.segment_masks[1].int()[4].tolist() == [1, 1, 0, 0, 1]  # 9 sees the prompt, not 7 8
    assert shared.predictor.tolist() == [[0, 0], [3, 4], [3, 0]]  # each prompt's last position predicts each first token
    assert shared.advantages.tolist() == [0.5, 1.5, -1.0]
    assert len(shared.model_inputs()["dashrl_segment_masks"]) == 2


def _samples(seed=0, groups=3, g=4):
    """Groups sharing a prompt, lengths varied (so the padded layout pads)."""
    rng = np.random.default_rng(seed)
    out = []
    for k in range(groups):
        prompt = rng.integers(4, 90, int(rng.integers(2, 9))).astype(np.int32)
        for _ in range(g):
            c = int(rng.integers(1, 14))
            out.append(TrainSample(f"b{k}", prompt, rng.integers(4, 90, c).astype(np.int32),
                                   (-rng.random(c) * 3).astype(np.float32), float(rng.normal())))
    return out


@pytest.fixture(scope="module", params=["llama", "qwen2"])
def model_dir(request, tmp_path_factory):
    folder = tmp_path_factory.mktemp(request.param) / "tiny"
    return build_tiny_model(folder) if request.param == "llama" else build_tiny_qwen2(folder)


def _trainer(model_dir, attn="sdpa", **learner):
    cfg = RunConfig.model_validate({"model": {"path": str(model_dir)}, "sampler": {"temperature": 0.8},
                                    "learner": {"lr": 1e-2, "micro_batch_size": 5, "micro_batch_tokens": 40,
                                                "precision": "fp32", **learner}})
    model = AutoModelForCausalLM.from_pretrained(model_dir, attn_implementation=attn, dtype=torch.float32).train()
    return Trainer(model, cfg, placement(cfg.model, cfg.learner))


def _grads(tr, samples):
    """The update's accumulated gradient (before clipping) and the micro-batches' token count."""
    tr.model.zero_grad(set_to_none=True)
    lens = [len(s.completion_ids) for s in samples]
    totals = BatchTotals.of(lens, max_len_norm=max(tr.cfg.sampler.max_new_tokens, max(lens)))
    tokens = 0
    for mb in tr._micro_batches(samples):
        tr._forward_backward(mb, totals)
        tokens += mb.num_tokens
    return {n: p.grad.clone() for n, p in tr.model.named_parameters()}, tokens


@pytest.mark.parametrize("share", [False, True], ids=["per-sample", "shared"])
@pytest.mark.parametrize("chunk", [1024, 0], ids=["chunked", "full-logits"])
@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_packed_gradient_equals_padded(model_dir, attn, chunk, share):
    samples = _samples()
    padded = _trainer(model_dir, attn, packing=False, share_prompts=False, logits_chunk_tokens=chunk)
    packed = _trainer(model_dir, attn, packing=True, share_prompts=share, logits_chunk_tokens=chunk)
    assert packed.model.config._attn_implementation == PACKED_ATTENTION
    want, padded_tokens = _grads(padded, samples)
    got, packed_tokens = _grads(packed, samples)
    assert set(got) == set(want)
    scale = max(g.abs().max().item() for g in want.values())
    assert scale > 1e-5  # a real gradient, not zeros
    worst = max(((got[n] - want[n]).abs().max() / scale).item() for n in want)
    assert worst < 1e-5  # every parameter's gradient, relative to the gradient's largest entry
    real = sum(s.length for s in samples)
    assert packed_tokens <= real and (packed_tokens < real) == share  # sharing runs each prompt once per row
    assert padded_tokens == real  # num_tokens counts real tokens; the padded rows held more


def test_packed_step_equals_padded_step(model_dir):
    """The whole step: loss, grad norm and the updated weights."""
    a = _trainer(model_dir, packing=True, share_prompts=False)
    b = _trainer(model_dir, packing=False, share_prompts=False)
    sa, sb = a.train_step(_samples(1), step=1), b.train_step(_samples(1), step=1)
    assert sa.loss == pytest.approx(sb.loss, abs=1e-6) and sa.grad_norm == pytest.approx(sb.grad_norm, rel=1e-4)
    assert sa.tokens_processed == sb.tokens_processed == sa.tokens
    pa, pb = a.model.state_dict(), b.model.state_dict()
    assert max((pa[k] - pb[k]).abs().max().item() for k in pa) < 1e-5


def test_packed_rows_fill_the_budget_without_padding():
    samples = _samples(2, groups=6, g=4)
    units = [[i] for i in range(len(samples))]
    rows = packed_micro_batches(samples, units, max_tokens=40, max_samples=5)
    assert sorted(i for r in rows for seg in r for i in seg) == list(range(len(samples)))
    for r in rows:
        mb = collate_packed(samples, r)
        assert mb.input_ids.shape == (1, sum(samples[i].length for seg in r for i in seg)) and len(r) <= 5
        assert mb.num_tokens <= 40 or len(r) == 1


def test_packing_refuses_attention_it_cannot_mask(model_dir):
    model = AutoModelForCausalLM.from_pretrained(model_dir, attn_implementation="sdpa")
    assert packing_attention(model) == PACKED_ATTENTION == packing_attention(model)  # idempotent
    model.config._attn_implementation = "flex_attention"
    with pytest.raises(ValueError, match="learner.packing needs attention"):
        packing_attention(model)


def test_packed_with_kl_reference_and_gradient_checkpointing(model_dir):
    """The reference model is switched too (it scores the same packed rows), and activation
    checkpointing recomputes the packed attention in backward: still the padded gradient."""
    def trainer(packed):
        torch.manual_seed(0)
        cfg = RunConfig.model_validate({"model": {"path": str(model_dir)}, "algo": {"kl_beta": 0.1},
                                        "learner": {"lr": 1e-2, "micro_batch_size": 5, "micro_batch_tokens": 40,
                                                    "precision": "fp32", "packing": packed, "share_prompts": packed}})
        model = AutoModelForCausalLM.from_pretrained(model_dir, attn_implementation="sdpa").train()
        if packed:
            model.gradient_checkpointing_enable()
        ref = AutoModelForCausalLM.from_pretrained(model_dir, attn_implementation="sdpa").eval()
        with torch.no_grad():  # a reference that differs from the policy, so the KL term has a gradient
            for p in ref.parameters():
                p.add_(0.01 * torch.randn_like(p))
        return Trainer(model, cfg, placement(cfg.model, cfg.learner), ref_model=ref)

    padded, packed = trainer(False), trainer(True)
    assert packed.ref.config._attn_implementation == PACKED_ATTENTION and packed.model.is_gradient_checkpointing
    want, _ = _grads(padded, _samples())
    got, _ = _grads(packed, _samples())
    scale = max(g.abs().max().item() for g in want.values())
    assert max(((got[n] - want[n]).abs().max() / scale).item() for n in want) < 1e-5
