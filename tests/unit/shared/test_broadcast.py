"""Broadcast (fan-out, no group) against a real private redis-server."""

from __future__ import annotations

import threading

from prometheus_client import CollectorRegistry

from shared.broadcast import Broadcast
from shared.keys import PAYLOAD_FIELD
from shared.metrics import stream_metrics
from shared.protocol import StopRun, WeightsPublished


def weights(v: int) -> WeightsPublished:
    return WeightsPublished("run", v, f"/w/v{v}", "safetensors-dir", "ab" * 32, 10, v, 1.0)


def make(r, **kw):
    reg = CollectorRegistry()
    return Broadcast(r, "bc", metrics=stream_metrics(reg, "test"), **kw), reg


def test_round_trip_in_order(redis_client):
    bc, _ = make(redis_client)
    ids = [bc.publish(weights(v)) for v in range(3)]
    got = bc.read_after("0")
    assert [i for i, _ in got] == ids
    assert [m.version for _, m in got] == [0, 1, 2] and got[0][1] == weights(0)
    assert bc.read_after(ids[0]) == got[1:]
    assert bc.read_after(ids[-1]) == []
    assert bc.latest() == (ids[-1], weights(2))


def test_two_readers_each_see_everything(redis_client):
    a, _ = make(redis_client)
    b = Broadcast(redis_client, "bc")
    a.publish(StopRun("run", "x"))
    assert a.read_after("0") == b.read_after("0") and len(b.read_after("0")) == 1


def test_garbage_is_skipped_counted_once_and_never_raised(redis_client):
    bc, reg = make(redis_client)
    first = bc.publish(weights(1))
    redis_client.xadd("bc", {PAYLOAD_FIELD: b"\x00garbage"})
    second = bc.publish(weights(2))
    redis_client.xadd("bc", {b"no_payload": b"1"})
    redis_client.xadd("bc", {PAYLOAD_FIELD: b"more garbage"})
    got = bc.read_after("0")
    assert [i for i, _ in got] == [first, second]
    # Only garbage follows `second`: nothing to return, and asking again re-reads nothing.
    assert bc.read_after(second) == []
    assert bc.read_after(second) == []
    count = lambda reason: reg.get_sample_value("dashrl_test_dead_lettered_total", {"reason": reason})
    assert bc.read_after("0") == got  # re-reading from the start does not count them again
    assert count("undecodable") == 2 and count("missing_field") == 1
    assert bc.latest() == (second, weights(2))  # the newest *decodable* one
    third = bc.publish(weights(3))
    assert [i for i, _ in bc.read_after(second)] == [third]


def test_expect_filters_kind(redis_client):
    bc, reg = make(redis_client, expect=WeightsPublished)
    bc.publish(StopRun("run", "wrong stream"))
    good = bc.publish(weights(4))
    assert [i for i, _ in bc.read_after("0")] == [good]
    assert reg.get_sample_value("dashrl_test_dead_lettered_total", {"reason": "wrong_kind"}) == 1


def test_latest_of_empty_or_all_garbage_is_none(redis_client):
    bc, _ = make(redis_client)
    assert bc.latest() is None
    for _ in range(40):  # more than one page of garbage
        redis_client.xadd("bc", {PAYLOAD_FIELD: b"junk"})
    assert bc.latest() is None
    good = bc.publish(weights(1))
    for _ in range(40):
        redis_client.xadd("bc", {PAYLOAD_FIELD: b"junk"})
    assert bc.latest() == (good, weights(1))


def test_bounded(redis_client):
    bc, _ = make(redis_client, maxlen=100)
    for v in range(1000):
        bc.publish(StopRun("run", str(v)))
    assert redis_client.xlen("bc") <= 300  # approximate trimming: whole macro-nodes of 100
    assert bc.latest()[1].reason == "999"


def test_read_after_blocks_until_publish(redis_client):
    bc, _ = make(redis_client)
    last = bc.publish(weights(1))
    t = threading.Timer(0.1, lambda: bc.publish(weights(2)))
    t.start()
    got = bc.read_after(last, block_ms=5000)
    t.join()
    assert [m.version for _, m in got] == [2]
