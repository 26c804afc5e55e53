"""The findings benchmark's results file (`runs/findings/results.json`) and the plan of runs left.

The file is a JSON list of rows, one per finished run. A row is keyed by (entry, seed, steps):
`steps` is the invocation's `--steps` for the finding entries and None for the timing entries
(`entries.horizon`). `kind` is "run" for a seed's result and "probe" for a short run that only
measured seconds per step (never counted as a seed). Every invocation loads the file, plans what
is missing, and writes the file back after each finished run (atomically: a temporary file renamed
over it), so a killed invocation loses at most the run in progress, and the next one resumes.
Each row names the recipe hash of the start policy it ran from (`recipe_hash`); when the demo
recipe changes, a seed's rows of the old recipe no longer count as done and are run again.
"""

from __future__ import annotations

import json
import os
import statistics
from pathlib import Path

from benchmarks.findings.entries import ENTRIES, NEEDS_DASH, SFT, horizon


def load_rows(path: Path) -> list[dict]:
    """The stored rows ([] when there is no file yet)."""
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return []


def save_rows(path: Path, rows: list[dict]) -> None:
    """Write `rows` atomically (a reader sees the old file or the new one, never half of one)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(rows, indent=1) + "\n")
    os.replace(tmp, path)


def key(row: dict) -> tuple[str, int, int | None, str]:
    return row["entry"], int(row["seed"]), row.get("steps"), row.get("kind", "run")


def upsert(rows: list[dict], row: dict) -> list[dict]:
    """`rows` with `row` added, replacing a row of the same key (a --rerun)."""
    return [r for r in rows if key(r) != key(row)] + [row]


def find(rows: list[dict], entry: str, seed: int, steps: int, kind: str = "run",
         recipe: str | None = None) -> dict | None:
    """The stored row of (entry, seed, steps); with `recipe`, only one made from a start policy
    of that recipe hash (a row from an older recipe is stale: its seed starts elsewhere now)."""
    want = (entry, seed, horizon(entry, steps), kind)
    return next((r for r in rows if key(r) == want and recipe in (None, r.get("recipe_hash"))), None)


def current(rows: list[dict], recipes: dict[int, str]) -> list[dict]:
    """The rows made from each seed's current start-policy recipe."""
    return [r for r in rows if r.get("recipe_hash") == recipes.get(r["seed"])]


def seed_rows(rows: list[dict], entry: str, steps: int) -> list[dict]:
    """The seeds' rows of `entry` at this horizon, in seed order (probes left out)."""
    found = [r for r in rows if r["entry"] == entry and r.get("kind", "run") == "run"
             and r.get("steps") == horizon(entry, steps)]
    return sorted(found, key=lambda r: r["seed"])


def plan(rows: list[dict], wanted: list[str], seeds: list[int], steps: int, rerun: bool,
         recipes: dict[int, str] | None = None) -> list[tuple[str, int]]:
    """The (entry, seed) runs left, seed by seed in `ENTRIES` order. A pair already stored (from
    the seed's current start-policy recipe, when `recipes` gives it) is skipped unless `rerun`; an
    entry that needs the seed's dash run brings dash in when it is missing (even when dash itself
    was not asked for)."""
    todo = []
    for seed in seeds:
        recipe = (recipes or {}).get(seed)
        needed = set(wanted)
        if needed & set(NEEDS_DASH) and find(rows, "dash", seed, steps, recipe=recipe) is None:
            needed.add("dash")
        for entry in ENTRIES:
            if entry not in needed:
                continue
            if (rerun and entry in wanted) or find(rows, entry, seed, steps, recipe=recipe) is None:
                todo.append((entry, seed))
    return todo


def per_step(row: dict) -> float:
    """Training-clock seconds per step of a row (a probe may state its own figure)."""
    return row.get("s_per_step") or row["training_s"] / max(1, row["steps_done"])


def seconds_per_step(rows: list[dict], entry: str) -> float | None:
    """The median seconds per step of `entry`'s stored seeds (any horizon), else of its probes;
    the SFT entries share one figure (the same loop and batch). None: nothing measured yet."""
    family = SFT if entry in SFT else (entry,)
    for kind in ("run", "probe"):
        found = [per_step(r) for r in rows if r["entry"] in family and r.get("kind", "run") == kind
                 and r.get("steps_done")]
        if found:
            return statistics.median(found)
    return None


def seconds_per_step_on(rows: list[dict], entry: str, dash: dict) -> float | None:
    """`entry`'s seconds per step predicted for the seed of the `dash` row: that run's seconds per
    step times the median ratio entry / dash over the seeds where both ran (seed runs first, else
    probes; the same horizon and start policy). A seed whose dash steps are slower (more calls
    per step, say) is slower in the entry too, so a ratio sizes an equal clock better than the
    entry's own seconds. None when no pair is stored."""
    for kind in ("run", "probe"):
        ratios = []
        for r in rows:
            if r["entry"] != entry or r.get("kind", "run") != kind or not r.get("steps_done"):
                continue
            base = find(rows, "dash", int(r["seed"]), r.get("steps"), recipe=r.get("recipe_hash"))
            if base is not None and base.get("steps_done"):
                ratios.append(per_step(r) / per_step(base))
        if ratios:
            return statistics.median(ratios) * per_step(dash)
    return None
