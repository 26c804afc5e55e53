"""Log-probs under the sampling distribution: temperature, top-k, top-p against hand computations;
the custom backward against autograd; nothing vocabulary-sized kept for backward but the logits."""

import math

import pytest
import torch

from shared.algo.logprobs import RAW, SamplingDistribution, processed_logprobs, token_logprobs

D = torch.float64


def every_token(logits, dist):
    """log-prob of each vocabulary entry as the target (one position per entry)."""
    x = torch.tensor(logits, dtype=D).expand(len(logits), -1)  # (V, V): row i scores token i
    return token_logprobs(x, torch.arange(len(logits)), dist).tolist()


def test_temperature_by_hand():
    # logits (2, 1, 0, -1) at T = 0.5 -> z = (4, 2, 0, -2); logp_0 = 4 - log(e^4 + e^2 + 1 + e^-2)
    got = every_token([2.0, 1.0, 0.0, -1.0], SamplingDistribution(temperature=0.5))
    norm = math.log(math.exp(4) + math.exp(2) + 1 + math.exp(-2))
    assert got == pytest.approx([4 - norm, 2 - norm, 0 - norm, -2 - norm], abs=1e-12)


def test_top_k_renormalises_over_the_kept_set():
    # T = 0.5, top-k 2: kept {0, 1}; logp_0 = -log(1 + e^-2), logp_1 = -log(1 + e^2)
    got = every_token([2.0, 1.0, 0.0, -1.0], SamplingDistribution(temperature=0.5, top_k=2))
    assert got[:2] == pytest.approx([-math.log1p(math.exp(-2)), -math.log1p(math.exp(2))], abs=1e-12)
    assert got[2] == got[3] == -math.inf


def test_top_k_keeps_ties_at_the_threshold():
    got = every_token([1.0, 1.0, 1.0, 0.0], SamplingDistribution(top_k=2))
    assert got[:3] == pytest.approx([-math.log(3)] * 3, abs=1e-12) and got[3] == -math.inf


def test_top_p_by_hand():
    # probs (0.5, 0.3, 0.15, 0.05); mass strictly above each: (0, 0.5, 0.8, 0.95)
    logits = [math.log(p) for p in (0.5, 0.3, 0.15, 0.05)]
    got = every_token(logits, SamplingDistribution(top_p=0.7))  # keeps {0, 1}: 0.5 / 0.8, 0.3 / 0.8
    assert got[:2] == pytest.approx([math.log(0.625), math.log(0.375)], abs=1e-12)
    assert got[2] == got[3] == -math.inf
    got = every_token(logits, SamplingDistribution(top_p=0.81))  # 0.8 < 0.81: token 2 kept too
    assert got[:3] == pytest.approx([math.log(p / 0.95) for p in (0.5, 0.3, 0.15)], abs=1e-12)


def test_top_p_applies_after_top_k():
    # top-k 3 first: probs (0.5, 0.3, 0.15) / 0.95; mass above token 2 = 0.8 / 0.95 = 0.842 > 0.81
    logits = [math.log(p) for p in (0.5, 0.3, 0.15, 0.05)]
    got = every_token(logits, SamplingDistribution(top_k=3, top_p=0.81))
    assert got[:2] == pytest.approx([math.log(0.625), math.log(0.375)], abs=1e-12)
    assert got[2] == got[3] == -math.inf


def test_greedy_means_the_raw_distribution():
    assert SamplingDistribution.of(0.0, 50, 0.9) == RAW
    assert SamplingDistribution.of(0.9, -1, 1.0) == SamplingDistribution(0.9, 0, 1.0)
    logits = [2.0, 1.0, 0.0]
    norm = math.log(sum(math.exp(v) for v in logits))
    assert every_token(logits, RAW) == pytest.approx([v - norm for v in logits], abs=1e-12)
    assert every_token(logits, SamplingDistribution(top_k=3)) == every_token(logits, RAW)  # k >= V: off


@pytest.mark.parametrize("dist", [RAW, SamplingDistribution(0.7), SamplingDistribution(0.9, 5),
                                  SamplingDistribution(0.8, 6, 0.7), SamplingDistribution(1.3, 0, 0.6)])
def test_values_and_gradient_match_the_reference(dist):
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 5, 11, generator=g, dtype=D)
    ids = torch.randint(0, 11, (3, 5), generator=g)
    weights = torch.randn(3, 5, generator=g, dtype=D)

    def loss(out):  # a weighted sum over the kept targets (-inf ones are where-ed away)
        return (torch.where(torch.isfinite(out), out, 0.0) * weights).sum()

    a = logits.clone().requires_grad_()
    out = token_logprobs(a, ids, dist)
    loss(out).backward()
    b = logits.clone().requires_grad_()
    ref = processed_logprobs(b, dist).gather(-1, ids.unsqueeze(-1)).squeeze(-1)
    loss(ref).backward()
    assert torch.equal(torch.isinf(out), torch.isinf(ref))
    assert dist.masks == bool(torch.isinf(out).any())  # the masked cases do exclude some targets
    finite = torch.isfinite(ref)
    assert torch.allclose(out[finite], ref[finite], atol=1e-12)
    assert torch.allclose(a.grad, b.grad, atol=1e-12)


def test_low_precision_logits_are_scored_in_float32_and_only_the_logits_are_kept():
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(4, 6, 50, generator=g).to(torch.bfloat16).requires_grad_()
    ids = torch.randint(0, 50, (4, 6), generator=g)
    saved = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
        out = token_logprobs(logits[:, :-1], ids[:, :-1], SamplingDistribution(0.9, 10, 0.95))
    assert out.dtype == torch.float32
    big = [t for t in saved if t.numel() >= 4 * 5 * 50]
    assert len(big) == 1 and big[0].dtype == torch.bfloat16  # the logits view itself, no fp32 copy
    assert sum(t.numel() for t in saved if t.numel() < 4 * 5 * 50) <= 3 * 4 * 5
    ref = processed_logprobs(logits.detach()[:, :-1].float(), SamplingDistribution(0.9, 10, 0.95))
    ref = ref.gather(-1, ids[:, :-1].unsqueeze(-1)).squeeze(-1)
    finite = torch.isfinite(ref)
    assert torch.allclose(out.detach()[finite], ref[finite], atol=1e-6)
