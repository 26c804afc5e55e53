"""The broadcast path of `benchmarks.weight_transport` through `shared.weight_push`: the learner (this process) hosts the rendezvous TCPStore and is rank 0 of a
one-sampler group; the sampler (a spawned process, the transformers backend) claims seat 1.
Per version the learner computes the announcement's checksum over the tensors and pushes them
in buckets; the sampler receives into fresh buckets (its engine could keep sampling), verifies
the checksum, then `load_tensors` (the pause). One warm-up version first, not counted: a
follower is long-lived, its first push pays for connections and first-touch page faults.

`wire_floor`: the same bytes as one flat buffer broadcast in the same buckets into a reused
buffer, nothing else (no checksum, pack or load): the fastest any gloo push can be on this box.
"""

from __future__ import annotations

import multiprocessing as mp
import time
from datetime import timedelta
from pathlib import Path

import torch

from shared.weight_push import checksum, claim_rank, form_group, open_store, push_version, receive_version

TIMEOUT = timedelta(seconds=120)


def _sampler(folder: str, port: int, versions: int, bucket: int, inbox: mp.Queue, out: mp.Queue) -> None:
    from services.sampler.backends.hf_backend import HFBackend

    backend = HFBackend(folder, dtype="bfloat16")
    store = open_store("127.0.0.1", port, is_learner=False, timeout=TIMEOUT)
    rank = claim_rank(store, 0, 2)
    group = form_group(store, 0, rank, 2, TIMEOUT)
    for _ in range(versions + 1):
        version, digest = inbox.get(timeout=300)  # the announcement (the weights stream's part)
        named = receive_version(group, version, digest, bucket)
        received = time.perf_counter()
        backend.load_tensors(named)
        out.put({"received": received, "applied": time.perf_counter()})


def run_push(model, folder: Path, versions: int, bucket_mb: int = 64) -> list[dict]:
    from benchmarks.transport import free_port

    port, bucket = free_port(), bucket_mb << 20
    store = open_store("127.0.0.1", port, is_learner=True, timeout=TIMEOUT)
    ctx = mp.get_context("spawn")
    inbox, out = ctx.Queue(), ctx.Queue()
    proc = ctx.Process(target=_sampler, args=(str(folder), port, versions, bucket, inbox, out))
    proc.start()
    group = form_group(store, 0, 0, 2, TIMEOUT)
    rows = []
    try:
        for v in range(versions + 1):  # version 0: a warm-up (first connections, page faults), not counted
            t0 = time.perf_counter()
            named = [(n, p.detach()) for n, p in model.named_parameters()]  # already bf16
            inbox.put((v, checksum(named)))
            push_version(group, named, v, bucket)
            sent = time.perf_counter()
            got = out.get(timeout=300)
            if v > 0:
                rows.append({"publish_s": sent - t0, "serving_s": got["applied"] - t0,
                             "pause_s": got["applied"] - got["received"]})
    finally:
        proc.join(60)
    if proc.exitcode != 0:
        raise RuntimeError(f"push sampler exited with {proc.exitcode}")
    return rows


def _wire_rank(rank: int, port: int, nbytes: int, bucket: int, repeats: int, out) -> None:
    store = open_store("127.0.0.1", port, is_learner=rank == 0, timeout=TIMEOUT)
    if rank:
        claim_rank(store, 0, 2)
    group = form_group(store, 0, rank, 2, TIMEOUT)
    buf = torch.ones(nbytes // 2, dtype=torch.bfloat16)
    step = bucket // 2
    best = float("inf")
    for _ in range(repeats + 1):  # the first: connections and page faults
        group.ack(True)  # both sides start together
        t0 = time.perf_counter()
        for work in [group.start(buf[i : i + step]) for i in range(0, buf.numel(), step)]:
            group.wait(work, "broadcast")
        group.ack(True)  # the receiver holds every byte
        best = min(best, time.perf_counter() - t0)
    if out is not None:
        out.put(best)


def wire_floor(nbytes: int, repeats: int = 5, bucket_mb: int = 64) -> dict:
    """Best-of-`repeats` seconds to broadcast `nbytes` over gloo on loopback, reused buffers."""
    from benchmarks.transport import free_port

    port, ctx = free_port(), mp.get_context("spawn")
    out = ctx.Queue()
    proc = ctx.Process(target=_wire_rank, args=(1, port, nbytes, bucket_mb << 20, repeats, None))
    proc.start()
    try:
        _wire_rank(0, port, nbytes, bucket_mb << 20, repeats, out)
    finally:
        proc.join(60)
    best = out.get(timeout=5)
    return {"publish_s": best, "serving_s": best, "pause_s": best}
