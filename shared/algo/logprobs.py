"""Log-probs of tokens under the distribution the sampler drew them from.

The sampler draws from softmax(logits / temperature) restricted to a kept set (top-k, then
top-p over the top-k-renormalised probabilities: vLLM's and transformers' order), and reports
that distribution's log-prob of each drawn token (vLLM `processed_logprobs`, transformers'
processed `scores`). The learner must score the same distribution, or its importance ratio
compares two different policies. Per position (z = logits / temperature):

    kept   = {v : z_v >= thr}    thr = the k-th largest z (top-k), raised by top-p to the
                                 smallest z whose strictly-larger kept mass is < top_p
    logp_t = z_t - logsumexp_{v in kept} z_v       (-inf when t is not kept)

Ties at the threshold are kept, as vLLM and transformers keep them. Temperature 0 (greedy)
means the raw distribution (temperature 1, nothing masked): what vLLM reports for an
all-greedy batch, whose processing it skips.

Memory: `token_logprobs` is a custom autograd function. It keeps only the logits it was given
(already alive for the model's backward), the per-position logsumexp and threshold; the scaled
and masked (N, V) float32 tensor exists only transiently in forward and once more in backward,
instead of being held from forward to backward as autograd would hold it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class SamplingDistribution:
    """The sampling transform of logits: temperature, then top-k, then top-p."""

    temperature: float = 1.0
    top_k: int = 0  # <= 0 or >= vocabulary: off
    top_p: float = 1.0  # 1: off

    @classmethod
    def of(cls, temperature: float, top_k: int, top_p: float) -> "SamplingDistribution":
        """The distribution a sampler with these settings reports log-probs under (greedy: raw)."""
        if temperature == 0:
            return cls()
        return cls(temperature=float(temperature), top_k=max(0, int(top_k)), top_p=float(top_p))

    @property
    def masks(self) -> bool:
        return self.top_k > 0 or self.top_p < 1.0


RAW = SamplingDistribution()


def kept_threshold(z: Tensor, dist: SamplingDistribution) -> Tensor | None:
    """(..., V) scaled logits -> (..., 1) smallest kept value (tokens >= it are kept), or None."""
    V = z.shape[-1]
    k = dist.top_k if 0 < dist.top_k < V else 0
    if dist.top_p >= 1.0:
        return torch.topk(z, k, dim=-1).values[..., -1:] if k else None
    zs = torch.sort(z, dim=-1, descending=True).values  # (..., V) transient: top-p needs the order
    if k:
        zs[..., k:] = torch.where(zs[..., k:] >= zs[..., k - 1 : k], zs[..., k:], float("-inf"))
    probs = torch.softmax(zs, dim=-1)
    above = torch.cumsum(probs, dim=-1) - probs  # mass strictly before each sorted position
    keep = (above < dist.top_p) & (zs > float("-inf"))
    keep[..., 0] = True
    last = keep.sum(dim=-1, keepdim=True) - 1  # kept positions are a prefix of the sorted row
    return zs.gather(-1, last)


def _compute_dtype(logits: Tensor) -> torch.dtype:
    return torch.promote_types(logits.dtype, torch.float32)  # bf16/fp16 up to fp32; fp64 stays


def _scaled_masked(logits: Tensor, dist: SamplingDistribution, thr: Tensor | None) -> Tensor:
    z = logits.to(_compute_dtype(logits), copy=True)  # one (..., V) tensor, modified in place
    if dist.temperature != 1.0:
        z.div_(dist.temperature)
    if thr is not None:
        z.masked_fill_(z < thr, float("-inf"))
    return z


class _TokenLogprobs(torch.autograd.Function):
    @staticmethod
    def forward(ctx, logits: Tensor, targets: Tensor, dist: SamplingDistribution) -> Tensor:
        with torch.no_grad():
            z = logits.to(_compute_dtype(logits))
            z = z / dist.temperature if dist.temperature != 1.0 else z
            thr = kept_threshold(z, dist) if dist.masks else None
            if thr is not None:
                z = z.masked_fill(z < thr, float("-inf"))
            lse = torch.logsumexp(z, dim=-1, keepdim=True)  # (..., 1)
            out = (z.gather(-1, targets.unsqueeze(-1)) - lse).squeeze(-1)  # (...)
        ctx.save_for_backward(logits, targets, lse, thr if thr is not None else lse.new_empty(0))
        ctx.dist, ctx.has_thr = dist, thr is not None
        return out

    @staticmethod
    def backward(ctx, grad_out: Tensor):
        logits, targets, lse, thr = ctx.saved_tensors
        dist: SamplingDistribution = ctx.dist
        z = _scaled_masked(logits, dist, thr if ctx.has_thr else None)
        p = z.sub_(lse).exp_()  # (..., V) the kept-set softmax, 0 outside it
        g = grad_out.to(z.dtype).unsqueeze(-1)  # (..., 1)
        grad = p.mul_(g).neg_()  # d logp_t / d z_v = [v == t] - p_v
        grad.scatter_add_(-1, targets.unsqueeze(-1), g)
        if dist.temperature != 1.0:
            grad.div_(dist.temperature)
        return grad.to(logits.dtype), None, None


def token_logprobs(logits: Tensor, targets: Tensor, dist: SamplingDistribution = RAW) -> Tensor:
    """(..., V) logits, (...) target ids -> (...) log-prob of each target under `dist`
    (float32 or wider, differentiable in `logits`; -inf where the target is outside the kept set)."""
    # no reshape: a sliced (non-contiguous) logits view would be copied, and the copy kept
    return _TokenLogprobs.apply(logits, targets, dist)


def processed_logprobs(logits: Tensor, dist: SamplingDistribution) -> Tensor:
    """(..., V) -> (..., V) the full log-distribution under `dist` (-inf outside the kept set).
    The reference form (tests, the transformers backend's check); holds a full copy."""
    z = _scaled_masked(logits, dist, None)
    thr = kept_threshold(z, dist) if dist.masks else None
    if thr is not None:
        z.masked_fill_(z < thr, float("-inf"))
    return torch.log_softmax(z, dim=-1)
