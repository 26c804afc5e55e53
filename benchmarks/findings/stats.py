"""The findings benchmark's arithmetic: pure functions over numbers and accuracy curves, so every
figure in docs/findings.md can be checked apart from the runs (tests/unit/benchmarks/findings).

A curve is a list of (training-clock seconds, held-out greedy accuracy) points in time order, as
`benchmarks.compare.analysis.pipeline_result` makes them (version 0 at t = 0). Read as a step
function: the accuracy of a point holds from its time until the next point's (a policy version
counts from the moment the learner made it); before the first point the first point's accuracy
holds, after the last the last one's (a run that stopped early keeps its last accuracy).

Spread over seeds is the standard error of the mean, SE = sample std / sqrt(n) (n - 1 in the
std); one seed has no SE. A direction "holds" when the mean paired difference has the claimed
sign and lies more than 2 SE from zero, "does not hold" when it lies more than 2 SE the other
way, and is "inconclusive" otherwise (within 2 SE, or fewer than two paired seeds).
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Literal

from benchmarks.compare.analysis import time_to

Curve = list[tuple[float, float]]


@dataclass(frozen=True)
class Estimate:
    """Mean and standard error of one figure over seeds."""

    mean: float | None
    se: float | None  # None with fewer than two values
    n: int

    def cell(self, scale: float = 1.0, digits: int = 1, unit: str = "") -> str:
        """'45.2 ± 3.1 (n=3)', '45.2 (n=1)' or '-' when there is no value."""
        if self.mean is None:
            return "-"
        se = f" ± {self.se * scale:.{digits}f}" if self.se is not None else ""
        return f"{self.mean * scale:.{digits}f}{unit}{se} (n={self.n})"


def mean_se(values: list[float]) -> Estimate:
    """Mean and standard error of `values` (None entries are not values)."""
    xs = [float(v) for v in values if v is not None]
    if not xs:
        return Estimate(None, None, 0)
    se = statistics.stdev(xs) / math.sqrt(len(xs)) if len(xs) > 1 else None
    return Estimate(statistics.fmean(xs), se, len(xs))


def paired_differences(entry: dict[int, float | None], baseline: dict[int, float | None]) -> list[float]:
    """entry[s] - baseline[s] for every seed s where both have a value, in seed order."""
    return [entry[s] - baseline[s] for s in sorted(set(entry) & set(baseline))
            if entry[s] is not None and baseline[s] is not None]


Verdict = Literal["holds", "does not hold", "inconclusive"]


def verdict(differences: list[float], better: Literal["higher", "lower"]) -> tuple[Verdict, str]:
    """(verdict, why) for the claim "entry is `better` than baseline" from paired differences
    (entry - baseline per seed)."""
    est = mean_se(differences)
    if est.n < 2 or est.se is None:
        return "inconclusive", f"{est.n} paired seed{'s' if est.n != 1 else ''}, no standard error"
    sign = 1.0 if better == "higher" else -1.0
    if abs(est.mean) <= 2 * est.se:
        return "inconclusive", "difference within 2 SE"
    return ("holds", "") if est.mean * sign > 0 else ("does not hold", "")


def accuracy_at(curve: Curve, t: float) -> float:
    """The step function's value at time t."""
    if not curve:
        raise ValueError("empty curve")
    value = curve[0][1]
    for time, acc in curve:
        if time > t:
            break
        value = acc
    return value


def area_under(curve: Curve, window: float) -> float:
    """Mean accuracy over [0, window]: the step function's integral divided by the window."""
    if window <= 0:
        raise ValueError("the window must be positive")
    if not curve:
        raise ValueError("empty curve")
    points = [(max(0.0, t), a) for t, a in curve if t < window]
    if not points:  # the first point is past the window: its accuracy holds back to 0
        return curve[0][1]
    area = points[0][0] * points[0][1]  # before the first point
    for (t, a), (t_next, _) in zip(points, points[1:] + [(window, 0.0)]):
        area += (t_next - t) * a
    return area / window


def final_accuracy(curve: Curve) -> float | None:
    return curve[-1][1] if curve else None


def last_mean(curve: Curve, k: int = 3) -> float | None:
    """Mean accuracy of the last k evaluations (one eval of 200 problems is noisy)."""
    tail = [a for _, a in curve[-k:]]
    return statistics.fmean(tail) if tail else None


def best_accuracy(curve: Curve) -> float | None:
    return max(a for _, a in curve) if curve else None


def time_to_target(curve: Curve, target: float) -> float | None:
    """The first time the curve reaches `target` (None: never)."""
    return time_to(curve, target)


def steps_for_clock(seconds: float, s_per_step: float) -> int:
    """Steps that fill `seconds` of training at `s_per_step` (rounded, at least one)."""
    if s_per_step <= 0:
        raise ValueError("seconds per step must be positive")
    return max(1, round(seconds / s_per_step))


def mean_curve(curves: list[Curve], points: int = 60) -> tuple[list[float], list[float], list[float]]:
    """(grid, mean, se) of the step functions over a common time grid from 0 to the shortest
    curve's last time (no seed is extended past its end); se is 0 with one curve."""
    curves = [c for c in curves if c]
    if not curves:
        return [], [], []
    end = min(c[-1][0] for c in curves)
    grid = [end * i / (points - 1) for i in range(points)] if end > 0 else [0.0]
    means, ses = [], []
    for t in grid:
        est = mean_se([accuracy_at(c, t) for c in curves])
        means.append(est.mean)
        ses.append(est.se or 0.0)
    return grid, means, ses
