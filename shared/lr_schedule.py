"""The learning-rate schedule of the learner and of `dashrl sft`: linear warm-up, then constant,
linear or cosine decay to a floor. Pure arithmetic (no torch), one copy for both.

The two callers differ in two places, kept as parameters so each keeps its exact values:
- warm-up: the learner reaches the peak on the first update after warm-up (1/(w+1) .. w/(w+1),
  then 1); SFT on the last warm-up step (1/w .. 1), `peak_on_last_warmup=True`;
- floor: the learner decays to 0, SFT to a tenth of its peak (`floor=0.1`).
"""

from __future__ import annotations

import math
from typing import Literal

Schedule = Literal["constant", "linear", "cosine"]


def lr_at(update: int, *, schedule: Schedule | str, warmup: int, total: int, peak: float = 1.0,
          floor: float = 0.0, peak_on_last_warmup: bool = False) -> float:
    """The learning rate at 0-based optimizer update `update` of `total`: `peak` times the
    schedule's factor (`peak=1.0`: the factor itself). After warm-up, `constant` stays at `peak`;
    `linear` and `cosine` go from `peak` to `floor * peak` at `total` and stay there; a run no
    longer than its warm-up stays at `peak`."""
    if update < warmup:
        return peak * (update + 1) / (warmup if peak_on_last_warmup else warmup + 1)
    if schedule == "constant" or total <= warmup:
        return peak
    progress = min(1.0, (update - warmup) / max(1, total - warmup))
    if schedule == "linear":
        return peak * (floor + (1.0 - floor) * (1.0 - progress))
    if schedule == "cosine":
        return peak * (floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress)))
    raise ValueError(f"unknown schedule {schedule!r}")
