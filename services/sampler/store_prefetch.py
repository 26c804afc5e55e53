"""The store path's fetch off the sampling loop (async mode): a thread that fetches each new version.

Inline, a swap from the store stops sampling for fetch + verify + load. In async mode this
thread reads the weights stream itself, fetches the newest announced version into the
follower's local folder (bounded by the follower's `fetch_timeout_s`, refused and counted like an
inline fetch when it fails) and keeps it ready; the follower then takes it between engine calls
and pays only the load (`dashrl_sampler_swap_pause_seconds{via="store"}`). A ready version that a
newer one overtakes before it is taken is deleted unloaded. Sync mode keeps the inline fetch:
there the sampler waits for the version anyway.
"""

from __future__ import annotations

import logging
import shutil
import threading
from pathlib import Path
from typing import Callable

from shared.broadcast import Broadcast
from shared.protocol import WeightsPublished

log = logging.getLogger(__name__)

Fetch = Callable[[WeightsPublished, Path], Path]  # the follower's bounded, verifying fetch


class StorePrefetcher:
    def __init__(self, announcements: Broadcast, after_id: str, local_dir: Path, fetch: Fetch,
                 serving: Callable[[], int], refuse: Callable[[WeightsPublished, Exception], None]) -> None:
        self.announcements, self.local_dir, self.fetch = announcements, Path(local_dir), fetch
        self.serving, self.refuse = serving, refuse
        self._last_id = after_id
        self._ready: tuple[WeightsPublished, Path] | None = None
        self._cond = threading.Condition()
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._run, name="weights-prefetch", daemon=True)
        self._thread.start()

    def take(self, newer_than: int, wait_s: float = 0.0) -> tuple[WeightsPublished, Path] | None:
        """The fetched version if newer than `newer_than` (handed over once), waiting up to `wait_s`."""
        with self._cond:
            if self._ready is None and wait_s > 0:
                self._cond.wait(wait_s)
            ready, self._ready = self._ready, None
        if ready is not None and ready[0].version <= newer_than:  # overtaken (e.g. by a push)
            shutil.rmtree(ready[1], ignore_errors=True)
            return None
        return ready

    def ready_version(self) -> int | None:
        """The version fetched and waiting for `take`, if any."""
        with self._cond:
            return self._ready[0].version if self._ready else None

    def close(self) -> None:
        """Stop the thread (it notices within one read, 0.5 s, or when its fetch returns)."""
        self._closed.set()
        self._thread.join(5)

    def _run(self) -> None:
        while not self._closed.is_set():
            try:
                entries = self.announcements.read_after(self._last_id, block_ms=500)
            except Exception as err:  # Redis gone past with_retry's budget: keep trying, loudly
                log.error("sampler: weights prefetch: cannot read announcements: %s", err)
                self._closed.wait(1.0)
                continue
            if not entries:
                continue
            self._last_id = entries[-1][0]
            self._prefetch(max((m for _, m in entries), key=lambda m: m.version))

    def _newest_known(self) -> int:
        with self._cond:
            ready = self._ready[0].version if self._ready else 0
        return max(self.serving(), ready)

    def _prefetch(self, msg: WeightsPublished) -> None:
        if msg.version <= self._newest_known():
            return
        try:
            path = self.fetch(msg, self.local_dir / f"v{msg.version}")
        except Exception as err:  # refused, logged and counted by the follower; the old policy serves
            self.refuse(msg, err)
            return
        with self._cond:
            old, self._ready = self._ready, (msg, path)
            self._cond.notify_all()
        if old is not None:
            shutil.rmtree(old[1], ignore_errors=True)  # overtaken before it was loaded
