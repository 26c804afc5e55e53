"""`dashrl config CONFIG [--set k=v]`: validate a run config and print it fully resolved.

`--estimate`: instead, print the memory its learner (one rank) and each sampler need, part by
part (`shared.sizing`; model shapes from `model.path`'s config.json or a named preset).
"""

from __future__ import annotations

import argparse

from shared.configio import ConfigError, dump_config, load_config

GPU_SIZES_GB = (24, 40, 48, 80, 141)
"""GPU memory sizes (GB as sold) the estimate says fit or not: L4/4090, A100-40, L40S/A6000, A100/H100-80, H200."""


def add_arguments(p: argparse.ArgumentParser) -> None:
    from shared.configio import add_config_args

    add_config_args(p)
    est = p.add_argument_group("--estimate: memory of the run's learner and sampler (shared/sizing.py)")
    est.add_argument("--estimate", action="store_true", help="print the memory estimate instead of the config")
    est.add_argument("--model-shape", metavar="PATH_OR_PRESET",
                     help="model folder or preset (qwen2.5-0.5b, qwen2.5-1.5b, qwen2.5-7b, smollm2-135m); "
                          "default: model.path")
    est.add_argument("--world-size", type=int, default=None, help="learner ranks (default: learner.num_gpus)")
    est.add_argument("--sharding", choices=["ddp", "fsdp"], default=None,
                     help="learner parallelism (default: learner.parallel, else ddp)")
    est.add_argument("--lora-rank", type=int, default=None, help="LoRA rank (0: full fine-tuning; default: model.lora)")
    est.add_argument("--cpu", action="store_true", help="estimate for CPU (fp32 defaults, no CUDA context, no vLLM fraction)")


def main(args: argparse.Namespace) -> int:
    cfg = load_config(args.config, args.overrides)
    if not getattr(args, "estimate", False):
        print(dump_config(cfg), end="")
        return 0
    from shared.model_shapes import model_shape
    from shared.sizing import estimate_run

    try:
        shape, source = model_shape(args.model_shape or cfg.model.path)
        run = estimate_run(cfg, shape, source, cuda=not args.cpu, world_size=args.world_size,
                           sharding=args.sharding, lora_rank=args.lora_rank)
    except ValueError as err:
        raise ConfigError(str(err)) from None
    print(render(run), end="")
    return 0


def _gib(n: float) -> str:
    return f"{n / 1024**3:.2f}"


def _fits(gib: float) -> str:
    fit = [f"{g} GB" for g in GPU_SIZES_GB if g * 1e9 / 1024**3 >= gib]
    return f"fits: {', '.join(fit)}" if fit else f"fits none of {', '.join(f'{g} GB' for g in GPU_SIZES_GB)}"


def render(run) -> str:
    """The estimate as a plain-text table: one block per service, a part per line, the peak."""
    lines = [f"model shape: {run.shape_source}"]
    for est in (run.learner, run.sampler):
        lines += ["", f"{est.role:<40} {'GiB':>8}  {'when':<8}  what it counts", "-" * 100]
        for p in est.parts:
            lines.append(f"{p.name:<40} {_gib(p.bytes):>8}  {p.phase:<8}  {p.note}")
        peak = est.total
        how = "always + max(backward, step)" if est.role == "learner" else "sum"
        lines.append(f"{'peak (' + how + ')':<40} {_gib(peak):>8}")
        util = run.gpu_memory_utilization if est.role == "sampler" else None
        need = peak / (util or 1.0) / 1024**3
        if run.cuda:
            label = f"GPU needed (/ vLLM fraction {util:g})" if util else "GPU needed"
            lines.append(f"{label:<40} {need:>8.2f}  {_fits(need)}")
        lines += [f"  note: {n}" for n in est.notes]
    return "\n".join(lines) + "\n"
