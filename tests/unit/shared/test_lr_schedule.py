"""The one LR schedule: the learner's factors (warm-up to 1 on the first update after it, decay
to 0) exactly as its own formula gave them before the two schedules became one function."""

import math

import pytest

from shared.lr_schedule import lr_at


def old_learner_factor(update: int, *, schedule: str, warmup: int, total: int) -> float:
    """services/learner/trainer.py's `lr_factor` before it moved here, verbatim."""
    if update < warmup:
        return (update + 1) / (warmup + 1)
    if schedule == "constant":
        return 1.0
    progress = min(1.0, (update - warmup) / max(1, total - warmup))
    if schedule == "linear":
        return 1.0 - progress
    if schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * progress))
    raise ValueError(f"unknown schedule {schedule!r}")


def test_learner_values():
    assert [lr_at(u, schedule="constant", warmup=3, total=10) for u in range(5)] == [0.25, 0.5, 0.75, 1.0, 1.0]
    assert lr_at(3, schedule="linear", warmup=3, total=7) == 1.0
    assert lr_at(5, schedule="linear", warmup=3, total=7) == 0.5
    assert lr_at(7, schedule="linear", warmup=3, total=7) == 0.0
    assert lr_at(2, schedule="cosine", warmup=0, total=4) == pytest.approx(0.5)
    assert lr_at(1, schedule="cosine", warmup=0, total=4) == pytest.approx(0.5 * (1 + math.cos(math.pi / 4)))
    with pytest.raises(ValueError):
        lr_at(5, schedule="step", warmup=0, total=10)


@pytest.mark.parametrize("schedule", ["constant", "linear", "cosine"])
def test_learner_values_unchanged_bit_for_bit(schedule):
    # every update the learner's LambdaLR asks for: 0..total (the last after the final step)
    for warmup in range(0, 13):
        for total in range(1, 40):
            for u in range(total + 1):
                new = lr_at(u, schedule=schedule, warmup=warmup, total=total)
                assert new == old_learner_factor(u, schedule=schedule, warmup=warmup, total=total), (u, warmup, total)


def test_floor_and_peak():
    assert lr_at(10, schedule="cosine", warmup=0, total=10, peak=2.0, floor=0.1) == pytest.approx(0.2)
    assert lr_at(5, schedule="linear", warmup=0, total=10, peak=2.0, floor=0.5) == pytest.approx(1.5)
    assert [lr_at(u, schedule="constant", warmup=2, total=9, peak=4.0, peak_on_last_warmup=True)
            for u in range(3)] == [2.0, 4.0, 4.0]
    assert lr_at(3, schedule="cosine", warmup=5, total=4) == pytest.approx(4 / 6)  # still warming up
    assert lr_at(7, schedule="cosine", warmup=5, total=4) == 1.0  # past a run no longer than its warm-up
