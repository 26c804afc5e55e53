"""SFT trajectories of the demo's start policy under candidate check splits (`python -m
benchmarks.demo.sft_screen --seed K`).

Trains the demo recipe's SFT exactly as `services.sft.demo_policy` builds it (same rows, seeds
and batch order) and, every `--every` steps from `--from`, prints greedy accuracy on the run's
held-out split and on each candidate check split, so a stopping rule can be judged on every
seed from one SFT pass per seed instead of one full demo per rule. One JSON line per check.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace

from services.sft.demo_policy import DemoRecipe, check_split, prepare, sft_settings
from services.sft.evaluate import accuracy
from services.sft.sft import train_sft
from services.sft.sft_data import encode_row


def candidate_checks(recipe: DemoRecipe, b: dict) -> dict[str, list]:
    """The checks to compare: training problems of any kind, or only those no SFT row asks."""
    seen, held = {r["prompt"] for r in b["rows"]}, {p.question for p in b["held"]}
    return {f"{kind}{n}": check_split(replace(recipe, check_size=n, check_unseen=kind == "unseen"),
                                      b["task"].train, seen, held)
            for kind, n in (("mixed", 200), ("mixed", 400), ("unseen", 400))}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, required=True)
    ap.add_argument("--from", dest="start", type=int, default=300)
    ap.add_argument("--until", type=int, default=1100)
    ap.add_argument("--every", type=int, default=50)
    args = ap.parse_args()
    recipe = DemoRecipe(seed=args.seed)
    b = prepare(recipe)
    model, renderer, verify = b["model"], b["renderer"], b["verify"]
    checks = candidate_checks(recipe, b)

    def hook(step: int) -> bool:
        if step < args.start:
            return False
        row = {"seed": args.seed, "step": step, "held": accuracy(model, renderer, b["held"], verify)}
        row.update({name: accuracy(model, renderer, probs, verify) for name, probs in checks.items()})
        print(json.dumps(row), flush=True)
        return step >= args.until

    train_sft(model, b["tokenizer"], [encode_row(renderer, r) for r in b["rows"]], sft_settings(recipe),
              log=lambda m: None, stop=hook, check_every=args.every)


if __name__ == "__main__":
    main()
