"""Learner throughput against a bare torch loop, same model and micro-batches, in one run.

- bare: forward -> masked token cross-entropy -> backward over the step's micro-batches,
  then AdamW.step(); nothing else.
- learner: the real learner loop in this process (services.learner: Redis stream read and
  decode, ledger, token-budget packing, collate, the clipped policy loss, gradient clipping,
  AdamW + schedule, metrics.jsonl, weight publishing and checkpoints at the configured rates)
  on rollouts pre-written to a private redis-server. Throughput is measured from the step
  lines' wall-clock timestamps, so everything between two steps counts.

Synthetic rollouts (random tokens, fixed prompt and completion lengths, so both loops see
exactly the same micro-batch shapes); a random Llama built here. Rounds alternate the loops
and the medians are reported, because the 2 cores are shared with other work.

    OMP_NUM_THREADS=1 .venv/bin/python -m benchmarks.learner --write-doc

Its companion `benchmarks/learner_mfu.py` measures the learner on SmolLM2-135M's shapes as a
fraction of this CPU's fp32 matmul ceiling, padded vs packed micro-batches (`learner.packing`).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks import ROOT
from services.learner.microbatches import TrainSample, collate
from services.learner.steplog import read_steps
from shared.protocol import RolloutBatch, Sample


def synthetic(n: int, prompt: int, completion: int, vocab: int, seed: int) -> list[TrainSample]:
    rng = np.random.default_rng(seed)
    return [TrainSample("b", rng.integers(4, vocab, prompt).astype(np.int32),
                        rng.integers(4, vocab, completion).astype(np.int32),
                        np.full(completion, -2.0, np.float32), 1.0 if i % 2 else -1.0) for i in range(n)]


def rates(marks: list[tuple[float, float, int]]) -> dict[str, float]:
    """From (wall, cpu, tokens) at the end of each step: tokens/s of steps 2.. by wall clock and
    by this process's CPU time (robust when other work shares the cores)."""
    tokens = sum(t for _, _, t in marks[1:])
    return {"tokens_per_s": tokens / (marks[-1][0] - marks[0][0]),
            "tokens_per_cpu_s": tokens / (marks[-1][1] - marks[0][1])}


def bare_loop(model_dir: Path, samples: list[TrainSample], micro: int, steps: int, lr: float) -> dict[str, float]:
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_dir).train()
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    mbs = [collate(samples[i : i + micro]) for i in range(0, len(samples), micro)]
    tokens = sum(mb.num_tokens for mb in mbs)
    marks = []
    for _ in range(steps):
        opt.zero_grad(set_to_none=True)
        for mb in mbs:
            logits = model(input_ids=mb.input_ids, attention_mask=mb.attention_mask).logits[:, :-1]
            nll = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), mb.targets.reshape(-1),
                                                    reduction="none").view_as(mb.loss_mask)
            ((nll * mb.loss_mask).sum() / mb.loss_mask.sum() / len(mbs)).backward()
        opt.step()
        marks.append((time.perf_counter(), time.process_time(), tokens))
    return rates(marks)


def learner_loop(model_dir: Path, out: Path, redis_url: str, samples: list[TrainSample], args,
                 publish_every: int, tag: str) -> dict[str, float]:
    from services.learner.main import build_learner
    from shared.config import Deployment, RunConfig
    from shared.keys import RunKeys
    from shared.protocol import encode
    from shared.streams import StreamWriter, connect

    run_id = f"bench-{tag}-{time.time_ns()}"
    cfg = RunConfig.model_validate({
        "run_id": run_id, "output_dir": str(out), "model": {"path": str(model_dir)}, "seed": 0,
        "sampler": {"sampling_batch_prompts": args.batch, "group_size": 4, "max_new_tokens": args.completion},
        "learner": {"train_batch_size": args.batch, "micro_batch_size": args.micro,
                    "micro_batch_tokens": args.micro * (args.prompt + args.completion), "lr": 1e-5,
                    "max_steps": args.steps, "publish_every": publish_every, "checkpoint_every": 100,
                    "max_staleness": 1000},
    })
    r, keys = connect(redis_url), RunKeys(run_id)
    writer = StreamWriter(r, keys.rollouts, backlog_key=keys.backlog, max_backlog=cfg.streams.max_backlog)
    rows = [Sample(s.prompt_ids, s.completion_ids, s.logprobs, 0.0, s.advantage, i // 4) for i, s in enumerate(samples)]
    for step in range(args.steps):
        writer.write(encode(RolloutBatch.from_samples(rows, run_id=run_id, batch_id=f"b{step}", sampler_id="bench",
                                                      policy_version=0, created_at=time.time())))
    learner, _ = build_learner(cfg, Deployment(redis_url=redis_url), out / run_id, resume=False)
    marks, write = [], learner.steplog.write

    def timed_write(rec):  # benchmark instrumentation: wall and CPU clock at each step line
        write(rec)
        marks.append((time.perf_counter(), time.process_time(), rec["tokens_processed"]))

    learner.steplog.write = timed_write
    learner.run()
    recs = read_steps(out / run_id / "metrics.jsonl")[1:]  # step 1 warms up
    out_rates = rates(marks)
    train = sum(r["seconds"]["forward_backward"] + r["seconds"]["optimizer"] for r in recs)
    return {**out_rates, "train_share": train / (marks[-1][0] - marks[0][0]),
            "publish_s": statistics.mean(r["seconds"]["publish"] for r in recs)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--prompt", type=int, default=32)
    p.add_argument("--completion", type=int, default=96)
    p.add_argument("--micro", type=int, default=8, help="samples per micro-batch")
    p.add_argument("--batch", type=int, default=32, help="samples per optimizer step")
    p.add_argument("--steps", type=int, default=6)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--write-doc", action="store_true", help="write the result into docs/benchmarks.md")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    from shared.embedded_redis import EmbeddedRedis
    from tests.helpers.tiny_model import build_tiny_model

    with tempfile.TemporaryDirectory() as tmp, EmbeddedRedis(Path(tmp) / "redis") as redis_srv:
        tmp = Path(tmp)
        model_dir = build_tiny_model(tmp / "model", hidden_size=args.hidden, num_layers=args.layers,
                                     num_heads=args.hidden // 64, head_dim=64)
        samples = synthetic(args.batch, args.prompt, args.completion, 100, seed=0)
        results: dict[str, list] = {"bare": [], "learner": [], "learner_publish_every_step": []}
        runs = {
            "bare": lambda: bare_loop(model_dir, samples, args.micro, args.steps, 1e-5),
            "learner": lambda: learner_loop(model_dir, tmp / "runs", redis_srv.url, samples, args, 100, "t"),
            "learner_publish_every_step": lambda: learner_loop(model_dir, tmp / "runs", redis_srv.url, samples,
                                                               args, 1, "p"),
        }
        for rnd in range(args.rounds):
            order = list(runs) if rnd % 2 == 0 else list(reversed(runs))  # no loop always goes first
            for key in order:
                results[key].append(runs[key]())
            print(f"round {rnd + 1}: " + ", ".join(
                f"{k} {v[-1]['tokens_per_s']:.0f} tok/s ({v[-1]['tokens_per_cpu_s']:.0f} per CPU-s)"
                for k, v in results.items()), flush=True)
        summary = summarize(results, args, model_dir)
    print(json.dumps(summary, indent=1))
    if args.write_doc:
        write_doc(summary)


def summarize(results: dict[str, list], args, model_dir: Path) -> dict:
    from transformers import AutoConfig

    cfg = AutoConfig.from_pretrained(model_dir)
    med = {k: {m: statistics.median(r[m] for r in v) for m in ("tokens_per_s", "tokens_per_cpu_s")}
           for k, v in results.items()}
    out = {"rounds": args.rounds, "threads": args.threads, "steps": args.steps,
           "model": f"Llama hidden {cfg.hidden_size}, {cfg.num_hidden_layers} layers, vocab {cfg.vocab_size}",
           "micro_batch": f"{args.micro} x {args.prompt + args.completion} tokens",
           "step": f"{args.batch} samples ({args.batch // args.micro} micro-batches)", "bare": med["bare"]}
    for key in ("learner", "learner_publish_every_step"):
        out[key] = {**med[key], "ratio_wall": med[key]["tokens_per_s"] / med["bare"]["tokens_per_s"],
                    "ratio_cpu": med[key]["tokens_per_cpu_s"] / med["bare"]["tokens_per_cpu_s"],
                    "train_share_of_wall": statistics.median(r["train_share"] for r in results[key]),
                    "publish_s_per_step": statistics.median(r["publish_s"] for r in results[key])}
    out["all_rounds_tokens_per_cpu_s"] = {k: [round(r["tokens_per_cpu_s"]) for r in v] for k, v in results.items()}
    out["all_rounds_tokens_per_s"] = {k: [round(r["tokens_per_s"]) for r in v] for k, v in results.items()}
    return out


def write_doc(s: dict) -> None:
    doc = ROOT / "docs" / "benchmarks.md"
    lr, lp, b = s["learner"], s["learner_publish_every_step"], s["bare"]
    section = f"""## Learner

`benchmarks/learner.py` ({time.strftime('%Y-%m-%d')}, {platform.machine()} CPU, {s['threads']} torch thread(s); the
2 cores were shared with other work, so the primary number is tokens per CPU-second of the
benchmark process; wall-clock rates are given too. Medians of {s['rounds']} rounds of {s['steps']} steps in
alternating order, step 1 excluded.) Model: random {s['model']}; micro-batch
{s['micro_batch']}; step {s['step']}.

| loop | tokens / CPU-s | vs bare | tokens / s (wall) | vs bare |
|---|---|---|---|---|
| bare torch: forward + backward + AdamW | {b['tokens_per_cpu_s']:.0f} | 100% | {b['tokens_per_s']:.0f} | 100% |
| learner (publish + checkpoint every 100 steps) | {lr['tokens_per_cpu_s']:.0f} | {100 * lr['ratio_cpu']:.1f}% | {lr['tokens_per_s']:.0f} | {100 * lr['ratio_wall']:.1f}% |
| learner, publishing a version every step | {lp['tokens_per_cpu_s']:.0f} | {100 * lp['ratio_cpu']:.1f}% | {lp['tokens_per_s']:.0f} | {100 * lp['ratio_wall']:.1f}% |

The learner's time is everything between two step lines: Redis read and decode, ledger,
packing, collate, the clipped policy loss, grad clipping, AdamW + schedule, metrics (and
publishing); forward/backward + optimizer were {100 * lr['train_share_of_wall']:.1f}% of its wall time. Wall-clock
ratios swing by tens of percent either way with the other work on the cores (above 100% is noise). One
publish (fs store: safetensors + manifest + fsync + rename) took {lp['publish_s_per_step'] * 1000:.0f} ms.
Every round, tokens per CPU-s: {json.dumps(s['all_rounds_tokens_per_cpu_s'])};
tokens/s: {json.dumps(s['all_rounds_tokens_per_s'])}.

    OMP_NUM_THREADS=1 .venv/bin/python -m benchmarks.learner --write-doc
"""
    text = doc.read_text() if doc.exists() else "# Benchmarks\n\n"
    if "## Learner\n" in text:
        head, rest = text.split("## Learner\n", 1)
        nxt = rest.find("\n## ")
        text = head + section + (rest[nxt + 1 :] if nxt >= 0 else "")
    else:
        text = text.rstrip("\n") + "\n\n" + section
    doc.write_text(text)


if __name__ == "__main__":
    main()
