"""How a version's tensors lie in the collective push's buckets, and the checksum over them.

Owns `TensorSpec`, the bucket layout (`layout`: grouped by dtype, manifest order inside a
dtype, every tensor at a 64-byte aligned offset so the checksum reads it as int64 words in
place), the order-sensitive `checksum` (also computable bucket by bucket as buckets arrive:
`tensor_sums` + `fold`), the sender's `SendRing` (two reused bucket buffers: pack one while
the other is on the wire) and the receiver's `ReceiveBuffers` (one reused set per layout).

Buffers are reused because first-touch page faults, not the wire, dominated a push into fresh
buffers: measured here (2 cores, gloo on loopback, 269 MB bf16) 0.21-0.68 s per broadcast into
fresh buffers against 0.09 s into reused ones.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import torch

ALIGN_BYTES = 64
_MASK = (1 << 64) - 1
DTYPES = {str(d).removeprefix("torch."): d for d in (torch.float32, torch.bfloat16, torch.float16,
                                                     torch.float64, torch.int64, torch.int32, torch.uint8)}


@dataclass(frozen=True)
class TensorSpec:
    name: str
    shape: tuple[int, ...]
    dtype: str

    @property
    def numel(self) -> int:
        n = 1
        for s in self.shape:
            n *= s
        return n


@dataclass(frozen=True)
class Bucket:
    """One flat buffer on the wire: `numel` elements of `dtype`, tensor i at element offset o
    for every (i, o) in `members`."""
    dtype: str
    numel: int
    members: tuple[tuple[int, int], ...]

    @property
    def nbytes(self) -> int:
        return self.numel * DTYPES[self.dtype].itemsize


def specs_of(named: Sequence[tuple[str, torch.Tensor]]) -> list[TensorSpec]:
    return [TensorSpec(n, tuple(t.shape), str(t.dtype).removeprefix("torch.")) for n, t in named]


def layout(specs: Sequence[TensorSpec], bucket_bytes: int) -> list[Bucket]:
    """The buckets, sender's and receiver's alike: a bucket closes when the next tensor would
    overflow it (a tensor larger than a bucket travels alone)."""
    buckets: list[Bucket] = []
    for dtype in dict.fromkeys(s.dtype for s in specs):
        item = DTYPES[dtype].itemsize
        align = max(1, ALIGN_BYTES // item)
        members: list[tuple[int, int]] = []
        size = 0
        for i, s in enumerate(specs):
            if s.dtype != dtype:
                continue
            if members and (size + s.numel) * item > bucket_bytes:
                buckets.append(Bucket(dtype, size, tuple(members)))
                members, size = [], 0
            members.append((i, size))
            size += -(-s.numel // align) * align
        if members:
            buckets.append(Bucket(dtype, size, tuple(members)))
    return buckets


def bucket_plan(specs: Sequence[TensorSpec], bucket_bytes: int) -> list[list[int]]:
    """Tensor indices per bucket (the layout without offsets)."""
    return [[i for i, _ in b.members] for b in layout(specs, bucket_bytes)]


def word_sum(t: torch.Tensor) -> int:
    """The wrapping sum of a tensor's bytes read as int64 words (a short tail as bytes): summing
    a bf16 tensor's int16 view into int64 runs 45x slower (measured, 988 MB: 2.9 s vs 0.065 s)."""
    raw = t.detach().contiguous().reshape(-1).view(torch.uint8)
    whole = raw.numel() // 8 * 8
    try:
        words = raw[:whole].view(torch.int64)
    except RuntimeError:  # a caller's view at an offset not 8-byte aligned
        words = raw[:whole].clone().view(torch.int64)
    total = int(words.sum()) if whole else 0
    return total + int(raw[whole:].sum(dtype=torch.int64))


def tensor_sums(tensors: Iterable[torch.Tensor]) -> list[tuple[int, int]]:
    """(word sum, numel) per tensor: the per-tensor part of `checksum`."""
    return [(word_sum(t) & _MASK, t.numel()) for t in tensors]


def fold(sums: Sequence[tuple[int, int]]) -> str:
    """The checksum from per-tensor sums in manifest order."""
    h = 0xCBF29CE484222325
    for i, (s, numel) in enumerate(sums):
        h = ((h ^ s) * 0x100000001B3 + i * 0x9E3779B97F4A7C15 + numel) & _MASK
    return f"{h:016x}"


def checksum(named: Iterable[tuple[str, torch.Tensor]]) -> str:
    """A cheap order-sensitive digest: per tensor, the wrapping int64 sum of its bits viewed as
    integers, folded with the tensor's index and size. Memory speed (one read, no copy); catches
    lost, truncated, reordered or mis-typed tensors and corrupted bytes, not adversaries."""
    return fold(tensor_sums(t for _, t in named))


class SendRing:
    """Two reused byte buffers the sender packs buckets into, alternately."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.buffers: list[torch.Tensor] = []

    def reserve(self, buckets: Sequence[Bucket]) -> None:
        """Room for the largest bucket, before any is packed (never reallocated mid-push)."""
        need = max((b.nbytes for b in buckets), default=0)
        if not self.buffers or self.buffers[0].numel() < need:
            self.buffers = [torch.empty(need, dtype=torch.uint8, device=self.device) for _ in range(2)]

    def buffer(self, k: int, bucket: Bucket) -> torch.Tensor:
        """Bucket k's flat typed buffer (the caller has waited for bucket k-2's send)."""
        return self.buffers[k % 2][: bucket.nbytes].view(DTYPES[bucket.dtype])

    @staticmethod
    def pack(flat: torch.Tensor, bucket: Bucket, named: Sequence[tuple[str, torch.Tensor]]) -> None:
        for i, offset in bucket.members:
            t = named[i][1].detach().reshape(-1)
            flat[offset : offset + t.numel()].copy_(t)


class ReceiveBuffers:
    """The receiver's flat bucket buffers for one layout, kept for the next version of the same
    layout (a new layout reallocates)."""

    def __init__(self) -> None:
        self.key: tuple | None = None
        self.flats: list[torch.Tensor] = []

    def for_layout(self, buckets: Sequence[Bucket], device: torch.device) -> list[torch.Tensor]:
        key = (tuple(buckets), str(device))
        if key != self.key:
            self.flats = [torch.empty(b.numel, dtype=DTYPES[b.dtype], device=device) for b in buckets]
            self.key = key
        return self.flats


def views(flat: torch.Tensor, bucket: Bucket, specs: Sequence[TensorSpec]) -> list[tuple[int, torch.Tensor]]:
    """(tensor index, view) for every member of a received bucket."""
    return [(i, flat[o : o + specs[i].numel].view(specs[i].shape)) for i, o in bucket.members]
