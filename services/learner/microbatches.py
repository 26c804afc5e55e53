"""From rollout batches to padded micro-batch tensors.

Owns three small steps, the first two pure:
- `train_samples`: unpack a RolloutBatch into per-sample rows (dropping rows nothing can be
  learned from: no prompt token to predict the first completion token from, or no completion);
- `pack_micro_batches`: group samples under a token budget (padded prompt + completion tokens)
  and a sample cap, longest first so that padding stays small; `update_groups`: which samples
  each optimizer update of a step uses (PPO none / multi / mini);
- `collate`: right-padded tensors with the loss mask at the completion's target positions.

`learner.packing` replaces the padded rows by one unpadded row per micro-batch (`packing`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from shared.protocol import RolloutBatch


@dataclass
class TrainSample:
    batch_id: str
    prompt_ids: np.ndarray  # (P,) int32, P >= 1
    completion_ids: np.ndarray  # (C,) int32, C >= 1
    logprobs: np.ndarray  # (C,) float32, the sampler's log-prob of each completion token
    advantage: float

    @property
    def length(self) -> int:
        return len(self.prompt_ids) + len(self.completion_ids)


def train_samples(batch: RolloutBatch) -> tuple[list[TrainSample], int]:
    """(usable samples, number dropped for having no prompt or no completion tokens)."""
    out, dropped = [], 0
    for s in batch.samples():
        if len(s.prompt_ids) == 0 or len(s.completion_ids) == 0:
            dropped += 1
            continue
        out.append(TrainSample(batch.batch_id, s.prompt_ids, s.completion_ids, s.logprobs, s.advantage))
    return out, dropped


def pack_micro_batches(lengths: Sequence[int], max_tokens: int, max_samples: int,
                       counts: Sequence[int] | None = None) -> list[list[int]]:
    """Indices into `lengths`, grouped so that each group's padded size (count x its longest)
    is <= `max_tokens` and its samples <= `max_samples`. An item holds `counts[i]` samples (1
    each by default; a shared row of `prompt_sharing` holds several). An item longer than the
    budget forms a group of its own (it cannot be split). Deterministic: longest first, ties by index."""
    if max_tokens < 1 or max_samples < 1:
        raise ValueError("max_tokens and max_samples must be >= 1")
    counts = [1] * len(lengths) if counts is None else counts
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    groups: list[list[int]] = []
    held = 0  # samples in the last group
    for i in order:
        cur = groups[-1] if groups else None
        # sorted descending: the group's longest is its first member
        if cur and held + counts[i] <= max_samples and (len(cur) + 1) * lengths[cur[0]] <= max_tokens:
            cur.append(i)
            held += counts[i]
        else:
            groups.append([i])
            held = counts[i]
    return groups


def update_groups(n: int, ppo: str, epochs: int, seed: int) -> list[list[int]]:
    """Sample indices of each optimizer update in one step.
    none: one update on all n; multi: `epochs` updates, each on all n (PPO-Multi);
    mini: the n samples shuffled (seeded) and split into `epochs` mini-batches (PPO-Mini)."""
    every = list(range(n))
    if ppo == "none":
        return [every]
    if ppo == "multi":
        return [every for _ in range(epochs)]
    if ppo == "mini":
        perm = np.random.default_rng(seed).permutation(n)
        return [sorted(int(i) for i in part) for part in np.array_split(perm, min(epochs, n)) if len(part)]
    raise ValueError(f"unknown ppo mode {ppo!r}")


@dataclass
class MicroBatch:
    input_ids: torch.Tensor  # (B, L) long, prompt + completion, right-padded
    attention_mask: torch.Tensor  # (B, L) long
    targets: torch.Tensor  # (B, L-1) long, input_ids shifted left: what each position predicts
    loss_mask: torch.Tensor  # (B, L-1) float, 1 where the target is a completion token
    old_logprobs: torch.Tensor  # (B, L-1) float, sampler log-probs at those positions (0 elsewhere)
    advantages: torch.Tensor  # (B,) float
    num_tokens: int  # real (unpadded) prompt + completion tokens

    def to(self, device: torch.device) -> "MicroBatch":
        move = {k: v.to(device, non_blocking=True) for k, v in vars(self).items() if isinstance(v, torch.Tensor)}
        return MicroBatch(**move, num_tokens=self.num_tokens)

    def model_inputs(self) -> dict[str, torch.Tensor]:
        """Keyword arguments of the model's (or decoder's) forward for these rows."""
        return {"input_ids": self.input_ids, "attention_mask": self.attention_mask}


def collate(samples: Sequence[TrainSample], pad_id: int = 0) -> MicroBatch:
    L = max(s.length for s in samples)
    B = len(samples)
    ids = np.full((B, L), pad_id, dtype=np.int64)
    attn = np.zeros((B, L), dtype=np.int64)
    loss_mask = np.zeros((B, L - 1), dtype=np.float32)
    old = np.zeros((B, L - 1), dtype=np.float32)
    for i, s in enumerate(samples):
        P, C = len(s.prompt_ids), len(s.completion_ids)
        ids[i, :P], ids[i, P : P + C] = s.prompt_ids, s.completion_ids
        attn[i, : P + C] = 1
        # completion token j sits at position P + j and is predicted by position P + j - 1
        loss_mask[i, P - 1 : P - 1 + C] = 1.0
        old[i, P - 1 : P - 1 + C] = s.logprobs
    t = torch.from_numpy(ids)
    return MicroBatch(
        input_ids=t, attention_mask=torch.from_numpy(attn), targets=t[:, 1:].contiguous(),
        loss_mask=torch.from_numpy(loss_mask), old_logprobs=torch.from_numpy(old),
        advantages=torch.tensor([s.advantage for s in samples], dtype=torch.float32),
        num_tokens=int(attn.sum()),
    )
