"""Weight transport against the physical limit, on this machine's CPUs.

For a model with SmolLM2-135M's shapes and one with Qwen2.5-0.5B's (`shared.model_shapes`;
random weights from a transformers config, no download), served in bfloat16, per version:
publish-to-serving latency (learner starts publishing -> sampler serves the new weights) and
sampler pause (sampling stopped for the swap), for
  (a) today's store path, (b) the lean store path, (c) the broadcast path (gloo, two processes
  on 127.0.0.1), beside the floors: (d) the same bytes over the gloo wire alone, reused
  buffers, and (e) one memcpy of them (`benchmarks.weight_transport_paths`).
Each path publishes `--repeats` versions; the table shows medians. Writes "## Weight transport"
in docs/benchmarks.md (other sections are left alone).

    nice -n 10 .venv/bin/python -m benchmarks.weight_transport [--repeats 3] [--models smollm2-135m,qwen2.5-0.5b] [--no-docs]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

from benchmarks import ROOT
from benchmarks.doc_section import replace_section
from benchmarks.weight_transport_paths import DTYPE, lean_store, memcpy, today_store
from shared.model_shapes import PRESETS

HEADING = "## Weight transport"
PATHS = ("today's store", "lean store", "broadcast (gloo)", "gloo wire alone", "memcpy")
BROADCAST = ("`shared.weight_push` (64 MiB buckets packed into two reused send buffers, one packed while the "
             "other is on the wire; received into reused buffers, each bucket summed as it lands; the learner's "
             "share includes the checksum over the tensors; the sampler verifies it before `load_tensors`, the pause)")


def build_model(preset: str, seed: int = 0):
    """A randomly initialised bf16 model with the preset's shapes (Llama without q/k/v biases, Qwen2 with)."""
    import torch
    from transformers import AutoModelForCausalLM, LlamaConfig, Qwen2Config

    s = PRESETS[preset]
    common = dict(vocab_size=s.vocab, hidden_size=s.hidden, num_hidden_layers=s.layers,
                  num_attention_heads=s.heads, num_key_value_heads=s.kv_heads, head_dim=s.head_dim,
                  intermediate_size=s.intermediate, tie_word_embeddings=s.tied)
    cfg = Qwen2Config(**common) if s.qkv_bias else LlamaConfig(**common)
    torch.manual_seed(seed)
    return AutoModelForCausalLM.from_config(cfg, dtype=torch.bfloat16).eval()


def measure_model(preset: str, repeats: int, work: Path) -> dict:
    from benchmarks.weight_transport_push_api import run_push, wire_floor
    from services.sampler.backends.hf_backend import HFBackend

    model = build_model(preset)
    nbytes = sum(p.numel() * p.element_size() for p in model.parameters())  # tied weights once
    start = work / f"{preset}-v0"
    model.save_pretrained(start, safe_serialization=True)  # the sampler's starting model
    backend = HFBackend(start, dtype=DTYPE)
    rows: dict[str, list[dict] | None] = {}
    rows[PATHS[0]] = [today_store(model, backend, work, v) for v in range(1, repeats + 1)]
    lean = [lean_store(model, backend, work, v) for v in range(1, repeats + 1)]
    rows[PATHS[1]] = None if any(r is None for r in lean) else lean
    del backend  # the broadcast's sampler is its own process
    rows[PATHS[2]] = run_push(model, start, repeats)
    rows[PATHS[3]] = [wire_floor(nbytes)]
    rows[PATHS[4]] = [memcpy(nbytes)]
    med = {k: None if v is None else {f: statistics.median(r[f] for r in v) for f in v[0]} for k, v in rows.items()}
    return {"preset": preset, "params": sum(p.numel() for p in model.parameters()), "bytes": nbytes,
            "median": med, "all": rows}


def _cell(m: dict | None, field: str, floor: float) -> str:
    return "slot: not on main yet" if m is None else f"{m[field]:.3f} s ({m[field] / floor:.1f}x)"


def section(results: list[dict], info: dict) -> str:
    lines = [HEADING, "",
             f"Measured {info['date']} on {info['nproc']} CPUs ({info['cpu']}), {info['threads']} torch threads, "
             f"load average before the run {info['load']} (1/5/15 min; other agents share this box), Python "
             f"{info['python']}, store on `{info['work']}` (the local disk). Command: `{info['command']}`. "
             f"Weights in the serving dtype, {DTYPE}; {info['repeats']} versions per path, medians shown; "
             "in brackets: multiples of one memcpy of the same bytes.", "",
             "| model | bytes | path | publish-to-serving | sampler pause | learner blocked |",
             "|---|---:|---|---:|---:|---:|"]
    verdicts = []
    for r in results:
        med, floor = r["median"], r["median"]["memcpy"]["serving_s"]
        for name in PATHS:
            m = med[name]
            lines.append(f"| {r['preset']} ({r['params'] / 1e6:.0f}M) | {r['bytes'] / 1e6:,.0f} MB | {name} "
                         f"| {_cell(m, 'serving_s', floor)} | {_cell(m, 'pause_s', floor)} "
                         f"| {_cell(m, 'publish_s', floor)} |")
        bc = med["broadcast (gloo)"]["serving_s"] / floor
        wire = med["gloo wire alone"]["serving_s"] / floor
        verdicts.append(f"{r['preset']}: broadcast {bc:.1f}x memcpy (goal <= 3x: {'met' if bc <= 3 else 'NOT met'}; "
                        f"the gloo wire alone is {wire:.1f}x, the push {bc / wire:.1f}x the wire)")
        if med["lean store"] is not None:
            today, lean = med["today's store"], med["lean store"]
            gain = today["serving_s"] / lean["serving_s"]
            verdicts.append(f"{r['preset']}: lean store {gain:.1f}x faster than today's publish-to-serving (goal >= 3x: "
                            f"{'met' if gain >= 3 else 'NOT met'}; sampler pause {today['pause_s'] / lean['pause_s']:.1f}x "
                            f"shorter, learner blocked {today['publish_s'] / lean['publish_s']:.1f}x shorter)")
        else:
            verdicts.append(f"{r['preset']}: lean store not measured (not on main when this ran)")
    lines += ["", "**Goals (publish-to-serving within 3x of one memcpy for the push; the lean store 3x faster than before):** " + "; ".join(verdicts) + ".", "",
              "- publish-to-serving: from the learner starting the publish to the sampler's engine holding the "
              "new weights (one clock, CLOCK_MONOTONIC, across the two processes of the broadcast).",
              "- sampler pause: the time the sampler cannot sample. Today's store path: fetch (copy + verify) and "
              "load, which the follower ran in the sampling loop. Lean store: the load only (with "
              "`sampler.prefetch_weights`, the async sampler's prefetch thread fetches and verifies beside sampling; "
              "without it the pause adds the fetch, part of publish-to-serving). Broadcast: the copy of the received buffer into "
              "the engine's parameters (receiving into a staging buffer can overlap sampling).",
              "- learner blocked: the learner's own share (today's store: write + fsync + hash + rename; lean store: the snapshot; broadcast: the "
              "checksum, the packing and the broadcast calls).",
              "- today's store path is pinned in `benchmarks/weight_transport_paths.py` (as of 87b9aac) so the row "
              "stays comparable after the lean path changes `shared/weights.py`. Lean store: `snapshot_model` "
              "(the learner's share), `publish_snapshot(durable=False)` (the background publisher's thread, timed in "
              "line: XXH3-128 digests as written, no fsync; the commit syncs the checkpointed version), a "
              "hard-link fetch verified in one read (the prefetch thread), `load_weights`; its write leaves the learner's critical path (learner "
              "blocked) but not the version's way to the sampler (publish-to-serving). The broadcast row is "
              + BROADCAST + ".",
              "- gloo wire alone: best of 5 two-process gloo broadcasts of the model's bytes as one flat bf16 buffer, "
              "in the push's 64 MiB buckets, into a buffer reused from the previous round (no checksum, pack or load): "
              "the floor of any push over gloo's TCP on this box.",
              "- memcpy: best of 5 `dst.copy_(src)` of flat bf16 buffers of the model's bytes, same box, same run.",
              "- One box, two cores shared with other agents' work: seconds move with their load; the ratios "
              "to memcpy, measured in the same run, are the figure to read.", ""]
    return "\n".join(lines)


def machine_info(args: argparse.Namespace, work: Path) -> dict:
    import torch

    cpu = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                if ln.startswith("model name")), platform.machine())
    return {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "nproc": os.cpu_count(), "cpu": cpu,
            "threads": torch.get_num_threads(), "load": ", ".join(f"{x:.2f}" for x in os.getloadavg()),
            "python": platform.python_version(), "work": str(work), "repeats": args.repeats,
            "command": " ".join(["nice -n 10 .venv/bin/python -m benchmarks.weight_transport", *sys.argv[1:]])}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--models", default="smollm2-135m,qwen2.5-0.5b")
    ap.add_argument("--no-docs", action="store_true")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="dashrl-weight-transport-", dir="/var/tmp") as tmp:
        work = Path(tmp)
        info = machine_info(args, work.parent)
        results = []
        for preset in args.models.split(","):
            results.append(measure_model(preset, args.repeats, work / preset))  # a store per model: versions rise
            print(preset, {k: v for k, v in results[-1]["median"].items()}, flush=True)
    text = section(results, info)
    print(text)
    if not args.no_docs:
        replace_section(ROOT / "docs" / "benchmarks.md", HEADING, text)


if __name__ == "__main__":
    main()
