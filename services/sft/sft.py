"""`dashrl sft`: supervised fine-tuning, the paper's SFT baseline, on any HF causal-LM folder.

Owns the SFT loop: shuffle rows each epoch, cross-entropy on completion tokens only, AdamW with
linear warm-up then cosine (or constant) decay, gradient clipping, progress lines, and saving
the result as an HF folder (weights + tokenizer + generation config) that the sampler and the
learner load like any other model. Row format and the loss mask are `services.sft.sft_data`;
prompts are rendered by `shared.tasks.PromptRenderer`, as the sampler renders them.

Rows come from `--data FILE` (all of its rows; `--system-prompt` as a run's `task.system_prompt`)
or from a run config, `--config RUN.yaml`: the training split of the run's task (`load_task`, the
sampler's split), its system prompt, and targets in the form its verifier reads
(`reference_completion`). The held-out split is then never trained on, and for reasoning-gym tasks
the greedy held-out accuracy printed at the end is what the run's version-0 eval will report.
"""

from __future__ import annotations

import argparse
import math
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Literal

from services.sft.sft_data import SftExample, collate, encode_row, read_rows
from shared import lr_schedule


@dataclass(frozen=True)
class SftSettings:
    lr: float = 1e-3
    batch_size: int = 32
    epochs: float = 1.0
    """Passes over the data (fractional allowed); `max_steps` wins when set."""
    max_steps: int | None = None
    warmup_steps: int = 10
    schedule: Literal["cosine", "constant"] = "cosine"
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    seed: int = 0
    log_every: int = 20


def lr_at(step: int, total: int, s: SftSettings) -> float:
    """Linear warm-up over `warmup_steps` (at `lr` on the last), then cosine to 10% of `lr` at
    `total` (or constant)."""
    return lr_schedule.lr_at(step, schedule=s.schedule, warmup=s.warmup_steps, total=total, peak=s.lr,
                             floor=0.1, peak_on_last_warmup=True)


def total_steps(n_examples: int, s: SftSettings) -> int:
    if s.max_steps is not None:
        return s.max_steps
    return max(1, math.ceil(n_examples * s.epochs / s.batch_size))


def batches(examples: list[SftExample], batch_size: int, steps: int, seed: int):
    """`steps` batches drawn epoch by epoch, each epoch a fresh shuffle."""
    rng, order, pos = random.Random(seed), [], 0
    for _ in range(steps):
        batch = []
        while len(batch) < batch_size:
            if pos >= len(order):
                order, pos = list(range(len(examples))), 0
                rng.shuffle(order)
            batch.append(examples[order[pos]])
            pos += 1
        yield batch


def train_sft(model, tokenizer, examples: list[SftExample], s: SftSettings,
              log: Callable[[str], None] = print,
              stop: Callable[[int], bool] | None = None, check_every: int = 50) -> list[float]:
    """Train `model` in place; returns the loss of every step. `stop(steps_done)`, when given, is
    asked every `check_every` steps (the model in eval mode meanwhile) and ends training early
    when it says so; the lr schedule still runs over `max_steps`."""
    import torch

    torch.manual_seed(s.seed)
    device = next(model.parameters()).device
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=s.lr, weight_decay=s.weight_decay)
    steps, losses, t0, tokens = total_steps(len(examples), s), [], time.monotonic(), 0
    for step, batch in enumerate(batches(examples, s.batch_size, steps, s.seed)):
        for group in opt.param_groups:
            group["lr"] = lr_at(step, steps, s)
        ids, mask, labels = (t.to(device) for t in collate(batch, tokenizer.pad_token_id))  # (B, T) each
        out = model(input_ids=ids, attention_mask=mask, labels=labels)
        opt.zero_grad(set_to_none=True)
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), s.max_grad_norm)
        opt.step()
        losses.append(float(out.loss.detach()))
        tokens += int(mask.sum())
        if (step + 1) % s.log_every == 0 or step + 1 == steps:
            dt = time.monotonic() - t0
            log(f"sft step {step + 1}/{steps} loss {losses[-1]:.4f} lr {lr_at(step, steps, s):.2e} "
                f"{tokens / dt:.0f} tok/s {dt:.1f}s")
        if stop is not None and (step + 1) % check_every == 0 and step + 1 < steps:
            model.eval()
            if stop(step + 1):
                break
            model.train()
    model.eval()
    return losses


def save_model(model, tokenizer, out: str | Path) -> Path:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help="HF model folder to start from")
    p.add_argument("--data", default=None, help="JSONL rows: {prompt, completion} or {prompt, answer}")
    p.add_argument("--config", default=None,
                   help="run config instead of --data: SFT on its task's training split, rendered as the run renders")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a --config field (repeatable)")
    p.add_argument("--system-prompt", default="", help="with --data: the system prompt (default: none)")
    p.add_argument("--out", required=True, help="folder to save the fine-tuned model into")
    p.add_argument("--epochs", type=float, default=1.0)
    p.add_argument("--max-steps", type=int, default=None, help="stop after this many steps (wins over --epochs)")
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--warmup-steps", type=int, default=10)
    p.add_argument("--max-len", type=int, default=1024, help="tokens per row (completion truncated)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto", help="auto: CUDA when present")
    p.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32")


def load_rows(args: argparse.Namespace, tokenizer):
    """(rows, renderer, run config or None, held-out problems) for `--data` or `--config`."""
    from shared.configio import ConfigError, load_config
    from shared.tasks import PromptRenderer, load_task, reference_completion

    if (args.data is None) == (args.config is None):
        raise ConfigError("give --data FILE or --config RUN.yaml (one of them)")
    if args.data is not None:
        if args.overrides:
            raise ConfigError("--set needs --config")
        return read_rows(args.data), PromptRenderer(tokenizer, args.system_prompt), None, []
    if args.system_prompt:
        raise ConfigError("with --config the system prompt is the config's task.system_prompt")
    cfg = load_config(args.config, args.overrides)
    task = load_task(cfg.task, cfg.data_seed)
    rows = [{"prompt": p.question, "completion": reference_completion(p, cfg.task.source)} for p in task.train]
    return rows, PromptRenderer(tokenizer, task.system_prompt), cfg, task.eval


def report_held_out(model, renderer, cfg, held: list) -> None:
    """Greedy accuracy on the run's held-out split, where SFT can run the run's verifier."""
    from services.sft.evaluate import accuracy, reasoning_gym_verifier
    from shared.config import ReasoningGymTask

    src = cfg.task.source
    if not isinstance(src, ReasoningGymTask) or cfg.task.reward:
        print(f"sft: held-out accuracy not computed here ({len(held)} problems): the task's verifier runs in "
              "the sampler; the run's version-0 eval reports it", file=sys.stderr)
        return
    # The sampler's eval skips prompts over max_prompt_tokens; so does this one.
    held = [p for p in held if len(renderer.prompt_ids(p.question)) <= cfg.sampler.max_prompt_tokens]
    acc = accuracy(model, renderer, held, reasoning_gym_verifier(src.name, dict(src.params)),
                   cfg.sampler.max_new_tokens)
    print(f"sft: held-out greedy accuracy {acc:.3f} over {len(held)} problems", flush=True)


def main(args: argparse.Namespace) -> int:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(args.model)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    try:
        rows, renderer, cfg, held = load_rows(args, tokenizer)
        examples = [encode_row(renderer, r, args.max_len) for r in rows]
    except (OSError, ValueError) as err:
        print(f"dashrl sft: {err}", file=sys.stderr)
        return 2
    device = "cuda" if args.device == "auto" and torch.cuda.is_available() else args.device.replace("auto", "cpu")
    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=getattr(torch, args.dtype)).to(device)
    settings = SftSettings(lr=args.lr, batch_size=args.batch_size, epochs=args.epochs,
                           max_steps=args.max_steps, warmup_steps=args.warmup_steps, seed=args.seed)
    print(f"sft: {len(examples)} rows from {args.data or args.config}, "
          f"{total_steps(len(examples), settings)} steps on {device}", flush=True)
    losses = train_sft(model, tokenizer, examples, settings, log=lambda m: print(m, flush=True))
    save_model(model, tokenizer, args.out)
    print(f"sft: loss {losses[0]:.4f} -> {losses[-1]:.4f}; saved {args.out}", file=sys.stderr)
    if held:
        report_held_out(model, renderer, cfg, held)
    return 0
