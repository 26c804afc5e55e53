"""The policy loss: clipped policy gradient against the sampler's log-probs, optional k3 KL.

Pure functions over explicit tensors (torch). Shapes: B sequences in a micro-batch, T the
micro-batch's padded completion length. Per token (mask == 1):

    ratio  = exp(logp - old_logp)                      # learner / sampler probability
    pg     = max(-A * ratio', -A * clip(ratio, 1 - eps_low, 1 + eps_high))
    ratio' = min(ratio, is_cap) when `is_cap` is set, else ratio
    loss_t = pg + beta * k3,   k3 = exp(ref - logp) - (ref - logp) - 1

With one update per fresh sample the ratio is 1 up to sampler/learner numerics and the loss
is the plain policy gradient (the paper's setting). `is_cap` truncates the importance weight
of any token at `is_cap`: for negative advantages PPO's max() alone lets the weight grow
without bound (the dual-clip case); for positive ones the upper clip already bounds it.

Aggregation (`AlgoConfig.loss_aggregation`) normalises by totals of the WHOLE optimizer batch
(`BatchTotals`), never of the micro-batch, so summing micro-batch gradients gives exactly the
full-batch gradient — which is what lets the learner take a large preemptively-sampled batch
in small micro-batches:
- token:    sum_{i,t} loss_it / (tokens in the batch)
- sequence: sum_i (sum_t loss_it / len_i) / (sequences in the batch)
- dash:     sum_{i,t} loss_it / (sequences in the batch x max completion length) — the
            paper's code; the length is `max_len_norm` (the configured cap) when given,
            else the longest completion in the batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Sequence

import torch
from torch import Tensor

Aggregation = Literal["token", "sequence", "dash"]


@dataclass(frozen=True)
class BatchTotals:
    """Sizes of the whole optimizer batch that every micro-batch's loss is divided by."""

    sequences: int
    tokens: int
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
    ref_logprobs: Tensor | None = None,  # (B, T) frozen reference; needed iff kl_beta > 0
    kl_beta: float = 0.0,
) -> LossOutputs:
    mask = mask.to(logprobs.dtype)
    adv = advantages.to(logprobs.dtype).unsqueeze(1)  # (B, 1)
    ratio = torch.exp(logprobs - old_logprobs)  # (B, T)
    weight = ratio if is_cap is None else torch.clamp(ratio, max=is_cap)
    unclipped = -adv * weight
    clipped = -adv * torch.clamp(ratio, 1.0 - clip_eps_low, 1.0 + clip_eps_high)
    pg = torch.maximum(unclipped, clipped)  # (B, T)
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
        if is_cap is not None:
            no_grad = no_grad | (ratio > is_cap)
        outs = LossOutputs(
            loss=loss,
            policy_loss=aggregate(pg, mask, aggregation, totals).detach(),
            kl=kl,
            clipped_tokens=(no_grad.to(mask.dtype) * mask).sum(),
            tokens=mask.sum(),
            ratio_sum=(ratio * mask).sum(),
        )
    return outs


def token_logprobs(logits: Tensor, targets: Tensor) -> Tensor:
    """(B, T, V) logits, (B, T) target ids -> (B, T) log-softmax at the targets.

    Computed per row with logsumexp rather than a full (B, T, V) log_softmax, which would keep
    another vocabulary-sized tensor alive for backward."""
    picked = torch.gather(logits, -1, targets.unsqueeze(-1)).squeeze(-1)  # (B, T)
    return picked - torch.logsumexp(logits, dim=-1)
