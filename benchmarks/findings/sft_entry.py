"""The findings benchmark's SFT entries: the `dashrl sft` loop (`services.sft.sft.train_sft`)
in-process, from a seed's start policy, on that seed's run split -> one row.

Rows are made as `dashrl sft --config` makes them (`services.sft.sft.load_rows`: the run's
training split, `reference_completion` targets, the run's prompt rendering), and held-out accuracy
is `services.sft.evaluate.accuracy` on the run's held-out split with its verifier and
`sampler.max_new_tokens`, problems over `sampler.max_prompt_tokens` skipped as the sampler skips
them: the figure the run's version-0 eval reports. Settings: the demo policy's SFT lr 1e-3, batch
32, 10 warm-up steps, cosine. Held-out evals run every 1% of the steps (as the demo's RL run
evaluates every 10 of 1000 steps) through `train_sft`'s `stop` hook; their seconds are taken off
the training clock. `sft-time` also stops when the clock reaches its budget.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

SFT_LR, SFT_BATCH, SFT_WARMUP = 1e-3, 32, 10
MAX_LEN = 1024  # `dashrl sft --max-len` default


@dataclass
class SftTask:
    """What every SFT run of one seed shares."""

    policy: Path
    tokenizer: Any
    renderer: Any
    examples: list
    held: list
    verify: Callable
    max_new_tokens: int


def load_sft_task(config: str, seed: int, policy: Path) -> SftTask:
    from transformers import AutoTokenizer

    from services.sft.evaluate import reasoning_gym_verifier
    from services.sft.sft import load_rows
    from services.sft.sft_data import encode_row

    tokenizer = AutoTokenizer.from_pretrained(policy)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    args = argparse.Namespace(data=None, config=config, overrides=[f"seed={seed}", f"model.path={policy}"],
                              system_prompt="")
    rows, renderer, cfg, held = load_rows(args, tokenizer)
    held = [p for p in held if len(renderer.prompt_ids(p.question)) <= cfg.sampler.max_prompt_tokens]
    src = cfg.task.source
    return SftTask(policy, tokenizer, renderer, [encode_row(renderer, r, MAX_LEN) for r in rows], held,
                   reasoning_gym_verifier(src.name, dict(src.params)), cfg.sampler.max_new_tokens)


def fresh_model(task: SftTask):
    import torch
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(task.policy, dtype=torch.float32)


def held_out_accuracy(model, task: SftTask) -> float:
    from services.sft.evaluate import accuracy

    return accuracy(model, task.renderer, task.held, task.verify, task.max_new_tokens)


def settings(steps: int, seed: int):
    from services.sft.sft import SftSettings

    return SftSettings(lr=SFT_LR, batch_size=SFT_BATCH, max_steps=steps, warmup_steps=SFT_WARMUP,
                       schedule="cosine", seed=seed, log_every=max(1, steps // 10))


def sft_probe(task: SftTask, seed: int, steps: int) -> dict:
    """Seconds per step of a short SFT run (a probe row, not a seed): the median time between
    steps, since the first steps of a process are several times slower than the rest."""
    import statistics

    from services.sft.sft import train_sft

    model, marks = fresh_model(task), [time.monotonic()]

    def mark(done: int) -> bool:
        marks.append(time.monotonic())
        return False

    losses = train_sft(model, task.tokenizer, task.examples, settings(steps, seed), log=lambda m: None,
                       stop=mark, check_every=1)
    per = statistics.median(b - a for a, b in zip(marks, marks[1:]))
    return {"entry": "sft-time", "seed": seed, "kind": "probe", "steps_done": len(losses),
            "training_s": time.monotonic() - marks[0], "s_per_step": per}


def sft_run(entry: str, task: SftTask, seed: int, steps: int, clock_budget: float | None, folder: Path) -> dict:
    """`steps` SFT steps (fewer when `clock_budget` training seconds run out), evaluated as it goes."""
    from services.sft.sft import save_model, train_sft

    folder.mkdir(parents=True, exist_ok=True)
    model = fresh_model(task)
    model.eval()
    curve = [(0.0, held_out_accuracy(model, task))]  # the run's version-0 eval
    t_start, eval_s, stopped = time.monotonic(), 0.0, False

    def clock() -> float:
        return time.monotonic() - t_start - eval_s

    def stop(done: int) -> bool:
        nonlocal eval_s, stopped
        t, began = clock(), time.monotonic()
        curve.append((t, held_out_accuracy(model, task)))
        eval_s += time.monotonic() - began
        stopped = clock_budget is not None and t >= clock_budget
        return stopped

    with open(folder / "sft.log", "w") as log:
        losses = train_sft(model, task.tokenizer, task.examples, settings(steps, seed),
                           log=lambda m: print(m, file=log, flush=True), stop=stop,
                           check_every=max(1, round(steps / 100)))
    training_s = clock()
    if not stopped:  # a stop on the clock evaluated the last policy already
        curve.append((training_s, held_out_accuracy(model, task)))
    save_model(model, task.tokenizer, folder / "final")
    return {"entry": entry, "seed": seed, "max_steps": steps, "steps_done": len(losses),
            "samples": len(losses) * SFT_BATCH, "training_s": training_s, "curve": curve,
            "start_accuracy": curve[0][1], "final_accuracy": curve[-1][1], "stopped_on_clock": stopped,
            "loss_first": losses[0], "loss_last": losses[-1], "sft_rows": len(task.examples),
            "held_out": len(task.held), "folder": str(folder)}
