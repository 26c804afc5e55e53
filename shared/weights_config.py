"""The run's `weights:` section: how a weight version travels from the learner to the samplers.
Read by both the learner (hosts the push group) and every sampler (joins it). Re-exported by
`shared.config`."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from shared.config_base import Strict, tagged_union


class StoreTransport(Strict):
    kind: Literal["store"] = "store"
    """Every version through the weight store only (`learner.weight_store`)."""


class BroadcastTransport(Strict):
    kind: Literal["broadcast"] = "broadcast"
    """Every version broadcast over a process group (shared.weight_push; NCCL on CUDA, gloo on
    CPU) and also published to the store, which checkpoints, late joiners and any sampler whose
    receive failed read instead."""
    host: str = "127.0.0.1"
    """Where the learner's rank 0 hosts the rendezvous TCPStore (samplers connect here)."""
    port: int = Field(default=29600, ge=1, le=65535)
    samplers: int = Field(default=1, ge=1)
    """Seats in a push group (world size - 1); a sampler that finds none follows the store."""
    timeout_s: float = Field(default=30.0, gt=0)
    """Bound on forming the group and on each collective of a push."""
    bucket_mb: int = Field(default=64, ge=1)
    """Flat bucket size of a push, MiB."""


WeightTransport = tagged_union(StoreTransport, BroadcastTransport, default="store")


class WeightsConfig(Strict):
    transport: WeightTransport = Field(default_factory=StoreTransport)
    """`store` (default) or `broadcast`."""
