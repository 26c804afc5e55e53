"""Generation backends behind one interface (`GenerationBackend`), chosen by `sampler.backend`."""

from __future__ import annotations

from pathlib import Path

from services.sampler.backends.base import (
    Completion, GenerationBackend, IncompatibleWeights, SamplingSettings,
)
from shared.config import RunConfig

__all__ = ["Completion", "GenerationBackend", "IncompatibleWeights", "SamplingSettings", "make_backend"]


def make_backend(cfg: RunConfig, model_path: str | Path | None = None) -> GenerationBackend:
    """Build the configured backend serving `model_path` (default: the run's starting model)."""
    path, engine = model_path or cfg.model.path, cfg.sampler.backend
    if engine.kind == "vllm":
        from services.sampler.backends.vllm_backend import VllmBackend

        return VllmBackend(
            path, dtype=cfg.model.dtype, seed=cfg.seed,
            max_model_len=cfg.sampler.max_prompt_tokens + cfg.sampler.max_new_tokens,
            enforce_eager=engine.enforce_eager, gpu_memory_utilization=engine.gpu_memory_utilization,
            trust_remote_code=cfg.model.trust_remote_code,
            lora_rank=cfg.model.lora.r if cfg.model.lora else None,
            lora_serving=cfg.model.lora.vllm_serving if cfg.model.lora else "auto",
            # the push hands tensors to the engine as Python objects: it must live in this process
            in_process=cfg.weights.transport.kind == "broadcast",
        )
    from services.sampler.backends.hf_backend import HFBackend

    return HFBackend(path, dtype=cfg.model.dtype, trust_remote_code=cfg.model.trust_remote_code)
