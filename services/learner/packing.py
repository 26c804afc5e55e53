"""Sequence packing: a micro-batch is one unpadded row of whole samples (`learner.packing`).

The padded layout (`microbatches.collate`) gives every row the length of the micro-batch's
longest sample; here the samples (or, with prompt sharing, the shared rows of
`prompt_sharing`) are laid end to end in a single row of at most `micro_batch_tokens` tokens:

    row tokens:  s1_0 .. s1_{n1-1} | s2_0 .. s2_{n2-1} | ...      (no padding)
    positions:   0    .. n1-1      | 0    .. n2-1      | ...      (restart per segment)
    attention:   causal inside each segment, nothing across segments

so each token sees what it sees in its own row, at the same position: the same log-prob and
the same gradient (tests: to 1e-5 in float32). A segment is one sample, or one shared row
(prompt + its completions, the block mask of `prompt_sharing`, positions as there).

Attention: the segments' boundaries travel as `cu_seq_lens_q/k` + `max_length_q/k`, the
keyword arguments of transformers' flash-attention varlen path, so under `flash_attention_2/3`
(a GPU with flash-attn installed) the model runs the varlen kernel itself. Otherwise the model's
attention is switched to `packed_sdpa_attention` (registered here as "dashrl_packed_sdpa"): one
`scaled_dot_product_attention` call per segment (causal: its fast causal kernels, which skip
the masked half; a shared row: with its own small mask), so attention costs sum n_i^2, never
the row's N^2. Nothing else of the model changes.

Pure steps, like `microbatches`: `pack_rows` (which segments fill which row) and
`collate_packed` (the tensors).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import torch
from transformers import AttentionInterface
from transformers.integrations.sdpa_attention import sdpa_attention_forward

from services.learner.microbatches import TrainSample
from services.learner.prompt_sharing import row_layout, row_length

PACKED_ATTENTION = "dashrl_packed_sdpa"
"""The attention implementation packed micro-batches run with, where no varlen kernel is used."""
VARLEN_IMPLEMENTATIONS = ("flash_attention_2", "flash_attention_3")
"""transformers' implementations that take `cu_seq_lens_q/k` themselves (plain segments only)."""
SWITCHABLE = ("sdpa", "eager", PACKED_ATTENTION)
"""Implementations a model may be switched from to `PACKED_ATTENTION`."""


def packed_sdpa_attention(module: torch.nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                          attention_mask: torch.Tensor | None, cu_seq_lens_q: torch.Tensor | None = None,
                          dashrl_segment_masks: Sequence[torch.Tensor | None] | None = None,
                          **kwargs: Any) -> tuple[torch.Tensor, None]:
    """transformers attention function: (B, heads, N, d) query, (B, kv heads, N, d) key/value ->
    (B, N, heads, d). With `cu_seq_lens_q` (B = 1, the packed row), SDPA once per segment
    [cu[i], cu[i+1]): causal, or under `dashrl_segment_masks[i]` ((n, n) bool) where that is given.
    Without it, plain sdpa (the mask as given; None: causal)."""
    if cu_seq_lens_q is None:
        return sdpa_attention_forward(module, query, key, value, attention_mask, **kwargs)
    bounds = cu_seq_lens_q.tolist()
    masks = dashrl_segment_masks or [None] * (len(bounds) - 1)
    kwargs.pop("is_causal", None)
    outs = []
    for a, b, mask in zip(bounds[:-1], bounds[1:], masks):
        q, k, v = query[:, :, a:b], key[:, :, a:b], value[:, :, a:b]
        if mask is None:
            out, _ = sdpa_attention_forward(module, q, k, v, None, is_causal=True, **kwargs)
        else:
            out, _ = sdpa_attention_forward(module, q, k, v, mask[None, None], is_causal=False, **kwargs)
        outs.append(out)  # (1, n, heads, d)
    return torch.cat(outs, dim=1), None


AttentionInterface.register(PACKED_ATTENTION, packed_sdpa_attention)


def packing_attention(model: Any) -> str:
    """Make `model` run packed micro-batches and return its attention implementation: a varlen
    one is kept; sdpa/eager are switched to `PACKED_ATTENTION` (which still runs unpacked
    inputs as sdpa); anything else is a ValueError."""
    attn = getattr(model.config, "_attn_implementation", None)
    if attn in VARLEN_IMPLEMENTATIONS or attn == PACKED_ATTENTION:
        return attn
    if attn not in SWITCHABLE:
        raise ValueError(f"learner.packing needs attention sdpa, eager or {' / '.join(VARLEN_IMPLEMENTATIONS)}; "
                         f"{type(model).__name__} uses {attn!r}")
    model.set_attn_implementation(PACKED_ATTENTION)
    return PACKED_ATTENTION


def pack_rows(lengths: Sequence[int], max_tokens: int, max_samples: int,
              counts: Sequence[int] | None = None) -> list[list[int]]:
    """Indices into `lengths`, grouped into rows of at most `max_tokens` tokens in all (no
    padding) and `max_samples` samples (`counts[i]` per item, 1 by default). First-fit
    decreasing: longest first, each into the first row it fits, so rows come out nearly full.
    An item longer than the budget gets a row of its own. Deterministic (ties by index)."""
    if max_tokens < 1 or max_samples < 1:
        raise ValueError("max_tokens and max_samples must be >= 1")
    counts = [1] * len(lengths) if counts is None else counts
    rows: list[list[int]] = []
    room: list[tuple[int, int]] = []  # (tokens, samples) left in each row
    for i in sorted(range(len(lengths)), key=lambda i: (-lengths[i], i)):
        n, c = lengths[i], counts[i]
        k = next((k for k, (t, s) in enumerate(room) if n <= t and c <= s), None)
        if k is None:
            rows.append([i])
            room.append((max_tokens - n, max_samples - c))
        else:
            rows[k].append(i)
            room[k] = (room[k][0] - n, room[k][1] - c)
    return rows


@dataclass
class PackedMicroBatch:
    input_ids: torch.Tensor  # (1, N) long, the segments end to end
    position_ids: torch.Tensor  # (1, N) long, restarting in every segment
    cu_seq_lens: torch.Tensor  # (K + 1,) int32: segment k is [cu[k], cu[k+1])
    sample_row: torch.Tensor  # (S,) long, all 0 (one row; the shared layout's gather)
    predictor: torch.Tensor  # (S, T) long: the position whose logits predict completion token t
    targets: torch.Tensor  # (S, T) long: completion token t of sample s (0 past its end)
    loss_mask: torch.Tensor  # (S, T) float, 1 for real completion tokens
    old_logprobs: torch.Tensor  # (S, T) float, the sampler's log-probs (0 past the end)
    advantages: torch.Tensor  # (S,) float
    num_tokens: int  # N: real tokens (each shared prompt once)
    max_length: int  # the longest segment
    segment_masks: list[torch.Tensor | None] = field(default_factory=list)  # per segment: None causal, or (n, n) bool

    def to(self, device: torch.device) -> "PackedMicroBatch":
        move = {k: v.to(device, non_blocking=True) for k, v in vars(self).items() if isinstance(v, torch.Tensor)}
        masks = [None if m is None else m.to(device, non_blocking=True) for m in self.segment_masks]
        return PackedMicroBatch(**move, num_tokens=self.num_tokens, max_length=self.max_length, segment_masks=masks)

    def model_inputs(self) -> dict[str, Any]:
        """Keyword arguments of the model's (or decoder's) forward for this row."""
        out: dict[str, Any] = {"input_ids": self.input_ids, "position_ids": self.position_ids,
                               "cu_seq_lens_q": self.cu_seq_lens, "cu_seq_lens_k": self.cu_seq_lens,
                               "max_length_q": self.max_length, "max_length_k": self.max_length}
        if any(m is not None for m in self.segment_masks):
            out["dashrl_segment_masks"] = self.segment_masks
        return out


def collate_packed(samples: Sequence[TrainSample], segments: Sequence[Sequence[int]]) -> PackedMicroBatch:
    """One packed row. `segments`: sample indices per segment, a single sample (causal) or a
    shared row of one prompt's completions (`prompt_sharing.row_layout`: its block mask)."""
    order = [i for seg in segments for i in seg]
    S, T = len(order), max(len(samples[i].completion_ids) for i in order)
    predictor = np.zeros((S, T), dtype=np.int64)
    targets = np.zeros((S, T), dtype=np.int64)
    loss_mask = np.zeros((S, T), dtype=np.float32)
    old = np.zeros((S, T), dtype=np.float32)
    ids, pos, masks, bounds = [], [], [], [0]
    k = 0
    for seg in segments:
        seg_ids, seg_pos, allow, starts = row_layout(samples, seg)
        at, P = bounds[-1], len(samples[seg[0]].prompt_ids)
        for i, start in zip(seg, starts):
            C = len(samples[i].completion_ids)
            predictor[k, 0] = at + P - 1  # the prompt's last position predicts the first token
            predictor[k, 1:C] = at + start + np.arange(C - 1)
            targets[k, :C], loss_mask[k, :C], old[k, :C] = samples[i].completion_ids, 1.0, samples[i].logprobs
            k += 1
        ids.append(seg_ids)
        pos.append(seg_pos)
        masks.append(None if len(seg) == 1 else torch.from_numpy(allow))
        bounds.append(at + len(seg_ids))
    return PackedMicroBatch(
        input_ids=torch.from_numpy(np.concatenate(ids)[None]), position_ids=torch.from_numpy(np.concatenate(pos)[None]),
        cu_seq_lens=torch.tensor(bounds, dtype=torch.int32), sample_row=torch.zeros(S, dtype=torch.long),
        predictor=torch.from_numpy(predictor), targets=torch.from_numpy(targets),
        loss_mask=torch.from_numpy(loss_mask), old_logprobs=torch.from_numpy(old),
        advantages=torch.tensor([samples[i].advantage for i in order], dtype=torch.float32),
        num_tokens=bounds[-1], max_length=max(b - a for a, b in zip(bounds[:-1], bounds[1:])),
        segment_masks=masks,
    )


def packed_micro_batches(samples: Sequence[TrainSample], units: Sequence[Sequence[int]], max_tokens: int,
                         max_samples: int) -> list[list[list[int]]]:
    """`units` (segments: one sample, or a shared row) packed into rows: per micro-batch, its segments."""
    lens = [row_length(samples, u) for u in units]
    return [[list(units[k]) for k in row] for row in pack_rows(lens, max_tokens, max_samples, [len(u) for u in units])]
