"""The demo policy's cache key and the held-out split it reports start accuracy on."""

from dataclasses import replace

from shared.tasks import load_task
from services.sft.demo_policy import RECIPE_VERSION, DemoRecipe, held_out_of, recipe_for, run_split, sft_entries
from shared.configio import load_config


def test_digest_is_stable_and_changes_with_the_recipe():
    r = DemoRecipe()
    assert r.digest() == DemoRecipe().digest() and len(r.digest()) == 16
    assert replace(r, sft_steps=r.sft_steps + 1).digest() != r.digest()
    assert replace(r, params={**r.params, "max_digits": 3}).digest() != r.digest()
    assert replace(r, eval_size=100).digest() != r.digest()  # another held-out split: other SFT rows
    assert RECIPE_VERSION >= 2


def test_run_split_is_the_samplers_split():
    cfg = load_config("configs/demo-cpu.yaml", ["task.source.size=300", "task.eval_size=20", "seed=3"])
    src = cfg.task.source
    _, train, held = run_split(src.name, dict(src.params), src.size, cfg.task.eval_size, cfg.seed)
    tasks = load_task(cfg.task, cfg.seed)
    assert [e["question"] for e in held] == [p.question for p in tasks.eval]
    assert [e["question"] for e in train] == [p.question for p in tasks.train]


def test_run_split_training_holds_no_held_out_question():
    params = dict(min_terms=2, max_terms=2, min_digits=1, max_digits=1, operators="+")  # 81 questions
    _, train, held = run_split("basic_arithmetic", params, 500, 20, seed=0)
    assert len(held) == 20 and train and len(train) < 500
    assert {e["question"] for e in train}.isdisjoint({e["question"] for e in held})


def test_sft_rows_exclude_the_runs_held_out_questions():
    r = DemoRecipe(params=dict(min_terms=2, max_terms=2, min_digits=1, max_digits=1, operators="+"),
                   sft_rows=400, run_size=100, eval_size=30)
    _, held = held_out_of(r)
    questions = {e["question"] for e in held}
    rows = sft_entries(r, questions)
    assert rows and len(rows) < 400, "81 questions: 400 SFT draws must repeat held-out ones"
    assert questions.isdisjoint(e["question"] for e in rows)
    assert len(sft_entries(r, set())) == 400


def test_recipe_takes_the_configs_task_and_split():
    cfg = load_config("configs/demo-cpu.yaml", ["task.source.params.max_digits=3", "seed=5", "task.eval_size=50",
                                                "task.source.size=1000"])
    r = recipe_for(cfg)
    assert r.task == "basic_arithmetic" and r.params["max_digits"] == 3 and r.seed == 5
    assert (r.run_size, r.eval_size) == (1000, 50)
    _, held = held_out_of(r)
    assert [e["question"] for e in held] == [p.question for p in load_task(cfg.task, cfg.seed).eval]


def test_split_seed_keeps_problems_and_start_policy_across_run_seeds():
    base = ["task.source.size=300", "task.eval_size=20"]
    a = load_config("configs/demo-cpu.yaml", [*base, "seed=0"])
    b = load_config("configs/demo-cpu.yaml", [*base, "seed=7", "task.split_seed=0"])
    c = load_config("configs/demo-cpu.yaml", [*base, "seed=7"])
    assert (a.data_seed, b.data_seed, c.data_seed) == (0, 0, 7)
    assert recipe_for(a).digest() == recipe_for(b).digest() != recipe_for(c).digest()  # same starting policy
    held = [p.question for p in load_task(a.task, a.data_seed).eval]
    assert held == [p.question for p in load_task(b.task, b.data_seed).eval]
    assert held != [p.question for p in load_task(c.task, c.data_seed).eval]


def test_recipe_refuses_a_system_prompt_the_demo_policy_was_not_trained_with():
    import pytest

    from shared.configio import ConfigError

    cfg = load_config("configs/demo-cpu.yaml", ["task.system_prompt=null"])  # reasoning-gym's default
    with pytest.raises(ConfigError, match="task.system_prompt"):
        recipe_for(cfg)


def _split(r):
    from services.sft.demo_policy import run_task, sft_entries

    task = run_task(r)
    held = {p.question for p in task.eval}
    return task, {e["question"] for e in sft_entries(r, held)}, held


def test_mixed_check_split_is_training_side_and_fixed_by_the_seed():
    from services.sft.demo_policy import check_split

    r = DemoRecipe(run_size=600, eval_size=40, check_size=50, check_unseen=False, sft_rows=600)
    task, sft, held = _split(r)
    check = check_split(r, task.train, sft, held)
    assert len(check) == 50 and all(p in task.train for p in check)
    assert {p.question for p in check}.isdisjoint(held)
    assert [p.question for p in check_split(r, task.train, sft, held)] == [p.question for p in check]
    other = replace(r, seed=1)
    task1, sft1, held1 = _split(other)
    assert [p.question for p in check_split(other, task1.train, sft1, held1)] != [p.question for p in check]


def test_unseen_check_split_asks_no_sft_row_and_no_held_out_question():
    """The default check: fresh problems, none of them an SFT row's or a held-out question, so it
    measures adding, as the held-out split does, not recall of SFT rows."""
    from services.sft.demo_policy import check_split

    r = DemoRecipe(run_size=2000, eval_size=200, check_size=100, sft_rows=2000)
    assert r.check_unseen
    task, sft, held = _split(r)
    check = check_split(r, task.train, sft, held)
    questions = [p.question for p in check]
    assert len(check) == 100 and len(set(questions)) > 90
    assert set(questions).isdisjoint(sft) and set(questions).isdisjoint(held)
    assert all(p.entry["answer"] == p.answer for p in check)  # the verifier scores against the entry
    assert [p.question for p in check_split(r, task.train, sft, held)] == questions
