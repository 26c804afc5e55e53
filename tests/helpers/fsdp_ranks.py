"""Trainer steps on N gloo ranks (torch.multiprocessing), sharded with `learner.parallel: fsdp`.

`run_ranks(world, model_dir, out_dir, learner)` spawns `world` processes; each loads the tiny
model from `model_dir`, shards it (`services.learner.fsdp.shard`), trains one step on the same
`step_samples()` and rank 0 writes the gathered full weights (`weights.safetensors`) and the
step's numbers (`stats.json`) into `out_dir`. `train_single` is the same step in one process,
without sharding: what the ranks must reproduce.
"""

from __future__ import annotations

import faulthandler
import json
import os
from pathlib import Path

import numpy as np

from services.learner.microbatches import TrainSample

FREE = {"OMP_NUM_THREADS": "1"}
HANG_S = 300


def step_samples(n: int = 12, seed: int = 0) -> list[TrainSample]:
    """Groups of 4 completions per prompt (so prompt sharing has rows to share)."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        if i % 4 == 0:
            prompt = rng.integers(4, 100, int(rng.integers(3, 7))).astype(np.int32)
        c = int(rng.integers(2, 8))
        out.append(TrainSample(f"b{i // 4}", prompt, rng.integers(4, 100, c).astype(np.int32),
                               (-rng.random(c) * 3).astype(np.float32), float(rng.normal())))
    return out


def _config(model_dir: Path, learner: dict):
    from shared.config import RunConfig

    return RunConfig.model_validate({
        "model": {"path": str(model_dir)},
        "sampler": {"max_new_tokens": 8, "temperature": 1.0, "top_k": -1},
        "learner": {"lr": 1e-2, "train_batch_size": 12, "micro_batch_size": 4, "micro_batch_tokens": 40,
                    "device": "cpu", **learner}})


def train_single(model_dir: Path, learner: dict) -> tuple[dict, dict]:
    """(state dict after one step, step stats) in this process, the model not sharded."""
    from services.learner import model as modelmod
    from services.learner.trainer import Trainer

    cfg = _config(model_dir, learner)
    place = modelmod.placement(cfg.model, cfg.learner)
    model, _ = modelmod.load_policy(str(model_dir), cfg.model, place)
    stats = Trainer(model, cfg, place).train_step(step_samples(), 1)
    return {k: v.detach().clone() for k, v in model.state_dict().items()}, _numbers(stats)


def _numbers(stats) -> dict:
    return {"loss": stats.loss, "grad_norm": stats.grad_norm, "tokens_processed": stats.tokens_processed,
            "completion_tokens": stats.completion_tokens}


def _rank(rank: int, world: int, model_dir: str, out_dir: str, learner: dict) -> None:
    import torch
    import torch.distributed as dist
    from safetensors.torch import save_file

    from services.learner import model as modelmod
    from services.learner.distributed import DistContext
    from services.learner.fsdp import ShardedPolicy, shard
    from services.learner.trainer import Trainer

    os.environ.update(FREE)
    torch.set_num_threads(1)
    faulthandler.dump_traceback_later(HANG_S, exit=True)  # a collective mismatch hangs: fail instead
    dist.init_process_group("gloo", init_method=f"file://{out_dir}/store", rank=rank, world_size=world)
    try:
        cfg = _config(Path(model_dir), learner)
        ctx = DistContext(rank=rank, world=world)
        place = modelmod.placement(cfg.model, cfg.learner)
        model, _ = modelmod.load_policy(model_dir, cfg.model, place, on_device=False,
                                        activation_checkpointing=cfg.learner.activation_checkpointing)
        model = shard(model, place, world)
        trainer = Trainer(model, cfg, place, ctx)
        stats = trainer.train_step(step_samples(), 1)
        full = ShardedPolicy(model, trainer.optimizer, ctx, place.device).gathered()
        if rank == 0:
            save_file({k: v.contiguous() for k, v in full.state_dict().items()}, f"{out_dir}/weights.safetensors")
            Path(out_dir, "stats.json").write_text(json.dumps(_numbers(stats)))
    finally:
        dist.destroy_process_group()


def run_ranks(world: int, model_dir: Path, out_dir: Path, learner: dict) -> tuple[dict, dict]:
    """(rank 0's gathered state dict after one step, its step stats)."""
    import torch.multiprocessing as mp
    from safetensors.torch import load_file

    out_dir.mkdir(parents=True, exist_ok=True)
    mp.start_processes(_rank, args=(world, str(model_dir), str(out_dir), learner), nprocs=world,
                       start_method="spawn", join=True)
    return load_file(out_dir / "weights.safetensors"), json.loads((out_dir / "stats.json").read_text())
