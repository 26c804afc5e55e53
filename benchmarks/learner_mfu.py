"""Learner tokens/s on SmolLM2-135M shapes as a fraction of this CPU's fp32 matmul ceiling.

The model: LlamaConfig with SmolLM2-135M's shapes (hidden 576, 30 layers, 9 heads, 3 key/value
heads, intermediate 1536, vocabulary 49,152, tied embeddings), randomly initialised here (no
download), fp32, sdpa attention. The samples: a realistic length distribution, groups of G
completions of one prompt; prompts uniform in 100-300 tokens, completions log-normal (median
`--completion-median`, sigma `--sigma`), prompt + completion capped at 2048.

One measurement = one real learner update (`Trainer._update`: micro-batching, forward, the
clipped policy loss, backward, grad clip, AdamW) on the same samples, timed by the wall clock,
with a fp32 matmul ceiling (`--ceiling-n` square matmuls, GFLOP/s) measured right before and
right after it in the same process and thread count: the box is shared, so the figure is the
ratio, 6 x parameters FLOPs per real (unpadded) token / seconds / the mean of the two ceilings.
Layouts alternate and repeat. Also the padding waste of each layout on `--waste-samples`
samples of the distribution (no model needed) and, with `--profile`, where a packed update's
time goes (torch.profiler, top operators).

    OMP_NUM_THREADS=1 .venv/bin/python -m benchmarks.learner_mfu --write-doc
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import numpy as np
import torch

from services.learner.microbatches import TrainSample, pack_micro_batches
from services.learner.packing import PACKED_ATTENTION, pack_rows

SMOLLM2 = dict(hidden_size=576, num_hidden_layers=30, num_attention_heads=9, num_key_value_heads=3,
               intermediate_size=1536, vocab_size=49152, tie_word_embeddings=True, max_position_embeddings=8192,
               rms_norm_eps=1e-5, rope_theta=100000.0)


def realistic(n: int, seed: int, group: int = 8, median: float = 350.0, sigma: float = 0.9,
              cap: int = 2048) -> list[TrainSample]:
    """`n` samples, `group` per prompt: prompt ~ U[100, 300], completion ~ lognormal, total <= cap."""
    rng = np.random.default_rng(seed)
    out: list[TrainSample] = []
    while len(out) < n:
        prompt = rng.integers(4, 49_000, int(rng.integers(100, 301))).astype(np.int32)
        for _ in range(min(group, n - len(out))):
            c = int(np.clip(rng.lognormal(np.log(median), sigma), 8, cap - len(prompt)))
            out.append(TrainSample("b", prompt, rng.integers(4, 49_000, c).astype(np.int32),
                                   np.full(c, -2.0, np.float32), float(rng.normal())))
    return out


def padding_waste(samples: list[TrainSample], max_tokens: int, max_samples: int) -> dict[str, float]:
    """Share of the tokens run through the model that are padding: padded layout
    (`pack_micro_batches`, rows x longest) vs packed (`pack_rows`: none), and micro-batch counts."""
    lens = [s.length for s in samples]
    groups = pack_micro_batches(lens, max_tokens, max_samples)
    padded = sum(len(g) * max(lens[i] for i in g) for g in groups)
    rows = pack_rows(lens, max_tokens, max_samples)
    return {"padded_waste": 1 - sum(lens) / padded, "packed_waste": 0.0,
            "padded_micro_batches": len(groups), "packed_micro_batches": len(rows),
            "packed_fill": sum(lens) / (len(rows) * max_tokens)}


def step_waste(samples: list[TrainSample], step: int, max_tokens: int, max_samples: int) -> dict[str, float]:
    """`padding_waste` of the padded layout over consecutive steps of `step` samples (each packed on its own)."""
    parts = [samples[i : i + step] for i in range(0, len(samples) - step + 1, step)]
    lens = [[s.length for s in part] for part in parts]
    padded = sum(len(g) * max(ls[i] for i in g) for ls in lens for g in pack_micro_batches(ls, max_tokens, max_samples))
    return {"padded_waste": 1 - sum(map(sum, lens)) / padded,
            "padded_micro_batches": sum(len(pack_micro_batches(ls, max_tokens, max_samples)) for ls in lens),
            "packed_micro_batches": sum(len(pack_rows(ls, max_tokens, max_samples)) for ls in lens)}


def timed_samples(step: list[TrainSample], max_tokens: int, max_samples: int) -> list[TrainSample]:
    """The samples of the step's median padded micro-batch by length (a typical one, its typical padding)."""
    groups = pack_micro_batches([s.length for s in step], max_tokens, max_samples)
    return [step[i] for i in groups[len(groups) // 2]]


def ceiling(n: int, seconds: float = 1.0) -> tuple[float, float]:
    """GFLOP/s of n x n fp32 matmuls for about `seconds` (one warm-up first): per wall-clock
    second and per CPU-second of this process (what it got of the shared cores)."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    reps, t0, c0 = 0, time.perf_counter(), time.process_time()
    while time.perf_counter() - t0 < seconds:
        a @ b
        reps += 1
    flops = 2 * n**3 * reps / 1e9
    return flops / (time.perf_counter() - t0), flops / max(1e-9, time.process_time() - c0)


def build_trainer(model, learner: dict):
    from services.learner.model import placement
    from services.learner.trainer import Trainer
    from shared.config import RunConfig

    cfg = RunConfig.model_validate({"model": {"path": "unused", "dtype": "float32"},
                                    "sampler": {"max_new_tokens": 2048},
                                    "learner": {"lr": 1e-6, "precision": "fp32", **learner}})
    return Trainer(model, cfg, placement(cfg.model, cfg.learner))


def timed_update(trainer, samples, ceiling_n: int, attn: str, ceiling_s: float = 1.0) -> dict[str, float]:
    """One update between two ceiling measurements. `fraction`: the whole update (micro-batching,
    forward, loss, backward, clip, AdamW) per CPU-second of this process against the ceiling per
    CPU-second; `wall_fraction`: the same by the wall clock; `no_optimizer_fraction`: without
    AdamW's CPU time (what a step of many micro-batches approaches)."""
    from services.learner.trainer import StepStats

    trainer.model.set_attn_implementation(attn)  # the trainers share one model (memory)
    w0, p0 = ceiling(ceiling_n, ceiling_s)
    opt_cpu, step = [0.0], trainer.optimizer.step

    def timed_step(*a, **kw):  # AdamW's CPU time, to give forward+backward's share alone
        c = time.process_time()
        out = step(*a, **kw)
        opt_cpu[0] += time.process_time() - c
        return out

    trainer.optimizer.step = timed_step
    stats, t0, c0 = StepStats(), time.perf_counter(), time.process_time()
    trainer._update(samples, stats)
    dt, cpu = time.perf_counter() - t0, time.process_time() - c0
    trainer.optimizer.step = step
    w1, p1 = ceiling(ceiling_n, ceiling_s)
    tokens = sum(s.length for s in samples)
    flops = 6 * sum(p.numel() for p in trainer.params) * tokens / 1e9
    wall_ceil, cpu_ceil, fb = (w0 + w1) / 2, (p0 + p1) / 2, stats.seconds["forward_backward"]
    return {"seconds": dt, "cpu_seconds": cpu, "fb_seconds": fb, "optimizer_seconds": stats.seconds["optimizer"],
            "tokens_per_s": tokens / dt, "tokens_per_cpu_s": tokens / cpu, "ceiling_gflops": wall_ceil,
            "ceiling_gflops_cpu": cpu_ceil, "achieved_gflops_cpu": flops / cpu, "fraction": flops / cpu / cpu_ceil,
            "wall_fraction": flops / dt / wall_ceil, "optimizer_cpu_seconds": opt_cpu[0],
            "no_optimizer_fraction": flops / (cpu - opt_cpu[0]) / cpu_ceil,
            "load_avg_1m": os.getloadavg()[0]}


def profile_update(trainer, samples, top: int = 12) -> list[tuple[str, float]]:
    from torch.profiler import ProfilerActivity, profile

    from services.learner.trainer import StepStats

    trainer.model.set_attn_implementation(PACKED_ATTENTION if trainer.packing else "sdpa")
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        trainer._update(samples, StepStats())
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    rows = sorted(((e.key, e.self_cpu_time_total / total) for e in events), key=lambda r: -r[1])
    return rows[:top]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS") or 1))
    p.add_argument("--step-samples", type=int, default=64, help="a step of this many samples; its median "
                   "padded micro-batch is the timed update")
    p.add_argument("--seed", type=int, default=3)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--micro-tokens", type=int, default=2048)
    p.add_argument("--micro-size", type=int, default=8)
    p.add_argument("--ceiling-n", type=int, default=2048)
    p.add_argument("--ceiling-seconds", type=float, default=1.0, help="each ceiling measurement's length")
    p.add_argument("--completion-median", type=float, default=350.0)
    p.add_argument("--sigma", type=float, default=0.9)
    p.add_argument("--waste-samples", type=int, default=1024)
    p.add_argument("--layouts", default="padded,packed")
    p.add_argument("--profile", action="store_true")
    p.add_argument("--write-doc", action="store_true")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    from transformers import LlamaConfig, LlamaForCausalLM

    dist = dict(median=args.completion_median, sigma=args.sigma)
    many = realistic(args.waste_samples, 0, **dist)
    waste = {n: step_waste(many, n, args.micro_tokens, args.micro_size) for n in (16, 64, 256)}
    samples = timed_samples(realistic(args.step_samples, args.seed, **dist), args.micro_tokens, args.micro_size)
    model = LlamaForCausalLM(LlamaConfig(**SMOLLM2, attn_implementation="sdpa")).train()
    layouts = {"padded": {"packing": False}, "packed": {"packing": True}}
    common = {"micro_batch_tokens": args.micro_tokens, "micro_batch_size": args.micro_size,
              "train_batch_size": max(args.micro_size, len(samples))}
    trainers = {k: build_trainer(model, {**common, **layouts[k]}) for k in args.layouts.split(",")}
    if "padded" in trainers:  # before this change: AdamW's default (foreach) implementation
        t = trainers["padded"]
        t.optimizer = torch.optim.AdamW(t.params, lr=1e-6)
    # the trainers share one model; each measurement sets the attention its layout runs with
    attn = {"padded": "sdpa", "packed": PACKED_ATTENTION}
    results: dict[str, list] = {k: [] for k in trainers}
    for r in range(args.repeats):
        for k in (list(trainers) if r % 2 == 0 else list(reversed(trainers))):
            results[k].append(timed_update(trainers[k], samples, args.ceiling_n, attn[k], args.ceiling_seconds))
            x = results[k][-1]
            print(f"repeat {r + 1} {k}: {x['tokens_per_cpu_s']:.1f} tok/CPU-s, {x['achieved_gflops_cpu']:.1f} "
                  f"GFLOP/CPU-s of {x['ceiling_gflops_cpu']:.1f} = {100 * x['fraction']:.1f}% (wall: "
                  f"{x['tokens_per_s']:.1f} tok/s, {100 * x['wall_fraction']:.1f}%; AdamW {x['optimizer_seconds']:.1f} s; "
                  f"without AdamW {100 * x['no_optimizer_fraction']:.1f}%; load {x['load_avg_1m']:.2f})", flush=True)
    timed_waste = padding_waste(samples, args.micro_tokens, args.micro_size)
    summary = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "machine": platform.processor() or
               platform.machine(), "threads": args.threads, "load_avg": os.getloadavg(),
               "params": sum(p.numel() for p in model.parameters()), "tokens": sum(s.length for s in samples),
               "lengths": [s.length for s in samples], "args": vars(args), "waste": waste, "timed_waste": timed_waste,
               "results": results}
    if args.profile:
        summary["profile"] = profile_update(trainers.get("packed") or next(iter(trainers.values())), samples)
    print(json.dumps(summary, indent=1, default=float))
    if args.write_doc:
        from benchmarks.learner_mfu_doc import write_doc

        write_doc(summary)


if __name__ == "__main__":
    main()
