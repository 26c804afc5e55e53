"""benchmarks/learner_mfu.py: the length distribution and the padding-waste arithmetic."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "benchmarks"))

from learner_mfu import padding_waste, realistic, step_waste, timed_samples  # noqa: E402


def test_realistic_lengths_in_range_and_grouped():
    samples = realistic(64, seed=0, group=8)
    assert len(samples) == 64
    assert all(100 <= len(s.prompt_ids) <= 300 and 8 <= len(s.completion_ids) and s.length <= 2048 for s in samples)
    assert all((samples[i].prompt_ids == samples[i - i % 8].prompt_ids).all() for i in range(64))  # groups of 8
    assert len({s.length for s in samples}) > 32  # lengths vary


def test_padding_waste_by_hand():
    a, b = realistic(2, seed=1, group=1)
    w = padding_waste([a, b], max_tokens=10_000, max_samples=8)  # one micro-batch of 2 rows of the longer
    longest = max(a.length, b.length)
    assert w["padded_waste"] == 1 - (a.length + b.length) / (2 * longest) and w["packed_waste"] == 0.0
    assert padding_waste([a, a], 10_000, 8)["padded_waste"] == 0.0
    many = realistic(128, seed=0)
    # small steps pad more than large ones (the padded layout sorts within a step)
    assert step_waste(many, 8, 4096, 8)["padded_waste"] > step_waste(many, 128, 4096, 8)["padded_waste"]


def test_timed_samples_are_one_padded_micro_batch():
    step = realistic(64, seed=3)
    picked = timed_samples(step, 2048, 8)
    assert 1 <= len(picked) <= 8 and len(picked) * max(s.length for s in picked) <= 2048
