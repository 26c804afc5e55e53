"""Log-probs from hidden states, projected to the vocabulary a chunk of positions at a time.

The plain computation runs the output layer at every position of a micro-batch (prompt and
padding included) and holds the (tokens, vocabulary) logits from forward to backward: for the
paper's micro-batch (4 x 3072 tokens, vocabulary 151,936) 7.5 GB in float32 for the logits
alone, and as much again for each transient float32 copy. Here the caller passes only the
hidden states of the positions it scores (the completion tokens'), and `chunked_token_logprobs`
projects them `chunk` positions at a time through the output layer and scores each chunk with
`shared.algo.logprobs.token_logprobs` (the sampler's temperature/top-k/top-p). Each chunk is an
activation-checkpointed function: forward keeps only its inputs (a view of the hidden states,
the weight, the targets), and backward recomputes that one chunk's logits, so the largest
vocabulary-sized tensors ever alive are a few (chunk, vocabulary) ones, in forward and in
backward. The gradient is the plain computation's (tests: to 1e-5 in float32 and under bf16
autocast); the price is one extra output-layer matmul per chunk in backward.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.checkpoint import checkpoint

from shared.algo.logprobs import RAW, SamplingDistribution, token_logprobs


def _project(hidden: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
    """F.linear as autocast runs it, but with the weight cast inside the chunk: autocast would
    cache one low-precision copy for all chunks and sum their weight gradients in bfloat16;
    cast per chunk, each chunk's gradient is added to the float32 weight's in float32."""
    kind = hidden.device.type
    if not torch.is_autocast_enabled(kind):
        return F.linear(hidden, weight, bias)
    dt = torch.get_autocast_dtype(kind)
    with torch.autocast(kind, enabled=False):
        return F.linear(hidden.to(dt), weight.to(dt), None if bias is None else bias.to(dt))


def _chunk_logprobs(hidden: Tensor, weight: Tensor, bias: Tensor | None, targets: Tensor,
                    dist: SamplingDistribution) -> Tensor:
    return token_logprobs(_project(hidden, weight, bias), targets, dist)


def chunked_token_logprobs(hidden: Tensor, weight: Tensor, bias: Tensor | None, targets: Tensor,
                           dist: SamplingDistribution = RAW, chunk: int = 1024) -> Tensor:
    """(N, H) hidden states, (V, H) output weight, (V,) bias or None, (N,) target ids -> (N,)
    log-prob of each target under `dist` (float32 or wider; differentiable in hidden, weight and
    bias). At most `chunk` positions are projected to the vocabulary at once."""
    if chunk < 1:
        raise ValueError(f"chunk must be >= 1, got {chunk}")
    if hidden.shape[0] == 0:
        return hidden.new_zeros(0, dtype=torch.promote_types(hidden.dtype, torch.float32))
    grad = torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in (hidden, weight, bias))
    outs = []
    for start in range(0, hidden.shape[0], chunk):
        h, t = hidden[start : start + chunk], targets[start : start + chunk]
        if grad:  # keep the chunk's inputs only; its logits are recomputed in backward
            outs.append(checkpoint(_chunk_logprobs, h, weight, bias, t, dist, use_reentrant=False))
        else:
            outs.append(_chunk_logprobs(h, weight, bias, t, dist))
    return outs[0] if len(outs) == 1 else torch.cat(outs)
