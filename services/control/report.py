"""A finished local run's report: report.png (reward and eval accuracy against wall time, one
line per named eval) and the numbers of the final summary, read from the run folder's
metrics.jsonl and eval.jsonl. The first eval in eval.jsonl is the headline."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

TIME_KEYS = ("time", "wall_time", "timestamp", "t")
REWARD_KEYS = ("reward_mean", "reward")
ACCURACY_KEYS = ("greedy_accuracy", "eval_accuracy", "accuracy", "sampled_accuracy")
DEFAULT_EVAL = "held_out"
"""The name of rows written before evals had names (one eval per run)."""


def read_jsonl(path: Path) -> list[dict]:
    """Rows of a JSONL file; a torn last line (a killed writer) is skipped, not fatal."""
    rows = []
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return []
    for line in lines:
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict):
            rows.append(row)
    return rows


def by_eval(rows: list[dict]) -> dict[str, list[dict]]:
    """eval.jsonl rows grouped by eval `name`, in the order the names first appear."""
    out: dict[str, list[dict]] = {}
    for row in rows:
        out.setdefault(str(row.get("name", DEFAULT_EVAL)), []).append(row)
    return out


def column(rows: list[dict], keys: tuple[str, ...]) -> list[tuple[float, float]]:
    """(time, value) pairs of the first of `keys` each row has (rows without a time are skipped)."""
    out = []
    for row in rows:
        t = next((row[k] for k in TIME_KEYS if isinstance(row.get(k), (int, float))), None)
        v = next((row[k] for k in keys if isinstance(row.get(k), (int, float))), None)
        if t is not None and v is not None:
            out.append((float(t), float(v)))
    return out


@dataclass
class RunSummary:
    steps: int
    start_accuracy: float | None
    final_accuracy: float | None
    """The last eval: one point of a noisy curve."""
    wall_time_s: float | None
    last3_mean: float | None = None
    """Mean of the last three evals after the start (fewer when the run had fewer)."""
    best_accuracy: float | None = None
    """The best eval after the start: picked after the fact, so biased upwards."""
    others: dict[str, tuple[float | None, float | None]] | None = None
    """Every eval after the headline: name -> (start, final) accuracy."""
    headline: str | None = None
    """The headline eval's name, when the run had several."""

    def lines(self) -> list[str]:
        acc = lambda x: "n/a" if x is None else f"{x:.3f}"  # noqa: E731
        wall = "n/a" if self.wall_time_s is None else f"{self.wall_time_s:.0f}s"
        name = f" ({self.headline})" if self.headline else ""
        out = [f"learner steps: {self.steps}", f"eval accuracy{name}: {acc(self.start_accuracy)} at the start -> "
               f"{acc(self.final_accuracy)} at the end"]
        if self.last3_mean is not None:
            out.append(f"  (one eval is noisy: mean of the last 3 evals {acc(self.last3_mean)}, "
                       f"best eval {acc(self.best_accuracy)})")
        for name, (start, final) in (self.others or {}).items():
            out.append(f"  {name}: {acc(start)} at the start -> {acc(final)} at the end")
        return out + [f"wall time: {wall}"]


def summarize_run(folder: Path, started_at: float | None, ended_at: float | None) -> RunSummary:
    steps = read_jsonl(folder / "metrics.jsonl")
    groups = {name: column(rows, ACCURACY_KEYS) for name, rows in by_eval(read_jsonl(folder / "eval.jsonl")).items()}
    evals = next(iter(groups.values()), [])  # the headline: the first eval
    wall = ended_at - started_at if started_at and ended_at else None
    after = [v for _, v in evals[1:]]
    others = {n: (g[0][1] if g else None, g[-1][1] if len(g) > 1 else None) for n, g in list(groups.items())[1:]}
    return RunSummary(steps=len(steps), start_accuracy=evals[0][1] if evals else None,
                      final_accuracy=after[-1] if after else None, wall_time_s=wall,
                      last3_mean=sum(after[-3:]) / len(after[-3:]) if after else None,
                      best_accuracy=max(after) if after else None, others=others or None,
                      headline=next(iter(groups)) if others else None)


def write_report(folder: Path, started_at: float | None = None,
                 reward_fallback: list[tuple[float, float]] | None = None) -> Path | None:
    """Plot reward and eval accuracy against wall time into `folder/report.png`.

    Reward comes from metrics.jsonl when the learner records it there, else from
    `reward_fallback` (the control plane's samples of the samplers' heartbeats)."""
    import matplotlib

    matplotlib.use("Agg")  # no display; never pick an interactive backend
    import matplotlib.pyplot as plt

    reward = column(read_jsonl(folder / "metrics.jsonl"), REWARD_KEYS) or list(reward_fallback or [])
    acc_lines, acc_title = eval_lines(by_eval(read_jsonl(folder / "eval.jsonl")))
    points = reward + [p for _, series in acc_lines for p in series]
    if not points:
        log.warning("no metrics in %s: no report.png", folder)
        return None
    t0 = started_at or min(t for t, _ in points)
    span = max(t for t, _ in points) - t0
    unit, scale = ("min", 60.0) if span > 180 else ("s", 1.0)
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), constrained_layout=True)
    panels = ((axes[0], [("batch mean", reward)], "reward"), (axes[1], acc_lines, acc_title))
    for ax, lines, title in panels:
        for label, series in lines:
            if series:
                ax.plot([(t - t0) / scale for t, _ in series], [v for _, v in series], marker="o", markersize=3,
                        label=label)
        ax.set_title(title)
        ax.set_xlabel(f"wall time since start ({unit})")
        ax.grid(alpha=0.3)
        if any(series for _, series in lines):
            ax.legend(loc="best", fontsize=8)
    axes[1].set_ylim(-0.02, 1.02)
    fig.suptitle(folder.name)
    out = folder / "report.png"
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def eval_lines(groups: dict[str, list[dict]]) -> tuple[list[tuple[str, list[tuple[float, float]]]], str]:
    """The eval panel's (label, series) lines and title: greedy and sampled for a run with one
    eval; one line per eval (its accuracy: greedy, else sampled pass@1) for several."""
    if len(groups) <= 1:
        name, rows = next(iter(groups.items()), (DEFAULT_EVAL, []))
        title = "eval accuracy (held-out)" if name == DEFAULT_EVAL else f"eval accuracy ({name})"
        return [("greedy", column(rows, ACCURACY_KEYS[:3])), ("sampled", column(rows, ("sampled_accuracy",)))], title
    return [(name, column(rows, ACCURACY_KEYS)) for name, rows in groups.items()], "eval accuracy (greedy, else pass@1)"
