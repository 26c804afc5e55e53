"""Gradient filtering (DASH): keep a sample iff |advantage| > threshold.

numpy only. With binary rewards and G completions per prompt, a group whose completions all
scored the same has A = 0 for every member; those samples carry no gradient, and dropping them
before the wire saves their forward/backward passes. The sampler applies this; the learner can
re-check a batch with the same function.
"""

from __future__ import annotations

import numpy as np


def keep_mask(advantages: np.ndarray, threshold: float | None) -> np.ndarray:
    """(N,) float -> (N,) bool, True where |A| > threshold (strictly); all True when threshold is
    None (filtering off: zero-advantage samples are backpropagated too, as plain GRPO does)."""
    if threshold is None:
        return np.ones(np.shape(advantages), dtype=bool)
    if threshold < 0:
        raise ValueError(f"threshold must be >= 0, got {threshold}")
    return np.abs(np.asarray(advantages, dtype=np.float64)) > threshold


def kept_fraction(advantages: np.ndarray, threshold: float | None) -> float:
    """Share of samples that survive filtering (1.0 for an empty batch: nothing was dropped)."""
    mask = keep_mask(advantages, threshold)
    return float(mask.mean()) if mask.size else 1.0
