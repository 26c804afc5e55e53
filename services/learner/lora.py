"""LoRA: wrap the policy in `peft` adapters (`model.lora`), and write the run's final folder.

With `model.lora` set only the adapters' parameters require gradients, so the `Trainer`'s
optimizer (built over `requires_grad` parameters) holds only them; the frozen base weights get
no gradient and no AdamW state. `shared.weight_folder` publishes such a model as its adapter
alone. Applied to the loaded model before any parallel wrapping (`distributed`), so sharding
sees the adapter layers as ordinary modules.

Resuming: a checkpoint of a LoRA run holds the adapter (peft's layout); the learner loads the
starting model again and puts the checkpoint's adapter on it, trainable.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from shared.lora_config import LoraConfig
from shared.weight_folder import is_lora_model

log = logging.getLogger(__name__)

ADAPTER_DIR = "adapter"
"""Sub-folder of a LoRA run's `final/` that holds the trained adapter (peft's layout)."""


def apply_lora(model: Any, spec: LoraConfig, adapter: str | Path | None = None) -> Any:
    """`model` wrapped in trainable LoRA adapters: new ones (B = 0, so the wrapped model computes
    exactly what `model` did) or, when resuming, those saved at `adapter`."""
    import peft

    if adapter is not None:
        wrapped = peft.PeftModel.from_pretrained(model, str(adapter), is_trainable=True)
    else:
        wrapped = peft.get_peft_model(model, peft.LoraConfig(
            r=spec.r, lora_alpha=spec.alpha, lora_dropout=spec.dropout, target_modules=list(spec.target_modules),
            bias="none", task_type="CAUSAL_LM"))
    if getattr(model, "is_gradient_checkpointing", False):
        model.enable_input_require_grads()  # frozen embeddings: checkpointed blocks still need a grad input
    trainable = sum(p.numel() for p in wrapped.parameters() if p.requires_grad)
    total = sum(p.numel() for p in wrapped.parameters())
    log.info("LoRA r=%d alpha=%g on %s: %.3fM trainable of %.1fM parameters (%.2f%%)", spec.r, spec.alpha,
             ",".join(spec.target_modules), trainable / 1e6, total / 1e6, 100 * trainable / max(1, total))
    return wrapped


def save_final_model(model: Any, tokenizer: Any, folder: Path) -> None:
    """The run's `final/`: a plain Hugging Face folder that AutoModelForCausalLM loads. A LoRA
    policy is merged into its base weights for it (this changes `model`: call it last), and its
    adapter goes to `final/adapter/` for `PeftModel.from_pretrained(base, final/adapter)`."""
    if is_lora_model(model):
        model.save_pretrained(folder / ADAPTER_DIR, safe_serialization=True)
        if tokenizer is not None:
            tokenizer.save_pretrained(folder / ADAPTER_DIR)
        model = model.merge_and_unload()
    model.save_pretrained(folder, safe_serialization=True)
    if tokenizer is not None:
        tokenizer.save_pretrained(folder)
