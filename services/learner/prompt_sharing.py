"""Prompt sharing: backpropagate each prompt once per micro-batch, not once per completion.

A group's G completions all continue the same prompt, so the unshared layout (one row per
sample, `microbatches.collate`) runs the prompt's tokens through forward and backward G times.
Here a row holds one prompt followed by several of its completions:

    row tokens:  p_0 .. p_{P-1} | c1_0 .. c1_{C1-1} | c2_0 .. c2_{C2-1} | ... | pad
    positions:   0   .. P-1     | P    .. P+C1-1    | P    .. P+C2-1    | ...
    attention:   causal in p;  ci_t sees all of p and ci_0 .. ci_t;  a pad sees itself

so every completion token sees exactly what it sees in its own row, at the same position, and
its log-prob (and gradient) is the same. The first token of every completion is predicted by
the prompt's last position; token t > 0 of completion i by completion i's token t - 1. The
row costs P + sum(Ci) tokens instead of G x P + sum(Ci): with the demo's 9-token prompts and
6-token answers, G = 8, 57 instead of 120. Its attention is dense-masked, though, (P + sum Ci)^2
pairs, so a group is shared only when that is cheaper overall (`worth_sharing`): short answers
after a prompt, not 600-token solutions on a 0.5B model, which keep one row per sample.

Two pure steps, like `microbatches`: `pack_shared` (which samples share which row, which rows
make a micro-batch, under the same token budget and sample cap) and `collate_shared` (the
tensors, with a (R, 1, L, L) attention mask). Needs an attention implementation that takes a
custom 4D mask (sdpa, eager); the trainer falls back to the unshared layout otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from services.learner.microbatches import TrainSample, pack_micro_batches

MASK_IMPLEMENTATIONS = ("sdpa", "eager", "dashrl_packed_sdpa")
"""Attention implementations that use a 4D attention mask as given (the last: `packing`'s)."""


def attention_weight(config) -> float:
    """Forward FLOPs of one attended (query, key) pair relative to one token's linear layers:
    4d (QK and AV) over 8d^2 + 6 d ff (projections, gated MLP), from an HF config. A shared row is
    dense-masked, so its attention costs L^2 pairs where one row per sample costs sum (P + C)^2."""
    d = int(getattr(config, "hidden_size", 0) or 0)
    ff = int(getattr(config, "intermediate_size", 0) or 4 * d)
    return 4.0 / (8 * d + 6 * ff) if d > 0 else 0.0


def worth_sharing(prompt_len: int, completion_lens: Sequence[int], weight: float) -> bool:
    """Whether one shared row costs less than one row per completion, at cost(L) = L + weight L^2.
    Short completions after a prompt (the demo: 9 + 8 x 6) win; long ones (math, 100 + 4 x 600
    tokens on a 0.5B model) lose, because the shared row's attention grows with the square."""
    if len(completion_lens) < 2:
        return False
    cost = lambda n: n + weight * n * n  # noqa: E731
    return cost(prompt_len + sum(completion_lens)) < sum(cost(prompt_len + c) for c in completion_lens)


def shared_rows(samples: Sequence[TrainSample], max_tokens: int, max_samples: int, weight: float) -> list[list[int]]:
    """Samples grouped by identical prompt (first appearance order), each group cut into rows of
    at most `max_samples` samples and, where possible, at most `max_tokens` tokens; a group that
    is not `worth_sharing` gets one row per sample."""
    by_prompt: dict[bytes, list[int]] = {}
    for i, s in enumerate(samples):
        by_prompt.setdefault(np.asarray(s.prompt_ids, dtype=np.int32).tobytes(), []).append(i)
    rows: list[list[int]] = []
    for members in by_prompt.values():
        base = len(samples[members[0]].prompt_ids)
        if not worth_sharing(base, [len(samples[i].completion_ids) for i in members], weight):
            rows.extend([i] for i in members)
            continue
        cur: list[int] = []
        size = 0
        for i in members:
            c = len(samples[i].completion_ids)
            if cur and (len(cur) >= max_samples or size + c > max_tokens):
                rows.append(cur)
                cur = []
            if not cur:
                size = base
            cur.append(i)
            size += c
        if cur:
            rows.append(cur)
    return rows


def row_length(samples: Sequence[TrainSample], row: Sequence[int]) -> int:
    """Tokens of a shared row: the prompt once plus each completion."""
    return len(samples[row[0]].prompt_ids) + sum(len(samples[i].completion_ids) for i in row)


def pack_shared(samples: Sequence[TrainSample], max_tokens: int, max_samples: int,
                attention: float = 0.0) -> list[list[list[int]]]:
    """Micro-batches of rows of sample indices. A micro-batch holds at most `max_samples`
    samples and its padded size (rows x longest row) is <= `max_tokens`, unless a single row is
    longer (it cannot be split further). `attention`: `attention_weight` of the model (0: share
    every group). Packed like one row per sample (`batching.pack_micro_batches`): longest first."""
    if max_tokens < 1 or max_samples < 1:
        raise ValueError("max_tokens and max_samples must be >= 1")
    rows = shared_rows(samples, max_tokens, max_samples, attention)
    lens = [row_length(samples, r) for r in rows]
    return [[rows[k] for k in mb] for mb in pack_micro_batches(lens, max_tokens, max_samples, [len(r) for r in rows])]


@dataclass
class SharedMicroBatch:
    input_ids: torch.Tensor  # (R, L) long, rows right-padded
    position_ids: torch.Tensor  # (R, L) long
    attention_mask: torch.Tensor  # (R, 1, L, L) bool (True: may attend) or additive float
    sample_row: torch.Tensor  # (S,) long: the row holding sample s
    predictor: torch.Tensor  # (S, T) long: the row position whose logits predict completion token t
    targets: torch.Tensor  # (S, T) long: completion token t of sample s (0 past its end)
    loss_mask: torch.Tensor  # (S, T) float, 1 for real completion tokens
    old_logprobs: torch.Tensor  # (S, T) float, the sampler's log-probs (0 past the end)
    advantages: torch.Tensor  # (S,) float
    num_tokens: int  # real tokens in the rows (each prompt once)

    def to(self, device: torch.device) -> "SharedMicroBatch":
        move = {k: v.to(device, non_blocking=True) for k, v in vars(self).items() if isinstance(v, torch.Tensor)}
        return SharedMicroBatch(**move, num_tokens=self.num_tokens)

    def model_inputs(self) -> dict[str, torch.Tensor]:
        """Keyword arguments of the model's (or decoder's) forward for these rows."""
        return {"input_ids": self.input_ids, "attention_mask": self.attention_mask, "position_ids": self.position_ids}


def row_layout(samples: Sequence[TrainSample], row: Sequence[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[int]]:
    """One shared row, unpadded: token ids (n,), position ids (n,), the (n, n) bool mask (True:
    may attend) and where each completion starts in the row. A row of one sample is plain causal."""
    P = len(samples[row[0]].prompt_ids)
    n = row_length(samples, row)
    ids, pos = np.zeros(n, dtype=np.int64), np.zeros(n, dtype=np.int64)
    allow = np.zeros((n, n), dtype=bool)
    ids[:P], pos[:P] = samples[row[0]].prompt_ids, np.arange(P)
    allow[:P, :P] = np.tril(np.ones((P, P), dtype=bool))
    starts, at = [], P
    for i in row:
        C = len(samples[i].completion_ids)
        ids[at : at + C], pos[at : at + C] = samples[i].completion_ids, np.arange(P, P + C)
        allow[at : at + C, :P] = True
        allow[at : at + C, at : at + C] = np.tril(np.ones((C, C), dtype=bool))
        starts.append(at)
        at += C
    return ids, pos, allow, starts


def collate_shared(samples: Sequence[TrainSample], rows: Sequence[Sequence[int]], pad_id: int = 0,
                   float_mask: torch.dtype | None = None) -> SharedMicroBatch:
    """Tensors for one micro-batch of shared rows. `float_mask`: build an additive mask of this
    dtype (0 / most negative) instead of a boolean one (the eager implementation adds it)."""
    R, L = len(rows), max(row_length(samples, r) for r in rows)
    order = [i for r in rows for i in r]
    S, T = len(order), max(len(samples[i].completion_ids) for i in order)
    ids = np.full((R, L), pad_id, dtype=np.int64)
    pos = np.zeros((R, L), dtype=np.int64)
    allow = np.zeros((R, L, L), dtype=bool)
    sample_row = np.zeros(S, dtype=np.int64)
    predictor = np.zeros((S, T), dtype=np.int64)
    targets = np.zeros((S, T), dtype=np.int64)
    loss_mask = np.zeros((S, T), dtype=np.float32)
    old = np.zeros((S, T), dtype=np.float32)
    k = 0
    for r, row in enumerate(rows):
        P = len(samples[row[0]].prompt_ids)
        row_ids, row_pos, row_allow, starts = row_layout(samples, row)
        at = len(row_ids)
        ids[r, :at], pos[r, :at], allow[r, :at, :at] = row_ids, row_pos, row_allow
        for i, start in zip(row, starts):
            C = len(samples[i].completion_ids)
            sample_row[k] = r
            predictor[k, 0] = P - 1  # the prompt's last position predicts every first token
            predictor[k, 1:C] = np.arange(start, start + C - 1)
            targets[k, :C], loss_mask[k, :C], old[k, :C] = samples[i].completion_ids, 1.0, samples[i].logprobs
            k += 1
        idx = np.arange(at, L)
        allow[r, idx, idx] = True  # a padding position attends to itself: no empty softmax row (NaN)
        pos[r, at:] = np.arange(L - at) + (pos[r, at - 1] + 1)
    mask = torch.from_numpy(allow).unsqueeze(1)  # (R, 1, L, L)
    if float_mask is not None:
        mask = torch.zeros(mask.shape, dtype=float_mask).masked_fill(~mask, torch.finfo(float_mask).min)
    return SharedMicroBatch(
        input_ids=torch.from_numpy(ids), position_ids=torch.from_numpy(pos), attention_mask=mask,
        sample_row=torch.from_numpy(sample_row), predictor=torch.from_numpy(predictor),
        targets=torch.from_numpy(targets), loss_mask=torch.from_numpy(loss_mask), old_logprobs=torch.from_numpy(old),
        advantages=torch.tensor([samples[i].advantage for i in order], dtype=torch.float32),
        num_tokens=sum(row_length(samples, r) for r in rows),
    )


def gather_predicting_logits(logits: torch.Tensor, mb: SharedMicroBatch) -> torch.Tensor:
    """(R, L, V) row logits -> (S, T, V): for each sample, the logits that predict its tokens."""
    return logits[mb.sample_row.unsqueeze(1), mb.predictor]
