"""SFT loop pieces: warm-up then cosine to 10%, step counts, epoch-wise batches."""

import math

import pytest

from services.sft.sft import SftSettings, batches, lr_at, total_steps


def test_warmup_then_cosine_to_a_tenth():
    s = SftSettings(lr=1.0, warmup_steps=4)
    assert [lr_at(i, 104, s) for i in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert lr_at(4, 104, s) == pytest.approx(1.0)
    assert lr_at(54, 104, s) == pytest.approx(0.55)  # half-way: 0.1 + 0.9 * 0.5
    assert lr_at(104, 104, s) == pytest.approx(0.1)


def old_sft_lr(step: int, total: int, s: SftSettings) -> float:
    """services/sft/sft.py's `lr_at` before it became shared/lr_schedule.py's, verbatim."""
    if s.warmup_steps and step < s.warmup_steps:
        return s.lr * (step + 1) / s.warmup_steps
    if s.schedule == "constant" or total <= s.warmup_steps:
        return s.lr
    frac = min(1.0, (step - s.warmup_steps) / max(1, total - s.warmup_steps))
    return s.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * frac)))


@pytest.mark.parametrize("schedule", ["cosine", "constant"])
def test_values_unchanged_bit_for_bit(schedule):
    """The demo's start policy is SFT-trained (demo-policy: lr 1e-3, 600 steps, 20 warm-up, constant):
    its bytes depend on every lr value, so each must be the very float the old formula gave."""
    for lr in (1e-3, 3e-4, 5e-5, 2e-5, 0.7):
        for warmup in (0, 1, 2, 3, 7, 10, 20):
            for total in (1, 2, 5, 19, 20, 21, 64, 104, 600):
                s = SftSettings(lr=lr, warmup_steps=warmup, schedule=schedule)
                for step in range(total + 2):
                    assert lr_at(step, total, s) == old_sft_lr(step, total, s), (lr, warmup, total, step)


def test_constant_schedule_after_warmup():
    s = SftSettings(lr=2.0, warmup_steps=2, schedule="constant")
    assert [lr_at(i, 10, s) for i in (0, 1, 2, 9)] == [1.0, 2.0, 2.0, 2.0]


def test_total_steps_from_epochs_or_max_steps():
    assert total_steps(100, SftSettings(batch_size=32, epochs=1)) == 4
    assert total_steps(100, SftSettings(batch_size=32, epochs=2.5)) == 8
    assert total_steps(100, SftSettings(batch_size=32, max_steps=3)) == 3


def test_each_epoch_visits_every_example_once():
    items = list(range(10))
    drawn = [x for b in batches(items, 5, 4, seed=1) for x in b]  # 2 epochs
    assert sorted(drawn[:10]) == items and sorted(drawn[10:]) == items
    assert drawn[:10] != drawn[10:]  # reshuffled
