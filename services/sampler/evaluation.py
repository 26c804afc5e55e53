"""Periodic evaluation of the served policy on every named eval (`task.evals`): greedy accuracy
and/or unbiased pass@k over n sampled completions, recorded in metrics (label `eval`), in the
heartbeat and as one line per eval of the run's `eval.jsonl`.

A problem counts as solved when its verifier gives the full reward (1.0). Only shard 0 of a
multi-sampler run evaluates, so each version is scored once. The first eval is the headline:
its accuracy is the heartbeat report's `eval_accuracy` (the progress line, the run summary).
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from services.sampler.backends import GenerationBackend, SamplingSettings
from services.sampler.eval_sets import EvalSet
from services.sampler.rewards import RewardPool
from shared.tasks import PromptRenderer
from shared.metrics import SamplerMetrics
from shared.protocol import SamplerReport
from shared.tracking import Tracking, numeric

log = logging.getLogger(__name__)
SOLVED = 1.0 - 1e-6


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from n samples of which c are correct: 1 - C(n-c, k) / C(n, k)
    (Chen et al. 2021), computed exactly with integers."""
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"pass@k needs 0 <= c <= n and 1 <= k <= n (n={n}, c={c}, k={k})")
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


@dataclass
class EvalResult:
    name: str
    version: int
    num_problems: int
    seconds: float
    greedy_accuracy: float | None = None
    greedy_reward_mean: float | None = None
    sampled_accuracy: float | None = None
    """Mean over problems of c/n: the unbiased pass@1 of the sampled completions."""
    sampled_reward_mean: float | None = None
    samples: int = 0
    """n: sampled completions per problem (0: none drawn)."""
    pass_at_k: dict[int, float] = field(default_factory=dict)

    @property
    def accuracy(self) -> float:
        """The eval's one number: greedy accuracy when computed, else sampled pass@1."""
        return self.greedy_accuracy if self.greedy_accuracy is not None else float(self.sampled_accuracy)

    def row(self) -> dict:
        """The eval.jsonl line (numbers not computed are left out)."""
        out = {k: v for k, v in self.__dict__.items() if v is not None and k != "pass_at_k"}
        if self.pass_at_k:
            out["pass_at_k"] = {str(k): v for k, v in self.pass_at_k.items()}
        return {**out, "time": time.time()}


class Evaluator:
    """One named eval: its problems rendered once, scored by its own verifier."""

    def __init__(self, eval_set: EvalSet, renderer: PromptRenderer, pool: RewardPool,
                 settings: SamplingSettings, max_prompt_tokens: int) -> None:
        self.spec, self.reward, self.renderer, self.pool = eval_set.spec, eval_set.reward, renderer, pool
        self.split = f"eval:{self.spec.name}"  # the renderer caches ids per (split, index)
        probs = eval_set.problems
        self.problems = [p for p in probs if len(renderer.ids(p, self.split)) <= max_prompt_tokens]
        self.settings = replace(settings, n=1)
        if len(self.problems) < len(probs):
            log.warning("eval %s: %d of %d problems exceed max_prompt_tokens and are skipped", self.spec.name,
                        len(probs) - len(self.problems), len(probs))

    def score(self, backend: GenerationBackend, settings: SamplingSettings) -> np.ndarray:
        """(num problems, settings.n) rewards of `n` completions per problem."""
        prompts = [self.renderer.ids(p, self.split) for p in self.problems]
        outputs = backend.generate(prompts, settings)
        tok = self.renderer.tokenizer
        items = [(tok.decode(c.token_ids.tolist(), skip_special_tokens=True), p.answer, p.entry)
                 for p, out in zip(self.problems, outputs) for c in out]
        return self.pool.score(items, self.reward).scores.reshape(len(self.problems), settings.n)

    def run(self, backend: GenerationBackend, version: int) -> EvalResult | None:
        if not self.problems:
            return None
        start, spec = time.monotonic(), self.spec
        res = EvalResult(spec.name, version, len(self.problems), 0.0)
        if spec.greedy:
            greedy = self.score(backend, replace(self.settings, temperature=0.0))[:, 0]
            res.greedy_accuracy, res.greedy_reward_mean = float((greedy >= SOLVED).mean()), float(greedy.mean())
        if spec.pass_at_k:
            sampled = self.score(backend, replace(self.settings, n=spec.samples))  # (P, n)
            correct = (sampled >= SOLVED).sum(axis=1)
            res.samples, res.sampled_reward_mean = spec.samples, float(sampled.mean())
            res.sampled_accuracy = float(correct.mean() / spec.samples)
            res.pass_at_k = {k: float(np.mean([pass_at_k(spec.samples, int(c), k) for c in correct]))
                             for k in spec.pass_at_k}
        res.seconds = time.monotonic() - start
        return res


class EvalSuite:
    """Every eval of the run, scored in config order at one policy version."""

    def __init__(self, evaluators: list[Evaluator], run_dir: Path | None,
                 metrics: SamplerMetrics | None = None, tracking: Tracking | None = None) -> None:
        self.evaluators, self.run_dir, self.metrics, self.tracking = evaluators, run_dir, metrics, tracking

    def run(self, backend: GenerationBackend, version: int) -> list[EvalResult]:
        results = [r for r in (e.run(backend, version) for e in self.evaluators) if r is not None]
        for res in results:
            self._record(res)
        return results

    def _record(self, res: EvalResult) -> None:
        ks = ", ".join(f"pass@{k} {v:.3f}" for k, v in res.pass_at_k.items())
        log.info("eval %s v%d: greedy %s%s over %d problems (%.1fs)", res.name, res.version,
                 "-" if res.greedy_accuracy is None else f"{res.greedy_accuracy:.3f}", f", {ks}" if ks else "",
                 res.num_problems, res.seconds)
        if self.metrics:
            for mode, value in (("greedy", res.greedy_accuracy), ("sampled", res.sampled_accuracy)):
                if value is not None:
                    self.metrics.eval_accuracy.labels(eval=res.name, mode=mode).set(value)
            for k, value in res.pass_at_k.items():
                self.metrics.eval_pass_at_k.labels(eval=res.name, k=str(k)).set(value)
        if self.run_dir is not None:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            with open(self.run_dir / "eval.jsonl", "a") as f:
                f.write(json.dumps(res.row()) + "\n")
        if self.tracking:
            figures = numeric(res.row(), f"eval/{res.name}/", skip=("version", "time"))
            self.tracking.log(figures, res.version, "eval/policy_version")


def with_evals(report: SamplerReport, results: list[EvalResult]) -> SamplerReport:
    """`report` with the latest evals: the headline (first eval) as `eval_accuracy` (and
    `eval_accuracy_sampled`, `eval_version`), and each eval's accuracy in `evals` by name."""
    if not results:
        return report
    head = results[0]
    return replace(report, eval_accuracy=head.accuracy, eval_accuracy_sampled=head.sampled_accuracy,
                   eval_version=head.version, evals={r.name: r.accuracy for r in results})


def build_suite(sets: list[EvalSet], renderer: PromptRenderer, pool: RewardPool, settings: SamplingSettings,
                max_prompt_tokens: int, run_dir: Path | None, metrics: SamplerMetrics | None = None,
                tracking: Tracking | None = None) -> EvalSuite:
    """An Evaluator per eval; evals with their own system prompt get their own renderer."""
    renderers = {renderer.system_prompt: renderer}
    evaluators = []
    for s in sets:
        if s.system_prompt not in renderers:
            renderers[s.system_prompt] = PromptRenderer(renderer.tokenizer, s.system_prompt)
        evaluators.append(Evaluator(s, renderers[s.system_prompt], pool, settings, max_prompt_tokens))
    return EvalSuite(evaluators, run_dir, metrics, tracking)


def due(version: int, last_evaluated: int | None, every: int) -> bool:
    """Evaluate when `version` entered a new multiple of `every` (versions may be skipped)."""
    if every <= 0:
        return False
    return last_evaluated is None or version // every > last_evaluated // every
