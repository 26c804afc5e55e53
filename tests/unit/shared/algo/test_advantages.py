"""Group advantages and gradient filtering, against numbers worked out by hand."""

import sys

import numpy as np
import pytest

from shared.algo.advantages import group_advantages
from shared.algo.filtering import keep_mask, kept_fraction


def test_grpo_one_right_of_four():
    # mean 0.25; deviations (.75, -.25, -.25, -.25); sum of squares .75; unbiased var .75/3 = .25; std .5
    a = group_advantages(np.array([1.0, 0, 0, 0]), np.array([7, 7, 7, 7]))
    assert a.dtype == np.float32
    np.testing.assert_allclose(a, [0.75 / 0.5001, -0.25 / 0.5001, -0.25 / 0.5001, -0.25 / 0.5001], rtol=1e-6)


def test_grpo_two_right_of_four_uses_unbiased_std():
    # deviations +-.5; sum of squares 1; unbiased var 1/3 (the biased std would be .5)
    a = group_advantages(np.array([1.0, 0, 1, 0]), np.zeros(4, dtype=int))
    expected = 0.5 / (np.sqrt(1 / 3) + 1e-4)
    np.testing.assert_allclose(a, [expected, -expected, expected, -expected], rtol=1e-6)
    assert abs(a[0] - 0.865875) < 1e-5


def test_groups_need_not_be_contiguous_and_are_independent():
    rewards = np.array([1.0, 3.0, 0.0, 5.0])
    gids = np.array([0, 1, 0, 1])  # group 0: {1, 0}, group 1: {3, 5}
    a = group_advantages(rewards, gids, eps=0.0)
    # each group: deviations +-d, unbiased std = d*sqrt(2) -> A = +-1/sqrt(2)
    s = 1 / np.sqrt(2)
    np.testing.assert_allclose(a, [s, -s, -s, s], rtol=1e-6)


def test_uniform_group_gets_zero_and_eps_applies():
    a = group_advantages(np.array([1.0, 1, 1, 0.0, 0, 0]), np.array([0, 0, 0, 1, 1, 1]))
    np.testing.assert_array_equal(a, np.zeros(6, dtype=np.float32))
    b = group_advantages(np.array([2.0, 0.0]), np.array([0, 0]), eps=1.0)
    # mean 1, deviations +-1, unbiased std sqrt(2) -> 1 / (sqrt 2 + 1)
    np.testing.assert_allclose(b, [1 / (np.sqrt(2) + 1), -1 / (np.sqrt(2) + 1)], rtol=1e-6)


def test_group_of_one_is_zero_not_nan():
    a = group_advantages(np.array([1.0, 0.5, 0.0]), np.array([0, 1, 1]))
    assert np.isfinite(a).all()
    assert a[0] == 0.0
    np.testing.assert_allclose(a[1:], [0.25 / (np.sqrt(0.125) + 1e-4), -0.25 / (np.sqrt(0.125) + 1e-4)], rtol=1e-6)


def test_mean_only_and_raw():
    r, g = np.array([1.0, 0, 0, 0, 2.0]), np.array([0, 0, 0, 0, 1])
    np.testing.assert_allclose(group_advantages(r, g, "mean_only"), [0.75, -0.25, -0.25, -0.25, 0.0])
    np.testing.assert_array_equal(group_advantages(r, g, "raw"), r.astype(np.float32))


def test_empty_and_bad_input():
    assert group_advantages(np.zeros(0), np.zeros(0, dtype=int)).shape == (0,)
    with pytest.raises(ValueError):
        group_advantages(np.zeros(3), np.zeros(2, dtype=int))
    with pytest.raises(ValueError):
        group_advantages(np.zeros(2), np.zeros(2, dtype=int), mode="zscore")


def test_keep_mask_is_strict_and_symmetric():
    a = np.array([0.0, 0.1, -0.1, 0.10001, -0.5, 1.5])  # float64: |A| == threshold is dropped
    mask = keep_mask(a, 0.1)
    np.testing.assert_array_equal(mask, [False, False, False, True, True, True])
    assert kept_fraction(a, 0.1) == 0.5
    assert kept_fraction(np.zeros(0), 0.1) == 1.0
    with pytest.raises(ValueError):
        keep_mask(a, -1.0)


def test_binary_rewards_filter_drops_exactly_the_uniform_groups():
    rewards = np.array([1, 1, 1, 1, 0, 1, 0, 0, 0, 0, 0, 0], dtype=np.float64)
    gids = np.repeat([0, 1, 2], 4)
    mask = keep_mask(group_advantages(rewards, gids), 0.1)
    np.testing.assert_array_equal(mask, [False] * 4 + [True] * 4 + [False] * 4)


@pytest.mark.process
def test_numpy_only_modules_do_not_import_torch():
    import subprocess

    code = "import sys, shared.algo; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)
