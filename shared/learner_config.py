"""The learner's section of a run config (`learner:`): batch and micro-batch sizes, AdamW and
its schedule, staleness, weight publishing, checkpoints, device and training precision.
Re-exported by `shared.config`."""

from __future__ import annotations

from typing import Literal

from pydantic import AliasChoices, Field, model_validator

from shared.config_base import Strict, tagged_union
from shared.precision import pure_bf16_problem


class FsWeightStoreConfig(Strict):
    kind: Literal["fs"] = "fs"
    """A shared folder (a volume or PVC): `RUN_DIR/weights/vN/`, written whole, then renamed."""


class RedisWeightStoreConfig(Strict):
    kind: Literal["redis"] = "redis"
    """Chunked blobs in Redis (single box): `keep_versions` whole versions held in memory."""


WeightStore = tagged_union(FsWeightStoreConfig, RedisWeightStoreConfig, default="fs")


class LearnerConfig(Strict):
    train_batch_size: int = Field(default=256, ge=1)
    """Samples per optimizer step (after filtering)."""
    micro_batch_size: int = Field(default=8, ge=1)
    """Most samples in one forward/backward micro-batch."""
    micro_batch_tokens: int = Field(default=8192, ge=1)
    """Token budget of one micro-batch: rows x its longest row (a row: prompt + completion, or
    with `share_prompts` one prompt + its completions), padded; with `packing`, real tokens."""
    share_prompts: bool = True
    """Backpropagate each prompt once per micro-batch: a prompt's completions share one row
    after it (block attention mask, positions restarted), so G completions cost P + G x C
    tokens instead of G x (P + C). Same gradient. Only where a FLOP estimate from the model's
    shapes says the shared row is cheaper (short completions), and only with sdpa or eager
    attention. Off: one row per sample, as TRL and the paper's code do."""
    packing: bool = False
    """Sequence packing: a micro-batch is one unpadded row of whole samples (shared rows with
    `share_prompts`), at most `micro_batch_tokens` real tokens and `micro_batch_size` samples;
    positions restart per sample and attention stays inside each (per-sample SDPA, or the
    flash-attention varlen kernel under flash_attention_2/3). Same gradient, no padding. Needs
    attention sdpa, eager or flash. See docs/learner.md (Sequence packing)."""
    logits_chunk_tokens: int = Field(default=1024, ge=0)
    """Project hidden states to the vocabulary only at completion positions, this many at a
    time, each chunk recomputed in backward (`shared.algo.chunked_logprobs`): the output layer's
    memory is a few (chunk, vocabulary) tensors instead of several (tokens, vocabulary) float32
    ones. Same gradient. 0: the plain path (logits at every position; also the fallback for
    models whose logits are not lm_head(hidden)). See docs/learner.md (Memory-lean log-probs)."""
    lr: float = Field(default=3e-6, gt=0)
    """AdamW learning rate (the paper: 3e-6)."""
    weight_decay: float = Field(default=0.0, ge=0)
    """AdamW weight decay."""
    betas: tuple[float, float] = (0.9, 0.999)
    """AdamW betas."""
    warmup_steps: int = Field(default=0, ge=0)
    """Linear warm-up steps."""
    schedule: Literal["constant", "linear", "cosine"] = "constant"
    """LR schedule after warm-up (decays over `max_steps`)."""
    max_grad_norm: float = Field(default=1.0, gt=0)
    """Gradient norm clip."""
    max_steps: int = Field(default=100, ge=1)
    """Optimizer steps in the run."""
    max_staleness: int = Field(default=2, ge=0)
    """Rollouts whose policy_version lags the learner by more than this are skipped."""
    publish_every: int = Field(default=1, ge=1)
    """Publish a weight version every N optimizer steps."""
    keep_versions: int = Field(default=3, ge=1)
    """Weight versions kept in the store."""
    weight_store: WeightStore = Field(default_factory=FsWeightStoreConfig)
    """How weight versions reach the samplers, tagged by `kind`: fs (a shared folder) or redis
    (chunked blobs in Redis); a bare name is shorthand (`weight_store: redis`)."""
    checkpoint_every: int = Field(default=10, ge=1)
    """Write a resumable checkpoint every N steps."""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    """auto: CUDA when present, else CPU."""
    precision: Literal["auto", "fp32", "bf16-autocast", "bf16"] = "auto"
    """fp32: float32 weights, AdamW state and forward; bf16-autocast: float32 master weights and
    AdamW state, forward under bfloat16 autocast (CUDA or CPU); bf16: weights and AdamW state in
    bfloat16, refused at lr < 1e-4 (the updates would round away). auto: bf16-autocast on CUDA
    when `model.dtype` serves bfloat16, else fp32. See docs/learner.md (Precision)."""
    activation_checkpointing: bool = Field(
        default=False, validation_alias=AliasChoices("activation_checkpointing", "gradient_checkpointing"))
    """Recompute each decoder layer's activations in backward instead of keeping them: memory for
    compute on long completions (DDP and FSDP alike). `gradient_checkpointing` is its older name."""
    parallel: Literal["ddp", "fsdp"] = "ddp"
    """How torchrun ranks share the model. ddp: every rank holds the whole model and AdamW state,
    gradients are all-reduced; fsdp: FSDP2 (`fully_shard` per decoder layer) shards parameters,
    gradients and AdamW state over the ranks and checkpoints them with torch.distributed.checkpoint.
    See docs/learner.md (Scale-out)."""
    num_gpus: int = Field(default=1, ge=1)
    """On a GPU box, `dashrl run` gives the learner the first this many GPUs (more than one: under
    torchrun, a rank per GPU) and splits the rest among the samplers; too few GPUs for one each is
    an error. Ignored without GPUs. See docs/deploy.md (GPU placement)."""

    @model_validator(mode="after")
    def _micro_fits_batch(self) -> "LearnerConfig":
        if self.micro_batch_size > self.train_batch_size:
            raise ValueError(
                f"micro_batch_size: {self.micro_batch_size} is larger than train_batch_size "
                f"({self.train_batch_size})"
            )
        return self

    @model_validator(mode="after")
    def _bf16_needs_large_lr(self) -> "LearnerConfig":
        problem = pure_bf16_problem(self.precision, self.lr)
        if problem:
            raise ValueError(f"precision: {problem}")
        return self
