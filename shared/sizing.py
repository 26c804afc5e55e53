"""Memory of a run's learner and sampler, computed from the model's shapes and the run config.

Pure arithmetic (no torch): `estimate_learner` and `estimate_sampler` return the parts of one
process's peak, each with a note saying what it counts; `estimate_run` takes them from a
`RunConfig` (`dashrl config --estimate`). What the parts assume (checked on CPU against measured
peaks by tests/integration/learner/test_sizing_measured.py; docs/deploy.md, Sizing):

- Learner state: parameters, gradients (trainable ones) and AdamW's two moments, in the
  training precision's parameter dtype (float32 for fp32 and bf16-autocast, bfloat16 for bf16);
  FSDP2 shards all three over `world_size` ranks and gathers about two layers at a time; DDP
  (the repo's all-reduce of gradient buckets) keeps a full copy on every rank. LoRA: only the
  adapters have gradients and moments; the base weights stay, frozen.
- bf16 autocast keeps a bfloat16 copy of every decoder Linear weight from forward to backward
  (one layer's at a time with activation checkpointing).
- Activations per micro-batch of T tokens (rows x padded row), Llama/Qwen2 decoder with sdpa
  attention, per layer and token: two RMSNorms (2 x 2H in the residual dtype), q/k after RoPE and
  repeated K/V into attention, its output and the o_proj input (7 q_dim + 2 kv_dim), the MLP's
  gate/SiLU/up/product (4 x intermediate), in the compute dtype; with bf16 autocast also the
  bfloat16 copies of the five Linear inputs (5H). Activation checkpointing keeps each layer's
  input instead and recomputes one layer at a time. Backward adds a working set of about
  (2 x intermediate + 2H) per token.
- The output layer: `logits_chunk_tokens` positions at a time (completion-only chunked
  log-probs: about 3 x chunk x vocabulary values alive, one in the compute dtype and two
  float32), or all T positions with chunking off.
- Sampler (vLLM): weights in the served dtype, the KV cache of one generation call's sequences
  at full length (layers x kv heads x head dim x 2 x dtype bytes x tokens), and engine overhead.
  vLLM claims `gpu_memory_utilization` of the GPU, so the GPU it needs is the sum over that.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from shared.model_shapes import LINEAR_MODULES, ModelShape

GiB = 1024**3
CUDA_CONTEXT = int(0.6 * GiB)
"""CUDA context, cuBLAS/cuDNN workspaces and kernels of a torch process (typical, not measured here)."""
VLLM_OVERHEAD = int(1.0 * GiB)
"""vLLM beyond weights and KV cache: CUDA context, profiling-run activations (typical)."""
DDP_BUCKET_ELEMENTS = 1 << 24
"""services/learner/distributed.py: gradients are all-reduced in flattened 16M-element buckets."""
DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}


Phase = Literal["always", "backward", "step"]
"""When a part is alive: always; from forward to the end of backward (activations, logits);
at the optimizer step (gradients, the step's temporaries)."""


@dataclass(frozen=True)
class Part:
    name: str
    bytes: int
    note: str = ""
    phase: Phase = "always"


@dataclass
class Estimate:
    role: str
    parts: list[Part] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def phase_total(self, phase: Phase) -> int:
        return sum(p.bytes for p in self.parts if p.phase == phase)

    @property
    def total(self) -> int:
        """The peak: what is always there plus the larger of the backward and the step phases.
        They do not add up: backward frees each layer's activations as it makes its gradients,
        so gradients and activations peak at different ends of it."""
        return self.phase_total("always") + max(self.phase_total("backward"), self.phase_total("step"))

    def add(self, name: str, nbytes: float, note: str = "", phase: Phase = "always") -> None:
        self.parts.append(Part(name, int(nbytes), note, phase))


@dataclass(frozen=True)
class LearnerSetup:
    precision: Literal["fp32", "bf16-autocast", "bf16"] = "bf16-autocast"
    rows: int = 1
    """Rows of one micro-batch."""
    row_tokens: int = 1024
    """Padded length of a row (prompt + completion)."""
    completion_tokens: int = 512
    """Scored (completion) tokens per row."""
    logits_chunk: int = 1024
    """`learner.logits_chunk_tokens` (0: logits at every position)."""
    gradient_checkpointing: bool = False
    world_size: int = 1
    sharding: Literal["ddp", "fsdp"] = "ddp"
    lora_rank: int = 0
    """0: full fine-tuning."""
    lora_targets: tuple[str, ...] = LINEAR_MODULES
    cuda: bool = True


def _state_parts(est: Estimate, shape: ModelShape, s: LearnerSetup, pb: int) -> None:
    """Weights, gradients, AdamW moments (sharded under FSDP2) and the optimizer step's temporaries."""
    shard = s.world_size if s.sharding == "fsdp" else 1
    trainable = shape.lora_params(s.lora_rank, s.lora_targets) if s.lora_rank else shape.params
    how = f"/ {shard} ranks (FSDP2)" if shard > 1 else "full copy per rank"
    frozen = f"{shape.params / 1e9:.2f}B frozen + {trainable / 1e6:.1f}M LoRA" if s.lora_rank else f"{shape.params / 1e9:.2f}B"
    est.add("weights", (shape.params + (trainable if s.lora_rank else 0)) * pb / shard, f"{frozen} x {pb} B, {how}")
    est.add("gradients", trainable * pb / shard, f"trainable x {pb} B", "step")
    est.add("AdamW moments", 2 * trainable * pb / shard, f"2 x trainable x {pb} B")
    if s.cuda:  # foreach AdamW on CUDA: one list of sqrt(v) the size of the moments
        est.add("optimizer step temporaries", trainable * pb / shard, "foreach AdamW (CUDA)", "step")
    if s.sharding == "fsdp" and s.world_size > 1:
        layer = shape.layer_linear_params
        est.add("FSDP2 gathered layers", layer * (2 * 2 + pb), "2 layers unsharded (bf16) + one layer's grads",
                "backward")
    elif s.world_size > 1:
        est.add("DDP all-reduce bucket", 2 * min(DDP_BUCKET_ELEMENTS, trainable) * pb, "flattened grads + copy",
                "step")


def _per_layer_token_bytes(shape: ModelShape, a: int, r: int, autocast: bool) -> int:
    """Bytes one decoder layer keeps for backward per token (sdpa attention)."""
    H, q, kv, inter = shape.hidden, shape.q_dim, shape.kv_dim, shape.intermediate
    kept = 4 * H * r + (7 * q + 2 * kv + 4 * inter) * a
    return kept + (5 * H * 2 if autocast else 0)


def _activation_parts(est: Estimate, shape: ModelShape, s: LearnerSetup, pb: int) -> None:
    autocast = s.precision == "bf16-autocast"
    a = 2 if s.precision != "fp32" else 4  # compute dtype
    r = pb  # the residual stream follows the parameters' dtype
    T, N = s.rows * s.row_tokens, s.rows * s.completion_tokens
    shard = s.world_size if s.sharding == "fsdp" else 1

    def add(name: str, nbytes: float, note: str) -> None:
        est.add(name, nbytes, note, "backward")

    if autocast:
        add("autocast bf16 weight copies", (1 if s.gradient_checkpointing else shape.layers) * shape.layer_linear_params * 2,
            "one layer's (checkpointing)" if s.gradient_checkpointing else "every decoder Linear")
    per_layer = _per_layer_token_bytes(shape, a, r, autocast)
    if s.gradient_checkpointing:
        add("activations", T * (shape.layers * shape.hidden * r + per_layer),
            f"{T} tokens: each layer's input + one layer recomputed")
    else:
        add("activations", T * shape.layers * per_layer, f"{T} tokens x {shape.layers} layers x {per_layer} B")
    add("backward working set", T * (2 * shape.intermediate + 2 * shape.hidden) * r, "gradients of a layer's activations")
    add("final norm, scored hidden states, mask", T * 2 * shape.hidden * r + N * shape.hidden * r
        + s.rows * s.row_tokens**2, f"{N} scored positions")
    n = min(s.logits_chunk, N) if s.logits_chunk else T
    how = f"chunk of {n} positions" if s.logits_chunk else f"all {T} positions (chunking off)"
    add("logits", n * shape.vocab * (a + 8), f"{how} x vocab {shape.vocab} x ({a} + 2 x 4) B")
    if not s.lora_rank:  # the output layer's gradient is made first and stays through backward
        add("output-layer gradient", shape.embedding_params * pb / shard, "made at the start of backward")


def estimate_learner(shape: ModelShape, setup: LearnerSetup) -> Estimate:
    """One learner rank's peak memory (GPU memory on CUDA; the process's tensors on CPU)."""
    if setup.sharding not in ("ddp", "fsdp") or setup.world_size < 1:
        raise ValueError(f"sharding must be ddp or fsdp and world_size >= 1, got {setup.sharding}, {setup.world_size}")
    pb = 2 if setup.precision == "bf16" else 4
    est = Estimate("learner")
    _state_parts(est, shape, setup, pb)
    _activation_parts(est, shape, setup, pb)
    if setup.cuda:
        est.add("CUDA context", CUDA_CONTEXT, "typical")
    return est


def estimate_sampler(shape: ModelShape, *, dtype: str = "bfloat16", sequences: int = 256, seq_tokens: int = 1024,
                     gpu_memory_utilization: float | None = 0.85, cuda: bool = True) -> Estimate:
    """A vLLM sampler: weights, KV cache for `sequences` of `seq_tokens`, overhead; on CUDA also
    the GPU size its `gpu_memory_utilization` needs (`notes`)."""
    b = DTYPE_BYTES[dtype]
    est = Estimate("sampler")
    est.add("weights", shape.params * b, f"{shape.params / 1e9:.2f}B x {b} B ({dtype})")
    per_token = shape.layers * shape.kv_heads * shape.head_dim * 2 * b
    est.add("KV cache", per_token * sequences * seq_tokens,
            f"{shape.layers} layers x {shape.kv_heads} kv heads x {shape.head_dim} x 2 x {b} B x {sequences} seqs x {seq_tokens} tokens")
    est.add("sampler logits", min(sequences, 1024) * shape.vocab * 4 * 2, "float32 logits + processed copy per sequence")
    if cuda:
        est.add("engine overhead", VLLM_OVERHEAD, "CUDA context, profiling activations (typical)")
        if gpu_memory_utilization:
            est.notes.append(f"vLLM claims gpu_memory_utilization={gpu_memory_utilization:g} of the GPU: needs a GPU of "
                             f">= {est.total / gpu_memory_utilization / GiB:.1f} GiB")
    est.notes.append(f"KV cache per sequence {per_token * seq_tokens / 2**20:.1f} MiB; with less, vLLM runs fewer "
                     "sequences at a time (slower, not an error)")
    return est


def needed_gpu_gib(est: Estimate, gpu_memory_utilization: float | None = None) -> float:
    """GiB of GPU memory an estimate needs (the sampler's over its vLLM fraction)."""
    return est.total / (gpu_memory_utilization or 1.0) / GiB


@dataclass
class RunEstimate:
    learner: Estimate
    sampler: Estimate
    shape_source: str
    gpu_memory_utilization: float | None
    cuda: bool = True


def _lora_of(model_cfg) -> tuple[int, tuple[str, ...]]:
    """(rank, targets) of `model.lora` (shared.lora_config: `r`, `target_modules`), else (0, all Linear)."""
    lora = getattr(model_cfg, "lora", None)
    rank = int(getattr(lora, "rank", None) or getattr(lora, "r", None) or 0) if lora is not None else 0
    if lora is not None and getattr(lora, "enabled", True) is False:
        rank = 0
    targets = tuple(getattr(lora, "target_modules", None) or LINEAR_MODULES) if rank else LINEAR_MODULES
    return rank, tuple(t for t in targets if t in LINEAR_MODULES) or LINEAR_MODULES


def _sharding_of(learner_cfg) -> str:
    """`learner.parallel` (ddp, fsdp/fsdp2) where the config has it, else ddp."""
    parallel = str(getattr(learner_cfg, "parallel", None) or "ddp").lower()
    return "fsdp" if parallel.startswith("fsdp") else "ddp"


def learner_setup(cfg, *, cuda: bool = True, world_size: int | None = None, sharding: str | None = None,
                  lora_rank: int | None = None) -> LearnerSetup:
    """The worst micro-batch of a run config: as many full-length rows (max_prompt_tokens +
    max_new_tokens) as `micro_batch_tokens` and `micro_batch_size` allow, at least one."""
    from shared.precision import served_dtype, training_precision

    lc, sc = cfg.learner, cfg.sampler
    row = sc.max_prompt_tokens + sc.max_new_tokens
    rank, targets = _lora_of(cfg.model)
    return LearnerSetup(
        precision=training_precision(lc.precision, served_dtype(cfg.model.dtype, cuda), cuda),
        rows=max(1, min(lc.micro_batch_size, lc.micro_batch_tokens // row)), row_tokens=row,
        completion_tokens=sc.max_new_tokens, logits_chunk=lc.logits_chunk_tokens,
        gradient_checkpointing=lc.activation_checkpointing,
        world_size=world_size or lc.num_gpus, sharding=sharding or _sharding_of(lc),
        lora_rank=rank if lora_rank is None else lora_rank, lora_targets=targets, cuda=cuda)


def estimate_run(cfg, shape: ModelShape, shape_source: str = "", *, cuda: bool = True, **learner: object) -> RunEstimate:
    """Both services of a `RunConfig` (`learner`: world_size / sharding / lora_rank overrides).
    The sampler generates one call's M x G sequences at full length."""
    from shared.precision import served_dtype

    sc = cfg.sampler
    util = sc.backend.gpu_memory_utilization if cuda and sc.backend.kind == "vllm" else None
    sampler = estimate_sampler(shape, dtype=served_dtype(cfg.model.dtype, cuda),
                               sequences=sc.sampling_batch_prompts * sc.group_size,
                               seq_tokens=sc.max_prompt_tokens + sc.max_new_tokens,
                               gpu_memory_utilization=util, cuda=cuda)
    if not cuda and sc.backend.kind == "vllm":
        sampler.notes.append("vLLM on CPU preallocates VLLM_CPU_KVCACHE_SPACE GiB of KV cache (the sampler sets 1)")
    return RunEstimate(estimate_learner(shape, learner_setup(cfg, cuda=cuda, **learner)), sampler, shape_source,
                       util, cuda)
