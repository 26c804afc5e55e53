"""What the learner loop works with: rank 0's connections (`Parts`) and one step's gathered
rollouts (`Gathered`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from services.learner.microbatches import TrainSample
from shared.algo.loss import GeneratedCounts
from shared.redis_client import with_retry

if TYPE_CHECKING:  # the types of `Parts` (only rank 0 builds them: see main._rank0_parts)
    import redis

    from services.learner.weight_pusher import WeightPusher
    from shared.broadcast import Broadcast
    from shared.metrics import LearnerMetrics
    from shared.runstate import RunState
    from shared.streams import StreamReader
    from shared.tracking import Tracking
    from shared.weights import WeightStore


@dataclass
class Gathered:
    samples: list[TrainSample] = field(default_factory=list)
    batch_ids: list[str] = field(default_factory=list)
    staleness: list[int] = field(default_factory=list)
    kept: list[float] = field(default_factory=list)
    rewards: list[float] = field(default_factory=list)
    generated_sequences: float = 0.0  # before the sampler's filtering (batch stats), for normalize_by
    generated_tokens: float = 0.0
    wait_s: float = 0.0

    def generated(self) -> GeneratedCounts:
        return GeneratedCounts(self.generated_sequences, self.generated_tokens)


@dataclass
class Parts:
    """What rank 0 talks to; None on other ranks."""

    reader: StreamReader
    """The rollout stream's consumer group."""
    store: WeightStore
    announce: Broadcast
    """`RunKeys.weights`: where a published version is announced."""
    runstate: RunState
    r: redis.Redis
    trained_key: str
    """`RunKeys.trained`: the batch ids of committed steps."""
    metrics: LearnerMetrics | None = None
    tracking: Tracking | None = None
    pusher: WeightPusher | None = None
    """The collective push (`weights.transport: broadcast`); None: the store only. Pushed from
    `_publish` before the store publish."""

    def record_trained(self, batch_ids: list[str]) -> None:
        """Add committed batch ids to `trained_key`, riding out a Redis outage like every other
        call the learner makes (the checkpoint that covers them is already on disk)."""
        stream = self.metrics.stream if self.metrics is not None else None
        with_retry(lambda: self.r.sadd(self.trained_key, *batch_ids),
                   what=f"record trained batch ids {self.trained_key}", metrics=stream)
