"""Hugging Face dataset folders through the sampler: a GSM8K-shaped Parquet folder in the Hub's
layout (`data/train-00000-of-00001.parquet`, `data/test-...`) and a MATH-shaped `save_to_disk`
DatasetDict, both written by the `datasets` library, as `task.source` with field mapping and
splits; the real sampler loop (transformers backend, private Redis) generates from their training
rows and scores their held-out split."""

import json
from pathlib import Path

import pytest

from services.sampler.parts import build_loop
from shared.metrics import sampler_metrics
from tests.helpers.tiny_model import build_tiny_model
from tests.integration.sampler.harness import read_batches, sampler_config

datasets = pytest.importorskip("datasets")


def gsm8k_parquet(root: Path) -> tuple[Path, list[str]]:
    (root / "data").mkdir(parents=True)
    q = [f"Tom has {i} apples and buys {i + 1}. How many?" for i in range(12)]
    rows = {"question": q, "answer": [f"{i} + {i + 1} = {2 * i + 1}\n#### {2 * i + 1}" for i in range(12)]}
    datasets.Dataset.from_dict(rows).to_parquet(str(root / "data" / "train-00000-of-00001.parquet"))
    datasets.Dataset.from_dict({k: v[:3] for k, v in rows.items()}).to_parquet(
        str(root / "data" / "test-00000-of-00001.parquet"))
    return root, q


def math_arrow(root: Path) -> tuple[Path, list[str]]:
    q = [f"Compute ${i}\\cdot 2$." for i in range(12)]
    sol = [f"Doubling gives $\\boxed{{{2 * i}}}$." for i in range(12)]
    datasets.DatasetDict({"train": datasets.Dataset.from_dict({"problem": q, "solution": sol}),
                          "test": datasets.Dataset.from_dict({"problem": q[:3], "solution": sol[:3]})}
                         ).save_to_disk(str(root))
    return root, q


@pytest.mark.parametrize("make,fields", [
    (gsm8k_parquet, "prompt_field: question, answer_field: answer"),
    (math_arrow, "prompt_field: problem, answer_field: solution, answer_from: boxed"),
])
def test_dataset_folder_task_through_the_sampler(redis_client, tmp_path, make, fields):
    folder, questions = make(tmp_path / "data")
    model_dir = build_tiny_model(tmp_path / "model")
    source = f"task.source={{kind: jsonl, path: '{folder}', split: train, eval_split: test, {fields}}}"
    cfg = sampler_config(model_dir, tmp_path / "runs", "transformers", run_id="ds", extra=[source])
    loop = build_loop(cfg, redis_client, cfg.run_id, sampler_metrics()[0], tmp_path / "local")
    try:
        assert len(loop.task.train) == 9 and len(loop.task.eval) == 3  # test questions left out of training
        if "boxed" in fields:
            assert [p.answer for p in loop.task.eval] == ["0", "2", "4"]
        loop.run(lambda: False, max_calls=1)
        loop.finisher.flush()
    finally:
        loop.close()
    batch = read_batches(redis_client, "ds")[0]
    tok = loop.renderer.tokenizer
    texts = {tok.decode(s.prompt_ids.tolist(), skip_special_tokens=True) for s in batch.samples()}
    assert texts and texts <= set(questions[3:])  # prompts are the folder's training rows
    evals = [json.loads(line) for line in (Path(cfg.output_dir) / "ds" / "eval.jsonl").read_text().splitlines()]
    assert [(e["name"], e["version"], e["num_problems"]) for e in evals] == [("held_out", 0, 3)]
