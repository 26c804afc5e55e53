"""The order in which this sampler sees a task's training problems.

The order is a seeded permutation per epoch; with several samplers, sampler k takes every
num_shards-th problem of that permutation starting at k, so shards are disjoint and together cover
every problem once per epoch. What the problems are, the train/held-out split and how a problem
becomes prompt ids are the shared task vocabulary (`shared/tasks/`), re-exported here for the
sampler's modules.
"""

from __future__ import annotations

import numpy as np

from shared.tasks import JSONL_SYSTEM_PROMPT, Problem, PromptRenderer, TaskSet, load_task, read_rows

__all__ = ["JSONL_SYSTEM_PROMPT", "Problem", "PromptOrder", "PromptRenderer", "TaskSet", "load_task", "read_rows"]


class PromptOrder:
    """Seeded, endless order over `n` problems for one shard: `take(k)` returns the next k indices."""

    def __init__(self, n: int, seed: int, num_shards: int = 1, shard_index: int = 0) -> None:
        if not 0 <= shard_index < num_shards:
            raise ValueError(f"shard_index {shard_index} out of range for {num_shards} shards")
        if n < num_shards:
            raise ValueError(f"{n} problems cannot fill {num_shards} shards")
        self.n, self.seed, self.num_shards, self.shard_index = n, seed, num_shards, shard_index
        self.epoch, self.offset = 0, 0
        self._current = self.shard(0)

    def shard(self, epoch: int) -> np.ndarray:
        """This shard's problem indices for `epoch` (every shard uses the same permutation)."""
        perm = np.random.default_rng([self.seed, epoch]).permutation(self.n)
        return perm[self.shard_index :: self.num_shards]

    def take(self, k: int) -> list[int]:
        out: list[int] = []
        while len(out) < k:
            if self.offset == len(self._current):
                self.epoch, self.offset = self.epoch + 1, 0
                self._current = self.shard(self.epoch)
            step = min(k - len(out), len(self._current) - self.offset)
            out.extend(self._current[self.offset : self.offset + step].tolist())
            self.offset += step
        return out
