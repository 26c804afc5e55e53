"""Transport benchmark: protocol encode/decode, our Redis stream round trips, redis-benchmark.

Measures, on this machine and one private redis-server (TCP on 127.0.0.1, no persistence):
  1. encode + decode of a realistic RolloutBatch (256 samples x (128 prompt + 512 completion) tokens);
  2. StreamWriter.write -> StreamReader.read (which decodes) -> ack, one batch at a time, and
     streaming (a writer process and a reader, back-pressure at 8 entries);
  3. `redis-benchmark -t set,get -d <same payload bytes> -c 1` on the same server: SET moves the
     payload in, GET moves it out; "in+out" is the rate of one SET plus one GET per payload, the
     same bytes our round trip moves (XADD in, XREADGROUP out).
Writes the results under "## Transport" in docs/benchmarks.md (other sections are left alone).

    .venv/bin/python benchmarks/transport.py [--scale X] [--no-docs]
"""

from __future__ import annotations

import argparse
import csv
import io
import multiprocessing
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from shared.keys import RunKeys  # noqa: E402
from shared.protocol import RolloutBatch, decode, encode  # noqa: E402
from shared.streams import StreamReader, StreamWriter, connect  # noqa: E402

DOCS = ROOT / "docs" / "benchmarks.md"


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
    port = free_port()
    proc = subprocess.Popen([shutil.which("redis-server") or "redis-server", "--port", str(port), "--bind",
                             "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(workdir)],
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


def redis_benchmark(port: int, size: int, n: int, clients: int = 1) -> tuple[dict, list[str]]:
    """One run of `redis-benchmark -t set,get`: requests/s of each."""
    cmd = ["redis-benchmark", "-h", "127.0.0.1", "-p", str(port), "-t", "set,get", "-d", str(size),
           "-n", str(n), "-c", str(clients), "--csv"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=600).stdout
    return {row[0]: float(row[1]) for row in csv.reader(io.StringIO(out)) if row and row[0] in ("SET", "GET")}, cmd


def transport_vs_redis(url: str, port: int, payload: bytes, rounds: int, bench_n: int, tag: str) -> tuple[dict, list]:
    """Our round trip, redis-py SET+GET and redis-benchmark, interleaved `REPEATS` times so all
    three meet the same background load; best of each."""
    ours, plain = round_trip_fn(url, payload, tag), redis_py_fn(url, payload)
    best = {"ours": float("inf"), "plain": float("inf"), "SET": 0.0, "GET": 0.0}
    for _ in range(REPEATS):
        best["ours"] = min(best["ours"], timed(ours, rounds, repeats=1))
        best["plain"] = min(best["plain"], timed(plain, rounds, repeats=1))
        rows, cmd = redis_benchmark(port, len(payload), bench_n)
        best["SET"], best["GET"] = max(best["SET"], rows["SET"]), max(best["GET"], rows["GET"])
    inout = 1 / (1 / best["SET"] + 1 / best["GET"])
    mb = len(payload) / 1e6
    return {"round_trip": {"batches_s": 1 / best["ours"], "mb_s": mb / best["ours"]},
            "redis_py_mb_s": mb / best["plain"],
            "redis_benchmark": {"set_mb_s": best["SET"] * mb, "get_mb_s": best["GET"] * mb,
                                "inout_ops_s": inout, "inout_mb_s": inout * mb}}, cmd


def machine() -> dict:
    cpu = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                if ln.startswith("model name")), platform.processor())
    redis_v = subprocess.run(["redis-server", "--version"], capture_output=True, text=True).stdout.split()
    return {"nproc": os.cpu_count(), "cpu": cpu, "load": os.getloadavg(),
            "redis": next((w[2:] for w in redis_v if w.startswith("v=")), "?"),
            "python": platform.python_version(), "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}


REPEATS = 5
TRIALS = 5
CASES = {  # name -> (samples, prompt tokens, completion tokens, codec/round-trip rounds, redis-benchmark -n)
    "realistic 256x(128+512)": (256, 128, 512, 40, 200),
    "small 8x(32+64)": (8, 32, 64, 400, 4000),
}


def run(rounds_scale: float) -> tuple[list[dict], list[list[str]]]:
    results, commands = [], []
    with tempfile.TemporaryDirectory() as tmp:
        proc, port = start_redis(Path(tmp))
        url = f"redis://127.0.0.1:{port}/0"
        try:
            for i, (name, (n, p, c, rounds, bench_n)) in enumerate(CASES.items()):
                rounds = max(3, int(rounds * rounds_scale))
                batch = realistic_batch(n, p, c)
                payload = encode(batch)
                row = {"case": name, "codec": bench_codec(batch, rounds),
                       "streaming": bench_streaming(url, payload, rounds * 3, str(i))}
                trials = []
                for t in range(TRIALS):  # the median trial goes in the table; all ratios are listed
                    compared, cmd = transport_vs_redis(url, port, payload, rounds,
                                                       max(50, int(bench_n * rounds_scale)), f"{i}-{t}")
                    trials.append((compared["round_trip"]["mb_s"] / compared["redis_benchmark"]["inout_mb_s"], compared))
                trials.sort(key=lambda x: x[0])
                row.update(trials[len(trials) // 2][1])
                row["ratios"] = [round(x, 2) for x, _ in trials]
                commands.append(cmd)
                results.append(row)
                print(f"{name}: {row}", flush=True)
        finally:
            proc.terminate()
            proc.wait(10)
    return results, commands


def markdown(results: list[dict], commands: list[list[str]], info: dict, argv: list[str]) -> str:
    load = ", ".join(f"{x:.2f}" for x in info["load"])
    lines = [
        "## Transport", "",
        f"Measured {info['date']} on {info['nproc']} CPUs ({info['cpu']}), load average before the run "
        f"{load} (1/5/15 min; other agents share this box), redis-server {info['redis']} on 127.0.0.1 TCP "
        f"without persistence, Python {info['python']}. Command: `{' '.join(argv)}`. Each trial ran our round trip, "
        f"redis-py and redis-benchmark interleaved, best of {REPEATS} each; {TRIALS} trials per payload.", "",
        "| payload | bytes | encode ms | decode ms | codec MB/s | round trip batches/s | round trip MB/s "
        "| streaming MB/s | redis-py SET+GET MB/s | redis-benchmark SET MB/s | GET MB/s | SET+GET (in+out) MB/s "
        "| ours / redis-py | ours / redis-benchmark in+out |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        c, rt, st, rb = r["codec"], r["round_trip"], r["streaming"], r["redis_benchmark"]
        best = rt["mb_s"]
        lines.append(
            f"| {r['case']} | {c['bytes']:,} | {c['encode_ms']:.2f} | {c['decode_ms']:.2f} | {c['mb_s']:.0f} "
            f"| {rt['batches_s']:.0f} | {rt['mb_s']:.0f} | {st['mb_s']:.0f} | {r['redis_py_mb_s']:.0f} | {rb['set_mb_s']:.0f} "
            f"| {rb['get_mb_s']:.0f} | {rb['inout_mb_s']:.0f} | {best / r['redis_py_mb_s']:.2f} "
            f"| {best / rb['inout_mb_s']:.2f} |")
    ratios = results[0]["ratios"]
    ratio = ratios[len(ratios) // 2]
    lines += [
        "",
        f"**Target (ours >= 0.5 x redis-benchmark in+out, realistic batch): {'met' if ratio >= 0.5 else 'NOT met'}: "
        f"median {ratio:.2f} over {len(ratios)} trials (all: {', '.join(f'{x:.2f}' for x in ratios)}).** "
        "The table shows the median trial. The ratio moves with the other agents' load on the 2 cores; "
        "see the last note for where the time goes.",
        "",
        "- codec: `encode` + `decode(expect=RolloutBatch)` (validation included) of one batch.",
        "- round trip: `StreamWriter.write` (WATCH counters, HMGET, MULTI: XADD + HINCRBY, EXEC) -> "
        "`StreamReader.read(1)` (XAUTOCLAIM scan + XREADGROUP + decode) -> `ack` (Lua: XACK + XDEL + counter), "
        "one batch at a time on one thread.",
        "- streaming: a writer process (like a sampler) and a reader (read 1, ack, as the learner does), "
        "back-pressure at 8 entries; rate measured from the first entry read. Three busy processes on this "
        "box's 2 cores, so it can come out below the one-thread round trip.",
        "- redis-py SET+GET: the same Python client doing one SET and one GET of the payload (no stream, "
        "no back-pressure, no decode): what any Python transport over redis-py could reach.",
        "- redis-benchmark, same server, same payload size, one client: "
        + "; ".join(f"`{' '.join(c)}`" for c in commands) + ". "
        "SET+GET is the rate of one SET and one GET per payload (1 / (1/SET + 1/GET)): the payload moved "
        "in and out once, as our round trip does. Target (issue): ours >= 0.5 of it for the realistic batch.",
        "- Server-side cost is not the gap: INFO commandstats gave ~95 us per 1.2 MB XADD, ~110 us per XRANGE/"
        "XREADGROUP and ~100 us per GET. The client is: redis-py's pure-Python reply parser needs ~1 ms to read "
        "1.2 MB (redis-benchmark's C client ~0.3-0.5 ms), so even plain redis-py SET+GET stays near half of "
        "redis-benchmark, and our round trip (3 extra small round trips, decode, ack) lands below it. "
        "Passing the payload through a Lua script cost 1.6 ms server-side per 1.2 MB (measured), which is "
        "why the writer uses WATCH/MULTI. Not adopted, measured separately: the hiredis parser (with "
        "redis-py's Python command packer; hiredis's own packer made a 1.2 MB SET 2-4x slower) cut this round "
        "trip from 1.73/2.49 ms to 1.52/1.76 ms (min/median of 8 runs of 30), not enough alone for the target.",
        "",
    ]
    return "\n".join(lines)


def write_section(section: str, path: Path = DOCS) -> None:
    """Replace (or append) the `## Transport` section, leaving every other section as it is."""
    text = path.read_text() if path.exists() else "# Benchmarks\n\n"
    lines = text.splitlines(keepends=True)
    start = next((i for i, ln in enumerate(lines) if ln.strip() == "## Transport"), None)
    if start is None:
        text = text.rstrip("\n") + "\n\n" + section
    else:
        end = next((j for j in range(start + 1, len(lines)) if lines[j].startswith("## ")), len(lines))
        text = "".join(lines[:start]) + section + ("\n" if end < len(lines) else "") + "".join(lines[end:])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", type=float, default=1.0, help="multiply every repeat count (0.1: a quick look)")
    ap.add_argument("--no-docs", action="store_true", help="print only; leave docs/benchmarks.md alone")
    args = ap.parse_args()
    info = machine()
    results, commands = run(args.scale)
    section = markdown(results, commands, info, [Path(sys.executable).name if False else ".venv/bin/python",
                                                 "benchmarks/transport.py", *sys.argv[1:]])
    print(section)
    if not args.no_docs:
        write_section(section)
        print(f"wrote {DOCS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
