"""The demo policy is built once per recipe and reused; a changed recipe rebuilds it. A shrunken
recipe keeps this to seconds; the folder is a complete HF model that the sampler can load."""

import json
from dataclasses import replace

from services.sft.demo_policy import MARKER, DemoRecipe, build_demo_policy, held_out_of

SMALL = DemoRecipe(sft_rows=300, sft_steps=8, sft_batch=8, hidden=64, layers=1, heads=2, intermediate=128,
                   run_size=300, eval_size=40, sft_until=None)


def test_built_once_then_reused_then_rebuilt_on_a_new_recipe(tmp_path):
    logs: list[str] = []
    folder = build_demo_policy(tmp_path, recipe=SMALL, log=logs.append)
    for name in ("config.json", "model.safetensors", "tokenizer.json", "generation_config.json", "sft.jsonl", MARKER):
        assert (folder / name).exists(), name
    marker = json.loads((folder / MARKER).read_text())
    assert marker["recipe_hash"] == SMALL.digest() and 0.0 <= marker["start_accuracy"] <= 1.0
    config = json.loads((folder / "config.json").read_text())
    assert config["tie_word_embeddings"] is False and config["head_dim"] == 32
    first_sft = [line for line in logs if line.startswith("sft step")]
    assert first_sft

    weights_mtime = (folder / "model.safetensors").stat().st_mtime_ns
    logs.clear()
    assert build_demo_policy(tmp_path, recipe=SMALL, log=logs.append) == folder
    assert any("reusing" in line for line in logs) and not any(line.startswith("sft step") for line in logs)
    assert (folder / "model.safetensors").stat().st_mtime_ns == weights_mtime

    changed = replace(SMALL, sft_steps=9)
    build_demo_policy(tmp_path, recipe=changed, log=logs.append)
    assert json.loads((folder / MARKER).read_text())["recipe_hash"] == changed.digest()
    assert not list(tmp_path.glob(".demo-policy.building-*"))


def test_sft_rows_use_the_samplers_prompt_and_answer_format(tmp_path):
    from transformers import AutoTokenizer

    folder = build_demo_policy(tmp_path, recipe=SMALL, log=lambda m: None)
    tok = AutoTokenizer.from_pretrained(folder)
    rows = [json.loads(line) for line in (folder / "sft.jsonl").read_text().splitlines()]
    assert rows[0]["completion"].startswith("<answer>") and rows[0]["completion"].endswith("</answer>")
    _, held = held_out_of(SMALL)
    assert {e["question"] for e in held}.isdisjoint(r["prompt"] for r in rows)
    assert json.loads((folder / MARKER).read_text())["eval_size"] == len(held) == 40
    assert tok.apply_chat_template([{"role": "user", "content": rows[0]["prompt"]}], add_generation_prompt=True,
                                   tokenize=False).endswith("<|assistant|>")


def test_sft_stops_once_the_check_split_reaches_the_target(tmp_path):
    """A target of 0 is met at the first check after the minimum: SFT stops there, not at sft_steps,
    and the marker says where and on what check accuracy."""
    recipe = replace(SMALL, sft_steps=12, sft_until=0.0, sft_min_steps=4, check_every=2, fine_every=2, check_size=10)
    logs: list[str] = []
    folder = build_demo_policy(tmp_path, recipe=recipe, log=logs.append)
    marker = json.loads((folder / MARKER).read_text())
    assert marker["sft_steps_run"] == 4 and len(marker["checks"]) == 1 and marker["checks"][0][0] == 4
    assert marker["check_accuracy"] == marker["checks"][0][1]
    assert any("check split greedy accuracy" in line for line in logs)
    assert [a["reached"] for a in marker["attempts"]] == [True]


def test_an_attempt_that_misses_the_target_is_redone_from_a_fresh_initialisation(tmp_path):
    """A target no check can meet (above 100%): every attempt runs its cap, the marker lists
    each with its own seed, and the kept weights are the last attempt's, not the first's."""
    from safetensors.torch import load_file

    recipe = replace(SMALL, sft_steps=6, sft_until=1.01, sft_min_steps=2, check_every=2, fine_every=2,
                     check_size=10, sft_attempts=2)
    logs: list[str] = []
    two = build_demo_policy(tmp_path / "two", recipe=recipe, log=logs.append)
    marker = json.loads((two / MARKER).read_text())
    assert [(a["attempt"], a["steps"], a["reached"]) for a in marker["attempts"]] == [(0, 6, False), (1, 6, False)]
    assert marker["attempts"][0]["seed"] != marker["attempts"][1]["seed"]
    assert sum("starting again from a fresh initialisation" in line for line in logs) == 1
    one = build_demo_policy(tmp_path / "one", recipe=replace(recipe, sft_attempts=1), log=lambda m: None)
    w_two, w_one = load_file(two / "model.safetensors"), load_file(one / "model.safetensors")
    assert any(not (w_two[k] == w_one[k]).all() for k in w_one)
