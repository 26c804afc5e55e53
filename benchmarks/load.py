"""Load benchmark: N simulated samplers push realistic rollout batches as fast as they can into
one run's stream for a fixed time, against one learner-like consumer.

Each sampler is a process with its own `StreamWriter` (the real back-pressure path: the backlog
bound is `--max-backlog`); the consumer is a `StreamReader` of the learners' group that decodes
every batch, "commits" it the way the learner does (batch id into the trained set, then ack),
optionally spending `--train-ms` per batch as a stand-in for the optimizer step. A monitor polls
Redis `INFO memory` and the stream length twice a second.

Checks and reports: every batch id produced was committed exactly once (none lost, none twice);
peak Redis `used_memory` and peak stream length (the bound must hold); end-to-end latency from a
batch's creation (before its write, so back-pressure waiting counts) to its commit, p50/p99.

    .venv/bin/python -m benchmarks.load [--duration 300] [--samplers 8] [--samples 128]
        [--prompt 128] [--completion 512] [--max-backlog 64] [--train-ms 0] [--json out.json]
Exit status 1 if anything was lost or committed twice, or the stream outgrew its bound.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import sys
import tempfile
import threading
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from shared.embedded_redis import EmbeddedRedis
from shared.keys import RunKeys
from shared.protocol import RolloutBatch, encode
from shared.streams import StreamReader, StreamWriter, backlog_slack, connect

RUN = "load"


def make_batch(rng: np.random.Generator, n: int, prompt: int, completion: int, sampler: str) -> RolloutBatch:
    """A batch shaped like one sampler generation call after filtering (n samples, G = 8)."""
    return RolloutBatch(
        run_id=RUN, batch_id=uuid.uuid4().hex, sampler_id=sampler, policy_version=1, created_at=time.time(),
        prompt_ids=rng.integers(0, 150_000, n * prompt, dtype=np.int32), prompt_lens=np.full(n, prompt, np.int32),
        completion_ids=rng.integers(0, 150_000, n * completion, dtype=np.int32),
        completion_lens=np.full(n, completion, np.int32), logprobs=-rng.random(n * completion, dtype=np.float32),
        rewards=rng.random(n, dtype=np.float32), advantages=rng.standard_normal(n, dtype=np.float32),
        group_ids=np.repeat(np.arange(-(-n // 8), dtype=np.int32), 8)[:n], finish_reasons=np.zeros(n, np.uint8),
        stats={"reward_mean": 0.5, "kept_fraction": 0.8})


def sampler_proc(url: str, idx: int, args: argparse.Namespace, deadline: float, out: str) -> None:
    """Push batches until `deadline`; append each written batch id to `out` (one per line)."""
    r, keys = connect(url), RunKeys(RUN)
    writer = StreamWriter(r, keys.rollouts, backlog_key=keys.backlog, max_backlog=args.max_backlog)
    rng = np.random.default_rng(idx)
    template = make_batch(rng, args.samples, args.prompt, args.completion, f"sim-{idx}")
    with open(out, "w") as f:
        while time.time() < deadline:
            template.batch_id, template.created_at = uuid.uuid4().hex, time.time()
            writer.write(encode(template), timeout=120)  # raises (and the run fails) if blocked 2 min
            f.write(template.batch_id + "\n")
            f.flush()


class Consumer(threading.Thread):
    """The learner's side: read, decode, commit (trained set, then ack), record latency."""

    def __init__(self, url: str, train_s: float) -> None:
        super().__init__(daemon=True)
        keys = RunKeys(RUN)
        self.r, self.keys, self.train_s = connect(url), keys, train_s
        self.reader = StreamReader(self.r, keys.rollouts, keys.rollouts_group, "learner-0", backlog_key=keys.backlog,
                                   deadletter=keys.deadletter, expect=RolloutBatch, block_ms=200)
        self.latencies: list[float] = []
        self.committed: list[str] = []
        self.duplicates = 0
        self.done = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            while not (self.done.is_set() and self.reader.backlog() == 0):
                got = self.reader.read(4)
                if not got:
                    continue
                if self.train_s:
                    time.sleep(self.train_s * len(got))  # stand-in for the optimizer step
                ids = [d.message.batch_id for d in got]
                pipe = self.r.pipeline(transaction=True)
                for b in ids:
                    pipe.sadd(self.keys.trained, b)
                added = pipe.execute()
                self.duplicates += sum(1 for a in added if a == 0)
                self.reader.ack([d.entry_id for d in got])
                now = time.time()
                self.latencies += [now - d.message.created_at for d in got]
                self.committed += ids
        except BaseException as err:  # reported by main
            self.error = err


def monitor(r, keys: RunKeys, stop: threading.Event, peaks: dict) -> None:
    while not stop.is_set():
        info = r.info("memory")
        peaks["used_memory"] = max(peaks["used_memory"], info["used_memory"])
        peaks["xlen"] = max(peaks["xlen"], r.xlen(keys.rollouts))
        produced, committed = r.hmget(keys.backlog, ["produced", "committed"])
        peaks["backlog"] = max(peaks["backlog"], int(produced or 0) - int(committed or 0))
        stop.wait(0.5)


def run(args: argparse.Namespace) -> dict:
    workdir = Path(tempfile.mkdtemp(prefix="dashrl-load-"))
    # TCP like compose; no AOF: at full speed it would append GBs to this box's disk.
    with EmbeddedRedis(workdir, unix_socket=False) as er:
        r, keys = connect(er.url), RunKeys(RUN)
        r.config_set("appendonly", "no")
        base_memory = r.info("memory")["used_memory"]
        payload = len(encode(make_batch(np.random.default_rng(0), args.samples, args.prompt, args.completion, "x")))
        consumer = Consumer(er.url, args.train_ms / 1000)
        consumer.start()
        peaks, stop = {"used_memory": 0, "xlen": 0, "backlog": 0}, threading.Event()
        mon = threading.Thread(target=monitor, args=(connect(er.url), keys, stop, peaks), daemon=True)
        mon.start()
        t0 = time.time()
        deadline = t0 + args.duration
        outs = [str(workdir / f"sampler-{i}.ids") for i in range(args.samplers)]
        procs = [mp.get_context("spawn").Process(target=sampler_proc, args=(er.url, i, args, deadline, outs[i]))
                 for i in range(args.samplers)]
        for p in procs:
            p.start()
        for p in procs:
            p.join()
        consumer.done.set()
        consumer.join(300)
        elapsed = time.time() - t0
        stop.set()
        mon.join()
        peak_reported = r.info("memory")["used_memory_peak"]
        produced = [line for o in outs for line in Path(o).read_text().split()]
        trained = {m.decode() for m in r.smembers(keys.trained)}
        deadletters = r.xlen(keys.deadletter)
    lat = np.array(consumer.latencies)
    result = {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "machine": machine(),
        "command": "python -m benchmarks.load " + " ".join(sys.argv[1:]),
        "samplers": args.samplers, "duration_s": args.duration, "elapsed_s": round(elapsed, 1),
        "batch": f"{args.samples} samples x ({args.prompt} prompt + {args.completion} completion) tokens",
        "payload_bytes": payload, "max_backlog": args.max_backlog, "train_ms": args.train_ms,
        "sampler_exit_codes": [p.exitcode for p in procs], "consumer_error": repr(consumer.error) if consumer.error else None,
        "produced": len(produced), "produced_unique": len(set(produced)), "committed": len(consumer.committed),
        "committed_unique": len(set(consumer.committed)), "duplicates": consumer.duplicates,
        "lost": len(set(produced) - trained), "unexpected": len(trained - set(produced)), "dead_lettered": deadletters,
        "batches_per_s": round(len(consumer.committed) / elapsed, 1),
        "mb_per_s": round(len(consumer.committed) * payload / elapsed / 1e6, 1),
        "latency_p50_ms": round(float(np.percentile(lat, 50)) * 1e3, 1) if lat.size else None,
        "latency_p99_ms": round(float(np.percentile(lat, 99)) * 1e3, 1) if lat.size else None,
        "latency_max_ms": round(float(lat.max()) * 1e3, 1) if lat.size else None,
        "peak_xlen": peaks["xlen"], "xlen_bound": args.max_backlog + backlog_slack(args.max_backlog),
        "peak_backlog": peaks["backlog"], "redis_base_mb": round(base_memory / 1e6, 1),
        "redis_peak_used_mb": round(peaks["used_memory"] / 1e6, 1),
        "redis_used_memory_peak_mb": round(peak_reported / 1e6, 1),
        "payload_bound_mb": round(args.max_backlog * payload / 1e6, 1),
    }
    result["ok"] = bool(result["lost"] == 0 and result["duplicates"] == 0 and result["unexpected"] == 0
                        and result["produced"] == result["produced_unique"] == result["committed_unique"]
                        and result["peak_backlog"] <= args.max_backlog and result["consumer_error"] is None
                        and all(c == 0 for c in result["sampler_exit_codes"]))
    return result


def machine() -> str:
    return f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.python_version()}, {platform.node()}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--duration", type=float, default=300.0)
    ap.add_argument("--samplers", type=int, default=8)
    ap.add_argument("--samples", type=int, default=128)
    ap.add_argument("--prompt", type=int, default=128)
    ap.add_argument("--completion", type=int, default=512)
    ap.add_argument("--max-backlog", type=int, default=64)
    ap.add_argument("--train-ms", type=float, default=0.0)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    result = run(args)
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
