"""`dashrl run CONFIG` as a user runs it: a real process with an embedded Redis, the control
plane, and the real sampler and learner as its children."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.helpers.control_server import ROOT, free_port, tiny_run_config
from tests.helpers.polling import wait_for
from tests.helpers.tiny_model import build_tiny_model

pytestmark = pytest.mark.slow


def start_run(tmp_path: Path, cfg: dict) -> tuple[subprocess.Popen, Path]:
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump(cfg))
    env = {k: v for k, v in os.environ.items() if not k.startswith("DASHRL_")}  # no Redis URL: embedded
    env.update(PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1", DASHRL_CONTROL_PORT=str(free_port()))
    stderr = tmp_path / "stderr.log"
    proc = subprocess.Popen([sys.executable, "-m", "services.cli", "run", str(config)], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=open(stderr, "wb"), text=True)
    return proc, stderr


def children_of(pid: int) -> list[int]:
    out = []
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            ppid = next(line for line in status.read_text().splitlines() if line.startswith("PPid:"))
        except (OSError, StopIteration):
            continue
        if int(ppid.split()[1]) == pid:
            out.append(int(status.parent.name))
    return out


def test_ctrl_c_stops_gracefully_and_writes_the_run_folder(tmp_path):
    model = build_tiny_model(tmp_path / "model")
    cfg = tiny_run_config(tmp_path / "runs", model, max_steps=500)
    cfg["run_id"] = "cli-1"
    proc, stderr = start_run(tmp_path, cfg)
    folder = tmp_path / "runs" / "cli-1"
    try:
        def steps() -> int:
            assert proc.poll() is None, f"dashrl run exited early:\n{stderr.read_text()[-3000:]}"
            path = folder / "metrics.jsonl"
            return len(path.read_text().splitlines()) if path.exists() else 0
        wait_for(lambda: steps() >= 3, "3 learner steps", 180)
        kids = children_of(proc.pid)
        assert len(kids) >= 3  # learner, sampler, redis-server
        proc.send_signal(signal.SIGINT)  # what Ctrl-C does
        out, _ = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            proc.kill()
    err = stderr.read_text()
    assert proc.returncode == 0, out + err
    assert "stopping gracefully" in err and "run cli-1: stopped" in out
    assert re.search(r"step \d+/500", err)  # the progress line, in its no-terminal form
    last = json.loads((folder / "metrics.jsonl").read_text().splitlines()[-1])
    assert (folder / "checkpoints" / f"step-{last['step']}").is_dir()
    assert (folder / "final" / "config.json").is_file()
    assert yaml.safe_load((folder / "config.yaml").read_text())["run_id"] == "cli-1"
    assert (folder / "report.png").read_bytes()[:4] == b"\x89PNG"
    assert f"learner steps: {len((folder / 'metrics.jsonl').read_text().splitlines())}" in out
    assert not [k for k in kids if Path(f"/proc/{k}").exists()], "a child process outlived dashrl run"


def test_a_failing_service_is_named_and_the_exit_code_is_nonzero(tmp_path):
    model = build_tiny_model(tmp_path / "model")
    # The sampler cannot import this reward function; the learner is fine and waits for rollouts.
    cfg = tiny_run_config(tmp_path / "runs", model, task={"reward": "tests.helpers.sampler_rewards:no_such_fn"})
    cfg["run_id"] = "cli-bad"
    proc, stderr = start_run(tmp_path, cfg)
    try:
        out, _ = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            proc.kill()
    err = stderr.read_text()
    assert proc.returncode == 1, out + err
    assert "dashrl run: sampler failed (exit code 2)" in err  # a config error (bad reward name): exit 2
    assert "no_such_fn" in err  # the log tail says why
    assert "run cli-bad: failed" in err  # a failed run reports on stderr
