"""Policy loss: hand-computed values and gradients, and micro-batch accumulation == full batch."""

import math

import pytest
import torch

from shared.algo.logprobs import token_logprobs
from shared.algo.loss import BatchTotals, aggregate, policy_loss

D = torch.float64


def t(rows):
    return torch.tensor(rows, dtype=D)


def test_aggregations_by_hand():
    # two sequences of 2 and 1 tokens; ratio 1; A = (+1, -1) -> token losses (-1, -1) and (+1)
    logp = t([[-1.0, -2.0], [-0.5, 0.0]])
    mask = t([[1, 1], [1, 0]])
    adv = t([1.0, -1.0])
    tot = BatchTotals.of([2, 1])
    assert tot == BatchTotals(sequences=2, tokens=3, max_len=2)
    out = {a: policy_loss(logp, logp, adv, mask, totals=tot, aggregation=a).loss.item() for a in ("token", "sequence", "dash")}
    assert out["token"] == pytest.approx(-1 / 3)
    assert out["sequence"] == pytest.approx(0.0)  # (-2/2 + 1/1) / 2
    assert out["dash"] == pytest.approx(-1 / 4)  # (-1 -1 +1) / (2 x 2)
    dash4 = policy_loss(logp, logp, adv, mask, totals=BatchTotals.of([2, 1], max_len_norm=4), aggregation="dash")
    assert dash4.loss.item() == pytest.approx(-1 / 8)
    assert dash4.tokens.item() == 3 and dash4.ratio_sum.item() == pytest.approx(3.0)


def test_plain_policy_gradient_at_ratio_one():
    logp = t([[-1.0, -2.0]]).requires_grad_()
    out = policy_loss(logp, logp.detach(), t([2.0]), t([[1, 1]]), totals=BatchTotals.of([2]), aggregation="token")
    out.loss.backward()
    # d/dlogp of -A * exp(logp - old) / 2 tokens at ratio 1 = -A / 2
    assert logp.grad[0].tolist() == pytest.approx([-1.0, -1.0])
    assert out.clipped_tokens.item() == 0


@pytest.mark.parametrize(
    "ratio, adv, is_cap, loss, grad_is_zero",
    [
        (1.5, 1.0, None, -1.2, True),  # A > 0 above 1 + eps: clipped, flat
        (1.5, -1.0, None, 1.5, False),  # A < 0 above the range: PPO keeps the unclipped term
        (1.5, -1.0, 1.3, 1.3, False),  # ... which the IS cap truncates at 1.3 (gradient weight 1.3)
        (0.5, 1.0, None, -0.5, False),  # A > 0 below 1 - eps: unclipped (pessimistic) term
        (0.5, -1.0, None, 0.8, True),  # A < 0 below 1 - eps: clipped at 0.8, flat
        (1.1, 1.0, None, -1.1, False),  # inside the range: no clipping
    ],
)
def test_clipping_and_is_cap(ratio, adv, is_cap, loss, grad_is_zero):
    old = t([[-1.0]])
    logp = (old + math.log(ratio)).requires_grad_()
    out = policy_loss(logp, old, t([adv]), t([[1]]), totals=BatchTotals.of([1]), aggregation="token", is_cap=is_cap)
    out.loss.backward()
    assert out.loss.item() == pytest.approx(loss)
    assert (logp.grad.abs().item() == 0.0) == grad_is_zero
    assert out.clipped_tokens.item() == (1.0 if grad_is_zero else 0.0)
    if not grad_is_zero:  # d(-A * ratio)/dlogp = -A * ratio, the ratio truncated at the cap
        assert logp.grad.item() == pytest.approx(-adv * min(ratio, is_cap or ratio))
    assert out.truncated_tokens.item() == (1.0 if is_cap is not None and ratio > is_cap else 0.0)


def test_token_level_tis_keeps_a_truncated_gradient():
    # ratios (3, 0.5) at A = -1, cap 2: weights (2, 0.5); PPO max() takes -A*w = 2 for the first
    # (its clipped branch is 1.2), and the clipped 0.8 for the second (flat)
    old = t([[-1.0, -1.0]])
    logp = (old + t([[math.log(3.0), math.log(0.5)]])).requires_grad_()
    out = policy_loss(logp, old, t([-1.0]), t([[1, 1]]), totals=BatchTotals.of([2]), aggregation="token", is_cap=2.0)
    out.loss.backward()
    assert out.loss.item() == pytest.approx((2.0 + 0.8) / 2)
    assert logp.grad[0].tolist() == pytest.approx([2.0 / 2, 0.0])  # -A * cap / tokens; flat
    assert out.truncated_tokens.item() == 1 and out.clipped_tokens.item() == 1


def test_sequence_level_tis_by_hand():
    # sequence 0: ratios (4, 1) -> geometric mean 2 > cap 1.5: both tokens scaled by 1.5 / 2;
    # sequence 1: ratios (0.5, 2, pad) -> geometric mean 1: untouched. A = (-1, -1), eps 10 (no clip)
    old = t([[-2.0, -2.0], [-1.0, -1.0]])
    logp = (old + t([[math.log(4.0), 0.0], [math.log(0.5), math.log(2.0)]])).requires_grad_()
    mask = t([[1, 1], [1, 1]])
    kw = dict(totals=BatchTotals.of([2, 2]), aggregation="token", clip_eps_low=10.0, clip_eps_high=10.0)
    out = policy_loss(logp, old, t([-1.0, -1.0]), mask, is_cap=1.5, is_level="sequence", **kw)
    out.loss.backward()
    w0 = [4.0 * 0.75, 1.0 * 0.75]
    assert out.loss.item() == pytest.approx((sum(w0) + 0.5 + 2.0) / 4)
    assert logp.grad.flatten().tolist() == pytest.approx([w / 4 for w in w0] + [0.5 / 4, 2.0 / 4])
    assert out.truncated_tokens.item() == 2
    # token level on the same batch truncates only the ratios above 1.5: 4 and 2
    tok = policy_loss(logp.detach(), old, t([-1.0, -1.0]), mask, is_cap=1.5, **kw)
    assert tok.loss.item() == pytest.approx((1.5 + 1.0 + 0.5 + 1.5) / 4) and tok.truncated_tokens.item() == 2


def test_sequence_level_tis_ignores_padding():
    old = t([[-1.0, 0.0]])
    logp = old + t([[math.log(3.0), 40.0]])  # the pad's "ratio" e^40 must not count
    out = policy_loss(logp, old, t([-1.0]), t([[1, 0]]), totals=BatchTotals.of([1]), aggregation="token",
                      is_cap=2.0, is_level="sequence", clip_eps_low=10.0, clip_eps_high=10.0)
    assert out.loss.item() == pytest.approx(2.0) and out.truncated_tokens.item() == 1


def test_asymmetric_clip():
    old = t([[0.0, 0.0]]).log_softmax(-1)
    logp = old + t([[math.log(1.25), math.log(0.9)]])
    out = policy_loss(logp, old, t([1.0]), t([[1, 1]]), totals=BatchTotals.of([2]), aggregation="token",
                      clip_eps_low=0.05, clip_eps_high=0.3)
    # 1.25 < 1.3: unclipped; 0.9 < 0.95: A > 0 takes min -> -0.9 (pessimistic, unclipped)
    assert out.loss.item() == pytest.approx((-1.25 - 0.9) / 2)


def test_k3_kl():
    logp = t([[-2.0]])
    ref = logp + math.log(2.0)  # exp(ref - logp) = 2 -> k3 = 2 - ln 2 - 1
    k3 = 1 - math.log(2.0)
    out = policy_loss(logp, logp, t([0.0]), t([[1]]), totals=BatchTotals.of([1]), aggregation="token",
                      ref_logprobs=ref, kl_beta=0.1)
    assert out.kl.item() == pytest.approx(k3)
    assert out.loss.item() == pytest.approx(0.1 * k3)
    with pytest.raises(ValueError):
        policy_loss(logp, logp, t([0.0]), t([[1]]), totals=BatchTotals.of([1]), kl_beta=0.1)


def test_padding_is_ignored_and_totals_are_checked():
    logp = t([[-1.0, -50.0]])
    out = policy_loss(logp, t([[-1.0, 3.0]]), t([1.0]), t([[1, 0]]), totals=BatchTotals.of([1]), aggregation="token")
    assert out.loss.item() == pytest.approx(-1.0) and out.tokens.item() == 1
    with pytest.raises(ValueError):
        BatchTotals.of([3, 5], max_len_norm=4)
    with pytest.raises(ValueError):
        BatchTotals.of([])
    with pytest.raises(ValueError):
        aggregate(logp, t([[1, 0]]), "mean", BatchTotals.of([1]))


def test_token_logprobs_matches_log_softmax():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 3, 7, generator=g, dtype=D)
    ids = torch.randint(0, 7, (2, 3), generator=g)
    ref = torch.log_softmax(logits, -1).gather(-1, ids.unsqueeze(-1)).squeeze(-1)
    assert torch.allclose(token_logprobs(logits, ids), ref, atol=1e-12)


def _toy_batch(n=6, vocab=11, dim=5, seed=1):
    g = torch.Generator().manual_seed(seed)
    lens = [int(x) for x in torch.randint(1, 9, (n,), generator=g)]
    feats = [torch.randn(L, dim, generator=g, dtype=D) for L in lens]
    ids = [torch.randint(0, vocab, (L,), generator=g) for L in lens]
    # the sampler's log-probs: near the learner's, so some ratios fall outside the clip range
    old = [torch.randn(L, generator=g, dtype=D) * 0.4 for L in lens]
    ref = [torch.randn(L, generator=g, dtype=D) * 0.3 for L in lens]
    adv = torch.randn(n, generator=g, dtype=D)
    weight = torch.randn(dim, vocab, generator=g, dtype=D)
    return lens, feats, ids, old, ref, adv, weight


def _loss_of(rows, batch, weight, totals, aggregation, is_level="token"):
    lens, feats, ids, old, ref, adv, _ = batch
    T = max(lens[i] for i in rows)  # each micro-batch is padded to its own length

    def pad(xs, fill=0.0, dtype=D):
        return torch.stack([torch.cat([xs[i].to(dtype), torch.full((T - lens[i],) + xs[i].shape[1:], fill, dtype=dtype)]) for i in rows])

    logits = pad(feats) @ weight  # (B, T, V)
    logp = token_logprobs(logits, pad(ids, 0, torch.long))
    newp = logp.detach()
    old_lp = newp + pad(old)
    mask = torch.stack([torch.arange(T) < lens[i] for i in rows]).to(D)
    return policy_loss(logp, old_lp, adv[rows], mask, totals=totals, aggregation=aggregation,
                       is_cap=1.2, is_level=is_level, ref_logprobs=newp + pad(ref), kl_beta=0.05)


@pytest.mark.parametrize("is_level", ["token", "sequence"])
@pytest.mark.parametrize("aggregation", ["token", "sequence", "dash"])
@pytest.mark.parametrize("split", [[[0, 1, 2, 3, 4, 5]], [[0, 1], [2, 3, 4], [5]], [[5], [0], [3, 1], [4, 2]]])
def test_micro_batch_accumulation_equals_full_batch(aggregation, split, is_level):
    batch = _toy_batch()
    lens, weight = batch[0], batch[-1]
    totals = BatchTotals.of(lens, max_len_norm=10)

    full_w = weight.clone().requires_grad_()
    full = _loss_of(list(range(len(lens))), batch, full_w, totals, aggregation, is_level)
    full.loss.backward()

    acc_w = weight.clone().requires_grad_()
    loss_sum, clipped, truncated = 0.0, 0.0, 0.0
    for rows in split:
        out = _loss_of(rows, batch, acc_w, totals, aggregation, is_level)
        out.loss.backward()
        loss_sum += out.loss.item()
        clipped += out.clipped_tokens.item()
        truncated += out.truncated_tokens.item()
    assert full.clipped_tokens.item() > 0  # the case exercises clipping, not just ratio 1
    assert 0 < full.truncated_tokens.item() == truncated  # ... and the IS cap
    assert abs(loss_sum - full.loss.item()) < 1e-10
    assert clipped == full.clipped_tokens.item()
    assert torch.max(torch.abs(acc_w.grad - full_w.grad)).item() < 1e-10
    assert full_w.grad.abs().max().item() > 1e-3  # a real gradient, not two zeros agreeing


def test_micro_batch_normalisation_would_break_the_equality():
    # the control: dividing by the micro-batch's own token count is NOT the full-batch gradient
    batch = _toy_batch()
    lens, weight = batch[0], batch[-1]
    full_w = weight.clone().requires_grad_()
    _loss_of(list(range(6)), batch, full_w, BatchTotals.of(lens), "token").loss.backward()
    acc_w = weight.clone().requires_grad_()
    for rows in ([0, 1], [2, 3, 4, 5]):
        _loss_of(rows, batch, acc_w, BatchTotals.of([lens[i] for i in rows]), "token").loss.backward()
    assert torch.max(torch.abs(acc_w.grad - full_w.grad)).item() > 1e-4
