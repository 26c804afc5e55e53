"""benchmarks/findings/store.py and the budget rule of cli.py: a results file with some (entry,
seed) pairs done -> the plan of runs left; rows merged across invocations; equal-clock steps from
stored seeds or a probe."""

import argparse
import json

import pytest

from benchmarks.findings.cli import Recorder, dash_budget
from benchmarks.findings.store import (current, load_rows, plan, save_rows, seconds_per_step, seconds_per_step_on,
                                      seed_rows, upsert)


def row(entry, seed, steps=1000, kind="run", training_s=600.0, steps_done=1000, samples=64000):
    return {"entry": entry, "seed": seed, "steps": steps, "kind": kind, "training_s": training_s,
            "steps_done": steps_done, "samples": samples, "curve": [[0.0, 0.2], [training_s, 0.5]]}


@pytest.fixture
def stored(tmp_path):
    """A results file an earlier, killed invocation left: seed 0 partly done, a ppo-multi probe."""
    path = tmp_path / "results.json"
    save_rows(path, [row("dash", 0), row("kl", 0), row("dash", 1, steps=20),
                     row("ppo-multi", 0, kind="probe", training_s=40.0, steps_done=40),
                     row("t-dash", 0, steps=None)])
    return path


def test_plan_skips_stored_pairs_and_resumes_the_rest(stored):
    rows = load_rows(stored)
    todo = plan(rows, ["dash", "kl", "ppo-multi", "t-dash"], [0, 1], 1000, rerun=False)
    # seed 0: dash, kl, t-dash stored (the probe is no seed); seed 1's 20-step dash is another horizon
    assert todo == [("ppo-multi", 0), ("dash", 1), ("kl", 1), ("ppo-multi", 1), ("t-dash", 1)]


def test_an_entry_sized_from_dash_brings_dash_in(stored):
    rows = load_rows(stored)
    assert plan(rows, ["sft-samples"], [0, 2], 1000, rerun=False) == [
        ("sft-samples", 0), ("dash", 2), ("sft-samples", 2)]
    assert plan(rows, ["kl"], [2], 1000, rerun=False) == [("kl", 2)]  # kl does not need dash


def test_rerun_runs_the_chosen_pairs_again_only(stored):
    rows = load_rows(stored)
    assert plan(rows, ["kl", "ppo-mini"], [0], 1000, rerun=True) == [("kl", 0), ("ppo-mini", 0)]


def test_rows_of_an_older_start_policy_recipe_are_run_again():
    rows = [{**row("dash", 0), "recipe_hash": "old"}, {**row("kl", 0), "recipe_hash": "new"},
            {**row("dash", 1), "recipe_hash": "b"}]
    recipes = {0: "new", 1: "b"}
    # seed 0's dash ran from the old recipe: it is run again, and so is what is sized from it
    assert plan(rows, ["dash", "kl", "sft-samples"], [0, 1], 1000, rerun=False, recipes=recipes) == [
        ("dash", 0), ("sft-samples", 0), ("kl", 1), ("sft-samples", 1)]
    assert [(r["entry"], r["seed"]) for r in current(rows, recipes)] == [("kl", 0), ("dash", 1)]
    assert current([row("dash", 0)], recipes) == []  # a row that names no recipe is not current


def test_rows_merge_across_invocations_and_save_atomically(stored):
    rows = upsert(load_rows(stored), {**row("kl", 0), "training_s": 1.0})  # a rerun replaces its key
    rows = upsert(rows, row("kl", 1))
    save_rows(stored, rows)
    again = load_rows(stored)
    assert len(again) == 6 and [r["training_s"] for r in again if r["entry"] == "kl"] == [1.0, 600.0]
    assert [p.name for p in stored.parent.iterdir()] == ["results.json"]  # no temporary left behind
    assert json.loads(stored.read_text()) == again
    assert [r["seed"] for r in seed_rows(again, "kl", 1000)] == [0, 1]
    assert load_rows(stored.parent / "missing.json") == []


def test_seconds_per_step_from_seeds_else_probes():
    rows = [row("ppo-multi", 0, kind="probe", training_s=40.0, steps_done=40)]
    assert seconds_per_step(rows, "ppo-multi") == pytest.approx(1.0)
    rows += [row("ppo-multi", s, training_s=t, steps_done=100) for s, t in ((0, 80.0), (1, 120.0), (2, 90.0))]
    assert seconds_per_step(rows, "ppo-multi") == pytest.approx(0.9)  # median of the seeds, probe unused
    assert seconds_per_step(rows, "ppo-mini") is None
    probe = {**row("sft-time", 0, kind="probe", training_s=10.0, steps_done=100), "s_per_step": 0.02}
    assert seconds_per_step([probe], "sft-time") == pytest.approx(0.02)  # the probe's own (median) figure
    sft = [probe, row("sft-samples", 0, training_s=20.0, steps_done=2000)]
    assert seconds_per_step(sft, "sft-time") == pytest.approx(0.01)  # one SFT loop, one figure; seeds first


def test_equal_clock_steps_from_the_seeds_dash_run():
    args = argparse.Namespace(steps=1000)
    rows = [row("dash", 0, training_s=655.0, samples=70000),
            row("ppo-multi", 1, training_s=81.0, steps_done=100)]
    steps, budget = dash_budget(rows, "ppo-multi", 0, args)
    assert steps == 809 and budget["s_per_step"] == pytest.approx(0.81) and budget["dash_training_s"] == 655.0
    assert dash_budget(rows, "sft-samples", 0, args)[0] == 2188  # 70000 / 32 rounded
    with pytest.raises(RuntimeError, match="no dash run"):
        dash_budget(rows, "ppo-multi", 1, args)
    args.recipes = {0: "another recipe"}  # seed 0's dash ran from an older start policy
    with pytest.raises(RuntimeError, match="from this start policy"):
        dash_budget(rows, "ppo-multi", 0, args)


def test_each_row_is_saved_as_it_is_recorded(stored):
    args = argparse.Namespace(steps=1000, config="configs/demo-cpu.yaml", machine="2 x Test CPU", command="cmd")
    rec = Recorder(stored, args)
    rec.begin({"recipe_hash": "abc"})
    rec.record(row("ppo-mini", 0, kind="probe", steps_done=40))
    on_disk = load_rows(stored)  # the probe is stored before the run it sizes starts
    assert len(on_disk) == 6 and on_disk[-1]["kind"] == "probe" and on_disk[-1]["recipe_hash"] == "abc"
    made = {k: v for k, v in row("ppo-mini", 0).items() if k not in ("steps", "kind")}
    saved = rec.record(made)
    assert saved["steps"] == 1000 and saved["kind"] == "run" and saved["machine"] == "2 x Test CPU"
    assert saved["command"] == "cmd" and len(saved["load_before"]) == 3 and saved["finished"].endswith("UTC")
    assert [(r["entry"], r["kind"]) for r in load_rows(stored)][-2:] == [("ppo-mini", "probe"), ("ppo-mini", "run")]


def test_equal_clock_steps_scale_with_the_seeds_dash_speed():
    """A seed whose dash steps are slower gets the entry's steps at the entry/dash ratio of the
    other seeds, not at their raw seconds (which would overrun this seed's clock)."""
    args = argparse.Namespace(steps=100)
    rows = [row("dash", 0, steps=100, training_s=40.0, steps_done=100),
            row("ppo-mini", 0, steps=100, training_s=36.0, steps_done=100),  # 0.9 of dash's 0.4 s
            row("dash", 1, steps=100, training_s=60.0, steps_done=100)]  # seed 1: 0.6 s per dash step
    assert seconds_per_step_on(rows, "ppo-mini", rows[2]) == pytest.approx(0.54)
    steps, budget = dash_budget(rows, "ppo-mini", 1, args)
    assert steps == 111 and "ratio to dash" in budget["rule"]  # 60 / 0.54; raw 0.36 s would give 167
    assert seconds_per_step_on(rows, "ppo-multi", rows[2]) is None  # no ppo-multi stored: a probe decides
    probe = row("ppo-multi", 0, steps=100, kind="probe", training_s=20.0, steps_done=40)  # 0.5 s: 1.25x dash
    assert seconds_per_step_on([*rows, probe], "ppo-multi", rows[2]) == pytest.approx(0.75)
    sft = {**row("sft-time", 0, steps=100, kind="probe", steps_done=40), "s_per_step": 0.05}
    steps, budget = dash_budget([*rows, sft], "sft-time", 1, args)
    assert steps == 1200 and "ratio" not in budget["rule"]  # SFT: its own loop's seconds, no RL ratio
