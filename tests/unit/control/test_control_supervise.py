"""How a service process is started: command line, environment, thread split, log tail."""

import sys
from pathlib import Path

from services.control.supervise import ServiceSpec, command, log_tail, service_env, split_threads, write_run_config
from shared.config import RunConfig


def spec(**kw):
    base = dict(role="learner", instance="learner", run_id="r1", config_path=Path("runs/r1/config.yaml"),
                redis_url="redis://h:1/0", log_path=Path("x.log"), metrics_port=9100, threads=1)
    return ServiceSpec(**{**base, **kw})


def test_command_and_env():
    assert command(spec(resume=True)) == [sys.executable, "-m", "services.cli", "learner", "runs/r1/config.yaml",
                                          "--set", "run_id=r1", "--resume"]
    sampler = command(spec(role="sampler", resume=True, overrides=["sampler.shard_index=1"]))
    assert sampler[-2:] == ["--set", "sampler.shard_index=1"] and "--resume" not in sampler
    env = service_env(spec(threads=3), base={"PATH": "/bin", "OMP_NUM_THREADS": "8"})
    assert env["DASHRL_REDIS_URL"] == "redis://h:1/0" and env["DASHRL_METRICS_PORT"] == "9100"
    assert env["OMP_NUM_THREADS"] == "3" and env["PATH"] == "/bin"


def test_split_threads():
    assert split_threads(2, cpus=2) == 1
    assert split_threads(2, cpus=16) == 8
    assert split_threads(3, cpus=2) == 1


def test_log_tail(tmp_path):
    p = tmp_path / "s.log"
    p.write_text("".join(f"line {i}\n" for i in range(100)))
    assert log_tail(p, max_lines=3) == "line 97\nline 98\nline 99"
    assert log_tail(tmp_path / "missing.log") == ""


def test_write_run_config(tmp_path):
    cfg = RunConfig(run_id="abc", output_dir=str(tmp_path))
    path = write_run_config(cfg)
    assert path == tmp_path / "abc" / "config.yaml"
    assert "run_id: abc" in path.read_text()
