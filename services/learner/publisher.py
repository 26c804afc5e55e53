"""Weight publishing off the learner's critical path: write, hash, rename, announce on a thread.

The training step only pays for the `Snapshot` (a copy of the weights to CPU in the served
dtype, needed because the next optimizer step mutates the live tensors). One background thread
then writes the version into the store and, only once `publish_snapshot` returned (the version
complete and renamed into place), announces it: the announce-after-complete rule of
docs/reliability.md is the same as the synchronous path's. At most one publish is in flight;
`submit` waits for the previous one, so versions are announced in order. A failed publish is
logged, counted (`dashrl_learner_publish_failures_total`) and raised from the next `wait()`
(the learner calls it before every commit and at shutdown), so a broken store stops the run
loudly instead of training on with samplers starved of versions.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Callable

from shared.weights import Snapshot, WeightStore, lean_writable

log = logging.getLogger(__name__)


class PublishFailed(RuntimeError):
    """A background publish of a weight version did not complete."""


class BackgroundPublisher:
    def __init__(self, store: WeightStore, announce: Any, tokenizer: Any,
                 on_failure: Callable[[], None] | None = None,
                 on_done: Callable[[int, float], None] | None = None) -> None:
        self.store, self.announce, self.tokenizer = store, announce, tokenizer
        self.on_failure, self.on_done = on_failure, on_done
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self.announced = 0  # the newest version announced by this publisher

    def submit(self, snap: Snapshot, version: int, step: int) -> float:
        """Start writing `snap` as `version` (after the previous publish finished); returns the
        seconds the caller waited for that previous one."""
        t0 = time.perf_counter()
        self.wait()
        waited = time.perf_counter() - t0
        self._thread = threading.Thread(target=self._run, args=(snap, version, step),
                                        name=f"publish-v{version}", daemon=True)
        self._thread.start()
        return waited

    def _run(self, snap: Snapshot, version: int, step: int) -> None:
        t0 = time.perf_counter()
        try:
            # no fsync: the samplers read the page cache; the learner's commit makes the version
            # its checkpoint claims durable (`WeightStore.make_durable`)
            msg = self.store.publish_snapshot(snap, self.tokenizer, version, step, durable=False)
            self.announce.publish(msg)  # only now: the folder (or Redis key) is complete
            self.announced = version
        except BaseException as err:  # handed to the training thread at the next wait()
            log.error("learner: background publish of version %d failed: %s", version, err)
            if self.on_failure is not None:
                self.on_failure()
            self._error = err
            return
        if self.on_done is not None:
            self.on_done(version, time.perf_counter() - t0)

    def wait(self) -> None:
        """Block until the publish in flight (if any) is done; raise `PublishFailed` if it failed."""
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._error is not None:
            err, self._error = self._error, None
            raise PublishFailed(f"weight publish failed: {err}") from err

    def busy(self) -> bool:
        return self._thread is not None and self._thread.is_alive()


def background_publisher(parts: Any, model: Any, sharded: Any, tokenizer: Any) -> BackgroundPublisher | None:
    """The learner's background publisher where it applies: rank 0 (`parts`), a lean store, a
    whole model, no FSDP (whose gather is a collective every rank joins inside `_publish`);
    None: publishing stays inline."""
    if parts is None or not getattr(parts.store, "lean", False) or sharded is not None \
            or not lean_writable(model):
        return None
    failed = parts.metrics.publish_failures.inc if parts.metrics is not None else None
    return BackgroundPublisher(parts.store, parts.announce, tokenizer, on_failure=failed)
