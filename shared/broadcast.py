"""Fan-out streams: every reader sees every message (weights announcements, control messages).

Owns `Broadcast`: no consumer group and no acks; each reader keeps its own position (the id of
the last message it handled). The stream is bounded with an approximate MAXLEN, which is safe
because a late reader only needs the newest announcement (`latest()`), not every one.
Undecodable entries are skipped, logged and counted, never raised: one bad publisher must not
stop every sampler.
"""

from __future__ import annotations

import logging

import redis

from shared.keys import PAYLOAD_FIELD
from shared.metrics import StreamMetrics
from shared.protocol import ErrorCategory, Message, ProtocolError, decode, encode
from shared.redis_client import with_retry

log = logging.getLogger(__name__)


class Broadcast:
    def __init__(self, r: redis.Redis, stream: str, *, maxlen: int = 100, expect: type | None = None,
                 metrics: StreamMetrics | None = None) -> None:
        self.r, self.stream, self.maxlen, self.expect, self.metrics = r, stream, maxlen, expect, metrics
        # read_after(x) found only undecodable entries up to this id: start after them next time.
        self._skip_to: dict[str, str] = {}
        # Undecodable entries up to this id were already logged and counted.
        self._reported_upto = (-1, -1)

    def publish(self, msg: Message) -> str:
        data = encode(msg)
        entry_id = with_retry(
            lambda: self.r.xadd(self.stream, {PAYLOAD_FIELD: data}, maxlen=self.maxlen, approximate=True),
            what=f"publish {self.stream}", metrics=self.metrics)
        return entry_id.decode()

    def read_after(self, last_id: str, *, block_ms: int = 0, count: int = 100) -> list[tuple[str, Message]]:
        """Messages after `last_id` ("0": from the oldest kept), waiting up to `block_ms` when none.

        `block_ms=0` does not wait. Undecodable entries are skipped; if only such entries
        follow `last_id`, the next call with the same `last_id` starts after them.
        """
        cursor = self._skip_to.get(last_id, last_id)
        block = block_ms if block_ms > 0 else None
        while True:
            resp = with_retry(lambda: self.r.xread({self.stream: cursor}, count=count, block=block),
                              what=f"read {self.stream}", metrics=self.metrics)
            entries = resp[0][1] if resp else []
            if not entries:
                return []
            out = []
            for raw_id, fields in entries:
                msg = self._decode(raw_id.decode(), fields)
                if msg is not None:
                    out.append((raw_id.decode(), msg))
            if out:
                return out
            cursor = entries[-1][0].decode()
            if len(self._skip_to) > 1000:
                self._skip_to.clear()
            self._skip_to[last_id] = cursor
            block = None  # we already waited (or found entries); only look for more decodable ones

    def latest(self) -> tuple[str, Message] | None:
        """The newest decodable message, or None when there is none (skips bad ones silently)."""
        before = "+"
        while True:
            entries = with_retry(lambda: self.r.xrevrange(self.stream, max=before, min="-", count=16),
                                 what=f"latest {self.stream}", metrics=self.metrics)
            for raw_id, fields in entries:
                msg = self._decode(raw_id.decode(), fields, report=False)
                if msg is not None:
                    return raw_id.decode(), msg
            if len(entries) < 16:
                return None
            before = "(" + entries[-1][0].decode()

    def _decode(self, entry_id: str, fields: dict[bytes, bytes], report: bool = True) -> Message | None:
        data = fields.get(PAYLOAD_FIELD)
        try:
            if data is None:
                raise ProtocolError(f"entry has no {PAYLOAD_FIELD!r} field", ErrorCategory.MISSING_FIELD)
            return decode(data, self.expect)
        except ProtocolError as err:
            ms, _, seq = entry_id.partition("-")
            key = (int(ms), int(seq or 0))
            if not report or key <= self._reported_upto:
                return None  # latest() only peeks; read_after() reports each bad entry once
            self._reported_upto = key
            log.error("%s: skipping undecodable entry %s: %s", self.stream, entry_id, err)
            if self.metrics is not None:
                self.metrics.dead_lettered.labels(reason=err.category.value).inc()
            return None
