"""Sampler/learner mismatch figures: hand-computed values, padding and excluded tokens ignored,
micro-batch sums adding up to the whole batch's figures."""

import math

import pytest
import torch

from shared.algo.mismatch import MismatchSums, mismatch_sums, summary

D = torch.float64


def test_figures_by_hand():
    # d = learner - sampler = (ln 2, -ln 4, 0) on real tokens; a pad (d = 9) and an excluded token
    old = torch.tensor([[-1.0, -1.0, -1.0], [-2.0, -1.0, 0.0]], dtype=D)
    new = old + torch.tensor([[math.log(2), -math.log(4), 0.0], [0.0, -math.inf, 9.0]], dtype=D)
    mask = torch.tensor([[1, 1, 1], [1, 1, 0]], dtype=D)
    s = summary(mismatch_sums(new, old, mask))
    d = [math.log(2), -math.log(4), 0.0, 0.0]
    r = [2.0, 0.25, 1.0, 1.0]
    assert s["logp_abs_diff_mean"] == pytest.approx(sum(abs(x) for x in d) / 4)
    assert s["logp_abs_diff_max"] == pytest.approx(math.log(4))
    assert s["kl_k3"] == pytest.approx(sum(ri - 1 - di for ri, di in zip(r, d)) / 4)
    assert s["ratio_mean"] == pytest.approx(sum(r) / 4) and s["ratio_max"] == pytest.approx(2.0)
    assert s["ratio_p99"] == pytest.approx(float(torch.quantile(torch.tensor(r, dtype=D), 0.99)), rel=1e-6)
    assert s["ratio_outside_fraction"] == pytest.approx(1 / 4)  # 0.25 is outside [0.5, 2]; 2 is not
    assert s["excluded_fraction"] == pytest.approx(1 / 5)


def test_identical_log_probs_measure_zero():
    lp = torch.tensor([[-1.0, -0.5]], dtype=D)
    s = summary(mismatch_sums(lp, lp.clone(), torch.ones(1, 2, dtype=D)))
    assert s["logp_abs_diff_max"] == 0 and s["kl_k3"] == 0 and s["ratio_mean"] == 1 and s["ratio_p99"] == 1
    assert summary(MismatchSums())["ratio_mean"] == 0.0  # an empty batch reports zeros, not NaN


def test_micro_batch_sums_add_up():
    g = torch.Generator().manual_seed(0)
    old = -torch.rand(6, 5, generator=g, dtype=D) * 3
    new = old + torch.randn(6, 5, generator=g, dtype=D) * 0.5
    mask = (torch.rand(6, 5, generator=g) > 0.3).to(D)
    whole = summary(mismatch_sums(new, old, mask))
    acc = MismatchSums()
    for rows in ([0, 1], [2], [3, 4, 5]):
        acc.add(mismatch_sums(new[rows], old[rows], mask[rows]))
    parts = summary(acc)
    assert parts == pytest.approx(whole)
    assert whole["ratio_outside_fraction"] > 0 and whole["kl_k3"] > 0
