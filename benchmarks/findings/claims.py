"""What the paper claims and how each figure is read off a result row.

`FINDINGS` lists the paper's findings (Huang et al., arXiv 2505.17218, Qwen2.5 on MATH), each with
the entries it plots and its comparisons: "entry is higher (or lower) than baseline in metric",
the paper's own numbers beside it. `METRICS` names the figures a row yields (accuracy from its
curve, `benchmarks.findings.stats`; clocks, steps and learner figures as stored).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Literal

from benchmarks.findings import stats


@dataclass(frozen=True)
class Metric:
    heading: str
    of: Callable[[dict], float | None]
    scale: float = 1.0
    digits: int = 1
    unit: str = ""  # after a value
    diff_unit: str = ""  # after a difference


def _curve(row: dict) -> list[tuple[float, float]]:
    return [(float(t), float(a)) for t, a in row.get("curve", [])]


def _auc(row: dict) -> float | None:
    curve, window = _curve(row), row.get("window_s")
    return stats.area_under(curve, window) if curve and window else None


def _drop(row: dict) -> float | None:
    best, last = stats.best_accuracy(_curve(row)), stats.last_mean(_curve(row))
    return None if best is None else best - last


def _per_step(row: dict) -> float | None:
    return row["training_s"] / row["steps_done"] if row.get("steps_done") else None


PCT = dict(scale=100.0, digits=1, unit="%", diff_unit=" pt")
METRICS: dict[str, Metric] = {
    "start": Metric("start accuracy", lambda r: r.get("start_accuracy"), **PCT),
    "last3": Metric("accuracy (mean of last 3 evals)", lambda r: stats.last_mean(_curve(r)), **PCT),
    "final": Metric("final accuracy", lambda r: stats.final_accuracy(_curve(r)), **PCT),
    "drop": Metric("best minus last-3", _drop, scale=100.0, digits=1, unit=" pt", diff_unit=" pt"),
    "training_s": Metric("training clock", lambda r: r.get("training_s"), digits=0, unit=" s", diff_unit=" s"),
    "steps": Metric("steps", lambda r: r.get("steps_done"), digits=0),
    "samples": Metric("samples trained on", lambda r: r.get("samples"), digits=0),
    "s_per_step": Metric("s / step", _per_step, digits=2, unit=" s", diff_unit=" s"),
    "clip_fraction": Metric("clip fraction", lambda r: r.get("clip_fraction"), scale=100.0, digits=2, unit="%",
                            diff_unit=" pt"),
    "completion_len": Metric("tokens per generated completion",
                             lambda r: r.get("generated_len_mean") or r.get("completion_len_mean"), digits=2,
                             diff_unit=" tokens"),
    "trained_len": Metric("tokens per trained completion", lambda r: r.get("completion_len_mean"), digits=2,
                          diff_unit=" tokens"),
    "time_to_target": Metric("time to target", lambda r: r.get("time_to_target_s"), digits=0, unit=" s",
                             diff_unit=" s"),
    "auc": Metric("mean accuracy over the window (AUC / T)", _auc, **PCT),
}


@dataclass(frozen=True)
class Comparison:
    label: str
    entry: str
    baseline: str
    metric: str
    better: Literal["higher", "lower"]
    claim: str
    paper: str


@dataclass(frozen=True)
class Finding:
    key: str  # the plot is docs/img/findings-<key>.png
    title: str
    claim: str
    entries: tuple[str, ...]
    columns: tuple[str, ...]  # METRICS shown per entry
    comparisons: tuple[Comparison, ...]
    notes: tuple[str, ...] = ()  # how this finding's entries were sized and read


SFT_PAPER = ("MATH-500, 0.5B/1.5B/3B: DASH 27.2/54.0/64.6; SFT on a 7B model's traces 24.0/46.2/53.0; "
             "on human traces 8.0/17.2/24.0")
TIME = "training time (same data, 3 epochs)"
TIMING_PAIRS = (  # entry, baseline, label, the paper's claim, its numbers (Qwen2.5-0.5B)
    ("t-preemptive", "t-grpo-paper", "preemptive vs GRPO", "much less time", f"{TIME} 6.9 h vs 38.9 h (0.18x)"),
    ("t-dash", "t-grpo-paper", "DASH vs GRPO", "much less time", f"{TIME} 6.6 h vs 38.9 h (0.17x)"),
    ("t-dash", "t-preemptive", "DASH vs preemptive (filtering)", "a little less time", f"{TIME} 6.6 h vs 6.9 h"),
    ("t-dash-nokl", "t-dash", "DASH no KL vs DASH", "less time", f"{TIME} 5.7 h vs 6.6 h"),
    ("t-dash-async", "t-dash-nokl", "async vs sync DASH no KL", "less time (dashrl's addition)", "not in the paper"),
)


def timing_comparisons() -> tuple[Comparison, ...]:
    """Each timing pair three times: seconds per step (the paper's measure: time for the same data),
    time to the target accuracy (which also counts how much a step teaches), and the mean accuracy
    over the window (the area under the curve: steadier than one first crossing of a noisy curve)."""
    out = []
    for entry, base, label, claim, paper in TIMING_PAIRS:
        out += [Comparison(f"{label}: {METRICS[m].heading}", entry, base, m, "lower", claim, paper)
                for m in ("s_per_step", "time_to_target")]
        out.append(Comparison(f"{label}: {METRICS['auc'].heading}", entry, base, "auc", "higher",
                              "more accuracy for the same time (follows from less time)", paper))
    return tuple(out)


FINDINGS: tuple[Finding, ...] = (
    Finding("sft-vs-rl", "SFT vs RL",
            "On-policy RL (DASH) beats supervised fine-tuning from the same start.",
            ("dash", "sft-time", "sft-samples"), ("start", "last3", "final", "training_s", "steps", "samples"), (
                Comparison("DASH vs SFT, same wall-clock", "dash", "sft-time", "last3", "higher", "RL wins", SFT_PAPER),
                Comparison("DASH vs SFT, same samples", "dash", "sft-samples", "last3", "higher", "RL wins", SFT_PAPER),
            ), (
                "SFT: the `dashrl sft` loop (batch 32, lr 1e-3, 10 warm-up steps, cosine) on the run's training "
                "split with reference answers as targets (`<answer>N</answer>`), from the same start policy; "
                "held-out evals every 1% of its steps, their time off the clock.",
                "sft-time: as many steps as fit in the seed's dash training clock at the SFT seconds per step "
                "measured before (earlier SFT seeds, else a short probe), and stopped on the clock if it runs "
                "over; sft-samples: dash's samples trained on / 32 steps.",
                "The paper's SFT trained on traces (human or a 7B model's); here the targets are the exact answers, "
                "which is SFT at its strongest.",
            )),
    Finding("ppo", "PPO-Multi and PPO-Mini at equal wall-clock",
            "Extra PPO updates per batch raise accuracy at the same wall-clock, but PPO-Mini can destabilise.",
            ("dash", "ppo-multi", "ppo-mini"),
            ("last3", "final", "drop", "clip_fraction", "training_s", "steps", "s_per_step"), (
                Comparison("PPO-Multi (K=2 passes) vs DASH", "ppo-multi", "dash", "last3", "higher",
                           "extra updates raise accuracy",
                           "MATH-500 at DASH's wall-clock, K=3 passes: 0.5B 28.8 vs 27.2; 1.5B 54.0 vs 54.0"),
                Comparison("PPO-Mini (K=2 mini-batches) vs DASH", "ppo-mini", "dash", "last3", "higher",
                           "higher at 0.5B, unstable at 1.5B",
                           "MATH-500 at DASH's wall-clock, K=32 mini-batches of 8: 0.5B 29.8 vs 27.2; "
                           "1.5B 36.0 vs 54.0"),
            ), (
                "K=2 for both (the paper: 3 passes, 32 mini-batches); steps: the seed's dash training clock / the "
                "entry's seconds per step, predicted as this seed's dash seconds per step times the entry's median "
                "ratio to dash on the seeds stored before (else a short probe run, stored as a probe row and not "
                "counted as a seed); the training clock column shows how close the equality came.",
                "clip fraction: the learner's `clip_fraction` (completion tokens whose gradient the PPO clip "
                "removed), the mean over steps; best minus last-3: how far a run fell from its best eval.",
            )),
    Finding("kl", "KL (beta 0.04) vs no KL at equal steps",
            "Dropping the KL term (no reference model) gives higher accuracy and shorter completions.",
            ("dash", "kl"), ("start", "last3", "final", "completion_len", "trained_len", "training_s", "s_per_step"), (
                Comparison("no KL vs KL 0.04: accuracy", "dash", "kl", "last3", "higher", "no KL is more accurate",
                           "MATH-500 31.4 vs 27.2, GSM8K 34.0 vs 31.1 (0.5B)"),
                Comparison("no KL vs KL 0.04: completion length", "dash", "kl", "completion_len", "lower",
                           "no KL gives shorter completions", "about 550 vs 615 tokens"),
            ), (
                "tokens per generated completion: the sampler's mean over every completion it generated "
                "(`completion_len_mean` of its call log, sampler-*.jsonl, weighted by samples); per trained "
                "completion: the learner's `completion_tokens` / `samples` (metrics.jsonl), the completions that "
                "survived gradient filtering. With `max_new_tokens: 8` and answers of about 6 tokens, lengths "
                "have little room to move on this task.",
            )),
    Finding("timing", "Where the time goes (the comparison's entries)",
            "Preemptive sampling cuts most of GRPO's training time; filtering and dropping KL cut a little more.",
            ("t-grpo-paper", "t-preemptive", "t-dash", "t-dash-nokl", "t-dash-async"),
            ("time_to_target", "auc", "s_per_step", "last3", "steps"), timing_comparisons(), (
                "The comparison's settings (`benchmarks/compare/run.py`: constant lr after warm-up, micro-batch "
                "8, an eval every 5 steps), each entry run to the time limit, not stopped at the target.",
                "time to target: the first eval at or above the target (seeds that never got there are counted, "
                "not averaged); the window of the area under the curve is the time limit; s / step: training "
                "clock / steps, a step being 32 prompts x 8 completions in every entry (one call, or GRPO's 32 "
                "small ones).",
            )),
)
