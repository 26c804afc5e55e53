"""The consumer-group reader of a work stream (see `shared.streams` for the invariants it keeps).

Owns `StreamReader`: read (own pending after a restart, then entries idle in dead consumers,
then new ones), dead-letter what does not decode, ack + delete on commit. Every call is plain
redis-py (its connection pool: an ack from another thread never waits behind a blocked read).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import redis

from shared.keys import PAYLOAD_FIELD
from shared.metrics import StreamMetrics
from shared.protocol import ErrorCategory, Message, ProtocolError, decode
from shared.redis_client import with_retry
from shared.streams_writer import read_backlog

log = logging.getLogger(__name__)

# KEYS: stream, backlog hash. ARGV: group, ids... Acks, deletes what was acked, counts it.
# Returns {acked, backlog}.
_ACK = """
local acked = 0
for i = 2, #ARGV do
  if redis.call('XACK', KEYS[1], ARGV[1], ARGV[i]) == 1 then
    redis.call('XDEL', KEYS[1], ARGV[i])
    acked = acked + 1
  end
end
if acked > 0 then redis.call('HINCRBY', KEYS[2], 'committed', acked) end
local h = redis.call('HMGET', KEYS[2], 'produced', 'committed')
return {acked, (tonumber(h[1]) or 0) - (tonumber(h[2]) or 0)}
"""


@dataclass
class Delivery:
    entry_id: str
    message: Message
    deliveries: int = 1
    """Times this entry was delivered (from XPENDING when reclaimed, else 1)."""


def _entries(resp) -> list:
    """The entries of redis-py's XREADGROUP reply for one stream: RESP2 shape [[stream, entries]]
    or, for a client made with protocol=3, {stream: [entries]}."""
    if isinstance(resp, dict):
        return next(iter(resp.values()))[0] if resp else []
    return resp[0][1] if resp else []


RawEntry = tuple[bytes, "dict[bytes, bytes] | None", int]
"""(entry id, fields or None when the entry was deleted, times delivered)."""


class StreamReader:
    """One consumer of a work stream's consumer group: read, (commit,) ack; reclaims the dead's."""

    def __init__(self, r: redis.Redis, stream: str, group: str, consumer: str, *, backlog_key: str,
                 deadletter: str, expect: type | None = None, claim_idle_ms: int = 60000,
                 block_ms: int = 1000, deadletter_maxlen: int = 10000,
                 metrics: StreamMetrics | None = None) -> None:
        self.r, self.stream, self.group, self.consumer = r, stream, group, consumer
        self.backlog_key, self.deadletter, self.expect = backlog_key, deadletter, expect
        self.claim_idle_ms, self.block_ms, self.deadletter_maxlen = claim_idle_ms, block_ms, deadletter_maxlen
        self.metrics = metrics
        self._ack_script = r.register_script(_ACK)
        self._claim_cursor = b"0-0"
        # A busy reader starts a reclaim scan at most every claim_idle_ms / 4 (an entry must idle
        # claim_idle_ms anyway) instead of paying an XAUTOCLAIM round trip on every read.
        self._next_claim_scan = 0.0
        self._history_cursor: bytes | None = b"0"  # this consumer's own pending, after a restart
        self._retry(self._ensure_group, "create group")

    def _retry(self, fn, what: str):
        return with_retry(fn, what=f"{what} {self.stream}/{self.group}/{self.consumer}", metrics=self.metrics)

    def _ensure_group(self) -> None:
        try:
            self.r.xgroup_create(self.stream, self.group, id="0", mkstream=True)
        except redis.ResponseError as err:
            if "BUSYGROUP" not in str(err):
                raise

    def read(self, count: int, block_ms: int | None = None) -> list[Delivery]:
        """Up to `count` decodable entries: this consumer's own pending ones first (after a
        restart), then entries idle in dead consumers, then new ones (waiting up to `block_ms`;
        0 means don't wait). Undecodable entries are dead-lettered and acked, not returned."""
        block = self.block_ms if block_ms is None else block_ms
        raw = self._retry(lambda: self._fetch(count, block), "read")
        out, bad = [], []
        for entry_id, fields, deliveries in raw:
            try:
                if not fields:  # XADD needs a field, so no fields means the data was deleted
                    raise ProtocolError("entry deleted before it was acked (trimmed?)", ErrorCategory.DELETED)
                if PAYLOAD_FIELD not in fields:
                    raise ProtocolError(f"missing payload field {PAYLOAD_FIELD!r}", ErrorCategory.MISSING_FIELD)
                msg = decode(fields[PAYLOAD_FIELD], self.expect)
            except ProtocolError as err:
                bad.append((entry_id, fields or {}, err))
                continue
            out.append(Delivery(entry_id.decode(), msg, deliveries))
        if bad:
            self._dead_letter(bad)
        return out

    def _fetch(self, count: int, block: int) -> list[RawEntry]:
        try:
            for source in (self._own_history, self._reclaim):
                entries = source(count)
                if entries:
                    return entries
            entries = self._read_new(count, block)
        except redis.ResponseError as err:
            if "NOGROUP" not in str(err):
                raise
            log.error("%s: consumer group %s vanished (Redis lost its data?); recreating", self.stream, self.group)
            self._ensure_group()
            return []
        if not entries:
            self._next_claim_scan = 0.0  # idle: look for dead consumers' entries on the next read
        return [(eid, fields, 1) for eid, fields in entries]

    def _read_new(self, count: int, block: int) -> list[tuple[bytes, dict[bytes, bytes]]]:
        """XREADGROUP ... > (BLOCK only when `block` > 0: BLOCK 0 would wait forever), blocking at
        most 1 s less than the client's socket timeout, so a quiet stream never reads as a dead
        connection."""
        timeout_s = self.r.connection_pool.connection_kwargs.get("socket_timeout")
        if timeout_s:
            block = min(block, max(1, int(timeout_s * 1000) - 1000))
        resp = self.r.xreadgroup(self.group, self.consumer, {self.stream: ">"}, count=count,
                                 block=block if block > 0 else None)
        return _entries(resp)

    def _own_history(self, count: int) -> list[RawEntry]:
        if self._history_cursor is None:
            return []
        resp = self.r.xreadgroup(self.group, self.consumer, {self.stream: self._history_cursor}, count=count)
        entries = [(eid, f) for eid, f in _entries(resp) if eid is not None]
        if not entries:
            self._history_cursor = None
            return []
        self._history_cursor = entries[-1][0]
        log.info("%s: %s resumes %d entries it had been delivered before", self.stream, self.consumer, len(entries))
        return self._with_delivery_counts(entries)

    def _reclaim(self, count: int) -> list[RawEntry]:
        if self._claim_cursor == b"0-0" and time.monotonic() < self._next_claim_scan:
            return []
        resp = self.r.xautoclaim(self.stream, self.group, self.consumer, self.claim_idle_ms,
                                 start_id=self._claim_cursor, count=count)
        self._claim_cursor = resp[0]
        if self._claim_cursor == b"0-0":  # scan complete
            self._next_claim_scan = time.monotonic() + self.claim_idle_ms / 4000
        entries = [(eid, f) for eid, f in resp[1] if eid is not None]
        if len(entries) < len(resp[1]):
            # Redis 6.2 claims deleted entries as nil (ids lost): find them in our history.
            entries += self._deleted_in_own_history()
        deleted = resp[2] if len(resp) > 2 else []  # Redis 7: already dropped from the group
        if deleted:
            # Pending entries whose data is gone (only if something trimmed or deleted them):
            # Redis dropped them from the group; count them committed so the backlog stays true.
            log.error("%s: %d pending entries were deleted before being acked: %s", self.stream, len(deleted), deleted[:5])
            self.r.hincrby(self.backlog_key, "committed", len(deleted))
            if self.metrics is not None:
                self.metrics.dead_lettered.labels(reason="deleted").inc(len(deleted))
        if not entries:
            return []
        log.warning("%s: %s reclaimed %d entries idle > %d ms", self.stream, self.consumer, len(entries), self.claim_idle_ms)
        if self.metrics is not None:
            self.metrics.reclaimed.inc(len(entries))
        return self._with_delivery_counts(entries)

    def _deleted_in_own_history(self) -> list[tuple[bytes, dict]]:
        """Entries pending for this consumer whose data is gone (history shows them empty)."""
        found, cursor = [], b"0"
        while True:
            resp = self.r.xreadgroup(self.group, self.consumer, {self.stream: cursor}, count=500)
            page = _entries(resp)
            found += [(eid, {}) for eid, f in page if eid is not None and not f]
            if len(page) < 500:
                return found
            cursor = page[-1][0]

    def _with_delivery_counts(self, entries: list[tuple[bytes, dict | None]]) -> list[RawEntry]:
        info = self.r.xpending_range(self.stream, self.group, min=entries[0][0], max=entries[-1][0],
                                     count=len(entries) * 2 + 16, consumername=self.consumer)
        times = {p["message_id"]: int(p["times_delivered"]) for p in info}
        return [(eid, fields, times.get(eid, 1)) for eid, fields in entries]

    def _dead_letter(self, bad: list[tuple[bytes, dict, ProtocolError]]) -> None:
        records = []
        for entry_id, fields, err in bad:
            category = err.category.value
            log.error("%s: dead-lettering entry %s (%s): %s", self.stream, entry_id.decode(), category, err)
            record = {b"reason": str(err), b"category": category, b"source": self.stream,
                      b"entry_id": entry_id, b"consumer": self.consumer, b"at": repr(time.time())}
            record.update({b"orig:" + k: v for k, v in fields.items()})
            records.append(record)
            if self.metrics is not None:
                self.metrics.dead_lettered.labels(reason=category).inc()

        def move() -> None:  # one transaction: the record lands iff the entry is acked
            pipe = self.r.pipeline(transaction=True)
            for record in records:
                pipe.xadd(self.deadletter, record, maxlen=self.deadletter_maxlen, approximate=False)
            self._ack_script(keys=[self.stream, self.backlog_key], args=[self.group, *[b[0] for b in bad]],
                             client=pipe)
            pipe.execute()

        self._retry(move, "dead-letter")

    def ack(self, entry_ids: list[str]) -> int:
        """Ack (and delete) entries after their work is committed; returns how many were still
        pending. `committed` grows by exactly that number, so a repeated ack counts once."""
        if not entry_ids:
            return 0
        acked, backlog = self._retry(lambda: self._ack_once(entry_ids), "ack")
        if self.metrics is not None:
            self.metrics.pending.set(backlog)
        return int(acked)

    def _ack_once(self, entry_ids: list[str]) -> list[int]:
        """One EVALSHA (redis-py's Script loads the script again if Redis lost it)."""
        return self._ack_script(keys=[self.stream, self.backlog_key], args=[self.group, *entry_ids])

    def pending(self) -> int:
        """Entries delivered to this group (any consumer) and not acked yet."""
        return int(self._retry(lambda: self.r.xpending(self.stream, self.group), "pending")["pending"])

    def backlog(self) -> int:
        """Entries produced and not yet committed (pending + never delivered)."""
        n = self._retry(lambda: read_backlog(self.r, self.backlog_key), "backlog")
        if self.metrics is not None:
            self.metrics.pending.set(n)
        return n
