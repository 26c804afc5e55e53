"""The back half of the sampler, off the generation loop: wait for scores, compute advantages,
filter, push.

`BatchFinisher` runs in its own thread so the generation loop starts the next call as soon as a
batch is handed over (the scores themselves come from the reward process pool). The hand-off
queue holds one batch, so when the learner stops consuming (stream back-pressure) the finisher
blocks, then the loop blocks: sampling never runs further ahead than `streams.max_backlog`.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from services.sampler.rollout_assembly import Generated, assemble
from services.sampler.rewards import ScoreJob
from shared.config import AlgoConfig
from shared.metrics import SamplerMetrics
from shared.protocol import RolloutBatch, encode
from shared.streams import BackpressureTimeout, StreamWriter

log = logging.getLogger(__name__)


@dataclass
class Pending:
    gen: Generated
    job: ScoreJob


class BatchFinisher:
    def __init__(self, writer: StreamWriter, algo: AlgoConfig, *, run_id: str, sampler_id: str,
                 metrics: SamplerMetrics | None = None, should_stop: Callable[[], bool] = lambda: False,
                 on_pushed: Callable[[RolloutBatch], None] | None = None, calls_log: Path | None = None) -> None:
        self.writer, self.algo, self.run_id, self.sampler_id = writer, algo, run_id, sampler_id
        self.calls_log = calls_log  # one JSON line per generation call: where the sampler's time went
        self.should_stop = should_stop  # the run's stop condition: a blocked push gives up on it
        self.metrics, self.on_pushed = metrics, on_pushed
        self.latest_stats: dict[str, float] = {}
        self.kept_by_version: Counter = Counter()  # samples pushed per policy version
        self.totals: Counter = Counter()  # samples (generated), samples_kept, batches (pushed)
        self._queue: queue.Queue[Pending | None] = queue.Queue(maxsize=1)
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="batch-finisher", daemon=True)
        self._thread.start()

    def submit(self, pending: Pending) -> bool:
        """Hand over a generated batch; blocks while the previous one is still being finished
        (back-pressure). False when the run stops first (the batch is dropped and counted)."""
        while True:
            self.raise_if_failed()
            try:
                self._queue.put(pending, timeout=1.0)
                return True
            except queue.Full:
                if self._stop.is_set() or self.should_stop():
                    self._dropped(sum(len(g) for g in pending.gen.outputs))
                    return False

    def flush(self) -> None:
        """Wait until every submitted batch is pushed (or dropped on stop)."""
        self._queue.join()
        self.raise_if_failed()

    def raise_if_failed(self) -> None:
        if self._error is not None:
            raise RuntimeError("batch finisher failed") from self._error

    def close(self, drain: bool = True) -> None:
        """Stop the thread; with drain, finish what was submitted first (bounded by back-pressure)."""
        if not drain:
            self._stop.set()
        self._queue.put(None)
        self._thread.join()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            try:
                if item is None:
                    return
                self._finish(item)
            except BaseException as err:  # surfaced in the loop thread by raise_if_failed()
                log.exception("batch finisher: failed")
                self._error = err
                self._stop.set()
            finally:
                self._queue.task_done()

    def _finish(self, p: Pending) -> None:
        scored = p.job.result()
        extra = {"reward_failures": float(sum(scored.failures.values())), "score_s": scored.seconds}
        batch, stats = assemble(p.gen, scored.scores, self.algo, run_id=self.run_id,
                                sampler_id=self.sampler_id, extra_stats=extra)
        self.latest_stats = stats
        self._record(stats, scored.failures)
        self.totals.update(samples=int(stats["num_samples"]), samples_kept=int(stats["num_kept"]))
        t0 = time.perf_counter()
        pushed = bool(len(batch)) and self._push(batch)
        if pushed:
            self.kept_by_version[batch.policy_version] += len(batch)
            if self.on_pushed:
                self.on_pushed(batch)
        self._log_call(batch, stats, pushed, time.perf_counter() - t0)

    def _log_call(self, batch: RolloutBatch, stats: dict[str, float], pushed: bool, push_s: float) -> None:
        if self.calls_log is None:
            return
        line = {"time": time.time(), "policy_version": batch.policy_version, "pushed": pushed, "push_s": push_s,
                **{k: stats[k] for k in ("generate_s", "score_s", "num_samples", "num_kept", "reward_mean")},
                "completion_len_mean": stats.get("completion_len_mean")}  # over every sample generated
        with open(self.calls_log, "a") as f:
            f.write(json.dumps(line) + "\n")

    def _push(self, batch: RolloutBatch) -> bool:
        payload = encode(batch)
        while True:
            try:
                self.writer.write(payload, timeout=1.0)
                break
            except BackpressureTimeout:  # the learner is behind; keep waiting unless we are stopping
                if self._stop.is_set() or self.should_stop():
                    self._dropped(len(batch))
                    return False
        self.totals["batches"] += 1
        # one line per batch: the audit trail the reliability tests check the learner's ledger against
        log.info("sampler: pushed batch %s (policy version %d, %d samples)", batch.batch_id, batch.policy_version,
                 len(batch))
        if self.metrics:
            self.metrics.batches.inc()
        return True

    def _dropped(self, n: int) -> None:
        log.warning("sampler: stopping; %d generated samples not pushed", n)
        if self.metrics:
            self.metrics.samples.labels(outcome="dropped_on_stop").inc(n)

    def _record(self, stats: dict[str, float], failures: Counter) -> None:
        m = self.metrics
        if m is None:
            return
        m.samples.labels(outcome="kept").inc(stats["num_kept"])
        m.samples.labels(outcome="filtered").inc(stats["num_samples"] - stats["num_kept"])
        m.reward_mean.set(stats["reward_mean"])
        m.kept_fraction.set(stats["kept_fraction"])
        m.completion_len_mean.set(stats["completion_len_mean"])
        m.truncated_fraction.set(stats["truncated_fraction"])
        for kind, n in failures.items():
            m.reward_failures.labels(kind=kind).inc(n)

    def stop(self) -> None:
        """Ask a finisher blocked on back-pressure to give up its batch (shutdown)."""
        self._stop.set()
