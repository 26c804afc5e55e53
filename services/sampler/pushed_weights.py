"""The sampler's side of the collective push (`weights.transport: broadcast`): take a seat in
the push group, receive an announced version into the backend, and say when to fall back.

`apply_pushed` never raises for a failed push: it logs, counts
`dashrl_weight_push_fallback_total{reason}` and returns False, and the caller then waits for
the same version's store announcement (WeightsPublished), as a late joiner does for every
version. Used by the one-shot receive of the push tests; a running sampler receives on
`services.sampler.push_receiver`'s thread instead.
"""

from __future__ import annotations

import logging
import time
from datetime import timedelta

from services.sampler.backends.base import GenerationBackend, IncompatibleWeights
from shared.metrics import WeightPushMetrics
from shared.protocol import WeightsPushed
from shared.weight_push import PushFailed, PushGroup, claim_rank, form_group, open_store, receive_version
from shared.weights_config import BroadcastTransport

log = logging.getLogger(__name__)


def join_push_group(cfg: BroadcastTransport, generation: int, metrics: WeightPushMetrics) -> PushGroup | None:
    """A seat in `generation`, or None (no seat left, or the group did not form in time)."""
    timeout = timedelta(seconds=cfg.timeout_s)
    try:
        store = open_store(cfg.host, cfg.port, is_learner=False, timeout=timeout)
        rank = claim_rank(store, generation, cfg.samplers + 1)
        if rank is None:
            log.warning("weight push: generation %d has no free seat; following the store", generation)
            metrics.fallbacks.labels(reason="no_seat").inc()
            return None
        return form_group(store, generation, rank, cfg.samplers + 1, timeout)
    except (PushFailed, RuntimeError) as err:  # TCPStore raises RuntimeError (DistStoreError) on timeout
        reason = getattr(err, "reason", "form")
        log.warning("weight push: could not join generation %d (%s); following the store", generation, err)
        metrics.fallbacks.labels(reason=reason).inc()
        return None


def apply_pushed(group: PushGroup | None, backend: GenerationBackend, msg: WeightsPushed,
                 metrics: WeightPushMetrics, bucket_bytes: int) -> bool:
    """Receive `msg`'s version and serve it; False means: take this version from the store."""
    if group is None or group.generation != msg.generation or group.broken:
        metrics.fallbacks.labels(reason="no_seat" if group is None else "broken").inc()
        return False
    start = time.monotonic()
    try:
        tensors = receive_version(group, msg.version, msg.checksum, bucket_bytes)
        backend.load_tensors(tensors)
    except (PushFailed, IncompatibleWeights) as err:
        reason = getattr(err, "reason", "incompatible")
        log.error("weight push: v%d not received (%s); falling back to the store", msg.version, err)
        metrics.fallbacks.labels(reason=reason).inc()
        return False
    metrics.pushes.inc()
    metrics.seconds.observe(time.monotonic() - start)
    log.info("weight push: serving v%d (%d bytes in %.3f s)", msg.version, msg.byte_size, time.monotonic() - start)
    return True
