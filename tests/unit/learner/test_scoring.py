"""Completion-only, chunked log-probs (`scoring`) against the full-logits path on a real tiny model:
values and every parameter's gradient, plain and prompt-sharing layouts, tied and untied output
layer, temperature + top-k, float32 (1e-5) and bf16 autocast on CPU (values and the plain layout's
decoder gradients to 1e-5; sums the two paths round to bfloat16 at different points to bfloat16
resolution, see the test); the fallback for models
whose logits are not lm_head(hidden)."""

import numpy as np
import pytest
import torch
from transformers import AutoModelForCausalLM

from services.learner.microbatches import TrainSample, collate
from services.learner.model import placement
from services.learner.prompt_sharing import collate_shared, pack_shared
from services.learner.scoring import OutputHead
from services.learner.trainer import Trainer
from shared.config import RunConfig
from tests.helpers.tiny_model import build_tiny_model


@pytest.fixture(scope="module", params=[False, True], ids=["untied", "tied"])
def model_dir(request, tmp_path_factory):
    return build_tiny_model(tmp_path_factory.mktemp("m") / "tiny", tie_word_embeddings=request.param)


def _samples(seed=0, groups=3, g=3):
    rng = np.random.default_rng(seed)
    out = []
    for k in range(groups):
        prompt = rng.integers(4, 100, int(rng.integers(2, 7))).astype(np.int32)
        for _ in range(g):
            c = int(rng.integers(1, 7))
            out.append(TrainSample(f"b{k}", prompt, rng.integers(4, 100, c).astype(np.int32),
                                   (-rng.random(c) * 3).astype(np.float32), float(rng.normal())))
    return out


def _trainer(model_dir, chunk, precision):
    cfg = RunConfig.model_validate({
        "model": {"path": str(model_dir)},
        "learner": {"logits_chunk_tokens": chunk, "precision": precision},
        "sampler": {"temperature": 0.8, "top_k": 40}})
    model = AutoModelForCausalLM.from_pretrained(model_dir, attn_implementation="sdpa").train()
    return Trainer(model, cfg, placement(cfg.model, cfg.learner))


def _logp_and_grads(tr, mb):
    tr.model.zero_grad(set_to_none=True)
    logp = tr._logprobs(tr.model, mb)
    kept = torch.isfinite(logp) & (mb.loss_mask > 0)
    weights = torch.linspace(-1.0, 2.0, kept.numel()).reshape(kept.shape)  # positions weigh differently
    (torch.where(kept, logp, 0.0) * weights).sum().backward()
    return torch.where(kept, logp, 0.0).detach(), {n: p.grad.clone() for n, p in tr.model.named_parameters()}


@pytest.mark.parametrize("precision", ["fp32", "bf16-autocast"])
@pytest.mark.parametrize("layout", ["plain", "shared"])
def test_chunked_completion_logprobs_equal_full_logits(model_dir, layout, precision):
    samples = _samples()
    if layout == "plain":
        mb = collate(samples)
    else:
        [rows] = pack_shared(samples, max_tokens=10_000, max_samples=100)
        mb = collate_shared(samples, rows)
        assert any(len(r) > 1 for r in rows)
    lean, full = _trainer(model_dir, 4, precision), _trainer(model_dir, 0, precision)
    assert lean.head is not None and full.head is None
    got, got_g = _logp_and_grads(lean, mb)
    want, want_g = _logp_and_grads(full, mb)
    assert got.shape == want.shape == mb.loss_mask.shape and int((mb.loss_mask > 0).sum()) > 4  # > one chunk
    torch.testing.assert_close(got, want, atol=1e-5, rtol=0)
    out_w = "lm_head.weight" if "lm_head.weight" in got_g else "model.embed_tokens.weight"
    for name in got_g:
        a, b = got_g[name], want_g[name]
        if precision == "bf16-autocast" and (layout == "shared" or name in (out_w, "model.embed_tokens.weight")):
            # sums rounded to bfloat16 at different points: the output layer's over positions (once
            # in full, once per chunk in lean); shared, a prompt's last position predicts every
            # completion's first token: summed in bf16 logit space (full) or hidden space (lean)
            assert (a - b).abs().max() <= 2**-6 * b.abs().max(), name  # two bfloat16 ulps
        else:
            torch.testing.assert_close(a, b, atol=1e-5, rtol=0, msg=name)
    assert want_g[out_w].abs().max() > 1e-3  # the output layer really got a gradient


def test_models_with_transformed_logits_keep_the_full_path(model_dir):
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    assert OutputHead.of(model) is not None
    model.config.final_logit_softcapping = 30.0  # Gemma-2 style: logits are not lm_head(hidden)
    assert OutputHead.of(model) is None
    assert OutputHead.of(torch.nn.Linear(2, 2)) is None
