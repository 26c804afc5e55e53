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
    path = model_path or cfg.model.path
    if cfg.sampler.backend == "vllm":
        from services.sampler.backends.vllm_backend import VllmBackend

        return VllmBackend(
            path, dtype=cfg.model.dtype, seed=cfg.seed,
            max_model_len=cfg.sampler.max_prompt_tokens + cfg.sampler.max_new_tokens,
            enforce_eager=cfg.sampler.enforce_eager, gpu_memory_utilization=cfg.sampler.gpu_memory_utilization,
            trust_remote_code=cfg.model.trust_remote_code,
        )
    from services.sampler.backends.hf_backend import HFBackend

    return HFBackend(path, dtype=cfg.model.dtype, trust_remote_code=cfg.model.trust_remote_code)
