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

    The bound is kept by an optimistic transaction on a connection of the writer's own: WATCH
    `<backlog_key>:writes` (which only writers change, INCR in the same MULTI as their XADD),
    read the counters, then MULTI / XADD / HINCRBY produced / INCR writes / EXEC only if
    produced - committed < max_backlog. EXEC aborts (and the write is decided again) if another
    writer got in between. Acks raise `committed` without aborting anything: a committed value
    read earlier is a lower bound, so a decision taken on it can only be too cautious (it is then
    re-read before the writer waits). Every EXEC is followed, in the same round trip, by the next
    WATCH and counter read, so a steady single writer pays one round trip per write.
    """

    def __init__(self, r: redis.Redis, stream: str, *, backlog_key: str, max_backlog: int,
                 metrics: StreamMetrics | None = None, poll_s: float = 0.05) -> None:
        if max_backlog < 1:
            raise ValueError("max_backlog must be >= 1")
        self.r, self.stream, self.backlog_key = r, stream, backlog_key
        self.writes_key = f"{backlog_key}:writes"
        self._read_counters = ("HMGET", backlog_key, "produced", "committed")
        self.max_backlog, self.metrics, self.poll_s = max_backlog, metrics, poll_s
        self.maxlen = max_backlog + backlog_slack(max_backlog)
        self.wire = Wire(r)  # its connection carries the WATCH from one write to the next
        # (socket, produced, committed) read after a WATCH still armed on that socket, or None.
        self._watched: tuple[object, int, int] | None = None

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
        try:
            with self.wire.connection() as conn:
                return self._write_on(conn, payload)
        except BaseException:
            self._watched = None  # the connection was dropped, and its WATCH with it
            raise

    def _write_on(self, conn, payload: bytes) -> tuple[str | None, int]:
        fresh = False
        while True:
            if self._watched is None or self._watched[0] is not conn.socket:
                self._watched = self._watch(conn, conn.call(("WATCH", self.writes_key), self._read_counters))
                fresh = True
            _, produced, committed = self._watched
            backlog = produced - committed
            if backlog >= self.max_backlog:
                if fresh:
                    return None, backlog
                self._watched = None  # committed may have moved since it was read: look again
                continue
            replies = conn.call(
                ("MULTI",), ("XLEN", self.stream),
                ("XADD", self.stream, "MAXLEN", "=", self.maxlen, "*", PAYLOAD_FIELD, payload),
                ("HINCRBY", self.backlog_key, "produced", 1), ("INCR", self.writes_key), ("XLEN", self.stream),
                ("EXEC",), ("WATCH", self.writes_key), self._read_counters)
            self._watched = self._watch(conn, replies[-2:])  # armed for the next write
            if raise_errors(replies[:7])[6] is None:
                fresh = True
                continue  # another writer wrote since our WATCH (EXEC aborted): decide again
            before, entry_id, _produced, _writes, after = replies[6]
            self._report_trim(before + 1 - after)
            return entry_id.decode(), backlog

    @staticmethod
    def _watch(conn, replies: list) -> tuple[object, int, int]:
        """(socket, produced, committed) from the replies of WATCH + HMGET sent on `conn`."""
        _, (produced, committed) = raise_errors(replies)
        return conn.socket, int(produced or 0), int(committed or 0)

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
