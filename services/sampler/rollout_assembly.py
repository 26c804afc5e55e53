"""Turning one generation call into a RolloutBatch: advantages, gradient filtering, stats.

Pure (numpy only, no I/O): given the prompts, the completions, their rewards and the algorithm
config, compute each sample's group advantage, keep only samples with |A| > threshold (the
ones that carry gradient), and measure the whole batch *before* filtering.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

import numpy as np

from services.sampler.backends.base import Completion
from shared.algo.advantages import group_advantages
from shared.algo.filtering import keep_mask
from shared.config import AlgoConfig
from shared.protocol import FinishReason, RolloutBatch, Sample


@dataclass
class Generated:
    """One generation call's output, before scoring."""

    prompts: list[list[int]]  # (M,) prompt token ids
    problem_ids: list[int]  # (M,) index of each prompt's problem in the train split
    outputs: list[list[Completion]]  # (M, G)
    policy_version: int
    generate_s: float
    first_group_id: int
    """Group ids of this call are first_group_id .. first_group_id + M - 1."""
    newest_version: int | None = None
    """The version served when the call ended, if a swap between engine steps changed it."""

    def flat(self) -> list[tuple[int, Completion]]:
        """(prompt position, completion) in sample order: prompt-major, G per prompt."""
        return [(i, c) for i, group in enumerate(self.outputs) for c in group]

    @property
    def num_tokens(self) -> int:
        return sum(len(c.token_ids) for _, c in self.flat())


def batch_stats(gen: Generated, rewards: np.ndarray, keep: np.ndarray) -> dict[str, float]:
    """Numbers over the whole call (before filtering); they travel in the batch and in metrics."""
    lens = np.array([len(c.token_ids) for _, c in gen.flat()], dtype=np.float64)  # (N,)
    truncated = np.array([c.finish_reason == FinishReason.LENGTH for _, c in gen.flat()])
    n = max(len(lens), 1)
    newest = gen.policy_version if gen.newest_version is None else gen.newest_version
    return {
        "num_prompts": float(len(gen.prompts)),
        "num_samples": float(len(lens)),
        "num_kept": float(keep.sum()),
        "kept_fraction": float(keep.sum() / n),
        "reward_mean": float(rewards.mean()) if rewards.size else 0.0,
        "reward_std": float(rewards.std()) if rewards.size else 0.0,
        "completion_len_mean": float(lens.mean()) if lens.size else 0.0,
        "completion_len_max": float(lens.max()) if lens.size else 0.0,
        "truncated_fraction": float(truncated.sum() / n),
        "completion_tokens": float(lens.sum()),
        "generate_s": gen.generate_s,
        "tokens_per_s": float(lens.sum() / gen.generate_s) if gen.generate_s > 0 else 0.0,
        # a swap between engine steps: completions in flight then span two versions
        "spans_versions": float(newest != gen.policy_version),
        "policy_version_newest": float(newest),
    }


def assemble(gen: Generated, rewards: np.ndarray, algo: AlgoConfig, *, run_id: str, sampler_id: str,
             extra_stats: dict[str, float] | None = None) -> tuple[RolloutBatch, dict[str, float]]:
    """The filtered batch (possibly empty) and its stats. `rewards` is (N,) in `gen.flat()` order."""
    flat = gen.flat()
    if len(flat) != len(rewards):
        raise ValueError(f"{len(rewards)} rewards for {len(flat)} completions")
    group_ids = np.array([gen.first_group_id + i for i, _ in flat], dtype=np.int64)  # (N,)
    adv = group_advantages(rewards, group_ids, mode=algo.advantage, eps=algo.advantage_eps)  # (N,)
    keep = keep_mask(adv, algo.filter_threshold)  # (N,) bool
    stats = batch_stats(gen, rewards, keep)
    stats.update(extra_stats or {})
    samples = [
        Sample(
            prompt_ids=np.asarray(gen.prompts[i], dtype=np.int32), completion_ids=c.token_ids,
            logprobs=c.logprobs, reward=float(rewards[k]), advantage=float(adv[k]),
            group_id=int(group_ids[k] % (1 << 31)), finish_reason=c.finish_reason,
        )
        for k, (i, c) in enumerate(flat) if keep[k]
    ]
    batch = RolloutBatch.from_samples(
        samples, run_id=run_id, batch_id=uuid.uuid4().hex, sampler_id=sampler_id,
        policy_version=gen.policy_version, created_at=time.time(), stats=stats,
    )
    return batch, stats
