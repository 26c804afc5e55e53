"""Periodic held-out evaluation: accuracy of the served policy, greedy and at the sampling
temperature, recorded in metrics, in the heartbeat and as a line of the run's `eval.jsonl`.

A problem counts as solved when its verifier gives the full reward (1.0). Only shard 0 of a
multi-sampler run evaluates, so each version is scored once.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from services.sampler.backends import GenerationBackend, SamplingSettings
from services.sampler.rewards import RewardPool
from services.sampler.tasks import Problem, PromptRenderer
from shared.metrics import SamplerMetrics

log = logging.getLogger(__name__)
SOLVED = 1.0 - 1e-6


@dataclass
class EvalResult:
    version: int
    greedy_accuracy: float
    sampled_accuracy: float
    greedy_reward_mean: float
    sampled_reward_mean: float
    num_problems: int
    seconds: float


class Evaluator:
    def __init__(self, problems: list[Problem], renderer: PromptRenderer, pool: RewardPool,
                 settings: SamplingSettings, max_prompt_tokens: int, run_dir: Path | None,
                 metrics: SamplerMetrics | None = None) -> None:
        fits = [p for p in problems if len(renderer.ids(p, "eval")) <= max_prompt_tokens]
        self.problems, self.renderer, self.pool = fits, renderer, pool
        self.settings = replace(settings, n=1)
        self.run_dir, self.metrics = run_dir, metrics
        if len(fits) < len(problems):
            log.warning("eval: %d of %d problems exceed max_prompt_tokens and are skipped",
                        len(problems) - len(fits), len(problems))

    def score(self, backend: GenerationBackend, settings: SamplingSettings) -> np.ndarray:
        """(num problems,) rewards of one completion per held-out problem."""
        prompts = [self.renderer.ids(p, "eval") for p in self.problems]
        outputs = backend.generate(prompts, settings)
        tok = self.renderer.tokenizer
        items = [(tok.decode(out[0].token_ids.tolist(), skip_special_tokens=True), p.answer, p.entry)
                 for p, out in zip(self.problems, outputs)]
        return self.pool.score(items).scores

    def run(self, backend: GenerationBackend, version: int) -> EvalResult | None:
        if not self.problems:
            return None
        start = time.monotonic()
        greedy = self.score(backend, replace(self.settings, temperature=0.0))
        sampled = self.score(backend, self.settings)
        res = EvalResult(version, float((greedy >= SOLVED).mean()), float((sampled >= SOLVED).mean()),
                         float(greedy.mean()), float(sampled.mean()), len(self.problems),
                         time.monotonic() - start)
        self._record(res)
        return res

    def _record(self, res: EvalResult) -> None:
        log.info("eval v%d: greedy %.3f, sampled %.3f over %d problems (%.1fs)", res.version,
                 res.greedy_accuracy, res.sampled_accuracy, res.num_problems, res.seconds)
        if self.metrics:
            self.metrics.eval_accuracy.labels(mode="greedy").set(res.greedy_accuracy)
            self.metrics.eval_accuracy.labels(mode="sampled").set(res.sampled_accuracy)
        if self.run_dir is not None:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            with open(self.run_dir / "eval.jsonl", "a") as f:
                f.write(json.dumps({**res.__dict__, "time": time.time()}) + "\n")


def due(version: int, last_evaluated: int | None, every: int) -> bool:
    """Evaluate when `version` entered a new multiple of `every` (versions may be skipped)."""
    if every <= 0:
        return False
    return last_evaluated is None or version // every > last_evaluated // every
