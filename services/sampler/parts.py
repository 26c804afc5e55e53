"""The sampler's parts, built and wired together: `build_loop` (what tests and benchmarks drive
directly) and `build_sampler` (the whole process: metrics server, run state, trackers,
watchdog, heartbeat, loop), which `main` runs and closes.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import redis

from services.sampler.loop import SamplerLoop
from services.sampler.watchdog import Watchdog
from shared.config import Deployment, RunConfig
from shared.heartbeat import HeartbeatSender
from shared.keys import RunKeys
from shared.metrics import SamplerMetrics, sampler_metrics, serve, tracker_errors
from shared.run_folder import run_dir
from shared.runstate import RunState
from shared.streams import StreamWriter, connect
from shared.tracking import Tracking

log = logging.getLogger("dashrl.sampler")
HEARTBEAT_S = 5.0


def instance_id(cfg: RunConfig) -> str:
    """This sampler's name in heartbeats and on its rollout batches."""
    return f"{socket.gethostname()}-{os.getpid()}-shard{cfg.sampler.shard_index}"


def build_loop(cfg: RunConfig, r: redis.Redis, run_id: str, metrics: SamplerMetrics, local_dir: Path, *,
               backend=None, should_stop: Callable[[], bool] = lambda: False, watchdog: Watchdog | None = None,
               tracking: Tracking | None = None) -> SamplerLoop:
    """The sampler loop with every part it drives. `backend`: an already started backend
    serving `cfg.model.path` (tests reuse one vLLM engine)."""
    from transformers import AutoTokenizer

    from services.sampler.backends import make_backend
    from services.sampler.eval_sets import exclude_eval_questions, load_eval_sets
    from services.sampler.evaluation import build_suite
    from services.sampler.finisher import BatchFinisher
    from services.sampler.rewards import RewardPool, reward_spec
    from services.sampler.weights_follower import WeightsFollower
    from shared.tasks import PromptRenderer, load_task
    from shared.weights import make_store

    s, keys = cfg.sampler, RunKeys(run_id)
    tokenizer = AutoTokenizer.from_pretrained(cfg.model.path, trust_remote_code=cfg.model.trust_remote_code)
    task = load_task(cfg.task, cfg.data_seed)
    # Every shard loads the evals, though only shard 0 scores them: the training list each
    # shard takes its part of must be the same one (eval questions dropped) on all of them.
    eval_sets = load_eval_sets(cfg.task, task, cfg.data_seed)
    task = exclude_eval_questions(task, eval_sets)
    renderer = PromptRenderer(tokenizer, task.system_prompt)
    pool = RewardPool(reward_spec(cfg.task), cfg.task.reward_timeout_s, cfg.task.reward_workers,
                      also=tuple(e.reward for e in eval_sets))
    backend = backend or make_backend(cfg)
    store = make_store(cfg.learner.weight_store.kind, run_id=run_id, root=run_dir(cfg, run_id) / "weights", r=r,
                       keep_versions=cfg.learner.keep_versions, metrics=metrics.stream)
    follower = WeightsFollower(r, run_id, store, backend, local_dir, metrics,
                               fetch_timeout_s=s.weight_fetch_timeout_s, pushed=_push_receiver(cfg, r, keys, metrics, backend))
    follower.catch_up()
    if s.mode == "async" and s.prefetch_weights:
        follower.start_prefetch()  # fetch + verify off the sampling loop; the swap pays the load
    writer = StreamWriter(r, keys.rollouts, backlog_key=keys.backlog, max_backlog=cfg.streams.max_backlog,
                          metrics=metrics.stream)
    calls_log = run_dir(cfg, run_id) / f"sampler-{s.shard_index}.jsonl"
    calls_log.parent.mkdir(parents=True, exist_ok=True)
    finisher = BatchFinisher(writer, cfg.algo, run_id=run_id, sampler_id=instance_id(cfg), metrics=metrics,
                             should_stop=should_stop, calls_log=calls_log)
    evaluator = None
    if s.eval_every > 0 and s.shard_index == 0 and any(e.problems for e in eval_sets):
        evaluator = build_suite(eval_sets, renderer, pool, SamplerLoop.sampling_settings(cfg, renderer),
                                s.max_prompt_tokens, run_dir(cfg, run_id), metrics, tracking)
    return SamplerLoop(cfg, backend=backend, renderer=renderer, task=task, pool=pool, follower=follower,
                       finisher=finisher, evaluator=evaluator, metrics=metrics, watchdog=watchdog,
                       tracking=tracking)


def _push_receiver(cfg: RunConfig, r: redis.Redis, keys: RunKeys, metrics: SamplerMetrics, backend):
    """The collective push's receiving thread, when `weights.transport: broadcast` (else None).
    A backend that cannot load pushed tensors takes no seat and follows the store, loudly."""
    if cfg.weights.transport.kind != "broadcast":
        return None
    if not backend.loads_tensors:
        log.warning("sampler: weights.transport is broadcast but the %s backend cannot load pushed tensors; "
                    "this sampler takes no seat and follows the store", backend.name)
        metrics.push.fallbacks.labels(reason="backend").inc()
        return None
    from services.sampler.push_receiver import PushReceiver
    from shared.broadcast import Broadcast
    from shared.protocol import WeightsPushed

    return PushReceiver(cfg.weights.transport, Broadcast(r, keys.weights_push, expect=WeightsPushed), metrics.push)


@dataclass
class Sampler:
    """A sampler process's parts; `run` once, then `close` (always)."""

    loop: SamplerLoop
    runstate: RunState
    heartbeat: HeartbeatSender
    watchdog: Watchdog
    tracking: Tracking
    local_dir: Path
    signalled: threading.Event
    failed: bool = field(default=False)

    def should_stop(self) -> bool:
        return self.signalled.is_set() or self.runstate.should_stop()

    def run(self) -> None:
        """Sample until the run state says stop or a signal comes; the one place a failure is
        noted (the last heartbeat then says `failed`)."""
        self.heartbeat.state = "running"
        self.heartbeat.start()
        try:
            self.loop.run(self.should_stop)
        except BaseException:
            self.failed = True
            raise
        log.info("sampler: stopping (%s)", "signal" if self.signalled.is_set() else "run state")

    def close(self) -> None:
        """Hand over what was generated, free every part, send the last heartbeat."""
        self.watchdog.close()
        self.loop.close()
        self.tracking.close()
        self.heartbeat.stop("failed" if self.failed else "stopped")
        shutil.rmtree(self.local_dir, ignore_errors=True)


def build_sampler(cfg: RunConfig, dep: Deployment, signalled: threading.Event) -> Sampler:
    """Every part of a sampler process, ready to `run`."""
    r = connect(dep.redis_url)
    runstate = RunState(r, cfg.run_id, retry_s=60.0)  # ride out Redis restarts (with_retry logs each)
    metrics, reg = sampler_metrics()
    log.info("sampler: metrics on port %d", serve(reg, dep.metrics_port))
    local_dir = Path(tempfile.mkdtemp(prefix="dashrl-sampler-"))
    tracking = Tracking.for_run(cfg, run_dir(cfg, cfg.run_id), f"sampler-{cfg.sampler.shard_index}",
                                tracker_errors(reg, "sampler"))
    # The watchdog exits the process right after a stalled call's `failed` heartbeat (the
    # heartbeat is made below, after the loop whose report it sends).
    watchdog = Watchdog({"generate": cfg.sampler.generate_timeout_s}, on_stall=lambda *_: heartbeat.stop("failed"))
    try:
        loop = build_loop(cfg, r, cfg.run_id, metrics, local_dir, watchdog=watchdog, tracking=tracking,
                          should_stop=lambda: signalled.is_set() or runstate.should_stop())
    except BaseException:
        watchdog.close()
        tracking.close()
        shutil.rmtree(local_dir, ignore_errors=True)
        raise
    heartbeat = HeartbeatSender(runstate, instance_id(cfg), loop.report, HEARTBEAT_S)
    return Sampler(loop, runstate, heartbeat, watchdog, tracking, local_dir, signalled)
