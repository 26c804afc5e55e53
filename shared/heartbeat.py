"""A service's heartbeat: its state and typed report, sent to the run state from a thread.

Owns `HeartbeatSender`, used by the sampler and the learner alike. The thread sends every
`interval_s`, so a long generation call or training step never looks like a dead service; the
service changes `state` as it goes, sends at once with `beat()` when a number it reports has
just changed, and ends with `stop(final_state)`, which joins the thread first so that no older
state can land after the last one. A missed beat is logged, never fatal: `RunState` retries a
Redis outage underneath, and the service's own Redis calls notice it.
"""

from __future__ import annotations

import logging
import threading
from typing import Callable

from shared.protocol import Report
from shared.runstate import RunState

log = logging.getLogger(__name__)


class HeartbeatSender:
    """`RunState.heartbeat(instance_id, state, report())`, every `interval_s` and on demand."""

    def __init__(self, runstate: RunState, instance_id: str, report: Callable[[], Report],
                 interval_s: float) -> None:
        self.runstate, self.instance_id, self.report, self.interval_s = runstate, instance_id, report, interval_s
        self.state = "starting"
        self._lock = threading.Lock()  # one send at a time: state and report are read together
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._stopping = False

    def start(self) -> "HeartbeatSender":
        self._thread = threading.Thread(target=self._run, name="heartbeat", daemon=True)
        self._thread.start()
        return self

    def beat(self, state: str | None = None) -> None:
        """Send now (from the caller's thread), after switching to `state` when given; nothing
        once `stop` has begun."""
        with self._lock:
            if state is not None:
                self.state = state
            if not self._stopping:
                self.runstate.heartbeat(self.instance_id, self.state, self.report())

    def stop(self, final_state: str) -> None:
        """Stop the thread, then send `final_state` as the last heartbeat (the first call only)."""
        with self._lock:
            if self._stopping:
                return
            self._stopping = True
            self.state = final_state
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(10)
        with self._lock:
            self.runstate.heartbeat(self.instance_id, final_state, self.report())

    def _run(self) -> None:
        while True:
            try:
                self.beat()
            except Exception:  # logged, never fatal (see the module docstring)
                log.exception("%s: heartbeat failed", self.instance_id)
            if self._stop.wait(self.interval_s):
                return
