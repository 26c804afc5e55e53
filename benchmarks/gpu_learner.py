"""Learner tokens/s, MFU and peak memory on a GPU, for random Qwen2.5-0.5B- and 1.5B-shaped models.

The learner's compute path as services/learner/trainer.py runs it, assembled from its
pydantic-free parts (the GPU image has torch/transformers/peft/safetensors/msgpack only):
token-budget micro-batches (`microbatches.pack_micro_batches`) or prompt sharing
(`prompt_sharing.pack_shared`), the decoder under bfloat16 autocast with float32 master weights,
completion-only chunked log-probs (`scoring.completion_logprobs`), the clipped policy loss,
backward, gradient clipping and AdamW. Variants per model: padded rows, prompt sharing, sequence
packing (`services.learner.packing`), and FSDP2
(`torch.distributed.fsdp.fully_shard` per decoder layer, bf16 params / fp32 reduce) on a
one-rank process group. Synthetic rollouts: M prompts x G completions of random tokens,
completion lengths drawn uniformly in [C/4, C]. Each variant: `--warmup` steps, then `--steps`
timed ones (CUDA synchronised). MFU = model FLOPs / time / peak (989 TFLOP/s dense bf16 for
H100/H200 SXM, `--peak-tflops`); model FLOPs per step = 6 x decoder Linear params x tokens +
6 x layers x q_dim x sum of causal attention pairs x 2 + 6 x vocab x hidden x scored tokens
(no recomputation counted), counted as one row per sample, so the work prompt sharing saves shows
as a higher MFU. Peak memory: torch.cuda.max_memory_allocated beside
`shared.sizing`'s estimate for the longest micro-batch (CUDA context included).

    python3 -m benchmarks.gpu_learner --out $OUT            # one H200: both models, all variants (sized for < 10 min; not yet run)
    python3 -m benchmarks.gpu_learner --tiny --out /tmp/g   # CPU smoke test: a tiny shape, seconds
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from shared.model_shapes import PRESETS, ModelShape
from shared.sizing import LearnerSetup, estimate_learner

VARIANTS = {"plain": {"share": False, "fsdp": False}, "shared": {"share": True, "fsdp": False},
            "packed": {"share": False, "fsdp": False, "packed": True}, "fsdp2": {"share": False, "fsdp": True}}
"""One row per sample (padded); prompt sharing; sequence packing (`learner.packing`); FSDP2."""

TINY = ModelShape(vocab=512, hidden=64, layers=2, heads=4, kv_heads=2, head_dim=16, intermediate=128,
                  tied=True, qkv_bias=True)


def build_model(shape: ModelShape, max_len: int, device: torch.device):
    from transformers import Qwen2Config, Qwen2ForCausalLM

    cfg = Qwen2Config(vocab_size=shape.vocab, hidden_size=shape.hidden, intermediate_size=shape.intermediate,
                      num_hidden_layers=shape.layers, num_attention_heads=shape.heads,
                      num_key_value_heads=shape.kv_heads, tie_word_embeddings=shape.tied,
                      max_position_embeddings=max_len, attn_implementation="sdpa")
    with torch.device(device):
        model = Qwen2ForCausalLM(cfg)
    return model.to(torch.float32).train()


def rollouts(shape: ModelShape, prompts: int, group: int, prompt_len: int, completion: int, seed: int):
    from services.learner.microbatches import TrainSample

    rng = np.random.default_rng(seed)
    out = []
    for p in range(prompts):
        ids = rng.integers(4, shape.vocab, prompt_len).astype(np.int32)
        for g in range(group):
            c = int(rng.integers(max(1, completion // 4), completion + 1))
            out.append(TrainSample(f"p{p}", ids, rng.integers(4, shape.vocab, c).astype(np.int32),
                                   np.full(c, -2.0, np.float32), 1.0 if g % 2 else -1.0))
    return out


def micro_batches(samples, model, a: argparse.Namespace, share: bool, packed: bool = False):
    """As Trainer._micro_batches (one rank); `packed`: sequence packing (one unpadded row each)."""
    from services.learner.microbatches import collate, pack_micro_batches
    from services.learner.prompt_sharing import attention_weight, collate_shared, pack_shared

    if packed:
        from services.learner.packing import collate_packed, packed_micro_batches

        units = [[i] for i in range(len(samples))]
        rows = packed_micro_batches(samples, units, a.micro_batch_tokens, a.micro_batch_size)
        return [collate_packed(samples, segments) for segments in rows]
    if share:
        packed = pack_shared(samples, a.micro_batch_tokens, a.micro_batch_size, attention_weight(model.config))
        if any(len(row) > 1 for mb in packed for row in mb):
            return [collate_shared(samples, rows, 0) for rows in packed]
    groups = pack_micro_batches([s.length for s in samples], a.micro_batch_tokens, a.micro_batch_size)
    return [collate([samples[i] for i in g], 0) for g in groups]


def model_flops(shape: ModelShape, samples) -> float:
    """Training FLOPs of the step's real tokens (forward x 3), recomputation not counted."""
    tokens = sum(s.length for s in samples)
    pairs = sum(s.length * (s.length + 1) / 2 for s in samples)  # causal (query, key) pairs
    scored = sum(len(s.completion_ids) for s in samples)
    linear = shape.layers * shape.layer_linear_params
    return 6.0 * linear * tokens + 6.0 * 2 * shape.layers * shape.q_dim * pairs + 6.0 * shape.vocab * shape.hidden * scored


def train_step(model, head, optimizer, batches, totals, dist, device, chunk: int) -> None:
    from services.learner.scoring import completion_logprobs
    from shared.algo.loss import policy_loss

    optimizer.zero_grad(set_to_none=True)
    for mb in batches:
        mb = mb.to(device)
        with torch.autocast(device.type, dtype=torch.bfloat16):
            logp = completion_logprobs(head, mb, dist, chunk)
        out = policy_loss(logp, mb.old_logprobs, mb.advantages, mb.loss_mask, totals=totals)
        out.loss.backward()
    _clip([p for g in optimizer.param_groups for p in g["params"]], 1.0)
    optimizer.step()


def _fsdp(model) -> None:
    """FSDP2 on each decoder layer (bf16 params, fp32 reduce). Embeddings, final norm and the
    output layer stay plain: chunked log-probs use the output weight outside any module's
    forward, where a root FSDP unit would not have gathered it."""
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

    mp = MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32)
    for layer in model.model.layers:
        fully_shard(layer, mp_policy=mp)


def _local(t: torch.Tensor) -> torch.Tensor:
    return t.to_local() if hasattr(t, "to_local") else t  # a DTensor's shard (all of it on one rank)


def _clip(params: list[torch.Tensor], max_norm: float) -> None:
    """clip_grad_norm_ over plain and DTensor gradients alike (one rank)."""
    grads = [_local(p.grad) for p in params if p.grad is not None]
    norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g.float()) for g in grads]))
    scale = torch.clamp(max_norm / (norm + 1e-6), max=1.0)
    for g in grads:
        g.mul_(scale.to(g.dtype))


def _optimizer(model) -> torch.optim.Optimizer:
    """AdamW, DTensor and plain parameters in separate groups (foreach lists cannot mix them)."""
    params = list(model.parameters())
    dt = [p for p in params if hasattr(p, "to_local")]
    plain = [p for p in params if not hasattr(p, "to_local")]
    return torch.optim.AdamW([g for g in ({"params": dt}, {"params": plain}) if g["params"]], lr=3e-6)


def run_variant(name: str, shape: ModelShape, a: argparse.Namespace, device: torch.device, *, share: bool,
                fsdp: bool, packed: bool = False) -> dict:
    from services.learner.scoring import OutputHead
    from shared.algo.logprobs import SamplingDistribution
    from shared.algo.loss import BatchTotals

    torch.manual_seed(0)
    model = build_model(shape, a.prompt + a.completion, device)
    if a.gradient_checkpointing:
        model.gradient_checkpointing_enable()
    if packed:
        from services.learner.packing import packing_attention

        packing_attention(model)
    if fsdp:
        _fsdp(model)
    head = OutputHead.of(model)
    optimizer = _optimizer(model)
    dist = SamplingDistribution.of(1.0, 0, 1.0)
    steps = []
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    for step in range(a.warmup + a.steps):
        samples = rollouts(shape, a.prompts, a.group, a.prompt, a.completion, seed=step)
        batches = micro_batches(samples, model, a, share, packed)
        totals = BatchTotals.of([len(s.completion_ids) for s in samples], max_len_norm=a.completion)
        _sync(device)
        t0 = time.perf_counter()
        train_step(model, head, optimizer, batches, totals, dist, device, a.chunk)
        _sync(device)
        if step >= a.warmup:
            steps.append({"seconds": time.perf_counter() - t0, "tokens": sum(s.length for s in samples),
                          "flops": model_flops(shape, samples), "micro_batches": len(batches),
                          "padded_tokens": int(sum(mb.input_ids.numel() for mb in batches))})
    secs = sum(s["seconds"] for s in steps)
    tokens, flops = sum(s["tokens"] for s in steps), sum(s["flops"] for s in steps)
    rows = max(1, min(a.micro_batch_size, a.micro_batch_tokens // (a.prompt + a.completion)))
    est = estimate_learner(shape, LearnerSetup(precision="bf16-autocast", rows=rows, row_tokens=a.prompt + a.completion,
                                               completion_tokens=a.completion, logits_chunk=a.chunk,
                                               gradient_checkpointing=a.gradient_checkpointing,
                                               cuda=device.type == "cuda"))
    out = {"variant": name, "share_prompts": share, "packing": packed, "fsdp2": fsdp, "tokens_per_s": tokens / secs,
           "tflops_per_s": flops / secs / 1e12, "mfu": flops / secs / (a.peak_tflops * 1e12), "steps": steps,
           "estimate_gib": est.total / 2**30}
    if device.type == "cuda":
        out["peak_allocated_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
    del model, optimizer, head
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return out


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _process_group(device: torch.device) -> None:
    import torch.distributed as td

    if not td.is_initialized():
        os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
        os.environ.setdefault("MASTER_PORT", str(29500 + os.getpid() % 1000))
        td.init_process_group("nccl" if device.type == "cuda" else "gloo", rank=0, world_size=1)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True, help="folder for gpu_learner.json")
    ap.add_argument("--tiny", action="store_true", help="a tiny shape and batch (runs on CPU in seconds)")
    ap.add_argument("--models", nargs="+", default=["qwen2.5-0.5b", "qwen2.5-1.5b"], choices=list(PRESETS))
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    ap.add_argument("--prompts", type=int, default=16, help="M prompts per step")
    ap.add_argument("--group", type=int, default=8, help="G completions per prompt")
    ap.add_argument("--prompt", type=int, default=512)
    ap.add_argument("--completion", type=int, default=1024, help="longest completion (lengths in [C/4, C])")
    ap.add_argument("--micro-batch-tokens", type=int, default=16384)
    ap.add_argument("--micro-batch-size", type=int, default=16)
    ap.add_argument("--chunk", type=int, default=1024, help="learner.logits_chunk_tokens")
    ap.add_argument("--gradient-checkpointing", action="store_true")
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--peak-tflops", type=float, default=989.0, help="dense bf16 peak of the GPU")
    a = ap.parse_args(argv)
    if a.tiny:
        a.prompts, a.group, a.prompt, a.completion = 2, 4, 16, 32
        a.micro_batch_tokens, a.micro_batch_size, a.chunk, a.steps = 256, 8, 16, 1
    return a


def main(argv: list[str] | None = None) -> dict:
    a = parse_args(argv)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    shapes = {"tiny": TINY} if a.tiny else {m: PRESETS[m] for m in a.models}
    if "fsdp2" in a.variants:
        _process_group(device)
    result = {"date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()), "host": platform.node(),
              "device": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
              "torch": torch.__version__, "args": vars(a), "runs": []}
    for model_name, shape in shapes.items():
        for variant in a.variants:
            try:
                r = run_variant(variant, shape, a, device, **VARIANTS[variant])
            except Exception as err:  # noqa: BLE001 - one variant failing must not lose the others
                r = {"variant": variant, "error": f"{type(err).__name__}: {err}"}
            r.update(model=model_name, shape=asdict(shape), params=shape.params)
            result["runs"].append(r)
            print(json.dumps({k: v for k, v in r.items() if k not in ("steps", "shape")}), flush=True)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "gpu_learner.json").write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
