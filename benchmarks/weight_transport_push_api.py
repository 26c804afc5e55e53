"""The broadcast path of `benchmarks.weight_transport` through `shared.weight_push`: the learner (this process) hosts the rendezvous TCPStore and is rank 0 of a
one-sampler group; the sampler (a spawned process, the transformers backend) claims seat 1.
Per version the learner computes the announcement's checksum over the tensors and pushes them
in buckets; the sampler receives into fresh buckets (its engine could keep sampling), verifies
the checksum, then `load_tensors` (the pause). One warm-up version first, not counted: a
follower is long-lived, its first push pays for connections and first-touch page faults.
"""

from __future__ import annotations

import multiprocessing as mp
import time
from datetime import timedelta
from pathlib import Path

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
