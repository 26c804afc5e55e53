"""Learner memory per rank, data-parallel (`learner.parallel: ddp`) vs FSDP2 (`fsdp`), 2 CPU ranks.

Each mode runs in fresh processes: 2 gloo ranks (torch.multiprocessing) build the same random
Llama in code (default: SmolLM2-135M's shape: hidden 576, 30 layers, 9 heads / 3 KV heads,
vocabulary 49,152, tied embeddings; no download), `fsdp` shards it, and the real `Trainer` runs
`--steps` steps of `--samples` samples (prompt + completion tokens, float32). Per rank it reports:
- `state`: bytes of this rank's parameters + gradients + AdamW moments, counted from the tensors
  (a DTensor's local shard), after the last step;
- the process's resident set (RSS, /proc/self/statm) over its baseline (after imports and the
  process group, before the model): `setup` right before the first step (model + optimizer
  built), `peak 1` the most a 5 ms sampler saw during step 1 (which creates the AdamW moments),
  `held` after it, `peak 2+` the most during the later steps; freed memory is handed back
  (malloc_trim) before `setup` and `held`. RSS counts every allocation, FSDP's all-gather and
  reduce-scatter buffers and the allocator's retained free memory included.

    OMP_NUM_THREADS=1 .venv/bin/python -m benchmarks.fsdp_memory --write
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import platform
import subprocess
import tempfile
import threading
import time
from pathlib import Path

SHAPE = dict(vocab_size=49_152, hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
             num_attention_heads=9, num_key_value_heads=3, tie_word_embeddings=True)
PAGE = os.sysconf("SC_PAGE_SIZE")


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE


class PeakRss:
    def __init__(self) -> None:
        self.peak, self._stop = 0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, _rss())

    def __enter__(self) -> "PeakRss":
        self.peak = _rss()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss())


def _local_bytes(t) -> int:
    t = getattr(t, "_local_tensor", t)
    return t.numel() * t.element_size()


def _state_bytes(model, optimizer) -> int:
    total = 0
    for p in model.parameters():
        total += _local_bytes(p) + (_local_bytes(p.grad) if p.grad is not None else 0)
    for st in optimizer.state.values():
        total += sum(_local_bytes(v) for v in st.values() if hasattr(v, "numel") and v.dim() > 0)
    return total


def _samples(n: int, prompt: int, completion: int):
    import numpy as np

    from services.learner.microbatches import TrainSample

    rng = np.random.default_rng(0)
    return [TrainSample(f"b{i}", rng.integers(4, 1000, prompt).astype(np.int32),
                        rng.integers(4, 1000, completion).astype(np.int32),
                        (-rng.random(completion) * 3).astype(np.float32), float(rng.normal())) for i in range(n)]


def _rank(rank: int, world: int, mode: str, a: argparse.Namespace, out: str) -> None:
    import torch
    import torch.distributed as dist
    from transformers import LlamaConfig, LlamaForCausalLM

    from services.learner.distributed import DistContext
    from services.learner.fsdp import shard
    from services.learner.model import placement
    from services.learner.trainer import Trainer
    from shared.config import RunConfig

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{out}/store-{mode}", rank=rank, world_size=world)
    base = _rss()
    cfg = RunConfig.model_validate({"model": {"path": "random"}, "learner": {
        "device": "cpu", "parallel": mode, "train_batch_size": a.samples, "micro_batch_size": a.samples // world,
        "micro_batch_tokens": 1 << 20, "share_prompts": False}})
    place = placement(cfg.model, cfg.learner)
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(**SHAPE)).to(torch.float32).train()
    if mode == "fsdp":
        model = shard(model, place, world)
    trainer = Trainer(model, cfg, place, DistContext(rank=rank, world=world))
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    setup = _rss() - base
    samples = _samples(a.samples, a.prompt, a.completion)
    t0 = time.perf_counter()
    with PeakRss() as peak:
        trainer.train_step(samples, 1)  # creates the AdamW moments
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    held = _rss() - base
    with PeakRss() as later:
        for step in range(2, a.steps + 1):
            trainer.train_step(samples, step)
    row = {"mode": mode, "rank": rank, "params": sum(p.numel() for p in model.parameters()) if mode == "ddp" else None,
           "state_gb": _state_bytes(model, trainer.optimizer) / 1e9, "setup_gb": setup / 1e9,
           "peak_gb": (peak.peak - base) / 1e9,
           "held_gb": held / 1e9, "later_gb": (later.peak - base) / 1e9, "s_per_step": (time.perf_counter() - t0) / a.steps}
    Path(out, f"{mode}-{rank}.json").write_text(json.dumps(row))
    dist.destroy_process_group()


MALLOC = {"default": None, "mmap >= 64 KiB": "65536"}
"""glibc settings the ranks start with: its default raises the mmap threshold after large frees,
so freed buffers (FSDP's per-layer all-gathers) stay in the heap and in the RSS; a fixed
threshold returns them to the OS, so RSS follows live memory more closely."""


def run(a: argparse.Namespace) -> list[dict]:
    import torch.multiprocessing as mp

    rows = []
    for malloc, threshold in MALLOC.items():
        if threshold is None:
            os.environ.pop("MALLOC_MMAP_THRESHOLD_", None)
        else:
            os.environ["MALLOC_MMAP_THRESHOLD_"] = threshold  # read by each spawned rank at start
        with tempfile.TemporaryDirectory() as out:
            for mode in ("ddp", "fsdp"):
                mp.start_processes(_rank, args=(2, mode, a, out), nprocs=2, start_method="spawn", join=True)
                rows += [{**json.loads(Path(out, f"{mode}-{r}.json").read_text()), "malloc": malloc}
                         for r in range(2)]
    return rows


def section(a: argparse.Namespace, rows: list[dict], load: str) -> str:
    n = next(r["params"] for r in rows if r["params"])
    lines = [f"## Learner: DDP vs FSDP2 memory per rank ({time.strftime('%Y-%m-%d')})", "",
             f"A random Llama of SmolLM2-135M's shape ({n / 1e6:.1f}M parameters, float32, tied embeddings), "
             f"2 gloo ranks on the CPU, {a.steps} learner steps of {a.samples} samples ({a.prompt} prompt + "
             f"{a.completion} completion tokens; one micro-batch per rank), the real `Trainer`. "
             "`state`: this rank's parameters + gradients + AdamW moments, counted from the tensors (FSDP: "
             "the local shards). The rest is resident set (RSS, not torch allocator statistics: the CPU "
             "has none) over the rank's baseline (after imports and the process group): `setup` before the "
             "first step, `peak 1` the most a 5 ms sampler saw during step 1 (it creates the AdamW moments), "
             "`held` after it (free memory handed back with malloc_trim), `peak 2+` the most during the "
             "later steps. "
             f"{platform.machine()}, {os.cpu_count()} cores shared with other agents' work, run "
             f"{time.strftime('%H:%M UTC', time.gmtime())}; load average "
             f"before the run: {load}. Seconds are indicative only. Each configuration ran twice: under "
             "glibc's default allocator settings, and with `MALLOC_MMAP_THRESHOLD_=65536` (glibc otherwise "
             "raises its mmap threshold after large frees, so FSDP's freed per-layer all-gather buffers "
             "stay in the heap and count in the RSS).", "",
             "| glibc malloc | parallel | rank | state | setup | peak 1 | held | peak 2+ | s / step |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['malloc']} | {r['mode']} | {r['rank']} | {r['state_gb']:.2f} GB | {r['setup_gb']:.2f} GB | "
                     f"{r['peak_gb']:.2f} GB | {r['held_gb']:.2f} GB | {r['later_gb']:.2f} GB | "
                     f"{r['s_per_step']:.1f} |")
    lines += ["", _reading(rows), "", "Command:", "",
              "    OMP_NUM_THREADS=1 .venv/bin/python -m benchmarks.fsdp_memory --write", ""]
    return "\n".join(lines)


def _reading(rows: list[dict]) -> str:
    def mean(key: str, mode: str, malloc: str) -> float:
        vals = [r[key] for r in rows if r["mode"] == mode and r["malloc"] == malloc]
        return sum(vals) / len(vals)

    parts = [f"Reading: FSDP2 holds {mean('state_gb', 'fsdp', 'default') / mean('state_gb', 'ddp', 'default'):.2f}x "
             "the data-parallel state per rank (1/2 on 2 ranks, as designed)."]
    for malloc in MALLOC:
        d, f = mean("later_gb", "ddp", malloc), mean("later_gb", "fsdp", malloc)
        parts.append(f"Peak RSS in the later steps ({malloc} malloc): {d:.2f} GB DDP, {f:.2f} GB FSDP2 ({f / d:.2f}x).")
    parts.append("The gap between the two malloc settings is freed memory glibc keeps (FSDP2 frees an all-gathered "
                 "layer after each use); a GPU's caching allocator was not measured here.")
    return " ".join(parts)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--samples", type=int, default=4)
    ap.add_argument("--prompt", type=int, default=16)
    ap.add_argument("--completion", type=int, default=16)
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--write", action="store_true", help="replace the section in docs/benchmarks.md")
    a = ap.parse_args()
    load = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip().split("load average:")[-1].strip()
    rows = run(a)
    text = section(a, rows, load)
    print(text)
    if a.write:
        from benchmarks.doc_section import replace_section

        doc = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"
        replace_section(doc, text.splitlines()[0], text)


if __name__ == "__main__":
    main()
