"""The sampler's receiving thread for the collective push (`weights.transport: broadcast`).

Every rank of a push group must take part in every push, so receiving cannot wait for the
sampler's loop (a long generate call would time the learner out): this thread holds a seat,
reads every WeightsPushed announcement, receives and verifies each version into its own
buffers, and keeps the newest verified one; the weights follower takes it between engine calls
(`take`) and says when it has loaded it (`release`). Two receive slots, each reused from version
to version (fresh buffers cost more in page faults than the wire, `shared.push_layout`): a
version lands in a slot that is neither being loaded nor holding the ready version, unless the
ready one must give way (a newer one supersedes it). A failed receive is logged and counted
(`apply`-side reasons of `dashrl_weight_push_fallback_total`) and that version comes from the
store; after a broken generation the thread takes a seat in the next one the learner forms.
"""

from __future__ import annotations

import logging
import threading
from datetime import timedelta

import torch

from shared.broadcast import Broadcast
from shared.metrics import WeightPushMetrics
from shared.protocol import WeightsPushed
from shared.push_layout import ReceiveBuffers
from shared.weight_push import PushFailed, PushGroup, claim_rank, form_group, open_store, receive_version
from shared.weights_config import BroadcastTransport

log = logging.getLogger(__name__)


class PushReceiver:
    def __init__(self, cfg: BroadcastTransport, announcements: Broadcast, metrics: WeightPushMetrics) -> None:
        self.cfg, self.announcements, self.metrics = cfg, announcements, metrics
        self.timeout = timedelta(seconds=cfg.timeout_s)
        self.group: PushGroup | None = None
        self._slots = (ReceiveBuffers(), ReceiveBuffers())
        self._ready: tuple[WeightsPushed, list[tuple[str, torch.Tensor]], int] | None = None
        self._loading: int | None = None  # the slot the follower holds between take and release
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._run, name="weight-push-receiver", daemon=True)
        self._thread.start()

    def take(self, newer_than: int) -> tuple[WeightsPushed, list[tuple[str, torch.Tensor]]] | None:
        """The newest verified pushed version if newer than `newer_than` (handed over once; its
        tensors stay valid until `release`)."""
        with self._lock:
            ready, self._ready = self._ready, None
            if ready is None or ready[0].version <= newer_than:
                return None
            self._loading = ready[2]
        return ready[0], ready[1]

    def release(self) -> None:
        """The taken version is loaded (or refused): its slot may receive again."""
        with self._lock:
            self._loading = None

    def _slot(self) -> int:
        """A slot to receive into: not the one being loaded, the ready one only as a last resort."""
        with self._lock:
            busy = {self._loading, self._ready[2] if self._ready else None}
            free = [i for i in (0, 1) if i not in busy]
            if free:
                return free[0]
            slot, self._ready = self._ready[2], None  # superseded by the version about to land
            return slot

    def close(self) -> None:
        """Stop the thread (it notices within one read, 0.5 s, unless inside a receive)."""
        self._closed.set()
        self._thread.join(self.cfg.timeout_s + 1)

    def _join(self) -> None:
        try:
            store = open_store(self.cfg.host, self.cfg.port, is_learner=False, timeout=self.timeout)
            generation = int(store.get("generation"))
            if self.group is not None and self.group.generation >= generation:
                return  # ours is broken and the learner has not formed a new one yet
            rank = claim_rank(store, generation, self.cfg.samplers + 1)
            if rank is None:
                self.metrics.fallbacks.labels(reason="no_seat").inc()
                log.warning("weight push: no seat in generation %d; following the store", generation)
                self._closed.wait(self.cfg.timeout_s)
                return
            self.group = form_group(store, generation, rank, self.cfg.samplers + 1, self.timeout)
            log.info("weight push: joined generation %d as rank %d", generation, rank)
        except (PushFailed, RuntimeError, ValueError) as err:  # a store timeout is a RuntimeError
            self.metrics.fallbacks.labels(reason=getattr(err, "reason", "form")).inc()
            log.warning("weight push: could not join (%s); following the store", err)

    def _run(self) -> None:
        latest = self.announcements.latest()  # announcements from now on; earlier ones are the store's
        last_id = latest[0] if latest else "0"
        while not self._closed.is_set():
            if self.group is None or self.group.broken:
                self._join()
            for entry_id, msg in self.announcements.read_after(last_id, block_ms=500):
                last_id = entry_id
                self._receive(msg)

    def _receive(self, msg: WeightsPushed) -> None:
        group = self.group
        if group is None or group.broken or group.generation != msg.generation:
            self.metrics.fallbacks.labels(reason="no_seat").inc()
            return
        slot = self._slot()
        try:
            tensors = receive_version(group, msg.version, msg.checksum, self.cfg.bucket_mb << 20,
                                      self._slots[slot])
        except PushFailed as err:
            log.error("weight push: v%d not received (%s); the store will bring it", msg.version, err)
            self.metrics.fallbacks.labels(reason=err.reason).inc()
            return
        self.metrics.pushes.inc()
        with self._lock:
            self._ready = (msg, tensors, slot)
