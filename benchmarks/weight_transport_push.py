"""The broadcast path for `benchmarks.weight_transport`: the learner (this process, rank 0) and
one sampler (a spawned process, rank 1, serving through the transformers backend) in a gloo
group on 127.0.0.1, the weights broadcast in fixed-size buckets.

`run_broadcast` uses `shared.weight_push` (rendezvous TCPStore, seat, group,
`push_version` / `receive_version` with its checksum, the backend's `load_tensors`) when it is
importable, else `_interim`: a minimal bucketed broadcast written here so that the harness ran
before it was on main. Per version, the interim path: rank 0 packs its parameters into one flat bf16 buffer (a memcpy), broadcasts
it in `bucket_mb` slices (as uint8: gloo has no bf16 or int16 broadcast); rank 1 receives into a staging buffer of
the same size while its engine could keep sampling, then copies the slices into the engine's
parameters (the pause). No checksum is computed over the received tensors (the real path must).
Times are `time.perf_counter()` (CLOCK_MONOTONIC, one clock for both processes on Linux).
"""

from __future__ import annotations

import multiprocessing as mp
import time
from datetime import timedelta
from pathlib import Path


def _flat(params: list, dtype) -> "torch.Tensor":  # noqa: F821
    import torch

    return torch.empty(sum(p.numel() for p in params), dtype=dtype)


def _slices(n: int, bucket: int) -> list[tuple[int, int]]:
    return [(i, min(n, i + bucket)) for i in range(0, n, bucket)]


def _receiver(folder: str, addr: str, port: int, versions: int, bucket: int, out: mp.Queue) -> None:
    import torch
    import torch.distributed as dist

    from services.sampler.backends.hf_backend import HFBackend

    backend = HFBackend(folder, dtype="bfloat16")
    params = [p for _, p in backend.model.named_parameters()]  # tied weights appear once
    dist.init_process_group("gloo", init_method=f"tcp://{addr}:{port}", rank=1, world_size=2,
                            timeout=timedelta(seconds=120))
    staging = _flat(params, torch.bfloat16)
    staging.zero_()  # fault its pages in once: a follower keeps this buffer from version to version
    wire = staging.view(torch.uint8)
    try:
        for _ in range(versions):
            dist.barrier()
            for a, b in _slices(wire.numel(), bucket):
                dist.broadcast(wire[a:b], src=0)
            received = time.perf_counter()
            with torch.inference_mode():
                offset = 0
                for p in params:  # the swap: sampling would stop only here
                    p.copy_(staging[offset: offset + p.numel()].view_as(p))
                    offset += p.numel()
            out.put({"received": received, "applied": time.perf_counter()})
    finally:
        dist.destroy_process_group()


def run_broadcast(model, folder: Path, versions: int, bucket_mb: int = 64) -> tuple[str, list[dict]]:
    """Broadcast `model` `versions` times to one sampler process: (which implementation, per
    version the timings)."""
    try:
        from benchmarks.weight_transport_push_api import run_push
    except ImportError:  # shared.weight_push is not on this branch yet
        return "interim", _interim(model, folder, versions, bucket_mb)
    return "shared.weight_push", run_push(model, folder, versions, bucket_mb)


def _interim(model, folder: Path, versions: int, bucket_mb: int) -> list[dict]:
    import torch
    import torch.distributed as dist

    from benchmarks.transport import free_port

    port, bucket = free_port(), bucket_mb << 20  # bytes
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    proc = ctx.Process(target=_receiver, args=(str(folder), "127.0.0.1", port, versions, bucket, out))
    proc.start()
    params = [p for _, p in model.named_parameters()]
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=0, world_size=2,
                            timeout=timedelta(seconds=120))
    flat = _flat(params, torch.bfloat16)
    flat.zero_()  # as the receiver's staging buffer: allocated and faulted in once, reused per version
    wire = flat.view(torch.uint8)
    rows = []
    try:
        for _ in range(versions):
            dist.barrier()
            t0 = time.perf_counter()
            with torch.no_grad():
                offset = 0
                for p in params:  # pack in the serving dtype
                    flat[offset: offset + p.numel()].copy_(p.detach().reshape(-1))
                    offset += p.numel()
            for a, b in _slices(wire.numel(), bucket):
                dist.broadcast(wire[a:b], src=0)
            sent = time.perf_counter()
            got = out.get(timeout=300)
            rows.append({"publish_s": sent - t0, "serving_s": got["applied"] - t0,
                         "pause_s": got["applied"] - got["received"]})
    finally:
        dist.destroy_process_group()
        proc.join(60)
    if proc.exitcode != 0:
        raise RuntimeError(f"broadcast receiver exited with {proc.exitcode}")
    return rows
