"""The streams' hot path against a real redis-server: the writer's optimistic transaction,
the reader's rate-limited reclaim scan and blocking reads, acks, RESP2 and RESP3."""

from __future__ import annotations

import time

import pytest
import redis

from shared.streams import BackpressureTimeout
from tests.helpers.stream_rig import Rig, stop


@pytest.fixture
def rig(redis_client):
    return Rig(redis_client)


def test_busy_reader_reclaims_after_the_idle_timeout_without_scanning_every_read(redis_client):
    """A reader that always finds new entries never reads empty, yet still picks up a dead
    consumer's entries once they idled claim_idle_ms; it scans at most every claim_idle_ms / 4."""
    rig = Rig(redis_client, claim_idle_ms=300)
    w, dead, busy = rig.writer(max_backlog=100), rig.reader("dead"), rig.reader("busy")
    lost = [w.write(stop(f"lost-{i}")) for i in range(2)]
    assert len(dead.read(2, block_ms=0)) == 2  # delivered, never acked: "dead" died
    redis_client.config_resetstat()
    t0, reads, got = time.monotonic(), 0, []
    while not set(lost) <= {d.entry_id for d in got}:
        assert time.monotonic() - t0 < 10, "never reclaimed"
        w.write(stop(f"new-{reads}"))  # there is always a new entry to read
        batch = busy.read(1, block_ms=0)
        assert len(batch) == 1
        busy.ack([d.entry_id for d in batch])
        got += batch
        reads += 1
    elapsed = time.monotonic() - t0
    assert elapsed >= 0.25  # not before the entries idled (about) claim_idle_ms
    scans = int(redis_client.info("commandstats").get("cmdstat_xautoclaim", {}).get("calls", 0))
    assert 1 <= scans <= elapsed / 0.075 + 3 and scans < reads
    assert [d.message.reason for d in got if d.entry_id in lost] == ["msg-lost-0", "msg-lost-1"]
    assert rig.metric("reclaimed_total") == 2


@pytest.mark.parametrize("protocol", [2, 3])
def test_round_trip_over_resp2_and_resp3(redis_proc, protocol):
    r = redis.Redis(port=redis_proc.port, protocol=protocol)
    rig = Rig(r)
    w, rd = rig.writer(), rig.reader()
    assert rd.read(2, block_ms=10) == []  # a blocking read that times out: empty, not an error
    ids = [w.write(stop(i)) for i in range(3)]
    got = rd.read(2, block_ms=0)
    assert [d.entry_id for d in got] == ids[:2] and [d.message.reason for d in got] == ["msg-0", "msg-1"]
    assert rd.ack(ids) == 2 and rig.counters() == (3, 2)


def test_ack_survives_a_flushed_script_cache(rig):
    """After a Redis restart the ack script is gone (NOSCRIPT): the ack loads it and still counts."""
    w, rd = rig.writer(), rig.reader()
    ids = [w.write(stop(i)) for i in range(2)]
    rd.read(2, block_ms=0)
    assert rd.ack(ids[:1]) == 1
    rig.r.script_flush()
    assert rd.ack(ids) == 1 and rig.counters() == (2, 2) and rig.r.xlen(rig.keys.rollouts) == 0


def test_writer_rereads_counters_an_ack_made_stale_before_waiting(rig):
    w, rd = rig.writer(max_backlog=2), rig.reader()
    w.write(stop(0))
    w.write(stop(1))  # the writer now holds counters saying the backlog is full
    [d] = rd.read(1, block_ms=0)
    assert rd.ack([d.entry_id]) == 1
    w.write(stop(2), timeout=0)  # no wait: it looks again before concluding there is no room
    assert rig.counters() == (3, 1) and rig.r.xlen(rig.keys.rollouts) == 2


def test_another_writers_write_aborts_a_decision_taken_on_old_counters(rig):
    """w1 holds counters saying there is room for one more; w2 takes that room; w1's
    transaction must abort and w1 must then find the stream full."""
    w1, w2 = rig.writer(max_backlog=2), rig.writer(max_backlog=2)
    w1.write(stop(0))
    w2.write(stop(1))
    with pytest.raises(BackpressureTimeout):
        w1.write(stop(2), timeout=0)
    assert rig.r.xlen(rig.keys.rollouts) == 2 and rig.counters() == (2, 0)


def test_a_writer_whose_connections_were_killed_reconnects_and_keeps_the_bound(rig):
    w1, w2 = rig.writer(max_backlog=2), rig.writer(max_backlog=2)
    w1.write(stop(0))
    killer = redis.Redis(port=rig.r.connection_pool.connection_kwargs["port"])
    assert killer.client_kill_filter(_type="normal", skipme=True) >= 1  # every pooled connection dies
    w2.write(stop(1))
    with pytest.raises(BackpressureTimeout):
        w1.write(stop(2), timeout=0)
    assert rig.r.xlen(rig.keys.rollouts) == 2 and rig.counters() == (2, 0)


def test_a_blocking_read_longer_than_the_socket_timeout_returns_empty_not_an_error(redis_proc):
    r = redis.Redis(port=redis_proc.port, socket_timeout=1.5)
    rig = Rig(r)
    rd = rig.reader()
    t0 = time.monotonic()
    assert rd.read(1, block_ms=5000) == []  # blocks 0.5 s (1 s under the socket timeout), no retry
    assert time.monotonic() - t0 < 1.4 and rig.metric("redis_errors_total") == 0


def test_reader_recreates_a_vanished_group(rig, caplog):
    """Redis lost the stream (and with it the group): the read recreates the group, then works."""
    w, rd = rig.writer(), rig.reader()
    rd.read(1, block_ms=0)
    rig.r.delete(rig.keys.rollouts)
    assert rd.read(1, block_ms=0) == []
    assert "vanished" in caplog.text
    eid = w.write(stop("after"))
    assert [d.entry_id for d in rd.read(1, block_ms=0)] == [eid]
