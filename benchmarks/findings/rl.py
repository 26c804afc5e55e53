"""The findings benchmark's RL side: each seed's start policy, and one `dashrl run` -> one row.

Start policy: the demo recipe on the base config's task with `seed: k` (`recipe_for`), built (or
reused) by `services.sft.demo_policy.build_demo_policy` into `<out>/policies/seed<k>/demo-policy`;
every entry of seed k starts from that folder (`--set model.path=...`), never from `data/`.

A run is a real `dashrl run` subprocess through `benchmarks.compare.run.run_pipeline` (embedded
Redis, vLLM sampler, learner; the comparison's clock rules, `benchmarks.compare.analysis`). Finding
entries run to their `learner.max_steps`; timing entries to the comparison's time limit. Besides
the comparison's figures a row keeps two of the learner's step metrics (metrics.jsonl):
`clip_fraction` (completion tokens whose gradient the PPO clip removed, per step; averaged over
the run) and `completion_tokens` / `samples` (tokens per trained completion: the samples that
survived gradient filtering); and from the sampler's call log (sampler-*.jsonl) the mean length
of every completion generated, filtered ones too (`generated_len_mean`, the paper's measure).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
from pathlib import Path

from benchmarks.compare.run import run_pipeline
from services.control.report import read_jsonl


def recipe_hashes(config: str, seeds: list[int]) -> dict[int, str]:
    """Each seed's start-policy recipe hash, computed without building anything."""
    from services.sft.demo_policy import recipe_for
    from shared.configio import load_config

    return {s: recipe_for(load_config(config, [f"seed={s}"])).digest() for s in seeds}


def start_policy(out: Path, config: str, seed: int) -> tuple[Path, dict]:
    """The seed's start policy folder (built on first use; minutes on 2 cores) and what its row
    records of it: the recipe hash and version and the start accuracy the build measured."""
    from services.sft.demo_policy import build_demo_policy, read_marker, recipe_for
    from shared.configio import load_config

    cfg = load_config(config, [f"seed={seed}"])
    folder = build_demo_policy(out / "policies" / f"seed{seed}", recipe=recipe_for(cfg),
                               log=lambda m: print(m, flush=True))
    marker = read_marker(folder) or {}
    return folder.resolve(), {"recipe_hash": marker.get("recipe_hash"), "recipe_version": marker.get("recipe_version"),
                              "policy_start_accuracy": marker.get("start_accuracy")}


def learner_figures(steps: list[dict]) -> dict[str, float | None]:
    """Run means of the learner's clip fraction and tokens per trained completion."""
    clip = [float(s["clip_fraction"]) for s in steps if s.get("clip_fraction") is not None]
    samples = sum(int(s.get("samples", 0)) for s in steps)
    tokens = sum(float(s.get("completion_tokens", 0)) for s in steps)
    return {"clip_fraction": statistics.fmean(clip) if clip else None,
            "completion_len_mean": tokens / samples if samples else None}


def generated_length(calls: list[dict]) -> float | None:
    """Mean tokens per generated completion over a run's generation calls (weighted by samples)."""
    rows = [c for c in calls if c.get("completion_len_mean") is not None]
    n = sum(float(c["num_samples"]) for c in rows)
    return sum(float(c["completion_len_mean"]) * float(c["num_samples"]) for c in rows) / n if n else None


def rl_row(entry: str, seed: int, overrides: list[str], folder: Path, ns: argparse.Namespace) -> dict:
    """Run `dashrl run` with `overrides` into `folder` (emptied first: a run killed earlier leaves
    files a new run would append to) and return its row."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    res = run_pipeline(entry, overrides, ns, folder)
    run_dir = next((p.parent for p in folder.glob("*/metrics.jsonl")), folder)
    return {
        "entry": entry, "seed": seed, "steps_done": res.steps, "samples": res.samples,
        "training_s": res.seconds.get("total", 0.0), "seconds": res.seconds, "curve": res.curve,
        "start_accuracy": res.start_accuracy, "final_accuracy": res.final_accuracy,
        "target": res.target, "time_to_target_s": res.time_to_target_s,
        **learner_figures(read_jsonl(run_dir / "metrics.jsonl")),
        "generated_len_mean": generated_length([c for p in sorted(run_dir.glob("sampler-*.jsonl"))
                                                for c in read_jsonl(p)]),
        "overrides": overrides, "folder": str(run_dir), "notes": res.notes,
    }
