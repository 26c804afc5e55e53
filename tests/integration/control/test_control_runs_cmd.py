"""`dashrl runs` and `dashrl status RUN` against a real control plane (uvicorn, `workers` launcher):
a run submitted through the API shows in the table and in its status; a missing run and an
unreachable URL each fail with one line and exit 1."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.helpers.control_server import ROOT, ControlServer, free_port

CONFIG = ROOT / "configs/compose-cpu.yaml"


def dashrl(*args: str, token: str | None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DASHRL_")}
    if token:
        env["DASHRL_API_TOKEN"] = token
    return subprocess.run([sys.executable, "-m", "services.cli", *args], env={**env, "PYTHONPATH": str(ROOT)},
                          capture_output=True, text=True, timeout=60)


def test_runs_and_status_show_what_the_api_answers(redis_client, redis_proc, tmp_path):
    with ControlServer(redis_proc.url, tmp_path) as server:
        url = ["--url", server.url]
        empty = dashrl("runs", *url, token=server.token)
        assert empty.returncode == 0 and empty.stdout.strip() == "no runs", empty.stderr
        made = dashrl("submit", str(CONFIG), "--set", "learner.max_steps=7", *url, token=server.token)
        assert made.returncode == 0, made.stderr
        run_id = made.stdout.strip()

        table = dashrl("runs", *url, token=server.token)
        assert table.returncode == 0, table.stderr
        header, row = table.stdout.splitlines()[:2]
        assert header.split()[:3] == ["RUN", "STATE", "STEP"]
        assert row.split()[:3] == [run_id, "pending", "0/7"]
        listed = json.loads(dashrl("runs", "--json", *url, token=server.token).stdout)
        assert [v["id"] for v in listed["runs"]] == [run_id]

        status = dashrl("status", run_id, *url, token=server.token)
        assert status.returncode == 0, status.stderr
        assert status.stdout.startswith(f"run {run_id}: pending\n") and "step 0/7" in status.stdout
        assert json.loads(dashrl("status", run_id, "--json", *url, token=server.token).stdout)["max_steps"] == 7

        missing = dashrl("status", "no-such-run", *url, token=server.token)
        assert missing.returncode == 1 and "HTTP 404" in missing.stderr and len(missing.stderr.splitlines()) == 1
    down = dashrl("runs", "--url", f"http://127.0.0.1:{free_port()}", token=None)
    assert down.returncode == 1 and "dashrl runs: http://127.0.0.1:" in down.stderr
