"""One plot per finding: mean held-out accuracy against the training clock over seeds, a band of
one standard error around it per entry (`stats.mean_curve`: each seed's step function on a common
grid up to the shortest seed's end). matplotlib with the Agg backend; PNGs under docs/img/."""

from __future__ import annotations

from pathlib import Path

from benchmarks.findings import stats
from benchmarks.findings.claims import Finding


def plot_finding(finding: Finding, curves: dict[str, list[stats.Curve]], path: Path,
                 target: float | None = None) -> bool:
    """Write `path` from each entry's seed curves; False (nothing written) when no entry has one."""
    if not any(curves.get(e) for e in finding.entries):
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.2), constrained_layout=True)
    for entry in finding.entries:
        seeds = curves.get(entry) or []
        grid, mean, se = stats.mean_curve(seeds)
        if not grid:
            continue
        pct = [m * 100 for m in mean]
        line, = ax.plot(grid, pct, label=f"{entry} (n={len(seeds)})", drawstyle="steps-post")
        ax.fill_between(grid, [m - s * 100 for m, s in zip(pct, se)], [m + s * 100 for m, s in zip(pct, se)],
                        step="post", alpha=0.2, color=line.get_color())
    if target is not None:
        ax.axhline(target * 100, color="grey", linestyle="--", linewidth=1, label=f"target {target:.0%}")
    ax.set_title(finding.title, fontsize=10)
    ax.set_xlabel("training clock, s (held-out evaluation excluded)")
    ax.set_ylabel("held-out greedy accuracy, % (mean ± SE)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True
