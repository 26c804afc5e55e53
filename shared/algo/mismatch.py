"""Sampler/learner mismatch: how far the learner's log-probs of the sampled tokens are from the
sampler's own, measured on the first forward of a fresh batch (before any update moved the
learner), where the two should describe one policy.

Per completion token, d = learner logp - sampler logp and ratio = exp(d) (the importance
weight learner / sampler):
- |d|: mean and max over the tokens;
- k3 = ratio - 1 - d >= 0: the k3 estimate of KL(sampler || learner) from the sampler's draws
  (its mean is the KL);
- the ratio's distribution: mean, p99, max, and the fraction of tokens outside [0.5, 2].
Tokens that the sampler drew but the learner's distribution excludes (outside its top-k/top-p
set: logp = -inf) are counted apart, as `excluded`, and left out of the figures above.

`MismatchSums` holds additive sums (plus max and the ratios themselves for the p99), so
micro-batches and ranks combine by adding; `summary` turns them into the reported figures.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

RATIO_BAND = (0.5, 2.0)


@dataclass
class MismatchSums:
    tokens: float = 0.0
    excluded: float = 0.0
    abs_diff_sum: float = 0.0
    abs_diff_max: float = 0.0
    k3_sum: float = 0.0
    ratio_sum: float = 0.0
    ratio_max: float = 0.0
    outside_band: float = 0.0
    ratios: list[Tensor] = field(default_factory=list)  # (n,) per micro-batch, for the p99

    def add(self, other: "MismatchSums") -> None:
        for name in ("tokens", "excluded", "abs_diff_sum", "k3_sum", "ratio_sum", "outside_band"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.abs_diff_max = max(self.abs_diff_max, other.abs_diff_max)
        self.ratio_max = max(self.ratio_max, other.ratio_max)
        self.ratios.extend(other.ratios)

    def additive(self) -> list[float]:
        """The fields that sum over ranks (for an all-reduce)."""
        return [self.tokens, self.excluded, self.abs_diff_sum, self.k3_sum, self.ratio_sum, self.outside_band]


def mismatch_sums(logprobs: Tensor, old_logprobs: Tensor, mask: Tensor) -> MismatchSums:
    """(B, T) learner log-probs, sampler log-probs, completion mask -> this micro-batch's sums."""
    with torch.no_grad():
        real = mask > 0
        finite = torch.isfinite(logprobs)
        d = (logprobs - old_logprobs)[real & finite].double()  # (n,)
        ratio = torch.exp(d)
        if d.numel() == 0:
            return MismatchSums(excluded=float((real & ~finite).sum()))
        lo, hi = RATIO_BAND
        return MismatchSums(
            tokens=float(d.numel()),
            excluded=float((real & ~finite).sum()),
            abs_diff_sum=float(d.abs().sum()),
            abs_diff_max=float(d.abs().max()),
            k3_sum=float((ratio - 1.0 - d).sum()),
            ratio_sum=float(ratio.sum()),
            ratio_max=float(ratio.max()),
            outside_band=float(((ratio < lo) | (ratio > hi)).sum()),
            ratios=[ratio.float().cpu()],
        )


def summary(s: MismatchSums) -> dict[str, float]:
    """The reported figures (all 0 for a batch with no scored tokens)."""
    n = max(1.0, s.tokens)
    ratios = torch.cat(s.ratios) if s.ratios else torch.zeros(0)
    p99 = float(torch.quantile(ratios.double(), 0.99)) if ratios.numel() else 0.0
    return {
        "logp_abs_diff_mean": s.abs_diff_sum / n,
        "logp_abs_diff_max": s.abs_diff_max,
        "kl_k3": s.k3_sum / n,
        "ratio_mean": s.ratio_sum / n if s.tokens else 0.0,
        "ratio_p99": p99,
        "ratio_max": s.ratio_max,
        "ratio_outside_fraction": s.outside_band / n,
        "excluded_fraction": s.excluded / max(1.0, s.tokens + s.excluded),
    }
