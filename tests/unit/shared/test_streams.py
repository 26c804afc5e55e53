"""StreamWriter / StreamReader against a real private redis-server (tests/conftest.py)."""

from __future__ import annotations

import threading
import time

import msgpack
import numpy as np
import pytest

from shared.protocol import RolloutBatch, Sample, encode
from shared.streams import BackpressureTimeout
from tests.helpers.polling import wait_for
from tests.helpers.stream_rig import Rig, stop


@pytest.fixture
def rig(redis_client):
    return Rig(redis_client)


def test_round_trip_acks_delete_and_count(rig):
    w, rd = rig.writer(max_backlog=10), rig.reader()
    ids = [w.write(stop(i)) for i in range(5)]
    got = rd.read(10, block_ms=0)
    assert [d.entry_id for d in got] == ids
    assert [d.message.reason for d in got] == [f"msg-{i}" for i in range(5)]
    assert all(d.deliveries == 1 for d in got)
    assert rd.pending() == 5 and w.backlog() == 5
    assert rd.ack(ids) == 5
    assert rd.pending() == 0 and w.backlog() == 0 and rig.r.xlen(rig.keys.rollouts) == 0
    assert rig.counters() == (5, 5)
    assert rig.pending_gauge() == 0.0


def test_rollout_batch_payload_survives(rig):
    batch = RolloutBatch.from_samples(
        [Sample(np.arange(3), np.arange(4), -np.ones(4, dtype=np.float32) / 3, 1.0, 0.5, 0)],
        run_id="run", batch_id="b0", sampler_id="s0", policy_version=2, created_at=1.0)
    rig.writer().write(encode(batch))
    [d] = rig.reader(expect=RolloutBatch).read(1, block_ms=0)
    assert d.message.batch_id == "b0" and d.message.policy_version == 2
    np.testing.assert_array_equal(d.message.completion_ids, np.arange(4))


def test_ack_twice_counts_once(rig):
    w, rd = rig.writer(), rig.reader()
    eid = w.write(stop(0))
    rd.read(1, block_ms=0)
    assert rd.ack([eid]) == 1
    assert rd.ack([eid]) == 0
    assert rd.ack([eid, eid]) == 0
    assert rig.counters() == (1, 1)


def test_ack_of_undelivered_entry_is_not_counted(rig):
    eid = rig.writer().write(stop(0))
    rd = rig.reader()
    assert rd.ack([eid]) == 0  # never delivered: not pending, so not committed
    assert rig.counters() == (1, 0)


def test_backpressure_blocks_writer_until_reader_acks(rig):
    w, rd = rig.writer(max_backlog=2), rig.reader()
    w.write(stop(0))
    w.write(stop(1))
    done = {}
    t = threading.Thread(target=lambda: done.setdefault("id", w.write(stop(2), timeout=30)), daemon=True)
    rig.metrics.pending.set(-1)
    t.start()
    # The writer has been refused at least once (it publishes the backlog it saw) ...
    wait_for(lambda: rig.pending_gauge() == 2.0, "refused write", 10, every=0.005)
    # ... and its entry is not in the stream while the backlog is full.
    assert t.is_alive() and "id" not in done
    assert rig.r.xlen(rig.keys.rollouts) == 2
    first = rd.read(1, block_ms=0)
    assert rd.ack([first[0].entry_id]) == 1
    t.join(10)
    assert not t.is_alive() and "id" in done
    assert rig.r.xlen(rig.keys.rollouts) == 2
    assert rig.metric("backpressure_wait_seconds_total") > 0


def test_backpressure_timeout(rig):
    w = rig.writer(max_backlog=3)
    for i in range(3):
        w.write(stop(i))
    t0 = time.monotonic()
    with pytest.raises(BackpressureTimeout, match="backlog 3 >= 3"):
        w.write(stop(3), timeout=0.2)
    assert 0.1 <= time.monotonic() - t0 < 5
    assert rig.r.xlen(rig.keys.rollouts) == 3 and rig.counters() == (3, 0)


def test_concurrent_writers_never_exceed_bound(rig):
    """Four writers, one slow reader: the stream never holds more than max_backlog entries."""
    max_backlog, n_writers, per_writer = 5, 4, 40
    seen_len, received = [], []

    def produce(k):
        w = rig.writer(max_backlog=max_backlog)
        for i in range(per_writer):
            w.write(stop(f"{k}-{i}"), timeout=30)
            seen_len.append(rig.r.xlen(rig.keys.rollouts))

    threads = [threading.Thread(target=produce, args=(k,), daemon=True) for k in range(n_writers)]
    for t in threads:
        t.start()
    rd = rig.reader()
    deadline = time.monotonic() + 60
    while len(received) < n_writers * per_writer and time.monotonic() < deadline:
        got = rd.read(3, block_ms=100)
        seen_len.append(rig.r.xlen(rig.keys.rollouts))
        received += [d.message.reason for d in got]
        rd.ack([d.entry_id for d in got])
    for t in threads:
        t.join(10)
    assert sorted(received) == sorted(f"msg-{k}-{i}" for k in range(n_writers) for i in range(per_writer))
    assert max(seen_len) <= max_backlog
    assert rig.counters() == (160, 160) and rig.r.xlen(rig.keys.rollouts) == 0


def test_dead_letter_with_reasons(rig):
    w, rd = rig.writer(max_backlog=10), rig.reader()
    good = w.write(stop("ok"))
    garbage = w.write(b"\xc1\xff garbage")
    body = msgpack.unpackb(stop("v"), raw=False)
    body["schema_version"] = 99
    wrong_version = w.write(msgpack.packb(body, use_bin_type=True))
    wrong_kind = w.write(encode(RolloutBatch.from_samples([], run_id="run", batch_id="b", sampler_id="s",
                                                          policy_version=0, created_at=0.0)))
    # Missing payload field: a foreign writer (also counted as produced so the backlog stays true).
    missing = rig.r.xadd(rig.keys.rollouts, {b"other": b"x"}).decode()
    rig.r.hincrby(rig.keys.backlog, "produced", 1)

    got = rd.read(10, block_ms=0)
    assert [d.entry_id for d in got] == [good]
    dl = {f[b"entry_id"].decode(): f for _id, f in rig.r.xrange(rig.keys.deadletter)}
    assert set(dl) == {garbage, wrong_version, wrong_kind, missing}
    assert dl[garbage][b"category"] == b"undecodable" and dl[garbage][b"orig:m"] == b"\xc1\xff garbage"
    assert dl[wrong_version][b"category"] == b"schema_version" and b"99" in dl[wrong_version][b"reason"]
    assert dl[wrong_kind][b"category"] == b"wrong_kind"
    assert dl[missing][b"category"] == b"missing_field" and dl[missing][b"orig:other"] == b"x"
    assert all(f[b"source"] == rig.keys.rollouts.encode() and f[b"consumer"] == b"c1" for f in dl.values())
    for reason in ("undecodable", "schema_version", "wrong_kind", "missing_field"):
        assert rig.metric("dead_lettered_total", reason=reason) == 1.0
    # Dead-lettered entries are acked and committed; only the good one is outstanding.
    assert rd.pending() == 1 and rd.backlog() == 1
    rd.ack([good])
    assert rd.backlog() == 0 and rig.r.xlen(rig.keys.rollouts) == 0


def test_reclaim_from_idle_consumer(redis_client):
    rig = Rig(redis_client, claim_idle_ms=200)
    w, dead, alive = rig.writer(), rig.reader("dead"), rig.reader("alive")
    ids = [w.write(stop(i)) for i in range(3)]
    assert len(dead.read(3, block_ms=0)) == 3  # delivered to "dead", never acked
    t0 = time.monotonic()
    got = []
    wait_for(lambda: got.extend(alive.read(3, block_ms=20)) or got, "reclaim", 10, every=0.005)
    assert time.monotonic() - t0 >= 0.15  # not before the entries were idle long enough
    assert [d.entry_id for d in got] == ids and all(d.deliveries == 2 for d in got)
    assert rig.metric("reclaimed_total") == 3
    assert alive.ack(ids) == 3 and dead.ack(ids) == 0  # the late ack of the dead one counts nothing
    assert rig.counters() == (3, 3)


def test_restarted_consumer_resumes_its_own_pending(rig):
    w = rig.writer()
    ids = [w.write(stop(i)) for i in range(3)]
    assert len(rig.reader("learner-0").read(2, block_ms=0)) == 2  # then the process "dies"
    again = rig.reader("learner-0")  # same name, long claim_idle_ms: no reclaim needed
    got = again.read(10, block_ms=0)
    assert [d.entry_id for d in got] == ids[:2] and all(d.deliveries >= 1 for d in got)
    assert [d.entry_id for d in again.read(10, block_ms=0)] == ids[2:]
    assert again.ack(ids) == 3 and again.pending() == 0


def test_read_blocks_until_a_write(rig):
    w, rd = rig.writer(), rig.reader()
    assert rd.read(5, block_ms=0) == []
    t = threading.Timer(0.1, lambda: w.write(stop("late")))
    t.start()
    got = rd.read(5, block_ms=5000)
    t.join()
    assert [d.message.reason for d in got] == ["msg-late"]


def test_group_creation_is_idempotent(rig):
    rig.reader("a")
    rig.reader("b")
    groups = rig.r.xinfo_groups(rig.keys.rollouts)
    assert [g["name"] for g in groups] == [rig.keys.rollouts_group.encode()]


def test_maxlen_safety_net_reports_a_trim(rig, caplog):
    """If the counters are tampered with, the exact MAXLEN still bounds the stream, and the
    entry it drops is logged and counted (it cannot happen while the counters are intact)."""
    w = rig.writer(max_backlog=2)
    assert w.maxlen == 2 + 8
    for i in range(w.maxlen + 1):
        rig.r.delete(rig.keys.backlog)  # "reset" the counters behind the writer's back
        w.write(stop(i))
    assert rig.r.xlen(rig.keys.rollouts) == w.maxlen
    assert rig.metric("dead_lettered_total", reason="trimmed") == 1
    assert "trimmed 1 unread entries" in caplog.text


def test_pending_entry_deleted_under_a_dead_consumer_is_accounted(redis_client):
    """Data of a pending entry deleted behind the group's back (Redis 7 drops it from the group
    during XAUTOCLAIM, 6.2 hands it over as nil): the backlog must still drain to 0."""
    rig = Rig(redis_client, claim_idle_ms=100)
    w, dead, alive = rig.writer(), rig.reader("dead"), rig.reader("alive")
    ids = [w.write(stop(i)) for i in range(3)]
    dead.read(3, block_ms=0)
    rig.r.xdel(rig.keys.rollouts, ids[1])
    got = []
    wait_for(lambda: got.extend(alive.read(3, block_ms=20)) or len(got) >= 2, "reclaim", 10, every=0.005)
    assert [d.entry_id for d in got] == [ids[0], ids[2]]
    alive.ack([d.entry_id for d in got])
    wait_for(lambda: alive.read(3, block_ms=0) == [] and alive.backlog() == 0, "backlog 0", 10, every=0.005)
    assert alive.pending() == 0
    assert rig.metric("dead_lettered_total", reason="deleted") == 1


def test_restarted_consumer_dead_letters_its_deleted_pending_entry(rig):
    w = rig.writer()
    ids = [w.write(stop(i)) for i in range(2)]
    rig.reader("learner-0").read(2, block_ms=0)
    rig.r.xdel(rig.keys.rollouts, ids[0])
    again = rig.reader("learner-0")
    got = again.read(10, block_ms=0)
    assert [d.entry_id for d in got] == ids[1:]
    [(_id, record)] = rig.r.xrange(rig.keys.deadletter)
    assert record[b"category"] == b"deleted" and record[b"entry_id"] == ids[0].encode()
    again.ack(ids[1:])
    assert again.backlog() == 0 and again.pending() == 0
