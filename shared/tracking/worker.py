"""One tracker behind a background thread and a bounded queue, so it can never stop or stall training.

A training step only ever does `put_nowait`: when the queue is full the record is dropped and
counted (`reason="dropped"`). The thread opens the tracker, then feeds it records; an exception
from the tracker's client (server down, bad credentials, a timeout) is logged and counted
(`reason="error"`) and the thread carries on with the next record. A tracker that could not be
opened (server down at start) is tried again at most every `REOPEN_S` as records arrive; the
records that arrive while it is not open are discarded and counted as dropped.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from typing import Any, Callable, Protocol

log = logging.getLogger(__name__)
_CLOSE = object()
LOG_EVERY = 50  # after the first failure, log one in this many (a dead server fails every record)
REOPEN_S = 30.0


class Backend(Protocol):
    kind: str

    def open(self) -> None: ...
    def log(self, metrics: dict[str, float], step: int, axis: str) -> None: ...
    def artifact(self, path: Any) -> None: ...
    def close(self) -> None: ...


class TrackerWorker:
    def __init__(self, backend: Backend, queue_size: int, close_timeout_s: float,
                 count: Callable[[str, str], None] | None = None) -> None:
        self.backend, self.close_timeout_s = backend, close_timeout_s
        self._count = count or (lambda _kind, _reason: None)
        self._queue: queue.Queue = queue.Queue(maxsize=queue_size)
        self.errors = self.dropped = 0
        self.opened = False
        self._last_open = 0.0
        self._thread = threading.Thread(target=self._run, name=f"tracker-{backend.kind}", daemon=True)
        self._thread.start()

    def submit(self, method: str, *args: Any) -> None:
        """Queue a call of the backend's `method` (never blocks)."""
        try:
            self._queue.put_nowait((method, args))
        except queue.Full:
            self.dropped += 1
            self._count(self.backend.kind, "dropped")
            if self.dropped % LOG_EVERY == 1:
                log.warning("tracker %s: queue full, %d records dropped so far", self.backend.kind, self.dropped)

    def close(self) -> bool:
        """Flush what is queued and close the tracker, waiting at most `close_timeout_s`;
        returns False when it had to give up (the daemon thread is left behind)."""
        deadline = time.monotonic() + self.close_timeout_s
        while True:
            try:
                self._queue.put(_CLOSE, timeout=0.5)
                break
            except queue.Full:
                if time.monotonic() > deadline:
                    break
        self._thread.join(max(0.0, deadline - time.monotonic()))
        if self._thread.is_alive():
            log.warning("tracker %s: not closed after %.0f s; leaving it", self.backend.kind, self.close_timeout_s)
            return False
        return True

    def _open(self) -> None:
        self._last_open = time.monotonic()
        try:
            self.backend.open()
            self.opened = True
        except Exception as err:  # noqa: BLE001 - any client failure must stay inside this thread
            self._failed("open", err, force=True)

    def _run(self) -> None:
        self._open()
        while True:
            item = self._queue.get()
            if item is _CLOSE:
                break
            if not self.opened and time.monotonic() - self._last_open >= REOPEN_S:
                self._open()
            if not self.opened:
                self.dropped += 1
                self._count(self.backend.kind, "dropped")
                continue
            method, args = item
            try:
                getattr(self.backend, method)(*args)
            except Exception as err:  # noqa: BLE001
                self._failed(method, err)
        if self.opened:
            try:
                self.backend.close()
            except Exception as err:  # noqa: BLE001
                self._failed("close", err, force=True)

    def _failed(self, what: str, err: Exception, force: bool = False) -> None:
        self.errors += 1
        self._count(self.backend.kind, "error")
        if force or self.errors % LOG_EVERY == 1:
            log.warning("tracker %s: %s failed (%d errors so far): %s: %s", self.backend.kind, what, self.errors,
                        type(err).__name__, str(err)[:300])
