"""The collective weight push: a version's tensors broadcast from the learner's rank 0 to every
sampler over a process group of their own (`weights.transport: broadcast`).

Owns the rendezvous (a `TCPStore` hosted by the learner, samplers claiming ranks 1..N per
generation), the group (gloo on CPU, NCCL on CUDA, never torch.distributed's default group,
which the learner may use for DDP/FSDP), and `push_version` / `receive_version` (the buckets'
layout, the reused buffers and the checksum are `shared.push_layout`'s). Every collective waits
at most `timeout`; any failure raises `PushFailed` with a reason, marks the group broken (a
gloo group is undefined after a timeout), and the caller falls back to the store for that
version and re-forms at a later generation.

Wire order per version: a header (int64: version, manifest length), the manifest (JSON names,
shapes, dtypes, uint8), then the flat buckets in `layout` order. The checksum the
announcement carries (`checksum`) is over the tensors themselves, so the receiver verifies what
it received, not what it was sent.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist

from shared.push_layout import (ReceiveBuffers, SendRing, TensorSpec, bucket_plan, checksum, fold, layout,
                                specs_of, tensor_sums, views)

log = logging.getLogger(__name__)

DEFAULT_BUCKET_BYTES = 64 << 20
__all__ = ["PushFailed", "PushGroup", "TensorSpec", "bucket_plan", "checksum", "claim_rank", "form_group",
           "open_store", "push_version", "receive_version"]


class PushFailed(RuntimeError):
    """A push or receive that did not complete; `reason` labels the fallback metric."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"weight push failed ({reason}): {detail}")
        self.reason = reason


class PushGroup:
    """One generation of the push group: rank 0 the learner, ranks 1.. the samplers."""

    def __init__(self, pg: dist.ProcessGroup, rank: int, world_size: int, generation: int,
                 timeout: timedelta, device: torch.device) -> None:
        self.pg, self.rank, self.world_size, self.generation = pg, rank, world_size, generation
        self.timeout, self.device = timeout, device
        self.broken = False
        self.ring = SendRing(device)  # rank 0's reused bucket buffers
        self.inbox = ReceiveBuffers()  # a receiver's, unless the caller brings its own

    def broadcast(self, tensor: torch.Tensor) -> None:
        self.wait(self.start(tensor), "broadcast")

    def start(self, tensor: torch.Tensor):
        """Start broadcasting `tensor` from rank 0 (in place on the others); `wait` ends it."""
        if self.broken:
            raise PushFailed("broken", f"generation {self.generation} already broken")
        opts = dist.BroadcastOptions()
        opts.rootRank = 0
        try:
            return self.pg.broadcast([tensor], opts)
        except Exception as err:
            self.broken = True
            raise PushFailed("broken", f"broadcast: {type(err).__name__}: {err}") from err

    def ack(self, ok: bool) -> bool:
        """End of a version: every rank says whether it holds it intact; True when all do. Also
        what makes the sender wait for its receivers (a small broadcast may return before the
        bytes arrived), so a stalled sampler times the push out instead of going unnoticed."""
        if self.broken:
            raise PushFailed("broken", f"generation {self.generation} already broken")
        flag = torch.tensor([1 if ok else 0], dtype=torch.int64, device=self.device)
        opts = dist.AllreduceOptions()
        opts.reduceOp = dist.ReduceOp.MIN
        self.wait(self.pg.allreduce([flag], opts), "ack")
        return bool(flag.item())

    def wait(self, work, what: str) -> None:
        try:
            work.wait(self.timeout)
        except Exception as err:  # gloo/NCCL raise RuntimeError subclasses on timeout or a lost peer
            self.broken = True
            text = str(err).lower()
            reason = "timeout" if "timed out" in text or "timeout" in text else "broken"
            raise PushFailed(reason, f"{what}: {type(err).__name__}: {err}") from err


def open_store(host: str, port: int, *, is_learner: bool, timeout: timedelta) -> dist.TCPStore:
    """The rendezvous store: hosted by the learner's rank 0, reached by every sampler."""
    return dist.TCPStore(host, port, is_master=is_learner, wait_for_workers=False, timeout=timeout,
                         use_libuv=True)


def claim_rank(store: dist.Store, generation: int, world_size: int) -> int | None:
    """A sampler's rank in `generation` (1..world_size-1), or None when every seat is taken (a
    late joiner: it follows the store until a later generation has room)."""
    rank = int(store.add(f"gen{generation}/seats", 1))
    return rank if rank < world_size else None


def form_group(store: dist.Store, generation: int, rank: int, world_size: int,
               timeout: timedelta) -> PushGroup:
    """Join generation `generation` (blocks until all ranks connect, at most `timeout`)."""
    prefixed = dist.PrefixStore(f"gen{generation}", store)
    cuda = torch.cuda.is_available() and dist.is_nccl_available()
    try:
        if cuda:
            opts = dist.ProcessGroupNCCL.Options()
            opts._timeout = timeout
            pg = dist.ProcessGroupNCCL(prefixed, rank, world_size, opts)
        else:
            pg = dist.ProcessGroupGloo(prefixed, rank, world_size, timeout)
    except Exception as err:
        raise PushFailed("form", f"generation {generation} rank {rank}: {err}") from err
    device = torch.device("cuda", torch.cuda.current_device()) if cuda else torch.device("cpu")
    return PushGroup(pg, rank, world_size, generation, timeout, device)


@dataclass
class PushReport:
    version: int
    byte_size: int
    seconds: float


def push_version(group: PushGroup, named: list[tuple[str, torch.Tensor]], version: int,
                 bucket_bytes: int = DEFAULT_BUCKET_BYTES) -> PushReport:
    """Rank 0: broadcast `named` (already in the serving dtype) as version `version`. Packs
    bucket k+1 into the ring while bucket k is on the wire."""
    start = time.monotonic()
    specs = specs_of(named)
    manifest = torch.frombuffer(bytearray(json.dumps([[s.name, s.shape, s.dtype] for s in specs]).encode()),
                                dtype=torch.uint8)
    group.broadcast(torch.tensor([version, manifest.numel()], dtype=torch.int64, device=group.device))
    group.broadcast(manifest.to(group.device))
    buckets = layout(specs, bucket_bytes)
    group.ring.reserve(buckets)
    works: list = []
    for k, bucket in enumerate(buckets):
        if k >= 2:
            group.wait(works[k - 2], "broadcast")  # its ring buffer is the one packed next
        flat = group.ring.buffer(k, bucket)
        SendRing.pack(flat, bucket, named)
        works.append(group.start(flat))
    for work in works[-2:]:
        group.wait(work, "broadcast")
    if not group.ack(True):
        raise PushFailed("checksum", f"v{version}: a receiver's checksum did not match")
    total = sum(t.numel() * t.element_size() for _, t in named)
    return PushReport(version, total, time.monotonic() - start)


def receive_version(group: PushGroup, version: int, expected_checksum: str,
                    bucket_bytes: int = DEFAULT_BUCKET_BYTES,
                    buffers: ReceiveBuffers | None = None) -> list[tuple[str, torch.Tensor]]:
    """Ranks 1..: receive version `version` and verify it against the announced checksum.

    Returns (name, tensor) views into `buffers` (default: the group's own, reused by the next
    receive), in the sender's order; nothing is loaded here, so a failed or corrupt version
    never reaches the engine. Every bucket's receive is posted at once and each is summed as
    it lands, beside the ones still on the wire. Raises PushFailed."""
    header = torch.zeros(2, dtype=torch.int64, device=group.device)
    group.broadcast(header)
    sent_version, manifest_len = (int(x) for x in header.tolist())
    if sent_version != version:
        group.broken = True  # the two sides disagree on what is in flight: the stream is out of step
        raise PushFailed("version", f"announced v{version}, the group carries v{sent_version}")
    manifest = torch.zeros(manifest_len, dtype=torch.uint8, device=group.device)
    group.broadcast(manifest)
    specs = [TensorSpec(n, tuple(s), d) for n, s, d in json.loads(bytes(manifest.cpu().numpy()))]
    buckets = layout(specs, bucket_bytes)
    flats = (buffers or group.inbox).for_layout(buckets, group.device)
    works = [group.start(flat) for flat in flats]
    out: list[torch.Tensor | None] = [None] * len(specs)
    sums: list[tuple[int, int] | None] = [None] * len(specs)
    for bucket, flat, work in zip(buckets, flats, works):
        group.wait(work, "broadcast")
        members = views(flat, bucket, specs)
        for (i, view), s in zip(members, tensor_sums(v for _, v in members)):
            out[i], sums[i] = view, s
    got = fold(sums)
    group.ack(got == expected_checksum)
    if got != expected_checksum:
        raise PushFailed("checksum", f"v{version}: received {got}, announced {expected_checksum}")
    return [(s.name, t) for s, t in zip(specs, out)]
