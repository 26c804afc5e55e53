"""The sampler loop: maybe swap weights -> one large generation call -> hand off for scoring,
advantages, filtering and the push (finisher.py) -> repeat.

Preemptive sampling: each call generates M prompts x G completions at once (`sampling_batch_prompts`,
`group_size`), independent of the learner's micro-batch. Modes:
- async: before every call, switch to the newest announced weights (on vLLM's in-process
  engine also between two engine steps of a call, `sampler.swap_mid_call`: the batch then says
  it spans two versions); keep sampling while the learner trains. Stream back-pressure (`streams.max_backlog`) bounds how far ahead it runs, so
  rollouts stay within the learner's `max_staleness` window instead of being made and discarded.
- sync (the GRPO baseline): sample with version v until one learner update's worth of samples
  (train_batch_size x publish_every, after filtering) is pushed, then wait for version v+1.
  Several samplers (`num_shards`) share that quota (`sync_share`) instead of each filling it,
  which would make all but one sampler's worth of every version's rollouts stale.
"""

from __future__ import annotations

import logging
import time
from contextlib import nullcontext
from typing import Callable

from services.sampler.backends import GenerationBackend, SamplingSettings
from services.sampler.rollout_assembly import Generated
from services.sampler.evaluation import EvalResult, EvalSuite, due, with_evals
from services.sampler.finisher import BatchFinisher, Pending
from services.sampler.rewards import RewardPool
from services.sampler.tasks import PromptOrder
from services.sampler.watchdog import Watchdog
from services.sampler.weights_follower import WeightsFollower
from shared.config import RunConfig
from shared.metrics import SamplerMetrics
from shared.stop_tokens import StopTokens, stop_tokens
from shared.tasks import PromptRenderer, TaskSet
from shared.protocol import SamplerReport
from shared.tracking import Tracking, numeric

log = logging.getLogger(__name__)


def sync_share(need: int, num_shards: int, shard_index: int) -> int:
    """This shard's part of a sync-mode version's quota: the shards' parts sum to `need`."""
    base, extra = divmod(need, num_shards)
    return base + (1 if shard_index < extra else 0)


class SamplerLoop:
    def __init__(self, cfg: RunConfig, *, backend: GenerationBackend, renderer: PromptRenderer, task: TaskSet,
                 pool: RewardPool, follower: WeightsFollower, finisher: BatchFinisher,
                 evaluator: EvalSuite | None = None, metrics: SamplerMetrics | None = None,
                 watchdog: Watchdog | None = None, tracking: Tracking | None = None) -> None:
        """`watchdog` bounds each generation call by `sampler.generate_timeout_s`; `tracking`
        (the experiment trackers) is fed once per call."""
        s = cfg.sampler
        self.cfg, self.backend, self.renderer, self.task = cfg, backend, renderer, task
        self.pool, self.follower, self.finisher = pool, follower, finisher
        self.evaluator, self.metrics, self.watchdog, self.tracking = evaluator, metrics, watchdog, tracking
        self.order = PromptOrder(len(task.train), cfg.seed, s.num_shards, s.shard_index)
        self.settings = self.sampling_settings(cfg, renderer)
        self.calls = 0
        self.prompts_issued = 0
        self.last_eval_version: int | None = None
        self.eval_results: list[EvalResult] = []
        self.tokens_per_s: float | None = None

    @staticmethod
    def sampling_settings(cfg: RunConfig, renderer: PromptRenderer | None = None) -> SamplingSettings:
        """The run's sampling settings; with the prompt renderer, its stop ids too (the model's
        eos ids and, when prompts go through the chat template, the template's turn end)."""
        s = cfg.sampler
        stop = stop_tokens(renderer.tokenizer, chat_template=renderer.uses_chat_template,
                           model_path=cfg.model.path) if renderer is not None else StopTokens()
        return SamplingSettings(n=s.group_size, temperature=s.temperature, top_k=s.top_k, top_p=s.top_p,
                                max_new_tokens=s.max_new_tokens, seed=cfg.seed, stop=stop)

    def generate(self) -> Generated:
        """One preemptive-sampling call: the next M problems of this shard, G completions each."""
        s = self.cfg.sampler
        ids = self.order.take(s.sampling_batch_prompts)
        prompts, kept_ids = [], []
        for i in ids:
            p = self.renderer.ids(self.task.train[i])
            if len(p) <= s.max_prompt_tokens:
                prompts.append(p)
                kept_ids.append(i)
        if self.metrics and len(kept_ids) < len(ids):
            self.metrics.prompts_dropped.inc(len(ids) - len(kept_ids))
        first_group = self.prompts_issued * s.num_shards + s.shard_index  # unique across shards
        self.prompts_issued += len(prompts)
        seed = self.cfg.seed * 1_000_003 + s.shard_index * 7_919 + self.calls
        self.calls += 1
        version = self.follower.version  # stamped before the call: these tokens come from it
        start = time.monotonic()
        settings = SamplingSettings(**{**self.settings.__dict__, "seed": seed})
        with self.watchdog.guard("generate") if self.watchdog else nullcontext():
            outputs = self._call(prompts, settings) if prompts else []
        gen = Generated(prompts, kept_ids, outputs, version, time.monotonic() - start, first_group,
                        newest_version=self.follower.version)
        self._record_generation(gen)
        return gen

    def _call(self, prompts: list[list[int]], settings: SamplingSettings):
        s = self.cfg.sampler
        if s.mode == "async" and s.swap_mid_call and self.backend.swaps_mid_call:
            return self.backend.generate_stepped(prompts, settings, self.follower.swap_ready)
        return self.backend.generate(prompts, settings)

    def _record_generation(self, gen: Generated) -> None:
        tokens = gen.num_tokens
        self.tokens_per_s = tokens / gen.generate_s if gen.generate_s > 0 else 0.0
        if self.metrics:
            self.metrics.tokens.inc(tokens)
            self.metrics.generate_seconds.observe(gen.generate_s)
            self.metrics.tokens_per_s.set(self.tokens_per_s)

    def score_async(self, gen: Generated) -> Pending:
        """Decode the completions and send them to the reward pool (returns at once)."""
        tok = self.renderer.tokenizer
        items = [(tok.decode(c.token_ids.tolist(), skip_special_tokens=True),
                  self.task.train[gen.problem_ids[i]].answer, self.task.train[gen.problem_ids[i]].entry)
                 for i, c in gen.flat()]
        return Pending(gen, self.pool.submit(items))

    def maybe_eval(self) -> None:
        v = self.follower.version
        if self.evaluator is None or not due(v, self.last_eval_version, self.cfg.sampler.eval_every):
            return
        results = self.evaluator.run(self.backend, v)
        self.last_eval_version = v
        if results:
            self.eval_results = results

    def step(self, should_stop: Callable[[], bool]) -> None:
        """One iteration: swap if a newer version is out, maybe eval, generate, hand off."""
        self.follower.poll()
        self.maybe_eval()
        gen = self.generate()
        if not gen.prompts:
            log.warning("sampler: every prompt of this call exceeded max_prompt_tokens")
            return
        self.finisher.submit(self.score_async(gen))
        if self.tracking:  # generation and reward figures (rewards: the latest scored batch)
            figures = {k: v for k, v in self.report().numbers().items() if not k.startswith("eval")}
            self.tracking.log(numeric(figures, "sampler/"), self.calls, "sampler/call")
        if self.cfg.sampler.mode == "sync":
            self.finisher.flush()
            s = self.cfg.sampler
            need = sync_share(self.cfg.learner.train_batch_size * self.cfg.learner.publish_every,
                              s.num_shards, s.shard_index)
            if self.finisher.kept_by_version[gen.policy_version] >= need:
                self.follower.wait_for_newer(gen.policy_version, should_stop)

    def run(self, should_stop: Callable[[], bool], max_calls: int | None = None) -> None:
        while not should_stop() and (max_calls is None or self.calls < max_calls):
            self.step(should_stop)

    def close(self) -> None:
        """Hand over what was generated (giving up on a batch back-pressure holds > 1 s), free the parts."""
        self.finisher.stop()
        self.finisher.close()
        self.pool.close()
        self.follower.close()  # the push receiver's thread, if any
        self.backend.close()

    def report(self) -> SamplerReport:
        """What this sampler's heartbeat reports now."""
        totals, stats = self.finisher.totals, self.finisher.latest_stats
        report = SamplerReport(
            policy_version=self.follower.version, calls=self.calls, samples=totals["samples"],
            samples_kept=totals["samples_kept"], batches=totals["batches"], tokens_per_s=self.tokens_per_s,
            reward_mean=stats.get("reward_mean"), kept_fraction=stats.get("kept_fraction"),
            completion_len_mean=stats.get("completion_len_mean"), truncated_fraction=stats.get("truncated_fraction"),
            weight_sync_s=self.follower.last_sync_s, stalled=self.watchdog.overran if self.watchdog else {})
        return with_evals(report, self.eval_results)

