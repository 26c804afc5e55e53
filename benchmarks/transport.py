"""Transport benchmark: protocol encode/decode, our Redis stream round trips, redis-benchmark.

Measures, on this machine and one private redis-server (no persistence):
  1. encode + decode of a realistic RolloutBatch (256 samples x (128 prompt + 512 completion) tokens);
  2. StreamWriter.write -> StreamReader.read (which decodes) -> ack, one batch at a time, and
     streaming (a writer process and a reader, back-pressure at 8 entries);
  3. `redis-benchmark -t set,get -d <same payload bytes> -c 1` on the same server: SET moves the
     payload in, GET moves it out; "in+out" is the rate of one SET plus one GET per payload, the
     same bytes our round trip moves (XADD in, XREADGROUP out).
(2) against (3) is the target, over TCP on 127.0.0.1 as the services connect; for the realistic
batch the same comparison also runs over the server's unix socket, both sides, for reference.
Writes the results under "## Transport" in docs/benchmarks.md (other sections are left alone;
the text is `benchmarks/transport_doc.py`'s).

    .venv/bin/python -m benchmarks.transport [--scale X] [--no-docs]
"""

from __future__ import annotations

import argparse
import csv
import io
import multiprocessing
import os
import platform
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from benchmarks.transport_doc import markdown, write_section
from shared.keys import RunKeys
from shared.protocol import RolloutBatch, decode, encode
from shared.streams import StreamReader, StreamWriter, connect



def realistic_batch(n: int = 256, prompt: int = 128, completion: int = 512, seed: int = 0) -> RolloutBatch:
    rng = np.random.default_rng(seed)
    return RolloutBatch(
        run_id="bench", batch_id="b0", sampler_id="s0", policy_version=3, created_at=time.time(),
        prompt_ids=rng.integers(0, 150_000, n * prompt, dtype=np.int32),
        prompt_lens=np.full(n, prompt, np.int32),
        completion_ids=rng.integers(0, 150_000, n * completion, dtype=np.int32),
        completion_lens=np.full(n, completion, np.int32),
        logprobs=-rng.random(n * completion, dtype=np.float32) * 5,
        rewards=rng.random(n, dtype=np.float32), advantages=rng.standard_normal(n, dtype=np.float32),
        group_ids=np.repeat(np.arange(n // 8, dtype=np.int32), 8),
        finish_reasons=np.zeros(n, np.uint8), stats={"reward_mean": 0.5, "kept_fraction": 0.8},
    )


def timed(fn, rounds: int, repeats: int = 3) -> float:
    """Best-of-`repeats` seconds per call (the least disturbed by other processes on the box)."""
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(rounds):
            fn()
        best = min(best, (time.perf_counter() - t0) / rounds)
    return best


def bench_codec(batch: RolloutBatch, rounds: int) -> dict:
    raw = encode(batch)
    enc = timed(lambda: encode(batch), rounds)
    dec = timed(lambda: decode(raw, expect=RolloutBatch), rounds)
    both = enc + dec
    return {"bytes": len(raw), "encode_ms": enc * 1e3, "decode_ms": dec * 1e3,
            "batches_s": 1 / both, "mb_s": len(raw) / both / 1e6}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_redis(workdir: Path) -> tuple[subprocess.Popen, int]:
    """A private redis-server on a free TCP port, also listening on `workdir`/redis.sock."""
    port = free_port()
    proc = subprocess.Popen([shutil.which("redis-server") or "redis-server", "--port", str(port), "--bind",
                             "127.0.0.1", "--unixsocket", str(workdir / "redis.sock"), "--save", "",
                             "--appendonly", "no", "--dir", str(workdir)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    r = connect(f"redis://127.0.0.1:{port}/0")
    deadline = time.monotonic() + 10
    while True:
        try:
            r.ping()
            return proc, port
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def make_pair(url: str, run_id: str, max_backlog: int):
    r, keys = connect(url), RunKeys(run_id)
    w = StreamWriter(r, keys.rollouts, backlog_key=keys.backlog, max_backlog=max_backlog)
    rd = StreamReader(connect(url), keys.rollouts, keys.rollouts_group, "bench", backlog_key=keys.backlog,
                      deadletter=keys.deadletter, expect=RolloutBatch)
    return w, rd


def round_trip_fn(url: str, payload: bytes, tag: str):
    w, rd = make_pair(url, f"rt-{tag}", max_backlog=4)

    def once():
        w.write(payload)
        got = rd.read(1, block_ms=1000)
        assert len(got) == 1
        rd.ack([got[0].entry_id])

    return once


def redis_py_fn(url: str, payload: bytes):
    """The same client library doing the plainest in+out: SET then GET of the payload."""
    r = connect(url)

    def once():
        r.set("bench:plain", payload)
        assert len(r.get("bench:plain")) == len(payload)

    return once


def _stream_writer(url: str, run_id: str, payload: bytes, n: int) -> None:
    w, _ = make_pair(url, run_id, max_backlog=8)
    for _ in range(n):
        w.write(payload, timeout=60)


def bench_streaming(url: str, payload: bytes, n: int, tag: str) -> dict:
    """A writer process (like a sampler) and this process reading one at a time and acking."""
    _, rd = make_pair(url, f"st-{tag}", max_backlog=8)
    writer = multiprocessing.get_context("spawn").Process(target=_stream_writer, args=(url, f"st-{tag}", payload, n))
    writer.start()
    got = rd.read(1, block_ms=30000)  # the clock starts at the first entry, not at process start-up
    t0, done = time.perf_counter(), 0
    while True:
        rd.ack([d.entry_id for d in got])
        done += len(got)
        if done >= n:
            break
        got = rd.read(1, block_ms=5000)  # as the learner reads
    dt = time.perf_counter() - t0
    writer.join(30)
    return {"batches_s": (n - 1) / dt, "mb_s": (n - 1) * len(payload) / dt / 1e6}


def redis_benchmark(server: list[str], size: int, n: int, clients: int = 1) -> tuple[dict, list[str]]:
    """One run of `redis-benchmark -t set,get` against `server` (["-h", host, "-p", port] or
    ["-s", socket path]): requests/s of each."""
    cmd = ["redis-benchmark", *server, "-t", "set,get", "-d", str(size),
           "-n", str(n), "-c", str(clients), "--csv"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=600).stdout
    return {row[0]: float(row[1]) for row in csv.reader(io.StringIO(out)) if row and row[0] in ("SET", "GET")}, cmd


def cpu_ms(who: int) -> float:
    """User + system CPU ms so far of this process (RUSAGE_SELF) or its waited-for children."""
    ru = resource.getrusage(who)
    return (ru.ru_utime + ru.ru_stime) * 1e3


def transport_vs_redis(url: str, server: list[str], payload: bytes, rounds: int, bench_n: int,
                       tag: str) -> tuple[dict, list]:
    """Our round trip, redis-py SET+GET and redis-benchmark, interleaved `REPEATS` times so all
    three meet the same background load; best of each. Also the client CPU each spends per
    payload in+out (ours: this process; redis-benchmark: the child, per SET + GET)."""
    ours, plain = round_trip_fn(url, payload, tag), redis_py_fn(url, payload)
    best = {"ours": float("inf"), "plain": float("inf"), "SET": 0.0, "GET": 0.0}
    cpu = {"ours": 0.0, "redis_benchmark": 0.0}
    for _ in range(REPEATS):
        c0 = cpu_ms(resource.RUSAGE_SELF)
        best["ours"] = min(best["ours"], timed(ours, rounds, repeats=1))
        c1 = cpu_ms(resource.RUSAGE_SELF)
        best["plain"] = min(best["plain"], timed(plain, rounds, repeats=1))
        c2 = cpu_ms(resource.RUSAGE_CHILDREN)
        rows, cmd = redis_benchmark(server, len(payload), bench_n)
        cpu["ours"] += (c1 - c0) / rounds / REPEATS
        cpu["redis_benchmark"] += (cpu_ms(resource.RUSAGE_CHILDREN) - c2) / bench_n / REPEATS
        best["SET"], best["GET"] = max(best["SET"], rows["SET"]), max(best["GET"], rows["GET"])
    inout = 1 / (1 / best["SET"] + 1 / best["GET"])
    mb = len(payload) / 1e6
    return {"round_trip": {"batches_s": 1 / best["ours"], "mb_s": mb / best["ours"]},
            "redis_py_mb_s": mb / best["plain"], "client_cpu_ms": cpu,
            "redis_benchmark": {"set_mb_s": best["SET"] * mb, "get_mb_s": best["GET"] * mb,
                                "inout_ops_s": inout, "inout_mb_s": inout * mb}}, cmd


def cpu_idle(seconds: float = 2.0) -> float:
    """Fraction of all CPUs' time idle over the next `seconds` (/proc/stat): how quiet the box is
    right now; the load average also remembers the last minutes, our own earlier runs included."""
    def sample() -> tuple[int, int]:
        ticks = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        return ticks[3] + ticks[4], sum(ticks)  # idle + iowait, total
    (idle0, total0), _ = sample(), time.sleep(seconds)
    idle1, total1 = sample()
    return (idle1 - idle0) / max(1, total1 - total0)


def machine() -> dict:
    cpu = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                if ln.startswith("model name")), platform.processor())
    redis_v = subprocess.run(["redis-server", "--version"], capture_output=True, text=True).stdout.split()
    return {"nproc": os.cpu_count(), "cpu": cpu, "load": os.getloadavg(), "idle": cpu_idle(),
            "redis": next((w[2:] for w in redis_v if w.startswith("v=")), "?"),
            "python": platform.python_version(), "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}


REPEATS = 5
TRIALS = 5
UNIX_TRIALS = 3
CASES = {  # name -> (samples, prompt tokens, completion tokens, codec/round-trip rounds, redis-benchmark -n)
    "realistic 256x(128+512)": (256, 128, 512, 40, 200),
    "small 8x(32+64)": (8, 32, 64, 400, 4000),
}


def server_us(url: str) -> dict[str, float]:
    """Server-side microseconds per call (INFO commandstats) of the commands that move payloads."""
    stats = connect(url).info("commandstats")
    return {name: stats[f"cmdstat_{name}"]["usec_per_call"] for name in ("xadd", "xreadgroup", "evalsha", "set", "get")
            if f"cmdstat_{name}" in stats}


def trials(url: str, server: list[str], payload: bytes, rounds: int, bench_n: int, tag: str,
           n: int) -> tuple[dict, list[float], list[str]]:
    """`n` trials of `transport_vs_redis`: the median trial and every ratio, ascending."""
    out = []
    for t in range(n):  # the median trial goes in the table; all ratios are listed
        compared, cmd = transport_vs_redis(url, server, payload, rounds, bench_n, f"{tag}-{t}")
        out.append((compared["round_trip"]["mb_s"] / compared["redis_benchmark"]["inout_mb_s"], compared))
    out.sort(key=lambda x: x[0])
    return out[len(out) // 2][1], [round(x, 2) for x, _ in out], cmd


def run(rounds_scale: float) -> tuple[list[dict], list[list[str]]]:
    results, commands = [], []
    with tempfile.TemporaryDirectory() as tmp:
        proc, port = start_redis(Path(tmp))
        url, tcp = f"redis://127.0.0.1:{port}/0", ["-h", "127.0.0.1", "-p", str(port)]
        try:
            for i, (name, (n, p, c, rounds, bench_n)) in enumerate(CASES.items()):
                rounds = max(3, int(rounds * rounds_scale))
                bench_n = max(50, int(bench_n * rounds_scale))
                batch = realistic_batch(n, p, c)
                payload = encode(batch)
                connect(url).config_resetstat()
                row = {"case": name, "codec": bench_codec(batch, rounds),
                       "streaming": bench_streaming(url, payload, rounds * 3, str(i))}
                median, row["ratios"], cmd = trials(url, tcp, payload, rounds, bench_n, str(i), TRIALS)
                row.update(median)
                commands.append(cmd)
                row["server_us"] = server_us(url)
                if i == 0:  # the same comparison over the server's unix socket, both sides
                    sock = str(Path(tmp) / "redis.sock")
                    _, row["unix_ratios"], _ = trials(f"unix://{sock}?db=0", ["-s", sock], payload, rounds,
                                                      bench_n, "u", UNIX_TRIALS)
                results.append(row)
                print(f"{name}: {row}", flush=True)
        finally:
            proc.terminate()
            proc.wait(10)
    return results, commands


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", type=float, default=1.0, help="multiply every repeat count (0.1: a quick look)")
    ap.add_argument("--no-docs", action="store_true", help="print only; leave docs/benchmarks.md alone")
    args = ap.parse_args()
    info = {**machine(), "repeats": REPEATS, "trials": TRIALS}
    results, commands = run(args.scale)
    section = markdown(results, commands, info, [".venv/bin/python", "-m", "benchmarks.transport", *sys.argv[1:]])
    print(section)
    if not args.no_docs:
        write_section(section)
        print("wrote docs/benchmarks.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
