"""The learner's log-probs of completion tokens: hidden states everywhere, logits only where scored.

A Hugging Face causal LM is a decoder (embeddings, layers, final norm) followed by an output
layer (`lm_head`, tied to the input embeddings or not). `OutputHead.of(model)` splits it so the
learner runs the decoder over every position (the prompt is context) but projects to the
vocabulary only the positions that predict a completion token, `learner.logits_chunk_tokens` at a
time (`shared.algo.chunked_logprobs`). Models whose logits are more than `lm_head(hidden)` (a
soft-cap, a logit scale: Gemma 2/3, Cohere, Granite) or whose output layer is not a Linear get
`None`, and the trainer keeps the plain full-logits path for them.

Both layouts come back in the shape the loss expects, with 0 where nothing is scored:
(B, L-1) per row (`microbatches.MicroBatch`), (S, T) per sample (`prompt_sharing.SharedMicroBatch`,
`packing.PackedMicroBatch`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from services.learner.microbatches import MicroBatch
from services.learner.packing import PackedMicroBatch
from services.learner.prompt_sharing import SharedMicroBatch
from shared.algo.chunked_logprobs import chunked_token_logprobs
from shared.algo.logprobs import SamplingDistribution

_LOGIT_TRANSFORMS = ("final_logit_softcapping", "logit_scale", "logits_scaling", "output_multiplier_scale")
"""Config attributes of models whose logits are not plainly lm_head(hidden)."""


@dataclass(frozen=True)
class OutputHead:
    decoder: Any  # the base model: input ids -> last_hidden_state (final norm applied)
    linear: torch.nn.Linear  # hidden -> vocabulary logits (its weight may be the tied embedding)

    @classmethod
    def of(cls, model: Any) -> "OutputHead | None":
        """The model split into decoder + output Linear, or None where that split would change
        its logits (see the module docstring)."""
        get_decoder, get_head = getattr(model, "get_decoder", None), getattr(model, "get_output_embeddings", None)
        if get_decoder is None or get_head is None:
            return None
        decoder, head = get_decoder(), get_head()
        config = getattr(model, "config", None)
        if decoder is None or decoder is model or type(head) is not torch.nn.Linear:
            return None
        for name in _LOGIT_TRANSFORMS:
            value = getattr(config, name, None)
            if value not in (None, 1, 1.0):
                return None
        return cls(decoder, head)

    def hidden(self, **inputs: Tensor) -> Tensor:
        return self.decoder(**inputs, use_cache=False).last_hidden_state


def completion_logprobs(head: OutputHead, mb: MicroBatch | SharedMicroBatch | PackedMicroBatch,
                        dist: SamplingDistribution, chunk: int) -> Tensor:
    """Log-probs of the micro-batch's completion tokens under `dist` (float32), 0 elsewhere:
    (B, L-1) or (S, T). Runs under the caller's autocast, if any."""
    scored = mb.loss_mask > 0
    hidden = head.hidden(**mb.model_inputs())  # (rows, L, H)
    if isinstance(mb, MicroBatch):
        h = hidden[:, :-1][scored]  # (N, H)
    else:
        rows = mb.sample_row.unsqueeze(1).expand_as(mb.predictor)
        h = hidden[rows[scored], mb.predictor[scored]]  # (N, H): the positions predicting the tokens
    logp = chunked_token_logprobs(h, head.linear.weight, head.linear.bias, mb.targets[scored], dist, chunk)
    return torch.zeros(scored.shape, dtype=logp.dtype, device=logp.device).masked_scatter(scored, logp)
