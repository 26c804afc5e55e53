"""The streams' hot path against a real redis-server: the writer's held WATCH and cached
counters, the reader's rate-limited reclaim scan, acks through the wire, RESP2 and RESP3."""

from __future__ import annotations

import gc
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


def test_writer_whose_connection_was_killed_decides_on_fresh_counters(rig):
    w1, w2 = rig.writer(max_backlog=2), rig.writer(max_backlog=2)
    w1.write(stop(0))
    (mine,) = w1.wire.call(("CLIENT", "ID"))
    rig.r.execute_command("CLIENT", "KILL", "ID", mine)  # its WATCH dies with it
    w2.write(stop(1))
    with pytest.raises(BackpressureTimeout):
        w1.write(stop(2), timeout=0)
    assert rig.r.xlen(rig.keys.rollouts) == 2 and rig.counters() == (2, 0)
    assert rig.metric("redis_errors_total") >= 1  # the dead connection was noticed and retried


def test_a_dropped_writer_closes_its_connection(rig):
    w = rig.writer()
    w.write(stop(0))
    (mine,) = w.wire.call(("CLIENT", "ID"))
    assert str(mine) in {c["id"] for c in rig.r.client_list()}
    del w
    gc.collect()
    assert str(mine) not in {c["id"] for c in rig.r.client_list()}


def test_reader_recreates_a_vanished_group(rig, caplog):
    """Redis lost the stream (and with it the group): the read recreates the group, then works."""
    w, rd = rig.writer(), rig.reader()
    rd.read(1, block_ms=0)
    rig.r.delete(rig.keys.rollouts)
    assert rd.read(1, block_ms=0) == []
    assert "vanished" in caplog.text
    eid = w.write(stop("after"))
    assert [d.entry_id for d in rd.read(1, block_ms=0)] == [eid]
