"""The comparison benchmark's write-up: the table, the plot (docs/img/compare.png) and the
"## DASH vs GRPO vs TRL" section of docs/benchmarks.md (other sections are left alone)."""

from __future__ import annotations

import os
import platform
import sys
import time
from pathlib import Path

from benchmarks import ROOT
from benchmarks.compare.analysis import Result, fmt_s, ratio, time_to
from benchmarks.doc_section import replace_section

DOCS = ROOT / "docs" / "benchmarks.md"
PLOT = ROOT / "docs" / "img" / "compare.png"
HEADING = "## DASH vs GRPO vs TRL"


def machine() -> str:
    cpu = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                if ln.startswith("model name")), platform.processor() or "?")
    return f"{os.cpu_count()} x {cpu}, Python {platform.python_version()}"


def table(results: list[Result], limit: float, also: float | None = None) -> list[str]:
    by = {r.name: r for r in results}
    base = by.get("grpo-paper")
    trl = next((r for r in results if r.name.startswith("trl")), None)
    extra_head, extra_rule = (f" time to {also:.0%} (s) | vs paper GRPO |", "---:|---:|") if also else ("", "")
    rows = [f"| entry | time to target (s) | vs paper GRPO | vs TRL |{extra_head} start | final | best | steps "
            "| s / step | samples backpropagated | inference s | backprop s | learner waiting s |",
            f"|---|---:|---:|---:|{extra_rule}---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        s = r.seconds
        pct = lambda x: "-" if x is None else f"{x:.1%}"  # noqa: E731
        extra = ""
        if also:
            t, b = time_to(r.curve, also), time_to(base.curve, also) if base else None
            extra = f" {fmt_s(t, limit)} | {ratio(t, b, limit if base else None)} |"
        rows.append(
            f"| {r.name} | {fmt_s(r.time_to_target_s, limit)} "
            f"| {ratio(r.time_to_target_s, base.time_to_target_s if base else None, limit if base else None)} "
            f"| {ratio(r.time_to_target_s, trl.time_to_target_s if trl else None, limit if trl else None)} |{extra}"
            f" {pct(r.start_accuracy)} | {pct(r.final_accuracy)} | {pct(r.best_accuracy)} | {r.steps} "
            f"| {s.get('total', 0) / max(1, r.steps):.2f} | {r.samples} "
            f"| {s.get('inference', 0):.0f} | {s.get('backprop', 0):.0f} | {s.get('waiting', 0):.0f} |")
    return rows


def plot(results: list[Result], target: float, path: Path = PLOT) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.2), constrained_layout=True)
    for r in results:
        if r.curve:
            ax.plot([t for t, _ in r.curve], [a * 100 for _, a in r.curve], marker=".", label=r.name)
    ax.axhline(target * 100, color="grey", linestyle="--", linewidth=1, label=f"target {target:.0%}")
    ax.set_xlabel("training wall-clock seconds (held-out evaluation excluded)")
    ax.set_ylabel("held-out greedy accuracy (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def section(results: list[Result], args, out: Path, load_before: str) -> str:
    argv = " ".join(["-m benchmarks.compare", *sys.argv[1:]])
    lines = [
        HEADING, "",
        f"`.venv/bin/python {argv}` — finished {getattr(args, 'finished', None) or time.strftime('%Y-%m-%d %H:%M UTC')}"
        f", on {machine()}; load average (1/5/15 min) before: {load_before}, after: "
        f"{getattr(args, 'load_after', None) or 'not recorded'}. Base config `{args.config}`, seed {args.seed}, "
        f"target {args.target:.0%} held-out greedy accuracy, at most {args.time_limit:.0f} s of training per entry, "
        f"micro-batch {args.micro_batch}, evaluation every {args.eval_every} steps. Raw results: "
        f"`{out.relative_to(ROOT)}/results.json` (not committed).", "",
        *table(results, args.time_limit, getattr(args, "also_target", None)), "",
        f"![held-out accuracy against training time]({PLOT.relative_to(DOCS.parent)})", "",
        "- Time to target: training wall-clock from the end of the first held-out evaluation (engine start-up "
        "excluded for every entry), with evaluation time taken off; a version counts from the moment the "
        "learner made it. '> N': not reached within the limit; a ratio against an entry that never got there "
        "is an upper bound ('< x').",
        "- inference: the sampler's generation calls (TRL: generation and scoring); backprop: forward, backward "
        "and optimizer (the KL reference forward included); learner waiting: the learner idle for rollouts. "
        "Synchronous entries wait for their own inference; the asynchronous one overlaps the two.",
        *entry_notes(results), "",
    ]
    return "\n".join(lines)


def entry_notes(results: list[Result]) -> list[str]:
    """The `--set` overrides: those every dashrl entry shared once, then each entry's own."""
    marker = "overrides: "
    split = {r.name: (r.notes.split(marker)[0].rstrip("; "), r.notes.split(marker)[1].split())
             for r in results if marker in r.notes}
    common = set.intersection(*(set(o) for _, o in split.values())) if split else set()
    first = next(iter(split.values()), ("", []))[1]
    out = [f"- Every dashrl entry: `dashrl run` with `--set` {' '.join(o for o in first if o in common)}."]
    for r in results:
        if r.name in split:
            status, own = split[r.name]
            out.append(f"- **{r.name}** ({status}): {' '.join(o for o in own if o not in common)}")
        else:
            out.append(f"- **{r.name}**: {r.notes}")
    return out


def write_doc(results: list[Result], args, out: Path) -> None:
    load_before = getattr(args, "load_before", "?")
    plot(results, args.target)
    replace_section(DOCS, HEADING, section(results, args, out, load_before))
