"""The generation-backend interface every backend implements, and its value types.

A backend turns token-id prompts into completions: token ids, the log-prob of each sampled
token under the distribution it was drawn from (logits / temperature, restricted to the top-k
and top-p set and renormalised; greedy: the raw distribution), which the learner reproduces
(`shared.algo.logprobs`) so that its importance ratio compares one policy with itself, and why
each completion ended. It also loads a new
weight folder in place between calls. Backends never see text, rewards or Redis.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable

import numpy as np

from shared.protocol import FinishReason
from shared.stop_tokens import StopTokens

if TYPE_CHECKING:
    import torch


class IncompatibleWeights(ValueError):
    """A weight folder that does not fit the served model; raised before anything was changed,
    so the backend still serves the previous policy intact."""


@dataclass(frozen=True)
class SamplingSettings:
    """How to sample one generation call."""

    n: int = 1
    """Completions per prompt (G)."""
    temperature: float = 1.0
    """0 means greedy."""
    top_k: int = -1
    """-1 or 0: off."""
    top_p: float = 1.0
    max_new_tokens: int = 64
    seed: int = 0
    """Seeds this call (transformers). vLLM ignores it: its engine seed already makes a run's
    sequence of calls reproducible."""
    stop: StopTokens = StopTokens()
    """Token ids a completion ends on (kept as its last token), on top of the model's own eos;
    empty: the model's eos only. Built by shared.stop_tokens.stop_tokens."""

    @property
    def greedy(self) -> bool:
        return self.temperature == 0


@dataclass
class Completion:
    token_ids: np.ndarray  # (C,) int32, includes the stop token when it stopped on one
    logprobs: np.ndarray  # (C,) float32, log p(token | prefix) under the sampling distribution
    finish_reason: FinishReason


class GenerationBackend(ABC):
    """One model held for generation. Not thread-safe: one call at a time."""

    name: str = "base"
    loads_tensors: bool = False
    """Whether `load_tensors` is implemented (the collective push needs it)."""

    swaps_mid_call: bool = False
    """Whether `generate_stepped` calls its hook between engine steps (vLLM's in-process engine)."""

    @abstractmethod
    def generate(self, prompts: list[list[int]], settings: SamplingSettings) -> list[list[Completion]]:
        """For each prompt, `settings.n` completions (outer list in prompt order)."""

    def generate_stepped(self, prompts: list[list[int]], settings: SamplingSettings,
                         between_steps: Callable[[], object]) -> list[list[Completion]]:
        """`generate`, calling `between_steps()` whenever the engine is idle between two of its
        steps, where the hook may load a new version (`load_weights` / `load_tensors`): tokens
        from then on come from it, attending to KV computed with the old weights. Default: a
        backend with no steps to stop between never calls the hook."""
        return self.generate(prompts, settings)

    @abstractmethod
    def load_weights(self, path: Path) -> None:
        """Serve the HF model folder at `path` from the next call on (same architecture).

        Raises IncompatibleWeights when the folder does not fit (the old policy is kept); any
        other exception means the backend's state is unknown and it must not be used again."""

    def load_tensors(self, named: "Iterable[tuple[str, torch.Tensor]]") -> None:
        """Serve these named tensors (a whole model, HF names, already verified: the collective
        push, `shared.weight_push`) from the next call on. Same contract as `load_weights`:
        IncompatibleWeights before anything changed; anything else leaves the state unknown."""
        raise NotImplementedError(f"the {self.name} backend cannot load pushed tensors")

    def close(self) -> None:
        """Release the model (and any engine process)."""


def tensor_shapes(path: str | Path) -> dict[str, tuple[int, ...]]:
    """{tensor name: shape} of a folder's safetensors files, read from their headers only."""
    from safetensors import safe_open

    shapes: dict[str, tuple[int, ...]] = {}
    for file in sorted(Path(path).glob("*.safetensors")):
        with safe_open(str(file), framework="pt") as f:
            shapes.update({name: tuple(f.get_slice(name).get_shape()) for name in f.keys()})
    return shapes
