"""Calibrate the CPU demo in one process: SFT start, then a DASH loop, held-out accuracy over time.

Not the pipeline (no Redis, no vLLM): HF generate + `shared.algo` advantages and filtering +
plain policy gradient with AdamW, one optimizer step per generation call, so a recipe (task and
difficulty, SFT strength, model size, lr, prompts x G) can be judged in minutes. The SFT start
is built by `services.sft.demo_policy` and cached by its recipe hash.

    OMP_NUM_THREADS=1 .venv/bin/python -m benchmarks.demo.calibration --minutes 5 --lr 1e-4
Each line: elapsed RL seconds (eval excluded), step, greedy held-out accuracy, reward mean,
kept fraction. The summary line is JSON, for docs/notes.md.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

import numpy as np
import torch

from services.sft.demo_policy import DemoRecipe, build_demo_policy, run_task
from services.sft.evaluate import accuracy, left_pad, reasoning_gym_verifier
from shared.algo import group_advantages, keep_mask
from shared.tasks import PromptRenderer


def sample_groups(model, renderer, questions, g, temperature, top_k, max_new):
    """G completions per question: prompt ids (N, P) left-padded, completion ids (N, C), mask (N, C)."""
    tok = renderer.tokenizer
    ids, attn = left_pad([renderer.prompt_ids(q) for q in questions], tok.pad_token_id)
    with torch.no_grad():
        seqs = model.generate(input_ids=ids, attention_mask=attn, do_sample=True, temperature=temperature,
                              top_k=top_k or None, top_p=1.0, max_new_tokens=max_new, num_return_sequences=g,
                              pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)
    p = ids.shape[1]
    comp = seqs[:, p:]  # (N, C)
    # Tokens up to and including the first EOS are the completion; after it, padding.
    is_eos = comp == tok.eos_token_id
    after = (torch.cumsum(is_eos.int(), 1) - is_eos.int()) > 0
    cmask = (~after).int()
    return ids.repeat_interleave(g, 0), attn.repeat_interleave(g, 0), comp, cmask


def policy_gradient_step(model, opt, prompt_ids, prompt_mask, comp, cmask, adv, max_grad_norm=1.0):
    """Plain PG (ratio 1), DASH aggregation: sum of token losses / (sequences x max completion len)."""
    ids = torch.cat([prompt_ids, comp], 1)  # (N, P + C)
    mask = torch.cat([prompt_mask, cmask], 1)
    logits = model(input_ids=ids, attention_mask=mask).logits[:, prompt_ids.shape[1] - 1 : -1]  # (N, C, V)
    logp = torch.log_softmax(logits.float(), -1).gather(-1, comp.unsqueeze(-1)).squeeze(-1)  # (N, C)
    loss = -(logp * cmask * adv.unsqueeze(1)).sum() / (comp.shape[0] * comp.shape[1])
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
    opt.step()
    return float(loss.detach())


def run(args) -> dict:
    recipe = DemoRecipe(**json.loads(args.recipe)) if args.recipe else DemoRecipe()
    path = build_demo_policy(Path(args.data_dir), recipe=recipe, log=print)
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(path)
    renderer = PromptRenderer(tok, "")
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    # The run's prompts and held-out split exactly as the sampler makes them (the recipe's run seed,
    # size and eval_size; training problems whose question is held out are dropped, as in SFT).
    task = run_task(recipe)
    train, held = task.train, task.eval
    verify = reasoning_gym_verifier(recipe.task, dict(recipe.params))
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, betas=(0.9, 0.999), weight_decay=0.0)
    rng = random.Random(args.seed)
    torch.manual_seed(args.seed)
    start = accuracy(model, renderer, held, verify)
    curve = [(0.0, 0, start)]
    print(f"t=0s step 0 acc {start:.3f}", flush=True)
    rl_s, step, opt_steps, next_eval = 0.0, 0, 0, args.eval_every_s
    while rl_s < args.minutes * 60:
        t0 = time.monotonic()
        for gi, group in enumerate(opt.param_groups):
            group["lr"] = args.lr * min(1.0, (opt_steps + 1) / max(1, args.warmup))
        entries = [train[rng.randrange(len(train))] for _ in range(args.prompts)]
        model.eval()
        pids, pmask, comp, cmask = sample_groups(model, renderer, [p.question for p in entries], args.g,
                                                 args.temperature, args.top_k, args.max_new)
        texts = tok.batch_decode(comp, skip_special_tokens=True)
        scores = np.array([verify(t, entries[i // args.g]) for i, t in enumerate(texts)])
        rewards = (scores == 1.0).astype(np.float64) if args.reward == "exact" else scores
        gids = np.repeat(np.arange(args.prompts), args.g)
        adv = group_advantages(rewards, gids, "grpo", 1e-4)
        keep = keep_mask(adv, args.filter)
        model.train()
        kept = np.flatnonzero(keep)
        chunk = args.train_batch or max(1, len(kept))
        for i in range(0, len(kept), chunk):  # the learner's steps: train_batch kept samples each
            k = torch.from_numpy(kept[i : i + chunk])
            policy_gradient_step(model, opt, pids[k], pmask[k], comp[k], cmask[k], torch.from_numpy(adv[kept[i : i + chunk]]))
            opt_steps += 1
        step += 1
        rl_s += time.monotonic() - t0
        if rl_s >= next_eval or rl_s >= args.minutes * 60:
            next_eval += args.eval_every_s
            acc = accuracy(model, renderer, held, verify)
            curve.append((round(rl_s, 1), step, acc))
            print(f"t={rl_s:.0f}s step {step} acc {acc:.3f} reward {rewards.mean():.3f} "
                  f"kept {keep.mean():.2f} opt_steps {opt_steps}", flush=True)
    best = max(a for _, _, a in curve)
    summary = dict(recipe=recipe.__dict__, lr=args.lr, warmup=args.warmup, prompts=args.prompts, g=args.g,
                   temperature=args.temperature, reward=args.reward, start=start, final=curve[-1][2], best=best,
                   gain=curve[-1][2] - start, steps=step, opt_steps=opt_steps, train_batch=args.train_batch, curve=curve)
    print("SUMMARY " + json.dumps(summary), flush=True)
    return summary


def parse(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", default="/tmp/dashrl-calibration")
    p.add_argument("--recipe", default=None, help="JSON of DemoRecipe fields overriding the default")
    p.add_argument("--minutes", type=float, default=5.0)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--prompts", type=int, default=32)
    p.add_argument("--g", type=int, default=8)
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--top-k", type=int, default=0)
    p.add_argument("--max-new", type=int, default=6)
    p.add_argument("--filter", type=float, default=0.1)
    p.add_argument("--reward", choices=["exact", "rg"], default="rg",
                   help="rg: the task's scorer (partial credit), as the sampler; exact: 1 iff fully right")
    p.add_argument("--train-batch", type=int, default=0, help="kept samples per optimizer step (0: all of a call)")
    p.add_argument("--eval-every-s", type=float, default=30)
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args(argv)


if __name__ == "__main__":
    run(parse())
