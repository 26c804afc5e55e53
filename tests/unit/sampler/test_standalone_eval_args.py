"""`dashrl eval`'s argument handling: one file eval per data path (unique names, the CLI's k),
`--k` applied to a config's evals and validated as the config would, and the printed table."""

import pytest

from services.cli import build_parser
from services.sampler.standalone_eval import file_evals, table, with_cli_k
from shared.configio import ConfigError
from shared.eval_config import EvalConfig


def args(*argv):
    return build_parser().parse_args(["eval", "m", *argv])


def test_one_file_eval_per_path_named_uniquely():
    a = args("--data", "x/test.jsonl", "y/test.jsonl", "task", "--data", "gsm8k", "--split", "test", "--k", "1", "4")
    got = file_evals(a)
    assert [e.name for e in got] == ["test", "test-2", "gsm8k"]
    assert all(e.samples == 4 and e.pass_at_k == [1, 4] and e.greedy for e in got)
    assert got[2].source.split == "test" and got[2].source.path == "gsm8k"


def test_cli_k_on_config_evals():
    spec = EvalConfig(name="held", size=10)
    assert with_cli_k(spec, args("--data", "task")) is spec
    got = with_cli_k(spec, args("--data", "task", "--k", "2", "--no-greedy"))
    assert (got.greedy, got.samples, got.pass_at_k, got.size) == (False, 2, [2], 10)
    with pytest.raises(ConfigError, match=r"--k/--samples: pass_at_k: \[8\] not within 1..samples \(4\)"):
        with_cli_k(spec, args("--data", "task", "--k", "8", "--samples", "4"))


def test_table():
    rows = [{"name": "math500", "label": "base", "num_problems": 500, "greedy_accuracy": 0.226, "pass_at_k": {"1": 0.2}},
            {"name": "gsm8k", "label": "base", "num_problems": 1319, "pass_at_k": {"8": 0.61}}]
    assert table(rows).splitlines() == [
        "eval     model  problems  greedy  pass@1  pass@8",
        "math500  base   500       0.2260  0.2000  -",
        "gsm8k    base   1319      -       -       0.6100",
    ]


def test_backend_flag_keeps_the_configs_own_backend_fields(tmp_path):
    from argparse import Namespace

    from services.sampler.standalone_eval import run_config

    path = tmp_path / "config.yaml"
    path.write_text("sampler:\n  backend: {kind: vllm, gpu_memory_utilization: 0.5, enforce_eager: false}\n")
    same, _ = run_config(Namespace(config=str(path), overrides=[], backend="vllm"), tmp_path / "m", None)
    assert same.sampler.backend.gpu_memory_utilization == 0.5 and same.sampler.backend.enforce_eager is False
    other, _ = run_config(Namespace(config=str(path), overrides=[], backend="transformers"), tmp_path / "m", None)
    assert other.sampler.backend.kind == "transformers" and str(other.model.path) == str(tmp_path / "m")
