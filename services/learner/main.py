"""`dashrl learner CONFIG [--set k=v ...] [--resume]`: build the learner's parts, run its loop.

Exits 0 when the run is finished (max_steps, or a stop requested through the run state:
`final/` written, `learner_done` set) or after SIGTERM/SIGINT (the current step finishes and
is committed; `--resume` continues later); 1 on an unexpected error. Under torchrun every rank
runs this; only rank 0 connects to Redis.
"""

from __future__ import annotations

import argparse
import logging
import signal
from pathlib import Path

from shared import run_folder
from shared.config import Deployment, RunConfig
from shared.configio import ConfigError, add_config_args, dump_config, load_config

log = logging.getLogger("dashrl.learner")


def add_args(p: argparse.ArgumentParser) -> None:
    add_config_args(p)
    p.add_argument("--resume", action="store_true",
                   help="continue from the newest checkpoint in the run folder (fresh start if none)")


def _check(cfg: RunConfig, dep: Deployment, resume: bool) -> Path:
    """Refuse a config the learner cannot run; returns the run folder."""
    from services.learner.checkpoint import latest_checkpoint

    if cfg.run_id is None:
        raise ConfigError("run_id: required by the learner (set it with --set run_id=...)")
    if not dep.redis_url:
        raise ConfigError("DASHRL_REDIS_URL: required by the learner")
    run_dir = run_folder.run_dir(cfg)
    if not resume and latest_checkpoint(run_dir) is not None:
        raise ConfigError(f"{run_dir}: the run already has checkpoints; pass --resume to continue it "
                          "(starting over would train its batches twice)")
    return run_dir


def build_learner(cfg: RunConfig, dep: Deployment, run_dir: Path, resume: bool):
    import torch

    from services.learner import distributed, model as modelmod
    from services.learner.checkpoint import LearnerState, latest_checkpoint, load_checkpoint
    from services.learner.fsdp import ShardedPolicy, check_resumable, shard
    from services.learner.loop import Learner
    from services.learner.trainer import Trainer

    use_cuda = cfg.learner.device == "cuda" or (cfg.learner.device == "auto" and torch.cuda.is_available())
    fsdp = cfg.learner.parallel == "fsdp"
    ctx = distributed.init_distributed(use_cuda, always=fsdp)
    place = modelmod.placement(cfg.model, cfg.learner, ctx.local_rank)
    torch.manual_seed(cfg.seed)
    path, trainer_state, state = cfg.model.path, None, LearnerState()
    ckpt = latest_checkpoint(run_dir) if resume else None
    if ckpt is not None:
        check_resumable(ckpt, cfg.learner.parallel)
        folder, trainer_state, state = load_checkpoint(ckpt, place.device)
        path = folder or path  # sharded: the starting model, then its dcp/ shards
        log.info("resuming from %s (step %d)", ckpt, state.step)
    lora = cfg.model.lora  # a LoRA checkpoint holds the adapter: the base is the starting model
    model, tokenizer = modelmod.load_policy(cfg.model.path if lora else str(path), cfg.model, place, on_device=not fsdp,
                                            activation_checkpointing=cfg.learner.activation_checkpointing)
    if lora is not None:
        from services.learner.lora import apply_lora

        model = apply_lora(model, lora, adapter=path if ckpt is not None else None)
    if fsdp:  # after LoRA: fully_shard wraps the adapted modules
        model = shard(model, place, ctx.world)
    ref = modelmod.load_reference(cfg.model.path, cfg.model, place) if cfg.algo.kl_beta > 0 else None
    trainer = Trainer(model, cfg, place, ctx, ref_model=ref, pad_id=modelmod.pad_token_id(tokenizer))
    sharded = ShardedPolicy(model, trainer.optimizer, ctx, place.device) if fsdp else None
    if trainer_state is not None:
        trainer.load_state_dict(trainer_state)
        if sharded is not None:
            sharded.load(ckpt)
    parts = _rank0_parts(cfg, dep, run_dir, state) if ctx.is_main else None
    return Learner(cfg, run_dir, ctx, trainer, tokenizer, state, parts, instance_id=f"learner-{ctx.rank}",
                   sharded=sharded), ctx


def _rank0_parts(cfg: RunConfig, dep: Deployment, run_dir: Path, state):
    from services.learner.parts import Parts
    from services.learner.steplog import StepLog
    from shared.broadcast import Broadcast
    from shared.keys import RunKeys
    from shared.metrics import learner_metrics, serve, tracker_errors
    from shared.protocol import RolloutBatch, WeightsPublished
    from shared.runstate import RunState
    from shared.streams import StreamReader, connect
    from shared.weights import make_store

    run_dir.mkdir(parents=True, exist_ok=True)
    if not (run_dir / "config.yaml").exists():
        (run_dir / "config.yaml").write_text(dump_config(cfg))
    dropped = StepLog(run_dir / "metrics.jsonl").truncate_after(state.step)
    if dropped:
        log.info("metrics.jsonl: dropped %d lines of steps after the checkpoint (they will be redone)", dropped)
    metrics, reg = learner_metrics()
    log.info("learner: metrics on port %d", serve(reg, dep.metrics_port))
    metrics.policy_version.set(state.policy_version)
    r, keys, sc = connect(dep.redis_url), RunKeys(cfg.run_id), cfg.streams
    # one consumer name across restarts: the resumed learner gets its own unacked entries back first
    reader = StreamReader(r, keys.rollouts, keys.rollouts_group, "learner-0", backlog_key=keys.backlog,
                          deadletter=keys.deadletter, expect=RolloutBatch, claim_idle_ms=sc.claim_idle_ms,
                          block_ms=sc.block_ms, deadletter_maxlen=sc.deadletter_maxlen, metrics=metrics.stream)
    store = make_store(cfg.learner.weight_store.kind, run_id=cfg.run_id, root=run_dir / "weights", r=r,
                       keep_versions=cfg.learner.keep_versions, metrics=metrics.stream)
    announce = Broadcast(r, keys.weights, expect=WeightsPublished, metrics=metrics.stream)
    from shared.tracking import Tracking

    tracking = Tracking.for_run(cfg, run_dir, "learner", tracker_errors(reg, "learner"))
    pusher = None
    if cfg.weights.transport.kind == "broadcast":
        from services.learner.weight_pusher import WeightPusher
        from shared.protocol import WeightsPushed

        pusher = WeightPusher(cfg.weights.transport, Broadcast(r, keys.weights_push, expect=WeightsPushed,
                                                               metrics=metrics.stream), cfg.run_id, metrics.push)
    return Parts(reader=reader, store=store, announce=announce, runstate=RunState(r, cfg.run_id, retry_s=60.0), r=r,
                 trained_key=keys.trained, metrics=metrics, tracking=tracking, pusher=pusher)


def main(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    cfg = load_config(args.config, args.overrides)
    dep = Deployment.from_env()
    run_dir = _check(cfg, dep, args.resume)
    learner, ctx = build_learner(cfg, dep, run_dir, args.resume)

    def on_signal(signum, _frame):
        log.info("learner: %s received; finishing the current step", signal.Signals(signum).name)
        learner.signalled = True

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, on_signal)
    from services.learner.distributed import shutdown

    try:
        finished = learner.run()
        log.info("learner: %s at step %d", "finished" if finished else "stopped by signal", learner.state.step)
        return 0
    except Exception:
        log.exception("learner: failed")  # its last heartbeat already says `failed` (Learner.run)
        return 1
    finally:
        shutdown(ctx)
