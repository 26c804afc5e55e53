"""When the demo's start-policy SFT stops: checks on the check split, and fresh attempts.

Owns the stopping rule of `services.sft.demo_policy` (recipe 5). SFT of the 1.1M-parameter demo
model goes through a phase change (it starts to add rather than recall) in which the check
split's greedy accuracy climbs from 5-25% to 40-55%, mostly within 10-100 steps, at a step that moves
with the initialisation and with the machine (another CPU sums floats in another order). A stop
on a coarse grid overshoots it, and some initialisations never reach it within the cap, so:

- checks every `check_every` steps from `sft_min_steps`, and every `fine_every` steps once a
  check has reached `fine_from` (the climb has begun), so the stop lands within a few points of
  `sft_until` instead of anywhere in the jump;
- an attempt that reaches `sft_steps` without a check at `sft_until` is thrown away and SFT
  starts again from a fresh initialisation and batch order (`attempt_seed`), up to
  `sft_attempts` in all; the last attempt is kept if none reaches it (the marker says so).
"""

from __future__ import annotations

from typing import Callable


def attempt_seed(seed: int, attempt: int) -> int:
    """The model-initialisation and batch-order seed of attempt `attempt` (0: the run seed)."""
    return seed + 1000 * attempt


def sft_stop(recipe, score: Callable[[], float], log: Callable[[str], None], seen: list):
    """`train_sft`'s stop hook (asked every `recipe.fine_every` steps): after `sft_min_steps`,
    check every `check_every` steps, every `fine_every` once a check reached `fine_from`, and stop
    at the first check at `sft_until` or above. Each check is appended to `seen` as (step, accuracy)."""
    def stop(step: int) -> bool:
        if recipe.sft_until is None or step < recipe.sft_min_steps:
            return False
        fine = bool(seen) and seen[-1][1] >= recipe.fine_from
        if step % (recipe.fine_every if fine else recipe.check_every):
            return False
        acc = score()
        seen.append((step, acc))
        log(f"demo policy: SFT step {step}, check split greedy accuracy {acc:.3f} (target {recipe.sft_until:.2f})")
        return acc >= recipe.sft_until
    return stop


def reached(recipe, checks: list) -> bool:
    return recipe.sft_until is None or bool(checks) and checks[-1][1] >= recipe.sft_until


def sft_attempts(recipe, train: Callable[[int, Callable[[int], bool]], list[float]],
                 score: Callable[[], float], log: Callable[[str], None]) -> dict:
    """Run `train(attempt, stop)` (a fresh model and SFT for that attempt, returning its losses)
    until an attempt stops on target or `sft_attempts` are spent. Returns the kept attempt's
    losses and checks and every attempt's summary."""
    tried: list[dict] = []
    for attempt in range(max(1, recipe.sft_attempts)):
        checks: list[tuple[int, float]] = []
        losses = train(attempt, sft_stop(recipe, score, log, checks))
        tried.append(dict(attempt=attempt, seed=attempt_seed(recipe.seed, attempt), steps=len(losses),
                          last_check=checks[-1] if checks else None, reached=reached(recipe, checks)))
        if tried[-1]["reached"]:
            break
        log(f"demo policy: attempt {attempt} ran {len(losses)} SFT steps without reaching the check target"
            + ("; starting again from a fresh initialisation" if attempt + 1 < recipe.sft_attempts else
               "; keeping it (no attempts left)"))
    return dict(losses=losses, checks=checks, attempts=tried)
