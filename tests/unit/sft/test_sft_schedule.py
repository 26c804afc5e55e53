"""SFT loop pieces: warm-up then cosine to 10%, step counts, epoch-wise batches."""

import pytest

from services.sft.sft import SftSettings, batches, lr_at, total_steps


def test_warmup_then_cosine_to_a_tenth():
    s = SftSettings(lr=1.0, warmup_steps=4)
    assert [lr_at(i, 104, s) for i in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert lr_at(4, 104, s) == pytest.approx(1.0)
    assert lr_at(54, 104, s) == pytest.approx(0.55)  # half-way: 0.1 + 0.9 * 0.5
    assert lr_at(104, 104, s) == pytest.approx(0.1)


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
