"""A deadline for calls that cannot be interrupted from Python (a generation call inside vLLM or
torch): if one runs past its bound, the sampler says so and exits, so that its supervisor (the
local launcher, a `dashrl worker`, Kubernetes) restarts it — instead of heartbeating "running"
forever while producing nothing. Exiting is safe: a sampler holds nothing that is not in Redis.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from contextlib import contextmanager
from typing import Callable, Iterator

log = logging.getLogger(__name__)

EXIT_STALLED = 3
"""The sampler's exit status after a call overran its bound."""


class Watchdog:
    """`with dog.guard("generate"): backend.generate(...)`; one guarded call at a time."""

    def __init__(self, bounds_s: dict[str, float], on_stall: Callable[[str, float], None] | None = None,
                 exit_fn: Callable[[int], None] = os._exit) -> None:
        self.bounds_s, self.on_stall, self.exit_fn = bounds_s, on_stall, exit_fn
        self.check_every_s = min(1.0, min(bounds_s.values()) / 2)  # overruns are seen within half a bound
        self._call: tuple[str, float] | None = None
        self.overran: dict[str, float] = {}
        """Set once a call overran its bound: that call -> the seconds it had run (for the report)."""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="watchdog", daemon=True)
        self._thread.start()

    @contextmanager
    def guard(self, call: str) -> Iterator[None]:
        self._call = (call, time.monotonic())
        try:
            yield
        finally:
            self._call = None

    def _run(self) -> None:
        while not self._stop.wait(self.check_every_s):
            current = self._call
            if current is None:
                continue
            call, started = current
            ran = time.monotonic() - started
            if ran > self.bounds_s[call]:
                log.critical("sampler: %s call running for %.1fs, over its %gs bound (engine hung?); exiting "
                             "with status %d so that the supervisor restarts this sampler",
                             call, ran, self.bounds_s[call], EXIT_STALLED)
                self.overran = {call: ran}
                try:
                    if self.on_stall is not None:
                        self.on_stall(call, ran)  # e.g. a "failed" heartbeat with the reason
                finally:
                    self.exit_fn(EXIT_STALLED)
                return

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
