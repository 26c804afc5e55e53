"""connect() and with_retry() through a real redis-server that goes away and comes back."""

from __future__ import annotations

import threading
import time

import pytest
import redis
from prometheus_client import CollectorRegistry

from shared.keys import RunKeys
from shared.metrics import stream_metrics
from shared.protocol import StopRun, encode
from shared.redis_client import RedisUnavailable, connect, with_retry
from shared.streams import StreamReader, StreamWriter


def errors(reg) -> float:
    return reg.get_sample_value("dashrl_test_redis_errors_total") or 0.0


def restart_after_first_error(proc, reg):
    """Bring Redis back once with_retry has seen (and counted) at least one failure."""

    def run():
        deadline = time.monotonic() + 20
        while errors(reg) < 1 and time.monotonic() < deadline:
            time.sleep(0.005)
        proc.start()

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def test_connect_speaks_bytes(fresh_redis):
    r = connect(fresh_redis.url)
    r.set("k", "v")
    assert r.get("k") == b"v"


def test_with_retry_recovers_after_restart_mid_operation(fresh_redis):
    reg = CollectorRegistry()
    m = stream_metrics(reg, "test")
    keys = RunKeys("retry")
    r = connect(fresh_redis.url, socket_timeout=2)
    w = StreamWriter(r, keys.rollouts, backlog_key=keys.backlog, max_backlog=10, metrics=m)
    rd = StreamReader(r, keys.rollouts, keys.rollouts_group, "c", backlog_key=keys.backlog,
                      deadletter=keys.deadletter, expect=StopRun, metrics=m)
    first = w.write(encode(StopRun("run", "before")))
    fresh_redis.stop()  # graceful: the AOF keeps the entry, the group and the counters
    t = restart_after_first_error(fresh_redis, reg)
    second = w.write(encode(StopRun("run", "after")))  # fails, backs off, succeeds after restart
    t.join(20)
    assert errors(reg) >= 1
    got = rd.read(10, block_ms=0)
    assert [d.entry_id for d in got] == [first, second]
    fresh_redis.restart()  # and once more while the entries are pending
    assert rd.ack([first, second]) == 2
    assert rd.backlog() == 0 and rd.pending() == 0


def test_reader_blocked_in_read_survives_restart(fresh_redis):
    reg = CollectorRegistry()
    m = stream_metrics(reg, "test")
    keys = RunKeys("retry2")
    r = connect(fresh_redis.url, socket_timeout=5)
    rd = StreamReader(r, keys.rollouts, keys.rollouts_group, "c", backlog_key=keys.backlog,
                      deadletter=keys.deadletter, expect=StopRun, metrics=m)
    result = {}
    t = threading.Thread(target=lambda: result.setdefault("got", rd.read(1, block_ms=3000)), daemon=True)
    t.start()
    fresh_redis.restart()  # kills the blocked XREADGROUP's connection
    w = StreamWriter(connect(fresh_redis.url), keys.rollouts, backlog_key=keys.backlog, max_backlog=10)
    w.write(encode(StopRun("run", "x")))
    t.join(30)
    assert not t.is_alive()
    # Either the interrupted read was retried and got the entry, or it returned empty-handed;
    # in both cases the entry is readable and nothing was lost.
    got = result["got"] or rd.read(1, block_ms=2000)
    assert [d.message.reason for d in got] == ["x"]


def test_with_retry_gives_up_with_a_clear_error(fresh_redis):
    reg = CollectorRegistry()
    r = connect(fresh_redis.url, socket_timeout=1)
    fresh_redis.stop()
    t0 = time.monotonic()
    with pytest.raises(RedisUnavailable, match=r"^write the thing: Redis unreachable"):
        with_retry(lambda: r.set("k", "v"), what="write the thing", max_wait_s=0.5,
                   metrics=stream_metrics(reg, "test"))
    assert time.monotonic() - t0 < 5
    assert errors(reg) >= 3  # 0.05 + 0.1 + 0.2 fit in 0.5 s


def test_with_retry_does_not_retry_other_errors(redis_client):
    calls = []

    def bad():
        calls.append(1)
        return redis_client.execute_command("NOT-A-COMMAND")

    with pytest.raises(redis.ResponseError):
        with_retry(bad, what="bad")
    assert calls == [1]
