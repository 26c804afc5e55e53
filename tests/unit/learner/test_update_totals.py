"""services/learner/update_totals.py: the named sums of an optimizer update."""

from __future__ import annotations

import torch

from services.learner.update_totals import UpdateTotals
from shared.algo.loss import LossOutputs


def outputs(loss: float, tokens: float, clipped: float) -> LossOutputs:
    t = torch.tensor
    return LossOutputs(loss=t(loss, requires_grad=True), policy_loss=t(loss - 0.5), kl=t(0.5),
                       clipped_tokens=t(clipped), tokens=t(tokens), ratio_sum=t(tokens * 1.5),
                       truncated_tokens=t(1.0))


def test_sums_by_name_and_the_fractions_of_completion_tokens():
    total = UpdateTotals()
    for out in (outputs(1.0, 10, 2), outputs(3.0, 30, 6)):
        total += UpdateTotals.of(out)
    assert total == UpdateTotals(loss=4.0, policy_loss=3.0, kl=1.0, clipped_tokens=8.0, ratio_sum=60.0,
                                 completion_tokens=40.0, truncated_tokens=2.0)
    assert (total.fraction(total.clipped_tokens), total.fraction(total.ratio_sum)) == (0.2, 1.5)
    assert UpdateTotals().fraction(0.0) == 0.0  # no completion tokens: no division by zero


def test_list_round_trip_for_the_allreduce():
    total = UpdateTotals(1, 2, 3, 4, 5, 6, 7)
    assert total.as_list() == [1, 2, 3, 4, 5, 6, 7]
    assert UpdateTotals.from_list(total.as_list() + [99.0]) == total  # the trailing token count is not read
