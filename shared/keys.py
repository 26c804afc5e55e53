"""Redis key names, all namespaced by run id, in one place.

Every service derives the names it reads and writes from here, so two runs on one Redis never
touch each other's keys, and a reader of the code finds the whole key space on one page.
"""

from __future__ import annotations

from dataclasses import dataclass

PREFIX = "dashrl"
RUNS_INDEX = f"{PREFIX}:runs"
"""Sorted set of run ids by creation time (the control plane's list of runs)."""
PAYLOAD_FIELD = b"m"
"""The field holding the encoded message in every stream entry."""
ASSIGNMENTS = f"{PREFIX}:assignments"
"""Stream of RunAssignment messages that long-running workers (compose, Kubernetes) wait on."""


@dataclass(frozen=True)
class RunKeys:
    run_id: str

    def _k(self, name: str) -> str:
        return f"{PREFIX}:{self.run_id}:{name}"

    @property
    def rollouts(self) -> str:
        """Stream of RolloutBatch entries, sampler -> learner."""
        return self._k("rollouts")

    rollouts_group: str = "learners"
    """Consumer group the learner ranks read rollouts through."""

    @property
    def backlog(self) -> str:
        """Hash {produced, committed}: entries written vs acked, for back-pressure. Writers also
        INCR `<backlog>:writes`, the key they WATCH (`shared.streams_writer`)."""
        return self._k("backlog")

    @property
    def deadletter(self) -> str:
        """Stream of undecodable entries with the reason they were refused."""
        return self._k("deadletter")

    @property
    def weights(self) -> str:
        """Stream of WeightsPublished announcements (bounded, read by every sampler)."""
        return self._k("weights")

    @property
    def weights_push(self) -> str:
        """Stream of WeightsPushed announcements (`weights.transport: broadcast`)."""
        return self._k("weights_push")

    def weight_blob(self, version: int) -> str:
        """Key prefix of a weight version held in Redis (the `redis` weight store)."""
        return self._k(f"weights:v{version}")

    @property
    def control(self) -> str:
        """Stream of control messages for this run (StopRun)."""
        return self._k("control")

    @property
    def state(self) -> str:
        """Hash with the run's state, config and progress (the control plane's record)."""
        return self._k("state")

    @property
    def heartbeats(self) -> str:
        """Hash {service/instance: encoded Heartbeat}."""
        return self._k("heartbeats")

    @property
    def series(self) -> str:
        """Stream of dashboard samples the control plane records while the run is active (bounded)."""
        return self._k("series")

    @property
    def trained(self) -> str:
        """Set of batch ids whose optimizer step is committed (exactly-once bookkeeping)."""
        return self._k("trained")
