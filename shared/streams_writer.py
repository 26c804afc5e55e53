"""The bounded writer of a work stream (see `shared.streams` for the invariants it keeps).

Owns `StreamWriter`: check the backlog and XADD in one optimistic transaction, so the stream
never holds more than `max_backlog` uncommitted entries whatever the number of writers.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import redis

from shared.keys import PAYLOAD_FIELD
from shared.metrics import StreamMetrics
from shared.redis_client import with_retry
from shared.resp_wire import Wire

log = logging.getLogger(__name__)


def backlog_slack(max_backlog: int) -> int:
    """Extra room in the XADD MAXLEN over `max_backlog`; trimming should never fire."""
    return max(8, max_backlog // 8)


class BackpressureTimeout(TimeoutError):
    """A writer waited longer than its timeout for readers to commit the backlog."""


def read_backlog(r: redis.Redis, backlog_key: str) -> int:
    produced, committed = r.hmget(backlog_key, ["produced", "committed"])
    return int(produced or 0) - int(committed or 0)


def raise_errors(replies: list[Any]) -> list[Any]:
    """Raise the first error reply (a top-level one or one inside an EXEC result)."""
    for reply in replies:
        if isinstance(reply, Exception):
            raise reply
        if isinstance(reply, list):
            raise_errors(reply)
    return replies


class StreamWriter:
    """Appends payloads to a work stream, waiting while `max_backlog` entries are uncommitted.

    One write is two round trips on one connection: WATCH + HMGET of the counters, then
    MULTI / XLEN / XADD / HINCRBY produced / XLEN / EXEC (EXEC aborts, and the write is tried
    again, if an ack or another writer changed the counters in between)."""

    def __init__(self, r: redis.Redis, stream: str, *, backlog_key: str, max_backlog: int,
                 metrics: StreamMetrics | None = None, poll_s: float = 0.05) -> None:
        if max_backlog < 1:
            raise ValueError("max_backlog must be >= 1")
        self.r, self.stream, self.backlog_key = r, stream, backlog_key
        self.max_backlog, self.metrics, self.poll_s = max_backlog, metrics, poll_s
        self.maxlen = max_backlog + backlog_slack(max_backlog)
        self.wire = Wire(r)

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
        key, stream = self.backlog_key, self.stream
        with self.wire.connection() as conn:
            while True:
                _, (produced, committed) = raise_errors(
                    conn.call(("WATCH", key), ("HMGET", key, "produced", "committed")))
                backlog = int(produced or 0) - int(committed or 0)
                if backlog >= self.max_backlog:
                    raise_errors(conn.call(("UNWATCH",)))
                    return None, backlog
                replies = raise_errors(conn.call(
                    ("MULTI",), ("XLEN", stream),
                    ("XADD", stream, "MAXLEN", "=", self.maxlen, "*", PAYLOAD_FIELD, payload),
                    ("HINCRBY", key, "produced", 1), ("XLEN", stream), ("EXEC",)))
                if replies[-1] is None:
                    continue  # the counters changed since we read them (EXEC aborted): look again
                before, entry_id, _produced, after = replies[-1]
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
