"""benchmarks/findings/stats.py: mean ± SE over seeds, paired differences and the 2-SE verdict,
the step-function curve (value, area over a window, mean curve), and the equal-clock steps."""

import math

import pytest

from benchmarks.findings.stats import (
    accuracy_at, area_under, best_accuracy, final_accuracy, last_mean, mean_curve, mean_se,
    paired_differences, steps_for_clock, time_to_target, verdict)


def test_mean_and_standard_error():
    est = mean_se([0.40, 0.50, 0.60])
    assert est.mean == pytest.approx(0.50) and est.n == 3
    assert est.se == pytest.approx(0.1 / math.sqrt(3))  # sample std 0.1 (n - 1)
    one = mean_se([0.3, None])
    assert one.mean == pytest.approx(0.3) and one.se is None and one.n == 1
    assert mean_se([]).mean is None and mean_se([None]).n == 0
    assert est.cell(scale=100, unit="%") == "50.0% ± 5.8 (n=3)"
    assert one.cell(scale=100, unit="%") == "30.0% (n=1)"


def test_paired_differences_take_only_seeds_both_have():
    entry = {0: 0.6, 1: 0.5, 2: None, 3: 0.9}
    base = {0: 0.4, 1: 0.45, 2: 0.3}
    assert paired_differences(entry, base) == pytest.approx([0.2, 0.05])


def test_verdict_needs_two_seeds_and_more_than_two_se():
    assert verdict([0.20, 0.22, 0.18], "higher") == ("holds", "")
    assert verdict([0.20, 0.22, 0.18], "lower") == ("does not hold", "")
    assert verdict([-5.0, -6.0, -5.5], "lower") == ("holds", "")
    word, why = verdict([0.10, -0.05, 0.02], "higher")  # mean 0.023, SE 0.044
    assert word == "inconclusive" and "2 SE" in why
    assert verdict([0.3], "higher") == ("inconclusive", "1 paired seed, no standard error")
    assert verdict([], "higher")[0] == "inconclusive"


def test_step_function_value_and_area():
    curve = [(0.0, 0.2), (10.0, 0.4), (30.0, 0.6)]
    assert accuracy_at(curve, 0.0) == 0.2 and accuracy_at(curve, 9.99) == 0.2
    assert accuracy_at(curve, 10.0) == 0.4 and accuracy_at(curve, 100.0) == 0.6
    # 10 s at 0.2, 20 s at 0.4, 10 s at 0.6 over 40 s; the last accuracy holds to the window's end
    assert area_under(curve, 40.0) == pytest.approx((2 + 8 + 6) / 40)
    # a window that ends before the last point ignores it
    assert area_under(curve, 20.0) == pytest.approx((2 + 4) / 20)
    # a first point after 0: its accuracy holds back to 0
    assert area_under([(5.0, 0.5), (15.0, 1.0)], 20.0) == pytest.approx((5 * 0.5 + 10 * 0.5 + 5 * 1.0) / 20)
    with pytest.raises(ValueError):
        area_under(curve, 0.0)


def test_final_last_three_best_and_target():
    curve = [(0.0, 0.2), (5.0, 0.5), (10.0, 0.45), (15.0, 0.4), (20.0, 0.3)]
    assert final_accuracy(curve) == 0.3 and best_accuracy(curve) == 0.5
    assert last_mean(curve) == pytest.approx((0.45 + 0.4 + 0.3) / 3)
    assert time_to_target(curve, 0.45) == 5.0 and time_to_target(curve, 0.9) is None
    assert final_accuracy([]) is None and last_mean([]) is None


def test_steps_for_equal_clock():
    assert steps_for_clock(655.0, 0.81) == 809
    assert steps_for_clock(10.0, 50.0) == 1  # never zero steps
    with pytest.raises(ValueError):
        steps_for_clock(10.0, 0.0)


def test_mean_curve_stops_at_the_shortest_seed():
    a = [(0.0, 0.2), (10.0, 0.6)]
    b = [(0.0, 0.4), (5.0, 0.4), (20.0, 1.0)]  # runs longer; its 20 s point is past a's end
    grid, mean, se = mean_curve([a, b], points=3)
    assert grid == [0.0, 5.0, 10.0]
    assert mean == pytest.approx([0.3, 0.3, 0.5])
    assert se[0] == pytest.approx(0.1)  # std of (0.2, 0.4) / sqrt(2)
    assert mean_curve([]) == ([], [], [])
