"""Group-relative advantages (GRPO), computed from the rewards of each prompt's completions.

numpy only (no torch): the sampler computes advantages before anything crosses the wire.

Modes (`AlgoConfig.advantage`):
- `grpo`: A = (r - mean_g) / (std_g + eps) with the *unbiased* std (ddof=1), as the paper's
  code (TRL's `rewards.view(-1, G).std(dim=1)`; torch's std is unbiased by default).
- `mean_only`: A = r - mean_g (no std scaling).
- `raw`: A = r.

A group of one sample has no unbiased std (0/0): its advantage is defined as 0 in `grpo` and
`mean_only` mode (r - mean = 0 anyway), so a lone completion carries no gradient and gradient
filtering drops it. Groups are identified by `group_ids` and need not be contiguous.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

AdvantageMode = Literal["grpo", "mean_only", "raw"]


def group_advantages(
    rewards: np.ndarray,  # (N,) float
    group_ids: np.ndarray,  # (N,) int, samples of one prompt share an id
    mode: AdvantageMode = "grpo",
    eps: float = 1e-4,
) -> np.ndarray:  # (N,) float32
    rewards = np.asarray(rewards, dtype=np.float64)
    group_ids = np.asarray(group_ids)
    if rewards.ndim != 1 or group_ids.shape != rewards.shape:
        raise ValueError(f"rewards {rewards.shape} and group_ids {group_ids.shape} must be equal 1-D shapes")
    if mode not in ("grpo", "mean_only", "raw"):
        raise ValueError(f"unknown advantage mode {mode!r}")
    if mode == "raw" or rewards.size == 0:
        return rewards.astype(np.float32)
    _, inverse, counts = np.unique(group_ids, return_inverse=True, return_counts=True)
    sums = np.bincount(inverse, weights=rewards)
    mean = (sums / counts)[inverse]  # (N,) the sample's group mean
    centered = rewards - mean
    if mode == "mean_only":
        return centered.astype(np.float32)
    sq = np.bincount(inverse, weights=centered * centered)  # (groups,)
    with np.errstate(divide="ignore", invalid="ignore"):
        std = np.sqrt(sq / (counts - 1))  # unbiased; nan for groups of one
    adv = centered / (std[inverse] + eps)
    adv[counts[inverse] < 2] = 0.0
    return adv.astype(np.float32)
