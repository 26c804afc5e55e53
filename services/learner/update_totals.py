"""`UpdateTotals`: what the micro-batches of one optimizer update add up to, by name.

The trainer sums `shared.algo.loss.LossOutputs` over an update's micro-batches, then over ranks
(`allreduce_sum` takes a flat list: `as_list` / `from_list`), then over a step's updates; the
step's means and fractions (`StepStats`) are divided out of these sums.
"""

from __future__ import annotations

from dataclasses import astuple, dataclass, fields
from typing import Any


@dataclass
class UpdateTotals:
    loss: float = 0.0
    policy_loss: float = 0.0
    kl: float = 0.0
    clipped_tokens: float = 0.0
    """Completion tokens whose gradient the clip removed."""
    ratio_sum: float = 0.0
    """Sum of the importance ratios over completion tokens."""
    completion_tokens: float = 0.0
    truncated_tokens: float = 0.0
    """Completion tokens whose importance weight `algo.is_cap` truncated."""

    @classmethod
    def of(cls, out: Any) -> "UpdateTotals":
        """One micro-batch's `LossOutputs` (tensors) as numbers."""
        return cls(float(out.loss.detach()), float(out.policy_loss), float(out.kl), float(out.clipped_tokens),
                   float(out.ratio_sum), float(out.tokens), float(out.truncated_tokens))

    def __add__(self, other: "UpdateTotals") -> "UpdateTotals":
        return UpdateTotals(*(a + b for a, b in zip(astuple(self), astuple(other))))

    def as_list(self) -> list[float]:
        return list(astuple(self))

    @classmethod
    def from_list(cls, values: list[float]) -> "UpdateTotals":
        """The inverse of `as_list` (extra trailing values are not read)."""
        return cls(*values[: len(fields(cls))])

    def fraction(self, tokens: float) -> float:
        """`tokens` as a fraction of the completion tokens (0 when there were none)."""
        return tokens / max(1.0, self.completion_tokens)
