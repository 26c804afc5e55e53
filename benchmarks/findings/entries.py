"""The findings benchmark's entries: their names, their order, and each RL entry's `--set`
overrides on top of the base config (configs/demo-cpu.yaml), from the same start policy per seed.

Finding entries keep the demo config's cosine schedule (to 0 at `learner.max_steps`):
- `dash`: the config as it is, `--steps` steps;
- `kl`: `algo.kl_beta=0.04`, the same steps (equal steps);
- `ppo-multi` / `ppo-mini`: `algo.ppo=multi|mini`, `algo.ppo_epochs=2`, as many steps as fill that
  seed's dash training clock (equal wall-clock; `stats.steps_for_clock`);
- `sft-time` / `sft-samples`: the `dashrl sft` loop in-process (`benchmarks.findings.sft_entry`).

Timing entries (`t-*`) are the comparison's (`benchmarks.compare.run.variants`, with its
`common_overrides`: constant lr, micro-batch 8, eval every 5 steps), each run to the time limit.
"""

from __future__ import annotations

import argparse

from benchmarks.compare.run import common_overrides, variants

FINDING_RL = ("dash", "kl", "ppo-multi", "ppo-mini")
SFT = ("sft-time", "sft-samples")
TIMING = ("t-grpo-paper", "t-preemptive", "t-dash", "t-dash-nokl", "t-dash-async")
ENTRIES = FINDING_RL + SFT + TIMING
"""Every entry, in the order one seed runs them (dash first: the equal-clock entries need it)."""

EQUAL_CLOCK = ("ppo-multi", "ppo-mini", "sft-time")
"""Entries whose length is set from that seed's dash run; `sft-samples` needs it too."""
NEEDS_DASH = EQUAL_CLOCK + ("sft-samples",)

PPO_EPOCHS = 2
FINDING_OVERRIDES = {
    "dash": [],
    "kl": ["algo.kl_beta=0.04"],
    "ppo-multi": ["algo.ppo=multi", f"algo.ppo_epochs={PPO_EPOCHS}"],
    "ppo-mini": ["algo.ppo=mini", f"algo.ppo_epochs={PPO_EPOCHS}"],
}

TIMING_DEFAULTS = dict(micro_batch=8, eval_every=5)
"""The comparison's own defaults (`python -m benchmarks.compare`)."""


def horizon(entry: str, steps: int) -> int | None:
    """The step count a result row of `entry` is keyed by: `--steps`, or None for the timing
    entries (they run to a time limit, not to a step horizon)."""
    return None if entry in TIMING else steps


def parse_entries(text: str) -> list[str]:
    """`--only a,b` as entry names in run order; an unknown name raises ValueError."""
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in ENTRIES]
    if unknown:
        raise ValueError(f"unknown entries {unknown}; choose from {', '.join(ENTRIES)}")
    return [e for e in ENTRIES if e in names]


def finding_overrides(entry: str, seed: int, policy: str, max_steps: int) -> list[str]:
    """The `--set` list of a finding RL entry (schedule: the config's cosine)."""
    return [f"seed={seed}", f"model.path={policy}", f"learner.max_steps={max_steps}",
            "learner.schedule=cosine", *FINDING_OVERRIDES[entry]]


def timing_namespace(seed: int, target: float, time_limit: float, config: str) -> argparse.Namespace:
    """The arguments `benchmarks.compare.run` reads (`common_overrides`, `run_pipeline`); `full`:
    no stop at the target, so the area under the curve covers the whole window."""
    return argparse.Namespace(seed=seed, set=[], target=target, time_limit=time_limit, full=True,
                              config=config, **TIMING_DEFAULTS)


def timing_overrides(entry: str, ns: argparse.Namespace, policy: str, m: int, g: int,
                     threshold: float) -> list[str]:
    """The comparison's overrides of `entry` (`t-dash` -> the comparison's `dash`), from `policy`."""
    table = variants(m, g, ns.micro_batch, threshold)
    return [*common_overrides(ns), f"model.path={policy}", *table[entry.removeprefix("t-")]]
