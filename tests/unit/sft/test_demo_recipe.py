"""The demo policy's cache key and the held-out split it reports start accuracy on."""

from dataclasses import replace

from services.sampler.tasks import load_task
from services.sft.demo_policy import RECIPE_VERSION, DemoRecipe, recipe_for, run_split
from shared.configio import load_config


def test_digest_is_stable_and_changes_with_the_recipe():
    r = DemoRecipe()
    assert r.digest() == DemoRecipe().digest() and len(r.digest()) == 16
    assert replace(r, sft_steps=r.sft_steps + 1).digest() != r.digest()
    assert replace(r, params={**r.params, "max_digits": 3}).digest() != r.digest()
    assert RECIPE_VERSION >= 1


def test_run_split_is_the_samplers_split():
    cfg = load_config("configs/demo-cpu.yaml", ["task.source.size=300", "task.eval_size=20", "seed=3"])
    src = cfg.task.source
    _, train, held = run_split(src.name, dict(src.params), src.size, cfg.task.eval_size, cfg.seed)
    tasks = load_task(cfg.task, cfg.seed)
    assert [e["question"] for e in held] == [p.question for p in tasks.eval]
    assert [e["question"] for e in train] == [p.question for p in tasks.train]


def test_recipe_takes_the_configs_task():
    cfg = load_config("configs/demo-cpu.yaml", ["task.source.params.max_digits=3", "seed=5"])
    r = recipe_for(cfg)
    assert r.task == "basic_arithmetic" and r.params["max_digits"] == 3 and r.seed == 5
