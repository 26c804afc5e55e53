"""Precision vocabulary shared by the learner and the sampler: the served dtype and the
learner's training precision, resolved from the config (no torch here).

Two settings, because serving and training want different things:
- `model.dtype` is the **served** dtype: the sampler's engine dtype and the dtype of every
  published weight version. `auto`: bfloat16 on CUDA, float32 on CPU.
- `learner.precision` is how the learner trains:
  `fp32` (float32 weights and AdamW state, float32 forward),
  `bf16-autocast` (float32 master weights and AdamW state, forward under bfloat16 autocast),
  `bf16` (weights and AdamW state in bfloat16: half the memory, but small updates vanish, see
  `BF16_MIN_LR`). `auto`: `bf16-autocast` on CUDA when the model is served in bfloat16, else
  `fp32` (CPU trains in float32 unless asked).

Why not train in the served dtype: bfloat16 keeps 8 significant bits, so adding a change to a
weight `w` rounds it away when it is below half a unit in the last place, between |w| x 2^-9 and
|w| x 2^-8. AdamW moves each weight by about `lr` per step; at lr 3e-6 a weight of 0.02 (a
typical projection weight) would need a change of at least 6e-5, twenty times more.
"""

from __future__ import annotations

from typing import Literal

ServedDtype = Literal["float32", "bfloat16", "float16"]
TrainingPrecision = Literal["fp32", "bf16-autocast", "bf16"]

BF16_MIN_LR = 1e-4
"""Below this base lr, `learner.precision: bf16` is refused: an AdamW step of ~lr is lost to
bfloat16 rounding for every weight with |w| > ~lr x 2^8 (at 1e-4: |w| > ~0.026, so typical
weights of 0.01-0.02 still move; at 3e-6: |w| > ~8e-4, i.e. nearly all of them stay put)."""


def served_dtype(dtype: str, cuda: bool) -> ServedDtype:
    """`model.dtype` resolved on a device: `auto` -> bfloat16 on CUDA, float32 on CPU."""
    if dtype == "auto":
        return "bfloat16" if cuda else "float32"
    if dtype not in ("float32", "bfloat16", "float16"):
        raise ValueError(f"unknown served dtype {dtype!r}")
    return dtype  # type: ignore[return-value]


def training_precision(precision: str, served: str, cuda: bool) -> TrainingPrecision:
    """`learner.precision` resolved: `auto` -> bf16-autocast on CUDA when served in bfloat16, else fp32."""
    if precision == "auto":
        return "bf16-autocast" if cuda and served == "bfloat16" else "fp32"
    if precision not in ("fp32", "bf16-autocast", "bf16"):
        raise ValueError(f"unknown training precision {precision!r}")
    return precision  # type: ignore[return-value]


def pure_bf16_problem(precision: str, lr: float) -> str | None:
    """Why `precision` at base `lr` would lose most updates (None when it would not)."""
    if precision != "bf16" or lr >= BF16_MIN_LR:
        return None
    return (f"bf16 keeps weights and AdamW state in bfloat16, which rounds away a change smaller than "
            f"~|w| x 2^-8; at lr {lr:g} (< {BF16_MIN_LR:g}) AdamW's ~lr steps are lost for every weight "
            f"above ~{lr * 256:.1g}, i.e. most of them. Use bf16-autocast (float32 master weights and "
            f"AdamW state, bfloat16 forward) or fp32")
