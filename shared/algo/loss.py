"""The policy loss: clipped policy gradient against the sampler's log-probs, optional k3 KL.

Pure functions over explicit tensors (torch). Shapes: B sequences in a micro-batch, T the
micro-batch's padded completion length. Per token (mask == 1):

    ratio  = exp(logp - old_logp)                      # learner / sampler probability
    pg     = f * max(-A * ratio, -A * clip(ratio, 1 - eps_low, 1 + eps_high))
    f      = sg(min(1, is_cap / rho))  when `is_cap` is set, else 1
    loss_t = pg + beta * k3,   k3 = exp(ref - logp) - (ref - logp) - 1

With one update per fresh sample the ratio is 1 up to sampler/learner mismatch and the loss
is the plain policy gradient (the paper's setting). `is_cap` turns on truncated importance
sampling (TIS) of the sampler -> learner weight: `rho` is the token's ratio (`is_level`
token) or its sequence's geometric-mean ratio exp(mean_t log ratio_t) (`is_level` sequence),
and the factor f is detached (`sg`), so the unclipped term's weight is f * ratio =
min(ratio, is_cap) (token level) and a truncated token still learns, with gradient
-A * is_cap * grad(logp) instead of -A * ratio * grad(logp). That bounds the weight where PPO's
max() alone does not: negative advantages with a large ratio (for positive ones the upper clip
already flattens the term). f multiplies both branches, so max() cannot undo the truncation.
Sequence level scales every token of a sequence whose mean ratio exceeds the cap by the same
factor: the geometric mean, not the product, so the cap means the same for 10 and 1000 tokens.

Aggregation (`AlgoConfig.loss_aggregation`) normalises by totals of the WHOLE optimizer batch
(`BatchTotals`), never of the micro-batch, so summing micro-batch gradients gives exactly the
full-batch gradient — which is what lets the learner take a large preemptively-sampled batch
in small micro-batches:
- token:    sum_{i,t} loss_it / (tokens in the batch)
- sequence: sum_i (sum_t loss_it / len_i) / (sequences in the batch)
- dash:     sum_{i,t} loss_it / (sequences in the batch x max completion length) — the
            paper's code; the length is `max_len_norm` (the configured cap) when given,
            else the longest completion in the batch.
The counts are of the samples the learner got, or (`BatchTotals.over_generated`, for
`algo.normalize_by: generated`) of every sample generated, filtered ones included: a filtered
sample has advantage 0 and adds nothing to the policy-gradient sum, so with beta 0 a filtered
batch then has exactly the unfiltered batch's gradient.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Sequence

import torch
from torch import Tensor

Aggregation = Literal["token", "sequence", "dash"]
ISLevel = Literal["token", "sequence"]


@dataclass(frozen=True)
class BatchTotals:
    """Sizes of the whole optimizer batch that every micro-batch's loss is divided by."""

    sequences: float
    tokens: float
    max_len: int

    @classmethod
    def of(cls, completion_lens: Sequence[int], max_len_norm: int | None = None) -> "BatchTotals":
        lens = [int(n) for n in completion_lens]
        if not lens or min(lens) < 1:
            raise ValueError("a batch needs at least one sequence, each with >= 1 completion token")
        max_len = max(lens) if max_len_norm is None else int(max_len_norm)
        if max_len < max(lens):
            raise ValueError(f"max_len_norm {max_len} is shorter than a completion ({max(lens)} tokens)")
        return cls(sequences=len(lens), tokens=sum(lens), max_len=max_len)

    def over_generated(self, generated: "GeneratedCounts", share: float = 1.0) -> "BatchTotals":
        """The same batch counted over every generated sample (the step's generation calls,
        filtered samples included), times `share`, the fraction of the step's samples this
        update uses (PPO-Mini). Never below the kept counts."""
        return BatchTotals(sequences=max(self.sequences, generated.sequences * share),
                           tokens=max(self.tokens, generated.tokens * share), max_len=self.max_len)


@dataclass(frozen=True)
class GeneratedCounts:
    """How many samples and completion tokens a step's rollout batches held before filtering."""

    sequences: float
    tokens: float


@dataclass
class LossOutputs:
    """`loss` is this micro-batch's share of the batch loss: backward() it and accumulate.
    The other fields are detached sums/shares that also add up over micro-batches."""

    loss: Tensor  # () differentiable
    policy_loss: Tensor  # () the pg part of `loss`
    kl: Tensor  # () the k3 part of `loss` before beta (0 when no reference)
    clipped_tokens: Tensor  # () tokens whose gradient the clip removed
    tokens: Tensor  # () completion tokens in this micro-batch
    ratio_sum: Tensor  # () sum of ratios over tokens (mean ratio = ratio_sum / tokens)
    truncated_tokens: Tensor  # () tokens whose IS weight `is_cap` truncated


def aggregate(per_token: Tensor, mask: Tensor, aggregation: Aggregation, totals: BatchTotals) -> Tensor:
    """(B, T) per-token values -> () this micro-batch's share of the batch aggregate."""
    masked = per_token * mask  # (B, T)
    if aggregation == "token":
        return masked.sum() / totals.tokens
    if aggregation == "sequence":
        lens = mask.sum(dim=1).clamp(min=1)  # (B,)
        return (masked.sum(dim=1) / lens).sum() / totals.sequences
    if aggregation == "dash":
        return masked.sum() / (totals.sequences * totals.max_len)
    raise ValueError(f"unknown loss aggregation {aggregation!r}")


def policy_loss(
    logprobs: Tensor,  # (B, T) learner log-prob of each completion token, differentiable
    old_logprobs: Tensor,  # (B, T) sampler's log-prob of the same tokens
    advantages: Tensor,  # (B,)
    mask: Tensor,  # (B, T) 1 for completion tokens, 0 for padding
    *,
    totals: BatchTotals,
    aggregation: Aggregation = "dash",
    clip_eps_low: float = 0.2,
    clip_eps_high: float = 0.2,
    is_cap: float | None = None,
    is_level: ISLevel = "token",
    ref_logprobs: Tensor | None = None,  # (B, T) frozen reference; needed iff kl_beta > 0
    kl_beta: float = 0.0,
) -> LossOutputs:
    mask = mask.to(logprobs.dtype)
    adv = advantages.to(logprobs.dtype).unsqueeze(1)  # (B, 1)
    log_ratio = logprobs - old_logprobs  # (B, T)
    ratio = torch.exp(log_ratio)  # (B, T)
    unclipped = -adv * ratio
    clipped = -adv * torch.clamp(ratio, 1.0 - clip_eps_low, 1.0 + clip_eps_high)
    pg = torch.maximum(unclipped, clipped)  # (B, T)
    truncated = torch.zeros_like(ratio)
    if is_cap is not None:
        rho = _is_reference(log_ratio.detach(), mask, is_level)  # (B, T) or (B, 1)
        pg = pg * torch.clamp(is_cap / rho, max=1.0)  # the detached TIS factor f
        truncated = (rho > is_cap).to(mask.dtype).expand_as(ratio)
    per_token = pg
    kl = torch.zeros((), dtype=logprobs.dtype, device=logprobs.device)
    if kl_beta > 0:
        if ref_logprobs is None:
            raise ValueError("kl_beta > 0 needs ref_logprobs")
        delta = ref_logprobs - logprobs
        k3 = torch.exp(delta) - delta - 1.0  # (B, T) >= 0, unbiased estimate of KL(pi || ref)
        per_token = pg + kl_beta * k3
        kl = aggregate(k3, mask, aggregation, totals).detach()
    loss = aggregate(per_token, mask, aggregation, totals)
    with torch.no_grad():
        # a token is "clipped" when the branch max() took is flat in the ratio (no gradient)
        no_grad = clipped > unclipped
        outs = LossOutputs(
            loss=loss,
            policy_loss=aggregate(pg, mask, aggregation, totals).detach(),
            kl=kl,
            clipped_tokens=(no_grad.to(mask.dtype) * mask).sum(),
            tokens=mask.sum(),
            ratio_sum=(ratio * mask).sum(),
            truncated_tokens=(truncated * mask).sum(),
        )
    return outs


def _is_reference(log_ratio: Tensor, mask: Tensor, level: ISLevel) -> Tensor:
    """The ratio the IS cap is compared with: per token (B, T), or per sequence (B, 1) as the
    geometric mean exp(sum_t log_ratio_t / len) over its completion tokens."""
    if level == "token":
        return torch.exp(log_ratio)
    if level == "sequence":
        lens = mask.sum(dim=1, keepdim=True).clamp(min=1)  # (B, 1)
        return torch.exp((log_ratio * mask).sum(dim=1, keepdim=True) / lens)
    raise ValueError(f"unknown is_level {level!r}")
