"""The comparison benchmark's clock rules (benchmarks/compare/analysis.py): evaluation time is
taken off, a version is dated by the learner's step line, and the time split adds the phases."""

import pytest

from benchmarks.compare.analysis import eval_clock, pipeline_result, ratio, time_to, training_clock, trl_result


def ev(version, acc, end, seconds=2.0):
    return {"version": version, "greedy_accuracy": acc, "time": end, "seconds": seconds}


def step(v, t, wait=1.0, fb=0.5, opt=0.1, samples=8):
    return {"policy_version": v, "time": t, "samples": samples,
            "seconds": {"wait": wait, "forward_backward": fb, "optimizer": opt, "publish": 0.05, "commit": 0.0}}


def test_training_clock_starts_after_first_eval_and_drops_later_evals():
    t0, done = eval_clock([ev(0, 0.1, 100.0, seconds=9.0), ev(5, 0.2, 130.0, 4.0), ev(10, 0.3, 160.0, 6.0)])
    assert t0 == 100.0 and done == [(130.0, 4.0), (160.0, 10.0)]
    assert training_clock(120.0, t0, done) == 20.0  # before any later eval
    assert training_clock(140.0, t0, done) == 36.0  # 40 s since t0, 4 s of it evaluating
    assert training_clock(200.0, t0, done) == 90.0
    assert training_clock(50.0, t0, done) == 0.0
    with pytest.raises(ValueError):
        eval_clock([])


def test_version_is_dated_by_the_learner_and_target_found():
    evals = [ev(0, 0.05, 100.0), ev(5, 0.20, 140.0, 4.0), ev(10, 0.35, 170.0, 4.0), ev(15, 0.30, 200.0, 4.0)]
    steps = [step(v, 100.0 + 5 * v) for v in range(1, 16)]  # version v made at 100 + 5v
    calls = [{"generate_s": 0.7, "score_s": 0.1}] * 15
    res = pipeline_result("dash", 0.30, steps, evals, calls)
    # v10 made at 150: 50 s after t0, one eval (ended 140, 4 s) before it -> 46 s
    assert res.time_to_target_s == pytest.approx(46.0)
    assert res.start_accuracy == 0.05 and res.final_accuracy == 0.30 and res.best_accuracy == 0.35
    assert res.steps == 15 and res.samples == 120
    assert res.seconds["inference"] == pytest.approx(10.5) and res.seconds["total"] == pytest.approx(67.0)
    assert res.seconds["waiting"] == pytest.approx(67.0 - 9.0 - 0.75)  # the clock less the learner's work
    assert res.seconds["backprop"] == pytest.approx(9.0) and res.seconds["publish_commit"] == pytest.approx(0.75)
    assert [round(t, 3) for t, _ in res.curve] == [0.0, 25.0, 46.0, 67.0]  # v5 made at 125, before the eval


def test_target_never_reached_and_unknown_versions_skipped():
    evals = [ev(0, 0.05, 100.0), ev(5, 0.10, 140.0), ev(99, 0.9, 150.0)]  # v99: no step line (torn run)
    res = pipeline_result("grpo", 0.5, [step(v, 100.0 + 5 * v) for v in range(1, 6)], evals, [])
    assert res.time_to_target_s is None and res.final_accuracy == 0.10 and len(res.curve) == 2


def test_ratio_cells_and_trl_rows():
    assert ratio(10.0, 40.0) == "0.25" and ratio(None, 40.0) == "-"
    assert ratio(10.0, None, 100.0) == "< 0.10" and ratio(10.0, None) == "-"
    res = trl_result({"target": 0.3, "evals": [{"step": 0, "elapsed_s": 0.0, "accuracy": 0.05},
                                               {"step": 5, "elapsed_s": 12.5, "accuracy": 0.31}],
                      "time_to_target_s": 12.5, "final_accuracy": 0.31, "steps": 5, "samples": 1280,
                      "seconds": {"inference": 8, "backprop": 4, "waiting": 0, "total": 12.5}, "trl_version": "1.16.0"})
    assert res.time_to_target_s == 12.5 and res.start_accuracy == 0.05 and res.best_accuracy == 0.31
    assert res.seconds["inference"] == 8.0 and "1.16.0" in res.notes


def test_time_to_reads_the_first_crossing_off_a_curve():
    curve = [(0.0, 0.2), (10.0, 0.36), (20.0, 0.33), (30.0, 0.41)]
    assert time_to(curve, 0.35) == 10.0 and time_to(curve, 0.40) == 30.0
    assert time_to(curve, 0.5) is None and time_to([], 0.1) is None
