"""The learner's side of the collective push (`weights.transport: broadcast`), rank 0 only.

Hosts the rendezvous store, forms push-group generations in a background thread (forming
blocks until every seat is taken, so it must not block training), and pushes each version:
announce WeightsPushed on the push stream, then `push_version`. A push that fails marks the
generation broken (logged, `dashrl_weight_push_fallback_total{reason}`) and starts forming the
next one; versions meanwhile travel by the store only, which the learner publishes anyway.
Not yet called from the learner loop (`_publish` belongs to the lean-store change): the call is
`pusher.push(version, step, named_tensors_in_serving_dtype)` beside the store publish.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import timedelta

import torch

from shared.broadcast import Broadcast
from shared.metrics import WeightPushMetrics
from shared.protocol import WeightsPushed
from shared.weight_push import PushFailed, PushGroup, checksum, form_group, open_store, push_version
from shared.weights_config import BroadcastTransport

log = logging.getLogger(__name__)


class WeightPusher:
    def __init__(self, cfg: BroadcastTransport, announcements: Broadcast, run_id: str,
                 metrics: WeightPushMetrics) -> None:
        self.cfg, self.announcements, self.run_id, self.metrics = cfg, announcements, run_id, metrics
        self.timeout = timedelta(seconds=cfg.timeout_s)
        self.store = open_store(cfg.host, cfg.port, is_learner=True, timeout=self.timeout)
        self.group: PushGroup | None = None
        self._closed = threading.Event()
        self._forming: threading.Thread | None = None
        self._form_from(0)

    def _form_from(self, generation: int) -> None:
        def work() -> None:
            g = generation
            while not self._closed.is_set():
                self.store.set("generation", str(g))  # where samplers look for the seat to take
                try:
                    self.group = form_group(self.store, g, 0, self.cfg.samplers + 1, self.timeout)
                    log.info("weight push: generation %d formed (%d samplers)", g, self.cfg.samplers)
                    return
                except PushFailed as err:
                    log.warning("weight push: generation %d did not form: %s", g, err)
                    self.metrics.fallbacks.labels(reason="form").inc()
                    g += 1

        self._forming = threading.Thread(target=work, name=f"weight-push-form-{generation}", daemon=True)
        self._forming.start()

    def push(self, version: int, step: int, named: list[tuple[str, torch.Tensor]]) -> bool:
        """Push one version; False when it went by the store only (no group yet, or it failed)."""
        group = self.group
        if group is None or group.broken:
            return False
        msg = WeightsPushed(self.run_id, version, group.generation, checksum(named),
                            sum(t.numel() * t.element_size() for _, t in named), step, time.time())
        self.announcements.publish(msg)
        try:
            report = push_version(group, named, version, self.cfg.bucket_mb << 20)
        except PushFailed as err:
            log.error("weight push: v%d failed (%s); generation %d broken, forming %d",
                      version, err, group.generation, group.generation + 1)
            self.metrics.fallbacks.labels(reason=err.reason).inc()
            self.group = None
            self._form_from(group.generation + 1)
            return False
        self.metrics.pushes.inc()
        self.metrics.seconds.observe(report.seconds)
        return True

    def close(self) -> None:
        self._closed.set()
