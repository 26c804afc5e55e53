"""Run configs: every shipped YAML parses; the real `dashrl config` CLI rejects bad ones with exit
code 2 and one stderr line naming the key; `--set` overrides apply."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from shared.config import RunConfig
from shared.configio import ConfigError, dump_config, load_config

ROOT = Path(__file__).resolve().parents[3]
DASHRL = Path(sys.executable).parent / "dashrl"
SHIPPED = sorted(ROOT.glob("configs/**/*.yaml")) + sorted(ROOT.glob("configs/**/*.yml"))


@pytest.mark.parametrize("path", [None, *SHIPPED], ids=lambda p: "defaults" if p is None else str(p.relative_to(ROOT)))
def test_shipped_configs_parse_and_round_trip(path):
    """Every YAML under configs/ (picked up as they are added) and the defaults."""
    cfg = load_config(path)
    assert isinstance(cfg, RunConfig)
    again = RunConfig.model_validate(yaml.safe_load(dump_config(cfg)))
    assert again == cfg


def dashrl(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    cmd = [str(DASHRL)] if DASHRL.exists() else [sys.executable, "-m", "services.cli"]
    return subprocess.run([*cmd, *args], capture_output=True, text=True, cwd=cwd, timeout=60)


@pytest.mark.parametrize("yaml_text, key", [
    ("learner:\n  lrr: 0.1\n", "learner.lrr"),                                   # unknown key
    ("sampler:\n  bogus: 1\n", "sampler.bogus"),
    ("learner:\n  lr: fast\n", "learner.lr"),                                    # wrong type
    ("sampler:\n  group_size: [4]\n", "sampler.group_size"),
    ("learner:\n  train_batch_size: 4\n  micro_batch_size: 8\n", "learner.micro_batch_size"),
    ("sampler:\n  group_size: 1\n", "sampler.group_size"),
    ("learner:\n  max_staleness: -1\n", "learner.max_staleness"),
    ("learner:\n  precision: bf16\n  lr: 3.0e-6\n", "learner.precision"),     # updates below bf16's resolution
    ("learner:\n  precision: fp16\n", "learner.precision"),
])
@pytest.mark.process
def test_bad_config_exits_2_with_one_line_naming_the_key(tmp_path, yaml_text, key):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml_text)
    res = dashrl("config", str(path))
    assert res.returncode == 2, res
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    assert key in lines[0] and str(path) in lines[0] and "Traceback" not in res.stderr
    assert res.stdout == ""


@pytest.mark.process
def test_set_overrides_file_and_defaults(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("learner:\n  lr: 0.001\n  max_steps: 7\nsampler:\n  group_size: 4\n")
    res = dashrl("config", str(path), "--set", "learner.lr=1e-4", "--set", "sampler.group_size=8",
                 "--set", "task.source.kind=reasoning_gym", "--set", "task.source.name=basic_arithmetic")
    assert res.returncode == 0, res.stderr
    out = yaml.safe_load(res.stdout)
    assert out["learner"]["lr"] == pytest.approx(1e-4)
    assert out["learner"]["max_steps"] == 7  # from the file, untouched
    assert out["sampler"]["group_size"] == 8
    assert out["task"]["source"]["name"] == "basic_arithmetic"
    assert out["streams"]["max_backlog"] == RunConfig().streams.max_backlog  # a default


@pytest.mark.parametrize("override, key", [
    ("learner.bogus=1", "learner.bogus"),
    ("learner.micro_batch_size=100000", "micro_batch_size"),
    ("sampler.group_size=1", "sampler.group_size"),
    ("learner.max_staleness=-2", "learner.max_staleness"),
    ("learner.lr", "learner.lr"),  # no '='
])
@pytest.mark.process
def test_bad_override_exits_2_naming_the_key(tmp_path, override, key):
    path = tmp_path / "run.yaml"
    path.write_text("seed: 1\n")
    res = dashrl("config", str(path), "--set", override)
    assert res.returncode == 2, res
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and key in lines[0], res.stderr


def test_task_source_override_without_kind_keeps_default_kind():
    cfg = load_config(None, ["task.source.name=basic_arithmetic"])
    assert cfg.task.source.kind == "reasoning_gym"
    assert cfg.task.source.name == "basic_arithmetic"
    jsonl = load_config(None, ["task.source.kind=jsonl", "task.source.path=train.jsonl"])
    assert jsonl.task.source.kind == "jsonl" and jsonl.task.source.path == "train.jsonl"


def test_pure_bf16_at_a_small_lr_is_refused_with_the_reason():
    with pytest.raises(ConfigError) as err:
        load_config(None, ["learner.precision=bf16", "learner.lr=3e-6"])
    msg = str(err.value)
    assert msg.startswith("config: learner.precision: bf16 keeps weights and AdamW state in bfloat16")
    assert "3e-06" in msg and "bf16-autocast" in msg and "\n" not in msg
    assert load_config(None, ["learner.precision=bf16", "learner.lr=1e-4"]).learner.precision == "bf16"
    assert load_config(None, ["learner.precision=bf16-autocast", "learner.lr=3e-6"]).learner.lr == 3e-6


def test_paper_config_serves_bf16_and_trains_float32_master_weights():
    cfg = load_config(ROOT / "configs" / "paper-qwen2.5-0.5b-math.yaml")
    assert cfg.model.dtype == "bfloat16" and cfg.learner.precision == "bf16-autocast"
    assert cfg.learner.lr == pytest.approx(3e-6) and cfg.sampler.backend == "vllm"
