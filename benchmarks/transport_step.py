"""Transport cost per training step: one RolloutBatch written, read (decoded) and acked, at the
demo's batch size and at the paper's, expressed as a share of a step.

Each sampling call becomes one RolloutBatch and one write -> read -> ack, so that round trip is
what the transport adds per call (about one call per step in both settings). Runs against a
private redis-server over 127.0.0.1 TCP, as the services connect; times `StreamWriter.write` ->
`StreamReader.read(1)` -> `ack` one batch at a time, best of `--repeats`, with the reply parser
redis-py picks: hiredis when it is importable, else its own Python one (run it both ways, e.g.
with hiredis installed into a scratch folder on PYTHONPATH, to compare them). Each run appends its rows to `--results` (JSON lines) under
`--label`; `--write-doc` renders every row there into the "## Transport: share of a step"
section of docs/benchmarks.md (`--render-only`: without measuring). Client CPU per round trip is
reported beside the wall time: on a loaded box it moves much less than the wall time.

    .venv/bin/python -m benchmarks.transport_step --label "redis-py" [--write-doc]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from redis.utils import HIREDIS_AVAILABLE

from benchmarks.doc_section import replace_section
from benchmarks.transport import machine, realistic_batch, start_redis
from shared.keys import RunKeys
from shared.protocol import RolloutBatch, encode
from shared.streams import StreamReader, StreamWriter, connect

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs" / "benchmarks.md"
HEADING = "## Transport: share of a step"
# name -> (samples, prompt tokens, completion tokens, step seconds, where the step time comes from)
CASES = {
    "demo 32x8, 32+8 tokens": (256, 32, 8, 0.3, "the CPU demo's ~0.2-0.5 s per step (DASH vs GRPO vs TRL)"),
    "paper 64x8, 256+2048 tokens": (512, 256, 2048, 20.0, "assumed: 2048 sequential decode steps at ~10 ms "
                                    "each on a GPU, before any training; a lower bound"),
}


def round_trip(url: str, payload: bytes, tag: str):
    keys = RunKeys(f"step-{tag}")
    w = StreamWriter(connect(url), keys.rollouts, backlog_key=keys.backlog, max_backlog=4)
    rd = StreamReader(connect(url), keys.rollouts, keys.rollouts_group, "bench", backlog_key=keys.backlog,
                      deadletter=keys.deadletter, expect=RolloutBatch)

    def once() -> None:
        w.write(payload)
        got = rd.read(1, block_ms=1000)
        assert len(got) == 1
        rd.ack([got[0].entry_id])

    return once


def interleaved_ms(fns: dict[str, object], rounds: int, repeats: int) -> dict[str, tuple[float, float, float]]:
    """name -> (best, median, least client CPU) over `repeats` of the mean ms per call over
    `rounds` calls, the variants taking turns repeat by repeat so that they meet the same
    background load. Client CPU (this process's user + system time) waits for no one, so it
    moves less with the box's load than the wall time does."""
    for fn in fns.values():
        fn()  # warm: group created, script loaded, buffers grown
    wall: dict[str, list[float]] = {name: [] for name in fns}
    cpu: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            t0, c0 = time.perf_counter(), time.process_time()
            for _ in range(rounds):
                fn()
            wall[name].append((time.perf_counter() - t0) / rounds * 1e3)
            cpu[name].append((time.process_time() - c0) / rounds * 1e3)
    return {name: (min(wall[name]), statistics.median(wall[name]), min(cpu[name])) for name in fns}


def run(label: str, rounds: int, repeats: int) -> list[dict]:
    parsers = ["hiredis" if HIREDIS_AVAILABLE else "python"]  # redis-py takes hiredis whenever it is importable
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        proc, port = start_redis(Path(tmp))
        url = f"redis://127.0.0.1:{port}/0"
        try:
            for name, (n, p, c, step_s, _) in CASES.items():
                payload = encode(realistic_batch(n, p, c))
                fns = {parser: round_trip(url, payload, f"{name[:5]}-{parser}") for parser in parsers}
                n_rounds = max(3, rounds * 1_000_000 // max(len(payload), 1_000_000))
                for parser, (best, median, cpu) in interleaved_ms(fns, n_rounds, repeats).items():
                    rows.append({"label": label, "parser": parser, "case": name, "bytes": len(payload),
                                 "best_ms": best, "median_ms": median, "cpu_ms": cpu, "step_s": step_s,
                                 "share": median / 1e3 / step_s})
                    print(json.dumps(rows[-1]), flush=True)
        finally:
            proc.terminate()
            proc.wait(10)
    return rows


def markdown(rows: list[dict], info: dict) -> str:
    load = ", ".join(f"{x:.2f}" for x in info["load"])
    lines = [HEADING, "",
             f"Measured on {info['nproc']} CPUs ({info['cpu']}), shared with other agents' jobs (load average "
             f"{load}, 1/5/15 min, when this section was written), redis-server {info['redis']} on 127.0.0.1 TCP without "
             f"persistence, Python {info['python']}. Command: `.venv/bin/python -m benchmarks.transport_step --label "
             "LABEL` once per checkout and run (the lean rows: a `git archive` of commit 10cae22 into a scratch "
             "folder, hiredis on its path), then `--write-doc --render-only`; each row's run is named by its time and "
             "1-minute load average. The python and hiredis rows of one run were measured interleaved in one process "
             "(the script as of commit 5beb9fe forced redis-py's Python parser through a private class; it now "
             "measures the parser redis-py picks).", "",
             "| client | parser | batch | bytes | write+read+ack ms (best / median) | client CPU ms | step s "
             "| share of a step (median) | run (UTC, load) |",
             "|---|---|---|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        lines.append(f"| {r['label']} | {r['parser']} | {r['case']} | {r['bytes']:,} | {r['best_ms']:.2f} / "
                     f"{r['median_ms']:.2f} | {r['cpu_ms']:.2f} | {r['step_s']:g} | {r['share']:.2%} "
                     f"| {r.get('date', '?')}, {r.get('load', [0])[0]:.1f} |")
    lines += [""] + [f"- step time, {name}: {why}." for name, (*_, why) in CASES.items()] + [""]
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--label", default="redis-py", help="what this checkout's transport is")
    ap.add_argument("--results", default="runs/transport_step.jsonl", help="JSON lines, appended to")
    ap.add_argument("--rounds", type=int, default=40, help="round trips per repeat (scaled down for big batches)")
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--write-doc", action="store_true", help="render every row in --results into docs/benchmarks.md")
    ap.add_argument("--render-only", action="store_true", help="measure nothing; with --write-doc: render --results")
    args = ap.parse_args()
    info = machine()
    out = Path(args.results)
    out.parent.mkdir(parents=True, exist_ok=True)
    if not args.render_only:
        with out.open("a") as f:
            for row in run(args.label, args.rounds, args.repeats):
                f.write(json.dumps({**row, "load": info["load"], "date": info["date"]}) + "\n")
    if args.write_doc:
        rows = [json.loads(ln) for ln in out.read_text().splitlines() if ln.strip()]
        replace_section(DOCS, HEADING, markdown(rows, info))
        print(f"wrote {DOCS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
