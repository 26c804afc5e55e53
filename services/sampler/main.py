"""`dashrl sampler CONFIG [--set k=v ...]`: build the sampler's parts and run its loop.

Exits 0 when the run's state says stop (stop requested or the learner is done) or on
SIGTERM/SIGINT, after handing over what it already generated; 1 on an unexpected error.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import signal
import socket
import tempfile
import threading
from pathlib import Path

from shared.config import Deployment, RunConfig
from shared.configio import ConfigError, load_config
from shared.keys import RunKeys
from shared.metrics import sampler_metrics, serve
from shared.run_folder import run_dir
from shared.runstate import RunState
from shared.streams import StreamWriter, connect

log = logging.getLogger("dashrl.sampler")


def build(cfg: RunConfig, r, run_id: str, metrics, local_dir: Path, backend=None, should_stop=lambda: False):
    """Every part of the sampler, wired together; returns (loop, sampler_id). `backend`: an
    already started backend serving `cfg.model.path` (tests reuse one vLLM engine)."""
    from transformers import AutoTokenizer

    from services.sampler.backends import make_backend
    from services.sampler.eval_sets import exclude_eval_questions, load_eval_sets
    from services.sampler.evaluation import build_suite
    from services.sampler.loop import SamplerLoop
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
    store = make_store(cfg.learner.weight_store, run_id=run_id, root=run_dir(cfg, run_id) / "weights", r=r,
                       keep_versions=cfg.learner.keep_versions)
    follower = WeightsFollower(r, run_id, store, backend, local_dir, metrics,
                               fetch_timeout_s=s.weight_fetch_timeout_s)
    follower.catch_up()
    writer = StreamWriter(r, keys.rollouts, backlog_key=keys.backlog, max_backlog=cfg.streams.max_backlog,
                          metrics=metrics.stream)
    sampler_id = f"{socket.gethostname()}-{os.getpid()}-shard{s.shard_index}"
    calls_log = run_dir(cfg, run_id) / f"sampler-{s.shard_index}.jsonl"
    calls_log.parent.mkdir(parents=True, exist_ok=True)
    finisher = BatchFinisher(writer, cfg.algo, run_id=run_id, sampler_id=sampler_id, metrics=metrics,
                             should_stop=should_stop, calls_log=calls_log)
    evaluator = None
    if s.eval_every > 0 and s.shard_index == 0 and any(e.problems for e in eval_sets):
        evaluator = build_suite(eval_sets, renderer, pool, SamplerLoop.sampling_settings(cfg, renderer),
                                s.max_prompt_tokens, run_dir(cfg, run_id), metrics)
    return SamplerLoop(cfg, backend=backend, renderer=renderer, task=task, pool=pool, follower=follower,
                       finisher=finisher, evaluator=evaluator, metrics=metrics), sampler_id


def _tracking(cfg: RunConfig, reg):
    """The run's experiment trackers (`tracking:`), one tracker run per sampler shard."""
    from shared.metrics import tracker_errors
    from shared.tracking import Tracking

    return Tracking.for_run(cfg, run_dir(cfg, cfg.run_id), f"sampler-{cfg.sampler.shard_index}",
                            tracker_errors(reg, "sampler"))


def main(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    cfg = load_config(args.config, args.overrides)
    if cfg.run_id is None:
        raise ConfigError("run_id: required by the sampler (set it with --set run_id=...)")
    dep = Deployment.from_env()
    if not dep.redis_url:
        raise ConfigError("DASHRL_REDIS_URL: required by the sampler")
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    r = connect(dep.redis_url)
    state = RunState(r, cfg.run_id, retry_s=60.0)  # ride out Redis restarts (with_retry logs each)
    metrics, reg = sampler_metrics()
    port = serve(reg, dep.metrics_port)
    log.info("sampler: metrics on port %d", port)
    local_dir = Path(tempfile.mkdtemp(prefix="dashrl-sampler-"))
    loop = heartbeat = None
    try:
        from services.sampler.loop import Heartbeater
        from services.sampler.watchdog import Watchdog

        should_stop = lambda: stop.is_set() or state.should_stop()  # noqa: E731
        loop, sampler_id = build(cfg, r, cfg.run_id, metrics, local_dir, should_stop=should_stop)
        loop.tracking = _tracking(cfg, reg)
        if loop.evaluator is not None:
            loop.evaluator.tracking = loop.tracking
        heartbeat = Heartbeater(lambda st, info: state.heartbeat("sampler", sampler_id, st, info), loop.info).start()
        heartbeat.state = "running"

        def stalled(call: str, ran_s: float) -> None:  # the watchdog exits the process right after
            heartbeat.state = "failed"
            state.heartbeat("sampler", sampler_id, "failed", {**loop.info(), f"stalled_{call}_s": ran_s})

        loop.watchdog = Watchdog({"generate": cfg.sampler.generate_timeout_s}, on_stall=stalled)
        loop.run(should_stop)
        log.info("sampler: stopping (%s)", "signal" if stop.is_set() else "run state")
        return 0
    except ConfigError:
        if heartbeat:
            heartbeat.state = "failed"
        raise  # the CLI prints it as one line naming the file, row or key, and exits 2
    except Exception:
        log.exception("sampler: failed")
        if heartbeat:
            heartbeat.state = "failed"
        return 1
    finally:
        if loop is not None:
            if loop.watchdog is not None:
                loop.watchdog.close()
            loop.close()
            if loop.tracking is not None:
                loop.tracking.close()
        if heartbeat:
            heartbeat.stop("failed" if heartbeat.state == "failed" else "stopped")
        shutil.rmtree(local_dir, ignore_errors=True)
