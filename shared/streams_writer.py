"""The bounded writer of a work stream (see `shared.streams` for the invariants it keeps).

Owns `StreamWriter`: check the backlog and XADD in one optimistic transaction, so the stream
never holds more than `max_backlog` uncommitted entries whatever the number of writers.
"""

from __future__ import annotations

import logging
import time

import redis

from shared.keys import PAYLOAD_FIELD
from shared.metrics import StreamMetrics
from shared.redis_client import with_retry

log = logging.getLogger(__name__)


def backlog_slack(max_backlog: int) -> int:
    """Extra room in the XADD MAXLEN over `max_backlog`; trimming should never fire."""
    return max(8, max_backlog // 8)


class BackpressureTimeout(TimeoutError):
    """A writer waited longer than its timeout for readers to commit the backlog."""


def read_backlog(r: redis.Redis, backlog_key: str) -> int:
    produced, committed = r.hmget(backlog_key, ["produced", "committed"])
    return int(produced or 0) - int(committed or 0)


class StreamWriter:
    """Appends payloads to a work stream, waiting while `max_backlog` entries are uncommitted.

    The bound is kept by an optimistic transaction (redis-py's WATCH pipeline): WATCH
    `<backlog_key>:writes` (which only writers change, INCR in the same MULTI as their XADD),
    read the counters, then MULTI / XADD / HINCRBY produced / INCR writes / EXEC only if
    produced - committed < max_backlog. EXEC aborts (and the write is decided again) if another
    writer got in between. Acks raise `committed` without aborting anything: a committed value
    read after the WATCH is a lower bound, so a decision taken on it can only be too cautious.
    Three round trips per write (WATCH, HMGET, MULTI..EXEC); docs/benchmarks.md ("Transport:
    share of a step") measures what that costs per step.
    """

    def __init__(self, r: redis.Redis, stream: str, *, backlog_key: str, max_backlog: int,
                 metrics: StreamMetrics | None = None, poll_s: float = 0.05) -> None:
        if max_backlog < 1:
            raise ValueError("max_backlog must be >= 1")
        self.r, self.stream, self.backlog_key = r, stream, backlog_key
        self.writes_key = f"{backlog_key}:writes"
        self.max_backlog, self.metrics, self.poll_s = max_backlog, metrics, poll_s
        self.maxlen = max_backlog + backlog_slack(max_backlog)

    def write(self, payload: bytes, *, timeout: float | None = None) -> str:
        """XADD `payload` once the backlog has room; returns the entry id."""
        start = time.monotonic()
        delay = min(0.001, self.poll_s)
        waited_s = 0.0
        try:
            while True:
                entry_id, backlog = with_retry(lambda: self._try_write(payload), what=f"write {self.stream}",
                                               metrics=self.metrics)
                if entry_id is not None:
                    return entry_id
                if self.metrics is not None:
                    self.metrics.pending.set(backlog)
                waited_s = time.monotonic() - start
                if timeout is not None and waited_s + delay > timeout:
                    raise BackpressureTimeout(
                        f"{self.stream}: backlog {backlog} >= {self.max_backlog} for {waited_s:.1f}s")
                time.sleep(delay)  # back-pressure: readers have not committed enough yet
                delay = min(delay * 2, self.poll_s)
        finally:
            if self.metrics is not None and waited_s:
                self.metrics.backpressure_wait.inc(waited_s)

    def _try_write(self, payload: bytes) -> tuple[str | None, int]:
        """(entry id, backlog before) if there was room, else (None, backlog)."""
        with self.r.pipeline(transaction=True) as pipe:
            while True:
                pipe.watch(self.writes_key)
                backlog = read_backlog(pipe, self.backlog_key)  # immediate while watching
                if backlog >= self.max_backlog:
                    return None, backlog
                pipe.multi()
                pipe.xlen(self.stream)
                pipe.xadd(self.stream, {PAYLOAD_FIELD: payload}, maxlen=self.maxlen, approximate=False)
                pipe.hincrby(self.backlog_key, "produced", 1)
                pipe.incr(self.writes_key)
                pipe.xlen(self.stream)
                try:
                    before, entry_id, _produced, _writes, after = pipe.execute()
                except redis.WatchError:
                    continue  # another writer wrote since our WATCH (EXEC aborted): decide again
                self._report_trim(before + 1 - after)
                return entry_id.decode(), backlog

    def _report_trim(self, trimmed: int) -> None:
        if trimmed > 0:
            log.error("%s: MAXLEN %d trimmed %d unread entries (backlog counters out of step?)",
                      self.stream, self.maxlen, trimmed)
            if self.metrics is not None:
                self.metrics.dead_lettered.labels(reason="trimmed").inc(trimmed)

    def backlog(self) -> int:
        n = with_retry(lambda: read_backlog(self.r, self.backlog_key), what=f"backlog {self.backlog_key}",
                       metrics=self.metrics)
        if self.metrics is not None:
            self.metrics.pending.set(n)
        return n
