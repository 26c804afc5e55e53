"""Loading the policy (and, only when kl_beta > 0, a frozen reference) onto the right device.

Owns the learner's device and precision choices (`placement`). Two settings (shared.precision):
`model.dtype` is the served dtype, the one weight versions are published in; `learner.precision`
is how the learner trains. The default (`auto`) on CUDA with a bfloat16-served model keeps float32
master weights and AdamW state and runs the forward under bfloat16 autocast: a 3e-6 update is
below bfloat16's resolution for most weights, so pure-bf16 parameters would silently drop it. On
CPU the default is float32; `bf16-autocast` works there too (torch's CPU autocast), by config.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from typing import Any, Callable

import torch

from shared.config import LearnerConfig, ModelConfig
from shared.precision import served_dtype, training_precision

log = logging.getLogger(__name__)


@dataclass
class Placement:
    device: torch.device
    param_dtype: torch.dtype
    """Dtype of the trained parameters and hence of AdamW's state (the master weights)."""
    autocast: Callable[[], contextlib.AbstractContextManager]
    """Context the forward runs in (bfloat16 autocast, or nothing)."""
    precision: str = "fp32"
    """The resolved `learner.precision`: fp32, bf16-autocast or bf16."""
    serve_dtype: str = "float32"
    """The resolved `model.dtype`: weight versions are published in it."""


def placement(model_cfg: ModelConfig, learner_cfg: LearnerConfig, local_rank: int = 0) -> Placement:
    want = learner_cfg.device
    if want == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("learner.device=cuda but CUDA is not available")
    cuda = want == "cuda" or (want == "auto" and torch.cuda.is_available())
    device = torch.device(f"cuda:{local_rank}") if cuda else torch.device("cpu")
    serve = served_dtype(model_cfg.dtype, cuda)
    precision = training_precision(learner_cfg.precision, serve, cuda)
    if precision == "bf16":
        return Placement(device, torch.bfloat16, contextlib.nullcontext, precision, serve)
    if precision == "bf16-autocast":
        kind = device.type
        return Placement(device, torch.float32, lambda: torch.autocast(kind, dtype=torch.bfloat16), precision, serve)
    return Placement(device, torch.float32, contextlib.nullcontext, precision, serve)


def load_policy(path: str, model_cfg: ModelConfig, place: Placement, *, activation_checkpointing: bool = False,
                on_device: bool = True) -> tuple[Any, Any]:
    """(model in train mode on the device, tokenizer) from a Hugging Face causal-LM folder.
    `on_device=False` leaves it on the CPU (FSDP moves only each rank's shards to the device).
    `activation_checkpointing`: each decoder layer recomputed in backward (non-reentrant)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(
        path, dtype=place.param_dtype, trust_remote_code=model_cfg.trust_remote_code)
    tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=model_cfg.trust_remote_code)
    if on_device:
        model.to(place.device)
    if activation_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.config.use_cache = False
    model.train()
    log.info("loaded %s: %.1fM parameters, %s weights on %s (precision %s; versions published in %s)", path,
             sum(p.numel() for p in model.parameters()) / 1e6, place.param_dtype, place.device,
             place.precision, place.serve_dtype)
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
