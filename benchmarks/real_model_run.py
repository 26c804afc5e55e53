"""Curves and a summary of one run folder, for docs/real-models.md (the SmolLM2 run).

Reads `metrics.jsonl` (per learner step: reward, mismatch, step time split), `eval.jsonl` (per
evaluated version) and the sampler's log (`publish-to-swap` per version: from the learner's
announcement to the version serving; vLLM's own in-place reload time), draws a 2x3 figure with matplotlib and prints a JSON
summary (means over the first and last 10 steps, medians of the time split and swap times).

    .venv/bin/python -m benchmarks.real_model_run runs/smollm2-doc --out docs/img/smollm2-run.png
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
from pathlib import Path


PHASES = ("wait", "forward_backward", "optimizer", "publish", "commit")
SWAP = re.compile(r"now serving policy version (\d+) \(publish-to-swap ([0-9.]+)s\)")
RELOAD = re.compile(r"Reloading and processing weights took ([0-9.]+) seconds")  # vLLM's in-place reload


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def sampler_logs(folder: Path) -> str:
    return "".join(p.read_text(errors="replace") for p in sorted((folder / "logs").glob("sampler-*.log")))


def swap_times(folder: Path) -> dict[int, float]:
    return {int(m.group(1)): float(m.group(2)) for m in SWAP.finditer(sampler_logs(folder))}


def reload_times(folder: Path) -> list[float]:
    return [float(m.group(1)) for m in RELOAD.finditer(sampler_logs(folder))]


def mean(xs: list[float]) -> float | None:
    xs = [x for x in xs if x is not None]
    return round(sum(xs) / len(xs), 4) if xs else None


def summary(steps: list[dict], evals: list[dict], swaps: dict[int, float], calls: list[dict],
            reloads: list[float]) -> dict:
    reward = [s.get("reward_mean") for s in steps]
    out = {"steps": len(steps), "reward_first10": mean(reward[:10]), "reward_last10": mean(reward[-10:]),
           "evals": [(e["version"], e["greedy_accuracy"], e.get("sampled_accuracy")) for e in evals],
           "kept_fraction_mean": mean([s.get("kept_fraction") for s in steps]),
           "step_seconds_median": {p: round(statistics.median(s["seconds"].get(p, 0.0) for s in steps), 3)
                                   for p in PHASES} if steps else {},
           "step_interval_median_s": round(statistics.median(b["time"] - a["time"] for a, b in zip(steps, steps[1:])), 2)
           if len(steps) > 1 else None,
           "publish_to_swap_s": {"median": round(statistics.median(swaps.values()), 2), "min": min(swaps.values()),
                                 "max": max(swaps.values()), "versions": len(swaps)} if swaps else None,
           "vllm_reload_s": {"median": round(statistics.median(reloads), 2), "min": min(reloads),
                             "max": max(reloads)} if reloads else None,
           "generate_s_median": round(statistics.median(c["generate_s"] for c in calls), 2) if calls else None}
    for key in sorted({k for s in steps for k in s if k.startswith("mismatch_")}):
        vals = [s[key] for s in steps if s.get(key) is not None]
        out[key] = {"mean": mean(vals), "max": max(vals)} if vals else None
    return out


def plot(folder: Path, steps: list[dict], evals: list[dict], swaps: dict[int, float], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = [s["step"] for s in steps]
    fig, ax = plt.subplots(2, 3, figsize=(13, 6.4), constrained_layout=True)
    ax[0, 0].plot(x, [s.get("reward_mean") for s in steps], marker="o", ms=3)
    ax[0, 0].set(title="batch reward (mean of the step's batches)", xlabel="learner step", ylim=(-0.02, 1.02))
    if evals:
        v = [e["version"] for e in evals]
        ax[0, 1].plot(v, [e["greedy_accuracy"] for e in evals], marker="o", label="greedy")
        ax[0, 1].plot(v, [e.get("sampled_accuracy") for e in evals], marker="s", label="sampled")
        ax[0, 1].legend(fontsize=8)
    ax[0, 1].set(title="held-out eval accuracy", xlabel="policy version", ylim=(-0.02, 1.02))
    for key, label in (("mismatch_logp_abs_diff_mean", "mean |d|"), ("mismatch_logp_abs_diff_max", "max |d|"),
                       ("mismatch_kl_k3", "k3 KL")):
        vals = [s.get(key) for s in steps]
        if any(v is not None for v in vals):
            ax[0, 2].plot(x, [max(v, 1e-12) if v is not None else None for v in vals], marker=".", label=label)
    ax[0, 2].set(title="mismatch, d = learner - sampler logp", xlabel="learner step", yscale="log")
    ax[0, 2].legend(fontsize=8)
    bottom = [0.0] * len(steps)
    for phase in PHASES:
        h = [s["seconds"].get(phase, 0.0) for s in steps]
        ax[1, 0].bar(x, h, bottom=bottom, label=phase)
        bottom = [a + b for a, b in zip(bottom, h)]
    ax[1, 0].set(title="learner step time split (s)", xlabel="learner step")
    ax[1, 0].legend(fontsize=7)
    ax[1, 1].plot(x, [s.get("kept_fraction") for s in steps], marker="o", ms=3)
    ax[1, 1].set(title="kept fraction (gradient filter)", xlabel="learner step", ylim=(-0.02, 1.02))
    if swaps:
        ax[1, 2].plot(sorted(swaps), [swaps[v] for v in sorted(swaps)], marker="o", ms=3)
    ax[1, 2].set(title="publish-to-swap per version (s)", xlabel="policy version")
    for a in ax.flat:
        a.grid(alpha=0.3)
    fig.suptitle(f"{folder.name}: SmolLM2-135M-Instruct, DASH on CPU")
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("folder", type=Path)
    p.add_argument("--out", type=Path, default=None, help="PNG path (default: no plot)")
    args = p.parse_args()
    steps, evals = read_jsonl(args.folder / "metrics.jsonl"), read_jsonl(args.folder / "eval.jsonl")
    calls = read_jsonl(args.folder / "sampler-0.jsonl")
    swaps = swap_times(args.folder)
    if args.out:
        plot(args.folder, steps, evals, swaps, args.out)
    print(json.dumps(summary(steps, evals, swaps, calls, reload_times(args.folder)), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
