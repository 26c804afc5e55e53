"""Bad dataset rows and files: a ConfigError that names the file, the line (or row) and the key;
through the real `dashrl sampler` CLI, exit 2 with that one line and no traceback."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from services.sampler.tasks import load_task
from shared.config import JsonlTask, TaskConfig
from shared.configio import ConfigError
from tests.helpers.tiny_model import build_tiny_model

ROOT = Path(__file__).resolve().parents[3]
GOOD = json.dumps({"q": "What is 1+1?", "a": "2"})


def _task(path: Path, **kw) -> TaskConfig:
    return TaskConfig(source=JsonlTask(path=str(path), prompt_field="q", answer_field="a", **kw), eval_size=0)


@pytest.mark.parametrize("lines,where,words", [
    ([GOOD, "", GOOD, "{not json"], ":4:", "not JSON"),  # blank lines still count: the file's line number
    ([GOOD, "[1, 2]"], ":2:", "expected an object"),
    ([GOOD, '"just a string"'], ":2:", "expected an object"),
    ([GOOD, GOOD, json.dumps({"q": "x"})], ":3:", "lacks 'a' (task.source.answer_field)"),
    ([json.dumps({"a": "1"})], ":1:", "lacks 'q' (task.source.prompt_field)"),
    ([GOOD, json.dumps({"q": "  ", "a": "1"})], ":2:", "'q' is empty"),
    ([json.dumps({"q": "x", "a": None})], ":1:", "'a' is empty"),
])
def test_bad_jsonl_row_names_file_line_and_key(tmp_path, lines, where, words):
    path = tmp_path / "train.jsonl"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ConfigError) as err:
        load_task(_task(path), seed=0)
    assert f"{path}{where}" in str(err.value) and words in str(err.value), str(err.value)
    assert "\n" not in str(err.value)


def test_unreadable_dataset_files_name_the_file(tmp_path):
    missing = tmp_path / "nope.jsonl"
    with pytest.raises(ConfigError, match=rf"{missing}: cannot read dataset: FileNotFoundError"):
        load_task(_task(missing), seed=0)
    fake = tmp_path / "fake.parquet"
    fake.write_bytes(b"not parquet at all")
    with pytest.raises(ConfigError, match=rf"{fake}: cannot read dataset"):
        load_task(_task(fake), seed=0)
    binary = tmp_path / "bin.jsonl"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(ConfigError, match=rf"{binary}: cannot read dataset: UnicodeDecodeError"):
        load_task(_task(binary), seed=0)


def test_parquet_rows_are_numbered(tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    path = tmp_path / "d.parquet"
    pq.write_table(pa.table({"q": ["a", "b", None], "a": ["1", "2", "3"]}), path)
    with pytest.raises(ConfigError, match=rf"{path}:row 3: 'q' is empty"):
        load_task(_task(path), seed=0)


def test_sampler_cli_exits_2_naming_the_bad_row(tmp_path, redis_proc):
    model = build_tiny_model(tmp_path / "tiny")
    data = tmp_path / "train.jsonl"
    data.write_text(GOOD + "\n" + json.dumps({"q": "no answer"}) + "\n")
    env = {**os.environ, "DASHRL_REDIS_URL": redis_proc.url, "DASHRL_METRICS_PORT": "0", "PYTHONPATH": str(ROOT)}
    cfg = tmp_path / "run.yaml"
    cfg.write_text(yaml.safe_dump({
        "run_id": "rows", "output_dir": str(tmp_path), "model": {"path": str(model)},
        "task": {"source": {"kind": "jsonl", "path": str(data), "prompt_field": "q", "answer_field": "a"},
                 "eval_size": 0},
        "sampler": {"backend": "transformers"}}))
    res = subprocess.run([sys.executable, "-m", "services.cli", "sampler", str(cfg)],
                         capture_output=True, text=True, timeout=120, cwd=ROOT, env=env)
    assert res.returncode == 2, res.stderr[-3000:]
    last = res.stderr.strip().splitlines()[-1]
    assert last.startswith("dashrl sampler: config error:") and f"{data}:2: row lacks 'a'" in last, last
    assert "Traceback" not in res.stderr
