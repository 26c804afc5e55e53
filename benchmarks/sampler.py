"""Sampler throughput, in one run, on one backend:

1. overhead: the sampler loop (generate -> decode -> score in the reward pool -> advantages,
   filtering -> push to Redis) in completion tokens/s, against the backend's raw `generate` on
   the same prompts, batch and settings (target: sampler >= 95% of raw);
2. preemptive sampling: one large call of M prompts x G against one small call per learner
   micro-step (micro_batch_size completions, i.e. micro_batch_size / G prompts), same prompts.

A random tiny Llama (built here; no downloads) and a private redis-server. The reward is a
partial-credit function from tests/helpers (a random model solves nothing, and an all-zero
batch would be filtered away and never exercise the push). Rounds alternate raw and sampler
runs; the medians are reported, because the 2 cores are shared with other work.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/sampler.py --backend vllm
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("VLLM_CPU_NUM_OF_RESERVED_CPU", "0")


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--backend", choices=["vllm", "transformers"], default="vllm")
    p.add_argument("--prompts", type=int, default=64, help="M: prompts per preemptive call")
    p.add_argument("--group", type=int, default=4, help="G: completions per prompt")
    p.add_argument("--micro-batch", type=int, default=8, help="learner micro-batch (completions) for the baseline")
    p.add_argument("--new-tokens", type=int, default=32)
    p.add_argument("--calls", type=int, default=3, help="generation calls per measured run")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--layers", type=int, default=4)
    return p.parse_args()


def config(args, model_dir: Path, out: Path):
    from shared.configio import load_config

    return load_config(None, [
        "run_id=bench", f"output_dir={out}", f"model.path={model_dir}", "model.dtype=float32",
        f"sampler.backend={args.backend}", f"sampler.sampling_batch_prompts={args.prompts}",
        f"sampler.group_size={args.group}", f"sampler.max_new_tokens={args.new_tokens}",
        "sampler.max_prompt_tokens=160", "sampler.eval_every=0", "sampler.top_k=50", "sampler.temperature=0.9",
        f"learner.micro_batch_size={args.micro_batch}", "streams.max_backlog=100000",
        "task.source.kind=reasoning_gym", "task.source.name=chain_sum", "task.source.size=5000", "task.eval_size=0", "task.system_prompt=''",
        "task.reward=tests.helpers.sampler_rewards:digit_fraction", "task.reward_allowlist=[tests.helpers.]",
    ])


def raw_rate(backend, renderer, task, cfg, calls: int, prompts_per_call: int, seed0: int) -> float:
    """Completion tokens/s of the backend's own generate on the sampler's prompts (same order)."""
    from services.sampler.loop import SamplerLoop
    from services.sampler.tasks import PromptOrder

    order = PromptOrder(len(task.train), cfg.seed)
    settings = SamplerLoop.sampling_settings(cfg)
    tokens, seconds = 0, 0.0
    for call in range(calls):
        prompts = [renderer.ids(task.train[i]) for i in order.take(prompts_per_call)]
        start = time.perf_counter()
        out = backend.generate(prompts, settings.__class__(**{**settings.__dict__, "seed": seed0 + call}))
        seconds += time.perf_counter() - start
        tokens += sum(len(c.token_ids) for g in out for c in g)
    return tokens / seconds


def sampler_rate(r, cfg, backend, workdir: Path, calls: int) -> float:
    """Completion tokens/s of the whole sampler loop, until its last batch is in Redis."""
    from services.sampler.main import build
    from shared.metrics import sampler_metrics

    r.flushall()
    metrics, reg = sampler_metrics()
    loop, _ = build(cfg, r, cfg.run_id, metrics, workdir / f"local-{time.time_ns()}", backend=backend)
    try:
        # Warm-up call through the whole path (reward workers up, renderer cache), not measured.
        loop.finisher.submit(loop.score_async(loop.generate()))
        loop.finisher.flush()
        loop.calls = 0
        start = time.perf_counter()
        before = reg.get_sample_value("dashrl_sampler_tokens_total")
        loop.run(lambda: False, max_calls=calls)
        loop.finisher.flush()
        elapsed = time.perf_counter() - start
        assert r.xlen("dashrl:bench:rollouts") == calls + 1, "every call must land as a batch"
        return (reg.get_sample_value("dashrl_sampler_tokens_total") - before) / elapsed
    finally:
        loop.finisher.close()
        loop.pool.close()


def main() -> None:
    args = parse_args()
    from transformers import AutoTokenizer

    from services.sampler.backends import make_backend
    from services.sampler.tasks import PromptRenderer, load_task
    from shared.embedded_redis import EmbeddedRedis
    from shared.streams import connect
    from tests.helpers.tiny_model import build_tiny_model

    work = Path(tempfile.mkdtemp(prefix="dashrl-bench-sampler-"))
    model_dir = build_tiny_model(work / "model", hidden_size=args.hidden, num_layers=args.layers,
                                 num_heads=args.hidden // 32, head_dim=32)
    cfg = config(args, model_dir, work / "runs")
    redis_server = EmbeddedRedis(work / "redis").start()
    r = connect(redis_server.url)
    load_before = os.getloadavg()
    backend = make_backend(cfg)
    task = load_task(cfg.task, cfg.seed)
    renderer = PromptRenderer(AutoTokenizer.from_pretrained(str(model_dir)), task.system_prompt)
    small = max(1, args.micro_batch // args.group)
    res: dict[str, list[float]] = {"raw": [], "sampler": [], "preemptive": [], "small": []}
    try:
        raw_rate(backend, renderer, task, cfg, 1, args.prompts, 999)  # warm-up
        for rnd in range(args.rounds):
            res["raw"].append(raw_rate(backend, renderer, task, cfg, args.calls, args.prompts, rnd * 100))
            res["sampler"].append(sampler_rate(r, cfg, backend, work, args.calls))
            res["preemptive"].append(raw_rate(backend, renderer, task, cfg, 1, args.prompts, rnd * 100 + 50))
            res["small"].append(raw_rate(backend, renderer, task, cfg, args.prompts // small, small, rnd * 100 + 60))
            print(json.dumps({"round": rnd, **{k: round(v[-1]) for k, v in res.items()}}), flush=True)
    finally:
        backend.close()
        redis_server.stop()
    med = {k: statistics.median(v) for k, v in res.items()}
    print(json.dumps({
        "backend": args.backend, "model": f"Llama hidden {args.hidden}, {args.layers} layers, float32",
        "M": args.prompts, "G": args.group, "new_tokens": args.new_tokens, "calls": args.calls,
        "rounds": args.rounds, "median_tokens_per_s": {k: round(v) for k, v in med.items()},
        "sampler_over_raw": round(med["sampler"] / med["raw"], 3),
        "preemptive_over_small": round(med["preemptive"] / med["small"], 2),
        "small_batch_prompts": small, "per_round": {k: [round(x) for x in v] for k, v in res.items()},
        "loadavg_before": load_before, "loadavg_after": os.getloadavg(),
    }))


if __name__ == "__main__":
    main()
