"""Data parallelism across learner ranks (torchrun): gloo on CPU, NCCL on GPU.

How ranks share the stream: only rank 0 talks to Redis. It reads a step's rollouts, encodes
them as one RolloutBatch (msgpack, the wire format; no pickle) and broadcasts the bytes; every
rank decodes the same samples, computes the same micro-batch packing and the same whole-batch
loss totals, and takes micro-batches `rank, rank + world, ...`. Gradients are summed across
ranks with one all-reduce per optimizer update (flattened into buckets), so every rank applies
the identical update and the result equals the single-rank gradient of the whole batch.
Rank 0 alone publishes weights, checkpoints, acks and writes metrics.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass
from typing import Callable

import torch
import torch.distributed as dist
from torch._utils import _flatten_dense_tensors, _unflatten_dense_tensors

BUCKET_ELEMENTS = 1 << 24  # 16M elements per gradient all-reduce


@dataclass(frozen=True)
class DistContext:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world > 1


def init_distributed(use_cuda: bool, always: bool = False) -> DistContext:
    """Join the torchrun group when WORLD_SIZE > 1; a single process needs no group unless
    `always` (FSDP shards over a one-rank group then, so its checkpoints are the same kind)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1 and always and not dist.is_initialized():
        if use_cuda:
            torch.cuda.set_device(0)
        dist.init_process_group("nccl" if use_cuda else "gloo", store=dist.HashStore(), rank=0, world_size=1)
    if world <= 1:
        return DistContext()
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if use_cuda:
        torch.cuda.set_device(local_rank)
    # rank 0 may wait on Redis for a long time between steps: a generous collective timeout
    dist.init_process_group("nccl" if use_cuda else "gloo", timeout=datetime.timedelta(hours=2))
    return DistContext(rank=dist.get_rank(), world=dist.get_world_size(), local_rank=local_rank)


def shutdown(ctx: DistContext) -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def broadcast_bytes(ctx: DistContext, data: bytes | None, device: torch.device,
                    on_op: Callable[[int], None] | None = None) -> bytes | None:
    """Rank 0's `data` on every rank; None (rank 0 says stop) arrives as None. While waiting, the
    other ranks run `on_op(op)` for each `announce(op)` of rank 0's (a collective it is about to
    run outside a step: see `fsdp.ShardedPolicy`) and wait again."""
    if not ctx.enabled:
        return data
    while True:
        header = torch.tensor([-1 if data is None else len(data)], dtype=torch.int64, device=device)
        dist.broadcast(header, src=0)
        n = int(header.item())
        if n >= -1 or on_op is None:
            break
        on_op(-n - 1)
    if n < 0:
        return None
    buf = (torch.frombuffer(bytearray(data), dtype=torch.uint8).to(device) if ctx.is_main
           else torch.empty(n, dtype=torch.uint8, device=device))
    if n:
        dist.broadcast(buf, src=0)
    return bytes(buf.cpu().numpy()) if n else b""


def announce(ctx: DistContext, op: int, device: torch.device) -> None:
    """Rank 0: tell the ranks waiting in `broadcast_bytes` to run `on_op(op)` (op >= 1)."""
    if ctx.enabled:
        dist.broadcast(torch.tensor([-op - 1], dtype=torch.int64, device=device), src=0)


def allreduce_grads(ctx: DistContext, params: list[torch.nn.Parameter]) -> None:
    """Sum gradients over ranks (a rank without micro-batches contributes zeros)."""
    if not ctx.enabled:
        return
    for p in params:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
    bucket: list[torch.Tensor] = []
    size = 0
    for p in params:
        bucket.append(p.grad)
        size += p.numel()
        if size >= BUCKET_ELEMENTS:
            _reduce_bucket(bucket)
            bucket, size = [], 0
    if bucket:
        _reduce_bucket(bucket)


def _reduce_bucket(grads: list[torch.Tensor]) -> None:
    flat = _flatten_dense_tensors(grads)
    dist.all_reduce(flat)
    for g, reduced in zip(grads, _unflatten_dense_tensors(flat, grads)):
        g.copy_(reduced)


def allreduce_sum(ctx: DistContext, values: list[float], device: torch.device) -> list[float]:
    """Element-wise sum of small per-rank statistics."""
    if not ctx.enabled:
        return values
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.tolist()


def allreduce_max(ctx: DistContext, values: list[float], device: torch.device) -> list[float]:
    """Element-wise max of small per-rank statistics."""
    if not ctx.enabled:
        return values
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return t.tolist()
