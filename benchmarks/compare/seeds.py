"""Several runs of `python -m benchmarks.compare` (other seeds, same problems and starting policy) side by
side: each entry's time to target per run, its ratio to that run's paper baseline, and medians.

One run's time to target is the first crossing of a noisy curve; across seeds the crossing step
moves by a factor of two or three while seconds per step hardly move, so this table shows both.
Writes the "## DASH vs GRPO vs TRL: across seeds" section of docs/benchmarks.md with --write-doc.

    .venv/bin/python -m benchmarks.compare.seeds runs/compare/A/results.json runs/compare/B/results.json --write-doc
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

from benchmarks import ROOT
from benchmarks.doc_section import replace_section

HEADING = "## DASH vs GRPO vs TRL: across seeds"
BASE = "grpo-paper"


def load(path: Path) -> dict:
    data = json.loads(path.read_text())
    data["paths"] = [path]
    return data


def merge_by_seed(runs: list[dict]) -> list[dict]:
    """Runs of the same seed (an entry run later, on its own) become one run: their entries
    side by side, each ratio taken against that seed's baseline."""
    out: dict[int, dict] = {}
    for run in runs:
        seed = run["args"]["seed"]
        if seed not in out:
            out[seed] = {**run, "results": list(run["results"]), "argvs": [run.get("argv", [])],
                         "finished": [run["args"].get("finished", "?")]}
            continue
        have = {r["name"] for r in out[seed]["results"]}
        out[seed]["results"] += [r for r in run["results"] if r["name"] not in have]
        out[seed]["paths"] += run["paths"]
        out[seed]["argvs"].append(run.get("argv", []))
        out[seed]["finished"].append(run["args"].get("finished", "?"))
    return list(out.values())


def per_step(r: dict) -> float:
    return r["seconds"].get("total", 0.0) / max(1, r["steps"])


def rows(runs: list[dict]) -> list[str]:
    """One line per entry: per run 'time (ratio to that run's baseline)', medians of ratios and s/step."""
    names = [r["name"] for r in runs[0]["results"]]
    for run in runs[1:]:
        names += [r["name"] for r in run["results"] if r["name"] not in names]
    seeds = [run["args"]["seed"] for run in runs]
    out = ["| entry | " + " | ".join(f"seed {s}: s to target (x baseline), steps" for s in seeds)
           + " | median x baseline | s / step (median) | median s / step x baseline |",
           "|---|" + "---:|" * (len(seeds) + 3)]
    base_steps = statistics.median(per_step(r) for run in runs for r in run["results"] if r["name"] == BASE)
    for name in names:
        cells, ratios, steps = [], [], []
        for run in runs:
            by = {r["name"]: r for r in run["results"]}
            r, b = by.get(name), by.get(BASE)
            if r is None:
                cells.append("-")
                continue
            steps.append(per_step(r))
            t, tb = r["time_to_target_s"], b["time_to_target_s"] if b else None
            if t is None:
                cells.append(f"> {run['args']['time_limit']:.0f}, {r['steps']}")
                continue
            ratio = t / tb if tb else None
            if ratio is not None:
                ratios.append(ratio)
            cells.append(f"{t:.0f} ({ratio:.2f}), {r['steps']}" if ratio is not None else f"{t:.0f}, {r['steps']}")
        med = f"{statistics.median(ratios):.2f}" if ratios else "-"
        sps = statistics.median(steps) if steps else 0.0
        out.append(f"| {name} | " + " | ".join(cells) + f" | {med} | {sps:.2f} | {sps / base_steps:.2f} |")
    return out


def section(runs: list[dict]) -> str:
    cmds = [" ".join(["-m benchmarks.compare", *argv]) for run in runs for argv in run["argvs"]]
    when = ", ".join(str(f) for run in runs for f in run["finished"])
    lines = [HEADING, "",
             f"Runs (finished {when}; raw: " + ", ".join(f"`{p.relative_to(ROOT)}`" for run in runs for p in run["paths"])
             + "), one after another on the same machine:", "",
             *[f"    .venv/bin/python {c}" for c in cmds], "",
             *rows(runs), "",
             "Each cell: seconds of training to the first held-out evaluation at or above the target, that run's "
             "ratio to its own paper baseline, and the optimizer steps the entry ran. The last columns: median "
             "seconds per step over the runs and its ratio to the baseline's median: the cost of the same "
             "statistical step (32 prompts x 8 completions) with the noise of the crossing step taken out.", ""]
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("results", nargs="+", type=Path, help="results.json of benchmarks.compare runs")
    p.add_argument("--write-doc", action="store_true")
    args = p.parse_args()
    runs = merge_by_seed([load(path.resolve()) for path in args.results])
    text = section(runs)
    print(text)
    if args.write_doc:
        replace_section(ROOT / "docs" / "benchmarks.md", HEADING, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
