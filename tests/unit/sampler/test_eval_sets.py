"""The problems of each named eval: the held-out split as before, file and reasoning-gym evals,
their verifiers and system prompts, and training kept disjoint from every eval's questions."""

import json

import pytest

from services.sampler.eval_sets import exclude_eval_questions, load_eval_sets
from services.sampler.rewards import RewardSpec
from services.sampler.tasks import load_task
from shared.config import TaskConfig
from shared.configio import ConfigError


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def test_file_eval_questions_are_dropped_from_training_and_held_out_stays_as_before(tmp_path, caplog):
    train = write_jsonl(tmp_path / "train.jsonl", [{"prompt": f"q{i}", "answer": str(i)} for i in range(20)])
    # q3 and q4 are also test questions of the file eval: training must lose them.
    test = write_jsonl(tmp_path / "test.jsonl",
                       [{"question": f"q{i}", "solution": f"#### {i}"} for i in (3, 4, 99)])
    cfg = TaskConfig(source={"kind": "jsonl", "path": train}, eval_size=5, evals=[
        {"name": "held"},
        {"name": "gsm", "source": {"kind": "file", "path": test, "prompt_field": "question", "answer_field": "solution"},
         "size": 2, "system_prompt": "Answer briefly."}])
    task = load_task(cfg, seed=0)
    before = load_task(TaskConfig(source={"kind": "jsonl", "path": train}, eval_size=5), seed=0)
    assert [p.question for p in task.eval] == [p.question for p in before.eval]  # the same split as without evals
    held, gsm = load_eval_sets(cfg, task, seed=0)
    assert held.problems == task.eval and held.reward == RewardSpec("math")
    assert held.system_prompt == task.system_prompt
    assert [(p.question, p.answer) for p in gsm.problems] == [("q3", "#### 3"), ("q4", "#### 4")]  # size 2
    assert gsm.reward == RewardSpec("math") and gsm.system_prompt == "Answer briefly."
    with caplog.at_level("INFO", logger="services.sampler.eval_sets"):
        trained = exclude_eval_questions(task, [held, gsm])
    questions = {p.question for p in trained.train}
    held_q = {p.question for p in task.eval}
    assert not questions & ({"q3", "q4"} | held_q)
    assert questions == {f"q{i}" for i in range(20)} - {"q3", "q4"} - held_q
    assert [p.index for p in trained.train] == list(range(len(trained.train)))
    assert ("also an eval's" in caplog.text) == bool({"q3", "q4"} - held_q)


def test_reasoning_gym_eval_uses_its_own_seed_and_scorer():
    cfg = TaskConfig(source={"kind": "reasoning_gym", "name": "chain_sum", "size": 30}, evals=[
        {"name": "chain", "source": {"kind": "reasoning_gym", "name": "chain_sum"}, "size": 6},
        {"name": "pinned", "source": {"kind": "reasoning_gym", "name": "chain_sum", "seed": 3}, "size": 6}])
    task = load_task(cfg, seed=3)
    assert len(task.eval) == 0 and len(task.train) == 30  # no held_out eval: no split
    chain, pinned = load_eval_sets(cfg, task, seed=3)
    assert len(chain.problems) == 6 and chain.problems[0].entry["answer"] == chain.problems[0].answer
    assert chain.reward == RewardSpec("reasoning_gym", "chain_sum", ())
    # seed 3 is the training set's: the pinned eval regenerates its first problems, and the
    # derived seed does not.
    assert [p.question for p in pinned.problems] == [p.question for p in task.train[:6]]
    assert [p.question for p in chain.problems] != [p.question for p in task.train[:6]]
    trained = exclude_eval_questions(task, [chain, pinned])
    assert not {p.question for p in trained.train} & {p.question for p in pinned.problems}


def test_eval_reward_function_is_checked_against_the_allowlist(tmp_path):
    test = write_jsonl(tmp_path / "t.jsonl", [{"prompt": "q", "answer": "1"}])
    ok = TaskConfig(reward_allowlist=["tests.helpers."], evals=[
        {"name": "e", "source": {"kind": "file", "path": test}, "reward": "tests.helpers.sampler_rewards:exact"}])
    task = load_task(TaskConfig(source={"kind": "jsonl", "path": test}, eval_size=0), seed=0)
    assert load_eval_sets(ok, task, 0)[0].reward == RewardSpec("function", "tests.helpers.sampler_rewards:exact")
    bad = ok.model_copy(update={"reward_allowlist": ["shared."]})
    with pytest.raises(ConfigError, match="not under task.reward_allowlist"):
        load_eval_sets(bad, task, 0)


def test_file_eval_rows_without_the_fields_name_the_row(tmp_path):
    test = write_jsonl(tmp_path / "t.jsonl", [{"prompt": "q", "answer": "1"}, {"prompt": "q2"}])
    train = write_jsonl(tmp_path / "train.jsonl", [{"prompt": "q", "answer": "1"}])
    cfg = TaskConfig(evals=[{"name": "e", "source": {"kind": "file", "path": test}}])
    task = load_task(TaskConfig(source={"kind": "jsonl", "path": train}, eval_size=0), seed=0)
    with pytest.raises(ConfigError, match=r"t.jsonl:2: row lacks 'answer' \(eval 'e': source.answer_field\)"):
        load_eval_sets(cfg, task, 0)


def test_no_training_left_after_the_evals_is_refused(tmp_path):
    rows = write_jsonl(tmp_path / "t.jsonl", [{"prompt": f"q{i}", "answer": "1"} for i in range(3)])
    cfg = TaskConfig(source={"kind": "jsonl", "path": rows},
                     evals=[{"name": "e", "source": {"kind": "file", "path": rows}}])
    task = load_task(cfg, seed=0)
    with pytest.raises(ConfigError, match="task.evals: no training problems left"):
        exclude_eval_questions(task, load_eval_sets(cfg, task, 0))
