"""Redis streams transport: bounded writers, consumer-group readers, broadcasts, retries.

Owns how messages move through Redis, not what they mean (that is `shared.protocol`). This
module is the import path; the writer lives in `shared.streams_writer`, the reader in
`shared.streams_reader`, the lean pipelined reply reader both use in `shared.resp_wire`.

Invariants (the "nothing lost" rules):
- One consumer group per work stream. `StreamReader.ack` acks AND deletes the entry (one Lua
  script), so the stream holds exactly the entries not yet committed: XLEN == produced - committed.
- `StreamWriter.write` checks the backlog and XADDs in one optimistic transaction: WATCH
  `<backlog>:writes` (bumped by every write, in the same MULTI as its XADD and HINCRBY
  produced), read the counters, MULTI/XADD/EXEC only if there is room; EXEC aborts if another
  writer got in between. Acks only raise `committed`, so counters read earlier can only
  understate the room: the backlog never exceeds `max_backlog`, whatever the number of writers.
  (Not Lua: passing a 1.2 MB payload into a script cost 2-6 ms against 0.5 ms for a plain XADD.)
  XADD still carries an exact `MAXLEN = max_backlog + slack` as a safety net that can only fire
  if the counters were tampered with; a trim is reported, logged and counted.
- Delivery is at-least-once: an entry delivered to a consumer that died is reclaimed by another
  after `claim_idle_ms`; a write retried after a lost reply may be stored twice. Consumers make
  their commit idempotent (the learner keys it by `batch_id` in `RunKeys.trained`).
- Entries that do not decode go to a dead-letter stream with the reason, and are acked.
Every entry carries its payload in the field `b"m"` (`shared.keys.PAYLOAD_FIELD`).
"""

from __future__ import annotations

from shared.broadcast import Broadcast
from shared.redis_client import RedisUnavailable, connect, with_retry
from shared.streams_reader import Delivery, StreamReader
from shared.streams_writer import BackpressureTimeout, StreamWriter, backlog_slack, read_backlog

__all__ = [
    "BackpressureTimeout", "Broadcast", "Delivery", "RedisUnavailable", "StreamReader",
    "StreamWriter", "backlog_slack", "connect", "read_backlog", "with_retry",
]
