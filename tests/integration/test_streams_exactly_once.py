"""10,000 rollout batches, one writer, two reader processes, one SIGKILLed half-way.

"Exactly once" here means: every batch's effect is committed exactly once, although the
transport delivers at least once. Each reader commits a delivery with one Lua call that adds
the batch id to a set (the idempotency guard, like `RunKeys.trained`) and, only if it was new,
appends it to the `commits` log; a repeat goes to the `redeliveries` log instead. It acks only
after that commit. The victim is killed after committing part of a batch without acking it and
holding the rest un-committed, so the survivor must reclaim both kinds.

The test fails if the transport loses an entry (an id missing from `commits`), delivers an acked
entry again as new (a redelivery with a delivery count of 1), counts an ack twice or leaves
anything pending (backlog != 0, XPENDING != 0), or lets the stream grow past its bound.
The workers run this file as a script (`python test_streams_exactly_once.py ROLE ...`).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

N_BATCHES = 10_000
MAX_BACKLOG = 200
CLAIM_IDLE_MS = 1500
VICTIM_COMMITS_BEFORE_DYING = 1500
ROOT = Path(__file__).resolve().parents[2]

COMMIT = """
for _, bid in ipairs(ARGV) do
  if redis.call('SADD', KEYS[1], bid) == 1 then redis.call('RPUSH', KEYS[2], bid)
  else redis.call('RPUSH', KEYS[3], bid) end
end
return 1
"""


def k(run_id: str, name: str) -> str:
    return f"test:{run_id}:{name}"


def batch_ids() -> list[str]:
    return [f"batch-{i:05d}" for i in range(N_BATCHES)]


# ---------------------------------------------------------------- worker processes (the script)

def run_writer(url: str, run_id: str) -> None:
    import numpy as np

    from shared.keys import RunKeys
    from shared.protocol import RolloutBatch, Sample, encode
    from shared.streams import StreamWriter, connect

    r, keys = connect(url), RunKeys(run_id)
    w = StreamWriter(r, keys.rollouts, backlog_key=keys.backlog, max_backlog=MAX_BACKLOG)
    sample = Sample(np.arange(4), np.arange(3), np.full(3, -0.5, np.float32), 1.0, 0.5, 0)
    max_len = 0
    for bid in batch_ids():
        batch = RolloutBatch.from_samples([sample], run_id=run_id, batch_id=bid, sampler_id="w",
                                          policy_version=0, created_at=time.time())
        w.write(encode(batch), timeout=60)
        max_len = max(max_len, r.xlen(keys.rollouts))  # after every write
    r.set(k(run_id, "writer"), json.dumps({"max_xlen": max_len, "maxlen": w.maxlen}))


def run_reader(url: str, run_id: str, consumer: str, victim: bool) -> None:
    from shared.keys import RunKeys
    from shared.metrics import stream_metrics
    from shared.protocol import RolloutBatch
    from shared.streams import StreamReader, connect
    from prometheus_client import CollectorRegistry

    r, keys = connect(url), RunKeys(run_id)
    reg = CollectorRegistry()
    rd = StreamReader(r, keys.rollouts, keys.rollouts_group, consumer, backlog_key=keys.backlog,
                      deadletter=keys.deadletter, expect=RolloutBatch, claim_idle_ms=CLAIM_IDLE_MS,
                      metrics=stream_metrics(reg, "test"))
    commit = r.register_script(COMMIT)
    guard = [k(run_id, "committed_set"), k(run_id, "commits"), k(run_id, "redeliveries")]
    committed = 0
    while not r.exists(k(run_id, "stop")):
        got = rd.read(50, block_ms=100)
        if not got:
            continue
        for d in got:
            if d.deliveries > 1:
                r.rpush(k(run_id, "reclaimed_ids"), d.message.batch_id)
        if victim and committed >= VICTIM_COMMITS_BEFORE_DYING and len(got) >= 2:
            # Crash between commit and ack for the first half; the rest is not even committed.
            half = [d.message.batch_id for d in got[: len(got) // 2]]
            commit(keys=guard, args=half)
            r.rpush(k(run_id, "victim_unacked_committed"), *half)
            r.rpush(k(run_id, "victim_uncommitted"), *[d.message.batch_id for d in got[len(got) // 2:]])
            r.set(k(run_id, "victim_ready"), 1)
            while True:  # wait to be SIGKILLed, holding its pending entries
                time.sleep(1)
        commit(keys=guard, args=[d.message.batch_id for d in got])
        rd.ack([d.entry_id for d in got])
        committed += len(got)
    reclaimed = reg.get_sample_value("dashrl_test_reclaimed_total") or 0
    r.set(k(run_id, f"reader:{consumer}"), json.dumps({"committed": committed, "reclaimed": reclaimed}))


# ---------------------------------------------------------------- the test

def spawn(*args: str) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    return subprocess.Popen([sys.executable, __file__, *args], env=env, cwd=ROOT)


@pytest.mark.slow
def test_every_batch_committed_exactly_once_despite_sigkill(redis_proc, redis_client):
    r, url, run_id = redis_client, redis_proc.url, "exactly-once"
    from shared.keys import RunKeys
    from tests.helpers.polling import wait_for

    keys = RunKeys(run_id)
    procs = []
    try:
        victim = spawn("reader", url, run_id, "victim", "1")
        survivor = spawn("reader", url, run_id, "survivor", "0")
        writer = spawn("writer", url, run_id)
        procs = [victim, survivor, writer]
        wait_for(lambda: r.exists(k(run_id, "victim_ready")), "victim to hold un-acked entries", 60, procs=procs,
                 clean_exit_ok=True)
        held = r.xpending_range(keys.rollouts, keys.rollouts_group, "-", "+", 1000, consumername="victim")
        victim.send_signal(signal.SIGKILL)
        victim.wait(10)
        assert len(held) >= 2  # it died holding delivered, un-acked entries
        wait_for(lambda: writer.poll() is not None, "writer to finish", 60, procs=[survivor, writer],
                 clean_exit_ok=True)
        assert writer.returncode == 0
        wait_for(lambda: r.scard(k(run_id, "committed_set")) == N_BATCHES and int(r.hget(keys.backlog, "committed") or 0) == N_BATCHES,
                 "every batch committed and acked", 60, procs=survivor, clean_exit_ok=True)
        r.set(k(run_id, "stop"), 1)
        assert survivor.wait(30) == 0
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait(10)

    commits = [b.decode() for b in r.lrange(k(run_id, "commits"), 0, -1)]
    redeliveries = {b.decode() for b in r.lrange(k(run_id, "redeliveries"), 0, -1)}
    reclaimed = {b.decode() for b in r.lrange(k(run_id, "reclaimed_ids"), 0, -1)}
    unacked_committed = {b.decode() for b in r.lrange(k(run_id, "victim_unacked_committed"), 0, -1)}
    uncommitted = {b.decode() for b in r.lrange(k(run_id, "victim_uncommitted"), 0, -1)}
    held_ids = {p["message_id"] for p in held}

    # Every batch's effect committed exactly once, none lost.
    assert len(commits) == N_BATCHES and sorted(commits) == batch_ids()
    # The victim's held entries (committed-not-acked and not committed) were all reclaimed ...
    assert unacked_committed and uncommitted and len(held_ids) == len(unacked_committed | uncommitted)
    assert unacked_committed | uncommitted <= reclaimed
    # ... and every repeat the guard absorbed was a flagged redelivery, never a fresh delivery.
    assert unacked_committed <= redeliveries <= reclaimed
    # Transport bookkeeping: each ack counted once, nothing pending, nothing left, nothing dead.
    assert r.hgetall(keys.backlog) == {b"produced": str(N_BATCHES).encode(), b"committed": str(N_BATCHES).encode()}
    assert r.xpending(keys.rollouts, keys.rollouts_group)["pending"] == 0
    assert r.xlen(keys.rollouts) == 0 and r.xlen(keys.deadletter) == 0
    stats = json.loads(r.get(k(run_id, "writer")))
    assert 0 < stats["max_xlen"] <= MAX_BACKLOG <= stats["maxlen"]
    survivor_stats = json.loads(r.get(k(run_id, "reader:survivor")))
    assert survivor_stats["reclaimed"] >= len(held_ids)


if __name__ == "__main__":
    role, url, run_id = sys.argv[1:4]
    if role == "writer":
        run_writer(url, run_id)
    else:
        run_reader(url, run_id, sys.argv[4], victim=sys.argv[5] == "1")
