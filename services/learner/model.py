"""Loading the policy (and, only when kl_beta > 0, a frozen reference) onto the right device.

Owns device and precision choices. `ModelConfig.dtype = auto`: on CUDA the parameters and
AdamW state stay float32 and the forward runs under bfloat16 autocast (a 3e-6 update is below
bfloat16's resolution for most weights, so pure-bf16 parameters would silently drop it); on
CPU everything is float32. An explicit dtype keeps the parameters in that dtype, no autocast.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from typing import Any, Callable

import torch

from shared.config import LearnerConfig, ModelConfig

log = logging.getLogger(__name__)

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


@dataclass
class Placement:
    device: torch.device
    param_dtype: torch.dtype
    autocast: Callable[[], contextlib.AbstractContextManager]


def placement(model_cfg: ModelConfig, learner_cfg: LearnerConfig, local_rank: int = 0) -> Placement:
    want = learner_cfg.device
    if want == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("learner.device=cuda but CUDA is not available")
    cuda = want == "cuda" or (want == "auto" and torch.cuda.is_available())
    device = torch.device(f"cuda:{local_rank}") if cuda else torch.device("cpu")
    if model_cfg.dtype != "auto":
        return Placement(device, DTYPES[model_cfg.dtype], contextlib.nullcontext)
    if cuda:
        return Placement(device, torch.float32, lambda: torch.autocast("cuda", dtype=torch.bfloat16))
    return Placement(device, torch.float32, contextlib.nullcontext)


def load_policy(path: str, model_cfg: ModelConfig, place: Placement, *, gradient_checkpointing: bool = False
                ) -> tuple[Any, Any]:
    """(model in train mode on the device, tokenizer) from a Hugging Face causal-LM folder."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(
        path, dtype=place.param_dtype, trust_remote_code=model_cfg.trust_remote_code)
    tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=model_cfg.trust_remote_code)
    model.to(place.device)
    if gradient_checkpointing:
        model.gradient_checkpointing_enable()
        model.config.use_cache = False
    model.train()
    log.info("loaded %s: %.1fM parameters, %s on %s", path,
             sum(p.numel() for p in model.parameters()) / 1e6, place.param_dtype, place.device)
    return model, tokenizer


def load_reference(path: str, model_cfg: ModelConfig, place: Placement) -> Any:
    """The frozen starting policy for the k3 KL term (never loaded when kl_beta == 0)."""
    from transformers import AutoModelForCausalLM

    ref = AutoModelForCausalLM.from_pretrained(path, dtype=place.param_dtype,
                                               trust_remote_code=model_cfg.trust_remote_code)
    ref.to(place.device).eval()
    for p in ref.parameters():
        p.requires_grad_(False)
    return ref


def pad_token_id(tokenizer: Any) -> int:
    for tok_id in (tokenizer.pad_token_id, tokenizer.eos_token_id):
        if tok_id is not None:
            return int(tok_id)
    return 0  # padded positions are masked out of attention and loss; any id works
