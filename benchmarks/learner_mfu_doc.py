"""docs/benchmarks.md section of `benchmarks/learner_mfu.py` (its summary dict -> markdown)."""

from __future__ import annotations

import statistics

from benchmarks import ROOT
from benchmarks.doc_section import replace_section

HEADING = "## Learner: SmolLM2-135M shapes vs the matmul ceiling"
LABELS = {"padded": "before: padded rows, AdamW foreach", "packed": "after: `packing: true`, fused AdamW"}


def _rows(s: dict) -> str:
    out = []
    for k, runs in s["results"].items():
        for i, r in enumerate(runs):
            out.append(f"| {LABELS.get(k, k)} | {i + 1} | {r['tokens_per_cpu_s']:.1f} | {r['achieved_gflops_cpu']:.1f} | "
                       f"{r['ceiling_gflops_cpu']:.1f} | **{100 * r['fraction']:.1f}%** | {r['tokens_per_s']:.1f} | "
                       f"{100 * r['wall_fraction']:.1f}% | {r['optimizer_cpu_seconds']:.2f} | "
                       f"{100 * r['no_optimizer_fraction']:.1f}% | {r['load_avg_1m']:.1f} |")
    return "\n".join(out)


def _medians(s: dict) -> str:
    out = []
    for k, runs in s["results"].items():
        med = statistics.median(r["fraction"] for r in runs)
        lo, hi = min(r["fraction"] for r in runs), max(r["fraction"] for r in runs)
        tps = statistics.median(r["tokens_per_cpu_s"] for r in runs)
        out.append(f"{LABELS.get(k, k)}: median {100 * med:.1f}% of the ceiling (range {100 * lo:.1f}-{100 * hi:.1f}%), "
                   f"{tps:.1f} tokens per CPU-second")
    return "; ".join(out)


def _waste(s: dict) -> str:
    a = s["args"]
    out = [f"| step of | padded waste | padded micro-batches | packed micro-batches |", "|---|---|---|---|"]
    for n, w in s["waste"].items():
        out.append(f"| {n} samples | {100 * w['padded_waste']:.1f}% | {w['padded_micro_batches']} | "
                   f"{w['packed_micro_batches']} |")
    return (f"Padding waste of the padded layout on {a['waste_samples']} samples of the distribution, steps packed "
            f"on their own (`micro_batch_tokens` {a['micro_tokens']}, `micro_batch_size` {a['micro_size']}); packed: "
            "0% by construction.\n\n" + "\n".join(out))


def write_doc(s: dict) -> None:
    a = s["args"]
    prof = ", ".join(f"{name} {100 * share:.0f}%" for name, share in s.get("profile", [])[:8])
    section = f"""{HEADING}

`benchmarks/learner_mfu.py` ({s['date']}, {s['machine']}, {s['threads']} torch thread(s) as the CPU demo's
learner gets (2 cores split between sampler and learner), fp32, load average at the end
{s['load_avg'][0]:.1f} / {s['load_avg'][1]:.1f} / {s['load_avg'][2]:.1f} on 2 cores shared with other work.) Model: a random
Llama with SmolLM2-135M's shapes ({s['params'] / 1e6:.1f}M parameters, tied embeddings). The timed
update is one real `Trainer._update` (micro-batching, forward, the clipped policy loss under the
sampler's default temperature 0.9 / top-k 50, backward, grad clip, AdamW) on the samples of the
median padded micro-batch of a {a['step_samples']}-sample step drawn from a realistic distribution
(prompts 100-300 tokens, completions log-normal, median {a['completion_median']:.0f}, sigma {a['sigma']}, total
<= 2048): lengths {s['lengths']}, {s['tokens']} tokens; padded waste of that micro-batch
{100 * s['timed_waste']['padded_waste']:.1f}%. Fraction = 6 x parameters x real tokens / seconds / the fp32 matmul
ceiling ({a['ceiling_n']}^2 matmuls) measured right before and after the update in the same process
(the mean of the two), both per CPU-second of the benchmark process: with the box's 2 cores shared
by many processes, wall-clock ceilings swung 13-87 GFLOP/s within minutes, so the wall-clock
ratio (given too) is noise; the CPU-time ratio counts only the time the process got.

| layout | repeat | tokens / CPU-s | GFLOP / CPU-s (6N) | ceiling GFLOP / CPU-s | of ceiling | tokens / s (wall) | of ceiling (wall) | AdamW CPU-s | of ceiling without AdamW | load (1 min) |
|---|---|---|---|---|---|---|---|---|---|---|
{_rows(s)}

{_medians(s)}.

{_waste(s)}

Where a packed update's time goes (torch.profiler, self CPU time): {prof}.

    OMP_NUM_THREADS=1 .venv/bin/python -m benchmarks.learner_mfu --repeats {a['repeats']} --profile --write-doc
"""
    replace_section(ROOT / "docs" / "benchmarks.md", HEADING, section)
