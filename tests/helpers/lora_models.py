"""LoRA policies on the tiny test model: the learner's own wrapping (`apply_lora`) with the
adapters' B matrices set to random values, so a version differs from the base as a trained one would."""

from __future__ import annotations

from pathlib import Path

import torch

from shared.lora_config import LoraConfig


def lora_policy(model_dir: str | Path, *, r: int = 4, seed: int = 1, std: float = 0.5,
                target_modules: tuple[str, ...] = ("q_proj", "v_proj", "down_proj")):
    """(peft model, LoraConfig) on the model at `model_dir`; B ~ N(0, std) (seeded), A as peft draws it."""
    from transformers import AutoModelForCausalLM

    from services.learner.lora import apply_lora

    spec = LoraConfig(r=r, alpha=2.0 * r, target_modules=list(target_modules))
    torch.manual_seed(seed)
    model = apply_lora(AutoModelForCausalLM.from_pretrained(model_dir), spec)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0.0, std)
    return model.eval(), spec


def completion_logprobs(model, prompt: list[int], completion: list[int]) -> list[float]:
    """log p(completion token | prefix) under `model`'s raw distribution (greedy calls report these)."""
    ids = torch.tensor([prompt + completion])
    with torch.no_grad():
        lp = torch.log_softmax(model(input_ids=ids).logits[0].float(), -1)
    return [lp[len(prompt) - 1 + i, t].item() for i, t in enumerate(completion)]
