"""The LoRA section of the model config (`model.lora`): train low-rank adapters instead of every weight.

`model.lora: null` (the default) is full fine-tuning. With a `LoraConfig` the learner wraps the
policy in `peft` LoRA adapters on `target_modules`, the optimizer gets only the adapters'
parameters, and every published weight version is the adapter alone (docs/learner.md, LoRA).
Re-exported by `shared.config`.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from shared.config_base import Strict


class LoraConfig(Strict):
    r: int = Field(default=16, ge=1, le=512)
    """Rank of each adapter (A: r x in, B: out x r). vLLM serves ranks up to 512."""
    alpha: float = Field(default=32.0, gt=0)
    """Scaling numerator: the adapter adds (alpha / r) * B @ A to each target weight."""
    dropout: float = Field(default=0.0, ge=0.0, lt=1.0)
    """Dropout on the adapter's input while training (peft's `lora_dropout`); the sampler never drops."""
    target_modules: list[str] = Field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
        min_length=1)
    """Names (last component) of the linear layers that get an adapter; the default is every
    attention and MLP projection of Llama/Qwen-style models. Linear layers only: embeddings and
    the output layer stay frozen (the sampler's merge and vLLM's LoRA serve linear adapters)."""
    vllm_serving: Literal["auto", "adapter", "merge"] = "auto"
    """How a vLLM sampler serves an adapter version. `adapter`: vLLM's LoRA support (the engine is
    built with `enable_lora`; a swap adds the adapter, the base weights stay). `merge`: the sampler
    writes base + adapter as a whole folder and reloads it in place (no LoRA kernels in the calls,
    a whole-model reload per swap). `auto`: `adapter` on GPU, `merge` on CPU, where vLLM's LoRA
    kernels measured 1.3-2.7x slower calls (docs/benchmarks.md). The transformers backend always merges."""
