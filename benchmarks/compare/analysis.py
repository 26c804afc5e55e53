"""The comparison benchmark's arithmetic: a finished run folder -> one result row.

Pure functions over the rows of a run's `metrics.jsonl` (learner, one line per step),
`eval.jsonl` (sampler, one line per held-out evaluation) and `sampler-*.jsonl` (one line per
generation call), so the clock rules are tested apart from the runs (tests/unit/benchmarks/compare).

The training clock starts when the first evaluation (policy version 0) ends: the sampler starts
generating then, and engine start-up is left out for every entry alike (TRL's too). Held-out
evaluations pause the pipeline, so their seconds are taken off the clock. A policy version
reaches the target at the moment the learner wrote its step line (the weights existed then), not
when the sampler got round to evaluating it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass
class Result:
    """One entry of the comparison (a dashrl variant or TRL)."""

    name: str
    target: float
    time_to_target_s: float | None  # training clock; None: not reached within the limit
    final_accuracy: float | None  # the last held-out evaluation before the run stopped
    best_accuracy: float | None
    start_accuracy: float | None
    steps: int
    samples: int  # samples backpropagated
    seconds: dict[str, float] = field(default_factory=dict)  # inference / backprop / waiting / total
    curve: list[tuple[float, float]] = field(default_factory=list)  # (training clock s, accuracy)
    notes: str = ""

    def to_json(self) -> dict:
        return asdict(self)


def eval_clock(evals: list[dict]) -> tuple[float, list[tuple[float, float]]]:
    """(t0, [(eval end wall time, seconds spent evaluating up to and including it)]).

    t0 is the end of the first evaluation. Rows are in file order (the sampler appends)."""
    if not evals:
        raise ValueError("no held-out evaluation was recorded")
    t0 = float(evals[0]["time"])
    spent, out = 0.0, []
    for row in evals[1:]:
        spent += float(row.get("seconds", 0.0))
        out.append((float(row["time"]), spent))
    return t0, out


def training_clock(wall: float, t0: float, evals_done: list[tuple[float, float]]) -> float:
    """Seconds of training up to wall time `wall`: since t0, minus evaluations that ended by then."""
    spent = 0.0
    for end, cumulative in evals_done:
        if end <= wall:
            spent = cumulative
    return max(0.0, wall - t0 - spent)


def pipeline_result(name: str, target: float, steps: list[dict], evals: list[dict],
                    calls: list[dict]) -> Result:
    """A dashrl run's row: accuracy per policy version, dated by the learner's step lines."""
    t0, done = eval_clock(evals)
    made_at = {0: t0}
    for s in steps:
        made_at.setdefault(int(s["policy_version"]), float(s["time"]))
    curve, hit = [], None
    headline = evals[0].get("name")  # with several named evals (task.evals), the curve is the first's
    for row in evals:
        v = int(row["version"])
        if v not in made_at or row.get("name") != headline:
            continue
        t = training_clock(made_at[v], t0, done)
        acc = float(row["greedy_accuracy"])
        curve.append((t, acc))
        if hit is None and acc >= target:
            hit = t
    last = steps[-1]["time"] if steps else t0
    accs = [a for _, a in curve]
    return Result(
        name=name, target=target, time_to_target_s=hit,
        final_accuracy=accs[-1] if accs else None, best_accuracy=max(accs) if accs else None,
        start_accuracy=float(evals[0]["greedy_accuracy"]), steps=len(steps),
        samples=int(sum(s.get("samples", 0) for s in steps)),
        seconds=pipeline_seconds(steps, calls, training_clock(float(last), t0, done)), curve=curve)


def pipeline_seconds(steps: list[dict], calls: list[dict], total: float) -> dict[str, float]:
    """inference: the sampler's generation calls; backprop: the learner's forward/backward and
    optimizer (the reference model's forward for KL included); waiting: the rest of the training
    clock, when the learner was not working (idle for rollouts). In a synchronous run inference
    and waiting are the same time seen from two sides; asynchronous runs overlap them."""
    def phase(key: str) -> float:
        return float(sum(s.get("seconds", {}).get(key, 0.0) for s in steps))

    backprop, other = phase("forward_backward") + phase("optimizer"), phase("publish") + phase("commit")
    return {
        "inference": float(sum(c.get("generate_s", 0.0) for c in calls)),
        "scoring": float(sum(c.get("score_s", 0.0) for c in calls)),
        "backprop": backprop,
        "publish_commit": other,
        "waiting": max(0.0, total - backprop - other),
        "total": total,
    }


def trl_result(data: dict) -> Result:
    """The TRL runner's JSON (benchmarks/compare/trl_grpo.py) as a row."""
    evals = data.get("evals", [])
    curve = [(float(e["elapsed_s"]), float(e["accuracy"])) for e in evals]
    accs = [a for _, a in curve]
    return Result(
        name=data.get("name", "trl-grpotrainer"), target=float(data["target"]),
        time_to_target_s=data.get("time_to_target_s"), final_accuracy=data.get("final_accuracy"),
        best_accuracy=max(accs) if accs else None, start_accuracy=accs[0] if accs else None,
        steps=int(data.get("steps", 0)), samples=int(data.get("samples", 0)),
        seconds={k: float(v) for k, v in data.get("seconds", {}).items()}, curve=curve,
        notes=f"trl {data.get('trl_version', '?')}, {data.get('torch_threads', '?')} torch threads")


def time_to(curve: list[tuple[float, float]], target: float) -> float | None:
    """The first training-clock time at which the curve's accuracy reached `target` (None: never)."""
    return next((t for t, acc in curve if acc >= target), None)


def ratio(a: float | None, b: float | None, b_limit: float | None = None) -> str:
    """a / b as a table cell. When b never reached the target within b_limit seconds, b > b_limit,
    so the ratio is an upper bound ('< x'); '-' when a itself is unknown."""
    if a is None:
        return "-"
    if b is None:
        return f"< {a / b_limit:.2f}" if b_limit else "-"
    return f"{a / b:.2f}"


def fmt_s(x: float | None, limit: float | None = None) -> str:
    if x is None:
        return f"> {limit:.0f}" if limit else "not reached"
    return f"{x:.0f}"
