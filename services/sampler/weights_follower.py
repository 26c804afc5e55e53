"""Weight hot-swap: follow the run's weights stream and load each new version between calls.

Owns which policy version the sampler serves. On an announcement it takes only the newest
version (older ones in between are useless to an async sampler), fetches it from the weight
store (which verifies the checksum; in async mode on a thread ahead of time:
`services.sampler.store_prefetch`), loads it into the backend, and from then on every rollout
is stamped with that version. Publish-to-swap latency (announcement time to loaded) is exported.
A corrupt or incompatible version, or one not fetched within `fetch_timeout_s`, is refused,
logged and counted; the old policy keeps serving.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import redis

from services.sampler.backends import GenerationBackend, IncompatibleWeights
from services.sampler.store_prefetch import StorePrefetcher
from shared.broadcast import Broadcast
from shared.keys import RunKeys
from shared.metrics import SamplerMetrics
from shared.protocol import WeightsPublished, WeightsPushed
from shared.weights import WeightStore, WeightsCorrupt

if TYPE_CHECKING:
    from services.sampler.push_receiver import PushReceiver

log = logging.getLogger(__name__)


class FetchTimeout(TimeoutError):
    """A weight version was not fetched and verified within `fetch_timeout_s`."""


class WeightsFollower:
    def __init__(self, r: redis.Redis, run_id: str, store: WeightStore, backend: GenerationBackend,
                 local_dir: Path, metrics: SamplerMetrics | None = None, fetch_timeout_s: float = 300.0,
                 wait_warn_s: float = 60.0, pushed: "PushReceiver | None" = None) -> None:
        self.broadcast = Broadcast(r, RunKeys(run_id).weights, expect=WeightsPublished,
                                   metrics=metrics.stream if metrics else None)
        self.prefetch: StorePrefetcher | None = None  # async mode: `start_prefetch`
        self.store, self.backend, self.metrics = store, backend, metrics
        self.pushed = pushed  # the collective push, when `weights.transport: broadcast`
        # Versions are linked (or copied) here before loading: the store may prune its own while we read.
        self.local_dir = Path(local_dir)
        self.version = 0  # version 0 is the starting model the backend was built from
        self.last_id = "0"
        self.last_sync_s: float | None = None
        self.last_pause_s: float | None = None  # sampling stood still this long for the last swap
        self.refused: set[int] = set()
        self.fetch_timeout_s, self.wait_warn_s = fetch_timeout_s, wait_warn_s
        if metrics:
            metrics.policy_version.set(0)

    def catch_up(self) -> bool:
        """At start: load the newest version already announced (a restarted sampler resumes there)."""
        latest = self.broadcast.latest()
        if latest is None:
            return False
        self.last_id = latest[0]
        return self._swap(latest[1])

    def start_prefetch(self) -> None:
        """From now on fetch announced versions on a thread (after `catch_up`): `poll` only loads."""
        own = Broadcast(self.broadcast.r, self.broadcast.stream, expect=WeightsPublished,
                        metrics=self.broadcast.metrics)  # its own cursor state, on its own thread
        self.prefetch = StorePrefetcher(own, self.last_id, self.local_dir, self._fetch,
                                        lambda: self.version, self._refuse_fetch)

    def poll(self, block_ms: int = 0) -> bool:
        """Swap to the newest announced version, if newer than ours. True when it swapped.
        A pushed version already received goes first; the store's announcement of the same
        version is then older than ours and skipped."""
        swapped = self._swap_pushed()
        if self.prefetch is not None:
            return self._swap_prefetched(0.0 if swapped else block_ms / 1000) or swapped
        entries = self.broadcast.read_after(self.last_id, block_ms=0 if swapped else block_ms)
        if not entries:
            return swapped
        self.last_id = entries[-1][0]
        newest = max((m for _, m in entries), key=lambda m: m.version)
        return self._swap(newest) or swapped

    def swap_ready(self) -> bool:
        """Mid-call (between two engine steps): swap only to a version already received (push)
        or fetched (prefetch); nothing is read from the store here. True when it swapped."""
        swapped = self._swap_pushed()
        return self._swap_prefetched(0.0) or swapped

    def _swap_prefetched(self, wait_s: float) -> bool:
        ready = self.prefetch.take(self.version, wait_s) if self.prefetch is not None else None
        return self._load(*ready) if ready else False

    def _swap_pushed(self) -> bool:
        taken = self.pushed.take(self.version) if self.pushed else None
        if taken is None:
            return False
        msg, tensors = taken
        t0 = time.perf_counter()
        try:
            self.backend.load_tensors(tensors)
        except IncompatibleWeights as err:
            return self._refuse(msg, "incompatible", err)
        finally:
            self.pushed.release()
        shutil.rmtree(self.local_dir / f"v{self.version}", ignore_errors=True)  # a store copy we served before
        self._stamp(msg.version, msg.published_at, "pushed", time.perf_counter() - t0)
        return True

    def wait_for_newer(self, version: int, should_stop: Callable[[], bool], block_ms: int = 1000) -> bool:
        """Sync mode: block until a version > `version` is loaded (False if asked to stop first)."""
        start = warned = time.monotonic()
        while self.version <= version:
            if should_stop():
                return False
            self.poll(block_ms=block_ms)
            if time.monotonic() - warned > self.wait_warn_s:  # never wait silently
                warned = time.monotonic()
                log.warning("sampler: sync mode: waited %.0fs for a policy version newer than %d (learner down?)",
                            warned - start, version)
        return True

    def _swap(self, msg: WeightsPublished) -> bool:
        if msg.version <= self.version or msg.version in self.refused:
            return False
        t0 = time.perf_counter()
        try:
            path = self._fetch(msg, self.local_dir / f"v{msg.version}")  # a verified private copy
        except (FetchTimeout, WeightsCorrupt) as err:
            return self._refuse_fetch(msg, err)
        return self._load(msg, path, t0)

    def _load(self, msg: WeightsPublished, path: Path, t0: float | None = None) -> bool:
        """Load a fetched version; the pause runs from `t0` (inline: the fetch's start)."""
        t0 = time.perf_counter() if t0 is None else t0
        try:
            self.backend.load_weights(path)
        except IncompatibleWeights as err:
            shutil.rmtree(path, ignore_errors=True)
            return self._refuse(msg, "incompatible", err)
        shutil.rmtree(self.local_dir / f"v{self.version}", ignore_errors=True)  # the copy we served before
        self._stamp(msg.version, msg.published_at, "store", time.perf_counter() - t0)
        return True

    def _refuse_fetch(self, msg: WeightsPublished, err: Exception) -> bool:
        if isinstance(err, FetchTimeout):  # the folder is left to the stuck thread; never loaded
            return self._refuse(msg, "timeout", err)
        shutil.rmtree(self.local_dir / f"v{msg.version}", ignore_errors=True)
        if isinstance(err, WeightsCorrupt) and self._overtaken(msg.version):
            return self._skip_pruned(msg, err)
        return self._refuse(msg, "checksum" if isinstance(err, WeightsCorrupt) else "fetch", err)

    def _overtaken(self, version: int) -> bool:
        """The store pruned `version` (it keeps the newest few) while we fetched it: a newer
        one is out, so the failed fetch says nothing about the version's bytes."""
        try:
            held = self.store.versions()
        except Exception:  # cannot tell: treat the failure as the version's own
            return False
        return version not in held and any(v > version for v in held)

    def _skip_pruned(self, msg: WeightsPublished, err: Exception) -> bool:
        log.warning("sampler: weight version %d was pruned from the store before its fetch finished "
                    "(a newer one is out; skipping it): %s", msg.version, err)
        if self.metrics:
            self.metrics.weight_rejected.labels(reason="pruned").inc()
        return False

    def _stamp(self, version: int, published_at: float, via: str, pause_s: float) -> None:
        self.last_sync_s, self.last_pause_s = max(0.0, time.time() - published_at), pause_s
        self.version = version
        if self.metrics:
            self.metrics.weight_sync.observe(self.last_sync_s)
            self.metrics.swap_pause.labels(via=via).observe(pause_s)
            self.metrics.policy_version.set(version)
        log.info("sampler: now serving policy version %d (publish-to-swap %.2fs, paused %.3fs, via %s)",
                 version, self.last_sync_s, pause_s, via)

    def close(self) -> None:
        if self.pushed:
            self.pushed.close()
        if self.prefetch:
            self.prefetch.close()

    def _fetch(self, msg: WeightsPublished, dest: Path) -> Path:
        """store.fetch in a helper thread, bounded by `fetch_timeout_s` (a lean fs store hard-links the
        version's files into `dest`, so a prune cannot take them and nothing is copied; Redis
        chunks are hashed as they arrive; either way verified in one read): a hung shared volume or
        a stalled Redis must not freeze sampling silently. A thread cannot be killed; one that
        overruns is abandoned (daemon) and its folder is never loaded."""
        box: dict = {}

        def work() -> None:
            try:
                box["path"] = Path(self.store.fetch(msg, dest=dest))
            except BaseException as err:  # handed to the caller below
                box["error"] = err

        thread = threading.Thread(target=work, name=f"weights-fetch-v{msg.version}", daemon=True)
        thread.start()
        thread.join(self.fetch_timeout_s)
        if thread.is_alive():
            raise FetchTimeout(f"fetch of version {msg.version} from {msg.location} took over {self.fetch_timeout_s:g}s")
        if "error" in box:
            raise box["error"]
        return box["path"]

    def _refuse(self, msg: WeightsPublished | WeightsPushed, reason: str, err: Exception) -> bool:
        log.error("sampler: refusing weight version %d (%s): %s", msg.version, reason, err)
        self.refused.add(msg.version)
        if self.metrics:
            self.metrics.weight_rejected.labels(reason=reason).inc()
        return False
