"""Sampler throughput, in one run, on one backend:

1. overhead: the sampler loop (generate -> decode -> score in the reward pool -> advantages,
   filtering -> push to Redis) in completion tokens/s, against the backend's raw `generate` on
   the same prompts, batch and settings (target: sampler >= 95% of raw);
2. preemptive sampling: one large call of M prompts x G against one small call per learner
   micro-step (micro_batch_size completions, i.e. micro_batch_size / G prompts), same prompts.

A random tiny Llama (built here; no downloads) and a private redis-server. The reward is a
partial-credit function from tests/helpers (a random model solves nothing, and an all-zero
batch would be filtered away and never exercise the push). Rounds alternate raw and sampler
runs; medians are reported, in completion tokens per wall-clock second and per CPU-second of
the whole process tree (this process, vLLM's engine processes, the reward workers), because
the 2 cores are shared with other work and wall-clock rates swing with it.

    OMP_NUM_THREADS=1 .venv/bin/python -m benchmarks.sampler --backend vllm
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

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


def tree_cpu_s() -> float:
    """CPU seconds used so far by this process and its live descendants (engine, reward workers)."""
    import psutil

    me = psutil.Process()
    total = 0.0
    for p in [me, *me.children(recursive=True)]:
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.NoSuchProcess:
            pass
    return total


class Meter:
    """Wall and process-tree CPU time between start() and stop()."""

    def start(self) -> None:
        self.wall, self.cpu = time.perf_counter(), tree_cpu_s()

    def stop(self, tokens: float) -> tuple[float, float]:
        """(tokens per wall second, tokens per CPU second)."""
        return tokens / (time.perf_counter() - self.wall), tokens / max(tree_cpu_s() - self.cpu, 1e-9)


def raw_rate(backend, renderer, task, cfg, calls: int, prompts_per_call: int, seed0: int) -> tuple[float, float]:
    """Completion tokens/s (wall, CPU) of the backend's own generate on the sampler's prompts."""
    from services.sampler.loop import SamplerLoop
    from services.sampler.tasks import PromptOrder

    order = PromptOrder(len(task.train), cfg.seed)
    settings = SamplerLoop.sampling_settings(cfg)
    batches = [[renderer.ids(task.train[i]) for i in order.take(prompts_per_call)] for _ in range(calls)]
    meter, tokens = Meter(), 0
    meter.start()
    for call, prompts in enumerate(batches):
        out = backend.generate(prompts, settings.__class__(**{**settings.__dict__, "seed": seed0 + call}))
        tokens += sum(len(c.token_ids) for g in out for c in g)
    return meter.stop(tokens)


def sampler_rate(r, cfg, backend, workdir: Path, calls: int) -> tuple[float, float]:
    """Completion tokens/s (wall, CPU) of the whole sampler loop, until its last batch is in Redis."""
    from services.sampler.main import build
    from shared.keys import RunKeys
    from shared.metrics import sampler_metrics

    r.flushall()
    metrics, reg = sampler_metrics()
    loop, _ = build(cfg, r, cfg.run_id, metrics, workdir / f"local-{time.time_ns()}", backend=backend)
    try:
        # Warm-up call through the whole path (reward workers up, renderer cache), not measured.
        loop.finisher.submit(loop.score_async(loop.generate()))
        loop.finisher.flush()
        loop.calls = 0
        meter = Meter()
        meter.start()
        before = reg.get_sample_value("dashrl_sampler_tokens_total")
        loop.run(lambda: False, max_calls=calls)
        loop.finisher.flush()
        rates = meter.stop(reg.get_sample_value("dashrl_sampler_tokens_total") - before)
        assert r.xlen(RunKeys(cfg.run_id).rollouts) == calls + 1, "every call must land as a batch"
        return rates
    finally:
        loop.finisher.close()
        loop.pool.close()


def main() -> None:
    args = parse_args()
    from transformers import AutoTokenizer

    from services.sampler.backends import make_backend
    from shared.tasks import PromptRenderer, load_task
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
    task = load_task(cfg.task, cfg.data_seed)
    renderer = PromptRenderer(AutoTokenizer.from_pretrained(str(model_dir)), task.system_prompt)
    small = max(1, args.micro_batch // args.group)
    res: dict[str, list[tuple[float, float]]] = {"raw": [], "sampler": [], "preemptive": [], "small": []}
    try:
        raw_rate(backend, renderer, task, cfg, 1, args.prompts, 999)  # warm-up
        for rnd in range(args.rounds):
            res["raw"].append(raw_rate(backend, renderer, task, cfg, args.calls, args.prompts, rnd * 100))
            res["sampler"].append(sampler_rate(r, cfg, backend, work, args.calls))
            res["preemptive"].append(raw_rate(backend, renderer, task, cfg, 1, args.prompts, rnd * 100 + 50))
            res["small"].append(raw_rate(backend, renderer, task, cfg, args.prompts // small, small, rnd * 100 + 60))
            print(json.dumps({"round": rnd, **{k: [round(x) for x in v[-1]] for k, v in res.items()}}), flush=True)
    finally:
        backend.close()
        redis_server.stop()
    summary(args, res, small, load_before)


def summary(args, res: dict[str, list[tuple[float, float]]], small: int, load_before) -> None:
    wall = {k: statistics.median(x[0] for x in v) for k, v in res.items()}
    cpu = {k: statistics.median(x[1] for x in v) for k, v in res.items()}
    print(json.dumps({
        "backend": args.backend, "model": f"random Llama hidden {args.hidden}, {args.layers} layers, float32",
        "M": args.prompts, "G": args.group, "new_tokens": args.new_tokens, "calls": args.calls,
        "rounds": args.rounds, "small_batch_prompts": small,
        "median_tokens_per_wall_s": {k: round(v) for k, v in wall.items()},
        "median_tokens_per_cpu_s": {k: round(v) for k, v in cpu.items()},
        "sampler_over_raw": {"wall": round(wall["sampler"] / wall["raw"], 3), "cpu": round(cpu["sampler"] / cpu["raw"], 3)},
        "preemptive_over_small": {"wall": round(wall["preemptive"] / wall["small"], 2),
                                  "cpu": round(cpu["preemptive"] / cpu["small"], 2)},
        "per_round_wall_cpu": {k: [[round(a), round(b)] for a, b in v] for k, v in res.items()},
        "loadavg_before": [round(x, 2) for x in load_before], "loadavg_after": [round(x, 2) for x in os.getloadavg()],
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }))


if __name__ == "__main__":
    main()
