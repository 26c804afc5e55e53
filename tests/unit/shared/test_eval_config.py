"""`task.evals`: named evals validate (unique names, one held-out split, k within samples, ...)
with one-line errors naming the key, and a config without them keeps the one `held_out` eval."""

from __future__ import annotations

import pytest
import yaml

from shared.config import RunConfig, TaskConfig
from shared.configio import ConfigError, dump_config, load_config
from shared.eval_config import FileEval, HeldOutEval, ReasoningGymEval


def test_without_evals_one_held_out_eval_of_eval_size():
    specs = TaskConfig(eval_size=7).eval_specs
    assert [(e.name, e.source.kind, e.size, e.greedy, e.samples, e.pass_at_k) for e in specs] == [
        ("held_out", "held_out", 7, True, 1, [1])]
    assert TaskConfig(eval_size=7).held_out_size == 7
    assert TaskConfig(eval_size=0).eval_specs == [] and TaskConfig(eval_size=0).held_out_size == 0


def test_named_evals_resolve_sizes_and_sources():
    task = TaskConfig(eval_size=9, evals=[
        {"name": "held"},  # no size: task.eval_size
        {"name": "math500", "source": {"kind": "file", "path": "m.jsonl"}, "samples": 8, "pass_at_k": [1, 8]},
        {"name": "gym", "source": {"kind": "reasoning_gym", "name": "chain_sum"}, "size": 5, "greedy": False}])
    held, math, gym = task.eval_specs
    assert isinstance(held.source, HeldOutEval) and held.size == 9 and task.held_out_size == 9
    assert isinstance(math.source, FileEval) and math.size is None and math.pass_at_k == [1, 8]
    assert isinstance(gym.source, ReasoningGymEval) and gym.size == 5 and not gym.greedy


def test_evals_without_a_held_out_eval_make_no_split():
    task = TaskConfig(evals=[{"name": "gsm8k", "source": {"kind": "file", "path": "g.jsonl"}}])
    assert task.held_out_size == 0
    assert TaskConfig(evals=[]).eval_specs == [] and TaskConfig(evals=[]).held_out_size == 0


@pytest.mark.parametrize("evals, key, words", [
    ("[{name: a, size: 2}, {name: a, source: {kind: file, path: x.jsonl}}]", "task.evals", "['a'] repeated"),
    ("[{name: a}, {name: b}]", "task.evals", "held-out split"),
    ("[{name: a, samples: 4, pass_at_k: [1, 8]}]", "task.evals.0.pass_at_k", "[8] not within 1..samples (4)"),
    ("[{name: a, samples: 4, pass_at_k: [2, 2]}]", "task.evals.0.pass_at_k", "repeats a k"),
    ("[{name: a, pass_at_k: [0]}]", "task.evals.0.pass_at_k", "[0] not within"),
    ("[{name: a, greedy: false, pass_at_k: []}]", "task.evals.0.pass_at_k", "computes nothing"),
    ("[{name: g, source: {kind: reasoning_gym, name: chain_sum}}]", "task.evals.0.size", "required"),
    ("[{name: 'MATH 500'}]", "task.evals.0.name", "pattern"),
    ("[{name: a, samples: 0}]", "task.evals.0.samples", "greater than or equal to 1"),
    ("[{name: a, source: {kind: web}}]", "task.evals.0.source", "'web'"),
    ("[{name: a, source: {kind: file}}]", "task.evals.0.source.path", "required"),
    ("[{name: a, sampels: 4}]", "task.evals.0.sampels", "unknown key"),
])
def test_bad_evals_give_one_line_naming_the_key(evals, key, words):
    with pytest.raises(ConfigError) as err:
        load_config(None, [f"task.evals={evals}"])
    msg = str(err.value)
    assert "\n" not in msg and key in msg and words in msg, msg


def test_held_out_eval_needs_a_size_when_eval_size_is_0():
    with pytest.raises(ConfigError, match="no size and task.eval_size is 0"):
        load_config(None, ["task.eval_size=0", "task.evals=[{name: held}]"])
    assert load_config(None, ["task.eval_size=0", "task.evals=[{name: held, size: 3}]"]).task.held_out_size == 3


def test_evals_round_trip_through_yaml():
    cfg = load_config(None, ["task.evals=[{name: held, size: 4}, {name: gsm8k, source: {kind: file, path: g.jsonl},"
                             " samples: 4, pass_at_k: [1, 4], system_prompt: ''}]"])
    again = RunConfig.model_validate(yaml.safe_load(dump_config(cfg)))
    assert again == cfg and again.task.eval_specs[1].system_prompt == ""
